//! The shell of a run of several tasks (`count` > 1): `decide::batch` says which task indexes act; each
//! is observed or launched as a run of one task would be (concurrently, under the account's rate
//! ceiling), and what they did is written in one status write. Launch intents of all indexes launching
//! now go out in one write before their RunTasks.

use std::time::Duration;

use futures::future::join_all;
use jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use tracing::{info, warn};

use super::{
    Context, Error, STOP_RECHECK, actor, find_started, launch, next_action, policy_gate, read_logs,
    stop_if_run_is_gone, track, view, write_and_tell, write_status,
};
use crate::api::{EcsTaskRun, EcsTaskRunStatus};
use crate::decide::{self, Follow, LaunchObservation, Plan, RunView, Step, batch};
use crate::ecs::{Ecs, EcsTarget, TaskSnapshot};

/// What one index's step came to.
enum LaneOutcome {
    /// The index's plan, and the task RunTask or an adoption just reported.
    Planned(Plan, Option<TaskSnapshot>),
    /// Waiting out a retry backoff.
    Waiting(Duration),
    /// Nothing to do for now.
    Nothing,
    /// Its task has not been described since this replica began following it: the tracker's next sweep
    /// does, and its answer brings the run back.
    NotSeenYet(Follow),
}

pub(super) async fn apply<E: Ecs>(
    run: &EcsTaskRun,
    namespace: &str,
    api: &Api<EcsTaskRun>,
    ctx: &Context<E>,
) -> Result<Action, Error> {
    let key = ObjectRef::from_obj(run);
    let status = run.status.clone().unwrap_or_default();
    let run_view = view(run, namespace, &status, &ctx.settings)?;
    let now = Timestamp::now();
    if status.task.phase.is_some_and(|phase| phase.is_terminal()) {
        ctx.tracker.forget(&key);
        return Ok(Action::await_change());
    }
    let steps = batch::next_steps(&run_view, now);
    let launching = steps.iter().any(|(_, step)| matches!(step, Step::Launch { .. }));
    let denied = if launching { policy_gate(run, namespace, ctx).await? } else { None };
    let needs_ecs =
        steps.iter().any(|(_, step)| matches!(step, Step::Launch { .. } | Step::Track { .. } | Step::Find { .. }));
    let target = if needs_ecs { Some(ctx.target(run, namespace).await?) } else { None };

    let mut current = status.clone();
    let fresh: Vec<(u32, i32)> = steps
        .iter()
        .filter_map(|(index, step)| match step {
            Step::Launch { attempt, may_exist: false } => Some((*index, *attempt)),
            _ => None,
        })
        .collect();
    if let (Some(target), false, None) = (&target, fresh.is_empty(), &denied) {
        // Recorded before any RunTask: a restart that finds an intent looks for its task first.
        let intents = batch::launch_intents(&run_view, &fresh, &target.region, now);
        let written = write_status(api, run, &intents).await?;
        current = intents;
        if written.metadata.deletion_timestamp.is_some() {
            info!("not launching: the run is being deleted");
            return Ok(Action::requeue(STOP_RECHECK));
        }
    }

    let run_view = view(run, namespace, &current, &ctx.settings)?;
    let lanes: Vec<(u32, Step, EcsTaskRunStatus)> =
        steps.into_iter().map(|(index, step)| (index, step, batch::lane_status(&current, index))).collect();
    let outcomes = join_all(lanes.iter().map(|(index, step, lane)| {
        let lane_view = batch::lane_view(&run_view, *index, lane);
        lane_step(lane_view, step.clone(), target.as_ref(), ctx, denied.clone())
    }))
    .await;

    let mut plans = Vec::new();
    let mut waits = Vec::new();
    let mut unseen = Vec::new();
    let mut seen = Vec::new();
    let mut first_error = None;
    for ((index, step, lane), outcome) in lanes.iter().zip(outcomes) {
        match outcome {
            Ok(LaneOutcome::Planned(plan, task)) => {
                plans.push((*index, plan));
                seen.extend(task);
            }
            Ok(LaneOutcome::Waiting(after)) => waits.push(after),
            Ok(LaneOutcome::NotSeenYet(follow)) => unseen.push(follow),
            Ok(LaneOutcome::Nothing) => {}
            Err(error) => {
                warn!(index, %error, label = error.label(), "task index held up");
                match step {
                    // The index says why it has not launched, as a run of one task would.
                    Step::Launch { .. } => {
                        let lane_view = batch::lane_view(&run_view, *index, lane);
                        let said = decide::launch_blocked(&lane_view, error.reason(), &error.cause(), now);
                        plans.push((
                            *index,
                            Plan {
                                status: said,
                                stop: None,
                                events: vec![],
                                follow: None,
                                requeue: None,
                                logs: vec![],
                            },
                        ));
                    }
                    // Its task is still followed; the next look tries again.
                    Step::Track { task_arn, every } => {
                        unseen.push(Follow { task_arn: task_arn.clone(), every: *every })
                    }
                    _ => {}
                }
                first_error.get_or_insert(error);
            }
        }
    }

    let mut plan = batch::merge(&run_view, plans, &waits, Timestamp::now());
    if !plan.status.task.phase.is_some_and(|phase| phase.is_terminal()) {
        plan.follows.extend(unseen);
    }
    match (&target, plan.follows.is_empty()) {
        (Some(target), false) => {
            let arns: Vec<String> = plan.follows.iter().map(|f| f.task_arn.clone()).collect();
            let every = plan.follows.iter().map(|f| f.every).min().unwrap_or(run_view.poll_interval());
            ctx.tracker.follow(&key, target, &arns, every);
            for task in &seen {
                ctx.tracker.record(target, task);
            }
        }
        _ => ctx.tracker.forget(&key),
    }
    if let Some(target) = &target {
        read_logs(ctx, target, &plan.logs, &mut plan.status, &mut plan.events).await;
        for stop in &plan.stops {
            match ctx.ecs.stop_task(target, &stop.task_arn, &stop.reason, &actor(run)?).await {
                Ok(Some(task)) => ctx.tracker.record(target, &task),
                Ok(None) => {}
                Err(error) => {
                    first_error.get_or_insert(error.into());
                }
            }
        }
    }
    let written = write_and_tell(run, api, ctx, &status, &plan.status, &plan.events).await;
    if let Some(target) = &target {
        stop_if_run_is_gone(run, ctx, target, &seen, &written).await;
    }
    written?;
    if let Some(error) = first_error {
        return Err(error);
    }
    let requeue = if plan.stops.is_empty() { plan.requeue } else { Some(STOP_RECHECK) };
    Ok(next_action(requeue, !plan.follows.is_empty()))
}

/// One index's step, as the single-task shell would take it.
async fn lane_step<E: Ecs>(
    view: RunView<'_>,
    step: Step,
    target: Option<&EcsTarget>,
    ctx: &Context<E>,
    denied: Option<String>,
) -> Result<LaneOutcome, Error> {
    let now = Timestamp::now;
    match step {
        Step::Idle => Ok(LaneOutcome::Nothing),
        Step::Wait(after) => Ok(LaneOutcome::Waiting(after)),
        Step::Conclude(plan) => Ok(LaneOutcome::Planned(plan, None)),
        // A run that adopts a task has one (the CRD requires count 1).
        Step::Adopt { .. } => Ok(LaneOutcome::Nothing),
        Step::Launch { attempt, may_exist } => {
            if let (Some(why), false) = (&denied, may_exist) {
                let plan = decide::after_launch(&view, attempt, LaunchObservation::Denied(why.clone()), now());
                return Ok(LaneOutcome::Planned(plan, None));
            }
            let target = target.ok_or(Error::NoRegion)?;
            let observation = launch(&view, attempt, may_exist, target, ctx, denied).await?;
            let seen = match &observation {
                LaunchObservation::Started(task) | LaunchObservation::Adopted(task) => Some(task.clone()),
                _ => None,
            };
            Ok(LaneOutcome::Planned(decide::after_launch(&view, attempt, observation, now()), seen))
        }
        Step::Find { attempt } => {
            let target = target.ok_or(Error::NoRegion)?;
            let found = find_started(&view, target, ctx).await?;
            let seen = found.clone();
            Ok(LaneOutcome::Planned(decide::after_find(&view, attempt, found, now()), seen))
        }
        Step::Track { task_arn, every } => {
            let target = target.ok_or(Error::NoRegion)?;
            let Some(observation) = ctx.tracker.observation(target, &task_arn) else {
                return Ok(LaneOutcome::NotSeenYet(Follow { task_arn, every }));
            };
            let observation = track(&view, observation, target, ctx).await?;
            Ok(LaneOutcome::Planned(decide::after_track(&view, observation, now()), None))
        }
    }
}
