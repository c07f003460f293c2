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
        case("batch::managed_tags_ebs_volumes_environment_files_and_gpus_reach_ecs", run_task_options),
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

/// The RunTask options beyond the basics, read back from moto: the managed tag ECS adds, the container
/// overrides as DescribeTasks reports them, and the launch-time volume from the launcher's record on
/// moto's task (DescribeTasks shows volumes only as attachments). moto does not judge whether the task
/// definition declares the volume, or whether Fargate takes GPUs: ECS would.
async fn run_task_options(env: Arc<Env>) -> anyhow::Result<()> {
    let extra = r#"  enableECSManagedTags: true
  volumeConfigurations:
    - name: scratch
      managedEBSVolume:
        roleArn: arn:aws:iam::123456789012:role/ecsInfrastructureRole
        sizeInGiB: 500
        volumeType: gp3
        throughput: 250
        encrypted: true
        filesystemType: xfs
  overrides:
    containerOverrides:
      - name: app
        environmentFiles:
          - {value: "arn:aws:s3:::e2e-jobs/transform.env", type: s3}
        resourceRequirements:
          - {type: GPU, value: "1"}
"#;
    env.create(NAMESPACE, &env.manifest(&fargate_run("options", "batch", "transform", extra))?).await?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "options", Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded")).await?;
    let arn = status.task_arn.context("no taskArn")?;
    let task = env.task("batch", &arn).await?;
    ensure!(
        task.tags().iter().any(|t| t.key() == Some("aws:ecs:clusterName") && t.value() == Some("batch")),
        "no managed tag: {:?}",
        task.tags()
    );
    let app = task
        .overrides()
        .and_then(|o| o.container_overrides().iter().find(|c| c.name() == Some("app")))
        .context("no override of app")?;
    ensure!(
        app.environment_files()
            .iter()
            .map(|f| (f.value(), f.r#type().as_str()))
            .eq([("arn:aws:s3:::e2e-jobs/transform.env", "s3")]),
        "environmentFiles: {:?}",
        app.environment_files()
    );
    ensure!(
        app.resource_requirements().iter().map(|r| (r.r#type().as_str(), r.value())).eq([("GPU", "1")]),
        "resourceRequirements: {:?}",
        app.resource_requirements()
    );
    let models = env.moto.models().await?;
    let recorded = models["ecs"]["Task"]
        .as_array()
        .and_then(|tasks| tasks.iter().find(|t| t["task_arn"] == arn.as_str()))
        .map(|t| t["run_task_volumes"].clone())
        .context("moto has no record of the task")?;
    let expected = serde_json::json!([{"name": "scratch", "managedEBSVolume": {
        "roleArn": "arn:aws:iam::123456789012:role/ecsInfrastructureRole", "sizeInGiB": 500, "volumeType": "gp3",
        "throughput": 250, "encrypted": true, "filesystemType": "xfs"}}]);
    ensure!(recorded == expected, "volumeConfigurations reached ECS as {recorded}");
    Ok(())
}
