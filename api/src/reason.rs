//! Why a run (or one task index of it) is where it is: the reason of its phase and of its Ready condition,
//! and the outcome of each attempt. The names are the API's strings.

use strum::{EnumString, IntoStaticStr, VariantArray};

use crate::Spelled;

/// A run's reason as ecsrun decides it. In the status it is `Reported<RunReason>`: while a call is held
/// up (ECS throttled, credentials unreadable) the reason is that error's (`EcsServerError`, `Throttled`,
/// ...), kept as written and matched by nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumString, IntoStaticStr, VariantArray)]
pub enum RunReason {
    /// RunTask is about to be sent (its intent is recorded) or was sent and not yet answered.
    Launching,
    /// A failed attempt waits out its backoff before the next.
    WaitingToRetry,
    /// The task is PROVISIONING, PENDING or ACTIVATING.
    TaskStarting,
    /// The task is RUNNING.
    TaskRunning,
    /// The task is on its way to STOPPED.
    TaskStopping,
    Succeeded,
    /// `wait.timeout` passed.
    DeadlineExceeded,
    /// A task did not reach RUNNING within `wait.startTimeout`.
    StartTimeout,
    /// ECS had no capacity for the task (retried without counting).
    InsufficientCapacity,
    /// Fargate Spot or a host retirement took the task (retried without counting).
    Interrupted,
    /// RunTask started nothing, for a reason not about capacity.
    LaunchFailed,
    /// ECS stopped the task before it started (an image pull, a secret, an ENI).
    TaskFailedToStart,
    /// An essential container exited non-zero.
    ContainerFailed,
    /// An essential container never ran.
    ContainerNeverRan,
    /// The task succeeded without publishing a result `results.required` names.
    ResultMissing,
    /// ECS no longer knows the task, and it was not seen stopping.
    TaskLost,
    /// Nobody can tell how the task ended (it was forgotten by ECS while unobservable).
    OutcomeUnknown,
    /// More attempts failed than `retryPolicy.backoffLimit` allows.
    BackoffLimitExceeded,
    /// The spec cannot be run as written.
    InvalidSpec,
    /// No EcsRunPolicy of the namespace allows the launch.
    PolicyDenied,
    /// A `retryPolicy.rules` FailRun rule matched.
    FailedByRule,
    /// A `retryPolicy.rules` Ignore rule matched: retried without counting.
    IgnoredByRule,
    /// A `retryPolicy.rules` Count rule matched what ecsrun would have retried freely: counted.
    CountedByRule,
    /// With `count` > 1: `tasksToSucceed` tasks succeeded, so this one was stopped or not run again.
    NotNeeded,
    /// With `count` > 1: `maxFailedIndexes` was exceeded, so the run fails.
    MaxFailedIndexesExceeded,
    /// With `count` > 1 and failFast: another task index failed, so this one was stopped or not retried.
    FailFast,
    /// `spec.suspend` is set: nothing launches, and tasks running are stopped without counting as failures.
    Suspended,
    /// The run is queued (`kueue.x-k8s.io/queue-name`): nothing launches until Kueue admits its Workload.
    Queued,
    /// Kueue evicted the run's Workload: its tasks were stopped without counting as failures, and the run
    /// waits for admission again.
    Evicted,
    /// `spec.stop` was set: the run's tasks were stopped and nothing more launched.
    Stopped,
    /// ECS does not know the task a run was asked to follow (`spec.taskArn`).
    TaskNotFound,
    /// `spec.taskArn` names a task ecsrun started for another namespace.
    AdoptionDenied,
    /// ECS refused the launch for good: the cluster does not exist.
    ClusterNotFound,
    /// ECS refused the launch for good: the task definition does not exist (or is INACTIVE).
    TaskDefinitionNotFound,
    /// ECS refused the launch for good: a parameter of the request is invalid.
    InvalidParameter,
    /// ECS refused the launch for good: ecsrun's role may not do it.
    AccessDenied,
    /// ECS refused the launch for good, for another reason its message gives.
    RejectedByEcs,
}

impl Spelled for RunReason {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reported;

    #[test]
    fn every_reason_is_spelled_as_its_name_and_parses_back() {
        for reason in RunReason::VARIANTS {
            assert_eq!(reason.spelling(), format!("{reason:?}"));
            assert_eq!(Reported::<RunReason>::parse(reason.spelling()), Reported::Known(*reason));
        }
        // An error's reason while a call is held up is kept as written.
        assert_eq!(Reported::<RunReason>::parse("EcsServerError").as_str(), "EcsServerError");
        assert_eq!(Reported::<RunReason>::parse("EcsServerError").known(), None);
    }
}
