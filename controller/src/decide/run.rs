//! One reconcile of a run, whatever its count, as data. A run of one task is a run of one lane.
//!
//! 1. `steps`: which lanes act now (launch, look for, adopt or look at their task, conclude, wait).
//! 2. `begin`: the effects before anything is observed: the launch intents written, then each lane's
//!    observation. Intents come first, so a restart that finds one looks for the task before launching.
//! 3. `finish`: what the observations mean, as the effects that carry it out, in order: log tails read,
//!    tasks followed, StopTasks, the status written (stopping what was just launched if the run is gone),
//!    Events, and when to come back.
//!
//! The shell interprets the effects in that order and decides nothing; tests check the order here.

use std::time::Duration;

use jiff::Timestamp;

use super::batch::{self, BatchPlan};
use super::results::ResultRead;
use super::{
    Event, Follow, LaunchObservation, LogRead, Plan, RunView, Step, StopTask, TrackObservation, adoptable, after_adopt,
    after_find, after_launch, after_track, condition, duration_between, launch_held_up, launch_intent,
};
use crate::api::{EcsTaskRunStatus, Phase};
use crate::ecs::TaskSnapshot;

/// A run following a task comes back at least this often even if the tracker reports nothing: a cheap
/// safety net (it reads the tracker, not ECS).
pub const FOLLOW_RESYNC: Duration = Duration::from_secs(15 * 60);
/// How soon a run that just sent StopTask (or found itself being deleted while launching) looks again.
pub const STOP_RECHECK: Duration = Duration::from_secs(2);

/// What the lanes of a run do this time.
#[derive(Clone, Debug, PartialEq)]
pub struct Steps {
    /// Each acting lane's step, lowest index first.
    pub acting: Vec<(u32, Step)>,
    /// How long until each lane waiting out a retry backoff is due.
    pub waits: Vec<Duration>,
}

impl Steps {
    /// Nothing acts and nothing waits: the run is final (or follows nothing it could act on).
    pub fn is_idle(&self) -> bool {
        self.acting.is_empty() && self.waits.is_empty()
    }

    /// Whether a lane launches or adopts a task: the EcsRunPolicies are asked first.
    pub fn launches(&self) -> bool {
        self.acting.iter().any(|(_, step)| matches!(step, Step::Launch { .. } | Step::Adopt { .. }))
    }

    /// Whether a lane needs ECS (and so the run's region and credentials).
    pub fn need_ecs(&self) -> bool {
        self.acting.iter().any(|(_, step)| {
            matches!(step, Step::Launch { .. } | Step::Track { .. } | Step::Find { .. } | Step::Adopt { .. })
        })
    }

    /// The lanes about to send RunTask, with their attempts: each records its intent (and when) first.
    fn sending_run_task(&self) -> Vec<(u32, i32)> {
        self.acting
            .iter()
            .filter_map(|(index, step)| match step {
                Step::Launch { attempt, .. } => Some((*index, *attempt)),
                _ => None,
            })
            .collect()
    }
}

/// Which lanes act now.
pub fn steps(view: &RunView, now: Timestamp) -> Steps {
    if view.status.task.phase.is_some_and(Phase::is_terminal) {
        return Steps { acting: Vec::new(), waits: Vec::new() };
    }
    let all = if view.spec.count > 1 { batch::next_steps(view, now) } else { vec![(0, super::next_step(view, now))] };
    let mut steps = Steps { acting: Vec::new(), waits: Vec::new() };
    for (index, step) in all {
        match step {
            Step::Idle => {}
            Step::Wait(after) => steps.waits.push(after),
            step => steps.acting.push((index, step)),
        }
    }
    steps
}

/// Lane `index`'s status as the single-task decision reads and writes it: the run's own for a run of one
/// task.
pub fn lane_status(view: &RunView, index: u32) -> EcsTaskRunStatus {
    if view.spec.count > 1 { batch::lane_status(view.status, index) } else { view.status.clone() }
}

/// What the shell does before it observes anything (`begin`), in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Opening {
    /// Write the launch intents before any RunTask. A run the answer shows being deleted launches nothing
    /// (its deletion, which sees the intent, looks for the task): the reconcile ends there.
    WriteIntent(EcsTaskRunStatus),
    /// Observe lane `index` as `step` says: launch (after looking for an earlier try's task if it may
    /// exist), look for a task, adopt one, or read what the tracker last saw. Every `Observe` of a
    /// reconcile runs concurrently, after the writes before them; what they saw goes to `finish`.
    Observe { index: u32, step: Step },
}

/// One thing the shell does for a run once it has observed (`finish`, `idle`), in the order the decision
/// lists them.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Read these failed containers' last lines into the status and Events written after (`attach`).
    ReadLogs(Vec<LogRead>),
    /// Follow exactly these tasks, each described every its interval; none: forget the run's tasks.
    Follow(Vec<Follow>),
    /// Tasks RunTask or an adoption just reported: the tracker takes them as its latest observation.
    Record(Vec<TaskSnapshot>),
    /// StopTask; the tracker takes the answer.
    StopTask(StopTask),
    /// Write the status by server-side apply, if it differs from the object's. Tasks in `stop_if_gone`
    /// were launched or adopted by this reconcile: if the run is gone (404) no finalizer can stop them,
    /// so the shell stops them.
    WriteStatus {
        status: EcsTaskRunStatus,
        stop_if_gone: Vec<String>,
    },
    Publish(Event),
    /// When the run comes back.
    ComeBack(ComeBack),
    /// Delete the run, as the one decided on (its uid a precondition): its `ttlSecondsAfterFinished` has
    /// passed. Its finalizer sees the deletion through.
    DeleteRun,
}

/// When the run is reconciled again (besides any change of the object or of its tasks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComeBack {
    After(Duration),
    /// At the follow resync, as a safety net.
    Resync,
    /// Only when something changes.
    OnChange,
}

/// The effects before anything is observed: the launch intents (unless the policies refuse the launch,
/// or no region is known yet), then one `Observe` per acting lane that needs ECS.
pub fn begin(view: &RunView, steps: &Steps, region: Option<&str>, launch_denied: bool, now: Timestamp) -> Vec<Opening> {
    let mut effects = Vec::new();
    let sending = steps.sending_run_task();
    if let (Some(region), false, false) = (region, sending.is_empty(), launch_denied) {
        let intent = if view.spec.count > 1 {
            batch::launch_intents(view, &sending, region, now)
        } else {
            launch_intent(view, sending[0].1, region, now)
        };
        effects.push(Opening::WriteIntent(intent));
    }
    effects.extend(
        steps
            .acting
            .iter()
            .filter(|(_, step)| !matches!(step, Step::Conclude(_)))
            .map(|(index, step)| Opening::Observe { index: *index, step: step.clone() }),
    );
    effects
}

/// What observing a lane found.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// What launching (or, for `Adopt`, the policies or ECS refusing it) came to.
    Launched(LaunchObservation),
    /// The task a `Find` looked for, if ECS has one.
    Found(Option<TaskSnapshot>),
    /// The task an `Adopt` described in `region`, if ECS knows it.
    Adopted { task: Option<TaskSnapshot>, region: String },
    /// What the tracker last saw of the lane's task.
    Tracked(TrackObservation),
    /// The tracker has not described the task since this replica began following it: its next sweep
    /// does, and the answer brings the run back.
    NotSeenYet,
    /// An error held the lane up (`reason`, `cause`); it is retried with backoff.
    HeldUp { reason: &'static str, cause: String },
}

/// The result logs to read before `finish` judges `observed`: those of each stopped task that succeeded,
/// for a run with `spec.results` (`results::reads`).
pub fn result_reads(view: &RunView, observed: &[(u32, Observation)], now: Timestamp) -> Vec<ResultRead> {
    if view.spec.results.is_none() {
        return Vec::new();
    }
    let mut reads = Vec::new();
    for (index, observation) in observed {
        let Observation::Tracked(TrackObservation::Found { task, containers }) = observation else { continue };
        if !task.is_stopped() {
            continue;
        }
        let lane = lane_status(view, *index);
        let lane_view = RunView { index: *index, status: &lane, ..*view };
        let (verdict, _) = super::judge::judge_stopped(&lane_view, task, containers.as_deref(), now);
        if verdict == super::judge::Verdict::Succeeded {
            reads.extend(super::results::reads(&lane_view, task, containers.as_deref()));
        }
    }
    reads
}

/// What the lanes' observations mean, as effects in the order the shell carries them out.
/// `observed`: each observed lane's index and what was seen; `steps` as given to `begin` (whose
/// `Conclude` steps decided without observing).
pub fn finish(view: &RunView, steps: &Steps, observed: Vec<(u32, Observation)>, now: Timestamp) -> Vec<Effect> {
    let mut plans: Vec<(u32, Plan)> = Vec::new();
    let mut unseen = Vec::new();
    let mut seen = Vec::new();
    for (index, step) in &steps.acting {
        let lane = lane_status(view, *index);
        let lane_view = RunView { index: *index, status: &lane, ..*view };
        let observation = observed.iter().find(|(i, _)| i == index).map(|(_, observation)| observation.clone());
        let plan = match (step, observation) {
            (Step::Conclude(plan), _) => Some(plan.clone()),
            (Step::Launch { attempt, .. }, Some(Observation::Launched(observation))) => {
                seen.extend(launched_task(&observation));
                Some(after_launch(&lane_view, *attempt, observation, now))
            }
            (Step::Adopt { .. }, Some(Observation::Launched(observation))) => {
                Some(after_launch(&lane_view, 1, observation, now))
            }
            (Step::Adopt { .. }, Some(Observation::Adopted { task, region })) => {
                // A task refused adoption is neither followed nor ever stopped by this run.
                seen.extend(task.clone().filter(|task| adoptable(&lane_view, task).is_ok()));
                Some(after_adopt(&lane_view, task, &region, now))
            }
            (Step::Find { attempt }, Some(Observation::Found(task))) => {
                seen.extend(task.clone());
                Some(after_find(&lane_view, *attempt, task, now))
            }
            (Step::Track { .. }, Some(Observation::Tracked(observation))) => {
                Some(after_track(&lane_view, observation, now))
            }
            // Its task is still followed; the next look tries again.
            (Step::Track { task_arn, every }, Some(Observation::NotSeenYet | Observation::HeldUp { .. })) => {
                unseen.push(Follow { task_arn: task_arn.clone(), every: *every });
                None
            }
            // The lane says why it has not launched, and the launch is retried.
            (Step::Launch { .. } | Step::Adopt { .. }, Some(Observation::HeldUp { reason, cause })) => Some(Plan {
                status: launch_held_up(&lane_view, reason, &cause, now),
                stop: None,
                events: Vec::new(),
                follow: None,
                requeue: None,
                logs: Vec::new(),
            }),
            _ => None,
        };
        plans.extend(plan.map(|plan| (*index, plan)));
    }
    let mut merged = if view.spec.count > 1 {
        batch::merge(view, plans, &steps.waits, now)
    } else {
        single(view, plans.pop().map(|(_, plan)| plan), &steps.waits)
    };
    if !merged.status.task.phase.is_some_and(Phase::is_terminal) {
        merged.follows.extend(unseen);
    }
    let expiry = expiry(view, &merged.status, now);
    let mut effects = effects(merged, seen);
    // A run that has just finished is not reconciled again on its own status write: its TTL is set here.
    if let (Some(expiry), Some(last)) = (expiry, effects.last_mut())
        && matches!(last, Effect::ComeBack(ComeBack::OnChange | ComeBack::Resync))
    {
        *last = expiry;
    }
    effects
}

/// How soon a finished run kept past `ttlSecondsAfterFinished` (its schedule has not recorded its slot)
/// is looked at again.
pub const SLOT_RECHECK: Duration = Duration::from_secs(10);

/// The effects of a run with nothing to do: follow nothing; with `ttlSecondsAfterFinished`, delete the run
/// once that long has passed since it finished (come back then until it has); else come back on a change.
pub fn idle(view: &RunView, now: Timestamp) -> Vec<Effect> {
    let last = expiry(view, view.status, now).unwrap_or(Effect::ComeBack(ComeBack::OnChange));
    vec![Effect::Follow(Vec::new()), last]
}

/// For a finished run with `ttlSecondsAfterFinished`: delete it if that long has passed since it
/// finished, else come back when it will have. None: the run is kept.
fn expiry(view: &RunView, status: &EcsTaskRunStatus, now: Timestamp) -> Option<Effect> {
    let ttl = Duration::from_secs(view.spec.ttl_seconds_after_finished?.max(0) as u64);
    let finished = finished_at(status)?;
    let at = finished.checked_add(ttl).unwrap_or(finished);
    Some(if at <= now { Effect::DeleteRun } else { Effect::ComeBack(ComeBack::After(duration_between(now, at))) })
}

/// When the run reached its final phase: when its `Succeeded` (or, failed or unknown, its `Stalled`)
/// condition turned True. None while it runs.
pub fn finished_at(status: &EcsTaskRunStatus) -> Option<Timestamp> {
    let final_condition = match status.task.phase? {
        Phase::Succeeded => condition::SUCCEEDED,
        Phase::Failed | Phase::Unknown => condition::STALLED,
        _ => return None,
    };
    status
        .conditions
        .iter()
        .find(|condition| condition.type_ == final_condition && condition.status == "True")
        .map(|condition| condition.last_transition_time.0)
}

/// What an error before any lane acted (the policies or the credentials unreadable) leaves in a launching
/// run's status: why it has not launched. None when nothing launches (nothing to say) or nothing changes.
pub fn held_up(
    view: &RunView,
    steps: &Steps,
    reason: &'static str,
    cause: &str,
    now: Timestamp,
) -> Option<EcsTaskRunStatus> {
    if !steps.launches() {
        return None;
    }
    Some(launch_held_up(view, reason, cause, now)).filter(|status| status != view.status)
}

fn launched_task(observation: &LaunchObservation) -> Option<TaskSnapshot> {
    match observation {
        LaunchObservation::Started(task) | LaunchObservation::Adopted(task) => Some(task.clone()),
        _ => None,
    }
}

/// A run of one task: its lane's plan is the run's.
fn single(view: &RunView, plan: Option<Plan>, waits: &[Duration]) -> BatchPlan {
    let soonest_wait = waits.iter().min().copied();
    match plan {
        Some(plan) => BatchPlan {
            status: plan.status,
            stops: plan.stop.into_iter().collect(),
            events: plan.events,
            follows: plan.follow.into_iter().collect(),
            requeue: match (plan.requeue, soonest_wait) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            logs: plan.logs,
        },
        None => BatchPlan {
            status: view.status.clone(),
            stops: Vec::new(),
            events: Vec::new(),
            follows: Vec::new(),
            requeue: soonest_wait,
            logs: Vec::new(),
        },
    }
}

fn effects(plan: BatchPlan, seen: Vec<TaskSnapshot>) -> Vec<Effect> {
    let mut effects = Vec::new();
    if !plan.logs.is_empty() {
        effects.push(Effect::ReadLogs(plan.logs));
    }
    let following = !plan.follows.is_empty();
    effects.push(Effect::Follow(plan.follows));
    if !seen.is_empty() {
        effects.push(Effect::Record(seen.clone()));
    }
    let stopping = !plan.stops.is_empty();
    effects.extend(plan.stops.into_iter().map(Effect::StopTask));
    let stop_if_gone = seen.iter().filter(|task| !task.is_stopped()).map(|task| task.task_arn.clone()).collect();
    effects.push(Effect::WriteStatus { status: plan.status, stop_if_gone });
    effects.extend(plan.events.into_iter().map(Effect::Publish));
    // StopTask's answer is news the decision has not seen (the task may even be STOPPED already): look
    // again shortly, once the status written is back in the cache.
    let come_back = match (stopping, plan.requeue, following) {
        (true, _, _) => ComeBack::After(STOP_RECHECK),
        (false, Some(after), _) => ComeBack::After(after),
        (false, None, true) => ComeBack::Resync,
        (false, None, false) => ComeBack::OnChange,
    };
    effects.push(Effect::ComeBack(come_back));
    effects
}

/// Puts what reading `read` gave into the status and the Events still to be written.
pub fn attach_log_tail(effects: &mut [Effect], read: &LogRead, result: Result<Vec<String>, String>) {
    let mut events: Vec<Event> = effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Publish(event) => Some(event.clone()),
            _ => None,
        })
        .collect();
    let Some(Effect::WriteStatus { status, .. }) =
        effects.iter_mut().find(|effect| matches!(effect, Effect::WriteStatus { .. }))
    else {
        return;
    };
    super::logs::attach(status, &mut events, read, result);
    let mut told = events.into_iter();
    for effect in effects.iter_mut() {
        if let Effect::Publish(event) = effect
            && let Some(new) = told.next()
        {
            *event = new;
        }
    }
}

#[cfg(test)]
mod tests;
