//! ecsrun as a Tekton custom task, under Tekton Pipelines' own controller (started by the harness as a
//! user's install has it): PipelineRuns of ECS steps and no Pods. Each case has its namespace and an
//! ecsrun controller of its own with `--tekton`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use ecsrun::api::{EcsTaskRun, Phase};
use ecsrun_testbed::Controller;
use ecsrun_testbed::tekton::{api, apply};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::{Case, Env, case};

pub const PIPELINE: &str = "e2e-tekton-pipeline";
pub const FAILING: &str = "e2e-tekton-failing";
pub const CANCEL: &str = "e2e-tekton-cancel";
pub const TIMEOUT: &str = "e2e-tekton-timeout";
/// Where the examples are dry-run: nothing of the same names exists there.
pub const EXAMPLES: &str = "e2e-tekton-examples";
const CLUSTER: &str = "batch";

pub fn cases() -> Vec<Case> {
    vec![
        case("pipelines::three_ecs_steps_pass_a_result_on_and_run_finally_with_no_pods", three_steps_pass_a_result_on),
        case("pipelines::a_failing_step_fails_the_pipeline_run_with_the_tasks_reason", a_failing_step),
        case("pipelines::cancelling_the_pipeline_run_stops_the_running_ecs_task", cancelling_stops_the_task),
        case("pipelines::a_pipeline_tasks_timeout_stops_its_ecs_task", a_timeout_stops_the_task),
        case("pipelines::the_readmes_pipeline_examples_are_accepted_by_the_api_server", examples_are_accepted),
    ]
}

async fn tekton_controller(env: &Env, name: &str, namespace: &str) -> anyhow::Result<Controller> {
    let mut controller = Controller::start(name, &env.work, &env.kubeconfig, &env.moto, &[namespace], &["--tekton"])?;
    controller.ready().await?;
    Ok(controller)
}

/// An EcsTaskRun spec of task definition `family` on Fargate in moto's subnet, with `extra` fields (JSON).
fn run_spec(env: &Env, family: &str, extra: Value) -> Value {
    let fixtures = &env.moto.fixtures;
    let mut spec = json!({
        "cluster": CLUSTER,
        "taskDefinition": family,
        "launchType": "FARGATE",
        "networkConfiguration": {"awsvpcConfiguration": {
            "subnets": [fixtures.subnet], "securityGroups": [fixtures.security_group],
        }},
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    spec
}

/// Container overrides that make moto's task print `text` (results) as it stops.
fn printing(text: &str) -> Value {
    json!({"containerOverrides": [{"name": "app", "environment": [{"name": "ECSRUN_E2E_PRINT", "value": text}]}]})
}

/// A pipeline task run by ecsrun from a spec embedded in the pipeline.
fn embedded(name: &str, spec: Value) -> Value {
    json!({"name": name, "taskSpec": {"apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskRun", "spec": spec}})
}

/// Waits until the PipelineRun's `Succeeded` condition is True or False; returns it.
async fn pipeline_run_done(env: &Env, namespace: &str, name: &str, within: Duration) -> anyhow::Result<DynamicObject> {
    let runs = api(&env.client, "PipelineRun", namespace);
    let deadline = Instant::now() + within;
    loop {
        let run = runs.get(name).await?;
        if succeeded(&run).is_some_and(|(status, _, _)| status != "Unknown") {
            return Ok(run);
        }
        ensure!(Instant::now() < deadline, "PipelineRun {name} not done in {within:?}: {:?}", run.data.get("status"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The object's `Succeeded` condition: status, reason, message.
fn succeeded(object: &DynamicObject) -> Option<(String, String, String)> {
    let conditions = object.data.pointer("/status/conditions")?.as_array()?;
    let condition = conditions.iter().find(|c| c["type"] == "Succeeded")?;
    let text = |key: &str| condition[key].as_str().unwrap_or_default().to_owned();
    Some((text("status"), text("reason"), text("message")))
}

/// The CustomRun Tekton made for pipeline task `task` of PipelineRun `pipeline_run`.
async fn custom_run(env: &Env, namespace: &str, pipeline_run: &str, task: &str) -> anyhow::Result<DynamicObject> {
    let selector = format!("tekton.dev/pipelineRun={pipeline_run},tekton.dev/pipelineTask={task}");
    let list = api(&env.client, "CustomRun", namespace).list(&ListParams::default().labels(&selector)).await?;
    list.items.into_iter().next().with_context(|| format!("no CustomRun for pipeline task {task}"))
}

/// Waits until the CustomRun of `task` is done; returns its `Succeeded` condition.
async fn custom_run_done(
    env: &Env,
    namespace: &str,
    pipeline_run: &str,
    task: &str,
) -> anyhow::Result<(String, String, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let custom = custom_run(env, namespace, pipeline_run, task).await?;
        let condition = succeeded(&custom).unwrap_or_default();
        if !condition.0.is_empty() && condition.0 != "Unknown" {
            return Ok(condition);
        }
        ensure!(Instant::now() < deadline, "CustomRun of {task} not done in 30s: {condition:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn results(object: &DynamicObject) -> Vec<(String, String)> {
    let items = object.data.pointer("/status/results").and_then(Value::as_array).cloned().unwrap_or_default();
    items
        .iter()
        .map(|r| {
            (r["name"].as_str().unwrap_or_default().to_owned(), r["value"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

/// extract (an embedded spec) publishes `rows`; transform (a named, suspended EcsTaskRun used as a
/// template) gets it as a param and publishes it back; notify runs `finally`. The PipelineRun succeeds
/// with the pipeline's result, every step ran as an ECS task, and the namespace has no Pod.
async fn three_steps_pass_a_result_on(env: Arc<Env>) -> anyhow::Result<()> {
    let namespace = PIPELINE;
    let _controller = tekton_controller(&env, "controller-tekton-pipeline", namespace).await?;
    let runs: Api<EcsTaskRun> = Api::namespaced(env.client.clone(), namespace);
    // The template: suspended, so it never runs itself. Params go to `app` (its results container).
    let template: EcsTaskRun = serde_json::from_value(json!({
        "apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskRun",
        "metadata": {"name": "transform-template", "namespace": namespace},
        "spec": run_spec(&env, "publisher", json!({
            "suspend": true,
            "results": {"containers": ["app"], "required": ["echoed"]},
            "overrides": printing("::ecsrun-result echoed=${ROWS}"),
        })),
    }))?;
    runs.patch("transform-template", &PatchParams::apply("ecsrun-e2e").force(), &Patch::Apply(&template)).await?;
    let extract = run_spec(
        &env,
        "publisher",
        json!({"results": {"containers": ["app"], "required": ["rows"]}, "overrides": printing("::ecsrun-result rows=1200")}),
    );
    let pipeline = json!({
        "metadata": {"name": "etl"},
        "spec": {
            "results": [{"name": "rows", "value": "$(tasks.transform.results.echoed)"}],
            "tasks": [
                embedded("extract", extract),
                {
                    "name": "transform",
                    "taskRef": {"apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskRun", "name": "transform-template"},
                    "params": [{"name": "ROWS", "value": "$(tasks.extract.results.rows)"}],
                },
            ],
            "finally": [embedded("notify", run_spec(&env, "db-dump", json!({})))],
        },
    });
    apply(&env.client, namespace, "Pipeline", pipeline).await?;
    apply(
        &env.client,
        namespace,
        "PipelineRun",
        json!({"metadata": {"name": "etl-1"}, "spec": {"pipelineRef": {"name": "etl"}}}),
    )
    .await?;
    let done = pipeline_run_done(&env, namespace, "etl-1", Duration::from_secs(120)).await?;
    let (status, reason, message) = succeeded(&done).context("no Succeeded condition")?;
    ensure!(status == "True", "PipelineRun {reason}: {message}");
    ensure!(results(&done) == [("rows".to_owned(), "1200".to_owned())], "pipeline results {:?}", results(&done));

    let transform = custom_run(&env, namespace, "etl-1", "transform").await?;
    ensure!(results(&transform) == [("echoed".to_owned(), "1200".to_owned())], "transform {:?}", results(&transform));
    for task in ["extract", "transform", "notify"] {
        let custom = custom_run(&env, namespace, "etl-1", task).await?;
        let run = runs.get(&custom.metadata.name.clone().unwrap_or_default()).await?;
        let status = run.status.clone().unwrap_or_default();
        ensure!(status.task.phase == Some(Phase::Succeeded), "{task}'s run: {:?}", status.task.message);
        let arn = status.task.task_arn.clone().context("no task ARN")?;
        let task_in_ecs = env.task(CLUSTER, &arn).await?;
        ensure!(task_in_ecs.last_status() == Some("STOPPED"), "{task}'s ECS task {:?}", task_in_ecs.last_status());
        let owner = run.metadata.owner_references.clone().unwrap_or_default();
        ensure!(
            owner.iter().any(|o| o.kind == "CustomRun" && o.controller == Some(true)),
            "{task}'s run owners {owner:?}"
        );
    }
    let template = runs.get("transform-template").await?;
    ensure!(template.status.and_then(|s| s.task.task_arn).is_none(), "the suspended template ran");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), namespace);
    ensure!(pods.list(&ListParams::default()).await?.items.is_empty(), "the pipeline made Pods");
    Ok(())
}

/// A step whose essential container exits 3: its CustomRun fails with the run's reason, and so does the
/// PipelineRun; the step after it never runs.
async fn a_failing_step(env: Arc<Env>) -> anyhow::Result<()> {
    let namespace = FAILING;
    let _controller = tekton_controller(&env, "controller-tekton-failing", namespace).await?;
    let pipeline = json!({
        "metadata": {"name": "breaks"},
        "spec": {"tasks": [
            embedded("fails", run_spec(&env, "failing", json!({}))),
            {"name": "after", "runAfter": ["fails"], "taskSpec": {"apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskRun", "spec": run_spec(&env, "db-dump", json!({}))}},
        ]},
    });
    apply(&env.client, namespace, "Pipeline", pipeline).await?;
    apply(
        &env.client,
        namespace,
        "PipelineRun",
        json!({"metadata": {"name": "breaks-1"}, "spec": {"pipelineRef": {"name": "breaks"}}}),
    )
    .await?;
    let done = pipeline_run_done(&env, namespace, "breaks-1", Duration::from_secs(90)).await?;
    let (status, reason, message) = succeeded(&done).context("no Succeeded condition")?;
    ensure!(status == "False" && reason == "Failed", "PipelineRun {status} {reason}: {message}");
    let fails = custom_run(&env, namespace, "breaks-1", "fails").await?;
    let (status, reason, message) = succeeded(&fails).context("no Succeeded condition on the CustomRun")?;
    ensure!(status == "False" && reason == "ContainerFailed", "CustomRun {status} {reason}: {message}");
    ensure!(message.contains("exited 3"), "the run's message: {message}");
    ensure!(custom_run(&env, namespace, "breaks-1", "after").await.is_err(), "the step after the failure ran");
    Ok(())
}

/// The EcsTaskRun made for `task` of `pipeline_run`, once its ECS task is RUNNING; returns its task ARN.
async fn running_task(env: &Env, namespace: &str, pipeline_run: &str, task: &str) -> anyhow::Result<String> {
    let runs: Api<EcsTaskRun> = Api::namespaced(env.client.clone(), namespace);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(custom) = custom_run(env, namespace, pipeline_run, task).await
            && let Some(run) = runs.get_opt(&custom.metadata.name.clone().unwrap_or_default()).await?
            && let Some(status) = run.status
            && status.task.phase == Some(Phase::Running)
            && status.task.last_status.as_ref().is_some_and(|s| s.as_str() == "RUNNING")
        {
            return status.task.task_arn.context("no task ARN");
        }
        ensure!(Instant::now() < deadline, "{task}'s ECS task not RUNNING in 60s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until ECS reports the task STOPPED.
async fn ecs_stopped(env: &Env, arn: &str, within: Duration) -> anyhow::Result<aws_sdk_ecs::types::Task> {
    let deadline = Instant::now() + within;
    loop {
        let task = env.task(CLUSTER, arn).await?;
        if task.last_status() == Some("STOPPED") {
            return Ok(task);
        }
        ensure!(Instant::now() < deadline, "task {arn} still {:?} after {within:?}", task.last_status());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Cancelling the PipelineRun while its step's task runs: Tekton cancels the CustomRun, ecsrun stops the
/// ECS task (StopTask) and reports the CustomRun cancelled once the task is STOPPED.
async fn cancelling_stops_the_task(env: Arc<Env>) -> anyhow::Result<()> {
    let namespace = CANCEL;
    let _controller = tekton_controller(&env, "controller-tekton-cancel", namespace).await?;
    let pipeline = json!({"metadata": {"name": "long"}, "spec": {"tasks": [embedded("sleeps", run_spec(&env, "sleeper", json!({})))]}});
    apply(&env.client, namespace, "Pipeline", pipeline).await?;
    apply(
        &env.client,
        namespace,
        "PipelineRun",
        json!({"metadata": {"name": "long-1"}, "spec": {"pipelineRef": {"name": "long"}}}),
    )
    .await?;
    let arn = running_task(&env, namespace, "long-1", "sleeps").await?;
    let cancel = json!({"spec": {"status": "Cancelled"}});
    api(&env.client, "PipelineRun", namespace).patch("long-1", &PatchParams::default(), &Patch::Merge(&cancel)).await?;
    let stopped = ecs_stopped(&env, &arn, Duration::from_secs(30)).await?;
    ensure!(stopped.stop_code().map(|c| c.as_str()) == Some("UserInitiated"), "stop code {:?}", stopped.stop_code());
    let done = pipeline_run_done(&env, namespace, "long-1", Duration::from_secs(60)).await?;
    let (status, reason, message) = succeeded(&done).context("no Succeeded condition")?;
    ensure!(status == "False" && reason == "Cancelled", "PipelineRun {status} {reason}: {message}");
    // Tekton marks the PipelineRun cancelled at once; the CustomRun is done once its run saw the stop.
    let (status, reason, message) = custom_run_done(&env, namespace, "long-1", "sleeps").await?;
    ensure!(status == "False" && reason == "CustomRunCancelled", "CustomRun {status} {reason}: {message}");
    ensure!(message.contains("has been cancelled"), "the CustomRun's message: {message}");
    Ok(())
}

/// A pipeline task's `timeout` reaches its CustomRun: ecsrun stops the ECS task when it passes and reports
/// the CustomRun timed out; the PipelineRun fails.
async fn a_timeout_stops_the_task(env: Arc<Env>) -> anyhow::Result<()> {
    let namespace = TIMEOUT;
    let _controller = tekton_controller(&env, "controller-tekton-timeout", namespace).await?;
    let mut sleeps = embedded("sleeps", run_spec(&env, "sleeper", json!({})));
    sleeps["timeout"] = json!("8s");
    apply(&env.client, namespace, "Pipeline", json!({"metadata": {"name": "slow"}, "spec": {"tasks": [sleeps]}}))
        .await?;
    apply(
        &env.client,
        namespace,
        "PipelineRun",
        json!({"metadata": {"name": "slow-1"}, "spec": {"pipelineRef": {"name": "slow"}}}),
    )
    .await?;
    let arn = running_task(&env, namespace, "slow-1", "sleeps").await?;
    let stopped = ecs_stopped(&env, &arn, Duration::from_secs(40)).await?;
    ensure!(
        stopped.stopped_reason().is_some_and(|r| r.contains("[ecsrun:deadline]")),
        "stopped for {:?}",
        stopped.stopped_reason()
    );
    let done = pipeline_run_done(&env, namespace, "slow-1", Duration::from_secs(60)).await?;
    let (status, reason, message) = succeeded(&done).context("no Succeeded condition")?;
    ensure!(status == "False", "PipelineRun {status} {reason}: {message}");
    let sleeps = custom_run(&env, namespace, "slow-1", "sleeps").await?;
    let (status, reason, message) = succeeded(&sleeps).context("no Succeeded condition on the CustomRun")?;
    ensure!(status == "False" && reason == "CustomRunTimedOut", "CustomRun {status} {reason}: {message}");
    Ok(())
}

/// examples/pipelines: the Tekton example's every object passes the API server's validation (a
/// server-side dry run against Tekton's CRDs and ecsrun's); the Argo Workflows example's EcsTaskRun does
/// too, and its conditions and output read fields the run has.
async fn examples_are_accepted(env: Arc<Env>) -> anyhow::Result<()> {
    let dir = ecsrun_testbed::repo_root().join("examples/pipelines");
    let dry_run = PatchParams::apply("ecsrun-e2e").force().dry_run();
    let runs: Api<EcsTaskRun> = Api::namespaced(env.client.clone(), EXAMPLES);
    let text = std::fs::read_to_string(dir.join("tekton-etl.yaml"))?;
    let documents: Vec<Value> =
        serde_yaml_ng::Deserializer::from_str(&text).map(serde::Deserialize::deserialize).collect::<Result<_, _>>()?;
    let mut kinds = Vec::new();
    for object in documents {
        let kind = object["kind"].as_str().context("a document without kind")?.to_owned();
        let name = object.pointer("/metadata/name").and_then(Value::as_str).context("no name")?.to_owned();
        if kind == "EcsTaskRun" {
            let run: EcsTaskRun = env.parse(&serde_yaml_ng::to_string(&object)?)?;
            runs.patch(&name, &dry_run, &Patch::Apply(&run)).await.with_context(|| format!("EcsTaskRun {name}"))?;
        } else {
            let object: DynamicObject = serde_json::from_value(object)?;
            api(&env.client, &kind, EXAMPLES)
                .patch(&name, &dry_run, &Patch::Apply(&object))
                .await
                .with_context(|| format!("{kind} {name}"))?;
        }
        kinds.push(kind);
    }
    ensure!(kinds == ["EcsTaskRun", "Pipeline", "PipelineRun"], "tekton-etl.yaml holds {kinds:?}");

    let workflow: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("argo-workflow.yaml"))?)?;
    let template = &workflow["spec"]["templates"][0];
    let resource = &template["resource"];
    let manifest = resource["manifest"].as_str().context("no manifest")?;
    let mut run: EcsTaskRun = env.parse(manifest)?;
    run.metadata.generate_name = None;
    run.metadata.name = Some("argo-example".into());
    runs.patch("argo-example", &dry_run, &Patch::Apply(&run)).await.context("the Argo example's EcsTaskRun")?;
    ensure!(resource["successCondition"] == "status.phase == Succeeded", "{resource}");
    ensure!(resource["failureCondition"] == "status.phase in (Failed, Unknown)", "{resource}");
    let path = template.pointer("/outputs/parameters/0/valueFrom/jsonPath").and_then(Value::as_str);
    let required = run.spec.results.as_ref().map(|r| r.required.clone()).unwrap_or_default();
    ensure!(path == Some("{.status.results.rows}") && required == ["rows"], "output {path:?}, required {required:?}");
    Ok(())
}
