//! Launching and adopting: the launch intent recorded before RunTask, the RunTask request, and what a
//! launch, a look for an earlier try's task or an adoption came to.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::follow::{record_task, running_reason};
use super::judge::Verdict;
use super::phase::{conclude, plan, set_phase};
use super::{
    Follow, LaunchObservation, Plan, RunView, UNRECORDED_LAUNCH_GRACE, bound, current_attempt, duration_between,
    task_id,
};
use crate::api::{
    Attempt, ContainerOverride, EcsTaskRunStatus, EnvVar, GoDuration, LastStatus, LaunchFailure, Phase, RunReason,
    TaskOverrides, WaitFor,
};
use crate::ecs::{Actor, EcsFailure, LaunchRequest, TaskDefinitionInfo, TaskSnapshot};

/// After `Step::Adopt`: the task found is followed as attempt 1, as if this run had launched it into
/// `region`; a task ECS does not know fails the run.
pub fn after_adopt(view: &RunView, found: Option<TaskSnapshot>, region: &str, now: Timestamp) -> Plan {
    let mut status = view.status.clone();
    status.region.get_or_insert_with(|| region.to_owned());
    let view = RunView { status: &status, ..*view };
    match found {
        Some(task) if let Err(why) = adoptable(&view, &task) => {
            // Nothing of the task is read into the status: its containers, exit codes and logs are the
            // other namespace's.
            let mut status = status.clone();
            push_unlaunched_attempt(&mut status, 1);
            conclude(&view, status, Verdict::Fail { reason: RunReason::AdoptionDenied }, why, now)
        }
        Some(task) => after_launch(&view, 1, LaunchObservation::Adopted(task), now),
        None => {
            let mut status = status.clone();
            push_unlaunched_attempt(&mut status, 1);
            let message = format!(
                "ECS does not know task {} in cluster {} ({region}): check spec.taskArn, spec.cluster and \
                 spec.region (ECS forgets a task about an hour after it stops)",
                view.spec.task_arn.as_deref().unwrap_or_default(),
                view.spec.cluster,
            );
            conclude(&view, status, Verdict::Fail { reason: RunReason::TaskNotFound }, message, now)
        }
    }
}

/// A launch that cannot get through yet (ECS unreachable or throttled, credentials not readable): the
/// run stays Pending and says why, in `reason` and the message, until a retry gets through.
pub fn launch_held_up(view: &RunView, reason: &'static str, why: &str, now: Timestamp) -> EcsTaskRunStatus {
    let mut status = view.status.clone();
    set_phase(view, &mut status, Phase::Pending, reason, format!("cannot launch yet: {why}; retrying"), now);
    status
}

/// The run ends DeadlineExceeded with no task running.
pub(super) fn deadline_exceeded(view: &RunView, now: Timestamp) -> Plan {
    let message = format!(
        "the run did not finish within its timeout of {}",
        view.spec.wait.timeout.as_ref().map_or("", GoDuration::as_str)
    );
    conclude(view, view.status.clone(), Verdict::Fail { reason: RunReason::DeadlineExceeded }, message, now)
}

/// After `Step::Find`: a task found is adopted (and, the deadline having passed, stopped at the next
/// look); none found ends the run (stopped, DeadlineExceeded, or failFast), once the attempt's last
/// RunTask is long enough ago that ECS would list a task it started.
pub fn after_find(view: &RunView, attempt: i32, found: Option<TaskSnapshot>, now: Timestamp) -> Plan {
    match found {
        Some(task) => after_launch(view, attempt, LaunchObservation::Adopted(task), now),
        None if let Some(left) = unlisted_for(view, now) => {
            plan(view, view.status.clone(), None, None, Some(left.max(Duration::from_secs(2))))
        }
        None if let Some(hold) = view.hold() => {
            let message = "no task was running".to_owned();
            conclude(view, view.status.clone(), Verdict::Retry { reason: hold.outcome(), counted: false }, message, now)
        }
        None if view.spec.stop => {
            let message = "no task was running".to_owned();
            conclude(view, view.status.clone(), Verdict::Fail { reason: RunReason::Stopped }, message, now)
        }
        None if view.deadline_passed(now) => deadline_exceeded(view, now),
        // A task index looked for because another failed (failFast): it never started.
        None => {
            let message = "no task was started: another task index failed (failFast)".to_owned();
            conclude(view, view.status.clone(), Verdict::Fail { reason: RunReason::FailFast }, message, now)
        }
    }
}

/// The status that records, before RunTask is sent, that attempt `attempt` is being launched into
/// `region`: a restart that finds it looks for the task before launching again, and every later call
/// of the run goes to that region.
pub fn launch_intent(view: &RunView, attempt: i32, region: &str, now: Timestamp) -> EcsTaskRunStatus {
    let mut status = view.status.clone();
    status.region.get_or_insert_with(|| region.to_owned());
    if view.resuming() {
        status.resumed_at = Some(Time(now));
    }
    push_unlaunched_attempt(&mut status, attempt);
    if let Some(pushed) = status.task.attempts.last_mut() {
        pushed.sent_at = Some(Time(now));
    }
    bound::keep_latest_attempts(&mut status.task, bound::KEPT_ATTEMPTS);
    status.task.next_attempt_at = None;
    let message = format!("launching a task of {} (attempt {attempt})", view.spec.task_definition_name());
    set_phase(view, &mut status, Phase::Pending, RunReason::Launching, message, now);
    status
}

/// The RunTask request for `attempt`: the spec, ecsrun's identity, and the run identity injected into
/// every container of the task definition (`task_definition`: its containers, and for a template the
/// revision registered for it).
pub fn launch_request(view: &RunView, attempt: i32, task_definition: &TaskDefinitionInfo) -> LaunchRequest {
    let mut tags: Vec<(String, String)> = view.spec.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    tags.push((crate::ecs::NAMESPACE_TAG.into(), view.namespace.into()));
    tags.push(("ecsrun.dev/name".into(), view.name.into()));
    tags.push(("ecsrun.dev/uid".into(), view.uid.into()));
    // Which attempt a task belongs to, for people and for checks that every attempt ran exactly once.
    tags.push(("ecsrun.dev/attempt".into(), attempt.to_string()));
    if view.indexed() {
        tags.push(("ecsrun.dev/index".into(), view.index.to_string()));
    }
    // An install's orphan sweep stops only the tasks it launched.
    if let Some(cluster_id) = view.cluster_id {
        tags.push((crate::ecs::CLUSTER_ID_TAG.into(), cluster_id.into()));
    }
    // The orphan sweep leaves a task its run means to leave running once deleted.
    if view.spec.deletion_policy() == crate::api::DeletionPolicy::Orphan {
        tags.push((crate::ecs::DELETION_POLICY_TAG.into(), "Orphan".into()));
    }

    let mut overrides = view.spec.overrides.clone().unwrap_or_default();
    if view.spec.inject_run_identity {
        let identity = [
            ("ECSRUN_NAME", view.name.to_owned()),
            ("ECSRUN_NAMESPACE", view.namespace.to_owned()),
            ("ECSRUN_UID", view.uid.to_owned()),
            ("ECSRUN_ATTEMPT", attempt.to_string()),
            ("ECSRUN_TASK_INDEX", view.index.to_string()),
            ("ECSRUN_TASK_COUNT", view.spec.count.to_string()),
        ];
        for container in &task_definition.containers {
            let index = match overrides.container_overrides.iter().position(|o| o.name == container.name) {
                Some(index) => index,
                None => {
                    overrides
                        .container_overrides
                        .push(ContainerOverride { name: container.name.clone(), ..ContainerOverride::default() });
                    overrides.container_overrides.len() - 1
                }
            };
            let environment = &mut overrides.container_overrides[index].environment;
            for (name, value) in &identity {
                // A value the user set explicitly wins.
                if !environment.iter().any(|var| var.name == *name) {
                    environment.push(EnvVar { name: (*name).to_owned(), value: value.clone() });
                }
            }
        }
    }
    LaunchRequest {
        spec: view.spec.clone(),
        task_definition: launched_task_definition(view, task_definition),
        overrides: (overrides != TaskOverrides::default()).then_some(overrides),
        client_token: view.client_token(attempt),
        started_by: view.started_by(),
        tags,
        actor: Actor { namespace: view.namespace.into(), name: view.name.into() },
        send_within: None,
    }
}

pub fn after_launch(view: &RunView, attempt: i32, observation: LaunchObservation, now: Timestamp) -> Plan {
    let mut status = view.status.clone();
    match observation {
        LaunchObservation::Started(task) | LaunchObservation::Adopted(task) => {
            status.task.attempts.retain(|a| a.attempt != attempt);
            status.task.attempts.push(Attempt {
                attempt,
                task_arn: Some(task.task_arn.clone()),
                launched_at: Some(Time(task.created_at.unwrap_or(now))),
                ..Attempt::default()
            });
            status.attempt_count = Some(bound::attempts_made(&status.task));
            status.task.next_attempt_at = None;
            status.task.failures.clear();
            record_task(&mut status, &task, None);
            let id = task_id(&task.task_arn);
            let follow = Follow { task_arn: task.task_arn.clone(), every: view.poll_interval() };
            if view.spec.stop && !task.is_stopped() {
                // Adopted to be stopped (or found after the stop was asked), whatever `wait.for` says: the
                // next look stops it, once the cache holds the status written now.
                let message = format!("task {id} (attempt {attempt}) is to be stopped: spec.stop is set");
                set_phase(view, &mut status, Phase::Stopping, RunReason::Stopped, message, now);
                return plan(view, status, None, Some(follow), Some(Duration::from_secs(1)));
            }
            if view.spec.wait.for_ == WaitFor::Launched {
                let message = format!("launched task {id} (attempt {attempt})");
                return conclude(view, status, Verdict::Succeeded, message, now);
            }
            if task.is_stopped() {
                // An adopted task that already stopped: judged at once by the next look, which fetches the
                // task definition's containers (which of them are essential).
                let message = format!("adopted task {id} (attempt {attempt}), already STOPPED");
                set_phase(view, &mut status, Phase::Running, RunReason::TaskStopping, message, now);
                return plan(view, status, None, Some(follow), Some(Duration::ZERO));
            }
            // Judged as any later look would judge it: the tracker reports only changes from here on.
            let last_status = task.last_status_str().unwrap_or("UNKNOWN");
            let started = task.last_is(LastStatus::Running) || task.started_at.is_some();
            if view.spec.wait.for_ == WaitFor::Running && started {
                let message = format!("task {id} is {last_status} (attempt {attempt})");
                return conclude(view, status, Verdict::Succeeded, message, now);
            }
            let message = format!("task {id} is {last_status} (attempt {attempt})");
            set_phase(view, &mut status, Phase::Running, running_reason(task.last_status.as_ref()), message, now);
            let back = view.look_again(now, Some(task.created_at.unwrap_or(now)), started);
            plan(view, status, None, Some(follow), back)
        }
        LaunchObservation::Failures(failures) => {
            let capacity = !failures.is_empty() && failures.iter().all(EcsFailure::is_capacity);
            let described: Vec<String> = failures
                .iter()
                .map(|f| {
                    let mut text = f.reason.clone().unwrap_or_else(|| "unknown".into());
                    if let Some(detail) = &f.detail {
                        text.push_str(&format!(" ({detail})"));
                    }
                    text
                })
                .collect();
            status.task.failures = failures
                .into_iter()
                .map(|f| LaunchFailure { arn: f.arn, reason: f.reason, detail: f.detail })
                .collect();
            push_unlaunched_attempt(&mut status, attempt);
            let (reason, counted) =
                if capacity { (RunReason::InsufficientCapacity, false) } else { (RunReason::LaunchFailed, true) };
            let message = format!("RunTask started no task: {}", described.join(", "));
            conclude(view, status, Verdict::Retry { reason, counted }, message, now)
        }
        LaunchObservation::Rejected(error) => {
            push_unlaunched_attempt(&mut status, attempt);
            // AWS's messages do not always say what they refer to ("Unable to describe task definition.").
            let subject = match &view.spec.task_arn {
                Some(task_arn) => format!("task {task_arn}"),
                None => format!("task definition {}", view.spec.task_definition_name()),
            };
            let message = format!(
                "ECS rejected {} of {subject} in cluster {}: {}",
                error.operation, view.spec.cluster, error.message
            );
            // Only a permanent error is a rejection (the shell's `is_permanent`), and each has its reason.
            let reason = error.kind.rejection().unwrap_or(RunReason::RejectedByEcs);
            conclude(view, status, Verdict::Fail { reason }, message, now)
        }
        LaunchObservation::Denied(message) => {
            push_unlaunched_attempt(&mut status, attempt);
            conclude(view, status, Verdict::Fail { reason: RunReason::PolicyDenied }, message, now)
        }
    }
}

/// What RunTask is told to run: a template's registered revision; a reference as written, except a bare
/// family that was described, which runs the revision described (containers injected into and policies
/// checked against are those of the revision that runs, not of one registered in between).
fn launched_task_definition(view: &RunView, described: &TaskDefinitionInfo) -> String {
    match &view.spec.task_definition {
        Some(reference) if crate::ecs::is_bare_family(reference) && !described.arn.is_empty() => described.arn.clone(),
        Some(reference) => reference.clone(),
        None => described.arn.clone(),
    }
}

/// Why a run may not launch the bare family `reference` whose latest ACTIVE revision (`arn`) another
/// namespace's `taskDefinitionTemplate` registered (`owner`): templates must not change what other
/// namespaces run.
pub fn foreign_template_revision(reference: &str, arn: &str, owner: &str) -> String {
    let family = crate::policy::family(reference);
    format!(
        "the latest ACTIVE revision of task definition family {family} ({}) was registered from a \
         taskDefinitionTemplate of namespace {owner}; a run of another namespace does not launch it: name the \
         revision to run ({family}:<revision>)",
        crate::ecs::task_definition_name(arn)
    )
}

pub(super) fn push_unlaunched_attempt(status: &mut EcsTaskRunStatus, attempt: i32) {
    status.task.attempts.retain(|a| a.attempt != attempt);
    status.task.attempts.push(Attempt { attempt, ..Attempt::default() });
    status.attempt_count = Some(bound::attempts_made(&status.task));
}

/// How much longer a task the current attempt's last RunTask started may go unlisted (ListTasks is
/// eventually consistent); None once the grace deletion also waits out has passed.
fn unlisted_for(view: &RunView, now: Timestamp) -> Option<Duration> {
    let sent = current_attempt(&view.status.task)?.sent_at.as_ref()?.0;
    UNRECORDED_LAUNCH_GRACE.checked_sub(duration_between(sent, now)).filter(|left| !left.is_zero())
}

/// Whether the run may adopt `task` (`spec.taskArn`): not a task ecsrun started for another namespace,
/// whose containers, exit codes and logs are that namespace's, and which only its own run may stop.
pub fn adoptable(view: &RunView, task: &TaskSnapshot) -> Result<(), String> {
    match task.started_for_namespace.as_deref() {
        Some(namespace) if namespace != view.namespace => Err(format!(
            "task {} was started by ecsrun for namespace {namespace}: a run adopts only tasks started for its \
             own namespace or outside ecsrun",
            task_id(&task.task_arn)
        )),
        _ => Ok(()),
    }
}
