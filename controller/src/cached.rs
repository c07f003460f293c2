//! The watch cache's copy of an `EcsTaskRun`: the few metadata fields the cache's readers look at,
//! decoded; the rest of the object kept as the API server's JSON, zstd-compressed, and decoded when a
//! reconcile reads it.
//!
//! A decoded run takes about 6.9 KiB of heap, its JSON 2.3 KiB, compressed 0.9 KiB: with 10,000 runs in
//! the cache that difference is most of the controller's memory, while a reconcile that unpacks and
//! decodes its one run spends microseconds. What the cache's other readers need (name, uid, lifecycle
//! fields, whether the run finished) is read once, when the object arrives.

use std::borrow::Cow;

use ecsrun_api::{EcsTaskRun, EcsTaskRunSpec, EcsTaskRunStatus, Phase};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// zstd's fastest level: runs arrive by the thousand in a burst, and level 1 already packs their JSON
/// to about 40 %.
const PACK_LEVEL: i32 = 1;

/// Annotations no reconcile reads: kubectl's copy of the whole object as last applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// An `EcsTaskRun` as the cache holds it. `decode` gives the run itself.
#[derive(Clone, Debug)]
pub struct CachedRun {
    /// Name, namespace, uid, resourceVersion, generation, creation and deletion times and finalizers:
    /// what the cache's keys, the watch's predicates and the gauges read without decoding.
    metadata: ObjectMeta,
    /// `{"metadata":…,"spec":…,"status":…}` as the API server sent them (without managed fields and
    /// kubectl's last-applied copy, which no reconcile reads), compressed.
    packed: Box<[u8]>,
    phase: Option<Phase>,
    /// Whether the run waits for Kueue's admission (reason Queued), for the gauges.
    queued: bool,
}

/// The parts of a run the packed JSON holds.
#[derive(Deserialize)]
struct Parts {
    #[serde(default)]
    metadata: ObjectMeta,
    spec: EcsTaskRunSpec,
    #[serde(default)]
    status: Option<EcsTaskRunStatus>,
}

impl CachedRun {
    /// The run as the API server sent it. Fails only if its JSON does not fit the API types (a CRD newer
    /// than this controller): that run's reconcile fails, the others go on.
    pub fn decode(&self) -> Result<EcsTaskRun, serde_json::Error> {
        let json = zstd::stream::decode_all(&self.packed[..]).map_err(serde_json::Error::io)?;
        let parts: Parts = serde_json::from_slice(&json)?;
        Ok(EcsTaskRun { metadata: parts.metadata, spec: parts.spec, status: parts.status })
    }

    /// The run's phase as its status says (none before the controller first wrote it).
    pub fn phase(&self) -> Option<Phase> {
        self.phase
    }

    /// Whether the run waits for Kueue's admission (reason Queued).
    pub fn queued(&self) -> bool {
        self.queued
    }

    /// Whether the run's phase is final (Succeeded, Failed, Unknown).
    pub fn finished(&self) -> bool {
        self.phase.is_some_and(Phase::is_terminal)
    }

    /// The key the tracker and the reconcile queue know this run by.
    pub fn key(&self) -> ObjectRef<EcsTaskRun> {
        run_key(&self.metadata)
    }
}

/// A run's key: its namespace and name only. Keys live as long as their runs in the tracker and the
/// reconcile queue, and the uid and resourceVersion `ObjectRef::from_obj` adds are never read there.
pub fn run_key(metadata: &ObjectMeta) -> ObjectRef<EcsTaskRun> {
    named(metadata.name.as_deref().unwrap_or_default(), metadata.namespace.as_deref())
}

/// The controller's queue is keyed by the cache's type; the tracker names runs by the API type.
pub fn cached_key(key: &ObjectRef<EcsTaskRun>) -> ObjectRef<CachedRun> {
    named(&key.name, key.namespace.as_deref())
}

fn named<K: Resource>(name: &str, namespace: Option<&str>) -> ObjectRef<K>
where
    K::DynamicType: Default,
{
    let key = ObjectRef::new(name);
    match namespace {
        Some(namespace) => key.within(namespace),
        None => key,
    }
}

impl<'de> Deserialize<'de> for CachedRun {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        /// The object as the API server sends it, and (slimmed) as it is packed: spec and status verbatim.
        #[derive(Deserialize, Serialize)]
        struct Wire {
            #[serde(default)]
            metadata: ObjectMeta,
            spec: Box<RawValue>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            status: Option<Box<RawValue>>,
        }
        #[derive(Deserialize)]
        struct PhaseOnly {
            #[serde(default)]
            phase: Option<Phase>,
            #[serde(default)]
            reason: Option<crate::api::Reported<crate::api::RunReason>>,
        }
        let mut wire = Wire::deserialize(deserializer)?;
        // A phase this controller does not know is none to it; decode reports the mismatch.
        let read = wire.status.as_deref().and_then(|status| serde_json::from_str::<PhaseOnly>(status.get()).ok());
        let queued = read
            .as_ref()
            .and_then(|status| status.reason.as_ref())
            .is_some_and(|r| r.is(crate::api::RunReason::Queued));
        let phase = read.and_then(|status| status.phase);
        // Managed fields and kubectl's last-applied copy can be larger than everything else together.
        wire.metadata.managed_fields = None;
        if let Some(annotations) = wire.metadata.annotations.as_mut() {
            annotations.remove(LAST_APPLIED);
        }
        let json = serde_json::to_vec(&wire).map_err(D::Error::custom)?;
        let packed = zstd::bulk::compress(&json, PACK_LEVEL).map_err(D::Error::custom)?.into_boxed_slice();
        let full = wire.metadata;
        let metadata = ObjectMeta {
            name: full.name,
            namespace: full.namespace,
            uid: full.uid,
            resource_version: full.resource_version,
            generation: full.generation,
            creation_timestamp: full.creation_timestamp,
            deletion_timestamp: full.deletion_timestamp,
            finalizers: full.finalizers,
            ..ObjectMeta::default()
        };
        Ok(CachedRun { metadata, packed, phase, queued })
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

    /// What no reconcile reads is gone; what the cache's readers read undecoded is at hand; a fleet's
    /// typical run packs to well under half its JSON.
    #[test]
    fn the_cache_drops_what_no_reconcile_reads_and_packs_the_rest() {
        let mut json = run_json(serde_json::json!({
            "phase": "Succeeded", "taskArn": "arn:aws:ecs:eu-west-1:123456789012:task/etl/91259b02d4004df9b5914b4779ef9bb9",
            "message": "task 91259b02d4004df9b5914b4779ef9bb9 stopped: app=0", "attemptCount": 1,
            "containers": [{"name": "app", "lastStatus": "STOPPED", "exitCode": 0, "essential": true}],
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Succeeded", "lastTransitionTime": "2026-12-01T10:00:00Z",
                    "message": "task 91259b02d4004df9b5914b4779ef9bb9 stopped: app=0"},
                {"type": "Succeeded", "status": "True", "reason": "Succeeded", "lastTransitionTime": "2026-12-01T10:00:00Z",
                    "message": "task 91259b02d4004df9b5914b4779ef9bb9 stopped: app=0"}],
        }));
        let metadata = &mut json["metadata"];
        metadata["annotations"][LAST_APPLIED] = serde_json::json!("{\"a whole copy\": true}");
        metadata["managedFields"] = serde_json::json!([{"manager": "kubectl", "operation": "Apply",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:cluster": {}}}}]);
        metadata["creationTimestamp"] = serde_json::json!("2026-12-01T09:00:00Z");
        metadata["deletionTimestamp"] = serde_json::json!("2026-12-01T11:00:00Z");
        metadata["labels"] = serde_json::json!({"team": "data"});
        let text = json.to_string();
        let cached: CachedRun = serde_json::from_str(&text).unwrap();

        let run = cached.decode().unwrap();
        assert_eq!(run.metadata.managed_fields, None);
        let annotations = run.metadata.annotations.clone().unwrap();
        assert!(!annotations.contains_key(LAST_APPLIED) && annotations["team"] == "data", "{annotations:?}");
        assert_eq!(run.metadata.labels.as_ref().unwrap()["team"], "data");

        let meta = cached.meta();
        assert_eq!((meta.name.as_deref(), meta.namespace.as_deref()), (Some("nightly"), Some("jobs")));
        assert_eq!(
            (meta.uid.as_deref(), meta.resource_version.as_deref(), meta.generation),
            (Some("u-1"), Some("7"), Some(2))
        );
        assert_eq!(meta.finalizers, Some(vec!["ecsrun.dev/stop-task".to_string()]));
        assert!(meta.creation_timestamp.is_some() && meta.deletion_timestamp.is_some());
        assert_eq!((meta.labels.clone(), meta.annotations.clone(), meta.managed_fields.clone()), (None, None, None));
        assert!(cached.finished());

        let slim_json = serde_json::to_string(&run).unwrap().len();
        assert!(cached.packed.len() * 2 < slim_json, "{} packed of {slim_json}", cached.packed.len());
    }

    #[test]
    fn the_cache_type_names_the_same_resource() {
        assert_eq!(CachedRun::url_path(&(), Some("jobs")), EcsTaskRun::url_path(&(), Some("jobs")));
        assert_eq!(CachedRun::api_version(&()), EcsTaskRun::api_version(&()));
    }
}
