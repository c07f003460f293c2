//! A run keeps the region it launched in when a controller restarts with another default. (Adopting a
//! task an unrecorded launch started, reused clientTokens and a launch unrecorded before the deadline are
//! the controller's logic: the middle tier, tests/middle, tests them against fakes in milliseconds.)

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use ecsrun_testbed::wait;
use kube::api::DeleteParams;

use crate::{Case, Env, case, fargate_run};

pub const NAMESPACE: &str = "e2e-recovery";
pub const RETARGET_NAMESPACE: &str = "e2e-recovery-retarget";

pub fn cases() -> Vec<Case> {
    vec![case("recovery::a_run_stays_in_the_region_it_launched_in_when_the_default_changes", pinned_region)]
}

/// A run without spec.region launches into the controller's default region; a controller restarted with
/// another default must keep following it there (not fail it with ClusterNotFound while its task runs),
/// and deleting it must stop the task where it runs.
async fn pinned_region(env: Arc<Env>) -> anyhow::Result<()> {
    let api = env.runs(RETARGET_NAMESPACE);
    let yaml = fargate_run("pinned", "batch", "sleeper", "  successPolicy: TaskStopped\n");
    env.create(RETARGET_NAMESPACE, &env.manifest(&yaml)?).await?;
    let mut first = env.controller("controller-retarget-1", &[RETARGET_NAMESPACE])?;
    first.ready().await?;
    let running = |run: Option<&ecsrun::api::EcsTaskRun>| {
        run.and_then(|run| run.status.as_ref()).is_some_and(|s| s.task.last_status == Some("RUNNING".into()))
    };
    let launched = wait::until(&api, "pinned", Duration::from_secs(60), "RUNNING", running).await?;
    ensure!(launched.region.as_deref() == Some(env.moto.fixtures.region.as_str()), "region {:?}", launched.region);
    let task_arn = launched.task.task_arn.context("no taskArn")?;
    first.process.kill();

    // The same controller, now defaulting to a region where this cluster does not exist.
    let mut second = ecsrun_testbed::Controller::spawn(
        ecsrun_testbed::ControllerOptions {
            binary: ecsrun_testbed::controller_binary()?,
            name: "controller-retarget-2",
            ecs_endpoint: &env.moto.endpoint,
            sts_endpoint: &env.moto.endpoint,
            logs_endpoint: &env.moto.endpoint,
            region: "us-east-1",
            namespaces: &[RETARGET_NAMESPACE],
            args: vec!["--default-poll-interval=5s".into()],
            rust_log: "info,ecsrun=debug",
        },
        &env.work,
        &env.kubeconfig,
    )?;
    second.ready().await?;
    // Several sweeps of the new controller.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let status = api.get("pinned").await?.status.context("no status")?;
    ensure!(
        status.task.phase == Some(ecsrun::api::Phase::Running),
        "the run moved with the default region: {:?} {:?}",
        status.task.reason,
        status.task.message
    );
    api.delete("pinned", &DeleteParams::default()).await?;
    wait::gone(&api, "pinned", Duration::from_secs(60)).await?;
    let task = env.task("batch", &task_arn).await?;
    ensure!(task.last_status() == Some("STOPPED"), "the task is {:?} after deleting its run", task.last_status());
    Ok(())
}
