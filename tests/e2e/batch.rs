//! Batch jobs as users write them: exit-code rules (`retryPolicy.rules`, as a Job's podFailurePolicy).
//! moto's `failing` task definition exits 3.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use ecsrun_e2e::wait;
use kube::ResourceExt;
use kube::api::DeleteParams;

use crate::{Case, Env, case, fargate_run};

pub const NAMESPACE: &str = "e2e-batch";

pub fn cases() -> Vec<Case> {
    vec![
        case("batch::a_fail_run_rule_on_exit_code_3_fails_at_once_despite_backoff_limit_5", fail_run_rule),
        case("batch::an_ignore_rule_retries_without_counting", ignore_rule),
    ]
}

fn rule(action: &str) -> String {
    format!(
        "  retryPolicy:\n    backoffLimit: {}\n    rules:\n      - action: {action}\n        onExitCodes:\n          \
         containerName: app\n          operator: In\n          values: [3]\n",
        if action == "FailRun" { 5 } else { 0 }
    )
}

async fn fail_run_rule(env: Arc<Env>) -> anyhow::Result<()> {
    let yaml = fargate_run("fail-on-3", "batch", "failing", &rule("FailRun"));
    let run = env.create(NAMESPACE, &env.manifest(&yaml)?).await?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "fail-on-3", Duration::from_secs(60), "Failed", wait::has_condition("Failed")).await?;
    ensure!(status.reason.as_deref() == Some("FailedByRule"), "reason {:?} ({:?})", status.reason, status.message);
    ensure!(
        status.message.as_deref().is_some_and(|m| m.contains("app exited 3") && m.contains("retryPolicy.rules[0]")),
        "message {:?}",
        status.message
    );
    ensure!(status.attempts.len() == 1, "retried although the rule fails the run: {:?}", status.attempts);
    let started = env.tasks_started_by("batch", &run.uid().context("uid")?).await?;
    ensure!(started.len() == 1, "ECS has {started:?}");
    Ok(())
}

async fn ignore_rule(env: Arc<Env>) -> anyhow::Result<()> {
    let yaml = fargate_run("ignore-3", "batch", "failing", &rule("Ignore"));
    let run = env.create(NAMESPACE, &env.manifest(&yaml)?).await?;
    let api = env.runs(NAMESPACE);
    // backoffLimit 0 would fail the run at its first exit 3; ignored, a second attempt follows (after 10 s).
    let retried = |run: Option<&ecsrun::api::EcsTaskRun>| {
        run.and_then(|run| run.status.as_ref()).is_some_and(|status| {
            status.attempts.len() >= 2 && status.attempts.iter().any(|a| a.attempt == 2 && a.task_arn.is_some())
        })
    };
    let status = wait::until(&api, "ignore-3", Duration::from_secs(60), "a second attempt", retried).await?;
    let first = &status.attempts[0];
    ensure!(first.outcome.as_deref() == Some("IgnoredByRule"), "attempt 1: {first:?}");
    ensure!(status.phase != Some(ecsrun::api::Phase::Failed), "failed: {:?}", status.message);
    let started = env.tasks_started_by("batch", &run.uid().context("uid")?).await?;
    ensure!(started.len() >= 2, "one task per attempt expected, ECS has {started:?}");
    api.delete("ignore-3", &DeleteParams::default()).await?;
    wait::gone(&api, "ignore-3", Duration::from_secs(60)).await?;
    Ok(())
}
