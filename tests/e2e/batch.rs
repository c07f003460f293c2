//! Batch jobs as users write them: parallel indexed tasks (`count`, `parallelism`, failFast), exit-code
//! rules (`retryPolicy.rules`, as a Job's podFailurePolicy) and the RunTask options beyond the basics.
//! moto's `failing` task definition exits 3; the launcher's ECSRUN_E2E_INDEX_<i>_* variables make one
//! index of a run behave differently.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use ecsrun_e2e::wait;
use kube::ResourceExt;
use kube::api::DeleteParams;

use crate::{Case, Env, case, fargate_run};

pub const NAMESPACE: &str = "e2e-batch";
/// A controller of its own, killed in the middle of a run of ten tasks.
pub const RESTART_NAMESPACE: &str = "e2e-batch-restart";
/// A controller of its own that never saw the template registered.
pub const TEMPLATE_NAMESPACE: &str = "e2e-batch-template";

pub fn cases() -> Vec<Case> {
    vec![
        case("batch::a_fail_run_rule_on_exit_code_3_fails_at_once_despite_backoff_limit_5", fail_run_rule),
        case("batch::an_ignore_rule_retries_without_counting", ignore_rule),
        case("batch::managed_tags_ebs_volumes_environment_files_and_gpus_reach_ecs", run_task_options),
        case("batch::count_5_parallelism_2_runs_every_index_once_and_never_more_than_2", parallel_indexed),
        case("batch::an_index_out_of_retries_stops_the_others_with_fail_fast", fail_fast),
        case("batch::a_controller_killed_mid_count_10_run_launches_no_index_twice", restart_mid_batch),
        case("batch::three_runs_of_one_template_register_one_revision_and_a_change_another", template_runs),
        case("batch::a_run_of_100_failing_tasks_stays_small_and_tells_a_handful_of_events", hundred_failing),
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
    ensure!(
        status.task.reason.as_deref() == Some("FailedByRule"),
        "reason {:?} ({:?})",
        status.task.reason,
        status.task.message
    );
    ensure!(
        status
            .task
            .message
            .as_deref()
            .is_some_and(|m| m.contains("app exited 3") && m.contains("retryPolicy.rules[0]")),
        "message {:?}",
        status.task.message
    );
    ensure!(status.task.attempts.len() == 1, "retried although the rule fails the run: {:?}", status.task.attempts);
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
            status.task.attempts.len() >= 2
                && status.task.attempts.iter().any(|a| a.attempt == 2 && a.task_arn.is_some())
        })
    };
    let status = wait::until(&api, "ignore-3", Duration::from_secs(60), "a second attempt", retried).await?;
    let first = &status.task.attempts[0];
    ensure!(first.outcome.as_deref() == Some("IgnoredByRule"), "attempt 1: {first:?}");
    ensure!(status.task.phase != Some(ecsrun::api::Phase::Failed), "failed: {:?}", status.task.message);
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
    let arn = status.task.task_arn.context("no taskArn")?;
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

/// Container overrides of `app` with the given environment, as spec YAML.
fn app_env(vars: &[(&str, &str)]) -> String {
    let mut yaml = String::from("  overrides:\n    containerOverrides:\n      - name: app\n        environment:\n");
    for (name, value) in vars {
        yaml.push_str(&format!("          - {{name: {name}, value: \"{value}\"}}\n"));
    }
    yaml
}

/// Every task ECS has for each index of a run of `count` tasks.
async fn tasks_by_index(env: &Env, cluster: &str, uid: &str, count: u32) -> anyhow::Result<Vec<Vec<String>>> {
    let mut all = Vec::new();
    for index in 0..count {
        all.push(env.tasks_of_index(cluster, uid, index).await?);
    }
    Ok(all)
}

async fn parallel_indexed(env: Arc<Env>) -> anyhow::Result<()> {
    let extra = format!("  count: 5\n  parallelism: 2\n  wait:\n    pollInterval: 5s\n{}", app_env(&[]));
    let run = env.create(NAMESPACE, &env.manifest(&fargate_run("shards", "batch", "transform", &extra))?).await?;
    let uid = run.uid().context("uid")?;
    let api = env.runs(NAMESPACE);
    // The most tasks the run ever said were active, and the most ECS had RUNNING at any one look.
    let most_active = Arc::new(AtomicI32::new(0));
    let seen = most_active.clone();
    let succeeded = move |run: Option<&ecsrun::api::EcsTaskRun>| {
        let status = run.and_then(|run| run.status.as_ref());
        if let Some(status) = status {
            let running =
                status.tasks.iter().filter(|t| t.task.last_status.as_deref() == Some("RUNNING")).count() as i32;
            seen.fetch_max(status.active_tasks.unwrap_or(0).max(running), Ordering::SeqCst);
        }
        status.is_some_and(|s| s.task.phase.is_some_and(|p| p.is_terminal()))
    };
    let status = wait::until(&api, "shards", Duration::from_secs(120), "finished", succeeded).await?;
    ensure!(
        status.task.phase == Some(ecsrun::api::Phase::Succeeded),
        "{:?}: {:?}",
        status.task.phase,
        status.task.message
    );
    ensure!(status.progress.as_deref() == Some("5/5"), "progress {:?}", status.progress);
    ensure!(most_active.load(Ordering::SeqCst) <= 2, "{} tasks active at once", most_active.load(Ordering::SeqCst));
    ensure!(status.tasks.iter().map(|t| t.index).eq(0..5), "indexes {:?}", status.tasks);
    let per_index = tasks_by_index(&env, "batch", &uid, 5).await?;
    ensure!(per_index.iter().all(|tasks| tasks.len() == 1), "ECS has {per_index:?}");
    // What ECS saw: each task told its own index, and never more than two ran at the same time.
    let mut spans = Vec::new();
    for (index, tasks) in per_index.iter().enumerate() {
        let task = env.task("batch", &tasks[0]).await?;
        let told = task
            .overrides()
            .and_then(|o| o.container_overrides().iter().find(|c| c.name() == Some("app")))
            .and_then(|c| c.environment().iter().find(|v| v.name() == Some("ECSRUN_TASK_INDEX")))
            .and_then(|v| v.value().map(str::to_owned));
        ensure!(told == Some(index.to_string()), "task of index {index} was told {told:?}");
        let tag = task.tags().iter().find(|t| t.key() == Some("ecsrun.dev/index")).and_then(|t| t.value());
        ensure!(tag == Some(index.to_string().as_str()), "task of index {index} tagged {tag:?}");
        let (Some(started), Some(stopped)) = (task.started_at(), task.stopped_at()) else {
            bail!("task of index {index} has no startedAt/stoppedAt")
        };
        spans.push((started.as_secs_f64(), stopped.as_secs_f64()));
    }
    let overlap =
        spans.iter().map(|(start, _)| spans.iter().filter(|(s, e)| s <= start && start < e).count()).max().unwrap_or(0);
    ensure!(overlap <= 2, "{overlap} tasks ran at once in ECS: {spans:?}");
    Ok(())
}

async fn fail_fast(env: Arc<Env>) -> anyhow::Result<()> {
    // Indexes 0 and 2 run until stopped; index 1 exits 2 after 3 s, twice (backoffLimit 1).
    let vars =
        [("ECSRUN_E2E_HOLD", "running"), ("ECSRUN_E2E_INDEX_1_HOLD", "no"), ("ECSRUN_E2E_INDEX_1_EXIT_CODE", "2")];
    let extra =
        format!("  count: 3\n  retryPolicy:\n    backoffLimit: 1\n  wait:\n    pollInterval: 5s\n{}", app_env(&vars));
    let run = env.create(NAMESPACE, &env.manifest(&fargate_run("fail-fast", "batch", "transform", &extra))?).await?;
    let uid = run.uid().context("uid")?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "fail-fast", Duration::from_secs(90), "Failed", wait::has_condition("Failed")).await?;
    ensure!(
        status.task.reason.as_deref() == Some("BackoffLimitExceeded"),
        "{:?}: {:?}",
        status.task.reason,
        status.task.message
    );
    ensure!(
        status.task.message.as_deref().is_some_and(|m| m.starts_with("task index 1:")),
        "{:?}",
        status.task.message
    );
    let lane = |index: i32| status.tasks.iter().find(|t| t.index == index).context("index missing");
    ensure!(lane(1)?.task.attempts.len() == 2, "index 1's attempts: {:?}", lane(1)?.task.attempts);
    for index in [0, 2] {
        ensure!(lane(index)?.task.reason.as_deref() == Some("FailFast"), "index {index}: {:?}", lane(index)?);
    }
    ensure!(status.active_tasks == Some(0), "a run that ended has {:?} active tasks", status.active_tasks);
    let per_index = tasks_by_index(&env, "batch", &uid, 3).await?;
    ensure!(per_index.iter().map(Vec::len).eq([1, 2, 1]), "ECS has {per_index:?}");
    for arn in [&per_index[0][0], &per_index[2][0]] {
        let task = env.task("batch", arn).await?;
        ensure!(
            task.last_status() == Some("STOPPED") && task.stop_code().map(|c| c.as_str()) == Some("UserInitiated"),
            "{arn} is {:?} ({:?}): failFast should have stopped it",
            task.last_status(),
            task.stop_code()
        );
    }
    Ok(())
}

async fn restart_mid_batch(env: Arc<Env>) -> anyhow::Result<()> {
    let api = env.runs(RESTART_NAMESPACE);
    let extra = format!(
        "  count: 10\n  parallelism: 4\n  wait:\n    pollInterval: 5s\n{}",
        app_env(&[("ECSRUN_E2E_RUN_SECONDS", "4")])
    );
    let run = env.create(RESTART_NAMESPACE, &env.manifest(&fargate_run("ten", "batch", "transform", &extra))?).await?;
    let uid = run.uid().context("uid")?;
    let mut first = env.controller("controller-batch-restart-1", &[RESTART_NAMESPACE])?;
    first.ready().await?;
    let under_way = |run: Option<&ecsrun::api::EcsTaskRun>| {
        run.and_then(|run| run.status.as_ref()).is_some_and(|s| s.succeeded_tasks.unwrap_or(0) >= 2)
    };
    wait::until(&api, "ten", Duration::from_secs(90), "two indexes done", under_way).await?;
    first.process.kill();
    let mut second = env.controller("controller-batch-restart-2", &[RESTART_NAMESPACE])?;
    second.ready().await?;
    let status =
        wait::until(&api, "ten", Duration::from_secs(120), "Succeeded", wait::has_condition("Succeeded")).await?;
    ensure!(status.progress.as_deref() == Some("10/10"), "progress {:?}", status.progress);
    let per_index = tasks_by_index(&env, "batch", &uid, 10).await?;
    ensure!(per_index.iter().all(|tasks| tasks.len() == 1), "an index ran twice: {per_index:?}");
    ensure!(
        status.tasks.iter().all(|t| t.task.attempts.len() == 1),
        "attempts: {:?}",
        status.tasks.iter().map(|t| t.task.attempts.len()).collect::<Vec<_>>()
    );
    api.delete("ten", &DeleteParams::default()).await?;
    wait::gone(&api, "ten", Duration::from_secs(60)).await?;
    second.process.terminate()?;
    Ok(())
}

/// A run of a Fargate task definition template whose container runs `image`.
fn template_run(name: &str, image: &str) -> String {
    format!(
        r#"
apiVersion: ecsrun.dev/v1alpha1
kind: EcsTaskRun
metadata:
  name: {name}
spec:
  cluster: batch
  launchType: FARGATE
  networkConfiguration:
    awsvpcConfiguration:
      subnets: [subnet-0123456789abcdef0]
  taskDefinitionTemplate:
    family: e2e-etl
    cpu: "256"
    memory: "512"
    networkMode: awsvpc
    requiresCompatibilities: [FARGATE]
    containerDefinitions:
      - name: app
        image: {image}
        command: [etl, --date, "2026-11-23"]
        environment:
          - {{name: ECSRUN_E2E_RUN_SECONDS, value: "1"}}
      - name: log-router
        image: fluent-bit:latest
        essential: false
"#
    )
}

/// Revisions ECS has in the family, oldest first.
async fn revisions(env: &Env, family: &str) -> anyhow::Result<Vec<String>> {
    let listed = env.ecs.list_task_definitions().family_prefix(family).send().await?;
    Ok(listed.task_definition_arns().to_vec())
}

async fn template_runs(env: Arc<Env>) -> anyhow::Result<()> {
    let api = env.runs(NAMESPACE);
    // Three runs of one template at once: one registration between them.
    for name in ["etl-1", "etl-2", "etl-3"] {
        env.create(NAMESPACE, &env.manifest(&template_run(name, "etl:1.0"))?).await?;
    }
    let mut used = Vec::new();
    for name in ["etl-1", "etl-2", "etl-3"] {
        let status =
            wait::until(&api, name, Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded")).await?;
        used.push(status.task.task_definition_arn.with_context(|| format!("{name}: no taskDefinitionArn"))?);
    }
    let registered = revisions(&env, "e2e-etl").await?;
    ensure!(registered.len() == 1, "three runs of one template registered {registered:?}");
    ensure!(used.iter().all(|arn| arn == &registered[0]), "runs used {used:?}, ECS has {registered:?}");
    let described = env
        .ecs
        .describe_task_definition()
        .task_definition(&registered[0])
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await?;
    let hash = described.tags().iter().find(|t| t.key() == Some("ecsrun.dev/template-hash")).and_then(|t| t.value());
    ensure!(hash.is_some_and(|h| h.len() == 64), "the revision's tags: {:?}", described.tags());
    let definition = described.task_definition().context("no task definition")?;
    let app = definition.container_definitions().iter().find(|c| c.name() == Some("app")).context("no app")?;
    ensure!(
        app.image() == Some("etl:1.0") && app.command() == ["etl", "--date", "2026-11-23"],
        "registered as {app:?}"
    );
    // A changed template: a revision of its own; the first one stays for runs of the old content.
    env.create(NAMESPACE, &env.manifest(&template_run("etl-4", "etl:1.1"))?).await?;
    let status =
        wait::until(&api, "etl-4", Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded")).await?;
    let registered = revisions(&env, "e2e-etl").await?;
    ensure!(registered.len() == 2, "after the change ECS has {registered:?}");
    ensure!(
        status.task.task_definition_arn.as_deref() == Some(registered[1].as_str()) && registered[1] != used[0],
        "etl-4 ran {:?}; ECS has {registered:?}",
        status.task.task_definition_arn
    );
    // The old content again: its revision is found, nothing is registered.
    env.create(NAMESPACE, &env.manifest(&template_run("etl-5", "etl:1.0"))?).await?;
    let status =
        wait::until(&api, "etl-5", Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded")).await?;
    ensure!(
        status.task.task_definition_arn.as_deref() == Some(used[0].as_str()),
        "etl-5 ran {:?}",
        status.task.task_definition_arn
    );
    ensure!(revisions(&env, "e2e-etl").await?.len() == 2, "the old content was registered again");
    // Another controller process, which registered nothing: it finds the revision by its hash tag.
    let mut fresh = env.controller("controller-batch-template", &[TEMPLATE_NAMESPACE])?;
    fresh.ready().await?;
    env.create(TEMPLATE_NAMESPACE, &env.manifest(&template_run("etl-6", "etl:1.0"))?).await?;
    let status = wait::until(
        &env.runs(TEMPLATE_NAMESPACE),
        "etl-6",
        Duration::from_secs(60),
        "Succeeded",
        wait::has_condition("Succeeded"),
    )
    .await?;
    ensure!(
        status.task.task_definition_arn.as_deref() == Some(used[0].as_str()),
        "etl-6 ran {:?}",
        status.task.task_definition_arn
    );
    ensure!(revisions(&env, "e2e-etl").await?.len() == 2, "a fresh controller registered the content again");
    let lookups = fresh.metric(r#"ecsrun_ecs_calls_total{operation="ListTaskDefinitions",outcome="ok"}"#).await?;
    ensure!(lookups == 1.0, "the fresh controller looked the template up {lookups} times");
    ensure!(
        fresh.metric(r#"ecsrun_ecs_calls_total{operation="RegisterTaskDefinition",outcome="ok"}"#).await? == 0.0,
        "the fresh controller registered a revision"
    );
    fresh.process.terminate()?;
    Ok(())
}

/// A run of 100 tasks that all fail: the object stays far below what etcd accepts, and the run tells its
/// own transitions, not each index's.
async fn hundred_failing(env: Arc<Env>) -> anyhow::Result<()> {
    let extra = "  count: 100\n  parallelism: 100\n  retryPolicy:\n    backoffLimit: 0\n    failFast: false\n  wait:\n    \
                 pollInterval: 5s\n";
    env.create(NAMESPACE, &env.manifest(&fargate_run("hundred", "batch", "failing", extra))?).await?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "hundred", Duration::from_secs(150), "Failed", wait::has_condition("Failed")).await?;
    ensure!(status.failed_tasks == Some(100), "{:?} indexes failed: {:?}", status.failed_tasks, status.task.message);
    ensure!(status.tasks.iter().all(|t| t.task.attempts.len() == 1), "an index ran twice");
    let object = api.get("hundred").await?;
    let bytes = serde_json::to_vec(&object)?.len();
    let status_bytes = serde_json::to_vec(&object.status)?.len();
    // The Events follow the status write the wait saw.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events = crate::examples::events_of(&env.client, NAMESPACE, "hundred").await?;
    eprintln!(
        "count 100, every index failed: the object is {bytes} bytes ({status_bytes} of status); {} Events {events:?}",
        events.len()
    );
    ensure!(bytes < 256 * 1024, "the object is {bytes} bytes");
    ensure!(events.len() <= 5, "{} Events for one run: {events:?}", events.len());
    ensure!(events.iter().any(|reason| reason == "Failed"), "no Failed Event: {events:?}");
    Ok(())
}
