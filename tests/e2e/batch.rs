//! Batch jobs as users write them: parallel indexed tasks (`count`, `parallelism`, failFast), exit-code
//! rules (`retryPolicy.rules`, as a Job's podFailurePolicy) and the RunTask options beyond the basics.
//! moto's `failing` task definition exits 3; the launcher's ECSRUN_E2E_INDEX_<i>_* variables make one
//! index of a run behave differently.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use ecsrun_testbed::wait;

use crate::{Case, Env, case, fargate_run};

pub const NAMESPACE: &str = "e2e-batch";
/// A controller of its own, killed in the middle of a run of ten tasks.
pub const RESTART_NAMESPACE: &str = "e2e-batch-restart";
/// A controller of its own that never saw the template registered.
pub const TEMPLATE_NAMESPACE: &str = "e2e-batch-template";

pub fn cases() -> Vec<Case> {
    vec![
        case("batch::managed_tags_ebs_volumes_environment_files_and_gpus_reach_ecs", run_task_options),
        case("batch::three_runs_of_one_template_register_one_revision_and_a_change_another", template_runs),
        case("batch::a_run_of_100_failing_tasks_stays_small_and_tells_a_handful_of_events", hundred_failing),
        case("batch::tasks_to_succeed_ends_the_run_and_stops_the_task_not_needed", tasks_to_succeed),
        case("batch::max_failed_indexes_fails_the_run_past_its_budget", max_failed_indexes),
    ]
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

/// Every task of `status`'s index `index`, as moto reports it.
async fn index_task_stopped(env: &Env, status: &ecsrun::api::EcsTaskRunStatus, index: i32) -> anyhow::Result<()> {
    let lane = status.lane(index).with_context(|| format!("index {index}"))?;
    let arn = lane.task_arn.as_deref().with_context(|| format!("index {index} has no task"))?;
    let task = env.task("batch", arn).await?;
    ensure!(task.last_status() == Some("STOPPED"), "index {index}'s task is {:?}", task.last_status());
    Ok(())
}

/// `tasksToSucceed: 2` of three tasks, index 2 never ending on its own: once 0 and 1 succeeded, the run
/// succeeds and index 2's task is stopped (NotNeeded, no failure).
async fn tasks_to_succeed(env: Arc<Env>) -> anyhow::Result<()> {
    let extra =
        format!("  count: 3\n  tasksToSucceed: 2\n{}", crate::app_env(&[("ECSRUN_E2E_INDEX_2_HOLD", "running")]));
    env.create(NAMESPACE, &env.manifest(&fargate_run("two-of-three", "batch", "transform", &extra))?).await?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "two-of-three", Duration::from_secs(90), "Succeeded", wait::has_condition("Succeeded"))
            .await?;
    ensure!(status.succeeded_tasks == Some(2) && status.failed_tasks == Some(0), "{status:?}");
    let lane = status.lane(2).context("index 2")?;
    ensure!(lane.reason_str() == Some("NotNeeded"), "index 2: {:?} {:?}", lane.reason, lane.message);
    index_task_stopped(&env, &status, 2).await
}

/// `maxFailedIndexes: 1` with `failFast: false`: indexes 0 and 1 exit 1, 2 and 3 never end on their own;
/// the second failure stops 2 and 3 and fails the run with MaxFailedIndexesExceeded.
async fn max_failed_indexes(env: Arc<Env>) -> anyhow::Result<()> {
    let extra = format!(
        "  count: 4\n  retryPolicy:\n    failFast: false\n    maxFailedIndexes: 1\n{}",
        crate::app_env(&[
            ("ECSRUN_E2E_INDEX_0_EXIT_CODE", "1"),
            ("ECSRUN_E2E_INDEX_1_EXIT_CODE", "1"),
            ("ECSRUN_E2E_INDEX_1_RUN_SECONDS", "6"),
            ("ECSRUN_E2E_INDEX_2_HOLD", "running"),
            ("ECSRUN_E2E_INDEX_3_HOLD", "running"),
        ])
    );
    env.create(NAMESPACE, &env.manifest(&fargate_run("budget-of-one", "batch", "transform", &extra))?).await?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "budget-of-one", Duration::from_secs(90), "Failed", wait::has_condition("Failed")).await?;
    ensure!(
        status.task.reason_str() == Some("MaxFailedIndexesExceeded"),
        "{:?}: {:?}",
        status.task.reason,
        status.task.message
    );
    for index in [2, 3] {
        index_task_stopped(&env, &status, index).await?;
    }
    Ok(())
}
