//! The shell around Kueue for a queued run: its Workload created (owned by the run, named by its uid, so
//! never doubled), kept `active` as `spec.suspend` says, read for the admission the decision is given, and
//! its status written as Kueue's job integrations write it: quota given back once an evicted run's tasks
//! have stopped, `Finished` once the run has ended. The rules are `crate::queue`'s; this only does I/O.

use jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::{Context, Error};
use crate::api::{EcsTaskRun, EcsTaskRunStatus, PRIORITY_CLASS_LABEL, QueueStatus};
use crate::decide::Admission;
use crate::ecs::{Ecs, TaskDefinitionInfo};
use crate::queue::{self, StatusChange, Workload};

/// What the shell learnt of a queued run's Workload.
pub(super) struct Queued {
    pub admission: Admission,
    pub status: QueueStatus,
    /// The Workload as read (None: it could not be created yet).
    pub workload: Option<Workload>,
    /// The capacity provider the admitting ResourceFlavor stands for, if it names one.
    pub capacity_provider: Option<String>,
}

fn workload_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(queue::GROUP, queue::VERSION, "Workload"))
}

/// Reads (creating it if it is missing) the Workload of `run`, waiting in `local_queue`, and gives back
/// what it means for the run.
pub(super) async fn admission<E: Ecs>(
    ctx: &Context<E>,
    run: &EcsTaskRun,
    namespace: &str,
    local_queue: &str,
    status: &EcsTaskRunStatus,
) -> Result<Queued, Error> {
    let name = run.metadata.name.as_deref().ok_or(Error::MissingMetadata("name"))?;
    let uid = run.metadata.uid.as_deref().ok_or(Error::MissingMetadata("uid"))?;
    let workload_name = queue::name_for(name, uid);
    let api: Api<Workload> = Api::namespaced(ctx.client.clone(), namespace);
    let waiting = |why: String| Queued {
        admission: Admission::Waiting(why),
        status: queue::queue_status(local_queue, &workload_name, None),
        workload: None,
        capacity_provider: None,
    };
    let found = api.get_opt(&workload_name).await.map_err(Error::Kube)?;
    let workload = match found {
        Some(workload) => workload,
        // A run that has ended needs no quota: a Workload deleted behind its back is not created again.
        None if status.task.phase.is_some_and(|phase| phase.is_terminal()) => {
            return Ok(waiting("the run has ended".to_owned()));
        }
        None => match create(ctx, run, namespace, local_queue, &workload_name, &api).await? {
            Ok(workload) => workload,
            Err(why) => return Ok(waiting(why)),
        },
    };
    if !workload.metadata.owner_references.iter().flatten().any(|owner| owner.uid == uid) {
        // Not this run's (a name taken before it): never used, never changed.
        let why = format!("Workload {workload_name} exists and does not belong to this run");
        return Ok(waiting(why));
    }
    let workload = sync_active(&api, run, status, workload).await?;
    let admission = queue::admission_of(&workload);
    let capacity_provider = match (&admission, queue::admitted_flavor(&workload)) {
        (Admission::Admitted, Some(flavor)) => capacity_provider_of(ctx, flavor).await?,
        _ => None,
    };
    Ok(Queued {
        admission,
        status: queue::queue_status(local_queue, &workload_name, Some(&workload)),
        workload: Some(workload),
        capacity_provider,
    })
}

/// Creates the run's Workload. `Ok(Err(why))`: it cannot be made yet (its task's size or its priority
/// class unknown), and why.
async fn create<E: Ecs>(
    ctx: &Context<E>,
    run: &EcsTaskRun,
    namespace: &str,
    local_queue: &str,
    workload_name: &str,
    api: &Api<Workload>,
) -> Result<Result<Workload, String>, Error> {
    let definition = match task_definition(ctx, run, namespace).await {
        Ok(definition) => definition,
        Err(error) if error.is_routine() => return Err(error),
        Err(error) => return Ok(Err(format!("the task's size cannot be read: {error}"))),
    };
    let Some(size) = queue::task_size(&run.spec, &definition.size) else {
        return Ok(Err(
            "the task has no CPU and memory to queue by: set them in the task definition or in spec.overrides"
                .to_owned(),
        ));
    };
    let priority = match run.labels().get(PRIORITY_CLASS_LABEL) {
        None => None,
        Some(class) => match priority_of(ctx, class).await? {
            Some(value) => Some((class.clone(), value)),
            None => return Ok(Err(format!("the WorkloadPriorityClass {class} does not exist"))),
        },
    };
    let mut workload = Workload::new(workload_name, queue::desired(run, local_queue, size, priority));
    workload.metadata.namespace = Some(namespace.to_owned());
    let (key, value) = queue::MANAGED_BY_LABEL;
    workload.metadata.labels = Some([(key.to_owned(), value.to_owned())].into());
    workload.metadata.finalizers = Some(vec![queue::RESOURCE_IN_USE.to_owned()]);
    workload.metadata.owner_references = run.controller_owner_ref(&()).map(|owner| vec![owner]);
    match api
        .create(&PostParams { field_manager: Some(super::FIELD_MANAGER.to_owned()), ..Default::default() }, &workload)
        .await
    {
        Ok(created) => {
            info!(workload = workload_name, queue = local_queue, "created the run's Workload");
            ctx.metrics.workloads_created.inc();
            Ok(Ok(created))
        }
        // Created by an earlier try whose answer was lost (or a replica racing): the one there is used.
        Err(kube::Error::Api(answer)) if answer.code == 409 => {
            api.get(workload_name).await.map(Ok).map_err(Error::Kube)
        }
        Err(error) => Err(Error::Kube(error)),
    }
}

/// The task definition the run launches, for its size (cached by the ECS adapter).
async fn task_definition<E: Ecs>(
    ctx: &Context<E>,
    run: &EcsTaskRun,
    namespace: &str,
) -> Result<TaskDefinitionInfo, Error> {
    let target = ctx.target(run, namespace).await?;
    let info = match (&run.spec.task_definition_template, &run.spec.task_definition) {
        (Some(template), _) => ctx.templates.ensure(&*ctx.ecs, &target, template, namespace).await?,
        (None, Some(reference)) => ctx.ecs.describe_task_definition(&target, reference).await?,
        (None, None) => TaskDefinitionInfo::default(),
    };
    Ok(info)
}

/// The value of WorkloadPriorityClass `class`, None if there is none.
async fn priority_of<E: Ecs>(ctx: &Context<E>, class: &str) -> Result<Option<i32>, Error> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(queue::GROUP, queue::VERSION, "WorkloadPriorityClass"));
    let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &resource);
    let found = api.get_opt(class).await.map_err(Error::Kube)?;
    Ok(found
        .and_then(|object| object.data.get("value")?.as_i64())
        .map(|value| value.clamp(i32::MIN.into(), i32::MAX.into()) as i32))
}

/// The capacity provider ResourceFlavor `flavor` stands for, if it names one (None also when it is gone:
/// the run launches as its spec says).
async fn capacity_provider_of<E: Ecs>(ctx: &Context<E>, flavor: &str) -> Result<Option<String>, Error> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(queue::GROUP, queue::VERSION, "ResourceFlavor"));
    let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &resource);
    let Some(object) = api.get_opt(flavor).await.map_err(Error::Kube)? else { return Ok(None) };
    let object = serde_json::to_value(object).map_err(|error| Error::Undecodable(error.to_string()))?;
    Ok(queue::flavor_capacity_provider(&object).map(str::to_owned))
}

/// Keeps the Workload's `active` as the run's `spec.suspend` says (`queue::active_change`): a suspended
/// run holds no quota.
async fn sync_active(
    api: &Api<Workload>,
    run: &EcsTaskRun,
    status: &EcsTaskRunStatus,
    workload: Workload,
) -> Result<Workload, Error> {
    let Some(active) = queue::active_change(&workload, run.spec.suspend, status) else { return Ok(workload) };
    let patch = serde_json::json!({"spec": {"active": active}});
    api.patch(&workload.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(Error::Kube)
}

/// What the run's state asks of its Workload now (read fresh), if anything.
pub(super) enum Settling {
    /// Remove ecsrun's hold (`queue::lets_go`).
    LetGo(Workload),
    /// Write this change to the status of the Workload, as read (`object`).
    Status { object: serde_json::Value, change: StatusChange },
}

impl Settling {
    /// Whether it gives quota back while the run lives on (an evicted Workload's release, a Workload
    /// deleted by hand let go): the run's own status must be written first, conditional on the version
    /// decided on, so that a launch recorded in a newer copy (another replica's) makes it fail instead.
    pub fn releases_quota(&self) -> bool {
        matches!(self, Settling::LetGo(_) | Settling::Status { change: StatusChange::Release { .. }, .. })
    }
}

/// Reads the Workload `name` and what the run's `status` asks of it (`queue::lets_go`,
/// `queue::status_change`).
pub(super) async fn settling<E: Ecs>(
    ctx: &Context<E>,
    namespace: &str,
    name: &str,
    spec: &crate::api::EcsTaskRunSpec,
    status: &EcsTaskRunStatus,
) -> Result<Option<Settling>, Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &workload_resource());
    let Some(object) = api.get_opt(name).await.map_err(Error::Kube)? else { return Ok(None) };
    let undecodable = |error: serde_json::Error| Error::Undecodable(format!("Workload {name}: {error}"));
    let object = serde_json::to_value(object).map_err(undecodable)?;
    let workload: Workload = serde_json::from_value(object.clone()).map_err(undecodable)?;
    if queue::lets_go(&workload, status) {
        return Ok(Some(Settling::LetGo(workload)));
    }
    Ok(queue::status_change(&workload, spec, status).map(|change| Settling::Status { object, change }))
}

/// Carries out `settling`: on the object as read, every field Kueue keeps in it untouched, conditional on
/// its resourceVersion (a conflict: the next reconcile reads it again).
pub(super) async fn settle<E: Ecs>(
    ctx: &Context<E>,
    namespace: &str,
    settling: Settling,
    now: Timestamp,
) -> Result<(), Error> {
    let (mut object, change) = match settling {
        Settling::LetGo(workload) => return let_go(ctx, namespace, &workload).await,
        Settling::Status { object, change } => (object, change),
    };
    let name = object.pointer("/metadata/name").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
    let undecodable = |error: serde_json::Error| Error::Undecodable(format!("Workload {name}: {error}"));
    queue::apply_change(&mut object, &change, now);
    let body: DynamicObject = serde_json::from_value(object).map_err(undecodable)?;
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &workload_resource());
    match api.replace_status(&name, &PostParams::default(), &body).await {
        Ok(_) => {
            match &change {
                StatusChange::Finish { .. } => {
                    info!(workload = %name, "marked the Workload finished: its quota is free")
                }
                StatusChange::Reclaim { count } => {
                    info!(workload = %name, count, "gave back the share of the tasks the run no longer needs")
                }
                StatusChange::Release { .. } => {
                    ctx.metrics.workload_evictions.inc();
                    info!(workload = %name, "gave back the evicted Workload's quota: the run waits for admission again")
                }
            }
            Ok(())
        }
        Err(kube::Error::Api(answer)) if answer.code == 409 || answer.code == 404 => {
            warn!(workload = %name, code = answer.code, "the Workload changed while written; read again next time");
            Ok(())
        }
        Err(error) => Err(Error::Kube(error)),
    }
}

/// Removes ecsrun's hold on a Workload (`queue::RESOURCE_IN_USE`), conditional on its finalizers being as
/// read: Kueue frees its quota, and a Workload being deleted goes.
async fn let_go<E: Ecs>(ctx: &Context<E>, namespace: &str, workload: &Workload) -> Result<(), Error> {
    let name = workload.name_any();
    let finalizers = workload.metadata.finalizers.clone().unwrap_or_default();
    let kept: Vec<&String> = finalizers.iter().filter(|f| *f != queue::RESOURCE_IN_USE).collect();
    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
        {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
        {"op": "replace", "path": "/metadata/finalizers", "value": kept},
    ]))
    .map_err(|error| Error::Undecodable(error.to_string()))?;
    let api: Api<Workload> = Api::namespaced(ctx.client.clone(), namespace);
    match api.patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch)).await {
        Ok(_) => {
            info!(workload = %name, "let the Workload go: no task of the run runs");
            Ok(())
        }
        // Changed since read (422: the test failed) or gone: looked at again next time.
        Err(kube::Error::Api(answer)) if matches!(answer.code, 404 | 409 | 422) => Ok(()),
        Err(error) => Err(Error::Kube(error)),
    }
}

/// A deleted run's Workload, once its tasks have stopped: ecsrun's hold on it removed and the Workload
/// deleted, so its quota is free at once (its owner reference would delete it, but the hold would keep it).
pub(super) async fn release_deleted<E: Ecs>(ctx: &Context<E>, run: &EcsTaskRun, namespace: &str) -> Result<(), Error> {
    if !ctx.settings.kueue || queue::local_queue(run).is_none() {
        return Ok(());
    }
    let name = run.metadata.name.as_deref().ok_or(Error::MissingMetadata("name"))?;
    let uid = run.metadata.uid.as_deref().ok_or(Error::MissingMetadata("uid"))?;
    let api: Api<Workload> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(workload) = api.get_opt(&queue::name_for(name, uid)).await.map_err(Error::Kube)? else { return Ok(()) };
    if !workload.metadata.owner_references.iter().flatten().any(|owner| owner.uid == uid) {
        return Ok(());
    }
    if workload.metadata.finalizers.iter().flatten().any(|f| f == queue::RESOURCE_IN_USE) {
        let_go(ctx, namespace, &workload).await?;
    }
    match api.delete(&workload.name_any(), &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(answer)) if answer.code == 404 => Ok(()),
        Err(error) => Err(Error::Kube(error)),
    }
}

/// A Workload of ecsrun's whose run is gone (created by a reconcile that raced the run's deletion, say):
/// read the run of its owner's name fresh, and if it is gone or another, let the Workload go and delete
/// it, so no quota stays held for a run that no longer exists.
pub async fn release_orphaned<E: Ecs>(ctx: &Context<E>, workload: &Workload) -> Result<(), Error> {
    let Some(namespace) = workload.metadata.namespace.as_deref() else { return Ok(()) };
    let Some(owner) = workload.metadata.owner_references.iter().flatten().find(|owner| owner.kind == "EcsTaskRun")
    else {
        return Ok(());
    };
    let runs: Api<EcsTaskRun> = Api::namespaced(ctx.client.clone(), namespace);
    let run = runs.get_opt(&owner.name).await.map_err(Error::Kube)?;
    if !queue::orphaned(workload, run.as_ref()) {
        return Ok(());
    }
    info!(workload = %workload.name_any(), run = %owner.name, "the Workload's run is gone: letting it go");
    let_go(ctx, namespace, workload).await?;
    let api: Api<Workload> = Api::namespaced(ctx.client.clone(), namespace);
    match api.delete(&workload.name_any(), &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(answer)) if answer.code == 404 => Ok(()),
        Err(error) => Err(Error::Kube(error)),
    }
}
