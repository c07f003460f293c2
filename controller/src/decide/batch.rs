//! Runs of several tasks (`count` > 1). Each task index is decided as a run of one task, by the same
//! policy, on its own status (`status.tasks[index]`): launching, adopting, retrying with its own
//! `backoffLimit`, rules, deadlines. This module only says which indexes act now (parallelism, failFast)
//! and folds what they did into the run: counters, phase, the StopTasks failFast sends.

use std::time::Duration;

use jiff::Timestamp;

use super::{Event, Follow, Hold, Plan, RunView, STOPPING_POLL, Step, StopTask, bound, set_phase};
use crate::api::{DesiredStatus, EcsTaskRunStatus, IndexedTaskStatus, Phase, Reported, RunReason, StopCause};

/// How soon a run looks again when a parallelism slot is free for an index that has not started. Not at
/// once: the cache must first hold the status just written.
const NEXT_INDEX_DELAY: Duration = Duration::from_secs(2);

/// Index `index`'s status as the single-task decision reads and writes it: the index's task, in the run's
/// region.
pub fn lane_status(status: &EcsTaskRunStatus, index: u32) -> EcsTaskRunStatus {
    let task = status.tasks.iter().find(|t| t.index == index as i32).map(|lane| lane.task.clone()).unwrap_or_default();
    EcsTaskRunStatus {
        task,
        region: status.region.clone(),
        resumed_at: status.resumed_at.clone(),
        ..EcsTaskRunStatus::default()
    }
}

/// Stores what the single-task decision wrote for index `index` (its conditions are the run's business).
pub fn store_lane(status: &mut EcsTaskRunStatus, index: u32, lane: EcsTaskRunStatus) {
    if status.region.is_none() {
        status.region = lane.region;
    }
    match status.tasks.iter_mut().find(|t| t.index == index as i32) {
        Some(slot) => slot.task = lane.task,
        None => {
            status.tasks.push(IndexedTaskStatus { index: index as i32, task: lane.task });
            status.tasks.sort_by_key(|t| t.index);
        }
    }
}

/// The view the single-task decision gets for index `index`, whose status is `lane`.
pub fn lane_view<'a>(view: &RunView<'a>, index: u32, lane: &'a EcsTaskRunStatus) -> RunView<'a> {
    RunView { index, status: lane, ..*view }
}

fn indexes(view: &RunView) -> std::ops::Range<u32> {
    0..view.spec.count.max(1) as u32
}

/// An index whose task is launched or being launched (it takes one of `parallelism`'s slots).
fn is_active(lane: &IndexedTaskStatus) -> bool {
    lane.task.attempts.last().is_some_and(|attempt| attempt.outcome.is_none())
}

/// Whether an index failed for good on its own account (not stopped for another's failure, nor because
/// enough others succeeded).
fn failed_on_its_own(lane: &IndexedTaskStatus) -> bool {
    lane.task.phase == Some(Phase::Failed)
        && !matches!(
            lane.task.reason.as_ref().and_then(Reported::known),
            Some(RunReason::FailFast | RunReason::NotNeeded)
        )
}

/// The run fails before its end: failFast and a failed index, or more failed indexes than
/// `maxFailedIndexes`; no index launches again and live tasks are stopped. Not for a stopped run
/// (`spec.stop`): every index stops on its own account.
fn failing(view: &RunView, status: &EcsTaskRunStatus) -> bool {
    let policy = &view.spec.retry_policy;
    let allowed = match (policy.fail_fast, policy.max_failed_indexes) {
        (true, _) => 0,
        (false, Some(most)) => most.max(0) as usize,
        (false, None) => return false,
    };
    !view.spec.stop && status.tasks.iter().filter(|t| failed_on_its_own(t)).count() > allowed
}

/// `tasksToSucceed` indexes have succeeded: the run succeeds, and the others are not needed.
fn enough(view: &RunView, status: &EcsTaskRunStatus) -> bool {
    let succeeded = status.tasks.iter().filter(|t| t.task.phase == Some(Phase::Succeeded)).count();
    !view.spec.stop && view.spec.tasks_to_succeed.is_some_and(|needed| succeeded >= needed.max(1) as usize)
}

/// Nothing launches any more and live tasks are stopped: the run fails early, or has succeeded.
fn winding_down(view: &RunView, status: &EcsTaskRunStatus) -> bool {
    enough(view, status) || failing(view, status)
}

/// What each index must observe or do now, lowest index first. Fresh launches (a first attempt or a
/// retry) only fill free parallelism slots; once failFast applies, nothing launches, and an index whose
/// RunTask may have gone out unrecorded is looked for (to be stopped) instead. Empty for a final run.
pub fn next_steps(view: &RunView, now: Timestamp) -> Vec<(u32, Step)> {
    let status = view.status;
    if status.task.phase.is_some_and(Phase::is_terminal) {
        return Vec::new();
    }
    let failing = winding_down(view, status);
    let active = status.tasks.iter().filter(|t| is_active(t)).count();
    let mut free = view.spec.max_parallel().saturating_sub(active);
    let mut steps = Vec::new();
    for index in indexes(view) {
        let lane = lane_status(status, index);
        let step = super::next_step(&lane_view(view, index, &lane), now);
        let step = match step {
            Step::Idle => continue,
            Step::Launch { attempt, may_exist: true } if failing => Step::Find { attempt },
            Step::Launch { may_exist: false, .. } | Step::Wait(_) if failing => continue,
            Step::Launch { attempt, may_exist: false } => {
                if free == 0 {
                    continue;
                }
                free -= 1;
                Step::Launch { attempt, may_exist: false }
            }
            step => step,
        };
        steps.push((index, step));
    }
    steps
}

/// The run's status with the launch intents of `launches` (index, attempt) recorded, and the region pinned.
pub fn launch_intents(view: &RunView, launches: &[(u32, i32)], region: &str, now: Timestamp) -> EcsTaskRunStatus {
    let mut status = view.status.clone();
    status.region.get_or_insert_with(|| region.to_owned());
    if view.resuming() {
        status.resumed_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
    }
    for (index, attempt) in launches {
        let lane = lane_status(&status, *index);
        let intent = super::launch_intent(&lane_view(view, *index, &lane), *attempt, region, now);
        store_lane(&mut status, *index, intent);
    }
    summarize(view, status, now)
}

/// What the run's indexes did this time, folded into one plan for the run.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchPlan {
    pub status: EcsTaskRunStatus,
    pub stops: Vec<StopTask>,
    pub events: Vec<Event>,
    /// Every task to follow, with how often.
    pub follows: Vec<Follow>,
    pub requeue: Option<Duration>,
    /// Failed containers whose last lines are read before the status is written.
    pub logs: Vec<super::LogRead>,
}

/// Folds each acting index's plan (`plans`: index, plan) and `waits` (time until a waiting index is due)
/// into the run: failFast's StopTasks and verdicts, the counters, the run's phase and its Events.
pub fn merge(view: &RunView, plans: Vec<(u32, Plan)>, waits: &[Duration], now: Timestamp) -> BatchPlan {
    let mut status = view.status.clone();
    let mut stops = Vec::new();
    let mut events = Vec::new();
    let mut follows = Vec::new();
    let mut logs = Vec::new();
    let mut requeue = waits.iter().min().copied();
    let mut soonest = |after: Option<Duration>| {
        if let Some(after) = after {
            requeue = Some(requeue.map_or(after, |current| current.min(after)));
        }
    };
    // Indexes whose task was being stopped as not needed, or for failFast: however it ended, it ended
    // for that.
    let stopping_for = |why: RunReason| -> Vec<i32> {
        status
            .tasks
            .iter()
            .filter(|t| t.task.phase == Some(Phase::Stopping) && t.task.reason_is(why))
            .map(|t| t.index)
            .collect()
    };
    let stopped_not_needed = stopping_for(RunReason::NotNeeded);
    let stopped_for_fail_fast = stopping_for(RunReason::FailFast);
    // An index's own Events are not published: per-index detail lives in status.tasks, and a run of 100
    // tasks would otherwise write hundreds of Events. The run tells its own transitions (below).
    for (index, plan) in plans {
        stops.extend(plan.stop);
        follows.extend(plan.follow);
        // Last lines of a bounded few indexes' failed containers.
        for read in plan.logs {
            let reading: Vec<i32> = logs.iter().map(|read: &super::LogRead| read.index as i32).collect();
            if bound::may_read_log_tail(&status, index as i32, &reading) {
                logs.push(read);
            }
        }
        soonest(plan.requeue);
        store_lane(&mut status, index, plan.status);
    }

    if enough(view, &status) {
        let why = view.stop_reason(StopCause::NotNeeded, "enough tasks succeeded");
        for lane in status.tasks.iter_mut() {
            match lane.task.phase {
                Some(Phase::Succeeded | Phase::Unknown) => {}
                Some(Phase::Failed) if !stopped_not_needed.contains(&lane.index) && failed_on_its_own(lane) => {}
                _ if !is_active(lane) => not_needed(lane),
                _ => {
                    let message = format!("stopping task {}: enough tasks succeeded (tasksToSucceed)", task_id(lane));
                    stop_lane(lane, StopCause::NotNeeded, message, &why, &mut stops, &mut follows);
                }
            }
        }
    } else if failing(view, &status) {
        let culprit = status
            .tasks
            .iter()
            .filter(|t| !stopped_for_fail_fast.contains(&t.index))
            .find(|t| failed_on_its_own(t))
            .map_or(0, |t| t.index);
        let why = view.stop_reason(StopCause::FailFast, &format!("task index {culprit} failed"));
        for lane in status.tasks.iter_mut().filter(|t| t.index != culprit) {
            let stopped_by_us = stopped_for_fail_fast.contains(&lane.index);
            match lane.task.phase {
                // Waiting to retry, or its task was stopped for failFast and is judged as stopped by it.
                Some(Phase::Pending) if !is_active(lane) => fail_fast(lane, culprit),
                Some(Phase::Failed) if stopped_by_us => fail_fast(lane, culprit),
                Some(Phase::Failed | Phase::Succeeded | Phase::Unknown) | None => {}
                Some(_) if is_active(lane) => {
                    let message = format!("stopping task {}: task index {culprit} failed", task_id(lane));
                    stop_lane(lane, StopCause::FailFast, message, &why, &mut stops, &mut follows);
                }
                Some(_) => {}
            }
        }
    }
    if ready_to_launch(view, &status) {
        soonest(Some(NEXT_INDEX_DELAY));
    }
    let status = summarize(view, status, now);
    // The run's Events: its first tasks launched, stopping its tasks, its outcome; a few per run, whatever
    // its count.
    let run_plan = super::plan(view, status, None, None, None);
    events.extend(run_events(view.status, &run_plan.status));
    events.extend(run_plan.events);
    let mut status = run_plan.status;
    // The tails still to be read go into the status after this: their room is kept.
    let budget = bound::STATUS_BUDGET_BYTES.saturating_sub(logs.len() * super::logs::MAX_LOG_TAIL_BYTES);
    let culprit = first_failure(&status).map(|lane| lane.index);
    bound::fit(&mut status, culprit, budget);
    if status.task.phase.is_some_and(Phase::is_terminal) {
        follows.clear();
        requeue = None;
    }
    BatchPlan { status, stops, events, follows, requeue, logs }
}

/// A slot is free and an index can take it now (not started, nor waiting out a backoff).
fn ready_to_launch(view: &RunView, status: &EcsTaskRunStatus) -> bool {
    let active = status.tasks.iter().filter(|t| is_active(t)).count();
    if winding_down(view, status) || active >= view.spec.max_parallel() {
        return false;
    }
    indexes(view).any(|index| match status.tasks.iter().find(|t| t.index == index as i32) {
        None => true,
        Some(lane) => {
            !lane.task.phase.is_some_and(Phase::is_terminal) && !is_active(lane) && lane.task.next_attempt_at.is_none()
        }
    })
}

fn task_id(lane: &IndexedTaskStatus) -> &str {
    lane.task.task_id.as_deref().unwrap_or_default()
}

/// Stops lane's task (once: not if ECS is stopping it already or a StopTask is on its way) with `why`,
/// marks the lane Stopping for `reason` (unless its deadline's stop came first), and follows it closely.
fn stop_lane(
    lane: &mut IndexedTaskStatus,
    cause: StopCause,
    message: String,
    why: &str,
    stops: &mut Vec<StopTask>,
    follows: &mut [Follow],
) {
    let Some(task_arn) = lane.task.task_arn.clone() else { return };
    if lane.task.desired_status != Some(DesiredStatus::Stopped.into()) && !stops.iter().any(|s| s.task_arn == task_arn)
    {
        stops.push(StopTask { task_arn: task_arn.clone(), reason: why.to_owned() });
    }
    let reason = if cause == StopCause::FailFast { RunReason::FailFast } else { RunReason::NotNeeded };
    if !lane.task.reason_is(RunReason::DeadlineExceeded) {
        super::follow::record_stop_cause(&mut lane.task, &task_arn, cause);
        lane.task.phase = Some(Phase::Stopping);
        lane.task.reason = Some(reason.into());
        lane.task.message = Some(message);
    }
    for follow in follows.iter_mut().filter(|f| f.task_arn == task_arn) {
        follow.every = follow.every.min(STOPPING_POLL);
    }
}

fn not_needed(lane: &mut IndexedTaskStatus) {
    lane.task.phase = Some(Phase::Failed);
    lane.task.reason = Some(RunReason::NotNeeded.into());
    lane.task.message = Some("not run to its end: enough tasks succeeded (tasksToSucceed)".to_owned());
    lane.task.next_attempt_at = None;
}

fn fail_fast(lane: &mut IndexedTaskStatus, culprit: i32) {
    lane.task.phase = Some(Phase::Failed);
    lane.task.reason = Some(RunReason::FailFast.into());
    lane.task.message = Some(format!("not run to its end: task index {culprit} failed (failFast)"));
    lane.task.next_attempt_at = None;
}

/// The index whose own failure failed the run (not one stopped for it).
fn first_failure(status: &EcsTaskRunStatus) -> Option<&IndexedTaskStatus> {
    status.tasks.iter().find(|t| failed_on_its_own(t))
}

/// The run-level transitions `plan` does not tell for a run of several tasks: its first tasks launched
/// (Running), and stopping its tasks (Stopping, for failFast, spec.stop or the timeout). Its outcome is
/// told by `plan`.
fn run_events(old: &EcsTaskRunStatus, new: &EcsTaskRunStatus) -> Vec<Event> {
    let launched_before = old.tasks.iter().any(|t| t.task.task_arn.is_some());
    let mut events = Vec::new();
    let message = || new.task.message.clone().unwrap_or_default();
    if new.task.phase == Some(Phase::Running) && !launched_before {
        events.push(Event { warning: false, reason: "Running", note: message() });
    }
    if new.task.phase == Some(Phase::Stopping) && old.task.phase != Some(Phase::Stopping) {
        events.push(Event { warning: false, reason: "Stopping", note: message() });
    }
    for hold in [RunReason::Suspended, RunReason::Queued] {
        let held = |status: &EcsTaskRunStatus| status.task.phase == Some(Phase::Pending) && status.task.reason_is(hold);
        if held(new) && !held(old) {
            events.push(Event { warning: false, reason: hold.into(), note: message() });
        }
    }
    events
}

/// Counters, progress and the run's phase from its indexes.
fn summarize(view: &RunView, mut status: EcsTaskRunStatus, now: Timestamp) -> EcsTaskRunStatus {
    let count = view.spec.count.max(1) as usize;
    let of = |phase: Phase| status.tasks.iter().filter(|t| t.task.phase == Some(phase)).count();
    let not_needed = status
        .tasks
        .iter()
        .filter(|t| t.task.reason_is(RunReason::NotNeeded) && t.task.phase == Some(Phase::Failed))
        .count();
    let (succeeded, failed, unknown) = (of(Phase::Succeeded), of(Phase::Failed) - not_needed, of(Phase::Unknown));
    let active = status.tasks.iter().filter(|t| is_active(t)).count();
    let running = status.tasks.iter().filter(|t| is_active(t) && t.task.task_arn.is_some()).count();
    status.succeeded_tasks = Some(succeeded as i32);
    status.failed_tasks = Some(failed as i32);
    status.active_tasks = Some(active as i32);
    status.progress = Some(format!("{succeeded}/{count}"));
    // The revision the tasks run (a template's registered one, for instance), for the run as a whole.
    status.task.task_definition_arn = status.tasks.iter().rev().find_map(|t| t.task.task_definition_arn.clone());
    status.attempt_count = Some(status.tasks.iter().map(|t| bound::attempts_made(&t.task)).sum());
    status.usage = super::usage::of_tasks(status.tasks.iter().map(|t| &t.task));
    let tally = format!("{succeeded} of {count} tasks succeeded, {failed} failed, {active} active");
    let settled = succeeded + failed + unknown + not_needed == count || (winding_down(view, &status) && active == 0);
    let over_budget = failing(view, &status) && !view.spec.retry_policy.fail_fast;
    let (phase, reason, message): (Phase, Reported<RunReason>, String) = if settled && enough(view, &status) {
        let needed = view.spec.tasks_to_succeed.unwrap_or_default();
        (
            Phase::Succeeded,
            RunReason::Succeeded.into(),
            format!("{succeeded} tasks succeeded (tasksToSucceed {needed}); {tally}"),
        )
    } else if settled && over_budget {
        let most = view.spec.retry_policy.max_failed_indexes.unwrap_or_default();
        let culprit = first_failure(&status)
            .map(|lane| {
                format!(" (first: task index {}: {})", lane.index, lane.task.message.as_deref().unwrap_or_default())
            })
            .unwrap_or_default();
        (
            Phase::Failed,
            RunReason::MaxFailedIndexesExceeded.into(),
            format!("{failed} tasks failed, more than maxFailedIndexes ({most}){culprit}; {tally}"),
        )
    } else if settled {
        match first_failure(&status).or_else(|| status.tasks.iter().find(|t| t.task.phase == Some(Phase::Failed))) {
            Some(lane) => (
                Phase::Failed,
                lane.task.reason.clone().unwrap_or_else(|| RunReason::ContainerFailed.into()),
                format!("task index {}: {}; {tally}", lane.index, lane.task.message.as_deref().unwrap_or_default()),
            ),
            None if unknown > 0 => (
                Phase::Unknown,
                RunReason::OutcomeUnknown.into(),
                format!("the outcome of {unknown} task(s) is unknown; {tally}"),
            ),
            None => (Phase::Succeeded, RunReason::Succeeded.into(), format!("all {count} tasks succeeded")),
        }
    } else if view.spec.stop && active > 0 {
        (Phase::Stopping, RunReason::Stopped.into(), format!("stopping (spec.stop); {tally}"))
    } else if let Some(hold) = view.hold().filter(|_| active > 0) {
        (Phase::Stopping, hold.outcome().into(), format!("{}: stopping the tasks; {tally}", hold.describe()))
    } else if view.hold() == Some(Hold::Suspended) {
        (
            Phase::Pending,
            RunReason::Suspended.into(),
            format!("suspended (spec.suspend): nothing launches until it is cleared; {tally}"),
        )
    } else if let Some(Hold::Queued(kueue)) = view.hold() {
        (
            Phase::Pending,
            RunReason::Queued.into(),
            format!("queued: nothing launches until Kueue admits the run ({kueue}); {tally}"),
        )
    } else if view.deadline_passed(now) && active > 0 {
        (Phase::Stopping, RunReason::DeadlineExceeded.into(), format!("timeout exceeded; stopping; {tally}"))
    } else if enough(view, &status) {
        (Phase::Stopping, RunReason::NotNeeded.into(), format!("enough tasks succeeded; stopping the rest; {tally}"))
    } else if over_budget {
        let most = view.spec.retry_policy.max_failed_indexes.unwrap_or_default();
        (
            Phase::Stopping,
            RunReason::MaxFailedIndexesExceeded.into(),
            format!("{failed} tasks failed, more than maxFailedIndexes ({most}); stopping the others; {tally}"),
        )
    } else if failing(view, &status) {
        let culprit = first_failure(&status).map_or(0, |t| t.index);
        (
            Phase::Stopping,
            RunReason::FailFast.into(),
            format!("task index {culprit} failed; stopping the others; {tally}"),
        )
    } else if running > 0 {
        (Phase::Running, RunReason::TaskRunning.into(), tally)
    } else if active > 0 {
        (Phase::Pending, RunReason::Launching.into(), tally)
    } else {
        (Phase::Pending, RunReason::WaitingToRetry.into(), tally)
    };
    // A run whose outcome is decided keeps its first verdict's time: set_phase only moves
    // lastTransitionTime when a condition flips.
    set_phase(view, &mut status, phase, reason, message, now);
    status.task.next_attempt_at = None;
    status
}

#[cfg(test)]
mod tests;
