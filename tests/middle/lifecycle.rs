//! A run of one task from launch to its end: following it, retries, deadlines, deletion (Stop and Orphan).

use std::sync::Arc;
use std::time::Duration;

use ecsrun::api::{EcsTaskRun, Phase, ScheduleOrigin};
use ecsrun::schedule;
use ecsrun::schedule::shell::SLOT_SETTLE;
use ecsrun_testbed::fakes::{Harness, listed_store, schedule_context};

use crate::{NS, POLL, launched, phase, spec};

#[tokio::test]
async fn a_run_is_launched_once_followed_and_succeeds() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let task = launched(&harness, "nightly", "").await?;
    assert_eq!(harness.ecs.count("RunTask"), 1);
    harness.ecs.run(&task);
    harness.follow(NS, "nightly", 1, POLL).await?;
    assert_eq!(phase(&harness.status(NS, "nightly")), (Some(Phase::Running), Some("TaskRunning")));
    harness.ecs.exit(&task, 0);
    harness.follow(NS, "nightly", 1, POLL).await?;
    let status = harness.status(NS, "nightly");
    assert_eq!(phase(&status), (Some(Phase::Succeeded), Some("Succeeded")), "{:?}", status.task.message);
    assert_eq!(status.task.exit_codes.as_deref(), Some("app=0,log-router=0"));
    // Nothing more happens to a final run, however often it is looked at.
    harness.follow(NS, "nightly", 3, POLL).await?;
    assert_eq!(harness.ecs.count("RunTask"), 1, "one task per run");
    let reasons: Vec<String> = harness.api.events(NS, "nightly").into_iter().map(|(reason, ..)| reason).collect();
    assert_eq!(reasons, ["Launched", "Running", "Succeeded"]);
    Ok(())
}

/// Moved from e2e `lifecycle::wait_for_running_then_delete_stops_the_task`.
#[tokio::test]
async fn waiting_for_running_then_deleting_stops_the_task_with_the_runs_reason() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let task = launched(&harness, "hold", "wait:\n  for: Running\nstopReason: \"deleted while running\"\n").await?;
    harness.ecs.run(&task);
    harness.follow(NS, "hold", 1, POLL).await?;
    let status = harness.status(NS, "hold");
    assert_eq!(phase(&status), (Some(Phase::Succeeded), Some("Succeeded")));
    assert_eq!(status.task.last_status, Some("RUNNING".into()), "Running is what it waited for");
    harness.api.delete_run(NS, "hold", harness.now());
    harness.reconcile(NS, "hold").await?;
    let stopped = harness.ecs.task(&task).expect("the task");
    assert_eq!(stopped.snapshot.stop_code, Some("UserInitiated".into()));
    assert_eq!(
        stopped.snapshot.stopped_reason.as_deref(),
        Some("deleted while running [ecsrun:delete]"),
        "the run's stopReason"
    );
    assert!(harness.run(NS, "hold").is_none(), "the finalizer went once ECS said STOPPED");
    assert_eq!(harness.ecs.count("RunTask"), 1);
    Ok(())
}

/// Moved from e2e `lifecycle::orphan_deletion_leaves_the_task_running`.
#[tokio::test]
async fn an_orphaned_run_leaves_its_task_running() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let task = launched(&harness, "orphan", "deletionPolicy: Orphan\n").await?;
    harness.ecs.run(&task);
    harness.follow(NS, "orphan", 1, POLL).await?;
    harness.api.delete_run(NS, "orphan", harness.now());
    harness.reconcile(NS, "orphan").await?;
    assert!(harness.run(NS, "orphan").is_none(), "released at once");
    harness.sweep().await;
    assert_eq!(harness.ecs.live(), vec![task], "the task runs on");
    assert_eq!(harness.ecs.count("StopTask"), 0);
    Ok(())
}

/// Moved from e2e `lifecycle::failing_container_fails_the_run_after_its_retries` (which waited out the
/// 10 s backoff).
#[tokio::test]
async fn a_failing_container_fails_the_run_after_its_retries() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let first = launched(&harness, "failing", "retryPolicy:\n  backoffLimit: 1\n").await?;
    harness.ecs.exit(&first, 3);
    harness.follow(NS, "failing", 1, POLL).await?;
    let status = harness.status(NS, "failing");
    assert_eq!(phase(&status), (Some(Phase::Pending), Some("WaitingToRetry")), "{:?}", status.task.message);
    // Not before the backoff.
    harness.reconcile(NS, "failing").await?;
    assert_eq!(harness.ecs.count("RunTask"), 1, "relaunched before the backoff");
    harness.advance(Duration::from_secs(10));
    harness.reconcile(NS, "failing").await?;
    let second = harness.status(NS, "failing").task.task_arn.expect("attempt 2 launched");
    assert_ne!(second, first);
    harness.ecs.exit(&second, 3);
    harness.follow(NS, "failing", 1, POLL).await?;
    let status = harness.status(NS, "failing");
    assert_eq!(phase(&status), (Some(Phase::Failed), Some("BackoffLimitExceeded")), "{:?}", status.task.message);
    assert_eq!((status.task.attempts.len(), status.attempt_count), (2, Some(2)));
    let failed = status.conditions.iter().find(|c| c.type_ == "Failed").expect("a Failed condition");
    assert!(failed.message.contains("app exited 3"), "{}", failed.message);
    assert!(status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "False"));
    assert_eq!(harness.ecs.tasks().len(), 2, "one task per attempt");
    let notes: Vec<(String, String, i64)> =
        harness.api.events(NS, "failing").into_iter().filter(|(reason, ..)| reason == "Retrying").collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    Ok(())
}

/// Moved from e2e `lifecycle::timeout_stops_the_task_and_fails_deadline_exceeded` (which waited 8 s).
#[tokio::test]
async fn a_timeout_stops_the_task_and_fails_the_run() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let task = launched(&harness, "deadline", "wait:\n  timeout: 8s\n").await?;
    harness.ecs.run(&task);
    harness.follow(NS, "deadline", 1, Duration::from_secs(5)).await?;
    assert_eq!(phase(&harness.status(NS, "deadline")).0, Some(Phase::Running));
    harness.follow(NS, "deadline", 1, Duration::from_secs(5)).await?;
    let status = harness.status(NS, "deadline");
    assert_eq!(phase(&status), (Some(Phase::Stopping), Some("DeadlineExceeded")), "{:?}", status.task.message);
    assert_eq!(harness.ecs.count("StopTask"), 1);
    harness.follow(NS, "deadline", 1, Duration::from_secs(2)).await?;
    let status = harness.status(NS, "deadline");
    assert_eq!(phase(&status), (Some(Phase::Failed), Some("DeadlineExceeded")), "{:?}", status.task.message);
    assert!(harness.ecs.live().is_empty());
    Ok(())
}

/// Moved from e2e `errors::bad_references_fail_once_and_retried_errors_show_as_events` (which watched a
/// metric for 20 s to see no hot loop).
#[tokio::test]
async fn bad_references_fail_once_and_cost_nothing_after() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    harness.create(NS, "no-cluster", &spec("").replace("cluster: demo", "cluster: does-not-exist"))?;
    for _ in 0..2 {
        harness.reconcile(NS, "no-cluster").await?;
    }
    let status = harness.status(NS, "no-cluster");
    assert_eq!(phase(&status), (Some(Phase::Failed), Some("ClusterNotFound")));
    let failed = status.conditions.iter().find(|c| c.type_ == "Failed").expect("a Failed condition");
    assert!(failed.message.contains("ClusterNotFoundException"), "AWS's words: {}", failed.message);
    let calls = harness.ecs.calls().len();
    let writes = harness.api.count(http::Method::PATCH, "/status");
    for _ in 0..5 {
        harness.advance(POLL);
        harness.sweep().await;
        harness.reconcile(NS, "no-cluster").await?;
    }
    assert_eq!(harness.ecs.calls().len(), calls, "ECS calls after Failed");
    assert_eq!(harness.api.count(http::Method::PATCH, "/status"), writes, "status writes after Failed");
    let warnings: Vec<String> =
        harness.api.events(NS, "no-cluster").into_iter().map(|(reason, ..)| reason).filter(|r| r == "Failed").collect();
    assert_eq!(warnings.len(), 1);
    Ok(())
}

/// Moved from the same e2e case: a Secret that may still arrive (GitOps ordering) is retried, and the run
/// says why in its status and Events, each retry's own cause.
#[tokio::test]
async fn a_missing_secret_is_retried_and_said_on_the_run() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    harness.create(NS, "no-secret", &spec("credentials:\n  secretRef:\n    name: not-there-yet\n"))?;
    harness.reconcile(NS, "no-secret").await?;
    let error = harness.reconcile(NS, "no-secret").await.expect_err("no credentials, no launch");
    assert_eq!(error.label(), "credentials");
    let status = harness.status(NS, "no-secret");
    assert_eq!(phase(&status), (Some(Phase::Pending), Some("CredentialsError")));
    assert!(status.task.message.as_deref().is_some_and(|m| m.contains("Secret jobs/not-there-yet not found")));
    assert!(status.conditions.iter().any(|c| c.type_ == "Reconciling" && c.reason == "CredentialsError"));
    let events = harness.api.events(NS, "no-secret");
    assert!(
        events.iter().any(|(reason, note, _)| reason == "ReconcileError" && note.contains("not-there-yet not found")),
        "{events:?}"
    );
    assert_eq!(harness.ecs.count("RunTask"), 0);
    Ok(())
}

/// Moved from e2e `faults::a_task_seen_and_then_forgotten_by_ecs_ends_unknown_and_is_not_relaunched`,
/// which waited out ECS's two-minute grace in real time: a task the controller saw running and then
/// cannot find any more may have succeeded, so the run ends Unknown and nothing is launched again,
/// although backoffLimit allows retries.
#[tokio::test]
async fn a_task_seen_and_then_forgotten_by_ecs_ends_unknown_and_is_not_relaunched() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let task = launched(&harness, "forgotten", "retryPolicy:\n  backoffLimit: 2\nwait:\n  for: Stopped\n").await?;
    harness.ecs.run(&task);
    harness.follow(NS, "forgotten", 1, Duration::from_secs(5)).await?;
    assert_eq!(harness.status(NS, "forgotten").task.last_status, Some("RUNNING".into()));
    harness.ecs.exit(&task, 0);
    harness.ecs.forget(&task);
    // Within ECS's eventual-consistency grace, a task it does not describe is looked for again.
    harness.follow(NS, "forgotten", 1, Duration::from_secs(5)).await?;
    assert_eq!(harness.status(NS, "forgotten").task.phase, Some(Phase::Running));
    harness.follow(NS, "forgotten", 1, Duration::from_secs(121)).await?;
    let status = harness.status(NS, "forgotten");
    assert_eq!(phase(&status), (Some(Phase::Unknown), Some("OutcomeUnknown")), "{:?}", status.task.message);
    for type_ in ["Succeeded", "Failed"] {
        let condition = status.conditions.iter().find(|c| c.type_ == type_);
        assert!(condition.is_some_and(|c| c.status == "Unknown"), "{type_}: {condition:?}");
    }
    // Long past any retry's backoff: still one attempt, one task.
    harness.follow(NS, "forgotten", 3, Duration::from_secs(60)).await?;
    let status = harness.status(NS, "forgotten");
    assert_eq!((status.task.attempts.len(), harness.ecs.count("RunTask")), (1, 1));
    let unknown =
        harness.api.events(NS, "forgotten").into_iter().filter(|(reason, ..)| reason == "OutcomeUnknown").count();
    assert_eq!(unknown, 1);
    Ok(())
}

/// At 30,000 runs the bench saw ~900 reconciles of a copy the cache held after the run's deletion went
/// through (a task's change woke it before the watch said the run was gone): each failed to remove the
/// finalizer from a run that no longer existed, and published a ReconcileError Event about it.
#[tokio::test]
async fn a_copy_of_a_run_already_released_is_done_not_an_error() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let task = launched(&harness, "released", "").await?;
    harness.ecs.exit(&task, 0);
    harness.follow(NS, "released", 1, POLL).await?;
    harness.api.delete_run(NS, "released", harness.now());
    let held = harness.run(NS, "released").expect("held by its finalizer");
    harness.reconcile(NS, "released").await?;
    assert!(harness.run(NS, "released").is_none(), "released");
    let result = harness.reconcile_copy(held).await;
    assert!(result.is_ok(), "the run is gone, as the deletion wanted: {result:?}");
    let reasons: Vec<String> = harness.api.events(NS, "released").into_iter().map(|(reason, ..)| reason).collect();
    assert!(!reasons.iter().any(|reason| reason == "ReconcileError"), "{reasons:?}");
    Ok(())
}

/// Found by the simulator once its calls took time (seed 916): a run deleted with `deletionPolicy:
/// Orphan` and created again under its name. A replica whose cache still held the old run's deletion
/// released it without looking (nothing to stop), and kube's finalizer helper, which addresses the run by
/// name, removed the new run's finalizer: the new run could then be deleted with its task running. Every
/// finalizer write is guarded by the copy's uid.
#[tokio::test]
async fn a_stale_copy_of_a_replaced_orphan_run_leaves_the_new_runs_finalizer() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    launched(&harness, "kept", "deletionPolicy: Orphan\n").await?;
    harness.api.delete_run(NS, "kept", harness.now());
    let stale = harness.run(NS, "kept").expect("held by its finalizer");
    harness.reconcile(NS, "kept").await?;
    assert!(harness.run(NS, "kept").is_none(), "the old run is released at once");

    launched(&harness, "kept", "deletionPolicy: Orphan\n").await?;
    let new = harness.run(NS, "kept").expect("the new run");
    assert_eq!(new.metadata.finalizers.as_ref().map(Vec::len), Some(1), "{new:?}");
    let result = harness.reconcile_copy(stale).await;
    assert!(result.as_ref().is_err_and(|error| error.label() == "stale_object"), "{result:?}");
    let after = harness.run(NS, "kept").expect("the new run stays");
    assert_eq!(after.metadata.finalizers, new.metadata.finalizers, "the new run keeps its finalizer");
    Ok(())
}

/// Issue 23's finding 6: a run deleted and created again under its name (GitOps `Replace`) is another run.
/// A replica whose cache still holds the old run's deletion must neither stop the new run's task nor
/// remove the new run's finalizer (both address the run by name).
#[tokio::test]
async fn a_stale_copy_of_a_replaced_run_touches_nothing_of_the_new_one() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let old_task = launched(&harness, "replaced", "").await?;
    harness.api.delete_run(NS, "replaced", harness.now());
    // What a lagging cache keeps: the old run being deleted, its task not yet stopped.
    let stale = harness.run(NS, "replaced").expect("held by its finalizer");
    harness.reconcile(NS, "replaced").await?;
    assert!(harness.run(NS, "replaced").is_none(), "the old run is gone once its task stopped");
    assert!(harness.ecs.task(&old_task).is_some_and(|task| task.snapshot.is_stopped()));

    let new_task = launched(&harness, "replaced", "").await?;
    let new = harness.run(NS, "replaced").expect("the new run");
    assert_ne!(new.metadata.uid, stale.metadata.uid);
    let result = harness.reconcile_copy(stale.clone()).await;
    assert!(result.as_ref().is_err_and(|error| error.label() == "stale_object"), "{result:?}");
    assert!(!harness.ecs.task(&new_task).expect("the new task").snapshot.is_stopped(), "the new run's task runs on");
    let after = harness.run(NS, "replaced").expect("the new run stays");
    assert_eq!(after.metadata.finalizers, new.metadata.finalizers, "the new run keeps its finalizer");

    Ok(())
}

/// Issue 35, finding 5: a schedule's run of a slot the schedule's status does not record yet (its status
/// patch failed) is not deleted by `ttlSecondsAfterFinished: 0`: gone, the schedule would take the slot for
/// untaken and create a second run for it. Once the slot is recorded, the run goes.
#[tokio::test]
async fn a_schedules_run_outlives_its_ttl_until_its_slot_is_recorded() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let (mut schedule, slot, name, task) = a_slot_run_launched(&harness, "ttlSecondsAfterFinished: 0\n").await?;
    harness.ecs.exit(&task, 0);
    harness.follow(NS, &name, 1, POLL).await?;
    assert_eq!(phase(&harness.status(NS, &name)), (Some(Phase::Succeeded), Some("Succeeded")));
    harness.advance(Duration::from_secs(1));
    harness.reconcile(NS, &name).await?;
    assert!(harness.run(NS, &name).is_some(), "kept: the schedule has not recorded its slot");
    record_slot(&harness, &mut schedule, slot);
    harness.reconcile(NS, &name).await?; // deleted: the finalizer holds it
    let _ = harness.reconcile(NS, &name).await; // nothing to stop; the slot settles
    harness.advance(SLOT_SETTLE);
    harness.reconcile(NS, &name).await?;
    assert!(harness.run(NS, &name).is_none(), "deleted once the slot is recorded and settled");
    Ok(())
}

/// Found by the simulator's schedule (seed 287 of issue 35's stop): a user deleted a schedule's run before
/// the schedule's status recorded its slot (the write was lost), and the schedule created the slot's run a
/// second time. The finalizer holds such a run, under its slot's name, until the slot is recorded.
#[tokio::test]
async fn a_deleted_schedules_run_keeps_its_slot_until_the_schedule_records_it() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let (mut schedule, slot, name, task) = a_slot_run_launched(&harness, "").await?;

    harness.api.delete_run(NS, &name, harness.now());
    let _ = harness.reconcile(NS, &name).await; // stops the task
    harness.ecs.exit(&task, 143);
    harness.sweep().await;
    let held = harness.reconcile(NS, &name).await;
    assert!(held.as_ref().is_err_and(|error| error.label() == "slot_unrecorded"), "{held:?}");
    assert!(harness.run(NS, &name).is_some(), "held: the schedule has not recorded its slot");

    record_slot(&harness, &mut schedule, slot);
    let settling = harness.reconcile(NS, &name).await;
    assert!(settling.as_ref().is_err_and(|error| error.label() == "slot_settling"), "{settling:?}");
    harness.advance(SLOT_SETTLE);
    harness.reconcile(NS, &name).await?;
    assert!(harness.run(NS, &name).is_none(), "released once the slot is recorded and settled");
    Ok(())
}

/// Found by the simulator once its schedule's status writes could be refused for minutes (seed 565 of
/// issue 35's stop 43): while the slot was unrecorded, the finalizer read the schedule and got a 404 for
/// the whole resource (its CRD being reloaded), took the schedule for gone, and let its run go; the
/// schedule created the slot's run again. Only the schedule's own "not found" lets the run go.
#[tokio::test]
async fn a_404_for_the_whole_schedule_resource_does_not_free_an_unrecorded_slot() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let (_schedule, _slot, name, task) = a_slot_run_launched(&harness, "").await?;
    harness.api.delete_run(NS, &name, harness.now());
    let _ = harness.reconcile(NS, &name).await; // stops the task
    harness.ecs.exit(&task, 143);
    harness.sweep().await;

    harness.api.fail_after(0, http::Method::GET, "/ecstaskschedules/", 404);
    let reloading = harness.reconcile(NS, &name).await;
    assert!(reloading.is_err(), "a 404 that names no schedule is an error, not an answer: {reloading:?}");
    assert!(harness.run(NS, &name).is_some(), "held: the schedule may still be there, its slot unrecorded");
    let held = harness.reconcile(NS, &name).await;
    assert!(held.as_ref().is_err_and(|error| error.label() == "slot_unrecorded"), "{held:?}");
    Ok(())
}

/// Found by the simulator once its calls took time (seed 1506 of issue 35's stop 42): a schedule
/// reconcile found the slot's name free, and its create reached the API server ~70 s later, after another
/// replica had created and recorded the run and a user had deleted it: the slot ran twice. A deleted slot's
/// run keeps its name until `SLOT_SETTLE` after its creation, past the deadline of any reconcile that
/// found the name free before it was taken.
#[tokio::test]
async fn a_deleted_schedules_run_keeps_its_name_while_a_create_may_still_land() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let (mut schedule, slot, name, task) = a_slot_run_launched(&harness, "").await?;
    record_slot(&harness, &mut schedule, slot);
    harness.api.delete_run(NS, &name, harness.now());
    let _ = harness.reconcile(NS, &name).await; // stops the task
    harness.ecs.exit(&task, 143);
    harness.sweep().await;

    let held = harness.reconcile(NS, &name).await;
    assert!(held.as_ref().is_err_and(|error| error.label() == "slot_settling"), "{held:?}");
    let created = harness.run(NS, &name).and_then(|run| run.metadata.creation_timestamp).expect("created").0;
    harness.advance(SLOT_SETTLE - harness.now().duration_since(created).unsigned_abs() - Duration::from_secs(1));
    let held = harness.reconcile(NS, &name).await;
    assert!(held.as_ref().is_err_and(|error| error.label() == "slot_settling"), "{held:?}");
    assert!(harness.run(NS, &name).is_some(), "a second before it settles, the name is still taken");
    harness.advance(Duration::from_secs(1));
    harness.reconcile(NS, &name).await?;
    assert!(harness.run(NS, &name).is_none(), "released once no create can land any more");
    Ok(())
}

/// An hourly schedule whose runs are `spec(extra)`, and its run of the slot now, launched: the schedule, the
/// slot, the run's name and its task's ARN.
async fn a_slot_run_launched(
    harness: &Harness,
    extra: &str,
) -> anyhow::Result<(ecsrun::api::EcsTaskSchedule, jiff::Timestamp, String, String)> {
    let template = serde_yaml_ng::from_str::<serde_json::Value>(&spec(extra))?;
    let schedule: ecsrun::api::EcsTaskSchedule = serde_json::from_value(serde_json::json!({
        "apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskSchedule",
        "metadata": {"name": "hourly", "namespace": NS},
        "spec": {"schedule": "@hourly", "runTemplate": {"spec": template}},
    }))?;
    let schedule = harness.api.put_schedule(NS, &schedule);
    let slot = harness.now();
    let run = schedule.run(schedule.run_name_for_slot(slot), slot, false);
    let name = run.metadata.name.clone().unwrap_or_default();
    harness.api.create_run(NS, &run, harness.now());
    harness.reconcile(NS, &name).await?;
    harness.reconcile(NS, &name).await?;
    let task = harness.status(NS, &name).task.task_arn.ok_or_else(|| anyhow::anyhow!("{name} not launched"))?;
    Ok((schedule, slot, name, task))
}

/// The schedule's status records `slot` as its last.
fn record_slot(harness: &Harness, schedule: &mut ecsrun::api::EcsTaskSchedule, slot: jiff::Timestamp) {
    schedule.status = Some(ecsrun::api::EcsTaskScheduleStatus {
        last_schedule_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(slot)),
        ..Default::default()
    });
    harness.api.put_schedule(NS, schedule);
}

/// Issue 35, stop 42: a schedule reconciled on a copy its watch has not updated since the slot was
/// recorded (and the slot's run deleted, the name free) would create the slot's run a second time. The
/// schedule reads its status from the API server before it creates a slot's run.
#[tokio::test]
async fn a_schedule_reconciled_on_a_stale_copy_leaves_a_recorded_slot_alone() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let template = serde_yaml_ng::from_str::<serde_json::Value>(&spec(""))?;
    let created = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(harness.now());
    let mut schedule: ecsrun::api::EcsTaskSchedule = serde_json::from_value(serde_json::json!({
        "apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskSchedule",
        "metadata": {"name": "hourly", "namespace": NS, "creationTimestamp": created},
        "spec": {"schedule": "@hourly", "runTemplate": {"spec": template}},
    }))?;
    schedule = harness.api.put_schedule(NS, &schedule);
    let stale = schedule.clone();
    harness.advance(Duration::from_secs(3600));
    let slot = harness.now();
    let (runs, _writer) = listed_store(Vec::<EcsTaskRun>::new());
    let schedules = Arc::new(schedule_context(&harness.ctx, runs));

    record_slot(&harness, &mut schedule, slot);
    schedule::shell::reconcile(Arc::new(stale.clone()), schedules.clone()).await?;
    assert!(harness.api.created_runs().is_empty(), "the slot is recorded: {:?}", harness.api.created_runs());

    // The same copy with the slot not recorded on the API server creates its run: the check is the
    // API server's status, not a refusal of stale copies.
    record_slot(&harness, &mut schedule, slot - jiff::SignedDuration::from_hours(1));
    schedule::shell::reconcile(Arc::new(stale), schedules).await?;
    let created: Vec<_> = harness.api.created_runs().into_iter().filter_map(|run| run.schedule_origin()).collect();
    assert_eq!(created, vec![ScheduleOrigin::Slot { schedule: "hourly".into(), slot }]);
    Ok(())
}
