//! Launch exactly once across crashes: a task ECS already has for the run is adopted, and a controller
//! killed mid-run and started again finishes the run without a second task.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use aws_sdk_ecs::types::{AwsVpcConfiguration, LaunchType, NetworkConfiguration};
use ecsrun_e2e::wait;
use kube::ResourceExt;
use kube::api::DeleteParams;

use crate::{Case, Env, case, fargate_run};

pub const NAMESPACE: &str = "e2e-recovery";
pub const TOKEN_NAMESPACE: &str = "e2e-recovery-token";
pub const RETARGET_NAMESPACE: &str = "e2e-recovery-retarget";
pub const DEADLINE_NAMESPACE: &str = "e2e-recovery-deadline";

pub fn cases() -> Vec<Case> {
    vec![
        case("recovery::adopts_a_task_it_started_before_a_crash_and_survives_sigkill", adopt_and_survive_sigkill),
        case("recovery::a_reused_client_token_adopts_the_task_ecs_started_with_it", reused_client_token),
        case("recovery::a_run_stays_in_the_region_it_launched_in_when_the_default_changes", pinned_region),
        case("recovery::a_task_launched_just_before_the_deadline_is_found_and_stopped", deadline_after_crash),
    ]
}

/// What a controller that crashed right after sending RunTask leaves in status: attempt 1's launch
/// intent, written (as the controller writes it) before RunTask went out.
async fn record_launch_intent(api: &kube::Api<ecsrun::api::EcsTaskRun>, name: &str) -> anyhow::Result<()> {
    let intent = serde_json::json!({
        "apiVersion": "ecsrun.dev/v1alpha1",
        "kind": "EcsTaskRun",
        "status": {"phase": "Pending", "reason": "Launching", "attemptCount": 1, "attempts": [{"attempt": 1}]},
    });
    let params = kube::api::PatchParams::apply(ecsrun::reconcile::FIELD_MANAGER).force();
    api.patch_status(name, &params, &kube::api::Patch::Apply(&intent)).await?;
    Ok(())
}

/// What a controller that crashed right after RunTask leaves behind: the run's launch intent in status,
/// and its task in ECS (startedBy the run). Returns the task's ARN.
async fn crashed_after_run_task(
    env: &Env,
    api: &kube::Api<ecsrun::api::EcsTaskRun>,
    name: &str,
    uid: &str,
    task_definition: &str,
) -> anyhow::Result<String> {
    record_launch_intent(api, name).await?;
    let launched = env
        .ecs
        .run_task()
        .cluster("batch")
        .task_definition(task_definition)
        .launch_type(LaunchType::Fargate)
        .started_by(ecsrun::decide::started_by(uid))
        .network_configuration(network(env)?)
        .send()
        .await?;
    Ok(launched.tasks().first().and_then(|t| t.task_arn()).context("RunTask gave no task")?.to_owned())
}

fn network(env: &Env) -> anyhow::Result<NetworkConfiguration> {
    Ok(NetworkConfiguration::builder()
        .awsvpc_configuration(
            AwsVpcConfiguration::builder().subnets(&env.moto.fixtures.subnet).build().context("awsvpc")?,
        )
        .build())
}

/// RunTask went out just before the deadline and the controller crashed before recording it: when it is
/// back after the deadline, the run must find that task and stop it, not end DeadlineExceeded while the
/// task runs on.
async fn deadline_after_crash(env: Arc<Env>) -> anyhow::Result<()> {
    let api = env.runs(DEADLINE_NAMESPACE);
    let yaml = fargate_run("late", "batch", "sleeper", "  wait:\n    timeout: 8s\n");
    let run = env.create(DEADLINE_NAMESPACE, &env.manifest(&yaml)?).await?;
    let uid = run.uid().context("uid")?;
    let task_arn = crashed_after_run_task(&env, &api, "late", &uid, "sleeper").await?;
    tokio::time::sleep(Duration::from_secs(9)).await;

    let mut controller = env.controller("controller-recovery-deadline", &[DEADLINE_NAMESPACE])?;
    controller.ready().await?;
    let status = wait::until(&api, "late", Duration::from_secs(60), "Failed", wait::has_condition("Failed")).await?;
    ensure!(
        status.task.reason.as_deref() == Some("DeadlineExceeded"),
        "reason {:?}: {:?}",
        status.task.reason,
        status.task.message
    );
    ensure!(status.task.task_arn.as_deref() == Some(task_arn.as_str()), "the run recorded {:?}", status.task.task_arn);
    let task = env.task("batch", &task_arn).await?;
    ensure!(task.last_status() == Some("STOPPED"), "the task is {:?} after its run timed out", task.last_status());
    api.delete("late", &DeleteParams::default()).await?;
    wait::gone(&api, "late", Duration::from_secs(30)).await?;
    Ok(())
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
        run.and_then(|run| run.status.as_ref()).is_some_and(|s| s.task.last_status.as_deref() == Some("RUNNING"))
    };
    let launched = wait::until(&api, "pinned", Duration::from_secs(60), "RUNNING", running).await?;
    ensure!(launched.region.as_deref() == Some(env.moto.fixtures.region.as_str()), "region {:?}", launched.region);
    let task_arn = launched.task.task_arn.context("no taskArn")?;
    first.process.kill();

    // The same controller, now defaulting to a region where this cluster does not exist.
    let mut second = ecsrun_e2e::Controller::spawn(
        ecsrun_e2e::ControllerOptions {
            binary: ecsrun_e2e::controller_binary()?,
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

/// ECS keeps a clientToken for a day: a RunTask that reuses one with other parameters fails with
/// ConflictException naming the task already started, which the controller adopts instead of launching.
async fn reused_client_token(env: Arc<Env>) -> anyhow::Result<()> {
    let api = env.runs(TOKEN_NAMESPACE);
    let run = env.create(TOKEN_NAMESPACE, &env.manifest(&fargate_run("token", "batch", "db-dump", ""))?).await?;
    let uid = run.uid().context("uid")?;
    // Attempt 1's token, used by "someone" with other parameters (no startedBy, so ListTasks cannot find it).
    let launched = env
        .ecs
        .run_task()
        .cluster("batch")
        .task_definition("db-dump")
        .launch_type(LaunchType::Fargate)
        .client_token(ecsrun::decide::client_token(&uid, 1))
        .network_configuration(network(&env)?)
        .send()
        .await?;
    let first = launched.tasks().first().and_then(|t| t.task_arn()).context("RunTask gave no task")?.to_owned();

    let mut controller = env.controller("controller-recovery-token", &[TOKEN_NAMESPACE])?;
    controller.ready().await?;
    let status =
        wait::until(&api, "token", Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded")).await?;
    ensure!(
        status.task.task_arn.as_deref() == Some(first.as_str()),
        "the run followed {:?}, not {first}",
        status.task.task_arn
    );
    let own = env.tasks_started_by("batch", &uid).await?;
    ensure!(own.is_empty(), "the controller launched a second task: {own:?}");
    ensure!(
        controller.metric(r#"ecsrun_ecs_calls_total{operation="ListTasks",outcome="ok"}"#).await? == 0.0,
        "no launch intent was recorded before, so nothing needed ListTasks"
    );
    api.delete("token", &DeleteParams::default()).await?;
    wait::gone(&api, "token", Duration::from_secs(30)).await?;
    Ok(())
}

async fn adopt_and_survive_sigkill(env: Arc<Env>) -> anyhow::Result<()> {
    let api = env.runs(NAMESPACE);
    // No controller watches this namespace yet. "adopt" looks like a run whose controller crashed
    // between RunTask and the status write: ECS has its task, its status has none.
    let adopt = env.create(NAMESPACE, &env.manifest(&fargate_run("adopt", "batch", "transform", ""))?).await?;
    let adopt_uid = adopt.uid().context("uid")?;
    let orphan_arn = crashed_after_run_task(&env, &api, "adopt", &adopt_uid, "transform").await?;
    // "restart" is killed while its (long) task runs.
    let restart = env.create(NAMESPACE, &env.manifest(&fargate_run("restart", "batch", "sleeper", ""))?).await?;
    let restart_uid = restart.uid().context("uid")?;

    let mut first = env.controller("controller-recovery-1", &[NAMESPACE])?;
    first.ready().await?;
    let adopted =
        wait::until(&api, "adopt", Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded")).await?;
    ensure!(
        adopted.task.task_arn.as_deref() == Some(orphan_arn.as_str()),
        "adopted {:?}, ECS had {orphan_arn}",
        adopted.task.task_arn
    );
    let tasks = env.tasks_started_by("batch", &adopt_uid).await?;
    ensure!(tasks == vec![orphan_arn.clone()], "a second task was launched: {tasks:?}");

    let has_task = |run: Option<&ecsrun::api::EcsTaskRun>| {
        run.and_then(|run| run.status.as_ref())
            .is_some_and(|status| status.task.last_status.as_deref() == Some("RUNNING"))
    };
    let before = wait::until(&api, "restart", Duration::from_secs(60), "RUNNING", has_task).await?;
    first.process.kill();
    let mut second = env.controller("controller-recovery-2", &[NAMESPACE])?;
    second.ready().await?;
    // Let the new controller reconcile a few polls, then stop the task from outside to finish the run.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let task_arn = before.task.task_arn.context("no taskArn")?;
    env.ecs.stop_task().cluster("batch").task(&task_arn).reason("e2e: finishing the run").send().await?;
    let after =
        wait::until(&api, "restart", Duration::from_secs(60), "finished", |run: Option<&ecsrun::api::EcsTaskRun>| {
            run.and_then(|run| run.status.as_ref())
                .is_some_and(|status| status.task.phase.is_some_and(|phase| phase.is_terminal()))
        })
        .await?;
    ensure!(
        after.task.task_arn.as_deref() == Some(task_arn.as_str()),
        "task changed across the restart: {:?}",
        after.task.task_arn
    );
    let tasks = env.tasks_started_by("batch", &restart_uid).await?;
    ensure!(tasks == vec![task_arn], "ECS has {tasks:?} for one run after a restart");

    api.delete("adopt", &DeleteParams::default()).await?;
    api.delete("restart", &DeleteParams::default()).await?;
    wait::gone(&api, "adopt", Duration::from_secs(30)).await?;
    wait::gone(&api, "restart", Duration::from_secs(30)).await?;
    Ok(())
}
