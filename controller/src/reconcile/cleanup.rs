//! Deleting a run: what the API server's copy says must be stopped, StopTask for each live task, and the
//! finalizer kept (an error, for kube's finalizer helper) until ECS reports them STOPPED.

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::info;

use super::error::{Staleness, not_found};
use super::{Context, Error, actor, slots};
use crate::api::{DeletionPolicy, EcsTaskRun};
use crate::decide::{self, CleanupStep};
use crate::ecs::{DesiredStatus, Ecs, EcsErrorKind, TaskLookup, TaskSnapshot};

/// Deletion: stop the run's live tasks (deletionPolicy Stop) and keep the finalizer until ECS reports them
/// STOPPED. kube's finalizer helper removes the finalizer on any Ok, so "not yet" is an Err. A run whose
/// tasks are all on record costs a GET of the run and one StopTask per live task; the tracker then follows
/// them to STOPPED.
pub(super) async fn cleanup<E: Ecs>(
    run: &EcsTaskRun,
    namespace: &str,
    api: &Api<EcsTaskRun>,
    ctx: &Context<E>,
) -> Result<Action, Error> {
    let action = stop_tasks(run, namespace, api, ctx).await?;
    // Its tasks stopped: a queued run's Workload goes, and its quota with it.
    super::queue::release_deleted(ctx, run, namespace).await?;
    // A schedule's run keeps its slot's name until no creation of it can land any more (`slots`).
    match slots::slot_hold(&ctx.client, namespace, run, ctx.settings.clock.now()).await? {
        Some(slots::SlotHold::Unrecorded(schedule)) => Err(Error::SlotUnrecorded(schedule)),
        Some(slots::SlotHold::Settling(left)) => Err(Error::SlotSettling(left)),
        None => Ok(action),
    }
}

async fn stop_tasks<E: Ecs>(
    run: &EcsTaskRun,
    namespace: &str,
    api: &Api<EcsTaskRun>,
    ctx: &Context<E>,
) -> Result<Action, Error> {
    let key = crate::cached::run_key(run.meta());
    // The cache may lag behind this controller's own status writes: a run deleted while it launched is
    // cached without the launch (or the retry) that went out, and releasing it on that would leave the
    // task running. What must be stopped is decided on the API server's copy (an orphaned run stops nothing).
    let step = if run.spec.deletion_policy() == DeletionPolicy::Orphan {
        (CleanupStep::Release, None)
    } else {
        let uid = run.metadata.uid.as_deref().ok_or(Error::MissingMetadata("uid"))?;
        let fresh = match api.get(&run.name_any()).await {
            Ok(fresh) => fresh,
            // Gone: its finalizer was removed already (the finalizer helper's removal then finds nothing).
            Err(error) if not_found(&error, &run.name_any()) => return Ok(Action::await_change()),
            Err(error) => return Err(Error::Kube(error)),
        };
        // Releasing now would remove the finalizer of the run created under the name since: an error
        // keeps it, and the cache, once caught up, no longer holds this run.
        if fresh.metadata.uid.as_deref() != Some(uid) {
            return Err(Error::Stale(Staleness::Recreated));
        }
        (decide::cleanup_step(&run.spec, uid, fresh.status.as_ref()), fresh.status)
    };
    let (step, fresh_status) = step;
    let (mut arns, list_started_by) = match step {
        CleanupStep::Release => {
            ctx.tracker.forget(&key);
            return Ok(Action::await_change());
        }
        CleanupStep::Stop { task_arns, list_started_by } => (task_arns, list_started_by),
    };
    let target = ctx.target(run, namespace).await?;
    // A launch this replica recorded with its tracker whose status write was lost is stopped too.
    for arn in ctx.tracker.followed(&key, &target) {
        if !arns.contains(&arn) {
            arns.push(arn);
        }
    }
    let mut unrecorded_launch = None;
    if !list_started_by.is_empty() {
        for started_by in &list_started_by {
            // STOPPED too: a task sent StopTask leaves ListTasks(RUNNING) before it has stopped.
            let listed = tokio::try_join!(
                ctx.ecs.list_tasks_started_by(&target, started_by, DesiredStatus::Running),
                ctx.ecs.list_tasks_started_by(&target, started_by, DesiredStatus::Stopped),
            );
            match listed {
                Ok((running, stopped)) => {
                    for arn in running.into_iter().chain(stopped) {
                        if !arns.contains(&arn) {
                            arns.push(arn);
                        }
                    }
                }
                // No cluster, no tasks to stop.
                Err(error) if error.kind == EcsErrorKind::ClusterNotFound => {
                    arns.clear();
                    break;
                }
                Err(error) => return Err(error.into()),
            }
        }
        let now = ctx.settings.clock.now();
        let deleted_at = run.metadata.deletion_timestamp.as_ref().map_or(now, |time| time.0);
        unrecorded_launch = Some(decide::unrecorded_launch_for(fresh_status.as_ref(), deleted_at, now));
    }
    // What the tracker last saw; a task it has not seen yet is sent StopTask, whose answer tells.
    let mut tasks: Vec<TaskSnapshot> = arns
        .iter()
        .map(|arn| match ctx.tracker.last_seen(&target, arn).map(|seen| seen.look) {
            Some(Ok(TaskLookup::Found(task))) => task,
            _ => TaskSnapshot { task_arn: arn.clone(), ..TaskSnapshot::default() },
        })
        .collect();
    ctx.tracker.follow(&key, &target, &arns, ctx.settings.stop_poll_interval);
    let name = run.name_any();
    let plan = decide::cleanup(&run.spec, namespace, &name, &tasks, unrecorded_launch);
    // Each StopTask is told once it has gone out (the plan has one Event per StopTask).
    for (stop, event) in plan.stop.iter().zip(&plan.events) {
        let stopped = match ctx.ecs.stop_task(&target, &stop.task_arn, &stop.reason, &actor(run)?).await {
            Ok(stopped) => stopped,
            Err(error) if error.kind == EcsErrorKind::ClusterNotFound => None,
            Err(error) => return Err(error.into()),
        };
        match stopped {
            Some(task) => {
                ctx.tracker.record(&target, &task);
                if let Some(slot) = tasks.iter_mut().find(|t| t.task_arn == task.task_arn) {
                    *slot = task;
                }
            }
            // ECS does not know the task: there is nothing left to stop.
            None => tasks.retain(|t| t.task_arn != stop.task_arn),
        }
        info!(task_arn = %stop.task_arn, "stopping task of deleted run");
        ctx.publish(run, event).await;
    }
    if plan.done(&tasks) {
        ctx.tracker.forget(&key);
        Ok(Action::await_change())
    } else {
        Err(Error::WaitingForStop(tasks.iter().filter(|t| !t.is_stopped()).count()))
    }
}
