//! Kueue, as one more actor of the simulated world: it admits the Workloads of queued runs within a
//! ClusterQueue's quota, evicts admitted ones (a preemption, a deactivation by an administrator), and
//! users delete Workloads behind ecsrun's back. What Kueue leaves to the job's controller (clearing an
//! evicted Workload's admission, letting a deleted one go) stays ecsrun's, as with Kueue's own manager.

use rand::RngExt;
use serde_json::{Value, json};

use super::super::invariants::holds_quota;
use super::World;

/// The ClusterQueue's CPU quota: four tasks of the fake ECS's half a vCPU, as many as the largest run has
/// (a run larger than its queue's quota would wait for ever, as under Kueue), so runs contend for it.
pub const QUOTA_MILLICORES: i64 = 2000;
const RESOURCE: &str = "workloads";

fn condition_is(workload: &Value, type_: &str, status: &str) -> bool {
    workload["status"]["conditions"]
        .as_array()
        .is_some_and(|conditions| conditions.iter().any(|c| c["type"] == type_ && c["status"] == status))
}

/// What the Workload's one pod set asks for: its count times its CPU request, in millicores.
fn millicores(workload: &Value) -> i64 {
    let pod_set = &workload["spec"]["podSets"][0];
    let count = pod_set["count"].as_i64().unwrap_or(1);
    let cpu = pod_set["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"].as_str().unwrap_or("0m");
    count * cpu.trim_end_matches('m').parse::<i64>().unwrap_or(0)
}

fn set_condition(workload: &mut Value, type_: &str, status: &str, reason: &str, message: &str, now: &str) {
    if !workload["status"]["conditions"].is_array() {
        workload["status"]["conditions"] = json!([]);
    }
    let condition = json!({"type": type_, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": now, "observedGeneration": workload["metadata"]["generation"].clone()});
    let Some(conditions) = workload["status"]["conditions"].as_array_mut() else { return };
    match conditions.iter_mut().find(|c| c["type"] == type_) {
        Some(existing) if existing["status"] == status => {}
        Some(existing) => *existing = condition,
        None => conditions.push(condition),
    }
}

fn key(workload: &Value) -> (String, String) {
    let meta = &workload["metadata"];
    (meta["namespace"].as_str().unwrap_or_default().to_owned(), meta["name"].as_str().unwrap_or_default().to_owned())
}

impl World {
    /// The garbage collector deletes the Workloads of runs that are gone (ecsrun's hold keeps them until
    /// it lets them go), and the acting replica's watch of Workloads sees those of ecsrun's whose run its
    /// cache does not hold.
    pub(super) fn workloads_of_gone_runs(&mut self) {
        let runs = self.api.runs();
        let owner = |workload: &Value| {
            let owner = &workload["metadata"]["ownerReferences"][0];
            (
                owner["name"].as_str().unwrap_or_default().to_owned(),
                owner["uid"].as_str().unwrap_or_default().to_owned(),
            )
        };
        let id = self.acting_replica();
        for workload in self.api.objects(RESOURCE) {
            let (namespace, name) = key(&workload);
            let (run, uid) = owner(&workload);
            if !runs.iter().any(|r| r.metadata.uid.as_deref() == Some(uid.as_str()))
                && !workload["metadata"]["deletionTimestamp"].is_string()
            {
                self.say(format!("the garbage collector deletes Workload {namespace}/{name}: its run is gone"));
                self.api.delete_object(RESOURCE, &namespace, &name);
            }
            let cached = self.replicas[id]
                .cache
                .get(&(namespace.clone(), run))
                .is_some_and(|r| r.metadata.uid.as_deref() == Some(uid.as_str()));
            let holding = workload["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f == ecsrun::queue::RESOURCE_IN_USE));
            if holding && !cached && self.api.object(RESOURCE, &namespace, &name).is_some() {
                self.launch(id, super::Job::WorkloadOrphaned(namespace, name));
            }
        }
    }

    /// Workloads holding quota for no run that could use it (its run gone or finished): none once settled.
    pub(super) fn leaked_quota(&self) -> Vec<String> {
        let runs = self.api.runs();
        self.api
            .objects(RESOURCE)
            .into_iter()
            .filter(holds_quota)
            .filter(|workload| {
                let uid = workload["metadata"]["ownerReferences"][0]["uid"].as_str().unwrap_or_default();
                runs.iter().find(|run| run.metadata.uid.as_deref() == Some(uid)).is_none_or(|run| {
                    run.status.as_ref().and_then(|s| s.task.phase).is_some_and(|phase| phase.is_terminal())
                })
            })
            .map(|workload| format!("{}/{}", key(&workload).0, key(&workload).1))
            .collect()
    }

    /// Kueue (or a user of its API) moves one Workload on.
    pub(super) fn kueue_moves(&mut self) {
        self.workloads_of_gone_runs();
        let workloads = self.api.objects(RESOURCE);
        if workloads.is_empty() {
            return;
        }
        let workload = workloads[self.rng.random_range(0..workloads.len())].clone();
        let (namespace, name) = key(&workload);
        let deleting = workload["metadata"]["deletionTimestamp"].is_string();
        let finished = condition_is(&workload, "Finished", "True");
        let evicted = condition_is(&workload, "Evicted", "True");
        let roll = self.rng.random_range(0..100);
        if deleting || finished {
            return;
        }
        if !holds_quota(&workload) {
            self.admit(&workload);
        } else if evicted {
            // Kueue waits for the job's controller to stop it and clear the admission.
        } else if roll < 35 {
            self.say(format!("Kueue preempts Workload {namespace}/{name}"));
            self.evict(&namespace, &name, "Preempted", "Preempted to accommodate a higher priority Workload");
        } else if roll < 50 {
            self.say(format!("an administrator deactivates Workload {namespace}/{name}"));
            self.api.edit_object(RESOURCE, &namespace, &name, |w| w["spec"]["active"] = json!(false));
            self.evict(&namespace, &name, "Deactivated", "The workload is deactivated");
        } else if roll < 65 {
            self.say(format!("a user deletes Workload {namespace}/{name} behind ecsrun's back"));
            self.api.delete_object(RESOURCE, &namespace, &name);
        }
    }

    /// Admits the Workload if it is active and fits in what the quota has left.
    fn admit(&mut self, workload: &Value) {
        let (namespace, name) = key(workload);
        if workload["spec"]["active"] == json!(false) || workload["metadata"]["deletionTimestamp"].is_string() {
            return;
        }
        let in_use: i64 = self.api.objects(RESOURCE).iter().filter(|w| holds_quota(w)).map(millicores).sum();
        if in_use + millicores(workload) > QUOTA_MILLICORES {
            return;
        }
        self.say(format!("Kueue admits Workload {namespace}/{name}"));
        let now = self.now().to_string();
        self.api.edit_object(RESOURCE, &namespace, &name, |w| {
            w["status"]["admission"] = json!({"clusterQueue": "sim", "podSetAssignments": [
                {"name": "tasks", "flavors": {"cpu": "on-demand", "memory": "on-demand"}}]});
            set_condition(w, "QuotaReserved", "True", "QuotaReserved", "Quota reserved in ClusterQueue sim", &now);
            set_condition(w, "Admitted", "True", "Admitted", "The workload is admitted", &now);
            if condition_is(w, "Evicted", "True") {
                set_condition(w, "Evicted", "False", "QuotaReserved", "Previously: evicted", &now);
            }
        });
    }

    fn evict(&mut self, namespace: &str, name: &str, reason: &str, message: &str) {
        let now = self.now().to_string();
        self.api.edit_object(RESOURCE, namespace, name, |w| set_condition(w, "Evicted", "True", reason, message, &now));
    }

    /// The quiet phase: administrators activate every Workload again, and Kueue admits what fits.
    pub(super) fn kueue_settles(&mut self) {
        self.workloads_of_gone_runs();
        for workload in self.api.objects(RESOURCE) {
            let (namespace, name) = key(&workload);
            let suspended = self.api.runs().iter().any(|run| {
                run.spec.suspend
                    && ecsrun::queue::name_for(
                        &run.metadata.name.clone().unwrap_or_default(),
                        run.metadata.uid.as_deref().unwrap_or_default(),
                    ) == name
            });
            if workload["spec"]["active"] == json!(false) && !suspended {
                self.api.edit_object(RESOURCE, &namespace, &name, |w| w["spec"]["active"] = json!(true));
            }
        }
        for workload in self.api.objects(RESOURCE) {
            if !holds_quota(&workload) && !condition_is(&workload, "Finished", "True") {
                self.admit(&workload);
            }
        }
    }
}
