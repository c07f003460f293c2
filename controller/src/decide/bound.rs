//! Keeping a run's status small. An object must fit in one etcd request (1.5 MiB): past that every
//! status write fails, the run can never conclude, and it is retried forever. So each task keeps its
//! latest attempts one by one and sums the rest, messages are capped, and a run of several tasks that
//! still outgrows its budget gives up detail in a fixed order: first of indexes that are over, never
//! what a decision reads of an index that is not.

use crate::api::{Attempt, EarlierAttempts, EcsTaskRunStatus, IndexedTaskStatus, RunReason, TaskStatus};

/// Attempts kept one by one per task; earlier ones are summed in `earlierAttempts`.
pub const KEPT_ATTEMPTS: usize = 5;
/// The longest message kept (the run's, a task's, an attempt's).
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Tasks of a run of several that keep their failed containers' last lines; the index that failed the run
/// is among them when it failed first, as with failFast.
pub const MAX_TASKS_WITH_LOG_TAILS: usize = 3;
/// Failed containers of a run of several that keep their last lines (each at most 4 KiB).
pub const MAX_LOG_TAILS: usize = 8;
/// What a run of several tasks aims to stay under, serialized: well below the 256 KiB the worst case is
/// tested against, which leaves room for conditions and metadata.
pub const STATUS_BUDGET_BYTES: usize = 192 * 1024;
/// The message an index keeps once the budget needs its detail.
const TERSE_MESSAGE_BYTES: usize = 256;
/// What an index keeps of stoppedReason and exitCodes once the budget needs its detail.
const TERSE_DETAIL_BYTES: usize = 128;

/// The start of `text` that fits in `max` bytes, cut at a character boundary.
pub fn capped(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Attempts made so far, summed ones included.
pub fn attempts_made(task: &TaskStatus) -> i32 {
    task.earlier_attempts.as_ref().map_or(0, |earlier| earlier.count) + task.attempts.len() as i32
}

/// Failed attempts so far, summed ones included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Failures {
    /// Every attempt that ended other than Succeeded.
    pub failed: usize,
    /// Those that do not count against backoffLimit.
    pub uncounted: usize,
}

impl Failures {
    /// Those that count against backoffLimit.
    pub fn counted(&self) -> usize {
        self.failed - self.uncounted
    }
}

/// Whether an attempt's outcome is a failure, and whether it counts against backoffLimit.
fn failure_of(attempt: &Attempt) -> Option<bool> {
    match attempt.outcome.as_ref()?.known() {
        Some(RunReason::Succeeded | RunReason::Suspended | RunReason::Evicted) => None,
        Some(RunReason::InsufficientCapacity | RunReason::Interrupted | RunReason::IgnoredByRule) => Some(false),
        _ => Some(true),
    }
}

pub fn failures(task: &TaskStatus) -> Failures {
    let earlier = task.earlier_attempts.as_ref();
    let mut tally = Failures {
        failed: earlier.map_or(0, |e| e.failed.max(0) as usize),
        uncounted: earlier.map_or(0, |e| e.uncounted.max(0) as usize),
    };
    for counted in task.attempts.iter().filter_map(failure_of) {
        tally.failed += 1;
        tally.uncounted += usize::from(!counted);
    }
    tally
}

/// Sums the oldest attempts into `earlierAttempts` until at most `keep` are listed. Only attempts that are
/// over and whose task is not possibly alive go: deletion stops every listed task not seen STOPPED.
pub fn keep_latest_attempts(task: &mut TaskStatus, keep: usize) {
    while task.attempts.len() > keep.max(1) {
        let Some(position) = task.attempts.iter().position(|attempt| {
            attempt.outcome.is_some() && (attempt.task_arn.is_none() || attempt.stopped_at.is_some())
        }) else {
            return;
        };
        // Never the latest: the task's own fields describe it, and the next attempt's number follows it.
        if position + 1 == task.attempts.len() {
            return;
        }
        let attempt = task.attempts.remove(position);
        let earlier = task.earlier_attempts.get_or_insert_with(EarlierAttempts::default);
        earlier.count += 1;
        if let Some(counted) = failure_of(&attempt) {
            earlier.failed += 1;
            earlier.uncounted += i32::from(!counted);
        }
        if let Some(used) = &attempt.usage {
            let before = earlier.usage.take();
            earlier.usage = super::usage::sum_of([before.as_ref(), Some(used)].into_iter().flatten());
        }
    }
}

/// An index whose task is launched or being launched: decisions read all of it.
fn is_active(lane: &IndexedTaskStatus) -> bool {
    lane.task.attempts.last().is_some_and(|attempt| attempt.outcome.is_none())
}

fn size_of(status: &EcsTaskRunStatus) -> usize {
    serde_json::to_vec(status).map_or(usize::MAX, |bytes| bytes.len())
}

/// Fits a run of several tasks into `budget` bytes, giving up detail in this order until it fits:
/// attempts beyond the latest of indexes that are not active; log tails but those of `culprit` (the
/// index that failed the run); containers (but the culprit's), RunTask failures and long messages of indexes that are not
/// active; attempts beyond the current one and containers of active indexes. What decisions read of a
/// task (its phase, current attempt, task ARN, lastStatus, counters) always stays. Deterministic: the
/// same status fits the same way, so fitting never makes a write of its own.
pub fn fit(status: &mut EcsTaskRunStatus, culprit: Option<i32>, budget: usize) {
    type Stage = fn(&mut IndexedTaskStatus, Option<i32>);
    let stages: [Stage; 4] = [
        |lane, _| {
            if !is_active(lane) {
                keep_latest_attempts(&mut lane.task, 1);
            }
        },
        |lane, culprit| {
            if Some(lane.index) != culprit {
                for container in &mut lane.task.containers {
                    container.log_tail = None;
                }
            }
        },
        |lane, culprit| {
            if !is_active(lane) {
                let task = &mut lane.task;
                if Some(lane.index) != culprit {
                    task.containers.clear();
                }
                task.failures.clear();
                for attempt in &mut task.attempts {
                    // The index's own fields tell the latest; earlier ones are summed.
                    attempt.message = None;
                    attempt.exit_codes = None;
                }
                let terse = |text: &mut Option<String>, max: usize| {
                    if let Some(text) = text {
                        text.truncate(capped(text, max).len());
                    }
                };
                terse(&mut task.message, TERSE_MESSAGE_BYTES);
                terse(&mut task.stopped_reason, TERSE_DETAIL_BYTES);
                terse(&mut task.exit_codes, TERSE_DETAIL_BYTES);
            }
        },
        |lane, _| {
            if is_active(lane) {
                keep_latest_attempts(&mut lane.task, 1);
                lane.task.containers.clear();
            }
        },
    ];
    for stage in stages {
        if size_of(status) <= budget {
            return;
        }
        for lane in &mut status.tasks {
            stage(lane, culprit);
        }
    }
}

/// Whether one more failed container of index `index` may have its last lines read, `reading` being the
/// indexes of the reads already granted this time: at most `MAX_TASKS_WITH_LOG_TAILS` indexes and
/// `MAX_LOG_TAILS` containers of a run hold them.
pub fn may_read_log_tail(status: &EcsTaskRunStatus, index: i32, reading: &[i32]) -> bool {
    let mut holding = 0;
    let mut indexes: Vec<i32> = reading.to_vec();
    for lane in &status.tasks {
        let tails = lane.task.containers.iter().filter(|c| c.log_tail.is_some()).count();
        if tails > 0 {
            holding += tails;
            indexes.push(lane.index);
        }
    }
    indexes.sort_unstable();
    indexes.dedup();
    holding + reading.len() < MAX_LOG_TAILS && (indexes.contains(&index) || indexes.len() < MAX_TASKS_WITH_LOG_TAILS)
}

#[cfg(test)]
mod tests;
