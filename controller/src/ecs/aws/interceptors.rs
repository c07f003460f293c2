//! What the ECS clients do at every SDK attempt: count retries, and refuse an acting call's retry once the
//! leader fence has closed.

use std::fmt::Debug;
use std::sync::Arc;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::ecs::fence::{Fence, refuses_attempt};
use crate::metrics::Metrics;

/// Counts the attempts the SDK retries (`ecsrun_ecs_retries_total`): a call that succeeded on its third
/// attempt is otherwise counted only as `ok`.
pub(super) struct RetryCounter {
    pub(super) metrics: Arc<Metrics>,
}

impl Debug for RetryCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RetryCounter")
    }
}

impl Intercept for RetryCounter {
    fn name(&self) -> &'static str {
        "ecsrun-retry-counter"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<RequestAttempts>().is_some_and(|attempts| attempts.attempts() > 1) {
            let operation = cfg.load::<Metadata>().map_or("unknown", |metadata| metadata.name());
            self.metrics.ecs_retries.with_label_values(&[operation]).inc();
        }
        Ok(())
    }
}

/// Refuses a retry attempt of RunTask or StopTask once the leader fence has closed: `Fenced` checks the
/// call as it is sent, and the SDK's retries of it come later.
pub(super) struct FenceEveryAttempt {
    pub(super) fence: Fence,
}

impl Debug for FenceEveryAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FenceEveryAttempt")
    }
}

impl Intercept for FenceEveryAttempt {
    fn name(&self) -> &'static str {
        "ecsrun-fence-every-attempt"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let attempt = cfg.load::<RequestAttempts>().map_or(1, |attempts| attempts.attempts());
        let operation = cfg.load::<Metadata>().map_or("unknown", |metadata| metadata.name());
        if refuses_attempt(&self.fence, operation, attempt) {
            return Err(format!("{operation} retry refused: this replica may no longer hold the leader Lease").into());
        }
        Ok(())
    }
}
