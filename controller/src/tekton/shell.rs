//! Carrying out a CustomRun against the API server: its template read, its EcsTaskRun created
//! (AlreadyExists is success when the run is this CustomRun's), the run told to stop when the CustomRun
//! is cancelled, and the CustomRun's status written by server-side apply with the controller's one field
//! manager.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use tracing::{Instrument, info, info_span, warn};

use super::decide::{self, Template, TemplateRun};
use super::{CustomRun, CustomRunStatus};
use crate::api::{EcsTaskRun, EcsTaskRunSpec};
use crate::clock::Clock;
use crate::kube_client::FIELD_MANAGER;
use crate::metrics::Metrics;

/// Deadline of one CustomRun reconcile: Kubernetes calls only.
pub const RECONCILE_TIMEOUT: Duration = Duration::from_secs(30);
/// How soon a CustomRun reconcile that failed is tried again.
pub const ERROR_REQUEUE: Duration = Duration::from_secs(5);

/// What the CustomRuns' reconciles share.
pub struct TektonContext {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
}

/// Errors of a CustomRun's reconcile; `label()` names the metric series.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("object has no {0}")]
    MissingMetadata(&'static str),
    #[error("reconcile did not finish within {0:?}")]
    Timeout(Duration),
    #[error("EcsTaskRun {0} exists and does not belong to this CustomRun")]
    NotOurs(String),
}

impl Error {
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "customrun_kube_api",
            Error::MissingMetadata(_) => "customrun_invalid_object",
            Error::Timeout(_) => "customrun_reconcile_timeout",
            Error::NotOurs(_) => "customrun_name_taken",
        }
    }
}

/// Reconciles one CustomRun (those of other custom tasks are passed over).
pub async fn reconcile(custom_run: Arc<CustomRun>, ctx: Arc<TektonContext>) -> Result<Action, Error> {
    let Some(template) = decide::template(&custom_run) else { return Ok(Action::await_change()) };
    let namespace = custom_run.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let span = info_span!("reconcile_customrun", namespace = %namespace, name = %custom_run.name_any());
    let work = apply(&custom_run, template, &namespace, &ctx).instrument(span);
    crate::metrics::bounded_reconcile(&ctx.metrics, RECONCILE_TIMEOUT, work, Error::Timeout).await
}

/// Backs off on errors; the error shows in the controller's log and metrics.
pub fn error_policy(custom_run: Arc<CustomRun>, error: &Error, ctx: Arc<TektonContext>) -> Action {
    ctx.metrics.reconcile_errors.with_label_values(&[error.label()]).inc();
    warn!(namespace = ?custom_run.namespace(), name = %custom_run.name_any(), %error, label = error.label(), "CustomRun reconcile failed");
    Action::requeue(ERROR_REQUEUE)
}

async fn apply(
    custom_run: &CustomRun,
    template: Result<Template<'_>, String>,
    namespace: &str,
    ctx: &TektonContext,
) -> Result<Action, Error> {
    // Done is final: Tekton has read the outcome, and the run's own finalizer sees its tasks through.
    if custom_run.is_done() || custom_run.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let runs: Api<EcsTaskRun> = Api::namespaced(ctx.client.clone(), namespace);
    let name = custom_run.name_any();
    let uid = custom_run.uid().ok_or(Error::MissingMetadata("uid"))?;
    let mut run = runs.get_opt(&name).await?;
    if let Some(existing) = &run
        && !existing.owner_references().iter().any(|owner| owner.uid == uid)
    {
        return Err(Error::NotOurs(name));
    }
    let mut refusal = None;
    if run.is_none() && !custom_run.is_cancelled() {
        match resolve(&runs, template).await? {
            Err(why) => refusal = Some(why),
            Ok(found) => match decide::desired_run(custom_run, found) {
                Err(why) => refusal = Some(why),
                Ok(desired) => run = Some(create(&runs, desired, &uid, ctx).await?),
            },
        }
    }
    if let Some(current) = &run
        && let Some(reason) = decide::stop_wanted(custom_run, current)
    {
        let patch = serde_json::json!({"spec": {"stop": true, "stopReason": reason}});
        run = Some(runs.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?);
        info!("cancelled: its EcsTaskRun stops its tasks");
    }
    let status = decide::status(custom_run, run.as_ref(), refusal.as_deref(), ctx.clock.now());
    write_status(custom_run, namespace, status, ctx).await?;
    Ok(Action::await_change())
}

/// The template's spec and metadata, or why there is none.
async fn resolve(
    runs: &Api<EcsTaskRun>,
    template: Result<Template<'_>, String>,
) -> Result<Result<TemplateRun, String>, Error> {
    Ok(match template {
        Err(why) => Err(why),
        Ok(Template::Named(name)) => match runs.get_opt(name).await? {
            None => Err(format!("EcsTaskRun {name} (the template customRef names) does not exist")),
            Some(found) => Ok(TemplateRun {
                spec: found.spec.clone(),
                labels: found.labels().clone(),
                annotations: found.annotations().clone(),
            }),
        },
        Ok(Template::Embedded { spec, metadata }) => serde_json::from_value::<EcsTaskRunSpec>(spec.clone())
            .map(|spec| TemplateRun {
                spec,
                labels: metadata.map(|m| m.labels.clone()).unwrap_or_default(),
                annotations: metadata.map(|m| m.annotations.clone()).unwrap_or_default(),
            })
            .map_err(|error| format!("taskSpec.spec is not an EcsTaskRun spec: {error}")),
    })
}

/// Creates the run; one there already (a reconcile before this one's write was seen) is the one.
async fn create(
    runs: &Api<EcsTaskRun>,
    desired: EcsTaskRun,
    uid: &str,
    ctx: &TektonContext,
) -> Result<EcsTaskRun, Error> {
    let name = desired.name_any();
    match runs
        .create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() }, &desired)
        .await
    {
        Ok(created) => {
            info!(run = %name, "EcsTaskRun created for the CustomRun");
            ctx.metrics.custom_runs_created.inc();
            Ok(created)
        }
        Err(kube::Error::Api(answer)) if answer.code == 409 => {
            let existing = runs.get(&name).await?;
            if existing.owner_references().iter().any(|owner| owner.uid == uid) {
                Ok(existing)
            } else {
                Err(Error::NotOurs(name))
            }
        }
        Err(error) => Err(error.into()),
    }
}

async fn write_status(
    custom_run: &CustomRun,
    namespace: &str,
    status: CustomRunStatus,
    ctx: &TektonContext,
) -> Result<(), Error> {
    if custom_run.status.as_ref() == Some(&status) {
        return Ok(());
    }
    if let Some(succeeded) = status.conditions.first().filter(|c| c.status != "Unknown") {
        let outcome = if succeeded.status == "True" { "succeeded" } else { "failed" };
        ctx.metrics.custom_runs_finished.with_label_values(&[outcome]).inc();
        info!(outcome, reason = ?succeeded.reason, "CustomRun done");
    }
    let api: Api<CustomRun> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = serde_json::json!({
        "apiVersion": "tekton.dev/v1beta1",
        "kind": "CustomRun",
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&custom_run.name_any(), &params, &Patch::Apply(&patch)).await?;
    Ok(())
}
