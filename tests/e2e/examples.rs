//! Every manifest in `examples/` is accepted and reaches its condition, with what ECS reported in status.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use ecsrun::api::WaitFor;
use ecsrun_testbed::{repo_root, wait};
use k8s_openapi::api::core::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use crate::{Case, case};

pub const NAMESPACE: &str = "e2e-examples";

pub fn cases() -> Vec<Case> {
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join("examples"))
        .map(|dir| dir.filter_map(Result::ok).map(|entry| entry.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    files.retain(|file| file.ends_with(".yaml"));
    files.sort();
    let mut cases: Vec<Case> = files
        .into_iter()
        .map(|file| case(format!("examples::{}", file.trim_end_matches(".yaml")), move |env| run_example(env, file)))
        .collect();
    // A missing examples/ directory must fail, not make this suite smaller.
    if cases.len() < 4 {
        cases.push(case("examples::at_least_four_examples", |_| async {
            anyhow::bail!("examples/ should hold the four usage scenarios (A-D)")
        }));
    }
    cases
}

async fn run_example(env: std::sync::Arc<crate::Env>, file: String) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(repo_root().join("examples").join(&file))?;
    if text.contains("\nkind: EcsTaskSchedule\n") {
        return schedule_example(&env, &text).await;
    }
    let manifest = env.example(&file)?;
    if manifest.spec.task_arn.is_some() {
        return adopting_example(&env, manifest).await;
    }
    let run = env.create(NAMESPACE, &manifest).await?;
    let name = run.name_any();
    let uid = run.uid().context("no uid")?;
    let api = env.runs(NAMESPACE);
    // Example B polls once a minute: allow two polls.
    let status =
        wait::until(&api, &name, Duration::from_secs(150), "Succeeded", wait::has_condition("Succeeded")).await?;

    if run.spec.count > 1 {
        return indexed_example(&env, &run, &status).await;
    }
    let task_arn = status.task.task_arn.clone().context("Succeeded without a taskArn")?;
    ensure!(status.task.attempts.len() == 1, "one attempt expected, status: {status:?}");
    ensure!(status.task.attempts[0].task_arn.as_deref() == Some(task_arn.as_str()), "attempt does not name the task");
    ensure!(status.observed_generation == run.metadata.generation, "observedGeneration not written");
    ensure!(!status.conditions.iter().any(|c| c.type_ == "Failed" && c.status == "True"), "Failed and Succeeded");

    // Exactly one task, carrying the run's identity.
    let tasks = env.tasks_started_by(&run.spec.cluster, &uid).await?;
    ensure!(tasks == vec![task_arn.clone()], "ECS has {tasks:?} started by this run, expected only {task_arn}");
    let task = env.task(&run.spec.cluster, &task_arn).await?;
    let tag = |key: &str| task.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value()).map(str::to_owned);
    ensure!(tag("ecsrun.dev/uid").as_deref() == Some(uid.as_str()), "task tags: {:?}", task.tags());
    ensure!(tag("ecsrun.dev/name").as_deref() == Some(name.as_str()), "task tags: {:?}", task.tags());
    for (key, value) in &run.spec.tags {
        ensure!(tag(key).as_ref() == Some(value), "tag {key} missing on the task: {:?}", task.tags());
    }
    let injected = task
        .overrides()
        .map(|o| o.container_overrides().iter().flat_map(|c| c.environment()).collect::<Vec<_>>())
        .unwrap_or_default();
    ensure!(
        injected.iter().any(|kv| kv.name() == Some("ECSRUN_UID") && kv.value() == Some(uid.as_str())),
        "ECSRUN_UID not injected: {injected:?}"
    );

    if run.spec.wait.for_ == WaitFor::Stopped {
        ensure!(status.task.last_status == Some("STOPPED".into()), "lastStatus {:?}", status.task.last_status);
        ensure!(
            status.task.stop_code == Some("EssentialContainerExited".into()),
            "stopCode {:?}",
            status.task.stop_code
        );
        ensure!(status.task.stopped_at.is_some() && status.task.started_at.is_some(), "times missing: {status:?}");
        ensure!(!status.task.containers.is_empty(), "no containers in status");
        for container in &status.task.containers {
            ensure!(container.exit_code.is_some(), "container {} without exit code", container.name);
        }
        ensure!(status.task.exit_codes.is_some(), "no exitCodes summary");
    }
    if file.starts_with("a-") {
        // The non-essential log router exits 1 and must not fail the run.
        let sidecar = status.task.containers.iter().find(|c| c.name == "log-router").context("no log-router status")?;
        ensure!(sidecar.exit_code == Some(1) && sidecar.essential == Some(false), "sidecar: {sidecar:?}");
        ensure!(task.group() == Some("nightly-reports"), "group {:?}", task.group());
        // The Event follows the status write that the wait above saw.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut events = events_of(&env.client, NAMESPACE, &name).await?;
        while !events.iter().any(|r| r == "Succeeded") && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            events = events_of(&env.client, NAMESPACE, &name).await?;
        }
        for reason in ["Launched", "Succeeded"] {
            ensure!(events.iter().any(|r| r == reason), "no {reason} event; events: {events:?}");
        }
        // One Event per transition: moto starts tasks RUNNING, so Launched says so; Succeeded tells the stop.
        for folded in ["Running", "Stopped"] {
            ensure!(!events.iter().any(|r| r == folded), "a {folded} event repeats another; events: {events:?}");
        }
    }
    if file.starts_with("c-") {
        let app = task
            .overrides()
            .and_then(|o| o.container_overrides().iter().find(|c| c.name() == Some("app")))
            .context("no override for app")?;
        ensure!(app.command() == ["transform", "--date", "2026-11-22"], "command override: {:?}", app.command());
        ensure!(app.environment().iter().any(|kv| kv.name() == Some("LOG_LEVEL")), "env override lost");
    }
    Ok(())
}

/// A run of several tasks: every index succeeded with one task, which ECS has, told its index.
async fn indexed_example(
    env: &crate::Env,
    run: &ecsrun::api::EcsTaskRun,
    status: &ecsrun::api::EcsTaskRunStatus,
) -> anyhow::Result<()> {
    let count = run.spec.count;
    let uid = run.uid().context("no uid")?;
    ensure!(status.progress == Some(format!("{count}/{count}")), "progress {:?}", status.progress);
    ensure!(status.tasks.len() == count as usize, "status.tasks: {:?}", status.tasks);
    for lane in &status.tasks {
        ensure!(lane.task.attempts.len() == 1 && lane.task.task_arn.is_some(), "index {}: {lane:?}", lane.index);
        let tasks = env.tasks_of_index(&run.spec.cluster, &uid, lane.index as u32).await?;
        ensure!(
            tasks == vec![lane.task.task_arn.clone().unwrap_or_default()],
            "index {}: ECS has {tasks:?}",
            lane.index
        );
        let task = env.task(&run.spec.cluster, &tasks[0]).await?;
        let told = task
            .overrides()
            .map(|o| o.container_overrides().iter().flat_map(|c| c.environment()).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .find(|kv| kv.name() == Some("ECSRUN_TASK_INDEX"))
            .and_then(|kv| kv.value().map(str::to_owned));
        ensure!(told == Some(lane.index.to_string()), "index {} was told {told:?}", lane.index);
    }
    Ok(())
}

/// Reasons of the Events recorded for a run.
pub async fn events_of(client: &kube::Client, namespace: &str, name: &str) -> anyhow::Result<Vec<String>> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let list = events.list(&ListParams::default().fields(&format!("involvedObject.name={name}"))).await?;
    Ok(list.items.into_iter().filter_map(|event| event.reason).collect())
}

/// An example that follows a task started elsewhere: its placeholder ARN becomes a task started here
/// (outside ecsrun), and with `stop: true` the run stops it and ends Failed / Stopped.
async fn adopting_example(env: &crate::Env, mut manifest: ecsrun::api::EcsTaskRun) -> anyhow::Result<()> {
    let fixtures = &env.moto.fixtures;
    let vpc = aws_sdk_ecs::types::AwsVpcConfiguration::builder().subnets(&fixtures.subnet).build()?;
    let started = env
        .ecs
        .run_task()
        .cluster(&manifest.spec.cluster)
        .task_definition("sleeper")
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .network_configuration(aws_sdk_ecs::types::NetworkConfiguration::builder().awsvpc_configuration(vpc).build())
        .send()
        .await?;
    let task_arn = started.tasks().first().and_then(|t| t.task_arn()).context("no task started")?.to_owned();
    manifest.spec.task_arn = Some(task_arn.clone());
    let run = env.create(NAMESPACE, &manifest).await?;
    let name = run.name_any();
    let api = env.runs(NAMESPACE);
    // Failed with reason Stopped (Stopping has that reason too, while ECS stops the task).
    let stopped = |run: Option<&ecsrun::api::EcsTaskRun>| {
        run.and_then(|run| run.status.as_ref())
            .is_some_and(|s| s.task.phase == Some(ecsrun::api::Phase::Failed) && s.task.reason_str() == Some("Stopped"))
    };
    ensure!(manifest.spec.stop, "the example is the Stop Task action");
    let status = wait::until(&api, &name, Duration::from_secs(60), "Failed/Stopped", stopped).await?;
    ensure!(status.task.task_arn.as_deref() == Some(task_arn.as_str()), "followed {:?}", status.task.task_arn);
    let task = env.task(&manifest.spec.cluster, &task_arn).await?;
    ensure!(task.last_status() == Some("STOPPED"), "the task is {:?}", task.last_status());
    let wanted = manifest.spec.stop_reason.as_deref().map(|reason| format!("{reason} [ecsrun:stop]"));
    ensure!(task.stopped_reason() == wanted.as_deref(), "stoppedReason {:?}", task.stopped_reason());
    Ok(())
}

/// A schedule example is accepted, read in its zone (its next slot in status is the one the schedule's
/// own arithmetic gives) and Ready; its slots are far off, so it creates nothing while the test looks.
async fn schedule_example(env: &crate::Env, text: &str) -> anyhow::Result<()> {
    use ecsrun::api::EcsTaskSchedule;
    use kube::api::{DeleteParams, Patch, PatchParams};
    let mut schedule: EcsTaskSchedule = env.parse(text)?;
    schedule.metadata.namespace = Some(NAMESPACE.into());
    let name = schedule.name_any();
    let api: Api<EcsTaskSchedule> = Api::namespaced(env.client.clone(), NAMESPACE);
    api.patch(&name, &PatchParams::apply("ecsrun-testbed"), &Patch::Apply(&schedule)).await?;
    let slots = ecsrun::api::cron::Slots::new(&schedule.spec.schedule, schedule.spec.time_zone.as_deref())?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = api.get(&name).await?.status.unwrap_or_default();
        let ready = status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        if let (true, Some(next)) = (ready, status.next_schedule_time.as_ref()) {
            let expected = slots.next_after(jiff::Timestamp::now());
            ensure!(
                Some(next.0) == expected,
                "nextScheduleTime {} but the schedule's next slot is {expected:?}",
                next.0
            );
            break;
        }
        ensure!(std::time::Instant::now() < deadline, "{name} not Ready with a next slot within 30 s: {status:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    api.delete(&name, &DeleteParams::default()).await?;
    Ok(())
}
