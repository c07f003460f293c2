//! Status from ECS's task state change events: moto's launcher puts an event into moto's EventBridge on
//! every transition, a rule routes the "events" cluster's to an SQS queue, and a controller of this
//! module's own consumes it. Its runs poll every 10 minutes: only events (or the 30 s sweep that catches a
//! dropped one) can explain a status within seconds. The launcher spoils chosen tasks' events
//! (`ECSRUN_E2E_EVENTS`): duplicated, reordered, dropped.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use ecsrun::api::{EcsTaskRun, Phase};
use ecsrun_testbed::{Controller, ControllerOptions, Moto, wait};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};

use crate::{Case, Env, app_env, case, fargate_run};

pub const NAMESPACE: &str = "e2e-task-events";
pub const MISSING_NAMESPACE: &str = "e2e-task-events-missing";
/// The cluster whose tasks' events the rule sends to the queue.
const CLUSTER: &str = "events";
const QUEUE: &str = "ecsrun-task-events";
const SWEEP: Duration = Duration::from_secs(30);

pub fn cases() -> Vec<Case> {
    vec![
        case(
            "task_events::a_stopped_task_reaches_the_status_in_seconds_though_runs_poll_every_ten_minutes",
            in_seconds,
        ),
        case("task_events::duplicated_events_count_once", duplicated),
        case("task_events::reordered_events_never_regress_a_status", reordered),
        case("task_events::a_dropped_stopped_event_is_caught_by_the_sweep", dropped),
        case("task_events::a_missing_queue_puts_the_controller_back_on_polling_with_a_warning", missing_queue),
    ]
}

/// The controller that follows NAMESPACE through the events cluster's queue.
pub fn controller(work: &Path, kubeconfig: &Path, moto: &Moto) -> anyhow::Result<Controller> {
    let queue = moto.fixtures.event_queues.get(QUEUE).context("the launcher made no task events queue")?;
    Controller::spawn(
        ControllerOptions {
            binary: ecsrun_testbed::controller_binary()?,
            name: "controller-task-events",
            ecs_endpoint: &moto.endpoint,
            sts_endpoint: &moto.endpoint,
            logs_endpoint: &moto.endpoint,
            region: &moto.fixtures.region,
            namespaces: &[NAMESPACE],
            args: vec![
                "--default-poll-interval=10m".into(),
                format!("--ecs-events-queue-url={queue}"),
                format!("--sqs-endpoint-url={}", moto.endpoint),
                format!("--events-sweep-interval={}s", SWEEP.as_secs()),
            ],
            rust_log: "info,ecsrun=debug",
        },
        work,
        kubeconfig,
    )
}

/// A run of `transform` in the events cluster that runs `seconds` and exits `exit_code`, its events
/// spoiled by `faults`.
fn run_yaml(name: &str, seconds: u32, exit_code: i32, faults: &str) -> String {
    let env = app_env(&[
        ("ECSRUN_E2E_RUN_SECONDS", &seconds.to_string()),
        ("ECSRUN_E2E_EXIT_CODE", &exit_code.to_string()),
        ("ECSRUN_E2E_EVENTS", faults),
    ]);
    fargate_run(name, CLUSTER, "transform", &env)
}

/// The sum of a metric's series whose line starts with `series` on the events controller's /metrics.
async fn metric(env: &Env, series: &str) -> anyhow::Result<f64> {
    let (_, page) = ecsrun_testbed::http_get(&env.task_events_metrics).await?;
    Ok(page
        .lines()
        .filter(|line| line.starts_with(series))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

fn finished(run: Option<&EcsTaskRun>) -> bool {
    run.and_then(|run| run.status.as_ref())
        .and_then(|status| status.task.phase)
        .is_some_and(|phase| phase.is_terminal())
}

async fn in_seconds(env: Arc<Env>) -> anyhow::Result<()> {
    let api = env.runs(NAMESPACE);
    env.create(NAMESPACE, &env.manifest(&run_yaml("prompt", 3, 0, ""))?).await?;
    let launched = wait::until(&api, "prompt", Duration::from_secs(30), "launched", wait::launched()).await?;
    let started = Instant::now();
    let status = wait::until(&api, "prompt", Duration::from_secs(30), "finished", finished).await?;
    let seen_after = started.elapsed();
    ensure!(status.task.phase == Some(Phase::Succeeded), "{status:?}");
    ensure!(status.task.containers.iter().any(|c| c.name == "app" && c.exit_code == Some(0)), "{status:?}");
    // The task stops 3 s after its launch; the next poll would be 10 minutes after it.
    ensure!(seen_after < Duration::from_secs(15), "STOPPED reached the status {seen_after:?} after the launch");
    ensure!(launched.task.task_arn.is_some());
    // Its RUNNING event repeats what RunTask answered (the same version: stale); its STOPPED event wakes the
    // task for a DescribeTasks at once, whose answer ends the run (a message alone never does).
    ensure!(
        metric(&env, "ecsrun_task_events_total{outcome=\"confirming\"}").await? >= 1.0,
        "no STOPPED event confirmed"
    );
    ensure!(metric(&env, "ecsrun_task_events_total{outcome=\"forged\"}").await? == 0.0, "moto's events dropped");
    ensure!(metric(&env, "ecsrun_task_events_flowing{").await? == 1.0, "events not flowing");
    Ok(())
}

async fn duplicated(env: Arc<Env>) -> anyhow::Result<()> {
    let api = env.runs(NAMESPACE);
    env.create(NAMESPACE, &env.manifest(&run_yaml("twice", 2, 3, "duplicate"))?).await?;
    let status = wait::until(&api, "twice", Duration::from_secs(30), "finished", finished).await?;
    ensure!(status.task.phase == Some(Phase::Failed), "{status:?}");
    ensure!(status.task.containers.iter().any(|c| c.exit_code == Some(3)), "{status:?}");
    ensure!(status.task.attempts.len() <= 1, "a duplicate made another attempt: {:?}", status.task.attempts);
    let uid = api.get("twice").await?.metadata.uid.context("uid")?;
    ensure!(env.tasks_started_by(CLUSTER, &uid).await?.len() == 1, "one task");
    ensure!(metric(&env, "ecsrun_task_events_total{outcome=\"stale\"}").await? >= 1.0, "no duplicate was dropped");
    Ok(())
}

async fn reordered(env: Arc<Env>) -> anyhow::Result<()> {
    let api = env.runs(NAMESPACE);
    // The RUNNING event is held back until after STOPPED: it arrives last, and must change nothing.
    env.create(NAMESPACE, &env.manifest(&run_yaml("reordered", 2, 0, "reorder"))?).await?;
    let status = wait::until(&api, "reordered", Duration::from_secs(30), "finished", finished).await?;
    ensure!(status.task.phase == Some(Phase::Succeeded), "{status:?}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = api.get("reordered").await?.status.context("status")?;
    ensure!(later.task.phase == Some(Phase::Succeeded), "regressed: {later:?}");
    ensure!(later.task.last_status == Some("STOPPED".into()), "regressed: {later:?}");
    Ok(())
}

async fn dropped(env: Arc<Env>) -> anyhow::Result<()> {
    let api = env.runs(NAMESPACE);
    env.create(NAMESPACE, &env.manifest(&run_yaml("dropped", 2, 0, "drop-stopped"))?).await?;
    wait::until(&api, "dropped", Duration::from_secs(30), "RUNNING", wait::has_last_status("RUNNING")).await?;
    let running = Instant::now();
    // No event says it stopped; the sweep describes it once it went SWEEP without one.
    let status = wait::until(&api, "dropped", SWEEP + Duration::from_secs(20), "caught by the sweep", finished).await?;
    ensure!(status.task.phase == Some(Phase::Succeeded), "{status:?}");
    let caught = running.elapsed();
    ensure!(caught > Duration::from_secs(5), "seen after {caught:?}: something but the sweep told it");
    Ok(())
}

async fn missing_queue(env: Arc<Env>) -> anyhow::Result<()> {
    let name = "controller-task-events-missing";
    let queue = format!("{}/123456789012/ecsrun-no-such-queue", env.moto.endpoint);
    let mut controller = Controller::spawn(
        ControllerOptions {
            binary: ecsrun_testbed::controller_binary()?,
            name,
            ecs_endpoint: &env.moto.endpoint,
            sts_endpoint: &env.moto.endpoint,
            logs_endpoint: &env.moto.endpoint,
            region: &env.moto.fixtures.region,
            namespaces: &[MISSING_NAMESPACE],
            args: vec![
                "--default-poll-interval=5s".into(),
                format!("--ecs-events-queue-url={queue}"),
                format!("--sqs-endpoint-url={}", env.moto.endpoint),
            ],
            rust_log: "info,ecsrun=debug",
        },
        &env.work,
        &env.kubeconfig,
    )?;
    controller.ready().await?;
    let api = env.runs(MISSING_NAMESPACE);
    env.create(MISSING_NAMESPACE, &env.manifest(&fargate_run("polled", "batch", "transform", ""))?).await?;
    let status = wait::until(&api, "polled", Duration::from_secs(40), "finished by polling", finished).await?;
    ensure!(status.task.phase == Some(Phase::Succeeded), "{status:?}");
    // The controller's Pod (POD_NAMESPACE unset: "default") carries the warning.
    let events: Api<Event> = Api::namespaced(env.client.clone(), "default");
    let selector = format!("regarding.name={name},reason=TaskEventsUnavailable");
    let warnings = events.list(&ListParams::default().fields(&selector)).await?.items;
    let warning = warnings.first().context("no TaskEventsUnavailable Event on the controller's Pod")?;
    ensure!(warning.type_.as_deref() == Some("Warning"), "{warning:?}");
    let note = warning.note.as_deref().unwrap_or_default();
    ensure!(note.contains("ecsrun-no-such-queue") && note.contains("missing") && note.contains("polled"), "{note}");
    ensure!(controller.metric("ecsrun_task_events_flowing{region=\"eu-west-1\"}").await? == 0.0);
    ensure!(controller.metric_total("ecsrun_sqs_calls_total").await? >= 1.0, "no ReceiveMessage counted");
    Ok(())
}
