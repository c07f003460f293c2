//! Bad references end the run Failed with AWS's own message, once: the controller does not hot-loop.
//! These cases run under a controller of their own, whose /metrics counts only their ECS calls.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use ecsrun_e2e::wait;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};

use crate::{Case, Env, case, fargate_run};

pub const NAMESPACE: &str = "e2e-errors";

pub fn cases() -> Vec<Case> {
    vec![case("errors::bad_references_fail_once_and_retried_errors_show_as_events", missing_references_fail_once)]
}

async fn missing_references_fail_once(env: Arc<Env>) -> anyhow::Result<()> {
    let mut controller = env.controller("controller-errors", &[NAMESPACE])?;
    controller.ready().await?;
    env.create(NAMESPACE, &env.manifest(&fargate_run("no-such-cluster", "does-not-exist", "transform", ""))?).await?;
    env.create(NAMESPACE, &env.manifest(&fargate_run("no-such-task-definition", "batch", "does-not-exist:7", ""))?)
        .await?;
    // A missing Secret may still arrive (GitOps ordering): retried, and said on the run.
    let missing_secret = "  credentials:\n    secretRef:\n      name: not-there-yet\n";
    env.create(NAMESPACE, &env.manifest(&fargate_run("no-secret", "batch", "transform", missing_secret))?).await?;
    let api = env.runs(NAMESPACE);

    let cluster =
        wait::until(&api, "no-such-cluster", Duration::from_secs(60), "Failed", wait::has_condition("Failed")).await?;
    let failed = cluster.conditions.iter().find(|c| c.type_ == "Failed").context("no Failed condition")?;
    ensure!(failed.reason == "ClusterNotFound", "reason {} ({})", failed.reason, failed.message);
    ensure!(failed.message.contains("ClusterNotFoundException"), "AWS message missing: {}", failed.message);

    let definition =
        wait::until(&api, "no-such-task-definition", Duration::from_secs(60), "Failed", wait::has_condition("Failed"))
            .await?;
    let failed = definition.conditions.iter().find(|c| c.type_ == "Failed").context("no Failed condition")?;
    ensure!(failed.reason == "TaskDefinitionNotFound", "reason {} ({})", failed.reason, failed.message);
    ensure!(
        failed.message.contains("does-not-exist"),
        "AWS message does not name the task definition: {}",
        failed.message
    );

    // Each Event follows the status write the waits above saw.
    let events: Api<Event> = Api::namespaced(env.client.clone(), NAMESPACE);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let warnings = events.list(&ListParams::default().fields("type=Warning")).await?;
        if warnings.items.iter().filter(|e| e.reason.as_deref() == Some("Failed")).count() >= 2 {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "a Warning Event per failed run expected: {:?}",
            warnings.items.iter().map(|e| (&e.reason, &e.message)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let secret_warning = |e: &&Event| {
        e.reason.as_deref() == Some("ReconcileError") && e.involved_object.name.as_deref() == Some("no-secret")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let warnings = events.list(&ListParams::default().fields("type=Warning")).await?;
        if let Some(event) = warnings.items.iter().find(secret_warning) {
            let note = event.message.clone().unwrap_or_default();
            ensure!(note.contains("Secret e2e-errors/not-there-yet not found"), "Event note: {note}");
            break;
        }
        ensure!(std::time::Instant::now() < deadline, "no ReconcileError Event for the run with a missing Secret");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // ... and in the run's own status, where `kubectl get etr` shows it (it used to show nothing).
    let blocked = |run: Option<&ecsrun::api::EcsTaskRun>| {
        run.and_then(|run| run.status.as_ref())
            .is_some_and(|status| status.task.reason.as_deref() == Some("CredentialsError"))
    };
    let status = wait::until(&api, "no-secret", Duration::from_secs(30), "CredentialsError", blocked).await?;
    ensure!(status.task.phase == Some(ecsrun::api::Phase::Pending), "phase {:?}", status.task.phase);
    let message = status.task.message.unwrap_or_default();
    ensure!(message.contains("Secret e2e-errors/not-there-yet not found"), "status message: {message}");
    ensure!(
        status.conditions.iter().any(|c| c.type_ == "Reconciling" && c.reason == "CredentialsError"),
        "conditions: {:?}",
        status.conditions
    );

    // No hot loop: once Failed, a run costs no more ECS calls and no more reconciles.
    let calls = controller.metric_total("ecsrun_ecs_calls_total").await?;
    let reconciles = controller.metric(r#"ecsrun_reconciles_total{result="ok"}"#).await?;
    tokio::time::sleep(Duration::from_secs(20)).await;
    controller.process.ensure_alive()?;
    let calls_later = controller.metric_total("ecsrun_ecs_calls_total").await?;
    let reconciles_later = controller.metric(r#"ecsrun_reconciles_total{result="ok"}"#).await?;
    ensure!(calls > 0.0, "the controller made no ECS calls at all");
    ensure!(calls_later == calls, "ECS calls went on after Failed: {calls} -> {calls_later} in 20s");
    ensure!(reconciles_later == reconciles, "reconciles went on after Failed: {reconciles} -> {reconciles_later}");
    ensure!(calls <= 8.0, "{calls} ECS calls for two runs that could not start");
    Ok(())
}
