//! The status of an `EcsTaskRun`: what ECS last reported of its task (or of each task index), the
//! attempts, what they used, and kstatus conditions. Written only by the controller.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{DesiredStatus, LastStatus, Reported, RunReason, StopCode};

/// Observed state of an `EcsTaskRun`, as ECS last reported it. A run of one task keeps its task's
/// fields here at the top level; a run of several keeps one entry per index in `tasks`, each with the same
/// fields, and here only the run's phase, reason and message.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EcsTaskRunStatus {
    /// The run's phase, reason and message; with one task, also that task's fields.
    #[serde(flatten)]
    pub task: TaskStatus,
    /// Region the run launches its tasks in, pinned when it first launches: a later change of the
    /// controller's default region does not move a run that is under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// ARN of the cluster the task runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    /// Number of attempts so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_count: Option<i32>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When `spec.suspend` was last cleared on a suspended run: its `timeout` counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_at: Option<Time>,
    /// What the run's tasks used, over every task and attempt (task CPU and memory from start to stop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ResourceUsage>,
    /// The run's place in Kueue's queue, for a run labelled `kueue.x-k8s.io/queue-name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<crate::QueueStatus>,
    /// With `count` > 1: one entry per task index, in index order (the top-level task fields stay empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<IndexedTaskStatus>,
    /// With `count` > 1: indexes that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded_tasks: Option<i32>,
    /// With `count` > 1: indexes that failed for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_tasks: Option<i32>,
    /// With `count` > 1: indexes with a task launched or being launched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_tasks: Option<i32>,
    /// With `count` > 1: succeeded out of count, e.g. `7/10`, for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Ready, Reconciling, Stalled (kstatus), Succeeded and Failed (for `kubectl wait`), one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

impl EcsTaskRunStatus {
    /// Every task of the run with its index: the top-level one for a run of one task, else each entry
    /// of `tasks`. Readers need not know which shape a run has.
    pub fn lanes(&self) -> Vec<(i32, &TaskStatus)> {
        if self.tasks.is_empty() {
            vec![(0, &self.task)]
        } else {
            self.tasks.iter().map(|lane| (lane.index, &lane.task)).collect()
        }
    }

    /// The task of index `index`: the top-level one for a run of one task (index 0).
    pub fn lane(&self, index: i32) -> Option<&TaskStatus> {
        if self.tasks.is_empty() {
            (index == 0).then_some(&self.task)
        } else {
            self.tasks.iter().find(|lane| lane.index == index).map(|lane| &lane.task)
        }
    }

    /// The task of index `index`, to change it.
    pub fn lane_mut(&mut self, index: i32) -> Option<&mut TaskStatus> {
        if self.tasks.is_empty() {
            (index == 0).then_some(&mut self.task)
        } else {
            self.tasks.iter_mut().find(|lane| lane.index == index).map(|lane| &mut lane.task)
        }
    }
}

/// One task index of a run with `count` > 1: its task as ECS last reported it, its attempts and its
/// outcome, in the same fields a run of one task has at the top of its status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IndexedTaskStatus {
    /// The task index, 0 to count-1 (`ECSRUN_TASK_INDEX`).
    pub index: i32,
    /// The index's task, attempts and outcome.
    #[serde(flatten)]
    pub task: TaskStatus,
}

/// One task of a run (the run's only task, or one index of several): its current attempt's task as ECS
/// last reported it, its attempts, and where it stands.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    /// Pending, Running, Stopping, Succeeded, Failed or Unknown; absent until the task is first launched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Machine-readable reason of the phase (for the run, its Ready condition's reason), e.g.
    /// `ContainerFailed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reported<RunReason>>,
    /// Human-readable summary: what happened and what to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// ARN of the current (or last) attempt's task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    /// Task ID (last segment of the ARN), for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Task definition ARN (with revision) the task runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition_arn: Option<String>,
    /// ECS lastStatus: PROVISIONING, PENDING, ACTIVATING, RUNNING, DEACTIVATING, STOPPING, DEPROVISIONING, STOPPED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<Reported<LastStatus>>,
    /// ECS desiredStatus: RUNNING or STOPPED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_status: Option<Reported<DesiredStatus>>,
    /// ECS stopCode, e.g. EssentialContainerExited, TaskFailedToStart, UserInitiated, SpotInterruption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<Reported<StopCode>>,
    /// ECS stoppedReason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    /// Containers of the task with their exit codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerStatus>,
    /// Exit codes as `name=code` pairs, for display (`-` where a container reported none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_codes: Option<String>,
    /// When ECS created the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
    /// When the task started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the task stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Time>,
    /// Failures RunTask reported for the last launch (no task was started for them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<LaunchFailure>,
    /// The latest attempts, oldest first (at most five once they have ended: earlier ones are summed in
    /// `earlierAttempts`); each has its own clientToken and task ARN.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// Attempts older than those listed in `attempts`, summed, so a run with many retries keeps a status
    /// of bounded size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earlier_attempts: Option<EarlierAttempts>,
    /// When the next attempt is launched, while waiting out a retry backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Time>,
    /// What the task published (`::ecsrun-result name=value` lines in its log), read when it stopped
    /// with success, for a run with `spec.results`. Only the current attempt's task speaks here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = crate::describe::Describe("/additionalProperties", "The result's value."))]
    pub results: BTreeMap<String, String>,
}

/// Attempts no longer listed one by one, summed.
impl TaskStatus {
    pub fn reason_is(&self, reason: RunReason) -> bool {
        self.reason.as_ref().is_some_and(|r| r.is(reason))
    }

    /// The reason, if one of ecsrun's own (not an error's, while a call is held up).
    pub fn known_reason(&self) -> Option<RunReason> {
        self.reason.as_ref().and_then(Reported::known)
    }

    /// The reason as written, for messages and tests.
    pub fn reason_str(&self) -> Option<&str> {
        self.reason.as_ref().map(Reported::as_str)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EarlierAttempts {
    /// How many attempts.
    pub count: i32,
    /// How many of them failed (any outcome but Succeeded).
    pub failed: i32,
    /// How many of the failed ones did not count against `backoffLimit` (capacity, interruptions,
    /// Ignore rules).
    pub uncounted: i32,
    /// What their tasks used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ResourceUsage>,
}

/// Lifecycle phase of a run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// No task yet: launching, or waiting to retry.
    Pending,
    /// A task is launched and being followed.
    Running,
    /// The task is being stopped (deadline or deletion).
    Stopping,
    /// The run reached what `wait.for` asked and `successPolicy` accepted it.
    Succeeded,
    /// The run failed; see reason and message.
    Failed,
    /// ECS forgot the task before the controller saw it stop (ECS keeps stopped tasks for about an
    /// hour): whether it succeeded cannot be known, and it is never launched again.
    Unknown,
}

impl Phase {
    /// Succeeded, Failed and Unknown are final: nothing is polled or launched any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed | Phase::Unknown)
    }
}

/// A container of the task as ECS reported it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    /// Container name.
    pub name: String,
    /// Exit code; absent when the container never ran or has not exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// ECS's reason for the container's stop, e.g. `OutOfMemoryError` or a pull error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Container lastStatus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<String>,
    /// Whether the task definition marks the container essential (known once the task stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub essential: Option<bool>,
    /// The last lines the container wrote to CloudWatch Logs (`logs.tailLines`, at most 4 KiB), read when
    /// it failed the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tail: Option<String>,
    /// Why `logTail` could not be read (no awslogs driver, no such log group or stream, access denied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tail_error: Option<String>,
}

/// Compute a task used: vCPU-seconds and GiB-seconds (task-level CPU units / 1024 and memory MiB / 1024,
/// times the seconds from startedAt to stoppedAt).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceUsage {
    /// vCPUs times seconds run.
    pub vcpu_seconds: f64,
    /// GiB of memory times seconds run.
    pub gib_seconds: f64,
    /// Where the task ran: its capacity provider (FARGATE, FARGATE_SPOT, an EC2 provider) or launch type.
    /// Per attempt only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_provider: Option<String>,
}

/// A RunTask failure entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct LaunchFailure {
    /// Resource the failure is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// Failure reason, e.g. RESOURCE:MEMORY, AGENT, MISSING.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Failure detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One attempt at running the task.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// Attempt number, from 1; part of the RunTask clientToken.
    pub attempt: i32,
    /// Task ARN, once launched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    /// When the task was launched (or adopted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launched_at: Option<Time>,
    /// When RunTask was last about to be sent while no task is recorded: a task it started may not be
    /// listed by ECS yet, so the controller keeps looking for a while before it concludes there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Time>,
    /// When the task stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Time>,
    /// ECS stopCode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<Reported<StopCode>>,
    /// Why ecsrun sent the attempt's task StopTask, if it did: what the attempt is judged by once the task
    /// has stopped (the StopTask reason carries it too, for when this write was lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_cause: Option<StopCause>,
    /// Exit codes as `name=code` pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_codes: Option<String>,
    /// Outcome once the attempt ended: Succeeded, or the failure reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Reported<RunReason>>,
    /// Why the attempt ended that way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What the attempt's task used, once it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ResourceUsage>,
}

impl Attempt {
    pub fn known_outcome(&self) -> Option<RunReason> {
        self.outcome.as_ref().and_then(Reported::known)
    }

    /// The outcome as written, for messages and tests.
    pub fn outcome_str(&self) -> Option<&str> {
        self.outcome.as_ref().map(Reported::as_str)
    }
}

/// Why ecsrun stopped a task. Recorded on the attempt when StopTask is decided, and marked at the end of
/// the StopTask reason (`[ecsrun:<marker>]`, kept whatever `spec.stopReason` says) so that a stop whose
/// recording was lost is still judged by its cause, never by comparing reason texts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum StopCause {
    /// `wait.timeout` passed.
    DeadlineExceeded,
    /// The task did not reach RUNNING within `wait.startTimeout`.
    StartTimeout,
    /// `spec.suspend` was set.
    Suspended,
    /// `spec.stop` was set.
    StopRequested,
    /// The run was deleted (deletionPolicy Stop).
    Deleted,
    /// Another task index failed (`failFast`).
    FailFast,
    /// Enough task indexes succeeded (`tasksToSucceed`).
    NotNeeded,
    /// The orphan sweep: the run that started the task is gone.
    Orphaned,
    /// Kueue evicted the run's Workload (preemption, deactivation, a stopped ClusterQueue, its execution
    /// time), or it holds no admission: the run waits for admission again.
    Evicted,
}

impl StopCause {
    const ALL: [StopCause; 9] = [
        StopCause::DeadlineExceeded,
        StopCause::StartTimeout,
        StopCause::Suspended,
        StopCause::StopRequested,
        StopCause::Deleted,
        StopCause::FailFast,
        StopCause::NotNeeded,
        StopCause::Orphaned,
        StopCause::Evicted,
    ];

    /// The marker's word: short, so that it fits after a stop reason of any length.
    fn word(self) -> &'static str {
        match self {
            StopCause::DeadlineExceeded => "deadline",
            StopCause::StartTimeout => "start-timeout",
            StopCause::Suspended => "suspend",
            StopCause::StopRequested => "stop",
            StopCause::Deleted => "delete",
            StopCause::FailFast => "fail-fast",
            StopCause::NotNeeded => "not-needed",
            StopCause::Orphaned => "orphan",
            StopCause::Evicted => "evicted",
        }
    }

    /// The marker at the end of a StopTask reason.
    pub fn marker(self) -> String {
        format!("[ecsrun:{}]", self.word())
    }

    /// The cause marked at the end of `stopped_reason`, if ecsrun's.
    pub fn marked_in(stopped_reason: &str) -> Option<StopCause> {
        let word = stopped_reason.trim_end().strip_suffix(']')?.rsplit_once("[ecsrun:")?.1;
        Self::ALL.into_iter().find(|cause| cause.word() == word)
    }

    /// The cause a version before the markers gave away in its default StopTask reasons
    /// (`ecsrun: <why> (<namespace>/<name>)`), for tasks it stopped before an upgrade.
    pub fn in_unmarked_reason(stopped_reason: &str, namespace: &str, name: &str) -> Option<StopCause> {
        let why = stopped_reason.strip_prefix("ecsrun: ")?.strip_suffix(&format!(" ({namespace}/{name})"))?;
        match why {
            "timeout exceeded" => Some(StopCause::DeadlineExceeded),
            "run suspended" => Some(StopCause::Suspended),
            "start timeout exceeded" => Some(StopCause::StartTimeout),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StopCause;

    #[test]
    fn a_stop_cause_is_read_from_its_marker_or_from_the_texts_of_a_version_before_markers() {
        let rows = [
            (
                "marked deadline",
                "ecsrun: timeout exceeded (jobs/nightly) [ecsrun:deadline]",
                Some(StopCause::DeadlineExceeded),
            ),
            ("marked after a user's reason", "paused by ops [ecsrun:suspend]", Some(StopCause::Suspended)),
            ("marked eviction", "ecsrun: evicted by Kueue (jobs/nightly) [ecsrun:evicted]", Some(StopCause::Evicted)),
            ("unmarked timeout", "ecsrun: timeout exceeded (jobs/nightly)", Some(StopCause::DeadlineExceeded)),
            ("unmarked suspension", "ecsrun: run suspended (jobs/nightly)", Some(StopCause::Suspended)),
            ("unmarked start timeout", "ecsrun: start timeout exceeded (jobs/nightly)", Some(StopCause::StartTimeout)),
            ("another run's text", "ecsrun: timeout exceeded (jobs/other)", None),
            ("someone else's stop", "Task stopped by user", None),
        ];
        for (row, stopped_reason, cause) in rows {
            let read = StopCause::marked_in(stopped_reason)
                .or_else(|| StopCause::in_unmarked_reason(stopped_reason, "jobs", "nightly"));
            assert_eq!(read, cause, "{row}");
        }
    }
}
