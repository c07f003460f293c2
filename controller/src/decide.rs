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

use crate::api::{Attempt, Phase, RunReason, StopCause, TaskStatus};

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
    if let Some(hold) = view.hold() {
        if let Some(attempt) = current {
            // RunTask may have gone out unrecorded: its task is found (and stopped) first.
            return Step::Find { attempt: attempt.attempt };
        }
        if hold == Hold::Suspended && status.task.reason_is(RunReason::Suspended) {
            return Step::Idle;
        }
        // A queued run's message follows Kueue's: the status is written only when it changes.
        return Step::Conclude(held(view, status.clone(), hold, "nothing launches".to_owned(), now));
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
mod plan;
mod view;

pub use plan::{Event, Follow, LaunchObservation, Plan, Step, StopTask, TrackObservation};
pub use view::{Admission, Hold, RunView, is_hold_outcome};

pub use follow::after_track;
use launch::deadline_exceeded;
pub use launch::{
    adoptable, after_adopt, after_find, after_launch, foreign_template_revision, launch_held_up, launch_intent,
    launch_request,
};
pub use phase::retry_backoff;
use phase::{conclude, held, plan, set_phase};

pub use crate::api::task_id;

pub mod batch;
pub mod bound;
mod cleanup;
mod judge;
pub mod logs;
pub mod results;
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
