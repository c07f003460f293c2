//! Kueue's `Workload` (kueue.x-k8s.io/v1beta2, as the pinned Kueue serves it), as far as ecsrun writes and
//! reads it, and the pure rules between a run and its Workload: what the Workload asks for (`desired`),
//! what Kueue's answer means for the run (`admission_of`), and when ecsrun gives quota back (`release`).
//!
//! Only the fields ecsrun uses are modelled; writes to the status go through the object as read
//! (`serde_json::Value`), so nothing Kueue keeps there is lost.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

use crate::api::{EcsTaskRun, EcsTaskRunSpec, EcsTaskRunStatus, Phase, QueueStatus};
use crate::decide::Admission;

/// Kueue's API group and the version ecsrun speaks.
pub const GROUP: &str = "kueue.x-k8s.io";
pub const VERSION: &str = "v1beta2";
/// The label (and selector) of the Workloads ecsrun makes: ecsrun watches only those.
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "ecsrun");
pub const MANAGED_BY_SELECTOR: &str = "app.kubernetes.io/managed-by=ecsrun";
/// The finalizer Kueue's job integrations put on their Workloads: a Workload deleted by hand keeps its
/// quota until the job's tasks have stopped and the integration lets it go.
pub const RESOURCE_IN_USE: &str = "kueue.x-k8s.io/resource-in-use";
/// The label of a ResourceFlavor's `nodeLabels` that says which ECS capacity provider a run admitted in
/// that flavor launches on (`FARGATE`, `FARGATE_SPOT`, or a cluster's own).
pub const CAPACITY_PROVIDER_LABEL: &str = "ecsrun.dev/capacity-provider";
/// The one pod set of a run's Workload: all its task indexes alike.
pub const POD_SET: &str = "tasks";

/// Workload condition types (Kueue's `WorkloadQuotaReserved`, ...).
pub mod condition {
    pub const QUOTA_RESERVED: &str = "QuotaReserved";
    pub const ADMITTED: &str = "Admitted";
    pub const EVICTED: &str = "Evicted";
    pub const FINISHED: &str = "Finished";
    pub const REQUEUED: &str = "Requeued";
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "kueue.x-k8s.io",
    version = "v1beta2",
    kind = "Workload",
    namespaced,
    status = "WorkloadStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    pub pod_sets: Vec<PodSet>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub queue_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_ref: Option<PriorityClassRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_execution_time_seconds: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodSet {
    pub name: String,
    pub count: i32,
    pub template: serde_json::Value,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PriorityClassRef {
    pub group: String,
    pub kind: String,
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<WorkloadAdmission>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reclaimable_pods: Vec<ReclaimablePod>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ReclaimablePod {
    pub name: String,
    pub count: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadAdmission {
    pub cluster_queue: String,
    #[serde(default)]
    pub pod_set_assignments: Vec<PodSetAssignment>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodSetAssignment {
    pub name: String,
    #[serde(default)]
    pub flavors: BTreeMap<String, String>,
}

/// The LocalQueue a run waits in, if it is queued. A run following a task started elsewhere
/// (`spec.taskArn`) is never queued: it launches nothing.
pub fn local_queue(run: &EcsTaskRun) -> Option<&str> {
    if run.spec.task_arn.is_some() {
        return None;
    }
    run.metadata.labels.as_ref()?.get(crate::api::QUEUE_NAME_LABEL).map(String::as_str).filter(|q| !q.is_empty())
}

/// The name of run `name`'s Workload (uid `uid`): the run's name and ten hex digits of its uid's hash, so
/// a run deleted and created again under its name never meets its predecessor's Workload.
pub fn name_for(name: &str, uid: &str) -> String {
    use sha2::{Digest, Sha256};
    let suffix: String = Sha256::digest(uid.as_bytes()).iter().take(5).map(|byte| format!("{byte:02x}")).collect();
    let head: String = name.chars().take(253 - 1 - suffix.len()).collect();
    format!("{}-{suffix}", head.trim_end_matches(['-', '.']))
}

/// Whether ecsrun must let the Workload go because the run that owned it (`owner_uid`) is gone: `run` is
/// the run of that name as the API server has it now (None: none).
pub fn orphaned(workload: &Workload, run: Option<&EcsTaskRun>) -> bool {
    let holding = workload.metadata.finalizers.iter().flatten().any(|f| f == RESOURCE_IN_USE);
    let owner = workload.metadata.owner_references.iter().flatten().find(|owner| owner.kind == "EcsTaskRun");
    let owner_there =
        owner.is_some_and(|owner| run.is_some_and(|run| run.metadata.uid.as_deref() == Some(owner.uid.as_str())));
    holding && owner.is_some() && !owner_there
}

/// What ECS bills one task for: CPU units (1,024 to a vCPU) and MiB of memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskSize {
    pub cpu_units: i64,
    pub memory_mib: i64,
}

/// The size of one task of `spec` as ECS will bill it: the task-level override, else the task
/// definition's task-level size (`definition`), else the sum of its containers' after their overrides.
/// None when neither the spec nor the task definition gives a CPU and a memory.
pub fn task_size(spec: &EcsTaskRunSpec, definition: &crate::ecs::TaskDefinitionSize) -> Option<TaskSize> {
    let no_overrides = crate::api::TaskOverrides::default();
    let overrides = spec.overrides.as_ref().unwrap_or(&no_overrides);
    let container = |name: &str| overrides.container_overrides.iter().find(|c| c.name == name);
    let summed = |field: fn(&crate::ecs::ContainerSize) -> Option<i64>,
                  overridden: fn(&crate::api::ContainerOverride) -> Option<i64>| {
        let sizes: Vec<Option<i64>> = definition
            .containers
            .iter()
            .map(|c| container(&c.name).and_then(overridden).or_else(|| field(c)))
            .collect();
        (!sizes.is_empty() && sizes.iter().all(Option::is_some)).then(|| sizes.into_iter().flatten().sum())
    };
    let cpu = overrides
        .cpu
        .as_deref()
        .and_then(crate::policy::cpu_units)
        .or(definition.cpu_units)
        .or_else(|| summed(|c| c.cpu_units, |o| o.cpu.map(i64::from)))?;
    let memory = overrides
        .memory
        .as_deref()
        .and_then(crate::policy::memory_mib)
        .or(definition.memory_mib)
        .or_else(|| summed(|c| c.memory_mib, |o| o.memory.or(o.memory_reservation).map(i64::from)))?;
    Some(TaskSize { cpu_units: cpu, memory_mib: memory })
}

/// The Workload run `run` needs, before its name, namespace and owner are set (`Queueing::ensure` sets
/// them): one pod set of as many tasks as run at once, each asking what ECS bills a task for, in the
/// run's LocalQueue, with its priority, execution-time limit and `active` as the spec says.
pub fn desired(run: &EcsTaskRun, queue: &str, size: TaskSize, priority: Option<(String, i32)>) -> WorkloadSpec {
    let spec = &run.spec;
    let at_once = spec.parallelism.unwrap_or(spec.count).min(spec.count).max(1);
    // Kueue charges quota per resource name: CPU in millicores (1,024 units = 1,000m), memory in MiB.
    let millicores = (size.cpu_units.max(0) as u64 * 1000).div_ceil(1024);
    let template = serde_json::json!({
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "task",
                "resources": {"requests": {"cpu": format!("{millicores}m"), "memory": format!("{}Mi", size.memory_mib)}},
            }],
        },
    });
    let maximum_execution_time_seconds =
        spec.wait.timeout.as_ref().and_then(|t| t.get().ok()).map(|t| t.as_secs().clamp(1, i32::MAX as u64) as i32);
    let (priority_class_ref, priority) = match priority {
        Some((name, value)) => (
            Some(PriorityClassRef { group: GROUP.to_owned(), kind: "WorkloadPriorityClass".to_owned(), name }),
            Some(value),
        ),
        None => (None, None),
    };
    WorkloadSpec {
        pod_sets: vec![PodSet { name: POD_SET.to_owned(), count: at_once, template }],
        queue_name: queue.to_owned(),
        priority_class_ref,
        priority,
        active: Some(!spec.suspend),
        maximum_execution_time_seconds,
    }
}

fn condition<'a>(workload: &'a Workload, type_: &str) -> Option<&'a Condition> {
    workload.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)
}

fn is_true(workload: &Workload, type_: &str) -> bool {
    condition(workload, type_).is_some_and(|c| c.status == "True")
}

/// Whether Kueue has reserved quota for the Workload (`status.admission` set): its quota is in use until
/// ecsrun gives it back, even once evicted.
pub fn holds_quota(workload: &Workload) -> bool {
    is_true(workload, condition::QUOTA_RESERVED)
}

pub fn is_finished(workload: &Workload) -> bool {
    is_true(workload, condition::FINISHED)
}

/// What the Workload's state means for its run: admitted (tasks may run) only while Kueue's `Admitted`
/// condition is True and no eviction is pending; otherwise waiting, with Kueue's own words.
pub fn admission_of(workload: &Workload) -> Admission {
    if workload.metadata.deletion_timestamp.is_some() {
        return Admission::Waiting(
            "the Workload is being deleted; it is made again once the run's tasks have stopped".into(),
        );
    }
    if is_true(workload, condition::EVICTED) {
        let why = condition(workload, condition::EVICTED).map_or("", |c| c.message.as_str());
        return Admission::Waiting(format!("evicted: {why}"));
    }
    if is_true(workload, condition::ADMITTED) && holds_quota(workload) {
        return Admission::Admitted;
    }
    let why = [condition::QUOTA_RESERVED, condition::ADMITTED]
        .into_iter()
        .filter_map(|type_| condition(workload, type_))
        .map(|c| c.message.as_str())
        .find(|message| !message.is_empty());
    Admission::Waiting(why.unwrap_or("waiting for the Workload to be admitted").to_owned())
}

/// What the run's status says of its queue.
pub fn queue_status(queue: &str, workload_name: &str, workload: Option<&Workload>) -> QueueStatus {
    let admission = workload.and_then(|w| w.status.as_ref()).and_then(|status| status.admission.as_ref());
    let admitted = workload.is_some_and(|w| admission_of(w) == Admission::Admitted);
    let admitted_at = workload
        .and_then(|w| condition(w, condition::ADMITTED))
        .filter(|c| c.status == "True")
        .map(|c| c.last_transition_time.clone());
    QueueStatus {
        local_queue: queue.to_owned(),
        workload: workload_name.to_owned(),
        admitted,
        cluster_queue: admission.map(|a| a.cluster_queue.clone()),
        flavor: workload.and_then(admitted_flavor).map(str::to_owned),
        admitted_at,
    }
}

/// Whether the run still has, or may have, a task: a lane with a task not seen stopped, or an attempt
/// whose RunTask may have gone out.
pub fn may_hold_tasks(status: &EcsTaskRunStatus) -> bool {
    status.lanes().into_iter().any(|(_, lane)| lane.attempts.last().is_some_and(|attempt| attempt.outcome.is_none()))
}

/// Whether ecsrun lets its Workload go (removes `RESOURCE_IN_USE`): once it is finished or being deleted
/// and no task of the run may be running, so its quota is never released while a task of it runs.
pub fn lets_go(workload: &Workload, status: &EcsTaskRunStatus) -> bool {
    let holding = workload.metadata.finalizers.iter().flatten().any(|f| f == RESOURCE_IN_USE);
    let done = is_finished(workload) || workload.metadata.deletion_timestamp.is_some();
    holding && done && !may_hold_tasks(status)
}

/// Whether the Workload's `active` must change for the run's `spec.suspend`: set false when the run is
/// suspended, true again when it resumes. A Workload an administrator deactivated while the run was not
/// suspended stays inactive (Kueue evicts it; the run waits).
pub fn active_change(workload: &Workload, suspend: bool, status: &EcsTaskRunStatus) -> Option<bool> {
    let active = workload.spec.active.unwrap_or(true);
    match (suspend, active) {
        (true, true) => Some(false),
        (false, false) if status.task.reason_is(crate::api::RunReason::Suspended) => Some(true),
        _ => None,
    }
}

/// What ecsrun writes to its Workload's status now, if anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusChange {
    /// Kueue evicted the Workload and the run's tasks have stopped: clear the admission (QuotaReserved
    /// False, Admitted False), so the quota is free and Kueue queues the Workload again. `requeued`: as
    /// Kueue's own integrations, only after a preemption.
    Release { message: String, requeued: bool, reason: String },
    /// The run has ended: `Finished`, so its quota is released at once.
    Finish { succeeded: bool, message: String },
    /// A run of several tasks needs fewer at once than its pod set asks for (its last indexes are under
    /// way): `reclaimablePods`, so Kueue gives that share to others.
    Reclaim { count: i32 },
}

/// What the run's state asks of its Workload's status: finish it once the run has ended; after an
/// eviction, give the quota back once no task of the run may be running.
pub fn status_change(workload: &Workload, spec: &EcsTaskRunSpec, status: &EcsTaskRunStatus) -> Option<StatusChange> {
    if is_finished(workload) {
        return None;
    }
    if let Some(phase) = status.task.phase.filter(|phase| phase.is_terminal()) {
        let message = status.task.message.clone().unwrap_or_default();
        return Some(StatusChange::Finish { succeeded: phase == Phase::Succeeded, message });
    }
    if let Some(evicted) = condition(workload, condition::EVICTED).filter(|c| c.status == "True") {
        return (holds_quota(workload) && !may_hold_tasks(status)).then(|| StatusChange::Release {
            message: evicted.message.clone(),
            requeued: evicted.reason == "Preempted",
            reason: evicted.reason.clone(),
        });
    }
    let given_back = workload.status.as_ref().and_then(|s| s.reclaimable_pods.iter().find(|p| p.name == POD_SET));
    let count = reclaimable(spec, status);
    (holds_quota(workload) && count > given_back.map_or(0, |p| p.count)).then_some(StatusChange::Reclaim { count })
}

/// How many of a run's pod set's tasks it will not run again: with `count` indexes, `parallelism` at once,
/// those of the set beyond the indexes not yet ended (as Kueue's Job integration counts them).
pub fn reclaimable(spec: &EcsTaskRunSpec, status: &EcsTaskRunStatus) -> i32 {
    if spec.count <= 1 {
        return 0;
    }
    let at_once = spec.parallelism.unwrap_or(spec.count).min(spec.count).max(1);
    let ended = status.succeeded_tasks.unwrap_or(0) + status.failed_tasks.unwrap_or(0);
    (at_once - (spec.count - ended).max(0)).clamp(0, at_once)
}

/// `change` carried out on the Workload `object` as read (every field Kueue keeps in it stays): conditions
/// set in metav1.Condition's way (lastTransitionTime kept unless the status flips), and for a release the
/// admission removed.
pub fn apply_change(object: &mut serde_json::Value, change: &StatusChange, now: jiff::Timestamp) {
    use serde_json::{Value, json};
    let generation = object.pointer("/metadata/generation").cloned().unwrap_or(Value::Null);
    if !object.get("status").is_some_and(Value::is_object) {
        object["status"] = json!({});
    }
    let status = &mut object["status"];
    let mut set = |type_: &str, value: &str, reason: &str, message: &str| {
        if !status.get("conditions").is_some_and(Value::is_array) {
            status["conditions"] = json!([]);
        }
        let Some(conditions) = status["conditions"].as_array_mut() else { return };
        let message: String = message.chars().take(32 * 1024).collect();
        let reason = if reason.is_empty() { "Unknown" } else { reason };
        let kept = conditions
            .iter()
            .find(|c| c["type"] == type_ && c["status"] == value)
            .map(|c| c["lastTransitionTime"].clone());
        let condition = json!({
            "type": type_,
            "status": value,
            "reason": reason,
            "message": message,
            "observedGeneration": generation,
            "lastTransitionTime": kept.unwrap_or_else(|| json!(now.to_string())),
        });
        match conditions.iter_mut().find(|c| c["type"] == type_) {
            Some(existing) => *existing = condition,
            None => conditions.push(condition),
        }
    };
    match change {
        StatusChange::Finish { succeeded, message } => {
            set(condition::FINISHED, "True", if *succeeded { "Succeeded" } else { "Failed" }, message);
        }
        StatusChange::Reclaim { count } => {
            status["reclaimablePods"] = json!([{"name": POD_SET, "count": count}]);
        }
        StatusChange::Release { message, requeued, reason } => {
            set(condition::REQUEUED, if *requeued { "True" } else { "False" }, reason, message);
            set(condition::QUOTA_RESERVED, "False", "Pending", message);
            set(condition::ADMITTED, "False", "NoReservation", "The workload has no reservation");
            if let Some(status) = status.as_object_mut() {
                status.remove("admission");
            }
        }
    }
}

#[cfg(test)]
mod tests;

/// The ResourceFlavor the run's CPU was admitted in, if admitted.
pub fn admitted_flavor(workload: &Workload) -> Option<&str> {
    let assignment = workload.status.as_ref()?.admission.as_ref()?.pod_set_assignments.first()?;
    assignment.flavors.get("cpu").or_else(|| assignment.flavors.values().next()).map(String::as_str)
}

/// The capacity provider a ResourceFlavor stands for (`spec.nodeLabels[CAPACITY_PROVIDER_LABEL]`).
pub fn flavor_capacity_provider(flavor: &serde_json::Value) -> Option<&str> {
    flavor.pointer("/spec/nodeLabels")?.get(CAPACITY_PROVIDER_LABEL)?.as_str().filter(|provider| !provider.is_empty())
}

/// The spec a run admitted in a flavor that stands for `provider` launches: all of its own but the
/// capacity, which is that provider's alone (no launch type, as ECS requires with a strategy).
pub fn on_capacity(spec: &crate::api::EcsTaskRunSpec, provider: &str) -> crate::api::EcsTaskRunSpec {
    let mut spec = spec.clone();
    spec.launch_type = None;
    spec.capacity_provider_strategy = Some(vec![crate::api::CapacityProviderStrategyItem {
        capacity_provider: provider.to_owned(),
        weight: Some(1),
        base: None,
    }]);
    spec
}
