//! The watch cache's copy of an `EcsTaskRun`: metadata decoded, spec and status kept as the API server
//! sent them and decoded when a reconcile reads them.
//!
//! A decoded run takes about 6.9 KiB of heap, its JSON 2.4 KiB: with 10,000 runs in the cache the
//! difference is most of the controller's memory, while a reconcile that decodes its one run spends
//! microseconds. What the cache's other readers need (uid, whether the run finished) is read once,
//! when the object arrives.

use std::borrow::Cow;

use ecsrun_api::{EcsTaskRun, EcsTaskRunSpec, EcsTaskRunStatus, Phase};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use serde::Deserialize;
use serde_json::value::RawValue;

/// An `EcsTaskRun` as the cache holds it. `decode` gives the run itself.
#[derive(Clone, Debug)]
pub struct CachedRun {
    metadata: ObjectMeta,
    spec: Box<RawValue>,
    status: Option<Box<RawValue>>,
    phase: Option<Phase>,
}

impl CachedRun {
    /// The run as the API server sent it. Fails only if its JSON does not fit the API types (a CRD newer
    /// than this controller): that run's reconcile fails, the others go on.
    pub fn decode(&self) -> Result<EcsTaskRun, serde_json::Error> {
        Ok(EcsTaskRun {
            metadata: self.metadata.clone(),
            spec: serde_json::from_str::<EcsTaskRunSpec>(self.spec.get())?,
            status: self
                .status
                .as_deref()
                .map(|status| serde_json::from_str::<EcsTaskRunStatus>(status.get()))
                .transpose()?,
        })
    }

    /// The run's phase as its status says (none before the controller first wrote it).
    pub fn phase(&self) -> Option<Phase> {
        self.phase
    }

    /// Whether the run's phase is final (Succeeded, Failed, Unknown).
    pub fn finished(&self) -> bool {
        self.phase.is_some_and(Phase::is_terminal)
    }

    /// The key the tracker and the reconcile queue know this run by.
    pub fn key(&self) -> ObjectRef<EcsTaskRun> {
        let key = ObjectRef::new(self.metadata.name.as_deref().unwrap_or_default());
        match self.metadata.namespace.as_deref() {
            Some(namespace) => key.within(namespace),
            None => key,
        }
    }
}

/// The controller's queue is keyed by the cache's type; the tracker names runs by the API type.
pub fn cached_key(key: &ObjectRef<EcsTaskRun>) -> ObjectRef<CachedRun> {
    let cached = ObjectRef::new(&key.name);
    match key.namespace.as_deref() {
        Some(namespace) => cached.within(namespace),
        None => cached,
    }
}

impl<'de> Deserialize<'de> for CachedRun {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            metadata: ObjectMeta,
            spec: Box<RawValue>,
            #[serde(default)]
            status: Option<Box<RawValue>>,
        }
        #[derive(Deserialize)]
        struct PhaseOnly {
            #[serde(default)]
            phase: Option<Phase>,
        }
        let wire = Wire::deserialize(deserializer)?;
        // A phase this controller does not know is none to it; decode reports the mismatch.
        let phase = wire
            .status
            .as_deref()
            .and_then(|status| serde_json::from_str::<PhaseOnly>(status.get()).ok())
            .and_then(|status| status.phase);
        Ok(CachedRun { metadata: wire.metadata, spec: wire.spec, status: wire.status, phase })
    }
}

impl Resource for CachedRun {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        EcsTaskRun::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        EcsTaskRun::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        EcsTaskRun::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        EcsTaskRun::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(run: &EcsTaskRun) -> serde_json::Value {
        serde_json::to_value(run).unwrap()
    }

    fn run_json(status: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "ecsrun.dev/v1alpha1",
            "kind": "EcsTaskRun",
            "metadata": {"name": "nightly", "namespace": "jobs", "uid": "u-1", "resourceVersion": "7", "generation": 2,
                "finalizers": ["ecsrun.dev/stop-task"], "annotations": {"team": "data"}},
            "spec": {"cluster": "etl", "taskDefinition": "report:3", "launchType": "FARGATE",
                "overrides": {"containerOverrides": [{"name": "app", "command": ["run", "--date", "2026-12-01"]}]},
                "retryPolicy": {"backoffLimit": 2}},
            "status": status,
        })
    }

    #[test]
    fn decodes_to_what_the_api_type_reads_from_the_same_json() {
        let json = run_json(serde_json::json!({
            "phase": "Running", "taskArn": "arn:aws:ecs:eu-west-1:1:task/etl/abc", "attemptCount": 1,
            "containers": [{"name": "app", "lastStatus": "RUNNING", "essential": true}],
            "conditions": [{"type": "Ready", "status": "False", "reason": "TaskRunning", "message": "m",
                "lastTransitionTime": "2026-12-01T10:00:00Z"}],
        }));
        let direct: EcsTaskRun = serde_json::from_value(json.clone()).unwrap();
        let cached: CachedRun = serde_json::from_str(&json.to_string()).unwrap();
        assert_eq!(json_of(&cached.decode().unwrap()), json_of(&direct));
        assert!(!cached.finished());
        assert_eq!(cached.key(), ObjectRef::<EcsTaskRun>::new("nightly").within("jobs"));
        assert_eq!(cached_key(&cached.key()), ObjectRef::<CachedRun>::new("nightly").within("jobs"));
    }

    #[test]
    fn a_run_without_status_decodes_without_status_and_is_not_finished() {
        let mut json = run_json(serde_json::Value::Null);
        json.as_object_mut().unwrap().remove("status");
        let cached: CachedRun = serde_json::from_str(&json.to_string()).unwrap();
        assert_eq!(cached.decode().unwrap().status, None);
        assert!(!cached.finished());
    }

    #[test]
    fn final_phases_are_finished() {
        for (phase, finished) in
            [("Pending", false), ("Stopping", false), ("Succeeded", true), ("Failed", true), ("Unknown", true)]
        {
            let cached: CachedRun =
                serde_json::from_str(&run_json(serde_json::json!({"phase": phase})).to_string()).unwrap();
            assert_eq!(cached.finished(), finished, "{phase}");
            assert_eq!(cached.phase().map(|phase| format!("{phase:?}")).as_deref(), Some(phase));
        }
    }

    #[test]
    fn a_spec_the_api_types_refuse_fails_its_decode_not_the_cache() {
        let mut json = run_json(serde_json::json!({"phase": "Sideways"}));
        json["spec"]["count"] = serde_json::json!("many");
        let cached: CachedRun = serde_json::from_str(&json.to_string()).unwrap();
        assert!(!cached.finished());
        let error = cached.decode().unwrap_err();
        assert!(error.to_string().contains("invalid type"), "{error}");
    }

    /// kube reads lists and watch events from the API server's text; the raw parts must survive both.
    #[test]
    fn lists_and_watch_events_carry_the_raw_parts() {
        let json = run_json(serde_json::json!({"phase": "Succeeded"}));
        let list = serde_json::json!({"apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskRunList",
            "metadata": {"resourceVersion": "9"}, "items": [json.clone()]});
        let list: kube::core::ObjectList<CachedRun> = serde_json::from_str(&list.to_string()).unwrap();
        assert!(list.items[0].finished());
        let event = serde_json::json!({"type": "MODIFIED", "object": json.clone()});
        match serde_json::from_str::<kube::core::WatchEvent<CachedRun>>(&event.to_string()).unwrap() {
            kube::core::WatchEvent::Modified(cached) => {
                assert_eq!(json_of(&cached.decode().unwrap()), json_of(&serde_json::from_value(json).unwrap()))
            }
            other => panic!("not a modification: {other:?}"),
        }
    }

    #[test]
    fn the_cache_type_names_the_same_resource() {
        assert_eq!(CachedRun::url_path(&(), Some("jobs")), EcsTaskRun::url_path(&(), Some("jobs")));
        assert_eq!(CachedRun::api_version(&()), EcsTaskRun::api_version(&()));
    }
}
