//! The reconcile shell's errors, each with a stable label for metrics and logs and a reason for
//! conditions.

use std::time::Duration;

use crate::ecs::{EcsError, EcsErrorKind};

/// Errors of the reconcile shell. `label()` is stable: it names the metric series and log field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error(transparent)]
    Ecs(#[from] EcsError),
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("no AWS region: set spec.region, or the controller's --default-region / AWS_REGION")]
    NoRegion,
    #[error("waiting for {0} task(s) to reach STOPPED before releasing the object")]
    WaitingForStop(usize),
    /// A schedule's run being deleted before its schedule recorded its slot: held until it does.
    #[error("kept until schedule {0} records this run's slot (otherwise it would create the slot's run again)")]
    SlotUnrecorded(String),
    /// A schedule's run being deleted whose slot is recorded, kept for this long more: a creation of it
    /// sent before the slot was recorded may still land.
    #[error(
        "kept {0:?} more under its slot's name: a creation of it sent before its schedule recorded the slot may still land"
    )]
    SlotSettling(Duration),
    #[error("object has no {0}")]
    MissingMetadata(&'static str),
    #[error("reconcile did not finish within {0:?}")]
    Timeout(Duration),
    #[error("namespace {0} is not in the controller's cache yet; its EcsRunPolicies are checked once it is")]
    NamespaceNotSeen(String),
    /// The copy reconciled is older than the API server's, or the run was deleted and created again under
    /// its name: nothing decided on it is written; the cache catches up and the run is reconciled again.
    #[error("the run {0} since this copy of it was read; reconciled again on the latest")]
    Stale(Staleness),
    /// The launch was held up past `LAUNCH_INTENT_MAX_AGE` after its intent was written (a slow call, the
    /// rate ceiling): RunTask is not sent on it, and the next reconcile writes a new intent first.
    #[error("the launch was held up {0:?} after its intent was recorded; it is recorded again before RunTask")]
    IntentExpired(Duration),
    /// The run's JSON does not fit this controller's API types (a CRD newer than the controller).
    #[error("the run cannot be read by this controller's version of the API: {0}")]
    Undecodable(String),
}

/// How the copy reconciled differs from the run as the API server has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Staleness {
    /// A newer version exists (its resourceVersion moved on).
    Changed,
    /// The run was deleted and another created under its name (its uid differs).
    Recreated,
}

impl std::fmt::Display for Staleness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Staleness::Changed => "changed",
            Staleness::Recreated => "was deleted and created again",
        })
    }
}

impl Error {
    /// The error itself, without the finalizer helper's wrapping.
    pub(super) fn inner(&self) -> &Error {
        match self {
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(error)
                | kube::runtime::finalizer::Error::CleanupFailed(error) => error.inner(),
                _ => self,
            },
            _ => self,
        }
    }

    pub fn label(&self) -> &'static str {
        match self.inner() {
            Error::Kube(_) => "kube_api",
            Error::Finalizer(_) => "finalizer",
            Error::Ecs(error) => error.kind.label(),
            Error::Credentials(_) => "credentials",
            Error::NoRegion => "no_region",
            Error::WaitingForStop(_) => "waiting_for_stop",
            Error::SlotUnrecorded(_) => "slot_unrecorded",
            Error::SlotSettling(_) => "slot_settling",
            Error::MissingMetadata(_) => "invalid_object",
            Error::Timeout(_) => "reconcile_timeout",
            Error::NamespaceNotSeen(_) => "namespace_not_seen",
            Error::Stale(_) => "stale_object",
            Error::Undecodable(_) => "undecodable_object",
            Error::IntentExpired(_) => "launch_intent_expired",
        }
    }

    /// PascalCase reason for status conditions.
    pub fn reason(&self) -> &'static str {
        match self.inner() {
            Error::Kube(_) => "KubernetesApiError",
            Error::Finalizer(_) => "FinalizerError",
            Error::Ecs(error) => error.kind.reason(),
            Error::Credentials(_) => "CredentialsError",
            Error::NoRegion => "NoRegion",
            Error::WaitingForStop(_) => "WaitingForStop",
            Error::SlotUnrecorded(_) => "SlotUnrecorded",
            Error::SlotSettling(_) => "SlotSettling",
            Error::MissingMetadata(_) => "InvalidObject",
            Error::Timeout(_) => "ReconcileTimeout",
            Error::NamespaceNotSeen(_) => "NamespaceNotSeen",
            Error::Stale(_) => "StaleObject",
            Error::Undecodable(_) => "UndecodableObject",
            Error::IntentExpired(_) => "LaunchHeldUp",
        }
    }

    /// The error for people to read.
    pub fn cause(&self) -> String {
        match self.inner() {
            Error::Finalizer(inner) => inner.to_string(),
            other => other.to_string(),
        }
    }

    /// Expected now and then, and resolved by reconciling again: not a problem to tell anyone about.
    pub(super) fn is_routine(&self) -> bool {
        matches!(
            self.inner(),
            Error::WaitingForStop(_)
                | Error::SlotUnrecorded(_)
                | Error::SlotSettling(_)
                | Error::Stale(_)
                | Error::IntentExpired(_)
                | Error::Ecs(EcsError { kind: EcsErrorKind::HeldUp, .. })
        )
    }

    pub(super) fn is_throttle(&self) -> bool {
        self.label() == EcsErrorKind::Throttled.label()
    }
}

/// Whether the API server said the object itself does not exist (`name` not found), as opposed to a 404
/// for the whole resource while its CRD is being reloaded, which says nothing about the object.
pub(super) fn not_found(error: &kube::Error, name: &str) -> bool {
    matches!(error, kube::Error::Api(answer) if answer.code == 404 && answer.message.contains(&format!("\"{name}\" not found")))
}
