//! Judging a stopped task: which containers count (`successPolicy`), what their exit codes mean
//! (`retryPolicy.rules`), which stop codes are worth another attempt, and whose last lines to read.

use jiff::Timestamp;
use wildmatch::WildMatch;

use super::{LogRead, RunView, logs, task_id};
use crate::api::{
    ExitCodeOperator, GoDuration, Reported, RetryRule, RetryRuleAction, RunReason, StopCause, StopCode, SuccessPolicy,
};
use crate::ecs::{ContainerDefinitionInfo, TaskSnapshot};

/// What a stopped task means for the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Succeeded,
    /// ECS forgot the task before its end was seen: the run ends, neither succeeded nor failed.
    Unknown,
    /// The attempt failed; another may follow. `counted` failures use up `backoffLimit`.
    Retry {
        reason: RunReason,
        counted: bool,
    },
    /// The run fails without retrying.
    Fail {
        reason: RunReason,
    },
}

pub(super) fn judge_stopped(
    view: &RunView,
    task: &TaskSnapshot,
    definition: Option<&[ContainerDefinitionInfo]>,
    now: Timestamp,
) -> (Verdict, String) {
    let id = task_id(&task.task_arn);
    match stop_cause(view, task, now) {
        Some(StopCause::DeadlineExceeded) => {
            let message = format!(
                "task {id} was stopped after the timeout of {}",
                view.spec.wait.timeout.as_ref().map_or("", GoDuration::as_str)
            );
            return (Verdict::Fail { reason: RunReason::DeadlineExceeded }, message);
        }
        // The suspension's StopTask: the attempt is no failure, whatever the exit codes (143: the SIGTERM).
        Some(StopCause::Suspended) if task.stop_code_is(StopCode::UserInitiated) => {
            let message = format!("task {id} was stopped: the run is suspended");
            return (Verdict::Retry { reason: RunReason::Suspended, counted: false }, message);
        }
        // Kueue's eviction: the attempt is no failure either; the run waits for admission again.
        Some(StopCause::Evicted) if task.stop_code_is(StopCode::UserInitiated) => {
            let message = format!("task {id} was stopped: Kueue evicted the run's Workload");
            return (Verdict::Retry { reason: RunReason::Evicted, counted: false }, message);
        }
        // The start timeout's StopTask: a failed attempt.
        Some(StopCause::StartTimeout) if task.started_at.is_none() => {
            let message = format!(
                "task {id} did not reach RUNNING within the start timeout of {}",
                view.spec.wait.start_timeout.as_ref().map_or("", GoDuration::as_str)
            );
            return (Verdict::Retry { reason: RunReason::StartTimeout, counted: true }, message);
        }
        _ => {}
    }
    let judged = judged(view, task, definition);
    let exited: Vec<(&str, i32)> = judged
        .iter()
        .filter_map(|c| c.exit_code.filter(|code| *code != 0).map(|code| (c.name.as_str(), code)))
        .collect();
    let (verdict, message) = built_in_verdict(view, task, &judged);
    let Verdict::Retry { counted, .. } = verdict else {
        return (verdict, message);
    };
    // Rules speak only of failed attempts: the first that matches overrides ecsrun's own judgement.
    match first_matching_rule(
        &view.spec.retry_policy.rules,
        task.stop_code.as_ref().and_then(Reported::known),
        task.stopped_reason.as_deref(),
        &exited,
    ) {
        Some((index, RetryRuleAction::FailRun)) => (
            Verdict::Fail { reason: RunReason::FailedByRule },
            format!("{message}; retryPolicy.rules[{index}] fails the run"),
        ),
        Some((index, RetryRuleAction::Ignore)) => (
            Verdict::Retry { reason: RunReason::IgnoredByRule, counted: false },
            format!("{message}; retryPolicy.rules[{index}] retries it without counting"),
        ),
        Some((index, RetryRuleAction::Count)) if !counted => (
            Verdict::Retry { reason: RunReason::CountedByRule, counted: true },
            format!("{message}; retryPolicy.rules[{index}] counts it against backoffLimit"),
        ),
        Some((_, RetryRuleAction::Count)) | None => (verdict, message),
    }
}

/// Why ecsrun stopped `task`, if it did: the cause recorded on its attempt, else the marker its StopTask
/// reason carries (the recording was lost: a crash, a lost write). A task stopped by ECS or someone else has
/// no cause. The timeout's stop is also recognised by the reason a version before the markers gave it.
pub(super) fn stop_cause(view: &RunView, task: &TaskSnapshot, now: Timestamp) -> Option<StopCause> {
    let recorded = view
        .status
        .task
        .attempts
        .iter()
        .rev()
        .find(|attempt| attempt.task_arn.as_deref() == Some(task.task_arn.as_str()))
        .and_then(|attempt| attempt.stop_cause);
    let legacy_phase = super::follow::recorded_stop_cause(&view.status.task)
        .filter(|_| view.status.task.task_arn.as_deref() == Some(task.task_arn.as_str()));
    if let Some(cause) = recorded.or(legacy_phase) {
        return Some(cause);
    }
    if !task.stop_code_is(StopCode::UserInitiated) {
        return None;
    }
    let stopped_reason = task.stopped_reason.as_deref()?;
    if let Some(cause) = StopCause::marked_in(stopped_reason) {
        return Some(cause);
    }
    // Stopped by a version that did not mark its reasons: its default texts tell, unless the spec's
    // stopReason made every stop read alike.
    if view.spec.stop_reason.is_some() {
        return None;
    }
    match StopCause::in_unmarked_reason(stopped_reason, view.namespace, view.name)? {
        StopCause::DeadlineExceeded if !view.deadline_passed(task.stopped_at.unwrap_or(now)) => None,
        cause => Some(cause),
    }
}

/// ecsrun's own judgement of a task that stopped (neither by the timeout nor the start timeout), before
/// any rule: stop codes worth a free retry, then the judged containers' exit codes.
fn built_in_verdict(
    view: &RunView,
    task: &TaskSnapshot,
    judged: &[&crate::ecs::ContainerSnapshot],
) -> (Verdict, String) {
    let id = task_id(&task.task_arn);
    let stopped_reason = task.stopped_reason.as_deref().unwrap_or("no reason given");
    match task.stop_code.as_ref().and_then(Reported::known) {
        Some(StopCode::TaskFailedToStart) => {
            let transient = task.failed_to_start_transiently();
            let verdict = Verdict::Retry {
                reason: if transient { RunReason::InsufficientCapacity } else { RunReason::TaskFailedToStart },
                counted: !transient,
            };
            return (verdict, format!("task {id} failed to start: {stopped_reason}"));
        }
        Some(StopCode::SpotInterruption | StopCode::TerminationNotice) => {
            let verdict = Verdict::Retry { reason: RunReason::Interrupted, counted: false };
            return (verdict, format!("task {id} was interrupted: {stopped_reason}"));
        }
        _ => {}
    }
    let never_ran: Vec<&str> = judged.iter().filter(|c| c.exit_code.is_none()).map(|c| c.name.as_str()).collect();
    let failed: Vec<String> = judged
        .iter()
        .filter_map(|c| match c.exit_code {
            Some(code) if code != 0 => Some(match &c.reason {
                Some(why) => format!("{} exited {code} ({why})", c.name),
                None => format!("{} exited {code}", c.name),
            }),
            _ => None,
        })
        .collect();
    let kind = match view.spec.success_policy {
        SuccessPolicy::AllContainers => "container",
        _ => "essential container",
    };
    if !failed.is_empty() {
        let message = format!("task {id} stopped: {kind} {}; {stopped_reason}", failed.join(", "));
        return (Verdict::Retry { reason: RunReason::ContainerFailed, counted: true }, message);
    }
    if !never_ran.is_empty() {
        let message = format!(
            "task {id} stopped: {kind} {} reported no exit code, so it probably never started (image pull, \
             secrets or out of memory at start); {stopped_reason}",
            never_ran.join(", ")
        );
        let verdict = Verdict::Retry { reason: RunReason::ContainerNeverRan, counted: true };
        return (verdict, message);
    }
    let codes = task
        .containers
        .iter()
        .map(|c| format!("{}={}", c.name, c.exit_code.map_or("-".into(), |code| code.to_string())))
        .collect::<Vec<_>>()
        .join(", ");
    (Verdict::Succeeded, format!("task {id} stopped: {codes}"))
}

/// The judged containers that exited non-zero: whose last lines tell why the attempt failed.
/// The containers whose exit codes `successPolicy` judges.
fn judged<'a>(
    view: &RunView,
    task: &'a TaskSnapshot,
    definition: Option<&[ContainerDefinitionInfo]>,
) -> Vec<&'a crate::ecs::ContainerSnapshot> {
    match view.spec.success_policy {
        SuccessPolicy::TaskStopped => Vec::new(),
        SuccessPolicy::AllContainers => task.containers.iter().collect(),
        // Without the task definition every container counts as essential: stricter, never laxer.
        SuccessPolicy::EssentialContainers => {
            task.containers.iter().filter(|c| is_essential(definition, &c.name)).collect()
        }
    }
}

pub(super) fn log_reads(
    view: &RunView,
    task: &TaskSnapshot,
    definition: Option<&[ContainerDefinitionInfo]>,
) -> Vec<LogRead> {
    let lines = view.tail_lines();
    if lines == 0 {
        return Vec::new();
    }
    judged(view, task, definition)
        .into_iter()
        .filter(|c| c.exit_code.is_some_and(|code| code != 0))
        .map(|c| LogRead {
            index: view.index,
            container: c.name.clone(),
            lines,
            stream: logs::stream_of(definition, &c.name, &task.task_arn),
        })
        .collect()
}

/// The first rule (index, action) whose every condition holds for a failed attempt: its stop code, its
/// stopped reason (a case-insensitive wildcard pattern) and `exited` (judged container, non-zero exit code).
pub(super) fn first_matching_rule(
    rules: &[RetryRule],
    stop_code: Option<StopCode>,
    stopped_reason: Option<&str>,
    exited: &[(&str, i32)],
) -> Option<(usize, RetryRuleAction)> {
    rules.iter().enumerate().find_map(|(index, rule)| {
        let exit_codes = rule.on_exit_codes.as_ref().is_none_or(|codes| {
            exited.iter().any(|(container, code)| {
                codes.container_name.as_deref().is_none_or(|name| name == *container)
                    && match codes.operator {
                        ExitCodeOperator::In => codes.values.contains(code),
                        ExitCodeOperator::NotIn => !codes.values.contains(code),
                    }
            })
        });
        let stop_codes =
            rule.on_stop_codes.is_empty() || stop_code.is_some_and(|code| rule.on_stop_codes.contains(&code));
        let reason = rule
            .on_stopped_reason
            .as_deref()
            .is_none_or(|pattern| WildMatch::new_case_insensitive(pattern).matches(stopped_reason.unwrap_or_default()));
        (exit_codes && stop_codes && reason).then_some((index, rule.action))
    })
}

pub(super) fn is_essential(definition: Option<&[ContainerDefinitionInfo]>, name: &str) -> bool {
    definition.and_then(|containers| containers.iter().find(|c| c.name == name)).is_none_or(|c| c.essential)
}
