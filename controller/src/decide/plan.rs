//! What a decision asks of the shell (`Step`), what the shell observed in return (`LaunchObservation`,
//! `TrackObservation`), and what the decision concludes (`Plan`, with its `StopTask`, `Follow` and `Event`s).

use std::time::Duration;

use jiff::Timestamp;

use super::LogRead;
use crate::api::EcsTaskRunStatus;
use crate::ecs::{ContainerDefinitionInfo, EcsError, EcsFailure, TaskSnapshot};

/// What the shell must do before the run can be decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Succeeded or Failed: nothing more to do until the object changes.
    Idle,
    /// Waiting out a retry backoff.
    Wait(Duration),
    /// Launch attempt `attempt`. `may_exist`: its intent was recorded earlier, so RunTask may already
    /// have been sent: look for a task this run started (ListTasks by startedBy) before launching.
    /// Otherwise the shell records the intent (`launch_intent`) before sending RunTask.
    Launch { attempt: i32, may_exist: bool },
    /// Look at the current task as last seen, and keep following it every `every`.
    Track { task_arn: String, every: Duration },
    /// The deadline passed while attempt `attempt`'s RunTask may have gone out unrecorded: look for its
    /// task (ListTasks by startedBy) and hand what was found to `after_find`. Never launch.
    Find { attempt: i32 },
    /// Decided without observing anything (e.g. the deadline passed while no task runs).
    Conclude(Plan),
    /// Describe the task the run follows without having started it (`spec.taskArn`) and hand what was
    /// found to `after_adopt`.
    Adopt { task_arn: String },
}

/// What launching produced.
#[derive(Clone, Debug, PartialEq)]
pub enum LaunchObservation {
    /// A task this run started earlier (found by startedBy, or returned by a clientToken conflict).
    Adopted(TaskSnapshot),
    /// RunTask started a task.
    Started(TaskSnapshot),
    /// RunTask started nothing and said why.
    Failures(Vec<EcsFailure>),
    /// ECS rejected the request for good (unknown cluster or task definition, invalid parameter, access denied).
    Rejected(EcsError),
    /// No EcsRunPolicy of the namespace allows the launch (the message says which rule); nothing was sent.
    Denied(String),
}

/// What following the task produced.
#[derive(Clone, Debug, PartialEq)]
pub enum TrackObservation {
    /// The task as ECS reports it, with the task definition's containers once it has stopped (to tell
    /// essential containers from sidecars).
    Found { task: TaskSnapshot, containers: Option<Vec<ContainerDefinitionInfo>> },
    /// DescribeTasks did not know the task when it was looked at, at `observed_at` (the tracker's look
    /// may be older than the reconcile reading it).
    Missing { observed_at: Timestamp },
    /// The task could not be described (ECS unreachable, throttled, access denied after an IAM change, ...).
    /// The task may well be alive: the run goes on following it and says why it cannot.
    Unobservable(EcsError),
}

/// The decision: the status to write and the effects to carry out.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub status: EcsTaskRunStatus,
    pub stop: Option<StopTask>,
    pub events: Vec<Event>,
    /// The task to keep following; a change ECS reports about it brings the run back. None: follow nothing.
    pub follow: Option<Follow>,
    /// When to look at the run again whatever ECS reports (a deadline, a retry backoff); None: only on
    /// a change.
    pub requeue: Option<Duration>,
    /// Failed containers whose last lines go into the status and the Event (`logs::attach`) before the
    /// status is written.
    pub logs: Vec<LogRead>,
}

/// Follow `task_arn`, describing it every `every`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Follow {
    pub task_arn: String,
    pub every: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopTask {
    pub task_arn: String,
    pub reason: String,
}

/// A Kubernetes Event to publish about the object decided (a run, or a schedule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}
