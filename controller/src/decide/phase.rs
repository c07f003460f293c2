//! Where a run stands: concluding an attempt (succeeded, failed, retried after a backoff), the phase and
//! the conditions that go with it, and the Events that tell a transition.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::judge::Verdict;
use super::{
    Event, Follow, Hold, MAX_FREE_RETRIES, Plan, RETRY_BASE, RETRY_CAP, RunView, StopTask, bound, is_hold_outcome,
    task_id,
};
use crate::api::{EcsTaskRunStatus, LastStatus, Phase, Reported, RunReason};

/// Ends the current attempt with `verdict` and decides the run: succeeded, failed, or retry after a backoff.
pub(super) fn conclude(
    view: &RunView,
    mut status: EcsTaskRunStatus,
    verdict: Verdict,
    message: String,
    now: Timestamp,
) -> Plan {
    // A stopped run fails as stopped, whatever its task's exit codes say (143: the SIGTERM it was sent);
    // a task that succeeded before the stop reached it keeps its success. An adopted task is never
    // relaunched: ecsrun did not start it.
    let (verdict, message) = match verdict {
        Verdict::Retry { .. } | Verdict::Fail { .. } if view.spec.stop => {
            (Verdict::Fail { reason: RunReason::Stopped }, format!("stopped (spec.stop): {message}"))
        }
        Verdict::Retry { reason, .. } if view.adopts() => {
            (Verdict::Fail { reason }, format!("{message}; not relaunched: ecsrun did not start this task"))
        }
        verdict => (verdict, message),
    };
    let outcome = match verdict {
        Verdict::Succeeded => RunReason::Succeeded,
        Verdict::Unknown => RunReason::OutcomeUnknown,
        Verdict::Retry { reason, .. } | Verdict::Fail { reason } => reason,
    };
    if let Some(attempt) = status.task.attempts.last_mut()
        && attempt.outcome.is_none()
    {
        attempt.outcome = Some(outcome.into());
        attempt.message = Some(bound::capped(&message, bound::MAX_MESSAGE_BYTES).to_owned());
    }
    status.task.next_attempt_at = None;
    match verdict {
        Verdict::Succeeded => {
            set_phase(view, &mut status, Phase::Succeeded, RunReason::Succeeded, message, now);
            plan(view, status, None, None, None)
        }
        Verdict::Fail { reason } => {
            set_phase(view, &mut status, Phase::Failed, reason, message, now);
            plan(view, status, None, None, None)
        }
        Verdict::Unknown => {
            set_phase(view, &mut status, Phase::Unknown, RunReason::OutcomeUnknown, message, now);
            plan(view, status, None, None, None)
        }
        // Resumed (or admitted again) while the hold's stop was under way: the resume's own reconcile has
        // passed, and status writes bring nothing back, so this one comes back to launch (once the cache
        // holds it).
        Verdict::Retry { reason, .. } if is_hold_outcome(reason) => match view.hold() {
            Some(hold) => plan(view, held_status(view, status, hold, message, now), None, None, None),
            None => {
                let was = if reason == RunReason::Evicted { Hold::Queued("evicted") } else { Hold::Suspended };
                plan(view, held_status(view, status, was, message, now), None, None, Some(RESUME_RECHECK))
            }
        },
        Verdict::Retry { reason, counted } => {
            let tally = bound::failures(&status.task);
            let limit = view.spec.retry_policy.backoff_limit.max(0) as usize;
            if counted && tally.counted() > limit {
                let message = format!(
                    "{message}; giving up after {} attempt(s) (backoffLimit {limit})",
                    bound::attempts_made(&status.task)
                );
                let final_reason = if limit == 0 { reason } else { RunReason::BackoffLimitExceeded };
                set_phase(view, &mut status, Phase::Failed, final_reason, message, now);
                return plan(view, status, None, None, None);
            }
            if !counted && tally.uncounted > MAX_FREE_RETRIES {
                let message = format!("{message}; giving up after {} retries of this kind", tally.uncounted);
                set_phase(view, &mut status, Phase::Failed, reason, message, now);
                return plan(view, status, None, None, None);
            }
            if let Some(hold) = view.hold() {
                // The attempt failed on its own while the run was being held: counted, not retried now.
                return plan(view, held_status(view, status, hold, message, now), None, None, None);
            }
            // Invalid, it failed the run before anything launched (`invalid_duration`).
            let first = view.spec.retry_policy.backoff.as_ref().and_then(|backoff| backoff.get().ok());
            let backoff = retry_backoff(tally.failed, first.unwrap_or(RETRY_BASE));
            let next = now.checked_add(backoff).unwrap_or(now);
            status.task.next_attempt_at = Some(Time(next));
            let message =
                format!("{message}; attempt {} in {}s", bound::attempts_made(&status.task) + 1, backoff.as_secs());
            set_phase(view, &mut status, Phase::Pending, RunReason::WaitingToRetry, message, now);
            plan(view, status, None, None, Some(backoff))
        }
    }
}

/// How soon a run resumed during its hold's stop comes back to launch.
const RESUME_RECHECK: Duration = Duration::from_secs(1);

/// A held run with nothing running: Pending, reason Suspended (until `spec.suspend` is cleared) or
/// Queued (until Kueue admits it). An Event tells the run's entering the hold.
pub(super) fn held(view: &RunView, status: EcsTaskRunStatus, hold: Hold, why: String, now: Timestamp) -> Plan {
    let mut plan = plan(view, held_status(view, status, hold, why, now), None, None, None);
    if !view.status.task.reason_is(hold.reason()) {
        let note = plan.status.task.message.clone().unwrap_or_default();
        plan.events.push(Event { warning: false, reason: hold.reason().into(), note });
    }
    plan
}

fn held_status(
    view: &RunView,
    mut status: EcsTaskRunStatus,
    hold: Hold,
    why: String,
    now: Timestamp,
) -> EcsTaskRunStatus {
    status.task.next_attempt_at = None;
    let message = match hold {
        Hold::Suspended => format!("suspended (spec.suspend): {why}; nothing launches until it is cleared"),
        Hold::Queued(kueue) => format!("queued: {why}; nothing launches until Kueue admits the run ({kueue})"),
    };
    set_phase(view, &mut status, Phase::Pending, hold.reason(), message, now);
    status
}

/// `first` (`retryPolicy.backoff`, 10s by default), doubled for each failed attempt after the first, capped
/// at 5 minutes.
pub fn retry_backoff(failed_attempts: usize, first: Duration) -> Duration {
    let exponent = failed_attempts.saturating_sub(1).min(16) as u32;
    first.saturating_mul(2u32.saturating_pow(exponent)).min(RETRY_CAP)
}

/// Sets phase, reason, message and the conditions that go with them. A condition keeps its
/// lastTransitionTime unless its status flips, so repeating a decision writes an identical status.
pub(super) fn set_phase(
    view: &RunView,
    status: &mut EcsTaskRunStatus,
    phase: Phase,
    reason: impl Into<Reported<RunReason>>,
    message: String,
    now: Timestamp,
) {
    use super::condition::*;
    let reason: Reported<RunReason> = reason.into();
    let suspended = reason.is(RunReason::Suspended);
    let message = bound::capped(&message, bound::MAX_MESSAGE_BYTES).to_owned();
    status.task.phase = Some(phase);
    status.observed_generation = view.generation;
    // Unknown is metav1.Condition's third status: `kubectl wait --for=condition=Succeeded` (or Failed)
    // does not return for a run whose outcome nobody knows.
    let mut wanted: Vec<(&str, &str)> = match phase {
        Phase::Succeeded => vec![(READY, "True"), (SUCCEEDED, "True")],
        Phase::Failed => vec![(READY, "False"), (STALLED, "True"), (FAILED, "True")],
        Phase::Unknown => vec![(READY, "False"), (STALLED, "True"), (SUCCEEDED, "Unknown"), (FAILED, "Unknown")],
        // Suspended: nothing is under way, so not Reconciling; Ready False keeps kstatus (Flux) waiting
        // for it, as for a Job that Kueue has not admitted yet; Argo CD shows it Suspended.
        Phase::Pending if suspended => vec![(READY, "False"), (SUSPENDED, "True")],
        Phase::Pending | Phase::Running | Phase::Stopping => {
            vec![(READY, "False"), (RECONCILING, "True")]
        }
    };
    // Once suspended, the condition stays, False when the run is not (any more).
    if !suspended && status.conditions.iter().any(|c| c.type_ == SUSPENDED) {
        wanted.push((SUSPENDED, "False"));
    }
    let wanted = wanted.into_iter().map(|(type_, value)| (type_, value, reason.as_str(), message.clone())).collect();
    status.conditions = merged(&status.conditions, wanted, view.generation, now);
    status.task.reason = Some(reason);
    status.task.message = Some(message);
}

/// Builds the plan, with one Event per transition between the old and the new status. Every Event is a
/// write to the API server, so a transition that another Event already tells (a launch seen RUNNING, a
/// stop that decides the run) is folded into it.
pub(super) fn plan(
    view: &RunView,
    mut status: EcsTaskRunStatus,
    stop: Option<StopTask>,
    follow: Option<Follow>,
    requeue: Option<Duration>,
) -> Plan {
    bound::keep_latest_attempts(&mut status.task, bound::KEPT_ATTEMPTS);
    let old = view.status;
    let mut events = Vec::new();
    let normal = |reason, note: String| Event { warning: false, reason, note };
    let launched = status.task.task_arn.is_some() && status.task.task_arn != old.task.task_arn;
    let phase_event = (status.task.phase != old.task.phase || status.task.next_attempt_at != old.task.next_attempt_at)
        && (status.task.phase.is_some_and(Phase::is_terminal)
            || (status.task.phase == Some(Phase::Pending) && status.task.next_attempt_at.is_some()));
    if launched {
        let attempt = status.task.attempts.last().map_or(1, |a| a.attempt);
        let mut note = format!("task {} (attempt {attempt})", status.task.task_id.as_deref().unwrap_or_default());
        if let Some(last_status) = &status.task.last_status {
            note.push_str(&format!(", {last_status}"));
        }
        events.push(normal(if view.adopts() { "Adopted" } else { "Launched" }, note));
    }
    if status.task.last_status != old.task.last_status || launched {
        match status.task.last_status.as_ref().and_then(Reported::known) {
            Some(LastStatus::Running) if !launched => events.push(normal(
                "Running",
                format!("task {} is RUNNING", status.task.task_id.as_deref().unwrap_or_default()),
            )),
            Some(LastStatus::Stopped) if !phase_event => events.push(normal(
                "Stopped",
                format!(
                    "task {} STOPPED: stopCode {} ({}); exit codes {}",
                    status.task.task_id.as_deref().unwrap_or_default(),
                    status.task.stop_code.as_ref().map_or("none", Reported::as_str),
                    status
                        .task
                        .stopped_reason
                        .as_deref()
                        .filter(|reason| !reason.is_empty())
                        .unwrap_or("no reason given"),
                    status.task.exit_codes.as_deref().unwrap_or("none"),
                ),
            )),
            _ => {}
        }
    }
    if let Some(stop) = &stop {
        events.push(normal("Stopping", format!("StopTask {}: {}", task_id(&stop.task_arn), stop.reason)));
    }
    if phase_event {
        let message = status.task.message.clone().unwrap_or_default();
        match status.task.phase {
            Some(Phase::Succeeded) => events.push(normal("Succeeded", message)),
            Some(Phase::Failed) => events.push(Event { warning: true, reason: "Failed", note: message }),
            Some(Phase::Unknown) => events.push(Event { warning: true, reason: "OutcomeUnknown", note: message }),
            Some(Phase::Pending) if status.task.next_attempt_at.is_some() => {
                events.push(Event { warning: true, reason: "Retrying", note: message })
            }
            _ => {}
        }
    }
    Plan { status, stop, events, follow, requeue, logs: Vec::new() }
}
