//! Operating runs: stopping one (`spec.stop`), following a task started elsewhere (`spec.taskArn`), the
//! Stop Task action (both at once), and what a run's tasks used (`status.usage` and the chargeback
//! counters).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use ecsrun_e2e::wait;
use k8s_openapi::api::core::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::{Case, Env, case, fargate_run};

/// Watched by the shared controller.
pub const NAMESPACE: &str = "e2e-operating";
/// Watched by the usage case's own controller, whose /metrics it reads.
pub const USAGE_NAMESPACE: &str = "e2e-usage";

pub fn cases() -> Vec<Case> {
    vec![
        case("operating::spec_stop_stops_a_running_run", spec_stop_stops_a_running_run),
        case("operating::a_task_started_with_boto3_is_adopted_and_followed", adopts_a_task_started_with_boto3),
        case("operating::adopting_with_stop_is_the_stop_task_action", stop_task_action),
        case("operating::usage_of_a_run_with_known_cpu_memory_and_duration", usage_of_a_known_run),
        case("operating::a_failed_containers_last_lines_are_in_status_and_event", last_lines_in_status_and_event),
        case("operating::unreadable_logs_leave_the_outcome_and_say_why", unreadable_logs_leave_the_outcome),
    ]
}

fn is_failed_with(reason: &'static str) -> impl Fn(Option<&ecsrun::api::EcsTaskRun>) -> bool {
    move |run| {
        run.and_then(|run| run.status.as_ref()).is_some_and(|status| {
            status.task.phase == Some(ecsrun::api::Phase::Failed) && status.task.reason.as_deref() == Some(reason)
        })
    }
}

async fn spec_stop_stops_a_running_run(env: Arc<Env>) -> anyhow::Result<()> {
    let run = env.create(NAMESPACE, &env.manifest(&fargate_run("stop-me", "batch", "sleeper", ""))?).await?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "stop-me", Duration::from_secs(60), "RUNNING", wait::has_last_status("RUNNING")).await?;
    let task_arn = status.task.task_arn.context("no taskArn")?;

    let stop = json!({"spec": {"stop": true, "stopReason": "e2e: stopped by an operator"}});
    api.patch("stop-me", &PatchParams::default(), &Patch::Merge(&stop)).await?;
    let status =
        wait::until(&api, "stop-me", Duration::from_secs(60), "Failed/Stopped", is_failed_with("Stopped")).await?;
    let task = env.task("batch", &task_arn).await?;
    ensure!(task.last_status() == Some("STOPPED"), "the task is {:?}", task.last_status());
    ensure!(task.stop_code().map(|c| c.as_str()) == Some("UserInitiated"), "stopCode {:?}", task.stop_code());
    ensure!(task.stopped_reason() == Some("e2e: stopped by an operator"), "stoppedReason {:?}", task.stopped_reason());
    ensure!(status.task.last_status.as_deref() == Some("STOPPED"), "the run says {:?}", status.task.last_status);
    ensure!(status.task.attempts.len() == 1, "a stopped run is not retried: {:?}", status.task.attempts);
    let started = env.tasks_started_by("batch", &run.uid().context("uid")?).await?;
    ensure!(started.len() == 1, "tasks started: {started:?}");
    Ok(())
}

/// Starts a task of `family` in `cluster` with boto3, as a team's own script would; returns its ARN.
async fn start_with_boto3(env: &Env, cluster: &str, family: &str) -> anyhow::Result<String> {
    let script = format!(
        r#"
import boto3
ecs = boto3.client("ecs", region_name="{region}", endpoint_url="{endpoint}",
                   aws_access_key_id="test", aws_secret_access_key="test")
task = ecs.run_task(cluster="{cluster}", taskDefinition="{family}", launchType="FARGATE",
                    networkConfiguration={{"awsvpcConfiguration": {{"subnets": ["{subnet}"]}}}},
                    startedBy="someone-else")["tasks"][0]
print(task["taskArn"])
"#,
        region = env.moto.fixtures.region,
        endpoint = env.moto.endpoint,
        subnet = env.moto.fixtures.subnet,
    );
    let python = env.moto.python.clone();
    let output = tokio::task::spawn_blocking(move || std::process::Command::new(python).args(["-c", &script]).output())
        .await?
        .context("running python")?;
    ensure!(output.status.success(), "boto3 run_task failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

fn adopting(name: &str, task_arn: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: ecsrun.dev/v1alpha1
kind: EcsTaskRun
metadata:
  name: {name}
spec:
  cluster: batch
  taskArn: {task_arn}
{extra}"#
    )
}

async fn adopts_a_task_started_with_boto3(env: Arc<Env>) -> anyhow::Result<()> {
    // db-dump runs ~3 s and exits 0.
    let task_arn = start_with_boto3(&env, "batch", "db-dump").await?;
    let run = env.create(NAMESPACE, &env.manifest(&adopting("adopted", &task_arn, ""))?).await?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "adopted", Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded")).await?;
    ensure!(
        status.task.task_arn.as_deref() == Some(task_arn.as_str()),
        "followed {:?}, not {task_arn}",
        status.task.task_arn
    );
    ensure!(status.task.last_status.as_deref() == Some("STOPPED"), "lastStatus {:?}", status.task.last_status);
    ensure!(status.task.exit_codes.as_deref() == Some("app=0"), "exit codes {:?}", status.task.exit_codes);
    ensure!(status.region.as_deref() == Some("eu-west-1"), "the ARN's region is pinned: {:?}", status.region);
    let started = env.tasks_started_by("batch", &run.uid().context("uid")?).await?;
    ensure!(started.is_empty(), "adopting launched tasks: {started:?}");

    // Orphan by default: deleting a run that follows someone else's running task leaves it running.
    let running = start_with_boto3(&env, "batch", "sleeper").await?;
    env.create(NAMESPACE, &env.manifest(&adopting("adopted-running", &running, ""))?).await?;
    wait::until(&api, "adopted-running", Duration::from_secs(60), "RUNNING", wait::has_last_status("RUNNING")).await?;
    api.delete("adopted-running", &DeleteParams::default()).await?;
    wait::gone(&api, "adopted-running", Duration::from_secs(30)).await?;
    let task = env.task("batch", &running).await?;
    ensure!(task.last_status() == Some("RUNNING"), "an adopted task was stopped on delete: {:?}", task.last_status());
    env.ecs.stop_task().cluster("batch").task(&running).send().await?;
    Ok(())
}

async fn stop_task_action(env: Arc<Env>) -> anyhow::Result<()> {
    let task_arn = start_with_boto3(&env, "batch", "sleeper").await?;
    let extra = "  stop: true\n  stopReason: \"e2e: Stop Task action\"\n";
    env.create(NAMESPACE, &env.manifest(&adopting("stop-task", &task_arn, extra))?).await?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "stop-task", Duration::from_secs(60), "Failed/Stopped", is_failed_with("Stopped")).await?;
    let task = env.task("batch", &task_arn).await?;
    ensure!(task.last_status() == Some("STOPPED"), "the task is {:?}", task.last_status());
    ensure!(task.stopped_reason() == Some("e2e: Stop Task action"), "stoppedReason {:?}", task.stopped_reason());
    ensure!(
        status.task.stop_code.as_deref() == Some("UserInitiated"),
        "the run says stopCode {:?}",
        status.task.stop_code
    );
    Ok(())
}

async fn usage_of_a_known_run(env: Arc<Env>) -> anyhow::Result<()> {
    let mut controller = env.controller("controller-usage", &[USAGE_NAMESPACE])?;
    controller.ready().await?;
    // transform: 256 CPU units, 512 MiB, ~3 s; overridden to 1 vCPU and 2 GiB.
    let extra = "  overrides:\n    cpu: \"1024\"\n    memory: \"2048\"\n";
    env.create(USAGE_NAMESPACE, &env.manifest(&fargate_run("costed", "batch", "transform", extra))?).await?;
    let api = env.runs(USAGE_NAMESPACE);
    let status =
        wait::until(&api, "costed", Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded")).await?;
    let task = env.task("batch", status.task.task_arn.as_deref().context("no taskArn")?).await?;
    let (started, stopped) = (task.started_at().context("startedAt")?, task.stopped_at().context("stoppedAt")?);
    let millis = (stopped.as_nanos() - started.as_nanos()) / 1_000_000;
    // 1 vCPU and 2 GiB for `millis`, in thousandths as the controller rounds them.
    let (vcpu, gib) = ((millis as f64).round() / 1000.0, (2.0 * millis as f64).round() / 1000.0);
    let usage = status.usage.context("no status.usage")?;
    ensure!((usage.vcpu_seconds, usage.gib_seconds) == (vcpu, gib), "usage {usage:?}; expected {vcpu} / {gib}");
    ensure!(vcpu > 2.0, "the task ran {millis} ms: too short to check anything");
    let attempt = status.task.attempts.first().and_then(|a| a.usage.clone()).context("no usage on the attempt")?;
    ensure!(attempt.capacity_provider.as_deref() == Some("FARGATE"), "ran on {:?}", attempt.capacity_provider);

    let series = |family: &str| format!("{family}{{capacity_provider=\"FARGATE\",namespace=\"{USAGE_NAMESPACE}\"}}");
    let counted = controller.metric(&series("ecsrun_task_vcpu_seconds_total")).await?;
    ensure!(counted == vcpu, "ecsrun_task_vcpu_seconds_total says {counted}, the run {vcpu}");
    let counted = controller.metric(&series("ecsrun_task_memory_gib_seconds_total")).await?;
    ensure!(counted == gib, "ecsrun_task_memory_gib_seconds_total says {counted}, the run {gib}");
    Ok(())
}

/// The message of the run's Warning Event with `reason`, once there is one.
async fn warning(env: &Env, namespace: &str, name: &str, reason: &str) -> anyhow::Result<String> {
    let events: Api<Event> = Api::namespaced(env.client.clone(), namespace);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = events.list(&ListParams::default().fields(&format!("involvedObject.name={name}"))).await?;
        if let Some(event) = list.items.iter().find(|e| e.reason.as_deref() == Some(reason)) {
            return Ok(event.message.clone().unwrap_or_default());
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no {reason} Event for {name}: {:?}",
            list.items.iter().map(|e| (&e.reason, &e.message)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn last_lines_in_status_and_event(env: Arc<Env>) -> anyhow::Result<()> {
    // chatty prints `app: line i of 50` through the awslogs driver and exits 3.
    env.create(NAMESPACE, &env.manifest(&fargate_run("chatty", "batch", "chatty", ""))?).await?;
    let api = env.runs(NAMESPACE);
    let status = wait::until(&api, "chatty", Duration::from_secs(60), "Failed", wait::has_condition("Failed")).await?;
    ensure!(status.task.reason.as_deref() == Some("ContainerFailed"), "reason {:?}", status.task.reason);
    let app = status.task.containers.iter().find(|c| c.name == "app").context("no app container")?;
    let expected = (31..=50).map(|i| format!("app: line {i} of 50")).collect::<Vec<_>>().join("\n");
    ensure!(
        app.log_tail.as_deref() == Some(expected.as_str()),
        "logTail {:?} ({:?})",
        app.log_tail,
        app.log_tail_error
    );
    let note = warning(&env, NAMESPACE, "chatty", "Failed").await?;
    ensure!(note.contains("last lines of app:") && note.ends_with("app: line 50 of 50"), "Failed Event: {note}");
    Ok(())
}

async fn unreadable_logs_leave_the_outcome(env: Arc<Env>) -> anyhow::Result<()> {
    // chatty-lost logs to a group that does not exist: nothing can be read.
    env.create(NAMESPACE, &env.manifest(&fargate_run("chatty-lost", "batch", "chatty-lost", ""))?).await?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "chatty-lost", Duration::from_secs(60), "Failed", wait::has_condition("Failed")).await?;
    ensure!(status.task.reason.as_deref() == Some("ContainerFailed"), "the outcome changed: {:?}", status.task.reason);
    ensure!(status.task.exit_codes.as_deref() == Some("app=3"), "exit codes {:?}", status.task.exit_codes);
    let app = status.task.containers.iter().find(|c| c.name == "app").context("no app container")?;
    ensure!(app.log_tail.is_none(), "a tail from nowhere: {:?}", app.log_tail);
    let why = app.log_tail_error.as_deref().context("no logTailError")?;
    ensure!(why.contains("ResourceNotFoundException") && !why.contains('\n'), "logTailError: {why}");
    Ok(())
}
