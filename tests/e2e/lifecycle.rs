//! A run's life beyond the happy path: waiting for RUNNING, deletion with Stop and Orphan, failing
//! containers with retries, the timeout, and `kubectl wait`.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use ecsrun_e2e::wait;
use kube::ResourceExt;
use kube::api::DeleteParams;

use crate::{Case, Env, case, fargate_run};

pub const NAMESPACE: &str = "e2e-lifecycle";

pub fn cases() -> Vec<Case> {
    vec![
        case("lifecycle::wait_for_running_then_delete_stops_the_task", wait_for_running_then_delete_stops_the_task),
        case("lifecycle::orphan_deletion_leaves_the_task_running", orphan_deletion_leaves_the_task_running),
        case("lifecycle::failing_container_fails_the_run_after_its_retries", failing_container_fails_after_retries),
        case("lifecycle::timeout_stops_the_task_and_fails_deadline_exceeded", timeout_stops_the_task),
        case("lifecycle::kubectl_wait_for_condition_succeeded", kubectl_wait_for_succeeded),
        case("lifecycle::a_task_definition_with_task_level_memory_only_runs", task_level_memory_only),
        case("lifecycle::fifty_runs_deleted_right_after_creation_leave_no_task_running", fast_create_then_delete),
    ]
}

async fn wait_for_running_then_delete_stops_the_task(env: Arc<Env>) -> anyhow::Result<()> {
    let stop_reason = "e2e: deleted while running";
    let yaml = fargate_run(
        "hold-running",
        "batch",
        "sleeper",
        &format!("  wait:\n    for: Running\n  stopReason: \"{stop_reason}\"\n"),
    );
    let run = env.create(NAMESPACE, &env.manifest(&yaml)?).await?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "hold-running", Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded"))
            .await?;
    ensure!(
        status.task.last_status.as_deref() == Some("RUNNING"),
        "waiting for Running ended at {:?}",
        status.task.last_status
    );
    let task_arn = status.task.task_arn.context("no taskArn")?;

    api.delete("hold-running", &DeleteParams::default()).await?;
    wait::gone(&api, "hold-running", Duration::from_secs(60)).await?;
    let task = env.task("batch", &task_arn).await?;
    ensure!(task.last_status() == Some("STOPPED"), "task is {:?} after deletion", task.last_status());
    ensure!(task.stop_code().map(|c| c.as_str()) == Some("UserInitiated"), "stopCode {:?}", task.stop_code());
    ensure!(task.stopped_reason() == Some(stop_reason), "StopTask reason {:?}", task.stopped_reason());
    let started = env.tasks_started_by("batch", &run.uid().context("uid")?).await?;
    ensure!(started.len() == 1, "tasks started: {started:?}");
    Ok(())
}

async fn orphan_deletion_leaves_the_task_running(env: Arc<Env>) -> anyhow::Result<()> {
    let yaml = fargate_run("orphan", "batch", "sleeper", "  deletionPolicy: Orphan\n");
    env.create(NAMESPACE, &env.manifest(&yaml)?).await?;
    let api = env.runs(NAMESPACE);
    let running = |run: Option<&ecsrun::api::EcsTaskRun>| {
        run.and_then(|run| run.status.as_ref()).is_some_and(|s| s.task.last_status.as_deref() == Some("RUNNING"))
    };
    let status = wait::until(&api, "orphan", Duration::from_secs(60), "RUNNING", running).await?;
    let task_arn = status.task.task_arn.context("no taskArn")?;

    api.delete("orphan", &DeleteParams::default()).await?;
    wait::gone(&api, "orphan", Duration::from_secs(30)).await?;
    // The controller is free to act on the deletion now; give it a poll interval to misbehave.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let task = env.task("batch", &task_arn).await?;
    ensure!(task.last_status() == Some("RUNNING"), "orphaned task is {:?}", task.last_status());
    env.ecs.stop_task().cluster("batch").task(&task_arn).send().await?;
    Ok(())
}

async fn failing_container_fails_after_retries(env: Arc<Env>) -> anyhow::Result<()> {
    let yaml = fargate_run("failing", "batch", "failing", "  retryPolicy:\n    backoffLimit: 1\n");
    let run = env.create(NAMESPACE, &env.manifest(&yaml)?).await?;
    let api = env.runs(NAMESPACE);
    // Two attempts of ~3s, 10s backoff between them, 5s polls.
    let status =
        wait::until(&api, "failing", Duration::from_secs(120), "Failed", wait::has_condition("Failed")).await?;
    ensure!(status.task.attempts.len() == 2, "attempts: {:?}", status.task.attempts);
    ensure!(status.attempt_count == Some(2), "attemptCount {:?}", status.attempt_count);
    let app = status.task.containers.iter().find(|c| c.name == "app").context("no app container")?;
    ensure!(app.exit_code == Some(3), "exit code {:?}", app.exit_code);
    let failed = status.conditions.iter().find(|c| c.type_ == "Failed").context("no Failed condition")?;
    ensure!(failed.message.contains("app exited 3"), "message: {}", failed.message);
    ensure!(status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "False"), "Ready should be False");
    let started = env.tasks_started_by("batch", &run.uid().context("uid")?).await?;
    ensure!(started.len() == 2, "one task per attempt expected, ECS has {started:?}");
    Ok(())
}

async fn timeout_stops_the_task(env: Arc<Env>) -> anyhow::Result<()> {
    let yaml = fargate_run("deadline", "batch", "sleeper", "  wait:\n    timeout: 8s\n");
    env.create(NAMESPACE, &env.manifest(&yaml)?).await?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "deadline", Duration::from_secs(60), "Failed", wait::has_condition("Failed")).await?;
    ensure!(status.task.reason.as_deref() == Some("DeadlineExceeded"), "reason {:?}", status.task.reason);
    let task = env.task("batch", status.task.task_arn.as_deref().context("no taskArn")?).await?;
    ensure!(task.last_status() == Some("STOPPED"), "task is {:?} after the deadline", task.last_status());
    Ok(())
}

async fn kubectl_wait_for_succeeded(env: Arc<Env>) -> anyhow::Result<()> {
    env.create(NAMESPACE, &env.manifest(&fargate_run("kubectl-wait", "batch", "transform", ""))?).await?;
    let kubeconfig = env.kubeconfig.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("kubectl")
            .env("KUBECONFIG", kubeconfig)
            .args(["wait", "--for=condition=Succeeded", "etr/kubectl-wait", "-n", NAMESPACE, "--timeout=90s"])
            .output()
    })
    .await?
    .context("running kubectl (it is on the machine image; install it if this fails)")?;
    ensure!(
        output.status.success(),
        "kubectl wait failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(String::from_utf8_lossy(&output.stdout).contains("condition met"), "kubectl wait printed {output:?}");
    Ok(())
}

/// ECS accepts a Fargate task definition whose containers have no memory of their own (the task's is
/// what Fargate reserves), so the e2e endpoint must too.
async fn task_level_memory_only(env: Arc<Env>) -> anyhow::Result<()> {
    env.create(NAMESPACE, &env.manifest(&fargate_run("memory-only", "batch", "task-memory-only", ""))?).await?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "memory-only", Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded"))
            .await?;
    ensure!(status.task.last_status.as_deref() == Some("STOPPED"), "lastStatus {:?}", status.task.last_status);
    Ok(())
}

/// Created and deleted within a moment, while their launches are in flight: none may leave a task running.
async fn fast_create_then_delete(env: Arc<Env>) -> anyhow::Result<()> {
    let api = env.runs(NAMESPACE);
    let runs = futures::future::try_join_all((0..50).map(|i: usize| {
        let env = env.clone();
        let api = api.clone();
        async move {
            let name = format!("blink-{i:02}");
            let run = env.create(NAMESPACE, &env.manifest(&fargate_run(&name, "batch", "sleeper", ""))?).await?;
            // Deleted the moment its launch is under way: the intent is recorded, RunTask may be in flight.
            let launching = |run: Option<&ecsrun::api::EcsTaskRun>| {
                run.and_then(|run| run.status.as_ref()).is_some_and(|s| s.task.phase.is_some())
            };
            wait::until(&api, &name, Duration::from_secs(60), "launching", launching).await?;
            api.delete(&name, &DeleteParams::default()).await?;
            anyhow::Ok((name, run.uid().context("uid")?))
        }
    }))
    .await?;
    for (name, _) in &runs {
        wait::gone(&api, name, Duration::from_secs(120)).await?;
    }
    for (name, uid) in &runs {
        let running = env
            .ecs
            .list_tasks()
            .cluster("batch")
            .started_by(ecsrun::decide::started_by(uid))
            .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
            .send()
            .await?;
        ensure!(running.task_arns().is_empty(), "{name} is gone but left {:?} running", running.task_arns());
    }
    Ok(())
}
