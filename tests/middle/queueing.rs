//! A queued run against the real shell, with the test as Kueue: the Workload ecsrun makes, nothing
//! launched before admission, an eviction's stop and the quota given back only once the task stopped, a
//! Workload deleted by hand let go and made again (never doubled), and a finished run's Workload Finished.

use ecsrun::api::{EcsTaskRun, Phase, QUEUE_NAME_LABEL, RunReason};
use ecsrun_testbed::fakes::Harness;
use serde_json::{Value, json};

use super::{NS, POLL, phase, spec};

fn conditions(workload: &Value) -> Vec<(String, String)> {
    workload["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (c["type"].as_str().unwrap_or_default().to_owned(), c["status"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

fn is(workload: &Value, type_: &str, status: &str) -> bool {
    conditions(workload).iter().any(|(t, s)| t == type_ && s == status)
}

fn admit(harness: &Harness, name: &str) {
    harness.api.edit_object("workloads", NS, name, |w| {
        w["status"] = json!({
            "admission": {"clusterQueue": "shared", "podSetAssignments": [{"name": "tasks", "flavors": {"cpu": "fargate"}}]},
            "conditions": [
                {"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved", "message": "", "lastTransitionTime": "2027-01-15T08:00:00Z"},
                {"type": "Admitted", "status": "True", "reason": "Admitted", "message": "", "lastTransitionTime": "2027-01-15T08:00:00Z"},
            ],
        });
    });
}

/// Creates queued run `name` and reconciles it twice (its finalizer, then its Workload); returns the
/// Workload's name.
async fn queued(harness: &Harness, name: &str) -> anyhow::Result<String> {
    let mut run = EcsTaskRun::new(name, serde_yaml_ng::from_str(&spec(""))?);
    run.metadata.labels = Some([(QUEUE_NAME_LABEL.to_owned(), "team".to_owned())].into());
    let run = harness.api.create_run(NS, &run, harness.now());
    harness.reconcile(NS, name).await?;
    harness.reconcile(NS, name).await?;
    Ok(ecsrun::queue::name_for(name, run.metadata.uid.as_deref().unwrap_or_default()))
}

#[tokio::test]
async fn a_queued_run_launches_on_admission_and_gives_quota_back_only_once_its_evicted_task_stopped()
-> anyhow::Result<()> {
    let harness = Harness::queueing().await?;
    let workload_name = queued(&harness, "etl").await?;
    let workload = harness.api.object("workloads", NS, &workload_name).expect("ecsrun made the run's Workload");
    assert_eq!(workload["spec"]["queueName"], "team");
    assert_eq!(
        workload["spec"]["podSets"][0]["template"]["spec"]["containers"][0]["resources"]["requests"],
        json!({"cpu": "500m", "memory": "1024Mi"}),
        "the task definition's size"
    );
    assert_eq!(workload["metadata"]["finalizers"], json!([ecsrun::queue::RESOURCE_IN_USE]));
    assert_eq!(phase(&harness.status(NS, "etl")), (Some(Phase::Pending), Some("Queued")));
    assert_eq!(harness.ecs.count("RunTask"), 0, "nothing launches before admission");

    admit(&harness, &workload_name);
    harness.reconcile(NS, "etl").await?;
    let task = harness.status(NS, "etl").task.task_arn.clone().expect("launched once admitted");
    harness.ecs.run(&task);
    harness.follow(NS, "etl", 1, POLL).await?;
    assert_eq!(phase(&harness.status(NS, "etl")), (Some(Phase::Running), Some("TaskRunning")));

    // Kueue evicts it: the task is stopped; the quota stays reserved until ECS says STOPPED.
    harness.api.edit_object("workloads", NS, &workload_name, |w| {
        w["status"]["conditions"].as_array_mut().unwrap().push(json!({"type": "Evicted", "status": "True",
            "reason": "Preempted", "message": "Preempted to accommodate a higher priority Workload",
            "lastTransitionTime": "2027-01-15T08:05:00Z"}));
    });
    harness.reconcile(NS, "etl").await?;
    let stopped = harness.ecs.task(&task).expect("the task");
    assert!(stopped.snapshot.stopped_reason.as_deref().is_some_and(|r| r.ends_with("[ecsrun:evicted]")));
    // The fake ECS stops a task at StopTask: the next look sees STOPPED and the quota goes back.
    harness.follow(NS, "etl", 1, POLL).await?;
    let status = harness.status(NS, "etl");
    assert_eq!(phase(&status), (Some(Phase::Pending), Some("Queued")));
    assert_eq!(status.task.attempts.last().and_then(|a| a.known_outcome()), Some(RunReason::Evicted));
    let workload = harness.api.object("workloads", NS, &workload_name).expect("the Workload");
    assert!(
        is(&workload, "QuotaReserved", "False") && is(&workload, "Requeued", "True"),
        "{:?}",
        conditions(&workload)
    );
    assert!(workload["status"].get("admission").is_none(), "admission cleared");

    // Admitted again: attempt 2 runs to success, and the Workload is Finished and let go.
    admit(&harness, &workload_name);
    harness.reconcile(NS, "etl").await?;
    let second = harness.status(NS, "etl").task.task_arn.clone().expect("attempt 2");
    assert_ne!(second, task);
    harness.ecs.exit(&second, 0);
    harness.follow(NS, "etl", 1, POLL).await?;
    assert_eq!(phase(&harness.status(NS, "etl")), (Some(Phase::Succeeded), Some("Succeeded")));
    harness.reconcile(NS, "etl").await?;
    let workload = harness.api.object("workloads", NS, &workload_name).expect("the Workload");
    assert!(is(&workload, "Finished", "True"), "{:?}", conditions(&workload));
    assert!(workload["metadata"].get("finalizers").is_none(), "let go once finished: {}", workload["metadata"]);
    assert_eq!(harness.ecs.count("RunTask"), 2);
    Ok(())
}

#[tokio::test]
async fn a_workload_deleted_by_hand_is_let_go_once_the_task_stopped_and_made_again_never_doubled() -> anyhow::Result<()>
{
    let harness = Harness::queueing().await?;
    let workload_name = queued(&harness, "etl").await?;
    admit(&harness, &workload_name);
    harness.reconcile(NS, "etl").await?;
    let task = harness.status(NS, "etl").task.task_arn.clone().expect("launched");
    harness.ecs.run(&task);

    // Kueue's hold keeps the deleted Workload (and its quota) while the task runs.
    harness.api.delete_object("workloads", NS, &workload_name);
    harness.reconcile(NS, "etl").await?;
    assert!(harness.api.object("workloads", NS, &workload_name).is_some(), "held while the task may run");
    assert!(harness.ecs.task(&task).is_some_and(|t| t.snapshot.is_stopped()), "stopped: no admission");
    harness.follow(NS, "etl", 1, POLL).await?;
    // Its task stopped: let go (gone), then made again, one Workload, and the run waits for admission.
    harness.reconcile(NS, "etl").await?;
    harness.reconcile(NS, "etl").await?;
    let workloads = harness.api.objects("workloads");
    assert_eq!(workloads.len(), 1, "never doubled");
    assert!(workloads[0]["metadata"]["deletionTimestamp"].is_null(), "a new Workload: {}", workloads[0]["metadata"]);
    assert_eq!(phase(&harness.status(NS, "etl")), (Some(Phase::Pending), Some("Queued")));
    assert_eq!(harness.ecs.count("RunTask"), 1);
    Ok(())
}

#[tokio::test]
async fn deleting_a_queued_run_starts_no_task_and_removes_its_workload() -> anyhow::Result<()> {
    let harness = Harness::queueing().await?;
    let workload_name = queued(&harness, "etl").await?;
    assert!(harness.api.object("workloads", NS, &workload_name).is_some());
    harness.api.delete_run(NS, "etl", harness.now());
    harness.reconcile(NS, "etl").await?;
    assert!(harness.run(NS, "etl").is_none(), "released: nothing ran");
    assert!(harness.api.object("workloads", NS, &workload_name).is_none(), "its Workload went with it");
    assert_eq!(harness.ecs.count("RunTask"), 0);
    Ok(())
}
