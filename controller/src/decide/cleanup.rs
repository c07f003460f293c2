//! Deleting a run: what must be stopped before the finalizer can go, and what the run says meanwhile.

use std::time::Duration;

use jiff::Timestamp;

use super::{Event, RunView, StopTask, current_attempt, set_phase};
use crate::api::{Attempt, DeletionPolicy, EcsTaskRunSpec, EcsTaskRunStatus, LastStatus, Phase, StopCause, TaskStatus};
use crate::ecs::TaskSnapshot;

/// What deleting a run requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CleanupStep {
    /// Nothing to stop: let the object go.
    Release,
    /// Stop the run's live tasks (`task_arns`, and any ListTasks finds for the startedBy values in
    /// `list_started_by`) and wait for STOPPED; `cleanup` decides on what was found.
    Stop { task_arns: Vec<String>, list_started_by: Vec<String> },
}

pub fn cleanup_step(spec: &EcsTaskRunSpec, uid: &str, status: Option<&EcsTaskRunStatus>) -> CleanupStep {
    if spec.deletion_policy() == DeletionPolicy::Orphan {
        return CleanupStep::Release;
    }
    // A run that never recorded a launch intent never sent RunTask. Live tasks can only be recorded ones
    // not seen STOPPED (a run that succeeded on Launched or Running leaves its task running), or, when
    // RunTask may have been sent without its answer being recorded, whatever ECS lists for the run.
    let Some(status) = status else { return CleanupStep::Release };
    let (mut task_arns, mut list_started_by) = (Vec::new(), Vec::new());
    // Each task of the run (each index of a run of several), with its own startedBy.
    for (index, lane) in status.lanes() {
        let started_by =
            if spec.count > 1 { super::indexed_started_by(uid, index.max(0) as u32) } else { super::started_by(uid) };
        let (live, unrecorded) = live_tasks(lane);
        task_arns.extend(live);
        if unrecorded {
            list_started_by.push(started_by);
        }
    }
    if task_arns.is_empty() && list_started_by.is_empty() {
        return CleanupStep::Release;
    }
    CleanupStep::Stop { task_arns, list_started_by }
}

/// The recorded tasks of one task's status not seen STOPPED, and whether its current attempt's RunTask
/// may have gone out unrecorded.
fn live_tasks(status: &TaskStatus) -> (Vec<String>, bool) {
    let seen_stopped = |attempt: &Attempt| {
        attempt.stopped_at.is_some()
            || (status.task_arn == attempt.task_arn && status.last_status == Some(LastStatus::Stopped.into()))
    };
    let live = status
        .attempts
        .iter()
        .filter(|attempt| !seen_stopped(attempt))
        .filter_map(|attempt| attempt.task_arn.clone())
        .collect();
    (live, current_attempt(status).is_some_and(|attempt| attempt.task_arn.is_none()))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanupPlan {
    /// Tasks to send StopTask to.
    pub stop: Vec<StopTask>,
    /// One per StopTask.
    pub events: Vec<Event>,
    /// A launch may still be unrecorded: the finalizer stays whatever the tasks found say.
    still_looking: bool,
}

impl CleanupPlan {
    /// Whether the finalizer can go, on the tasks as the stops left them (StopTask answers with the task,
    /// or says ECS does not know it, which drops it): every one STOPPED, and no launch left to look for.
    pub fn done(&self, tasks: &[TaskSnapshot]) -> bool {
        !self.still_looking && tasks.iter().all(TaskSnapshot::is_stopped)
    }
}

/// How long after its launch intent a RunTask may still be sent: a launch held up longer (a slow
/// DescribeTaskDefinition, template registration, the rate ceiling) writes a new intent instead, so the
/// grace below, anchored at the intent, covers every RunTask that can still reach ECS.
pub const LAUNCH_INTENT_MAX_AGE: Duration = Duration::from_secs(10);

/// How long after the latest launch intent (or the deletion, if later) a run whose launch may be
/// unrecorded keeps looking for its task when ECS lists none: RunTask may be sent up to
/// `LAUNCH_INTENT_MAX_AGE` after the intent and, with the SDK's retries, reach ECS up to the ECS call
/// timeout (20 s by default) later; ListTasks is eventually consistent, so a task started a moment ago may
/// not be listed yet.
pub const UNRECORDED_LAUNCH_GRACE: Duration = Duration::from_secs(60);

/// How long a deletion has been looking for a launch that may be unrecorded: since the deletion began or
/// since the latest launch intent it may race (a launch in flight on a replica), whichever is later.
pub fn unrecorded_launch_for(status: Option<&EcsTaskRunStatus>, deleted_at: Timestamp, now: Timestamp) -> Duration {
    let latest_intent = status
        .into_iter()
        .flat_map(|status| status.lanes().into_iter().map(|(_, lane)| lane))
        .filter_map(|lane| current_attempt(lane).filter(|a| a.task_arn.is_none())?.sent_at.as_ref().map(|t| t.0))
        .max();
    let since = latest_intent.map_or(deleted_at, |intent| intent.max(deleted_at));
    super::duration_between(since, now)
}

/// Decides a deletion on the tasks found. `unrecorded_launch`: how long ago the deletion began, when the
/// run's launch may be unrecorded (its tasks come from ListTasks).
pub fn cleanup(
    spec: &EcsTaskRunSpec,
    namespace: &str,
    name: &str,
    tasks: &[TaskSnapshot],
    unrecorded_launch: Option<Duration>,
) -> CleanupPlan {
    let text = spec.stop_reason.clone().unwrap_or_else(|| format!("ecsrun: EcsTaskRun {namespace}/{name} was deleted"));
    let reason = super::marked_stop_reason(&text, StopCause::Deleted);
    // With several task indexes, a task found for one says nothing of another's: the grace is waited out.
    let still_looking =
        (tasks.is_empty() || spec.count > 1) && unrecorded_launch.is_some_and(|since| since < UNRECORDED_LAUNCH_GRACE);
    let stop: Vec<StopTask> = tasks
        .iter()
        .filter(|t| !t.is_stopped() && !t.stop_requested())
        .map(|t| StopTask { task_arn: t.task_arn.clone(), reason: reason.clone() })
        .collect();
    let events = stop
        .iter()
        .map(|stop| Event {
            warning: false,
            reason: "Stopping",
            note: format!("StopTask {}: {}", super::task_id(&stop.task_arn), stop.reason),
        })
        .collect();
    CleanupPlan { stop, events, still_looking }
}

/// A deletion that cannot get through yet (StopTask failing, credentials unreadable): the run says so in
/// its status while the finalizer holds it, and the deletion is retried.
/// A final run keeps its phase and conditions (its result stands); only its message says why it is still here.
pub fn cleanup_held_up(view: &RunView, reason: &str, why: &str, now: Timestamp) -> EcsTaskRunStatus {
    let mut status = view.status.clone();
    let message = format!("deleted; cannot stop its task yet: {why}; retrying");
    if status.task.phase.is_some_and(Phase::is_terminal) {
        status.task.message = Some(message);
    } else {
        set_phase(view, &mut status, Phase::Stopping, reason, message, now);
    }
    status
}
