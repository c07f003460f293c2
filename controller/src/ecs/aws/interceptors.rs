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

/// Every SDK attempt of an ECS call: a retry is counted (`ecsrun_ecs_retries_total`: a call that succeeded
/// on its third attempt is otherwise counted only as `ok`), and a retry of RunTask or StopTask is refused
/// once the leader fence has closed (`Fenced` checks the call as it is sent; the SDK's retries come later).
pub(super) struct EveryAttempt {
    pub(super) metrics: Arc<Metrics>,
    pub(super) fence: Fence,
}

impl Debug for EveryAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EveryAttempt")
    }
}

impl Intercept for EveryAttempt {
    fn name(&self) -> &'static str {
        "ecsrun-every-attempt"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let attempt = cfg.load::<RequestAttempts>().map_or(1, |attempts| attempts.attempts());
        let operation = cfg.load::<Metadata>().map_or("unknown", |metadata| metadata.name());
        if attempt > 1 {
            self.metrics.ecs_retries.with_label_values(&[operation]).inc();
        }
        if refuses_attempt(&self.fence, operation, attempt) {
            return Err(format!("{operation} retry refused: this replica may no longer hold the leader Lease").into());
        }
        Ok(())
    }
}
