//! Following a launched task: what each look at it means (running, stopped and judged, stopping for a
//! deadline or `spec.stop`, unknown to ECS), and mirroring what ECS reported into the status.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::judge::{Verdict, is_essential, judge_stopped, log_reads, stop_cause};
use super::phase::{conclude, plan, set_phase};
use super::results::{self, Collected};
use super::{
    ECS_REMEMBERS_STOPPED, Event, Follow, MISSING_GRACE, Plan, RunView, STOPPING_POLL, StopTask, TrackObservation,
    current_attempt, duration_between, is_hold_outcome, task_id, usage,
};
use crate::api::{
    ContainerStatus, EcsTaskRunStatus, GoDuration, LastStatus, Phase, Reported, RunReason, StopCause, TaskStatus,
    WaitFor,
};
use crate::ecs::{ContainerDefinitionInfo, TaskSnapshot};

pub fn after_track(view: &RunView, observation: TrackObservation, now: Timestamp) -> Plan {
    let mut status = view.status.clone();
    match observation {
        TrackObservation::Unobservable(error) => {
            // Nothing here can act on the error, and ending the run would abandon a task that may run on:
            // say so, keep following, and carry on as soon as the task can be described again.
            let task_arn =
                current_attempt(&status.task).and_then(|attempt| attempt.task_arn.clone()).unwrap_or_default();
            let every = view.poll_interval();
            let message = format!(
                "cannot describe task {}: {error}; trying again every {}s",
                task_id(&task_arn),
                every.as_secs()
            );
            let phase = status.task.phase.filter(|phase| *phase == Phase::Stopping).unwrap_or(Phase::Running);
            set_phase(view, &mut status, phase, error.kind.reason(), message, now);
            plan(view, status, None, Some(Follow { task_arn, every }), view.until_deadline(now))
        }
        TrackObservation::Missing { observed_at } => {
            let launched_at = current_attempt(&status.task).and_then(|a| a.launched_at.as_ref()).map_or(now, |t| t.0);
            // How long after its launch ECS still did not know the task: a look taken right after the
            // launch (eventual consistency) says nothing, however long ago it was taken.
            let unknown_for = duration_between(launched_at, observed_at.min(now));
            if unknown_for < MISSING_GRACE {
                // Eventual consistency: look again soon, a little later each time.
                let again = (unknown_for / 2).clamp(Duration::from_secs(2), Duration::from_secs(30));
                let every = again.min(view.poll_interval());
                let follow = current_attempt(&status.task)
                    .and_then(|attempt| attempt.task_arn.clone())
                    .map(|task_arn| Follow { task_arn, every });
                return plan(view, status, None, follow, Some(again));
            }
            let id = status.task.task_id.clone().unwrap_or_default();
            if view.spec.stop {
                let message = format!("ECS no longer describes task {id}");
                return conclude(view, status, Verdict::Fail { reason: RunReason::Stopped }, message, now);
            }
            let cause = recorded_stop_cause(&status.task);
            if cause == Some(StopCause::Suspended) {
                let message = format!("task {id} was stopped for the suspension and ECS no longer describes it");
                let verdict = Verdict::Retry { reason: RunReason::Suspended, counted: false };
                return conclude(view, status, verdict, message, now);
            }
            if cause == Some(StopCause::DeadlineExceeded) {
                // The timeout's StopTask went out, and ECS has since forgotten the task.
                let message = format!("timeout exceeded; task {id} was stopped and ECS no longer describes it");
                return conclude(view, status, Verdict::Fail { reason: RunReason::DeadlineExceeded }, message, now);
            }
            if unknown_for >= ECS_REMEMBERS_STOPPED || seen_past_launch(&status) {
                // It may have run to its end and been forgotten (a long outage): relaunching could run the
                // job twice, and failing it could report a success as a failure.
                let last = status.task.last_status.as_ref().map_or("PROVISIONING", Reported::as_str);
                let message = format!(
                    "ECS no longer describes task {id}, last seen {last}: it may have finished more than an \
                     hour before it was looked at; its outcome is unknown and it is not launched again"
                );
                return conclude(view, status, Verdict::Unknown, message, now);
            }
            let message = format!("ECS no longer describes task {id} (unknown for {}s)", unknown_for.as_secs());
            let verdict = Verdict::Retry { reason: RunReason::TaskLost, counted: true };
            conclude(view, status, verdict, message, now)
        }
        TrackObservation::Found { task, .. } if older_than_recorded(&status.task, &task) => {
            // The status records a later look at this task (another replica's, or this one's before its
            // tracker started again): ECS's lifecycle only goes forward, so this look is the older one. The
            // status stands; the task is looked at again soon.
            let every = view.poll_interval().min(STOPPING_POLL);
            let follow = Follow { task_arn: task.task_arn.clone(), every };
            plan(view, status, None, Some(follow), Some(every))
        }
        TrackObservation::Found { task, containers } => {
            record_task(&mut status, &task, containers.as_deref());
            let id = task_id(&task.task_arn);
            if task.is_stopped() {
                return after_stop(view, status, &task, containers.as_deref(), now);
            }
            // Stops the task (unless already asked to stop) and follows it closely until it has.
            let stopping = |mut status: EcsTaskRunStatus, cause: StopCause, why: &str, reason: RunReason, message| {
                let stop = (!task.stop_requested())
                    .then(|| StopTask { task_arn: task.task_arn.clone(), reason: view.stop_reason(cause, why) });
                record_stop_cause(&mut status.task, &task.task_arn, cause);
                set_phase(view, &mut status, Phase::Stopping, reason, message, now);
                let follow = Follow { task_arn: task.task_arn.clone(), every: view.poll_interval().min(STOPPING_POLL) };
                plan(view, status, stop, Some(follow), None)
            };
            if view.spec.stop {
                let message = format!("stopping task {id}: spec.stop is set");
                return stopping(status, StopCause::StopRequested, "stop requested", RunReason::Stopped, message);
            }
            if let Some(hold) = view.hold() {
                let message = format!("stopping task {id}: {}", hold.describe());
                return stopping(status, hold.stop_cause(), hold.stop_why(), hold.outcome(), message);
            }
            if view.deadline_passed(now) {
                let timeout = view.spec.wait.timeout.as_ref().map_or("", GoDuration::as_str);
                let message = format!("timeout of {timeout} exceeded; stopping task {id}");
                return stopping(
                    status,
                    StopCause::DeadlineExceeded,
                    "timeout exceeded",
                    RunReason::DeadlineExceeded,
                    message,
                );
            }
            let last_status = task.last_status_str().unwrap_or("UNKNOWN");
            let started = task.last_is(LastStatus::Running) || task.started_at.is_some();
            let launched_at = current_attempt(&status.task).and_then(|a| a.launched_at.as_ref()).map(|t| t.0);
            let start_deadline = launched_at.and_then(|at| view.start_deadline(at)).filter(|_| !started);
            if start_deadline.is_some_and(|deadline| now >= deadline) {
                let limit = view.spec.wait.start_timeout.as_ref().map_or("", GoDuration::as_str);
                let message =
                    format!("task {id} is still {last_status} after the start timeout of {limit}; stopping it");
                return stopping(
                    status,
                    StopCause::StartTimeout,
                    "start timeout exceeded",
                    RunReason::StartTimeout,
                    message,
                );
            }
            let attempt = current_attempt(&status.task).map_or(1, |a| a.attempt);
            if view.spec.wait.for_ == WaitFor::Running && started {
                let message = format!("task {id} is {last_status} (attempt {attempt})");
                return conclude(view, status, Verdict::Succeeded, message, now);
            }
            let message = format!("task {id} is {last_status} (attempt {attempt})");
            set_phase(view, &mut status, Phase::Running, running_reason(task.last_status.as_ref()), message, now);
            let follow = Follow { task_arn: task.task_arn.clone(), every: view.poll_interval() };
            plan(view, status, None, Some(follow), view.look_again(now, launched_at, started))
        }
    }
}

/// Whether the status already records `task` further along ECS's lifecycle than this look at it shows.
fn older_than_recorded(recorded: &TaskStatus, task: &TaskSnapshot) -> bool {
    // LastStatus is ordered along ECS's lifecycle; a value ECS added later is not compared.
    let known = |last_status: Option<&Reported<LastStatus>>| last_status.and_then(Reported::known);
    recorded.task_arn.as_deref() == Some(task.task_arn.as_str())
        && matches!((known(recorded.last_status.as_ref()), known(task.last_status.as_ref())),
            (Some(recorded), Some(seen)) if seen < recorded)
}

/// The reason of a run whose task has not stopped, by the task's lastStatus.
pub(super) fn running_reason(last_status: Option<&Reported<LastStatus>>) -> RunReason {
    match last_status.and_then(Reported::known) {
        Some(LastStatus::Running) => RunReason::TaskRunning,
        Some(LastStatus::Deactivating | LastStatus::Stopping | LastStatus::Deprovisioning) => RunReason::TaskStopping,
        _ => RunReason::TaskStarting,
    }
}

/// Whether ECS described the task after RunTask answered: it then certainly existed, and MISSING means
/// forgotten, not lost.
pub(super) fn seen_past_launch(status: &EcsTaskRunStatus) -> bool {
    let starting =
        |last: &Reported<LastStatus>| matches!(last.known(), Some(LastStatus::Provisioning | LastStatus::Pending));
    status.task.started_at.is_some() || status.task.last_status.as_ref().is_some_and(|last| !starting(last))
}

/// Mirrors what ECS reports about the task into the status and the current attempt.
/// A stopped task judged: its verdict, its results (a run with `spec.results`) and the failed containers'
/// last lines to read. CloudWatch Logs may hold a task's last lines for a few seconds after it stops
/// (`results::RESULTS_GRACE`): a required result missing before then is looked for again then, and a
/// failed container's tail is read only then.
fn after_stop(
    view: &RunView,
    mut status: EcsTaskRunStatus,
    task: &TaskSnapshot,
    containers: Option<&[ContainerDefinitionInfo]>,
    now: Timestamp,
) -> Plan {
    let id = task_id(&task.task_arn);
    // Still followed while it settles: the tracker keeps what it saw for the look after.
    let follow = |after: Duration| Follow { task_arn: task.task_arn.clone(), every: after.max(STOPPING_POLL) };
    let (verdict, message) = judge_stopped(view, task, containers, now);
    let mut told = Vec::new();
    let (verdict, message) = match verdict {
        // A task that succeeded before a stop reached it keeps its success, and so its results.
        Verdict::Succeeded if view.spec.results.is_some() => match results::collect(view, task, now) {
            Collected::Wait { after, why } => {
                let message = format!("task {id} stopped; waiting for its results: {why}");
                set_phase(view, &mut status, Phase::Stopping, RunReason::TaskStopping, message, now);
                return plan(view, status, None, Some(follow(after)), Some(after));
            }
            Collected::Done { values, refused, missing, why_missing } => {
                status.task.results = values;
                let mut message = message;
                if !refused.is_empty() {
                    let refusals = format!("results refused: {}", refused.join("; "));
                    message = format!("{message}; {refusals}");
                    told.push(Event { warning: true, reason: "ResultRefused", note: refusals });
                }
                if missing.is_empty() {
                    (verdict, message)
                } else {
                    let reason = RunReason::ResultMissing;
                    (Verdict::Retry { reason, counted: true }, results::missing_message(task, &missing, &why_missing))
                }
            }
        },
        verdict => (verdict, message),
    };
    let failed = match verdict {
        Verdict::Succeeded | Verdict::Unknown => false,
        Verdict::Retry { reason, .. } => !is_hold_outcome(reason),
        Verdict::Fail { .. } => true,
    };
    let logs = if failed && !view.spec.stop { log_reads(view, task, containers) } else { Vec::new() };
    // A task ecsrun stopped (a deadline, spec.stop) is judged at once: its tail is read as it is.
    if logs.iter().any(|read| read.stream.is_ok())
        && stop_cause(view, task, now).is_none()
        && let Some(after) = results::settling(task, now)
    {
        // Nothing changes until the tail can be read: the run is judged, and told, once.
        return plan(view, view.status.clone(), None, Some(follow(after)), Some(after));
    }
    let mut plan = conclude(view, status, verdict, message, now);
    plan.logs = logs;
    plan.events.extend(told);
    plan
}

pub(super) fn record_task(
    status: &mut EcsTaskRunStatus,
    task: &TaskSnapshot,
    definition: Option<&[ContainerDefinitionInfo]>,
) {
    let containers: Vec<ContainerStatus> = task
        .containers
        .iter()
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            exit_code: c.exit_code,
            reason: c.reason.clone(),
            last_status: c.last_status.clone(),
            essential: definition.map(|_| is_essential(definition, &c.name)),
            log_tail: None,
            log_tail_error: None,
        })
        .collect();
    let exit_codes = task.containers.iter().any(|c| c.exit_code.is_some()).then(|| {
        task.containers
            .iter()
            .map(|c| format!("{}={}", c.name, c.exit_code.map_or("-".into(), |code| code.to_string())))
            .collect::<Vec<_>>()
            .join(",")
    });
    // Results belong to the attempt that published them.
    if status.task.task_arn.as_deref() != Some(task.task_arn.as_str()) {
        status.task.results.clear();
    }
    status.task.task_arn = Some(task.task_arn.clone());
    status.task.task_id = Some(task_id(&task.task_arn).to_owned());
    status.cluster_arn = task.cluster_arn.clone().or(status.cluster_arn.take());
    status.task.task_definition_arn = task.task_definition_arn.clone().or(status.task.task_definition_arn.take());
    status.task.last_status = task.last_status.clone();
    status.task.desired_status = task.desired_status.clone();
    status.task.stop_code = task.stop_code.clone();
    status.task.stopped_reason = task.stopped_reason.clone();
    status.task.containers = containers;
    status.task.exit_codes = exit_codes.clone();
    status.task.created_at = task.created_at.map(Time);
    status.task.started_at = task.started_at.map(Time);
    status.task.stopped_at = task.stopped_at.map(Time);
    if let Some(attempt) = status.task.attempts.last_mut()
        && attempt.task_arn.as_deref() == Some(task.task_arn.as_str())
    {
        attempt.stopped_at = task.stopped_at.map(Time);
        attempt.stop_code = task.stop_code.clone();
        attempt.exit_codes = exit_codes;
        attempt.usage = usage::of_task(task);
    }
    status.usage = usage::of_tasks(std::iter::once(&status.task));
}

/// Records on the attempt of `task_arn` why ecsrun is stopping its task (the first cause stands: the
/// StopTask that went out carries it).
pub(super) fn record_stop_cause(status: &mut TaskStatus, task_arn: &str, cause: StopCause) {
    if let Some(attempt) = status.attempts.iter_mut().rev().find(|a| a.task_arn.as_deref() == Some(task_arn)) {
        attempt.stop_cause.get_or_insert(cause);
    }
}

/// Why ecsrun is stopping the current attempt's task, as recorded on it. A status written before causes
/// were recorded says it in its Stopping phase's reason: read here, once.
pub(super) fn recorded_stop_cause(status: &TaskStatus) -> Option<StopCause> {
    if let Some(cause) = current_attempt(status).and_then(|attempt| attempt.stop_cause) {
        return Some(cause);
    }
    if status.phase != Some(Phase::Stopping) {
        return None;
    }
    match status.reason.as_ref()?.known()? {
        RunReason::DeadlineExceeded => Some(StopCause::DeadlineExceeded),
        RunReason::StartTimeout => Some(StopCause::StartTimeout),
        RunReason::Suspended => Some(StopCause::Suspended),
        RunReason::Stopped => Some(StopCause::StopRequested),
        RunReason::FailFast => Some(StopCause::FailFast),
        RunReason::NotNeeded => Some(StopCause::NotNeeded),
        _ => None,
    }
}
