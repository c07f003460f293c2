//! Observing a run's lanes: launching (after looking for an earlier try's task when one may exist),
//! looking for a task by startedBy, adopting a task started elsewhere, and reading what the tracker last
//! saw. Each lane's observation goes back to the decision as data; nothing here decides.

use tracing::info;

use super::{Context, Error, region};
use crate::api::{EcsTaskRun, SuccessPolicy};
use crate::decide::run::Observation;
use crate::decide::{self, LaunchObservation, RunView, Step, TrackObservation};
use crate::ecs::tracker::Seen;
use crate::ecs::{
    DesiredStatus, Ecs, EcsError, EcsErrorKind, EcsTarget, RunTaskOutcome, TaskLookup, TaskSnapshot, is_bare_family,
};
use crate::policy::Mode;
use crate::tenancy::Gate;

/// Observes lane `view.index` as `step` says. `denied`: why the policies refuse a new launch, if they do.
/// An error holds the lane up: the decision says why in its status, and the caller retries with backoff.
pub(super) async fn observe<E: Ecs>(
    view: &RunView<'_>,
    step: &Step,
    target: Option<&EcsTarget>,
    ctx: &Context<E>,
    denied: Option<&str>,
) -> Result<Observation, Error> {
    let target = target.ok_or(Error::NoRegion);
    match step {
        Step::Launch { attempt, may_exist } => {
            Ok(Observation::Launched(launch(view, *attempt, *may_exist, target?, ctx, denied).await?))
        }
        Step::Find { .. } => Ok(Observation::Found(find_started(view, target?, ctx).await?)),
        Step::Adopt { task_arn } => {
            if let Some(why) = denied {
                return Ok(Observation::Launched(LaunchObservation::Denied(why.to_owned())));
            }
            let target = target?;
            match ctx.ecs.describe_tasks(target, std::slice::from_ref(task_arn)).await {
                Ok(described) => {
                    let task = described.tasks.into_iter().find(|task| &task.task_arn == task_arn);
                    info!(task_arn, found = task.is_some(), "adopting a task started elsewhere");
                    Ok(Observation::Adopted { task, region: target.region.clone() })
                }
                Err(error) if error.kind.is_permanent() => {
                    Ok(Observation::Launched(LaunchObservation::Rejected(error)))
                }
                Err(error) => Err(error.into()),
            }
        }
        Step::Track { task_arn, .. } => {
            let target = target?;
            match ctx.tracker.last_seen(target, task_arn) {
                Some(seen) => Ok(Observation::Tracked(track(view, seen, target, ctx).await?)),
                // Not looked at since this replica started reconciling: the next sweep describes it with
                // the others (the decision keeps following it), and its answer brings the run back.
                None => Ok(Observation::NotSeenYet),
            }
        }
        Step::Idle | Step::Wait(_) | Step::Conclude(_) => Ok(Observation::NotSeenYet),
    }
}

/// Why the namespace's EcsRunPolicies refuse the run's launch (None: allowed, or audited and told as an
/// Event). Checked before credentials are read: a run refused for its Secret fails whether or not it exists.
pub(super) async fn policy_gate<E: Ecs>(
    run: &EcsTaskRun,
    namespace: &str,
    ctx: &Context<E>,
) -> Result<Option<String>, Error> {
    let region = region(run, ctx.settings.default_region.as_deref()).ok_or(Error::NoRegion)?;
    Ok(match ctx.tenancy.gate(namespace, &region, &run.spec) {
        Gate::Allowed => None,
        Gate::NamespaceNotSeen => return Err(Error::NamespaceNotSeen(namespace.to_owned())),
        Gate::Audited(denial) => {
            count_violations(ctx, &denial, "audit");
            let note =
                format!("launched although the EcsRunPolicies do not allow it (audit mode): {}", denial.message());
            ctx.publish(run, &decide::Event { warning: true, reason: "PolicyViolation", note }).await;
            None
        }
        Gate::Denied(denial) => {
            count_violations(ctx, &denial, "enforce");
            Some(denial.message())
        }
    })
}

fn count_violations<E: Ecs>(ctx: &Context<E>, denial: &crate::policy::Denial, mode: &str) {
    for violation in &denial.violations {
        ctx.metrics.policy_violations.with_label_values(&[violation.rule.label(), mode]).inc();
    }
}

/// Launches the attempt, or adopts the task an earlier try of it started. `denied`: the policies refuse a
/// new launch (why); a task an earlier, allowed try started is still adopted.
async fn launch<E: Ecs>(
    view: &RunView<'_>,
    attempt: i32,
    may_exist: bool,
    target: &EcsTarget,
    ctx: &Context<E>,
    denied: Option<&str>,
) -> Result<LaunchObservation, Error> {
    // RunTask may have been sent before a crash or a lost status write, and the clientToken only guards
    // 24 hours: adopt what ECS has for this run.
    if may_exist && let Some(task) = find_started(view, target, ctx).await? {
        info!(task_arn = %task.task_arn, attempt, "adopting a task this run started earlier");
        return Ok(LaunchObservation::Adopted(task));
    }
    if let Some(why) = denied {
        info!(attempt, %why, "launch refused by EcsRunPolicy");
        return Ok(LaunchObservation::Denied(why.to_owned()));
    }

    // Under enforced EcsRunPolicies a bare family is looked at first: its latest revision may be one
    // another namespace's template registered into it, which this run must not launch.
    let guarded = ctx.tenancy.mode() == Mode::Enforce;
    let task_definition = match (&view.spec.task_definition_template, &view.spec.task_definition) {
        (Some(template), _) => ctx.templates.ensure(&*ctx.ecs, target, template, view.namespace).await,
        (None, Some(reference)) if view.spec.inject_run_identity || (guarded && is_bare_family(reference)) => {
            ctx.ecs.describe_task_definition(target, reference).await
        }
        _ => Ok(Default::default()),
    };
    let task_definition = match task_definition {
        Ok(info) => info,
        // What only ECS judges (a template it refuses, a task definition it does not have) fails the run
        // with ECS's message.
        Err(error) if error.kind.is_permanent() => return Ok(LaunchObservation::Rejected(error)),
        Err(error) => return Err(error.into()),
    };
    if let (None, Some(reference), Some(owner)) =
        (&view.spec.task_definition_template, &view.spec.task_definition, &task_definition.registered_by)
        && guarded
        && is_bare_family(reference)
        && owner != view.namespace
    {
        let why = decide::foreign_template_revision(reference, &task_definition.arn, owner);
        info!(attempt, %why, "launch refused: another namespace's template revision");
        return Ok(LaunchObservation::Denied(why));
    }
    // The deletion and Find graces are anchored at the intent: a RunTask sent much later could start a
    // task after they have given up looking for one.
    let intent = view.status.task.attempts.last().filter(|a| a.attempt == attempt).and_then(|a| a.sent_at.as_ref());
    let held_up = intent.map(|intent| decide::duration_between(intent.0, ctx.settings.clock.now()));
    if let Some(held_up) = held_up
        && held_up > decide::LAUNCH_INTENT_MAX_AGE
    {
        info!(attempt, held_up_s = held_up.as_secs(), "launch held up past its intent: recorded again first");
        return Err(Error::IntentExpired(held_up));
    }
    let mut request = decide::launch_request(view, attempt, &task_definition);
    // The rate ceiling may hold it further: it goes within the intent's bound, or not at all.
    request.send_within = held_up.map(|held_up| decide::LAUNCH_INTENT_MAX_AGE.saturating_sub(held_up));
    match ctx.ecs.run_task(target, &request).await {
        Ok(RunTaskOutcome::Started(task)) => {
            info!(task_arn = %task.task_arn, attempt, "launched task");
            Ok(LaunchObservation::Started(task))
        }
        Ok(RunTaskOutcome::Failures(failures)) => Ok(LaunchObservation::Failures(failures)),
        Ok(RunTaskOutcome::Conflict(arns)) => match arns.first() {
            Some(arn) => Ok(LaunchObservation::Adopted(describe_or_bare(ctx, target, arn).await?)),
            None => {
                Err(EcsError::new(EcsErrorKind::Rejected, "RunTask", "ConflictException without the conflicting task")
                    .into())
            }
        },
        Err(error) if error.kind.is_permanent() => Ok(LaunchObservation::Rejected(error)),
        Err(error) => Err(error.into()),
    }
}

/// A task ECS has for this run (by startedBy, RUNNING or STOPPED) that its status does not record yet.
async fn find_started<E: Ecs>(
    view: &RunView<'_>,
    target: &EcsTarget,
    ctx: &Context<E>,
) -> Result<Option<TaskSnapshot>, Error> {
    let started_by = view.started_by();
    // ListTasks returns RUNNING tasks unless asked for STOPPED ones.
    let (running, stopped) = tokio::try_join!(
        ctx.ecs.list_tasks_started_by(target, &started_by, DesiredStatus::Running),
        ctx.ecs.list_tasks_started_by(target, &started_by, DesiredStatus::Stopped),
    )
    .or_else(|error| if error.kind.is_permanent() { Ok((Vec::new(), Vec::new())) } else { Err(error) })?;
    let known: Vec<&str> = view.status.task.attempts.iter().filter_map(|a| a.task_arn.as_deref()).collect();
    match running.iter().chain(&stopped).find(|arn| !known.contains(&arn.as_str())) {
        Some(arn) => Ok(Some(describe_or_bare(ctx, target, arn).await?)),
        None => Ok(None),
    }
}

/// The task as ECS describes it, or just its ARN while DescribeTasks does not know it yet.
async fn describe_or_bare<E: Ecs>(ctx: &Context<E>, target: &EcsTarget, arn: &str) -> Result<TaskSnapshot, Error> {
    let described = ctx.ecs.describe_tasks(target, &[arn.to_owned()]).await?;
    Ok(described
        .tasks
        .into_iter()
        .find(|task| task.task_arn == arn)
        .unwrap_or_else(|| TaskSnapshot { task_arn: arn.to_owned(), ..TaskSnapshot::default() }))
}

/// Turns what the tracker saw into what the decision needs: the task definition's containers once the
/// task stopped (which are essential is only written there).
async fn track<E: Ecs>(
    view: &RunView<'_>,
    seen: Seen,
    target: &EcsTarget,
    ctx: &Context<E>,
) -> Result<TrackObservation, Error> {
    let task = match seen.look {
        Ok(TaskLookup::Found(task)) => task,
        Ok(TaskLookup::Missing) => return Ok(TrackObservation::Missing { observed_at: seen.at }),
        Err(error) => return Ok(TrackObservation::Unobservable(error)),
    };
    // Which containers are essential, and where they log (a failed one's last lines are read).
    let wanted = view.spec.success_policy == SuccessPolicy::EssentialContainers || view.tail_lines() > 0;
    let containers = match (&task.task_definition_arn, task.is_stopped()) {
        (Some(definition), true) if wanted => match ctx.ecs.describe_task_definition(target, definition).await {
            Ok(info) => Some(info.containers),
            Err(error) if error.kind.is_permanent() => None,
            Err(error) => return Err(error.into()),
        },
        _ => None,
    };
    Ok(TrackObservation::Found { task, containers })
}
