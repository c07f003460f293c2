//! Results through the controller's real shell: the logs read from (fake) CloudWatch once a task
//! succeeds, what lands in the status and the Events, an index's own results, a retried attempt's, and
//! CloudWatch's few seconds of delay.

use std::collections::BTreeMap;
use std::time::Duration;

use ecsrun::api::{LastStatus, Phase};
use ecsrun_testbed::fakes::Harness;

use crate::{NS, POLL, launched, phase, spec};

/// The stream the fake task definition's app container logs to (awslogs, prefix `ecs`).
fn app_stream(task_arn: &str) -> String {
    format!("ecs/app/{}", task_arn.rsplit('/').next().unwrap_or_default())
}

fn results(required: &str) -> String {
    format!("results:\n  containers: [app]\n  required: [{required}]\n")
}

fn pairs(map: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test]
async fn a_succeeded_tasks_results_land_in_the_status_and_a_malformed_one_is_told() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let task = launched(&harness, "extract", &results("rows")).await?;
    harness.ecs.run(&task);
    harness.follow(NS, "extract", 1, POLL).await?;
    harness.ecs.print(
        &app_stream(&task),
        &["reading", "::ecsrun-result rows=1200", "::ecsrun-result key=s3://lake/2026/12/07", "::ecsrun-result oops"],
    );
    harness.ecs.exit(&task, 0);
    harness.follow(NS, "extract", 1, POLL).await?;
    let status = harness.status(NS, "extract");
    assert_eq!(phase(&status), (Some(Phase::Succeeded), Some("Succeeded")), "{:?}", status.task.message);
    assert_eq!(pairs(&status.task.results), [("key", "s3://lake/2026/12/07"), ("rows", "1200")]);
    let message = status.task.message.clone().unwrap_or_default();
    assert!(message.contains("results refused: app: a result line without '=' (oops)"), "{message}");
    let events = harness.api.events(NS, "extract");
    assert!(events.iter().any(|(reason, note, _)| reason == "ResultRefused" && note.contains("oops")), "{events:?}");
    assert_eq!(harness.ecs.count("GetLogEvents"), 1, "read once");
    Ok(())
}

#[tokio::test]
async fn a_result_that_reaches_cloudwatch_late_is_found_by_the_second_look() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let task = launched(&harness, "late", &results("rows")).await?;
    harness.ecs.exit(&task, 0);
    harness.follow(NS, "late", 1, Duration::from_secs(1)).await?;
    let status = harness.status(NS, "late");
    assert_eq!(phase(&status), (Some(Phase::Stopping), Some("TaskStopping")), "{:?}", status.task.message);
    // The driver's last batch arrives a few seconds after the stop.
    harness.ecs.print(&app_stream(&task), &["::ecsrun-result rows=7"]);
    harness.advance(Duration::from_secs(5));
    harness.reconcile(NS, "late").await?;
    let status = harness.status(NS, "late");
    assert_eq!(phase(&status), (Some(Phase::Succeeded), Some("Succeeded")), "{:?}", status.task.message);
    assert_eq!(pairs(&status.task.results), [("rows", "7")]);
    assert_eq!(harness.ecs.count("GetLogEvents"), 2);
    Ok(())
}

#[tokio::test]
async fn a_required_result_that_never_comes_fails_the_run_with_result_missing() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let task = launched(&harness, "silent", &results("rows")).await?;
    harness.ecs.print(&app_stream(&task), &["::ecsrun-result other=1"]);
    harness.ecs.exit(&task, 0);
    harness.follow(NS, "silent", 1, POLL).await?;
    let status = harness.status(NS, "silent");
    assert_eq!(phase(&status), (Some(Phase::Failed), Some("ResultMissing")), "{:?}", status.task.message);
    assert!(status.task.message.as_deref().is_some_and(|m| m.contains("did not publish required result(s) rows")));
    assert_eq!(harness.ecs.count("RunTask"), 1, "backoffLimit 0: not retried");
    Ok(())
}

#[tokio::test]
async fn a_retried_attempts_results_are_its_own_never_the_earlier_attempts() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let extra = format!("{}retryPolicy:\n  backoffLimit: 1\n", results("rows"));
    let first = launched(&harness, "retried", &extra).await?;
    // Attempt 1 prints both results, then fails.
    harness.ecs.print(&app_stream(&first), &["::ecsrun-result rows=1", "::ecsrun-result stale=yes"]);
    harness.ecs.exit(&first, 2);
    harness.follow(NS, "retried", 1, POLL).await?;
    let status = harness.status(NS, "retried");
    assert_eq!(phase(&status), (Some(Phase::Pending), Some("WaitingToRetry")), "{:?}", status.task.message);
    assert!(status.task.results.is_empty(), "a failed task's results are not read: {:?}", status.task.results);
    harness.advance(Duration::from_secs(10));
    harness.reconcile(NS, "retried").await?;
    let second = harness.status(NS, "retried").task.task_arn.expect("attempt 2");
    assert_ne!(second, first);
    harness.ecs.print(&app_stream(&second), &["::ecsrun-result rows=2"]);
    harness.ecs.exit(&second, 0);
    harness.follow(NS, "retried", 1, POLL).await?;
    let status = harness.status(NS, "retried");
    assert_eq!(phase(&status), (Some(Phase::Succeeded), Some("Succeeded")), "{:?}", status.task.message);
    assert_eq!(pairs(&status.task.results), [("rows", "2")], "attempt 1's lines are in its own stream");
    Ok(())
}

#[tokio::test]
async fn each_index_of_a_run_of_several_tasks_keeps_its_own_results() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    harness.create(NS, "shards", &spec(&format!("count: 3\n{}", results("shard"))))?;
    for _ in 0..20 {
        harness.reconcile(NS, "shards").await?;
        for arn in harness.ecs.live() {
            let task = harness.ecs.task(&arn).expect("a live task");
            if !task.snapshot.last_is(LastStatus::Running) {
                harness.ecs.run(&arn);
                continue;
            }
            let index = task.tags.iter().find(|(k, _)| k == "ecsrun.dev/index").map(|(_, v)| v.clone());
            let index = index.expect("an index tag");
            harness.ecs.print(&app_stream(&arn), &[&format!("::ecsrun-result shard=part-{index}")]);
            harness.ecs.exit(&arn, 0);
        }
        if harness.pass(NS, "shards", Duration::from_secs(5)).await {
            break;
        }
    }
    let status = harness.status(NS, "shards");
    assert_eq!(phase(&status), (Some(Phase::Succeeded), Some("Succeeded")), "{:?}", status.task.message);
    let by_index: Vec<(i32, Option<&str>)> =
        status.tasks.iter().map(|lane| (lane.index, lane.task.results.get("shard").map(String::as_str))).collect();
    assert_eq!(by_index, [(0, Some("part-0")), (1, Some("part-1")), (2, Some("part-2"))]);
    assert!(status.task.results.is_empty(), "a run of several keeps results per index only");
    Ok(())
}
