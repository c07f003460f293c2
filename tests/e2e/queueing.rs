//! Queueing under Kueue's own manager (started by the harness as a user's install has it): runs labelled
//! `kueue.x-k8s.io/queue-name` launch only as Kueue admits them, within their ClusterQueues' quota.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use ecsrun::api::{EcsTaskRun, Phase, RunReason};
use ecsrun_testbed::Controller;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::{Case, Env, case, fargate_run};

pub const TEAM_A: &str = "e2e-queue-a";
pub const TEAM_B: &str = "e2e-queue-b";
pub const PRIORITY: &str = "e2e-queue-priority";
pub const EVICTION: &str = "e2e-queue-eviction";
pub const MISSING: &str = "e2e-queue-missing";
pub const FLAVORS: &str = "e2e-queue-flavors";
pub const SCHEDULED: &str = "e2e-queue-scheduled";
const CLUSTER: &str = "batch";

pub fn cases() -> Vec<Case> {
    vec![
        case("queueing::two_teams_share_a_cohort_and_ecs_never_runs_more_than_its_quota", two_teams_share_a_cohort),
        case("queueing::a_higher_priority_run_is_admitted_first", higher_priority_first),
        case("queueing::an_evicted_run_stops_its_task_waits_and_succeeds_once_admitted_again", eviction),
        case("queueing::a_run_naming_a_queue_that_does_not_exist_waits_and_can_be_deleted", missing_queue),
        case("queueing::the_admitting_flavor_chooses_fargate_spot_or_on_demand", flavors_choose_capacity),
        case("queueing::a_schedules_runs_queue", schedule_runs_queue),
    ]
}

fn kueue_api(env: &Env, kind: &str, namespace: Option<&str>) -> Api<DynamicObject> {
    ecsrun_testbed::kueue::api(&env.client, kind, namespace)
}

async fn apply(env: &Env, kind: &str, namespace: Option<&str>, object: serde_json::Value) -> anyhow::Result<()> {
    ecsrun_testbed::kueue::apply(&env.client, kind, namespace, object).await
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
        until_finished(&env, namespace, &queue.workload).await?;
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

/// Waits until Workload `name` is Finished: ecsrun marks it right after the run's final status write, so
/// a reader that saw the run finish may be a moment early.
async fn until_finished(env: &Env, namespace: &str, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let workload = kueue_api(env, "Workload", Some(namespace)).get(name).await?;
        let finished = workload.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Finished" && c["status"] == "True");
        if finished {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the Workload {namespace}/{name} of a finished run is not Finished within 20 s: its quota stays in use"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn kueue_controller(env: &Env, name: &str, namespace: &str) -> anyhow::Result<Controller> {
    let mut controller = Controller::start(name, &env.work, &env.kubeconfig, &env.moto, &[namespace], &["--kueue"])?;
    controller.ready().await?;
    Ok(controller)
}

/// Waits until `check` holds for the run, returning it; fails with its status if it does not in time.
async fn run_until(
    env: &Env,
    namespace: &str,
    name: &str,
    within: Duration,
    check: impl Fn(&ecsrun::api::EcsTaskRunStatus) -> bool,
) -> anyhow::Result<ecsrun::api::EcsTaskRunStatus> {
    let deadline = Instant::now() + within;
    loop {
        let status = env.runs(namespace).get(name).await?.status.unwrap_or_default();
        if check(&status) {
            return Ok(status);
        }
        ensure!(Instant::now() < deadline, "{namespace}/{name} not as expected within {within:?}: {status:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A ClusterQueue with room for one task: a run holds it; a low-priority run queues, then a
/// high-priority one; when the first ends, the high-priority run is admitted first.
async fn higher_priority_first(env: Arc<Env>) -> anyhow::Result<()> {
    let _controller = kueue_controller(&env, "controller-kueue-priority", PRIORITY).await?;
    apply(&env, "ResourceFlavor", None, json!({"metadata": {"name": "fargate"}})).await?;
    apply(&env, "ClusterQueue", None, cluster_queue("e2e-priority", "e2e-priority-cohort", "500m")).await?;
    apply(
        &env,
        "LocalQueue",
        Some(PRIORITY),
        json!({"metadata": {"name": "team"}, "spec": {"clusterQueue": "e2e-priority"}}),
    )
    .await?;
    for (name, value) in [("e2e-low", 10), ("e2e-high", 1000)] {
        apply(&env, "WorkloadPriorityClass", None, json!({"metadata": {"name": name}, "value": value})).await?;
    }
    let runs = env.runs(PRIORITY);
    runs.create(&PostParams::default(), &queued_run(&env, "holder", "team", 6)?).await?;
    run_until(&env, PRIORITY, "holder", Duration::from_secs(60), |s| s.task.task_arn.is_some()).await?;
    for (name, class) in [("low", "e2e-low"), ("high", "e2e-high")] {
        let mut run = queued_run(&env, name, "team", 2)?;
        run.metadata.labels.get_or_insert_default().insert(ecsrun::api::PRIORITY_CLASS_LABEL.into(), class.into());
        runs.create(&PostParams::default(), &run).await?;
        run_until(&env, PRIORITY, name, Duration::from_secs(30), |s| s.task.reason_is(RunReason::Queued)).await?;
    }
    let done = |s: &ecsrun::api::EcsTaskRunStatus| s.task.phase == Some(Phase::Succeeded);
    let high = run_until(&env, PRIORITY, "high", Duration::from_secs(120), done).await?;
    let low = run_until(&env, PRIORITY, "low", Duration::from_secs(120), done).await?;
    let launched = |s: &ecsrun::api::EcsTaskRunStatus| s.task.attempts.first().and_then(|a| a.launched_at.clone());
    let (high_at, low_at) = (launched(&high).context("high launched")?, launched(&low).context("low launched")?);
    ensure!(high_at.0 < low_at.0, "the high-priority run launched at {high_at:?}, after the low one at {low_at:?}");
    Ok(())
}

/// An admitted run's Workload deactivated by an administrator: Kueue evicts it, ecsrun stops its task
/// (not counted against backoffLimit 0), gives the quota back and the run queues; activated again, it is
/// admitted, launches a second attempt and succeeds.
async fn eviction(env: Arc<Env>) -> anyhow::Result<()> {
    let _controller = kueue_controller(&env, "controller-kueue-eviction", EVICTION).await?;
    apply(&env, "ResourceFlavor", None, json!({"metadata": {"name": "fargate"}})).await?;
    apply(&env, "ClusterQueue", None, cluster_queue("e2e-eviction", "e2e-eviction-cohort", "1")).await?;
    apply(
        &env,
        "LocalQueue",
        Some(EVICTION),
        json!({"metadata": {"name": "team"}, "spec": {"clusterQueue": "e2e-eviction"}}),
    )
    .await?;
    // Each attempt runs 20 s: the first is evicted long before it ends; the second runs to its end.
    let mut run = queued_run(&env, "evicted", "team", 20)?;
    run.spec.retry_policy.backoff_limit = 0;
    env.runs(EVICTION).create(&PostParams::default(), &run).await?;
    let running = run_until(&env, EVICTION, "evicted", Duration::from_secs(60), |s| s.task.task_arn.is_some()).await?;
    let first_task = running.task.task_arn.clone().context("task")?;
    let workload = running.queue.context("status.queue")?.workload;
    let workloads = kueue_api(&env, "Workload", Some(EVICTION));
    let active = |active: bool| Patch::Merge(json!({"spec": {"active": active}}));
    workloads.patch(&workload, &PatchParams::default(), &active(false)).await?;
    let queued = run_until(&env, EVICTION, "evicted", Duration::from_secs(60), |s| {
        s.task.reason_is(RunReason::Queued) && s.task.attempts.first().is_some_and(|a| a.outcome.is_some())
    })
    .await?;
    let outcome = queued.task.attempts.first().and_then(|a| a.outcome.clone());
    ensure!(outcome.as_ref().is_some_and(|o| o.is(RunReason::Evicted)), "attempt 1 ended {outcome:?}");
    let task = env.task(CLUSTER, &first_task).await?;
    ensure!(task.last_status() == Some("STOPPED"), "the evicted run's task is {:?}", task.last_status());
    ensure!(
        task.stopped_reason().is_some_and(|reason| reason.ends_with("[ecsrun:evicted]")),
        "stopped for {:?}",
        task.stopped_reason()
    );
    // The quota is given back: Kueue holds no reservation for it while it is inactive.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let object = workloads.get(&workload).await?;
        let reserved = object.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "QuotaReserved" && c["status"] == "True");
        if !reserved {
            break;
        }
        ensure!(Instant::now() < deadline, "the evicted Workload still holds quota: {:#}", object.data["status"]);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Activated again: admitted, attempt 2 runs to its end, and the run succeeds with backoffLimit 0.
    workloads.patch(&workload, &PatchParams::default(), &active(true)).await?;
    let ended = run_until(&env, EVICTION, "evicted", Duration::from_secs(120), |s| {
        s.task.phase.is_some_and(Phase::is_terminal)
    })
    .await?;
    ensure!(ended.task.phase == Some(Phase::Succeeded), "{:?}: {:?}", ended.task.phase, ended.task.message);
    ensure!(ended.task.attempts.len() == 2, "attempts: {:#?}", ended.task.attempts);
    Ok(())
}

/// A run naming a LocalQueue that does not exist waits, saying so in Kueue's words; deleted while
/// queued, it goes without a task ever started, and its Workload with it.
async fn missing_queue(env: Arc<Env>) -> anyhow::Result<()> {
    let _controller = kueue_controller(&env, "controller-kueue-missing", MISSING).await?;
    let created = env.runs(MISSING).create(&PostParams::default(), &queued_run(&env, "nowhere", "nowhere", 1)?).await?;
    let uid = created.metadata.uid.clone().context("uid")?;
    let status = run_until(&env, MISSING, "nowhere", Duration::from_secs(60), |s| {
        s.task.reason_is(RunReason::Queued) && s.task.message.as_deref().is_some_and(|m| m.contains("nowhere"))
    })
    .await?;
    let message = status.task.message.clone().unwrap_or_default();
    ensure!(message.contains("doesn't exist") || message.contains("does not exist"), "{message}");
    // Queued is progressing to Argo CD's health script and to kstatus (so to Flux).
    let object = serde_json::to_value(env.runs(MISSING).get("nowhere").await?)?;
    let script = ecsrun_testbed::repo_root().join(crate::gitops::ARGOCD_HEALTH);
    let argo = crate::gitops::judge(&["argo", &script.to_string_lossy()], std::slice::from_ref(&object)).await?;
    ensure!(argo[0].1 == "Progressing", "Argo CD health of a queued run: {:?}", argo[0]);
    let kstatus = crate::gitops::judge(&["kstatus"], std::slice::from_ref(&object)).await?;
    ensure!(kstatus[0].1 == "InProgress", "kstatus of a queued run: {:?}", kstatus[0]);
    let workload = status.queue.context("status.queue")?.workload;
    env.runs(MISSING).delete("nowhere", &Default::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.runs(MISSING).get_opt("nowhere").await?.is_some() {
        ensure!(Instant::now() < deadline, "the queued run was not deleted within 60 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    ensure!(env.tasks_started_by(CLUSTER, &uid).await?.is_empty(), "a task was started for a run never admitted");
    let deadline = Instant::now() + Duration::from_secs(30);
    while kueue_api(&env, "Workload", Some(MISSING)).get_opt(&workload).await?.is_some() {
        ensure!(Instant::now() < deadline, "the deleted run's Workload {workload} is still there");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

/// Two flavors standing for Fargate Spot and on-demand capacity, Spot first in the ClusterQueue with
/// room for one task: the first run is admitted in Spot and its task runs on FARGATE_SPOT; the second,
/// while the first holds Spot, on FARGATE.
async fn flavors_choose_capacity(env: Arc<Env>) -> anyhow::Result<()> {
    let _controller = kueue_controller(&env, "controller-kueue-flavors", FLAVORS).await?;
    for (flavor, provider) in [("e2e-spot", "FARGATE_SPOT"), ("e2e-on-demand", "FARGATE")] {
        let labels = json!({ecsrun::queue::CAPACITY_PROVIDER_LABEL: provider});
        apply(&env, "ResourceFlavor", None, json!({"metadata": {"name": flavor}, "spec": {"nodeLabels": labels}}))
            .await?;
    }
    let quota = |cpu: &str| json!([{"name": "cpu", "nominalQuota": cpu}, {"name": "memory", "nominalQuota": "16Gi"}]);
    apply(&env, "ClusterQueue", None, json!({
        "metadata": {"name": "e2e-flavors"},
        "spec": {"namespaceSelector": {}, "resourceGroups": [{
            "coveredResources": ["cpu", "memory"],
            "flavors": [{"name": "e2e-spot", "resources": quota("500m")}, {"name": "e2e-on-demand", "resources": quota("1")}],
        }]},
    }))
    .await?;
    apply(
        &env,
        "LocalQueue",
        Some(FLAVORS),
        json!({"metadata": {"name": "team"}, "spec": {"clusterQueue": "e2e-flavors"}}),
    )
    .await?;
    let runs = env.runs(FLAVORS);
    let mut providers = Vec::new();
    for name in ["first", "second"] {
        runs.create(&PostParams::default(), &queued_run(&env, name, "team", 30)?).await?;
        let status = run_until(&env, FLAVORS, name, Duration::from_secs(60), |s| s.task.task_arn.is_some()).await?;
        let task = env.task(CLUSTER, status.task.task_arn.as_deref().context("task")?).await?;
        let flavor = status.queue.and_then(|queue| queue.flavor);
        providers.push((flavor, task.capacity_provider_name().map(str::to_owned)));
    }
    let expected = vec![
        (Some("e2e-spot".to_owned()), Some("FARGATE_SPOT".to_owned())),
        (Some("e2e-on-demand".to_owned()), Some("FARGATE".to_owned())),
    ];
    ensure!(providers == expected, "flavors and capacity providers: {providers:?}");
    for name in ["first", "second"] {
        runs.patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"stop": true}}))).await?;
    }
    Ok(())
}

/// A schedule whose `runTemplate` names a LocalQueue: its slot's run is queued, admitted, and succeeds,
/// and its Workload ends Finished.
async fn schedule_runs_queue(env: Arc<Env>) -> anyhow::Result<()> {
    let _controller = kueue_controller(&env, "controller-kueue-schedule", SCHEDULED).await?;
    apply(&env, "ResourceFlavor", None, json!({"metadata": {"name": "fargate"}})).await?;
    apply(&env, "ClusterQueue", None, cluster_queue("e2e-scheduled", "e2e-scheduled-cohort", "500m")).await?;
    apply(
        &env,
        "LocalQueue",
        Some(SCHEDULED),
        json!({"metadata": {"name": "team"}, "spec": {"clusterQueue": "e2e-scheduled"}}),
    )
    .await?;
    let run_extra = "overrides:\n  cpu: \"512\"\n  memory: \"1024\"\n";
    let yaml = crate::schedules::schedule_yaml("queued", "", run_extra)
        .replace("        team: data\n", "        team: data\n        kueue.x-k8s.io/queue-name: team\n");
    crate::schedules::apply(&env, SCHEDULED, &yaml).await?;
    let deadline = Instant::now() + Duration::from_secs(150);
    let run = loop {
        let runs = crate::schedules::runs_of(&env, SCHEDULED, "queued").await?;
        if let Some(run) =
            runs.into_iter().find(|run| run.status.as_ref().and_then(|s| s.task.phase).is_some_and(Phase::is_terminal))
        {
            break run;
        }
        ensure!(Instant::now() < deadline, "no run of the schedule finished within 150 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let status = run.status.clone().unwrap_or_default();
    ensure!(status.task.phase == Some(Phase::Succeeded), "{:?}: {:?}", status.task.phase, status.task.message);
    let queue = status.queue.context("the schedule's run has no status.queue: it was not queued")?;
    ensure!(queue.cluster_queue.as_deref() == Some("e2e-scheduled"), "{queue:?}");
    until_finished(&env, SCHEDULED, &queue.workload).await?;
    crate::schedules::delete_schedule(&env, SCHEDULED, "queued").await?;
    Ok(())
}
