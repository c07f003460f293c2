//! Batch jobs: exit-code rules, runs of several tasks with parallelism and failFast, a restart in the
//! middle of one.

use std::collections::BTreeMap;
use std::time::Duration;

use ecsrun::api::{LastStatus, Phase};
use ecsrun_testbed::fakes::Harness;

use crate::{NS, POLL, launched, phase, spec};

fn rule(action: &str, backoff_limit: i32) -> String {
    format!(
        "retryPolicy:\n  backoffLimit: {backoff_limit}\n  rules:\n    - action: {action}\n      onExitCodes:\n        \
         containerName: app\n        operator: In\n        values: [3]\n"
    )
}

/// Moved from e2e `batch::a_fail_run_rule_on_exit_code_3_fails_at_once_despite_backoff_limit_5`.
#[tokio::test]
async fn a_fail_run_rule_fails_at_once_despite_the_backoff_limit() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let task = launched(&harness, "fail-on-3", &rule("FailRun", 5)).await?;
    harness.ecs.exit(&task, 3);
    harness.follow(NS, "fail-on-3", 1, POLL).await?;
    let status = harness.status(NS, "fail-on-3");
    assert_eq!(phase(&status), (Some(Phase::Failed), Some("FailedByRule")), "{:?}", status.task.message);
    assert!(
        status
            .task
            .message
            .as_deref()
            .is_some_and(|m| m.contains("app exited 3") && m.contains("retryPolicy.rules[0]"))
    );
    assert_eq!(harness.ecs.count("RunTask"), 1);
    Ok(())
}

/// Moved from e2e `batch::an_ignore_rule_retries_without_counting`.
#[tokio::test]
async fn an_ignore_rule_retries_without_counting() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let first = launched(&harness, "ignore-3", &rule("Ignore", 0)).await?;
    harness.ecs.exit(&first, 3);
    harness.follow(NS, "ignore-3", 1, POLL).await?;
    let status = harness.status(NS, "ignore-3");
    assert_eq!(phase(&status), (Some(Phase::Pending), Some("WaitingToRetry")), "{:?}", status.task.message);
    assert_eq!(status.task.attempts[0].outcome_str(), Some("IgnoredByRule"));
    harness.advance(Duration::from_secs(10));
    harness.reconcile(NS, "ignore-3").await?;
    let second = harness.status(NS, "ignore-3").task.task_arn.expect("attempt 2");
    harness.ecs.exit(&second, 0);
    harness.follow(NS, "ignore-3", 1, POLL).await?;
    let status = harness.status(NS, "ignore-3");
    assert_eq!(phase(&status), (Some(Phase::Succeeded), Some("Succeeded")), "backoffLimit 0, and yet retried");
    assert_eq!(status.attempt_count, Some(2));
    Ok(())
}

/// Moved from e2e `batch::count_5_parallelism_2_runs_every_index_once_and_never_more_than_2`.
#[tokio::test]
async fn count_5_parallelism_2_runs_every_index_once_and_never_more_than_2() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    harness.create(NS, "shards", &spec("count: 5\nparallelism: 2\n"))?;
    let mut most_live = 0;
    for _ in 0..40 {
        harness.reconcile(NS, "shards").await?;
        let live = harness.ecs.live();
        most_live = most_live.max(live.len());
        // Each live task runs, then exits 0 at the next look.
        for arn in &live {
            if harness.ecs.task(arn).is_some_and(|t| t.snapshot.last_is(LastStatus::Running)) {
                harness.ecs.exit(arn, 0)
            } else {
                harness.ecs.run(arn)
            }
        }
        if harness.pass(NS, "shards", Duration::from_secs(5)).await {
            break;
        }
    }
    let status = harness.status(NS, "shards");
    assert_eq!(phase(&status), (Some(Phase::Succeeded), Some("Succeeded")), "{:?}", status.task.message);
    assert_eq!(status.progress.as_deref(), Some("5/5"));
    assert!(most_live <= 2, "{most_live} tasks ran at once");
    // Every index ran once, told its own index, and ECS has it tagged so.
    let mut by_index: BTreeMap<String, usize> = BTreeMap::new();
    for task in harness.ecs.tasks() {
        let told = task.environment.iter().find(|(c, name, _)| c == "app" && name == "ECSRUN_TASK_INDEX");
        let tag = task.tags.iter().find(|(key, _)| key == "ecsrun.dev/index").map(|(_, v)| v.clone());
        assert_eq!(told.map(|(_, _, v)| v.clone()), tag, "told and tagged alike");
        *by_index.entry(tag.expect("an index tag")).or_default() += 1;
    }
    assert_eq!(by_index.values().copied().collect::<Vec<_>>(), vec![1; 5], "{by_index:?}");
    Ok(())
}

/// Moved from e2e `batch::an_index_out_of_retries_stops_the_others_with_fail_fast`.
#[tokio::test]
async fn an_index_out_of_retries_stops_the_others_with_fail_fast() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    harness.create(NS, "fail-fast", &spec("count: 3\nretryPolicy:\n  backoffLimit: 1\n"))?;
    harness.reconcile(NS, "fail-fast").await?;
    harness.reconcile(NS, "fail-fast").await?;
    let index_of = |arn: &str| {
        harness.ecs.task(arn).and_then(|t| t.tags.iter().find(|(k, _)| k == "ecsrun.dev/index").map(|(_, v)| v.clone()))
    };
    // Index 1 exits 2, twice; the others run on until stopped.
    for _ in 0..10 {
        for arn in harness.ecs.live() {
            if index_of(&arn).as_deref() == Some("1") {
                harness.ecs.exit(&arn, 2);
            } else {
                harness.ecs.run(&arn);
            }
        }
        harness.advance(Duration::from_secs(10));
        harness.sweep().await;
        harness.reconcile(NS, "fail-fast").await?;
        if harness.status(NS, "fail-fast").task.phase.is_some_and(Phase::is_terminal) {
            break;
        }
    }
    let status = harness.status(NS, "fail-fast");
    assert_eq!(phase(&status), (Some(Phase::Failed), Some("BackoffLimitExceeded")), "{:?}", status.task.message);
    assert!(status.task.message.as_deref().is_some_and(|m| m.starts_with("task index 1:")));
    let lane = |index: i32| status.tasks.iter().find(|t| t.index == index).expect("index recorded");
    assert_eq!(lane(1).task.attempts.len(), 2);
    for index in [0, 2] {
        assert_eq!(lane(index).task.reason_str(), Some("FailFast"), "index {index}");
    }
    assert_eq!(status.active_tasks, Some(0));
    assert!(harness.ecs.live().is_empty(), "failFast left tasks running");
    let stopped_by_us =
        harness.ecs.tasks().iter().filter(|t| t.snapshot.stop_code == Some("UserInitiated".into())).count();
    assert_eq!(stopped_by_us, 2);
    let reasons: Vec<String> = harness.api.events(NS, "fail-fast").into_iter().map(|(reason, ..)| reason).collect();
    assert_eq!(reasons, ["Running", "Stopping", "Failed"], "the run's transitions, not each index's");
    Ok(())
}

/// Moved from e2e `batch::a_controller_killed_mid_count_10_run_launches_no_index_twice`: a restart after
/// every reconcile, and still one task per index.
#[tokio::test]
async fn a_controller_restarted_after_every_step_launches_no_index_twice() -> anyhow::Result<()> {
    let mut harness = Harness::new().await?;
    harness.create(NS, "ten", &spec("count: 10\nparallelism: 4\n"))?;
    for step in 0..60 {
        // The write after RunTask is lost now and then, as a SIGKILL between the two would lose it.
        if step % 3 == 1 {
            harness.api.fail_after(1, http::Method::PATCH, "/status", 500);
        }
        let _ = harness.reconcile(NS, "ten").await;
        for arn in harness.ecs.live() {
            if harness.ecs.task(&arn).is_some_and(|t| t.snapshot.last_is(LastStatus::Running)) {
                harness.ecs.exit(&arn, 0)
            } else {
                harness.ecs.run(&arn)
            }
        }
        harness = harness.restart().await?;
        harness.advance(Duration::from_secs(5));
        harness.reconcile(NS, "ten").await.ok();
        harness.sweep().await;
        if harness.status(NS, "ten").task.phase.is_some_and(Phase::is_terminal) {
            break;
        }
    }
    let status = harness.status(NS, "ten");
    assert_eq!(phase(&status), (Some(Phase::Succeeded), Some("Succeeded")), "{:?}", status.task.message);
    let mut per_index: BTreeMap<String, usize> = BTreeMap::new();
    for task in harness.ecs.tasks() {
        let index = task.tags.iter().find(|(k, _)| k == "ecsrun.dev/index").map(|(_, v)| v.clone()).expect("index");
        *per_index.entry(index).or_default() += 1;
    }
    assert_eq!(per_index.len(), 10);
    assert!(per_index.values().all(|n| *n == 1), "an index launched twice: {per_index:?}");
    Ok(())
}
