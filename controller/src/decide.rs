//! The whole run policy as pure functions of plain data: what to look at next, and what an observation
//! means for the run (launching, adopting, waiting, judging exit codes, retrying, deadlines, stopping on
//! delete). No I/O and no clock: `now` is an argument, so a table of cases tests every branch.
//!
//! The flow per reconcile: `next_step` says what the shell must observe or do; the shell does it and hands
//! the result to `after_launch` or `after_track`, which return a `Plan` (the new status, a StopTask to send,
//! events, which task to keep following and how often, when to look again regardless of ECS). Deletion goes
//! through `cleanup_step` and `cleanup`.
//!
//! Launching records its intent first (`launch_intent`): only an attempt whose RunTask may already have
//! been sent needs the adoption lookup (ListTasks by startedBy); RunTask's clientToken covers the rest.

use std::time::Duration;

use jiff::Timestamp;

use crate::api::{
    Attempt, EcsTaskRunSpec, EcsTaskRunStatus, POLL_INTERVAL_MAX, Phase, RunReason, StopCause, TaskStatus,
};
use crate::ecs::{ContainerDefinitionInfo, EcsError, EcsFailure, TaskSnapshot};

/// How long a freshly launched task may be unknown to DescribeTasks (ECS is eventually consistent).
pub const MISSING_GRACE: Duration = Duration::from_secs(120);
/// ECS keeps a stopped task describable for at least this long. A task launched longer ago than this
/// that ECS no longer knows may have run to its end: it is not a lost launch.
pub const ECS_REMEMBERS_STOPPED: Duration = Duration::from_secs(3600);
/// The longest poll interval (the CRD allows no more): a task is seen several times within ECS's memory.
/// Retries that do not count against `backoffLimit` (capacity, interruptions) are still bounded.
pub const MAX_FREE_RETRIES: usize = 10;
const RETRY_BASE: Duration = Duration::from_secs(10);
const RETRY_CAP: Duration = Duration::from_secs(300);
/// While a stop is in progress (deadline), the task is looked at this often at most.
const STOPPING_POLL: Duration = Duration::from_secs(10);

/// Condition types. Ready/Reconciling/Stalled follow kstatus (Flux, Argo CD); Succeeded/Failed serve
/// `kubectl wait --for=condition=...`.
pub mod condition {
    pub const READY: &str = "Ready";
    pub const RECONCILING: &str = "Reconciling";
    pub const STALLED: &str = "Stalled";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const FAILED: &str = "Failed";
    /// An EcsTaskSchedule's `suspend` is set.
    pub const SUSPENDED: &str = "Suspended";

    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    /// One wanted condition: type, status, reason, message.
    pub type Wanted<'a> = (&'a str, &'a str, &'a str, String);

    /// The conditions `wanted`, in metav1.Condition's shape: each keeps the lastTransitionTime it had in
    /// `previous` when its status did not change, so status stays the same while nothing flips.
    pub fn merged(
        previous: &[Condition],
        wanted: Vec<Wanted>,
        generation: Option<i64>,
        now: Timestamp,
    ) -> Vec<Condition> {
        wanted
            .into_iter()
            .map(|(type_, value, reason, message)| {
                let last_transition_time = previous
                    .iter()
                    .find(|c| c.type_ == type_ && c.status == value)
                    .map_or(Time(now), |c| c.last_transition_time.clone());
                Condition {
                    type_: type_.to_owned(),
                    status: value.to_owned(),
                    reason: reason.to_owned(),
                    message,
                    observed_generation: generation,
                    last_transition_time,
                }
            })
            .collect()
    }
}

/// The run as the decision sees it.
#[derive(Clone, Copy, Debug)]
pub struct RunView<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    pub generation: Option<i64>,
    pub created_at: Timestamp,
    pub spec: &'a EcsTaskRunSpec,
    pub status: &'a EcsTaskRunStatus,
    /// The controller's poll interval for runs that do not set one.
    pub default_poll_interval: Duration,
    /// The task index this view decides (0 for a run of one task). With `count` > 1, `status` is that
    /// index's own (see `batch`).
    pub index: u32,
    /// The most log lines per failed container the namespace's EcsRunPolicies let it read (None: as
    /// the spec asks).
    pub max_tail_lines: Option<u32>,
    /// The install's identity (`--cluster-id`), tagged on every task it launches.
    pub cluster_id: Option<&'a str>,
}

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

/// ECS identity of a run of one task: startedBy (for ListTasks), the per-attempt clientToken (RunTask
/// idempotency). A run of several tasks gives each index its own (`RunView::started_by`).
pub fn started_by(uid: &str) -> String {
    format!("ecsrun/{uid}")
}

pub fn client_token(uid: &str, attempt: i32) -> String {
    format!("{uid}-{attempt}")
}

/// startedBy of task index `index` of a run of several tasks: ListTasks finds one index's tasks.
pub fn indexed_started_by(uid: &str, index: u32) -> String {
    format!("ecsrun/{uid}/{index}")
}

impl RunView<'_> {
    /// Whether the run has several tasks (its status keeps them in `tasks`).
    fn indexed(&self) -> bool {
        self.spec.count > 1
    }

    /// startedBy of this view's tasks.
    pub fn started_by(&self) -> String {
        if self.indexed() { indexed_started_by(self.uid, self.index) } else { started_by(self.uid) }
    }

    /// RunTask's clientToken for `attempt` of this view's index (at most 64 characters: a uid is 36).
    pub fn client_token(&self, attempt: i32) -> String {
        if self.indexed() { format!("{}-{}-{attempt}", self.uid, self.index) } else { client_token(self.uid, attempt) }
    }

    /// Log lines read per failed container: what the spec asks, within the policies' cap.
    pub fn tail_lines(&self) -> u32 {
        let asked = self.spec.logs.tail_lines.max(0) as u32;
        self.max_tail_lines.map_or(asked, |most| asked.min(most))
    }

    pub fn poll_interval(&self) -> Duration {
        let every = self.spec.wait.poll_interval.as_ref().and_then(|every| every.get().ok());
        every.unwrap_or(self.default_poll_interval).min(POLL_INTERVAL_MAX)
    }

    /// A duration of the spec that is not one (admission refuses them; one that got past fails the run).
    fn invalid_duration(&self) -> Option<String> {
        self.spec.durations().find_map(|(path, value)| Some(format!("{path}: {}", value.get().err()?)))
    }

    /// Whether the run is suspended in its status while its spec no longer asks for it: it resumes now.
    fn resuming(&self) -> bool {
        !self.spec.suspend && self.status.task.reason_is(RunReason::Suspended)
    }

    /// Where the timeout counts from: the creation, or the last resume (a Job's suspend restarts it).
    fn timeout_from(&self, now: Timestamp) -> Timestamp {
        if self.resuming() {
            return now;
        }
        self.status.resumed_at.as_ref().map_or(self.created_at, |resumed| resumed.0.max(self.created_at))
    }

    /// A timeout that is not a duration is never "no limit": its deadline is where it counts from.
    fn deadline(&self, now: Timestamp) -> Option<Timestamp> {
        let timeout = self.spec.wait.timeout.as_ref()?.get().unwrap_or(Duration::ZERO);
        self.timeout_from(now).checked_add(timeout).ok()
    }

    fn deadline_passed(&self, now: Timestamp) -> bool {
        self.deadline(now).is_some_and(|deadline| now >= deadline)
    }

    /// Time left until the deadline, if there is one.
    fn until_deadline(&self, now: Timestamp) -> Option<Duration> {
        self.deadline(now).map(|deadline| duration_between(now, deadline))
    }

    /// When a task launched at `launched_at` must be RUNNING by (`wait.startTimeout`).
    fn start_deadline(&self, launched_at: Timestamp) -> Option<Timestamp> {
        let limit = self.spec.wait.start_timeout.as_ref()?.get().unwrap_or(Duration::ZERO);
        launched_at.checked_add(limit).ok()
    }

    /// When a run following a task must look again whatever the tracker reports (it reports changes
    /// only): at the deadline, or at the start deadline of a task launched at `launched_at` that has not
    /// started, whichever comes first.
    fn look_again(&self, now: Timestamp, launched_at: Option<Timestamp>, started: bool) -> Option<Duration> {
        let start = launched_at.filter(|_| !started).and_then(|at| self.start_deadline(at));
        let until_start = start.map(|deadline| duration_between(now, deadline));
        [self.until_deadline(now), until_start].into_iter().flatten().min()
    }

    /// A run that follows a task started elsewhere (`spec.taskArn`): it never launches one.
    pub fn adopts(&self) -> bool {
        self.spec.task_arn.is_some()
    }

    /// The StopTask reason for a stop of `cause`: the spec's `stopReason`, else ecsrun's own words (`why`),
    /// followed by the cause's marker.
    fn stop_reason(&self, cause: StopCause, why: &str) -> String {
        let text = self
            .spec
            .stop_reason
            .clone()
            .unwrap_or_else(|| format!("ecsrun: {why} ({}/{})", self.namespace, self.name));
        marked_stop_reason(&text, cause)
    }
}

/// ECS refuses a StopTask whose reason is longer than this, as a permanent error: a deletion would never
/// complete.
pub const MAX_STOP_REASON_CHARS: usize = 255;

/// A StopTask reason ECS accepts that ends with `cause`'s marker: `text` is cut to leave it room.
pub fn marked_stop_reason(text: &str, cause: StopCause) -> String {
    let marker = cause.marker();
    let room = MAX_STOP_REASON_CHARS - marker.chars().count() - 1;
    let text: String = text.chars().take(room).collect();
    format!("{text} {marker}")
}

/// The attempt in progress: launched or being launched, not yet concluded.
fn current_attempt(status: &TaskStatus) -> Option<&Attempt> {
    status.attempts.last().filter(|attempt| attempt.outcome.is_none())
}

pub fn next_step(view: &RunView, now: Timestamp) -> Step {
    let status = view.status;
    if status.task.phase.is_some_and(Phase::is_terminal) {
        return Step::Idle;
    }
    let current = current_attempt(&status.task);
    if let Some(task_arn) = current.and_then(|attempt| attempt.task_arn.clone()) {
        // A running task is followed even past the deadline: `after_track` stops it and waits for STOPPED.
        let every = if status.task.phase == Some(Phase::Stopping) {
            view.poll_interval().min(STOPPING_POLL)
        } else {
            view.poll_interval()
        };
        return Step::Track { task_arn, every };
    }
    if current.is_none()
        && let Some(why) = view.invalid_duration()
    {
        let verdict = Verdict::Fail { reason: RunReason::InvalidSpec };
        return Step::Conclude(conclude(view, status.clone(), verdict, why, now));
    }
    if view.spec.suspend && !view.adopts() {
        if let Some(attempt) = current {
            // RunTask may have gone out unrecorded: its task is found (and stopped) first.
            return Step::Find { attempt: attempt.attempt };
        }
        if status.task.reason_is(RunReason::Suspended) {
            return Step::Idle;
        }
        return Step::Conclude(suspended(view, status.clone(), "nothing launches".to_owned(), now));
    }
    if let Some(task_arn) = view.spec.task_arn.as_ref().filter(|_| status.task.attempts.is_empty()) {
        // Adopted first, even to stop it (the Stop Task action): the stop follows at its first look.
        return Step::Adopt { task_arn: task_arn.clone() };
    }
    if view.spec.stop {
        if let Some(attempt) = current {
            // RunTask may have gone out unrecorded: its task is found (and stopped) before the run ends.
            return Step::Find { attempt: attempt.attempt };
        }
        let message = "no task was running".to_owned();
        return Step::Conclude(conclude(
            view,
            status.clone(),
            Verdict::Fail { reason: RunReason::Stopped },
            message,
            now,
        ));
    }
    if view.deadline_passed(now) {
        if let Some(attempt) = current {
            // A task may run that only ECS knows of: it is found (and stopped) before the run ends.
            return Step::Find { attempt: attempt.attempt };
        }
        return Step::Conclude(deadline_exceeded(view, now));
    }
    if let Some(next) = &status.task.next_attempt_at
        && now < next.0
    {
        return Step::Wait(duration_between(now, next.0));
    }
    if view.adopts() {
        // Never relaunched (conclude fails its every retry): nothing left to do.
        return Step::Idle;
    }
    match current {
        Some(attempt) => Step::Launch { attempt: attempt.attempt, may_exist: true },
        None => Step::Launch { attempt: bound::attempts_made(&status.task) + 1, may_exist: false },
    }
}

/// How long from `from` to `to`; zero if `to` is not later.
pub fn duration_between(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

mod follow;
mod launch;
mod phase;

pub use follow::after_track;
use launch::deadline_exceeded;
pub use launch::{
    adoptable, after_adopt, after_find, after_launch, foreign_template_revision, launch_held_up, launch_intent,
    launch_request,
};
pub use phase::retry_backoff;
use phase::{conclude, plan, set_phase, suspended};

pub use crate::api::task_id;

pub mod batch;
pub mod bound;
mod cleanup;
mod judge;
pub mod logs;
pub mod run;

use judge::Verdict;
pub use logs::LogRead;
pub mod usage;

pub use cleanup::{
    CleanupPlan, CleanupStep, LAUNCH_INTENT_MAX_AGE, UNRECORDED_LAUNCH_GRACE, cleanup, cleanup_held_up, cleanup_step,
    unrecorded_launch_for,
};

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
