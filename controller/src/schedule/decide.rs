//! What an EcsTaskSchedule does now, as a pure function of the schedule, its runs and the time: which run
//! to create (one per slot, named by the slot), which runs to delete (replaced, or past the history
//! limits), its status and its Events. The shell only carries it out.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::cron::{Due, MISSED_SLOTS_COUNTED, Slots};
use crate::api::{ActiveRun, ConcurrencyPolicy, EcsTaskScheduleSpec, EcsTaskScheduleStatus};
use crate::decide::condition::{self, Wanted, merged};
use crate::decide::{Event, duration_between};

/// Reasons of the schedule's conditions and Events.
pub mod reason {
    pub const SCHEDULING: &str = "Scheduling";
    pub const SUSPENDED: &str = "Suspended";
    pub const INVALID_SCHEDULE: &str = "InvalidSchedule";
    pub const RUN_CREATED: &str = "RunCreated";
    pub const MISSED_SLOTS: &str = "MissedSlots";
    pub const TOO_LATE: &str = "SlotTooLate";
    pub const RUN_STILL_ACTIVE: &str = "RunStillActive";
    pub const REPLACED: &str = "RunReplaced";
    pub const HISTORY: &str = "RunDeletedByHistoryLimit";
}

/// A run the schedule owns, as the decision needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRun {
    pub name: String,
    pub uid: String,
    /// The slot it was created for (absent for a manual trigger).
    pub slot: Option<Timestamp>,
    pub state: RunState,
    /// Being deleted already: neither active nor history.
    pub deleting: bool,
}

/// Where an owned run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Active,
    Succeeded {
        finished_at: Timestamp,
    },
    /// Failed or Unknown.
    Failed {
        finished_at: Timestamp,
    },
}

/// The schedule as the decision sees it.
#[derive(Clone, Copy, Debug)]
pub struct ScheduleView<'a> {
    pub generation: Option<i64>,
    pub created_at: Timestamp,
    pub spec: &'a EcsTaskScheduleSpec,
    pub status: &'a EcsTaskScheduleStatus,
    pub runs: &'a [OwnedRun],
}

/// Something the shell does, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduleEffect {
    /// Create the run for `slot`: AlreadyExists means a replica or an earlier reconcile did, and is success.
    CreateRun { slot: Timestamp },
    /// Delete a run (with its uid as precondition): replaced under `Replace`, or past a history limit.
    DeleteRun { name: String, uid: String, reason: &'static str },
}

/// What to do, write and tell.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulePlan {
    pub effects: Vec<ScheduleEffect>,
    pub status: EcsTaskScheduleStatus,
    pub events: Vec<Event>,
    /// Come back for the next slot (absent: only a change brings the schedule back).
    pub requeue_after: Option<Duration>,
    /// Slots passed over this time (missed while down or suspended, too late, or forbidden): a metric.
    pub missed: usize,
}

/// Decides the schedule at `now`.
pub fn decide(view: &ScheduleView, now: Timestamp) -> SchedulePlan {
    let spec = view.spec;
    let previous = view.status;
    let mut status = EcsTaskScheduleStatus {
        last_successful_time: last_successful(previous, view.runs),
        active: active(view.runs),
        observed_generation: view.generation,
        ..previous.clone()
    };
    status.active_count = Some(status.active.len() as i32);
    let mut plan = SchedulePlan { effects: Vec::new(), status, events: Vec::new(), requeue_after: None, missed: 0 };
    let slots = match Slots::new(&spec.schedule, spec.time_zone.as_deref()) {
        Ok(slots) => slots,
        Err(error) => {
            let message = error.to_string();
            if !condition_is(previous, condition::STALLED, "True", &message) {
                plan.events.push(Event { warning: true, reason: reason::INVALID_SCHEDULE, note: message.clone() });
            }
            plan.status.next_schedule_time = None;
            plan.status.conditions = merged(
                &previous.conditions,
                vec![
                    (condition::READY, "False", reason::INVALID_SCHEDULE, message.clone()),
                    (condition::STALLED, "True", reason::INVALID_SCHEDULE, message),
                ],
                view.generation,
                now,
            );
            return plan;
        }
    };
    // Slots up to `handled` are dealt with: run, passed over, or from before the creation or the last
    // edit of the schedule (an edit never fires a slot from before it).
    let observed = observed_schedule(spec);
    let handled_before = match &previous.observed_schedule {
        Some(seen) if *seen == observed => previous.scheduled_since.as_ref().map_or(view.created_at, |t| t.0),
        Some(_) => now,
        None => previous.scheduled_since.as_ref().map_or(view.created_at, |t| t.0),
    };
    let last_slot_run = view.runs.iter().filter_map(|run| run.slot).max();
    let mut handled = [Some(handled_before), previous.last_schedule_time.as_ref().map(|t| t.0), last_slot_run]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(view.created_at);
    plan.status.observed_schedule = Some(observed);
    plan.status.last_schedule_time =
        [previous.last_schedule_time.as_ref().map(|t| t.0), last_slot_run].into_iter().flatten().max().map(Time);

    if !spec.suspend {
        let due = slots.due(handled, now);
        if let Some(slot) = due.latest {
            handled = slot;
            take_slot(view, &mut plan, due, slot, now);
        }
    }
    plan.status.scheduled_since = Some(Time(handled));
    prune_history(view, &mut plan);

    let next = (!spec.suspend).then(|| slots.next_after(now.max(handled))).flatten();
    plan.status.next_schedule_time = next.map(Time);
    plan.requeue_after = next.map(|next| duration_between(now, next));
    let zone = spec.time_zone.as_deref().unwrap_or("UTC");
    let wanted: Vec<Wanted> = if spec.suspend {
        let message = "suspended: no new runs until spec.suspend is cleared".to_owned();
        vec![
            (condition::READY, "True", reason::SUSPENDED, message.clone()),
            (condition::STALLED, "False", reason::SUSPENDED, message.clone()),
            (condition::SUSPENDED, "True", reason::SUSPENDED, message),
        ]
    } else {
        let message = match next {
            Some(next) => {
                format!("next run at {} ({zone})", next.to_zoned(slots.zone().clone()).strftime("%Y-%m-%d %H:%M %Z"))
            }
            None => "the schedule has no slot left".to_owned(),
        };
        vec![
            (condition::READY, "True", reason::SCHEDULING, message.clone()),
            (condition::STALLED, "False", reason::SCHEDULING, message.clone()),
            (condition::SUSPENDED, "False", reason::SCHEDULING, message),
        ]
    };
    plan.status.conditions = merged(&previous.conditions, wanted, view.generation, now);
    plan
}

/// The due slot `slot` (the latest of `due`): run it, or pass it over when too late or forbidden.
fn take_slot(view: &ScheduleView, plan: &mut SchedulePlan, due: Due, slot: Timestamp, now: Timestamp) {
    let spec = view.spec;
    if due.count > 1 {
        let missed = due.count - 1;
        plan.missed += missed;
        let count = if due.count > MISSED_SLOTS_COUNTED {
            format!("more than {MISSED_SLOTS_COUNTED}")
        } else {
            missed.to_string()
        };
        plan.events.push(Event {
            warning: true,
            reason: reason::MISSED_SLOTS,
            note: format!(
                "missed {count} slot(s) (controller down or schedule suspended); only the latest, {slot}, is considered"
            ),
        });
    }
    let late = duration_between(slot, now);
    if let Some(deadline) = spec.starting_deadline_seconds
        && late.as_secs() > deadline.max(0) as u64
    {
        plan.missed += 1;
        plan.events.push(Event {
            warning: true,
            reason: reason::TOO_LATE,
            note: format!(
                "slot {slot} passed over: {}s late, past startingDeadlineSeconds ({deadline})",
                late.as_secs()
            ),
        });
        return;
    }
    let active: Vec<&OwnedRun> = view.runs.iter().filter(|run| is_active(run)).collect();
    match spec.concurrency_policy {
        ConcurrencyPolicy::Forbid if !active.is_empty() => {
            plan.missed += 1;
            let names: Vec<&str> = active.iter().map(|run| run.name.as_str()).collect();
            plan.events.push(Event {
                warning: false,
                reason: reason::RUN_STILL_ACTIVE,
                note: format!("slot {slot} passed over (concurrencyPolicy Forbid): {} still active", names.join(", ")),
            });
            return;
        }
        ConcurrencyPolicy::Replace => {
            for run in &active {
                plan.effects.push(ScheduleEffect::DeleteRun {
                    name: run.name.clone(),
                    uid: run.uid.clone(),
                    reason: reason::REPLACED,
                });
                plan.events.push(Event {
                    warning: false,
                    reason: reason::REPLACED,
                    note: format!("run {} deleted (its tasks stopped) for the run of slot {slot}", run.name),
                });
            }
            plan.status.active.clear();
            plan.status.active_count = Some(0);
        }
        _ => {}
    }
    plan.effects.push(ScheduleEffect::CreateRun { slot });
    plan.status.last_schedule_time = Some(Time(slot));
}

/// Deletes the oldest finished runs past the history limits, and only runs whose slot is recorded in
/// the status already written: a run deleted before its slot is recorded could be created again.
fn prune_history(view: &ScheduleView, plan: &mut SchedulePlan) {
    let recorded = view.status.last_schedule_time.as_ref().map(|t| t.0);
    let prunable = |run: &&OwnedRun| !run.deleting && run.slot.is_none_or(|slot| recorded.is_some_and(|r| slot <= r));
    let mut succeeded: Vec<(&OwnedRun, Timestamp)> = Vec::new();
    let mut failed: Vec<(&OwnedRun, Timestamp)> = Vec::new();
    for run in view.runs.iter().filter(prunable) {
        match run.state {
            RunState::Succeeded { finished_at } => succeeded.push((run, finished_at)),
            RunState::Failed { finished_at } => failed.push((run, finished_at)),
            RunState::Active => {}
        }
    }
    let limits = [(succeeded, view.spec.successful_runs_history_limit), (failed, view.spec.failed_runs_history_limit)];
    for (mut runs, limit) in limits {
        runs.sort_by(|a, b| (b.1, &b.0.name).cmp(&(a.1, &a.0.name)));
        for (run, _) in runs.into_iter().skip(limit.max(0) as usize) {
            plan.effects.push(ScheduleEffect::DeleteRun {
                name: run.name.clone(),
                uid: run.uid.clone(),
                reason: reason::HISTORY,
            });
        }
    }
}

fn is_active(run: &OwnedRun) -> bool {
    run.state == RunState::Active && !run.deleting
}

fn active(runs: &[OwnedRun]) -> Vec<ActiveRun> {
    let mut active: Vec<ActiveRun> = runs
        .iter()
        .filter(|run| is_active(run))
        .map(|run| ActiveRun { name: run.name.clone(), uid: run.uid.clone() })
        .collect();
    active.sort_by(|a, b| a.name.cmp(&b.name));
    active
}

/// The latest finish of a succeeded run: the status's, or a later one among the runs still kept.
fn last_successful(previous: &EcsTaskScheduleStatus, runs: &[OwnedRun]) -> Option<Time> {
    let finished = runs.iter().filter_map(|run| match run.state {
        RunState::Succeeded { finished_at } => Some(finished_at),
        _ => None,
    });
    finished.chain(previous.last_successful_time.as_ref().map(|t| t.0)).max().map(Time)
}

/// `schedule` and `timeZone` as one string: a change of either is an edit.
fn observed_schedule(spec: &EcsTaskScheduleSpec) -> String {
    format!("{} ({})", spec.schedule.trim(), spec.time_zone.as_deref().unwrap_or("UTC"))
}

fn condition_is(status: &EcsTaskScheduleStatus, type_: &str, value: &str, message: &str) -> bool {
    status.conditions.iter().any(|c| c.type_ == type_ && c.status == value && c.message == message)
}

#[cfg(test)]
mod tests;
