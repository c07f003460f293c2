//! Operating runs: stopping one (`spec.stop`), following a task started elsewhere (`spec.taskArn`), the
//! Stop Task action (both at once), and what a run's tasks used (`status.usage` and the chargeback
//! counters).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use ecsrun_e2e::wait;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};

use crate::{Case, Env, case, fargate_run};

/// Watched by the shared controller.
pub const NAMESPACE: &str = "e2e-operating";
/// Watched by the usage case's own controller, whose /metrics it reads.
pub const USAGE_NAMESPACE: &str = "e2e-usage";

pub fn cases() -> Vec<Case> {
    vec![
        case("operating::usage_of_a_run_with_known_cpu_memory_and_duration", usage_of_a_known_run),
        case("operating::a_failed_containers_last_lines_are_in_status_and_event", last_lines_in_status_and_event),
        case("operating::unreadable_logs_leave_the_outcome_and_say_why", unreadable_logs_leave_the_outcome),
    ]
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
