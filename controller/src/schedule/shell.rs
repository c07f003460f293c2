//! Carrying out a schedule's plan against the API server: runs created (AlreadyExists is success: the
//! name is the slot's), runs deleted with their uid as precondition, status by server-side apply with the
//! controller's one field manager, Events, metrics.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use tracing::{Instrument, debug, info, info_span, warn};

use super::decide::{self, OwnedRun, RunState, ScheduleEffect, ScheduleView};
use crate::api::{EcsTaskRun, EcsTaskSchedule};
use crate::clock::Clock;
use crate::decide::run::finished_at;
use crate::events::Publisher;
use crate::kube_client::FIELD_MANAGER;
use crate::metrics::Metrics;

/// Deadline of one schedule reconcile: Kubernetes calls only.
pub const RECONCILE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long after its creation a deleted slot's run keeps its name: a create of it sent by a reconcile
/// that found the name free before lands within that reconcile's deadline (`RECONCILE_TIMEOUT`), plus a
/// margin for the API server's clock, which stamped the creation.
pub const SLOT_SETTLE: Duration = Duration::from_secs(RECONCILE_TIMEOUT.as_secs() + 15);

/// What the schedules' reconciles share.
pub struct ScheduleContext {
    pub client: Client,
    /// Runs created by schedules (labelled `ecsrun.dev/schedule`), as the watch last saw them.
    pub runs: Store<EcsTaskRun>,
    pub events: Publisher,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
}

/// Errors of a schedule's reconcile; `label()` names the metric series.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("object has no {0}")]
    MissingMetadata(&'static str),
    #[error("reconcile did not finish within {0:?}")]
    Timeout(Duration),
    #[error("the cache of the schedules' runs has not listed them yet")]
    CacheNotReady,
}

impl Error {
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "schedule_kube_api",
            Error::MissingMetadata(_) => "schedule_invalid_object",
            Error::Timeout(_) => "schedule_reconcile_timeout",
            Error::CacheNotReady => "schedule_cache_not_ready",
        }
    }
}

/// Reconciles one EcsTaskSchedule.
pub async fn reconcile(schedule: Arc<EcsTaskSchedule>, ctx: Arc<ScheduleContext>) -> Result<Action, Error> {
    let namespace = schedule.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let span = info_span!("reconcile_schedule", namespace = %namespace, name = %schedule.name_any());
    let work = apply(&schedule, &namespace, &ctx).instrument(span);
    crate::metrics::bounded_reconcile(&ctx.metrics, RECONCILE_TIMEOUT, work, Error::Timeout).await
}

/// Backs off on errors; the error shows in the controller's log and metrics.
pub fn error_policy(schedule: Arc<EcsTaskSchedule>, error: &Error, ctx: Arc<ScheduleContext>) -> Action {
    ctx.metrics.reconcile_errors.with_label_values(&[error.label()]).inc();
    warn!(namespace = ?schedule.namespace(), name = %schedule.name_any(), error = %error, label = error.label(), "schedule reconcile failed");
    Action::requeue(ERROR_REQUEUE)
}

/// How soon a schedule reconcile that failed is tried again.
pub const ERROR_REQUEUE: Duration = Duration::from_secs(5);

async fn apply(schedule: &EcsTaskSchedule, namespace: &str, ctx: &ScheduleContext) -> Result<Action, Error> {
    // Deleting a schedule deletes its runs through their owner reference (each stopping its tasks).
    if schedule.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    // Decided on an empty cache, Forbid would see no active run and history no runs at all.
    if tokio::time::timeout(Duration::from_secs(5), ctx.runs.wait_until_ready()).await.is_err() {
        return Err(Error::CacheNotReady);
    }
    let uid = schedule.uid().ok_or(Error::MissingMetadata("uid"))?;
    let created_at = schedule
        .meta()
        .creation_timestamp
        .as_ref()
        .map(|time| time.0)
        .ok_or(Error::MissingMetadata("creationTimestamp"))?;
    let runs = owned_runs(&ctx.runs, namespace, &uid);
    let status = schedule.status.clone().unwrap_or_default();
    let view = ScheduleView {
        generation: schedule.meta().generation,
        created_at,
        spec: &schedule.spec,
        status: &status,
        runs: &runs,
    };
    let now = ctx.clock.now();
    let plan = decide::decide(&view, now);
    let runs_api: Api<EcsTaskRun> = Api::namespaced(ctx.client.clone(), namespace);
    for effect in &plan.effects {
        match effect {
            ScheduleEffect::CreateRun { slot } => create_run(schedule, &runs_api, *slot, now, ctx).await?,
            ScheduleEffect::DeleteRun { name, uid, reason } => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: None }),
                    propagation_policy: Some(PropagationPolicy::Background),
                    ..DeleteParams::default()
                };
                match runs_api.delete(name, &params).await {
                    Ok(_) => info!(run = %name, reason, "deleted run"),
                    // Gone already, or another run under its name: nothing of ours to delete.
                    Err(kube::Error::Api(answer)) if answer.code == 404 || answer.code == 409 => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
    }
    if schedule.status.as_ref() != Some(&plan.status) {
        let api: Api<EcsTaskSchedule> = Api::namespaced(ctx.client.clone(), namespace);
        let body = serde_json::json!({
            "apiVersion": "ecsrun.dev/v1alpha1",
            "kind": "EcsTaskSchedule",
            "status": plan.status,
        });
        api.patch_status(&schedule.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body))
            .await?;
    }
    if plan.missed > 0 {
        ctx.metrics.schedule_missed_slots.with_label_values(&[namespace]).inc_by(plan.missed as u64);
    }
    for event in &plan.events {
        publish(schedule, ctx, event.warning, event.reason, &event.note).await;
    }
    Ok(match plan.requeue_after {
        // A second past the slot: a timer that fires a hair early would find it not yet due.
        Some(wait) => Action::requeue(wait + Duration::from_secs(1)),
        None => Action::await_change(),
    })
}

async fn create_run(
    schedule: &EcsTaskSchedule,
    api: &Api<EcsTaskRun>,
    slot: Timestamp,
    now: Timestamp,
    ctx: &ScheduleContext,
) -> Result<(), Error> {
    let name = schedule.run_name_for_slot(slot);
    // The copies decided on may lag: the slot's run may exist, or have been created, recorded and deleted
    // since. The API server says, in this order: the run first, then the schedule. A run created after
    // the first look is one this create may race with, and it keeps its name until this reconcile's
    // deadline has passed (`SLOT_SETTLE`); one gone by then had its slot recorded before the second look.
    if api.get_opt(&name).await?.is_some() {
        debug!(run = %name, %slot, "run for slot exists already");
        return Ok(());
    }
    let schedules: Api<EcsTaskSchedule> =
        Api::namespaced(ctx.client.clone(), &schedule.namespace().unwrap_or_default());
    let fresh = schedules.get(&schedule.name_any()).await?;
    let recorded =
        fresh.status.as_ref().and_then(|status| status.last_schedule_time.as_ref()).is_some_and(|last| last.0 >= slot);
    if recorded || fresh.uid() != schedule.uid() {
        debug!(run = %name, %slot, "slot recorded since this copy was read: not created");
        return Ok(());
    }
    let run = schedule.run(name.clone(), slot, false);
    match api.create(&PostParams::default(), &run).await {
        Ok(_) => {
            let lag = crate::decide::duration_between(slot, now);
            let namespace = schedule.namespace().unwrap_or_default();
            ctx.metrics.schedule_runs_created.with_label_values(&[namespace.as_str()]).inc();
            ctx.metrics.schedule_start_lag.observe(lag.as_secs_f64());
            info!(run = %name, %slot, lag_seconds = lag.as_secs_f64(), "created run for slot");
            let note = format!("created run {name} for the slot of {slot}");
            publish(schedule, ctx, false, decide::reason::RUN_CREATED, &note).await;
            Ok(())
        }
        // Another replica, or this one before a crash, created it: the slot has its run.
        Err(kube::Error::Api(answer)) if answer.code == 409 && answer.reason == "AlreadyExists" => {
            debug!(run = %name, "run for slot exists already");
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

async fn publish(schedule: &EcsTaskSchedule, ctx: &ScheduleContext, warning: bool, reason: &str, note: &str) {
    if let Err(error) = ctx.events.publish(&schedule.object_ref(&()), warning, reason, note).await {
        warn!(%error, reason, "could not publish event");
    }
}

/// The runs `uid` owns in `namespace`, as the decision reads them.
fn owned_runs(store: &Store<EcsTaskRun>, namespace: &str, uid: &str) -> Vec<OwnedRun> {
    store
        .state()
        .iter()
        .filter(|run| run.namespace().as_deref() == Some(namespace))
        .filter(|run| run.owner_references().iter().any(|owner| owner.uid == uid && owner.controller == Some(true)))
        .map(|run| owned_run(run))
        .collect()
}

fn owned_run(run: &EcsTaskRun) -> OwnedRun {
    let slot = run.schedule_origin().and_then(|origin| origin.slot());
    let created = run.meta().creation_timestamp.as_ref().map_or(Timestamp::UNIX_EPOCH, |time| time.0);
    let state = match run.status.as_ref().and_then(|status| status.task.phase) {
        Some(crate::api::Phase::Succeeded) => {
            RunState::Succeeded { finished_at: run.status.as_ref().and_then(finished_at).unwrap_or(created) }
        }
        Some(crate::api::Phase::Failed | crate::api::Phase::Unknown) => {
            RunState::Failed { finished_at: run.status.as_ref().and_then(finished_at).unwrap_or(created) }
        }
        _ => RunState::Active,
    };
    OwnedRun {
        name: run.name_any(),
        uid: run.uid().unwrap_or_default(),
        slot,
        state,
        deleting: run.meta().deletion_timestamp.is_some(),
    }
}
