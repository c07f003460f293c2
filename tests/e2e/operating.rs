//! Operating runs: stopping one (`spec.stop`), following a task started elsewhere (`spec.taskArn`), the
//! Stop Task action (both at once), and what a run's tasks used (`status.usage` and the chargeback
//! counters).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use ecsrun_testbed::wait;
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
        case("operating::a_tasks_results_are_read_from_cloudwatch_logs_into_its_status", results_from_cloudwatch),
        case(
            "operating::two_namespaces_sharing_a_cluster_cannot_adopt_read_or_stop_each_others_tasks",
            adopting_another_namespaces_task,
        ),
        case(
            "operating::the_orphan_sweep_stops_a_task_whose_run_is_gone",
            the_orphan_sweep_stops_a_task_whose_run_is_gone,
        ),
        case("operating::a_run_costs_at_most_one_assume_role_from_launch_to_stop", sts_calls_per_launch),
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

/// A run's container overrides that make moto's task print `lines` (results among them) before it stops.
pub fn printing(lines: &[&str]) -> String {
    let text = serde_json::to_string(&lines.join("\n")).unwrap_or_default();
    format!(
        "  overrides:\n    containerOverrides:\n      - name: app\n        environment:\n          \
         - name: ECSRUN_E2E_PRINT\n            value: {text}\n"
    )
}

async fn results_from_cloudwatch(env: Arc<Env>) -> anyhow::Result<()> {
    // publisher logs through the awslogs driver into moto's CloudWatch Logs and succeeds.
    let extra = format!(
        "  results:\n    containers: [app]\n    required: [rows]\n{}",
        printing(&["extracting", "::ecsrun-result rows=1200", "::ecsrun-result key=s3://lake/2026/12/07"])
    );
    env.create(NAMESPACE, &env.manifest(&fargate_run("publishes", "batch", "publisher", &extra))?).await?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "publishes", Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded")).await?;
    let results: Vec<(&str, &str)> = status.task.results.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    ensure!(results == [("key", "s3://lake/2026/12/07"), ("rows", "1200")], "status.results {results:?}");
    // What the API server's table shows for them with -o wide.
    let mut kubectl = crate::chart::kubectl(&env);
    kubectl.args(["get", "etr", "publishes", "-n", NAMESPACE, "-o", "wide"]);
    let output = tokio::task::spawn_blocking(move || kubectl.output()).await?.context("running kubectl")?;
    let table = String::from_utf8_lossy(&output.stdout);
    ensure!(table.contains("RESULTS") && table.contains("1200"), "kubectl get -o wide:\n{table}");
    Ok(())
}

async fn last_lines_in_status_and_event(env: Arc<Env>) -> anyhow::Result<()> {
    // chatty prints `app: line i of 50` through the awslogs driver and exits 3.
    env.create(NAMESPACE, &env.manifest(&fargate_run("chatty", "batch", "chatty", ""))?).await?;
    let api = env.runs(NAMESPACE);
    let status = wait::until(&api, "chatty", Duration::from_secs(60), "Failed", wait::has_condition("Failed")).await?;
    ensure!(status.task.reason_str() == Some("ContainerFailed"), "reason {:?}", status.task.reason);
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
    ensure!(status.task.reason_str() == Some("ContainerFailed"), "the outcome changed: {:?}", status.task.reason);
    ensure!(status.task.exit_codes.as_deref() == Some("app=3"), "exit codes {:?}", status.task.exit_codes);
    let app = status.task.containers.iter().find(|c| c.name == "app").context("no app container")?;
    ensure!(app.log_tail.is_none(), "a tail from nowhere: {:?}", app.log_tail);
    let why = app.log_tail_error.as_deref().context("no logTailError")?;
    ensure!(why.contains("ResourceNotFoundException") && !why.contains('\n'), "logTailError: {why}");
    Ok(())
}

/// Creates a run `name` of the `sleeper` task definition (it runs until stopped) in the `batch` cluster,
/// waits until it succeeds by reaching RUNNING, and returns its task's ARN.
async fn running_task(env: &Env, namespace: &str, name: &str) -> anyhow::Result<String> {
    let held = fargate_run(name, "batch", "sleeper", "  wait:\n    for: Running\n");
    env.create(namespace, &env.manifest(&held)?).await?;
    let runs = env.runs(namespace);
    let status =
        wait::until(&runs, name, Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded")).await?;
    status.task.task_arn.clone().context("no taskArn")
}

/// Issue 23's finding 2, against the real API server and moto: two namespaces whose runs share the
/// `batch` cluster. The second adopts the first's task (`spec.taskArn`) and asks to stop it: refused,
/// nothing of the task read into its status, the task left running; deleting the refused run stops
/// nothing. The first's own run then stops it.
async fn adopting_another_namespaces_task(env: Arc<Env>) -> anyhow::Result<()> {
    let (mine, theirs) = (crate::lifecycle::NAMESPACE, NAMESPACE);
    let task_arn = running_task(&env, mine, "held-by-a").await?;
    let own = env.runs(mine);

    let adopt = format!(
        "\napiVersion: ecsrun.dev/v1alpha1\nkind: EcsTaskRun\nmetadata:\n  name: grab\nspec:\n  cluster: batch\n  \
         taskArn: {task_arn}\n  stop: true\n"
    );
    env.create(theirs, &serde_yaml_ng::from_str(&adopt)?).await?;
    let other = env.runs(theirs);
    let refused = wait::until(&other, "grab", Duration::from_secs(60), "Failed", wait::has_condition("Failed")).await?;
    let message = refused.task.message.clone().unwrap_or_default();
    ensure!(message.contains(&format!("namespace {mine}")), "refused with: {message}");
    ensure!(
        refused.task.task_arn.is_none() && refused.task.containers.is_empty() && refused.task.exit_codes.is_none(),
        "the other namespace's task was read into the status: {:?}",
        refused.task
    );
    other.delete("grab", &Default::default()).await?;
    wait::gone(&other, "grab", Duration::from_secs(30)).await?;
    let task = env.task("batch", &task_arn).await?;
    ensure!(task.last_status() == Some("RUNNING"), "team A's task is {:?} after team B's run", task.last_status());

    own.delete("held-by-a", &Default::default()).await?;
    wait::gone(&own, "held-by-a", Duration::from_secs(60)).await?;
    let task = env.task("batch", &task_arn).await?;
    ensure!(task.last_status() == Some("STOPPED"), "its own run's deletion stopped it: {:?}", task.last_status());
    Ok(())
}

/// Watched by the orphan case's own controller (the sweep on, every second, with a one-second grace).
const ORPHANS_NAMESPACE: &str = "e2e-orphans";

/// Issue 23's orphan sweep: a run whose finalizer is removed by hand and is then deleted leaves its task
/// running with no run to stop it; the leader's sweep finds it (startedBy `ecsrun/<uid>`, no run with that
/// uid) and stops it, and counts it in `ecsrun_orphans_stopped_total`.
async fn the_orphan_sweep_stops_a_task_whose_run_is_gone(env: Arc<Env>) -> anyhow::Result<()> {
    ecsrun_testbed::ensure_namespace(&env.client, ORPHANS_NAMESPACE).await?;
    // One controller launches the task and is stopped; a running one would put its finalizer back
    // between the operator's two requests below and see the deletion through itself.
    let mut launcher = ecsrun_testbed::Controller::start(
        "controller-orphans-launcher",
        &env.work,
        &env.kubeconfig,
        &env.moto,
        &[ORPHANS_NAMESPACE],
        &[],
    )?;
    launcher.ready().await?;
    let task_arn = running_task(&env, ORPHANS_NAMESPACE, "abandoned").await?;
    launcher.process.terminate()?;
    let runs = env.runs(ORPHANS_NAMESPACE);
    // What an operator unsticking a deletion does: the finalizer goes by hand, and the run with it.
    let unfinalized = serde_json::json!({"metadata": {"finalizers": null}});
    runs.patch("abandoned", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&unfinalized)).await?;
    runs.delete("abandoned", &Default::default()).await?;
    wait::gone(&runs, "abandoned", Duration::from_secs(30)).await?;
    let mut controller = ecsrun_testbed::Controller::start(
        "controller-orphans",
        &env.work,
        &env.kubeconfig,
        &env.moto,
        &[ORPHANS_NAMESPACE],
        &["--orphan-sweep-interval=1s", "--orphan-grace=1s"],
    )?;
    controller.ready().await?;
    ensure!(controller.metric("ecsrun_orphans_stopped_total").await? == 0.0, "an orphan before any sweep");
    // The sweep looks in the clusters this controller has seen tasks in: a run of its own on `batch`.
    running_task(&env, ORPHANS_NAMESPACE, "witness").await?;
    let started = std::time::Instant::now();
    loop {
        let task = env.task("batch", &task_arn).await?;
        if task.last_status() == Some("STOPPED") {
            let reason = task.stopped_reason().unwrap_or_default();
            ensure!(reason.contains("orphaned task"), "stopped, but with the reason {reason:?}");
            break;
        }
        ensure!(started.elapsed() < Duration::from_secs(30), "the orphan still runs after 30 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let counted = controller.metric("ecsrun_orphans_stopped_total").await?;
    ensure!(counted == 1.0, "ecsrun_orphans_stopped_total is {counted}");
    Ok(())
}

/// A role only the STS-counting case assumes, so moto's records of other cases do not count.
const COUNTED_ROLE: &str = "arn:aws:iam::123456789012:role/e2e-sts-counted";
/// Runs the STS-counting case launches and stops.
const COUNTED_RUNS: usize = 5;

/// Issue 23's finding 8: STS calls per launch. Each run of a role launches, is followed and is stopped;
/// its RunTask, any retry and its StopTask share one session of its own (cached like any client), and
/// the namespace's reads share another: at most one AssumeRole per run, plus one per namespace.
async fn sts_calls_per_launch(env: Arc<Env>) -> anyhow::Result<()> {
    let runs = env.runs(NAMESPACE);
    let extra = format!("  credentials:\n    assumeRoleArn: {COUNTED_ROLE}\n  wait:\n    for: Running\n");
    for index in 0..COUNTED_RUNS {
        env.create(NAMESPACE, &env.manifest(&fargate_run(&format!("counted-{index}"), "batch", "sleeper", &extra))?)
            .await?;
    }
    for index in 0..COUNTED_RUNS {
        let name = format!("counted-{index}");
        wait::until(&runs, &name, Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded")).await?;
        runs.delete(&name, &Default::default()).await?;
    }
    for index in 0..COUNTED_RUNS {
        wait::gone(&runs, &format!("counted-{index}"), Duration::from_secs(60)).await?;
    }
    let sessions = env.moto.models().await?["sts"]["AssumedRole"].as_array().cloned().unwrap_or_default();
    let counted: Vec<&serde_json::Value> = sessions.iter().filter(|s| s["role_arn"] == COUNTED_ROLE).collect();
    let per_launch = counted.len() as f64 / COUNTED_RUNS as f64;
    eprintln!(
        "sts: {} AssumeRole calls for {COUNTED_RUNS} runs launched and stopped: {per_launch:.1} per launch",
        counted.len()
    );
    ensure!(
        counted.len() <= COUNTED_RUNS + 1,
        "{} AssumeRole calls for {COUNTED_RUNS} runs (at most one per run and one for the namespace's reads): {:?}",
        counted.len(),
        counted.iter().map(|s| s["session_name"].as_str().unwrap_or_default()).collect::<Vec<_>>()
    );
    Ok(())
}
