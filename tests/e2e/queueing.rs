//! Queueing under Kueue's own manager (started by the harness as a user's install has it): runs labelled
//! `kueue.x-k8s.io/queue-name` launch only as Kueue admits them, within their ClusterQueues' quota.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use ecsrun::api::{EcsTaskRun, Phase, RunReason};
use ecsrun_testbed::Controller;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use crate::{Case, Env, case, fargate_run};

pub const TEAM_A: &str = "e2e-queue-a";
pub const TEAM_B: &str = "e2e-queue-b";
const CLUSTER: &str = "batch";

pub fn cases() -> Vec<Case> {
    vec![case("queueing::two_teams_share_a_cohort_and_ecs_never_runs_more_than_its_quota", two_teams_share_a_cohort)]
}

fn kueue_api(env: &Env, kind: &str, namespace: Option<&str>) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("kueue.x-k8s.io", "v1beta2", kind));
    match namespace {
        Some(namespace) => Api::namespaced_with(env.client.clone(), namespace, &resource),
        None => Api::all_with(env.client.clone(), &resource),
    }
}

async fn apply(env: &Env, kind: &str, namespace: Option<&str>, object: serde_json::Value) -> anyhow::Result<()> {
    let name = object["metadata"]["name"].as_str().context("name")?.to_owned();
    let mut object = object;
    object["apiVersion"] = json!("kueue.x-k8s.io/v1beta2");
    object["kind"] = json!(kind);
    let object: DynamicObject = serde_json::from_value(object)?;
    kueue_api(env, kind, namespace)
        .patch(&name, &PatchParams::apply("ecsrun-e2e").force(), &Patch::Apply(&object))
        .await
        .with_context(|| format!("applying {kind} {name}"))?;
    Ok(())
}

/// A ClusterQueue of `cpu` vCPU (and ample memory) of flavor `fargate`, in cohort `cohort`.
fn cluster_queue(name: &str, cohort: &str, cpu: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "cohortName": cohort,
            "namespaceSelector": {},
            "resourceGroups": [{
                "coveredResources": ["cpu", "memory"],
                "flavors": [{"name": "fargate", "resources": [
                    {"name": "cpu", "nominalQuota": cpu},
                    {"name": "memory", "nominalQuota": "16Gi"},
                ]}],
            }],
        },
    })
}

/// A run of half a vCPU that runs `seconds`, queued in `queue`.
fn queued_run(env: &Env, name: &str, queue: &str, seconds: u32) -> anyhow::Result<EcsTaskRun> {
    let extra = format!(
        r#"  overrides:
    cpu: "512"
    memory: "1024"
    containerOverrides:
      - name: app
        environment:
          - name: ECSRUN_E2E_RUN_SECONDS
            value: "{seconds}"
"#
    );
    let mut run = env.manifest(&fargate_run(name, CLUSTER, "db-dump", &extra))?;
    run.metadata.labels = Some([(ecsrun::api::QUEUE_NAME_LABEL.to_owned(), queue.to_owned())].into());
    Ok(run)
}

/// Tasks ECS has not stopped (desired RUNNING: provisioning, pending or running) of the runs with `uids`.
async fn not_stopped(env: &Env, uids: &[String]) -> anyhow::Result<usize> {
    let mut count = 0;
    for uid in uids {
        let page = env
            .ecs
            .list_tasks()
            .cluster(CLUSTER)
            .started_by(ecsrun::decide::started_by(uid))
            .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
            .send()
            .await?;
        count += page.task_arns().len();
    }
    Ok(count)
}

/// Two teams' ClusterQueues of 1 vCPU each in one cohort; eight runs of 0.5 vCPU, four per team, all at
/// once: ECS never has more than the cohort's 2 vCPU (4 tasks) not stopped, and every run succeeds.
/// Then team B is idle and team A alone runs four at once: it borrows B's unused quota.
async fn two_teams_share_a_cohort(env: Arc<Env>) -> anyhow::Result<()> {
    let mut controller =
        Controller::start("controller-kueue", &env.work, &env.kubeconfig, &env.moto, &[TEAM_A, TEAM_B], &["--kueue"])?;
    controller.ready().await?;
    apply(&env, "ResourceFlavor", None, json!({"metadata": {"name": "fargate"}})).await?;
    apply(&env, "ClusterQueue", None, cluster_queue("e2e-team-a", "e2e-shared", "1")).await?;
    apply(&env, "ClusterQueue", None, cluster_queue("e2e-team-b", "e2e-shared", "1")).await?;
    apply(
        &env,
        "LocalQueue",
        Some(TEAM_A),
        json!({"metadata": {"name": "team"}, "spec": {"clusterQueue": "e2e-team-a"}}),
    )
    .await?;
    apply(
        &env,
        "LocalQueue",
        Some(TEAM_B),
        json!({"metadata": {"name": "team"}, "spec": {"clusterQueue": "e2e-team-b"}}),
    )
    .await?;

    let mut runs = Vec::new();
    for index in 0..4 {
        for namespace in [TEAM_A, TEAM_B] {
            let run = queued_run(&env, &format!("share-{index}"), "team", 6)?;
            let created = env.runs(namespace).create(&PostParams::default(), &run).await?;
            runs.push((namespace, created));
        }
    }
    let uids: Vec<String> = runs.iter().filter_map(|(_, run)| run.metadata.uid.clone()).collect();
    let (most, queued_seen) = watch_until_done(&env, &runs, &uids, Duration::from_secs(180)).await?;
    ensure!(most <= 4, "ECS had {most} tasks of the cohort's runs not stopped at once: its quota is 4");
    ensure!(most >= 2, "never more than {most} task at once: the queue did not admit in parallel");
    ensure!(queued_seen, "no run was ever seen Queued: eight runs over a quota of four must wait");
    for (namespace, run) in &runs {
        let run = env.runs(namespace).get(run.metadata.name.as_deref().unwrap_or_default()).await?;
        let status = run.status.unwrap_or_default();
        let queue = status.queue.context("status.queue")?;
        ensure!(queue.cluster_queue.as_deref().is_some_and(|q| q.starts_with("e2e-team-")), "{queue:?}");
        ensure!(queue.flavor.as_deref() == Some("fargate"), "{queue:?}");
        let workloads = kueue_api(&env, "Workload", Some(namespace));
        let workload = workloads.get(&queue.workload).await?;
        let finished = workload.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Finished" && c["status"] == "True");
        ensure!(finished, "the Workload {} of a succeeded run is not Finished: its quota stays in use", queue.workload);
    }

    // Team B idle: team A's four runs borrow B's quota and run at once.
    let mut borrowing = Vec::new();
    for index in 0..4 {
        let run = queued_run(&env, &format!("borrow-{index}"), "team", 8)?;
        borrowing.push((TEAM_A, env.runs(TEAM_A).create(&PostParams::default(), &run).await?));
    }
    let uids: Vec<String> = borrowing.iter().filter_map(|(_, run)| run.metadata.uid.clone()).collect();
    let (most, _) = watch_until_done(&env, &borrowing, &uids, Duration::from_secs(120)).await?;
    ensure!(most == 4, "team A ran at most {most} tasks at once with team B idle: borrowing allows 4");
    drop(controller);
    Ok(())
}

/// Samples ECS every 250 ms until every run has succeeded; returns the most tasks seen not stopped at once
/// and whether any run was seen Queued. Fails if a run fails or time runs out.
async fn watch_until_done(
    env: &Env,
    runs: &[(&str, EcsTaskRun)],
    uids: &[String],
    within: Duration,
) -> anyhow::Result<(usize, bool)> {
    let deadline = Instant::now() + within;
    let (mut most, mut queued_seen) = (0, false);
    loop {
        most = most.max(not_stopped(env, uids).await?);
        let mut pending = BTreeSet::new();
        for (namespace, run) in runs {
            let name = run.metadata.name.clone().unwrap_or_default();
            let status = env.runs(namespace).get(&name).await?.status.unwrap_or_default();
            queued_seen |= status.task.reason_is(RunReason::Queued);
            match status.task.phase {
                Some(Phase::Succeeded) => {}
                Some(Phase::Failed | Phase::Unknown) => {
                    anyhow::bail!("{namespace}/{name} did not succeed: {:?}", status.task.message)
                }
                _ => {
                    pending.insert(format!("{namespace}/{name}: {:?}", status.task.message));
                }
            }
        }
        if pending.is_empty() {
            return Ok((most, queued_seen));
        }
        ensure!(Instant::now() < deadline, "runs not done within {within:?}: {pending:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
