use jiff::Timestamp;
use serde_json::json;

use super::*;
use crate::api::{Attempt, EcsTaskRunStatus, Phase};
use crate::ecs::{ContainerSize, TaskDefinitionSize};

fn workload(conditions: serde_json::Value, admission: Option<serde_json::Value>) -> Workload {
    let mut status = json!({"conditions": conditions});
    if let Some(admission) = admission {
        status["admission"] = admission;
    }
    serde_json::from_value(json!({
        "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload",
        "metadata": {"name": "nightly-0a1b2c3d", "namespace": "jobs", "generation": 1},
        "spec": {"podSets": [], "queueName": "team-a"},
        "status": status,
    }))
    .unwrap()
}

fn cond(type_: &str, status: &str, reason: &str, message: &str) -> serde_json::Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2026-12-07T10:00:00Z"})
}

fn admitted_to(queue: &str) -> serde_json::Value {
    json!({"clusterQueue": queue, "podSetAssignments": [{"name": "tasks", "flavors": {"cpu": "fargate-spot", "memory": "fargate-spot"}}]})
}

#[test]
fn what_a_workloads_state_means_for_its_run() {
    let reserved = cond("QuotaReserved", "True", "QuotaReserved", "Quota reserved in ClusterQueue shared");
    let admitted = cond("Admitted", "True", "Admitted", "The workload is admitted");
    let rows = [
        (
            "created, not looked at by Kueue yet",
            workload(json!([]), None),
            Admission::Waiting("waiting for the Workload to be admitted".into()),
        ),
        (
            "pending: Kueue's words",
            workload(
                json!([cond(
                    "QuotaReserved",
                    "False",
                    "Pending",
                    "couldn't assign flavors to pod set tasks: insufficient quota for cpu"
                )]),
                None,
            ),
            Admission::Waiting("couldn't assign flavors to pod set tasks: insufficient quota for cpu".into()),
        ),
        (
            "a queue that does not exist",
            workload(json!([cond("QuotaReserved", "False", "Inadmissible", "LocalQueue missing doesn't exist")]), None),
            Admission::Waiting("LocalQueue missing doesn't exist".into()),
        ),
        (
            "quota reserved, admission checks pending",
            workload(json!([reserved.clone()]), Some(admitted_to("shared"))),
            Admission::Waiting("Quota reserved in ClusterQueue shared".into()),
        ),
        (
            "admitted",
            workload(json!([reserved.clone(), admitted.clone()]), Some(admitted_to("shared"))),
            Admission::Admitted,
        ),
        (
            "evicted while admitted: no longer",
            workload(
                json!([
                    reserved.clone(),
                    admitted.clone(),
                    cond("Evicted", "True", "Preempted", "Preempted to accommodate a higher priority Workload")
                ]),
                Some(admitted_to("shared")),
            ),
            Admission::Waiting("evicted: Preempted to accommodate a higher priority Workload".into()),
        ),
        (
            "an eviction long over, admitted again",
            workload(
                json!([reserved, admitted, cond("Evicted", "False", "Preempted", "")]),
                Some(admitted_to("shared")),
            ),
            Admission::Admitted,
        ),
    ];
    for (row, workload, expected) in rows {
        assert_eq!(admission_of(&workload), expected, "{row}");
    }
}

#[test]
fn the_runs_status_names_the_queue_the_cluster_queue_and_the_flavor() {
    let admitted = workload(
        json!([cond("QuotaReserved", "True", "QuotaReserved", ""), cond("Admitted", "True", "Admitted", "")]),
        Some(admitted_to("shared")),
    );
    let status = queue_status("team-a", "nightly-0a1b2c3d", Some(&admitted));
    assert!(status.admitted);
    assert_eq!(status.cluster_queue.as_deref(), Some("shared"));
    assert_eq!(status.flavor.as_deref(), Some("fargate-spot"));
    assert_eq!(status.admitted_at.map(|t| t.0.to_string()).as_deref(), Some("2026-12-07T10:00:00Z"));
    let missing = queue_status("team-a", "nightly-0a1b2c3d", None);
    assert!(!missing.admitted && missing.cluster_queue.is_none() && missing.flavor.is_none());
}

fn run_status(phase: Option<Phase>, attempt_open: bool) -> EcsTaskRunStatus {
    let mut status = EcsTaskRunStatus::default();
    status.task.phase = phase;
    status.task.attempts = vec![Attempt {
        attempt: 1,
        outcome: (!attempt_open).then(|| crate::api::RunReason::Evicted.into()),
        ..Attempt::default()
    }];
    status
}

#[test]
fn quota_goes_back_only_once_no_task_may_run_and_at_once_when_the_run_ends() {
    let evicted = workload(
        json!([
            cond("QuotaReserved", "True", "QuotaReserved", ""),
            cond("Admitted", "True", "Admitted", ""),
            cond("Evicted", "True", "Preempted", "preempted by team-b")
        ]),
        Some(admitted_to("shared")),
    );
    let admitted = workload(
        json!([cond("QuotaReserved", "True", "QuotaReserved", ""), cond("Admitted", "True", "Admitted", "")]),
        Some(admitted_to("shared")),
    );
    let released = workload(
        json!([
            cond("QuotaReserved", "False", "Pending", "preempted by team-b"),
            cond("Evicted", "True", "Preempted", "preempted by team-b")
        ]),
        None,
    );
    let finished = workload(json!([cond("Finished", "True", "Succeeded", "")]), None);
    let release = Some(StatusChange::Release {
        message: "preempted by team-b".into(),
        requeued: true,
        reason: "Preempted".into(),
    });
    let rows = [
        ("evicted, its task still stopping: quota kept", &evicted, run_status(Some(Phase::Stopping), true), None),
        ("evicted, its task stopped", &evicted, run_status(Some(Phase::Pending), false), release),
        ("evicted and released already", &released, run_status(Some(Phase::Pending), false), None),
        ("admitted and running", &admitted, run_status(Some(Phase::Running), true), None),
        (
            "succeeded",
            &admitted,
            run_status(Some(Phase::Succeeded), false),
            Some(StatusChange::Finish { succeeded: true, message: String::new() }),
        ),
        (
            "failed while evicted",
            &evicted,
            run_status(Some(Phase::Failed), false),
            Some(StatusChange::Finish { succeeded: false, message: String::new() }),
        ),
        ("finished already", &finished, run_status(Some(Phase::Succeeded), false), None),
    ];
    let one_task = crate::api::EcsTaskRunSpec::new("c");
    for (row, workload, status, expected) in rows {
        assert_eq!(status_change(workload, &one_task, &status), expected, "{row}");
    }
}

#[test]
fn a_release_clears_the_admission_and_keeps_everything_else_kueue_wrote() {
    let now: Timestamp = "2026-12-07T11:00:00Z".parse().unwrap();
    let mut object = json!({
        "metadata": {"name": "w", "generation": 3, "resourceVersion": "42"},
        "status": {
            "admission": admitted_to("shared"),
            "requeueState": {"count": 2},
            "conditions": [
                cond("QuotaReserved", "True", "QuotaReserved", "reserved"),
                cond("Admitted", "True", "Admitted", "admitted"),
                cond("Evicted", "True", "Preempted", "preempted"),
            ],
        },
    });
    let change = StatusChange::Release { message: "preempted".into(), requeued: true, reason: "Preempted".into() };
    apply_change(&mut object, &change, now);
    let status = &object["status"];
    assert!(status.get("admission").is_none(), "admission removed");
    assert_eq!(status["requeueState"], json!({"count": 2}), "Kueue's fields kept");
    assert_eq!(object["metadata"]["resourceVersion"], "42", "written conditionally on the version read");
    let by_type = |t: &str| status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == t).cloned().unwrap();
    assert_eq!(by_type("QuotaReserved")["status"], "False");
    assert_eq!(by_type("QuotaReserved")["lastTransitionTime"], now.to_string(), "flipped: a new transition time");
    assert_eq!(by_type("QuotaReserved")["observedGeneration"], 3);
    assert_eq!(by_type("Admitted")["status"], "False");
    assert_eq!(by_type("Requeued")["status"], "True");
    assert_eq!(by_type("Evicted")["lastTransitionTime"], "2026-12-07T10:00:00Z", "untouched");

    let mut object =
        json!({"metadata": {"generation": 1}, "status": {"conditions": [cond("Finished", "False", "Pending", "")]}});
    apply_change(&mut object, &StatusChange::Finish { succeeded: false, message: "exit 1".into() }, now);
    let finished = &object["status"]["conditions"][0];
    assert_eq!((finished["status"].as_str(), finished["reason"].as_str()), (Some("True"), Some("Failed")));
    assert_eq!(object["status"]["conditions"].as_array().map(Vec::len), Some(1), "one condition per type");
}

fn definition(
    cpu: Option<i64>,
    memory: Option<i64>,
    containers: &[(&str, Option<i64>, Option<i64>)],
) -> TaskDefinitionSize {
    TaskDefinitionSize {
        cpu_units: cpu,
        memory_mib: memory,
        containers: containers
            .iter()
            .map(|(name, cpu, memory)| ContainerSize { name: (*name).into(), cpu_units: *cpu, memory_mib: *memory })
            .collect(),
    }
}

#[test]
fn a_task_is_queued_by_what_ecs_will_bill_it_for() {
    let spec = |overrides: serde_json::Value| -> crate::api::EcsTaskRunSpec {
        serde_json::from_value(json!({"cluster": "c", "taskDefinition": "etl:1", "overrides": overrides})).unwrap()
    };
    let task_level = definition(Some(512), Some(1024), &[("app", Some(0), Some(256))]);
    let containers_only = definition(None, None, &[("app", Some(256), Some(512)), ("sidecar", Some(128), None)]);
    let rows = [
        ("the task definition's task level", spec(json!({})), &task_level, Some((512, 1024))),
        ("the task-level overrides", spec(json!({"cpu": "1 vCPU", "memory": "4 GB"})), &task_level, Some((1024, 4096))),
        ("a sidecar without memory: no size", spec(json!({})), &containers_only, None),
        (
            "the sum of the containers after their overrides",
            spec(json!({"containerOverrides": [{"name": "sidecar", "memory": 128}, {"name": "app", "cpu": 512}]})),
            &containers_only,
            Some((640, 640)),
        ),
        ("nothing known", spec(json!({})), &definition(None, None, &[]), None),
    ];
    for (row, spec, definition, expected) in rows {
        let size = task_size(&spec, definition).map(|size| (size.cpu_units, size.memory_mib));
        assert_eq!(size, expected, "{row}");
    }
}

#[test]
fn the_workload_asks_for_as_many_tasks_as_run_at_once_in_the_runs_queue() {
    let run: EcsTaskRun = serde_json::from_value(json!({
        "apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskRun",
        "metadata": {"name": "nightly", "namespace": "jobs", "uid": "0a1b2c3d-0000-4000-8000-000000000000"},
        "spec": {"cluster": "c", "taskDefinition": "etl:1", "count": 10, "parallelism": 3, "suspend": true,
                 "wait": {"timeout": "1h"}},
    }))
    .unwrap();
    let size = TaskSize { cpu_units: 512, memory_mib: 1024 };
    let spec = desired(&run, "team-a", size, Some(("urgent".into(), 1000)));
    assert_eq!(spec.queue_name, "team-a");
    assert_eq!(spec.pod_sets.len(), 1);
    assert_eq!(spec.pod_sets[0].count, 3, "min(parallelism, count)");
    let requests = &spec.pod_sets[0].template["spec"]["containers"][0]["resources"]["requests"];
    assert_eq!(requests, &json!({"cpu": "500m", "memory": "1024Mi"}));
    assert_eq!(spec.active, Some(false), "a suspended run holds no quota");
    assert_eq!(spec.maximum_execution_time_seconds, Some(3600));
    assert_eq!(spec.priority, Some(1000));
    assert_eq!(
        spec.priority_class_ref.map(|r| (r.kind, r.name)),
        Some(("WorkloadPriorityClass".into(), "urgent".into()))
    );
    let named = name_for("nightly", "0a1b2c3d-0000-4000-8000-000000000001");
    assert!(named.starts_with("nightly-") && named.len() == "nightly-".len() + 10, "{named}");
    assert_ne!(named, name_for("nightly", "0a1b2c3d-0000-4000-8000-000000000002"), "uids alike at the start");
    let long = "a".repeat(250) + ".b";
    assert!(name_for(&long, "0a1b2c3d").len() <= 253);
    assert!(!name_for(&("x".repeat(244) + "-y"), "0a1b2c3d").contains("--"));
}

#[test]
fn ecsrun_lets_its_workload_go_only_once_no_task_of_the_run_may_run() {
    let held = |mut workload: Workload, deleting: bool| {
        workload.metadata.finalizers = Some(vec![RESOURCE_IN_USE.into()]);
        if deleting {
            workload.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-12-07T10:00:00Z".parse().unwrap()));
        }
        workload
    };
    let admitted = workload(json!([cond("QuotaReserved", "True", "", ""), cond("Admitted", "True", "", "")]), None);
    let finished = workload(json!([cond("Finished", "True", "Succeeded", "")]), None);
    let rows = [
        ("admitted, running", held(admitted.clone(), false), run_status(Some(Phase::Running), true), false),
        (
            "deleted by hand, its task still running",
            held(admitted.clone(), true),
            run_status(Some(Phase::Stopping), true),
            false,
        ),
        (
            "deleted by hand, its task stopped",
            held(admitted.clone(), true),
            run_status(Some(Phase::Pending), false),
            true,
        ),
        ("finished", held(finished.clone(), false), run_status(Some(Phase::Succeeded), false), true),
        ("finished, let go already", finished, run_status(Some(Phase::Succeeded), false), false),
    ];
    for (row, workload, status, expected) in rows {
        assert_eq!(lets_go(&workload, &status), expected, "{row}");
    }
    let deleting = held(admitted, true);
    assert!(matches!(admission_of(&deleting), Admission::Waiting(why) if why.contains("being deleted")));
}

#[test]
fn active_follows_suspend_and_leaves_an_administrators_deactivation_alone() {
    let with_active = |active: Option<bool>| {
        let mut workload = workload(json!([]), None);
        workload.spec.active = active;
        workload
    };
    let mut suspended = EcsTaskRunStatus::default();
    suspended.task.reason = Some(crate::api::RunReason::Suspended.into());
    let mut queued = EcsTaskRunStatus::default();
    queued.task.reason = Some(crate::api::RunReason::Queued.into());
    let rows = [
        ("suspended: inactive", with_active(None), true, &queued, Some(false)),
        ("suspended and inactive already", with_active(Some(false)), true, &suspended, None),
        ("resumed: active again", with_active(Some(false)), false, &suspended, Some(true)),
        ("deactivated by an administrator: left alone", with_active(Some(false)), false, &queued, None),
        ("active and not suspended", with_active(Some(true)), false, &queued, None),
    ];
    for (row, workload, suspend, status, expected) in rows {
        assert_eq!(active_change(&workload, suspend, status), expected, "{row}");
    }
}

#[test]
fn the_admitting_flavor_chooses_the_capacity_provider() {
    let admitted = workload(
        json!([cond("QuotaReserved", "True", "", ""), cond("Admitted", "True", "", "")]),
        Some(
            json!({"clusterQueue": "shared", "podSetAssignments": [{"name": "tasks", "flavors": {"cpu": "spot", "memory": "spot"}}]}),
        ),
    );
    assert_eq!(admitted_flavor(&admitted), Some("spot"));
    assert_eq!(admitted_flavor(&workload(json!([]), None)), None);
    let flavor = |labels: serde_json::Value| json!({"metadata": {"name": "spot"}, "spec": {"nodeLabels": labels}});
    assert_eq!(
        flavor_capacity_provider(&flavor(json!({CAPACITY_PROVIDER_LABEL: "FARGATE_SPOT"}))),
        Some("FARGATE_SPOT")
    );
    assert_eq!(flavor_capacity_provider(&flavor(json!({"zone": "a"}))), None, "a flavor that names none");
    assert_eq!(flavor_capacity_provider(&json!({"metadata": {"name": "plain"}, "spec": {}})), None);

    let spec: crate::api::EcsTaskRunSpec = serde_json::from_value(json!({
        "cluster": "c", "taskDefinition": "etl:1", "launchType": "FARGATE", "tags": {"team": "a"},
    }))
    .unwrap();
    let on_spot = on_capacity(&spec, "FARGATE_SPOT");
    assert_eq!(on_spot.launch_type, None, "ECS takes a launch type or a strategy, not both");
    let strategy = on_spot.capacity_provider_strategy.clone().unwrap_or_default();
    assert_eq!(strategy.iter().map(|item| item.capacity_provider.as_str()).collect::<Vec<_>>(), ["FARGATE_SPOT"]);
    assert_eq!(on_spot.tags, spec.tags, "everything else as the spec says");
}

#[test]
fn indexes_that_have_ended_give_their_share_back() {
    let spec = |count: i32, parallelism: Option<i32>| crate::api::EcsTaskRunSpec {
        count,
        parallelism,
        ..crate::api::EcsTaskRunSpec::new("c")
    };
    let ended = |succeeded: i32, failed: i32| EcsTaskRunStatus {
        succeeded_tasks: Some(succeeded),
        failed_tasks: Some(failed),
        ..Default::default()
    };
    let rows = [
        ("one task", spec(1, None), ended(0, 0), 0),
        ("ten at three at once, none ended", spec(10, Some(3)), ended(0, 0), 0),
        ("ten at three at once, eight ended: two left", spec(10, Some(3)), ended(7, 1), 1),
        ("ten at three at once, nine ended", spec(10, Some(3)), ended(9, 0), 2),
        ("four at once, one succeeded", spec(4, None), ended(1, 0), 1),
    ];
    for (row, spec, status, expected) in rows {
        assert_eq!(reclaimable(&spec, &status), expected, "{row}");
    }
    let admitted = workload(json!([cond("QuotaReserved", "True", "", ""), cond("Admitted", "True", "", "")]), None);
    let running = EcsTaskRunStatus { succeeded_tasks: Some(9), ..run_status(Some(Phase::Running), true) };
    assert_eq!(status_change(&admitted, &spec(10, Some(3)), &running), Some(StatusChange::Reclaim { count: 2 }));
    let mut given = admitted.clone();
    given.status.as_mut().unwrap().reclaimable_pods = vec![ReclaimablePod { name: POD_SET.into(), count: 2 }];
    assert_eq!(status_change(&given, &spec(10, Some(3)), &running), None, "given back already");
    let mut object = json!({"metadata": {"generation": 1}, "status": {}});
    apply_change(&mut object, &StatusChange::Reclaim { count: 2 }, "2026-12-07T11:00:00Z".parse().unwrap());
    assert_eq!(object["status"]["reclaimablePods"], json!([{"name": POD_SET, "count": 2}]));
}
