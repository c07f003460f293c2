//! Operating runs and surviving crashes: `spec.stop`, following and stopping tasks started elsewhere,
//! a launch whose answer was never recorded, a clientToken ECS already knows.

use std::time::Duration;

use ecsrun::api::Phase;
use ecsrun::ecs::{Actor, Ecs, EcsTarget, Identity, LaunchRequest, RunTaskOutcome};
use ecsrun_testbed::fakes::Harness;
use http::Method;

use crate::{NS, POLL, launched, phase, spec};

/// Moved from e2e `operating::spec_stop_stops_a_running_run`.
#[tokio::test]
async fn spec_stop_stops_a_running_run_and_it_is_not_retried() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let task = launched(&harness, "stop-me", "retryPolicy:\n  backoffLimit: 3\n").await?;
    harness.ecs.run(&task);
    harness.follow(NS, "stop-me", 1, POLL).await?;
    harness.api.edit_spec(NS, "stop-me", |spec| {
        spec.stop = true;
        spec.stop_reason = Some("stopped by an operator".into());
    });
    harness.reconcile(NS, "stop-me").await?;
    let stopped = harness.ecs.task(&task).expect("the task");
    assert_eq!(stopped.snapshot.stopped_reason.as_deref(), Some("stopped by an operator [ecsrun:stop]"));
    harness.follow(NS, "stop-me", 2, Duration::from_secs(2)).await?;
    let status = harness.status(NS, "stop-me");
    assert_eq!(phase(&status), (Some(Phase::Failed), Some("Stopped")), "{:?}", status.task.message);
    assert_eq!(status.task.last_status, Some("STOPPED".into()));
    assert_eq!(status.task.attempts.len(), 1, "a stopped run is not retried");
    assert_eq!(harness.ecs.count("RunTask"), 1);
    Ok(())
}

fn adopting(task_arn: &str, extra: &str) -> String {
    format!("cluster: demo\ntaskArn: {task_arn}\n{extra}")
}

/// Moved from e2e `operating::a_task_started_with_boto3_is_adopted_and_followed`.
#[tokio::test]
async fn a_task_started_elsewhere_is_followed_to_its_end_and_left_running_on_delete() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let task = harness.ecs.start_elsewhere("demo");
    harness.create(NS, "adopted", &adopting(&task, ""))?;
    harness.reconcile(NS, "adopted").await?;
    harness.reconcile(NS, "adopted").await?;
    let status = harness.status(NS, "adopted");
    assert_eq!(status.task.task_arn.as_deref(), Some(task.as_str()));
    assert_eq!(status.region.as_deref(), Some("eu-west-1"), "the ARN's region is pinned");
    harness.ecs.exit(&task, 0);
    harness.follow(NS, "adopted", 1, POLL).await?;
    assert_eq!(phase(&harness.status(NS, "adopted")), (Some(Phase::Succeeded), Some("Succeeded")));
    assert_eq!(harness.ecs.count("RunTask"), 0, "adopting launches nothing");

    // Orphan by default: deleting a run that follows someone else's running task leaves it running.
    let running = harness.ecs.start_elsewhere("demo");
    harness.create(NS, "adopted-running", &adopting(&running, ""))?;
    harness.reconcile(NS, "adopted-running").await?;
    harness.reconcile(NS, "adopted-running").await?;
    harness.api.delete_run(NS, "adopted-running", harness.now());
    harness.reconcile(NS, "adopted-running").await?;
    assert!(harness.run(NS, "adopted-running").is_none());
    assert!(harness.ecs.live().contains(&running), "an adopted task was stopped on delete");
    Ok(())
}

/// Moved from e2e `operating::adopting_with_stop_is_the_stop_task_action`.
#[tokio::test]
async fn adopting_with_stop_is_the_stop_task_action() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let task = harness.ecs.start_elsewhere("demo");
    harness.create(NS, "stop-task", &adopting(&task, "stop: true\nstopReason: \"Stop Task action\"\n"))?;
    for _ in 0..2 {
        harness.reconcile(NS, "stop-task").await?;
    }
    harness.follow(NS, "stop-task", 3, Duration::from_secs(1)).await?;
    let status = harness.status(NS, "stop-task");
    assert_eq!(phase(&status), (Some(Phase::Failed), Some("Stopped")), "{:?}", status.task.message);
    assert_eq!(status.task.stop_code, Some("UserInitiated".into()));
    let stopped = harness.ecs.task(&task).expect("the task");
    assert_eq!(stopped.snapshot.stopped_reason.as_deref(), Some("Stop Task action [ecsrun:stop]"));
    Ok(())
}

/// Moved from e2e `recovery::adopts_a_task_it_started_before_a_crash_and_survives_sigkill`: the status
/// write after RunTask is lost; the next reconcile finds the task by startedBy instead of launching again,
/// and a restarted controller (fresh tracker) goes on following it.
#[tokio::test]
async fn a_launch_whose_answer_was_not_recorded_is_adopted_not_repeated() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    harness.create(NS, "adopt", &spec(""))?;
    harness.reconcile(NS, "adopt").await?;
    // The intent is written; the write after RunTask fails.
    harness.api.fail_after(1, Method::PATCH, "/status", 500);
    assert!(harness.reconcile(NS, "adopt").await.is_err());
    assert_eq!(harness.ecs.count("RunTask"), 1);
    let status = harness.status(NS, "adopt");
    assert_eq!((status.task.reason_str(), status.task.task_arn.as_deref()), (Some("Launching"), None));
    harness.reconcile(NS, "adopt").await?;
    let task = harness.ecs.tasks()[0].snapshot.task_arn.clone();
    let status = harness.status(NS, "adopt");
    assert_eq!(status.task.task_arn.as_deref(), Some(task.as_str()), "{:?}", status.task.message);
    assert_eq!(harness.ecs.count("RunTask"), 1, "looked for, not launched again");
    assert_eq!(harness.ecs.count("ListTasks"), 2, "RUNNING and STOPPED");

    let restarted = harness.restart().await?;
    harness.ecs.exit(&task, 0);
    restarted.reconcile(NS, "adopt").await?; // follows it anew: not seen by this replica yet
    restarted.follow(NS, "adopt", 1, POLL).await?;
    let status = restarted.status(NS, "adopt");
    assert_eq!(phase(&status), (Some(Phase::Succeeded), Some("Succeeded")), "{:?}", status.task.message);
    assert_eq!(status.task.task_arn.as_deref(), Some(task.as_str()));
    assert_eq!(harness.ecs.count("RunTask"), 1);
    Ok(())
}

/// Moved from e2e `recovery::a_task_launched_just_before_the_deadline_is_found_and_stopped`.
#[tokio::test]
async fn a_task_launched_unrecorded_before_the_deadline_is_found_and_stopped() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    harness.create(NS, "late", &spec("wait:\n  timeout: 8s\n"))?;
    harness.reconcile(NS, "late").await?;
    harness.api.fail_after(1, Method::PATCH, "/status", 500);
    assert!(harness.reconcile(NS, "late").await.is_err());
    let task = harness.ecs.tasks()[0].snapshot.task_arn.clone();
    harness.ecs.run(&task);
    harness.advance(Duration::from_secs(9));
    harness.reconcile(NS, "late").await?;
    harness.follow(NS, "late", 3, Duration::from_secs(2)).await?;
    let status = harness.status(NS, "late");
    assert_eq!(phase(&status), (Some(Phase::Failed), Some("DeadlineExceeded")), "{:?}", status.task.message);
    assert_eq!(status.task.task_arn.as_deref(), Some(task.as_str()), "the run recorded the task it found");
    assert!(harness.ecs.live().is_empty(), "the task runs on after its run timed out");
    Ok(())
}

/// Moved from e2e `recovery::a_reused_client_token_adopts_the_task_ecs_started_with_it`.
#[tokio::test]
async fn a_client_token_ecs_knows_from_other_parameters_adopts_its_task() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let run = harness.create(NS, "token", &spec(""))?;
    let uid = run.metadata.uid.clone().expect("a uid");
    // Attempt 1's token, used by someone else with other parameters (no startedBy: ListTasks cannot find it).
    let target = EcsTarget { region: "eu-west-1".into(), identity: Identity::Default, cluster: "demo".into() };
    let theirs = LaunchRequest {
        spec: run.spec.clone(),
        task_definition: "other".into(),
        overrides: None,
        client_token: ecsrun::decide::client_token(&uid, 1),
        started_by: String::new(),
        tags: Vec::new(),
        actor: Actor::default(),
        send_within: None,
    };
    let RunTaskOutcome::Started(first) = harness.ecs.run_task(&target, &theirs).await? else { panic!("no task") };
    harness.reconcile(NS, "token").await?;
    harness.reconcile(NS, "token").await?;
    let status = harness.status(NS, "token");
    assert_eq!(status.task.task_arn.as_deref(), Some(first.task_arn.as_str()), "{:?}", status.task.message);
    assert_eq!(harness.ecs.tasks().len(), 1, "a second task was launched");
    assert_eq!(harness.ecs.count("ListTasks"), 0, "no intent was found recorded: nothing to look for");
    Ok(())
}

/// A replica whose fence closed (it may have lost the Lease) is refused by its own ECS port and records
/// nothing about it: the status is the new leader's to write.
#[tokio::test]
async fn a_launch_refused_by_the_leader_fence_writes_nothing() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    harness.create(NS, "fenced", &spec(""))?;
    harness.reconcile(NS, "fenced").await?;
    harness.ecs.fail_next("RunTask", ecsrun::ecs::EcsErrorKind::NotLeader);
    let writes = harness.api.count(Method::PATCH, "/status");
    let error = harness.reconcile(NS, "fenced").await.expect_err("refused");
    assert_eq!(error.label(), "not_leader");
    // The intent went out before RunTask was refused; nothing after it.
    assert_eq!(harness.api.count(Method::PATCH, "/status"), writes + 1);
    assert_eq!(harness.status(NS, "fenced").task.reason_str(), Some("Launching"));
    // The next leader finds the intent and looks for the task before launching.
    harness.reconcile(NS, "fenced").await?;
    assert_eq!((harness.ecs.count("ListTasks"), harness.ecs.tasks().len()), (2, 1));
    Ok(())
}

/// Issue 35, finding 1: a launch held up past its intent (here DescribeTaskDefinition takes 15 s) does not
/// send RunTask on that intent: the deletion's and Find's graces count from it. The next reconcile records
/// a new intent, looks for a task, and launches.
#[tokio::test]
async fn a_launch_held_up_past_its_intent_records_a_new_intent_before_run_task() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    harness.create(NS, "slow", &spec(""))?;
    harness.reconcile(NS, "slow").await?; // adds the finalizer
    harness.stall_next("DescribeTaskDefinition", Duration::from_secs(15));
    let held_up = harness.reconcile(NS, "slow").await;
    assert_eq!(harness.ecs.count("RunTask"), 0, "no RunTask on an intent 15 s old");
    assert_eq!(held_up.err().map(|error| error.label()), Some("launch_intent_expired"));
    let status = harness.status(NS, "slow");
    let intent = status.task.attempts.last().and_then(|a| a.sent_at.clone()).expect("the intent stands");
    harness.reconcile(NS, "slow").await?;
    assert_eq!(harness.ecs.count("RunTask"), 1);
    let status = harness.status(NS, "slow");
    assert!(status.task.task_arn.is_some(), "{:?}", status.task.message);
    assert!(harness.ecs.count("ListTasks") >= 1, "the task is looked for before launching again");
    assert!(intent.0 < harness.now(), "a new intent was recorded");
    Ok(())
}
