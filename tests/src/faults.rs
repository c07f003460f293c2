//! The fault suite: runs created while the controller is SIGKILLed and restarted again and again, the
//! ECS proxy injects throttles, 500s, dropped connections, slow answers and calls stalled 20–60 s (longer
//! than the controller's 20 s call timeout), another client edits the
//! runs' labels and annotations, and some runs are deleted, some at once. Then the faults stop and the
//! suite checks, from ECS's own ListTasks and DescribeTasks (straight to the endpoint, not through the
//! proxy): exactly one task per attempt, no task running whose run is gone, every run converged.
//! The e2e suite runs it at CI size; `hack/faults` at full size writes docs/reliability.json.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_sdk_ecs::types::{DesiredStatus, TaskField};
use ecsrun::api::EcsTaskRun;
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::watcher;

use crate::bench::Peers;
use crate::proxy::{EcsProxy, Fault, Faults, ecs_buckets};
use crate::{Controller, ControllerOptions};

/// One pass of the suite.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Names the namespace (several passes share a control plane).
    pub label: String,
    pub runs: usize,
    pub kills: usize,
    /// Share of ECS calls that get a fault.
    pub fault_rate: f64,
    /// Follow tasks through task state change events (the bench cluster's queue, through the proxy, whose
    /// faults its SQS calls get too), with an SQS outage in the middle of the kills.
    pub events: bool,
}

impl Plan {
    /// The cluster the pass's tasks run in: with events, the one whose events reach a queue no e2e
    /// controller reads.
    fn cluster(&self) -> &'static str {
        if self.events { "bench" } else { "batch" }
    }
}

/// What one pass measured; every count that must be 0 is named so.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub label: String,
    pub runs: usize,
    pub kills: usize,
    /// Kills sent within milliseconds of a RunTask reaching ECS (before its answer was recorded).
    pub kills_right_after_run_task: usize,
    pub fault_rate: f64,
    /// Task events pass: kills sent while a batch of events was applied and not deleted, and the seconds
    /// SQS was out.
    #[serde(default)]
    pub events: bool,
    #[serde(default)]
    pub kills_mid_batch: usize,
    #[serde(default)]
    pub sqs_outage_s: f64,
    pub faults: BTreeMap<Fault, u64>,
    pub ecs_calls: BTreeMap<String, u64>,
    pub deleted_runs: usize,
    pub conflicting_edits: u64,
    /// ECS attempts the controllers' own metrics show retried or failed (`ecsrun_ecs_retries_total`, and
    /// `ecsrun_ecs_calls_total` with an outcome other than ok), read just before each kill: the faults as
    /// an operator sees them.
    pub errors_in_metrics: u64,
    /// Reasons the runs' status showed along the way, with how many runs showed each: the retries as a
    /// user sees them (`kubectl get etr`).
    pub reasons_in_status: BTreeMap<String, usize>,
    pub attempts: usize,
    pub tasks: usize,
    /// Tasks beyond the first of an attempt (must be 0).
    pub duplicates: usize,
    /// Tasks not STOPPED whose run was deleted (must be 0).
    pub left_running_after_delete: usize,
    /// Runs neither final nor gone when the suite stopped waiting (must be 0).
    pub not_converged: usize,
    /// From the last fault (the faults switched off, the last controller started) to every run final or gone.
    pub converged_after_last_fault_s: f64,
    /// Reconcile errors of the last controller in the 10 s after convergence, while the other client still
    /// edits the runs: an error loop shows here (must be 0).
    #[serde(default)]
    pub reconcile_errors_after_convergence: u64,
    /// Final phases and reasons of the runs that were not deleted.
    pub outcomes: BTreeMap<String, usize>,
    pub wall_s: f64,
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub controller_commit: String,
}

impl Report {
    /// The guarantees, as one error listing what broke.
    pub fn check(&self) -> anyhow::Result<()> {
        let mut broken = Vec::new();
        if self.duplicates > 0 {
            broken.push(format!("{} duplicate tasks", self.duplicates));
        }
        if self.left_running_after_delete > 0 {
            broken.push(format!("{} tasks left running after their run was deleted", self.left_running_after_delete));
        }
        if self.not_converged > 0 {
            broken.push(format!("{} runs did not converge", self.not_converged));
        }
        if self.reconcile_errors_after_convergence > 0 {
            broken.push(format!("{} reconcile errors after convergence", self.reconcile_errors_after_convergence));
        }
        anyhow::ensure!(broken.is_empty(), "{}", broken.join("; "));
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Succeeds after a few seconds.
    Succeeds,
    /// Exits 3 every time: two attempts (backoffLimit 1), then Failed.
    Fails,
    /// Runs until stopped; deleted a moment after it is created.
    Deleted,
}

struct Created {
    name: String,
    uid: String,
    kind: Kind,
}

/// Runs one pass against `peers` (the control plane and moto) with `peers.binary` as the controller.
pub async fn run(peers: &Peers<'_>, plan: &Plan) -> anyhow::Result<Report> {
    let started = Instant::now();
    let namespace = format!("faults-{}", plan.label);
    crate::ensure_namespace(&peers.client, &namespace).await?;
    let api: Api<EcsTaskRun> = Api::namespaced(peers.client.clone(), &namespace);
    anyhow::ensure!(api.list(&ListParams::default().limit(1)).await?.items.is_empty(), "{namespace} is not empty");

    let proxy = Arc::new(EcsProxy::start(&peers.moto.endpoint, ecs_buckets()).await?);
    proxy.set_faults(Some(Faults {
        rate: plan.fault_rate,
        kinds: Fault::ALL.to_vec(),
        slow: Duration::from_secs(3),
        stalled: Duration::from_secs(20)..Duration::from_secs(60),
        operations: Vec::new(),
    }));
    // hack/faults adds kube_runtime's debug logs (what the finalizer helper did, and when).
    let rust_log = std::env::var("ECSRUN_FAULTS_RUST_LOG").unwrap_or_else(|_| "info,ecsrun=debug".into());
    let mut args = vec!["--default-poll-interval=5s".to_string()];
    if plan.events {
        let queue = peers.moto.fixtures.event_queues.get(crate::bench::BENCH_EVENT_QUEUE).context("no event queue")?;
        peers.moto.purge_event_queue(crate::bench::BENCH_EVENT_QUEUE).await?;
        args.push(format!("--ecs-events-queue-url={queue}"));
        args.push(format!("--sqs-endpoint-url={}", proxy.endpoint));
        args.push("--events-sweep-interval=30s".into());
    }
    let spawn = |generation: usize| {
        Controller::spawn(
            ControllerOptions {
                binary: peers.binary.clone(),
                name: &format!("controller-{namespace}-{generation}"),
                ecs_endpoint: &proxy.endpoint,
                sts_endpoint: &peers.moto.endpoint,
                logs_endpoint: &peers.moto.endpoint,
                region: &peers.moto.fixtures.region,
                namespaces: &[&namespace],
                args: args.clone(),
                rust_log: &rust_log,
            },
            peers.work,
            peers.kubeconfig,
        )
    };
    let mut controller = spawn(0)?;
    controller.ready().await?;

    // Another client edits labels and annotations all along (its own field manager, merge patches).
    let edits = Arc::new(AtomicU64::new(0));
    let editor = tokio::spawn(edit_runs(api.clone(), edits.clone()));

    // Runs are created, and some deleted, across the whole killing period: half the kills wait up to three
    // periods for a RunTask, so the loop lasts up to about twice kills × kill_every, and runs still launch
    // near its end (with 30 % of ECS calls faulted, a RunTask often takes the SDK's retries to get through).
    let kill_every = Duration::from_millis(1500);
    let period = kill_every * (plan.kills as u32 * 2);
    let creator =
        tokio::spawn(create_runs(peers.moto.fixtures.clone(), api.clone(), plan.runs, period, plan.cluster()));

    let reasons: ReasonsSeen = Arc::default();
    let watching = tokio::spawn(watch_reasons(api.clone(), reasons.clone()));
    let mut errors_in_metrics = 0;
    let mut kills_right_after_run_task = 0;
    let (mut kills_mid_batch, mut outage) = (0, None::<Instant>);
    let mut sqs_outage_s = 0.0;
    for kill in 0..plan.kills {
        if plan.events && kill == plan.kills / 3 {
            proxy.set_outage(&["ReceiveMessage", "DeleteMessageBatch"]);
            outage = Some(Instant::now());
        }
        if let Some(since) = outage.filter(|_| kill == plan.kills / 2) {
            proxy.set_outage(&[]);
            sqs_outage_s = since.elapsed().as_secs_f64();
            outage = None;
        }
        // Every other kill lands right after a RunTask reached ECS, before its answer can be recorded; with
        // events, the others while the consumer deletes a batch it applied (the delete held by the proxy).
        if kill % 2 == 0 && tokio::time::timeout(kill_every * 3, proxy.run_task_forwarded()).await.is_ok() {
            kills_right_after_run_task += 1;
        } else if plan.events && proxy.hold_next_delete(kill_every * 2).await {
            kills_mid_batch += 1;
        } else {
            tokio::time::sleep(jitter(kill_every, kill)).await;
        }
        errors_in_metrics += scrape_errors(&controller).await;
        controller.process.kill();
        controller = spawn(kill + 1)?;
    }
    let created = creator.await.context("creating runs")??;
    proxy.set_faults(None);
    let last_fault = Instant::now();
    controller.ready().await?;

    // Converged: every run not deleted is final, every deleted run is gone.
    let patience = Duration::from_secs(180 + plan.runs as u64);
    let not_converged = loop {
        let left = unconverged(&api, &created).await?;
        if left == 0 || last_fault.elapsed() > patience {
            break left;
        }
        controller.process.ensure_alive()?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let converged_after_last_fault_s = last_fault.elapsed().as_secs_f64();
    // Settled runs stay settled while another client keeps editing them: no conflicts, no error loop.
    let errors_before = controller.metric_total("ecsrun_reconcile_errors_total").await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let reconcile_errors_after_convergence =
        (controller.metric_total("ecsrun_reconcile_errors_total").await? - errors_before) as u64;
    editor.abort();
    watching.abort();
    let mut reasons_in_status: BTreeMap<String, usize> = BTreeMap::new();
    for reason in reasons.lock().unwrap_or_else(PoisonError::into_inner).values().flatten() {
        *reasons_in_status.entry(reason.clone()).or_default() += 1;
    }

    let ecs = peers.moto.ecs().await;
    let mut report = Report {
        label: plan.label.clone(),
        runs: plan.runs,
        kills: plan.kills,
        kills_right_after_run_task,
        fault_rate: plan.fault_rate,
        events: plan.events,
        kills_mid_batch,
        sqs_outage_s,
        faults: proxy.counts().faults,
        ecs_calls: proxy.counts().calls,
        deleted_runs: created.iter().filter(|run| run.kind == Kind::Deleted).count(),
        conflicting_edits: edits.load(Ordering::Relaxed),
        errors_in_metrics,
        reasons_in_status,
        attempts: 0,
        tasks: 0,
        duplicates: 0,
        left_running_after_delete: 0,
        not_converged,
        converged_after_last_fault_s,
        reconcile_errors_after_convergence,
        outcomes: BTreeMap::new(),
        wall_s: 0.0,
        command: String::new(),
        controller_commit: String::new(),
    };
    for run in &created {
        let tasks = tasks_of(&ecs, &run.uid, plan.cluster()).await?;
        report.tasks += tasks.len();
        let mut per_attempt: HashMap<String, usize> = HashMap::new();
        for (attempt, _) in &tasks {
            *per_attempt.entry(attempt.clone()).or_default() += 1;
        }
        report.attempts += per_attempt.len();
        report.duplicates += per_attempt.values().map(|n| n - 1).sum::<usize>();
        if run.kind == Kind::Deleted {
            report.left_running_after_delete += tasks.iter().filter(|(_, status)| status != "STOPPED").count();
        } else if let Some(status) = api.get_opt(&run.name).await?.and_then(|run| run.status) {
            let phase = status.task.phase.map_or("None".to_owned(), |phase| format!("{phase:?}"));
            *report.outcomes.entry(format!("{phase}/{}", status.task.reason_str().unwrap_or_default())).or_default() +=
                1;
        }
    }
    report.wall_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// ECS attempts the controller counted as retried or failed; 0 when it cannot be asked.
async fn scrape_errors(controller: &Controller) -> u64 {
    let Ok((_, page)) = crate::http_get(&controller.metrics_url).await else { return 0 };
    page.lines()
        .filter(|line| {
            line.starts_with("ecsrun_ecs_retries_total{")
                || (line.starts_with("ecsrun_ecs_calls_total{") && !line.contains(r#"outcome="ok""#))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Every reason each run's status showed, by run name.
type ReasonsSeen = Arc<Mutex<HashMap<String, HashSet<String>>>>;

/// Records every reason each run's status shows.
async fn watch_reasons(api: Api<EcsTaskRun>, reasons: ReasonsSeen) {
    let mut events = watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        if let Ok(watcher::Event::Apply(run) | watcher::Event::InitApply(run)) = event
            && let Some(reason) =
                run.status.as_ref().and_then(|status| status.task.reason.as_ref().map(ToString::to_string))
        {
            reasons.lock().unwrap_or_else(PoisonError::into_inner).entry(run.name_any()).or_default().insert(reason);
        }
    }
}

/// The same spread of delays for the same kill, around `every`.
fn jitter(every: Duration, index: usize) -> Duration {
    let spread = (index.wrapping_mul(7919) % 100) as u32; // 0..99
    every / 4 + every * 3 * spread / 200
}

async fn create_runs(
    fixtures: crate::Fixtures,
    api: Api<EcsTaskRun>,
    runs: usize,
    period: Duration,
    cluster: &'static str,
) -> anyhow::Result<Vec<Created>> {
    let every = period / runs.max(1) as u32;
    let mut created = Vec::new();
    let mut deletions = Vec::new();
    for index in 0..runs {
        let kind = match index % 10 {
            0..=5 => Kind::Succeeds,
            6 | 7 => Kind::Fails,
            _ => Kind::Deleted,
        };
        let name = format!("run-{index}");
        let (task_definition, extra) = match kind {
            Kind::Succeeds => (
                "transform",
                format!(
                    r#""overrides": {{"containerOverrides": [{{"name": "app", "environment": [{{"name": "ECSRUN_E2E_RUN_SECONDS", "value": "{}"}}]}}]}},"#,
                    2 + index % 5
                ),
            ),
            Kind::Fails => ("failing", r#""retryPolicy": {"backoffLimit": 1},"#.to_owned()),
            Kind::Deleted => ("sleeper", String::new()),
        };
        let manifest: serde_json::Value = serde_json::from_str(&format!(
            r#"{{"apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskRun", "metadata": {{"name": "{name}"}},
               "spec": {{"cluster": "{cluster}", "taskDefinition": "{task_definition}", "launchType": "FARGATE", {extra}
                 "networkConfiguration": {{"awsvpcConfiguration": {{"subnets": ["{}"], "securityGroups": ["{}"]}}}},
                 "wait": {{"for": "Stopped"}}}}}}"#,
            fixtures.bench_subnet, fixtures.security_group
        ))?;
        let params = PatchParams::apply("ecsrun-faults");
        let patch = Patch::Apply(&manifest);
        let run = retry(|| api.patch(&name, &params, &patch)).await?;
        created.push(Created { name: name.clone(), uid: run.uid().context("uid")?, kind });
        if kind == Kind::Deleted {
            // Some at once (the launch may not be recorded yet), some while the task runs.
            let after = Duration::from_millis(((index / 10) % 4) as u64 * 2500);
            let api = api.clone();
            deletions.push(tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let params = DeleteParams::default();
                retry(|| api.delete(&name, &params)).await.map(|_| ())
            }));
        }
        tokio::time::sleep(every).await;
    }
    for deletion in deletions {
        deletion.await??;
    }
    Ok(created)
}

/// The suite's own API calls ride out the faults it causes (a restarting controller does not touch them,
/// but an API server under load may time out).
async fn retry<T, F, Fut>(call: F) -> anyhow::Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut tries = 0;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(error) if tries < 5 => {
                tries += 1;
                eprintln!("faults: retrying after {error}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

async fn edit_runs(api: Api<EcsTaskRun>, edits: Arc<AtomicU64>) {
    let mut round: u64 = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        round += 1;
        let Ok(list) = api.list(&ListParams::default()).await else { continue };
        let Some(run) = list.items.get((round as usize * 31) % list.items.len().max(1)) else { continue };
        let patch = serde_json::json!({
            "metadata": {"labels": {"edited-by": "another-client"}, "annotations": {"round": round.to_string()}}
        });
        if api.patch(&run.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await.is_ok() {
            edits.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn unconverged(api: &Api<EcsTaskRun>, created: &[Created]) -> anyhow::Result<usize> {
    let list = api.list(&ListParams::default()).await?;
    let present: HashMap<String, &EcsTaskRun> = list.items.iter().map(|run| (run.name_any(), run)).collect();
    Ok(created
        .iter()
        .filter(|run| match present.get(&run.name) {
            None => false,
            Some(_) if run.kind == Kind::Deleted => true,
            Some(object) => !object
                .status
                .as_ref()
                .and_then(|status| status.task.phase)
                .is_some_and(ecsrun::api::Phase::is_terminal),
        })
        .count())
}

/// Every task ECS has for the run (by startedBy, running and stopped): its attempt tag and lastStatus.
async fn tasks_of(ecs: &aws_sdk_ecs::Client, uid: &str, cluster: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut arns = Vec::new();
    for status in [DesiredStatus::Running, DesiredStatus::Stopped] {
        let listed = ecs
            .list_tasks()
            .cluster(cluster)
            .started_by(ecsrun::decide::started_by(uid))
            .desired_status(status)
            .send()
            .await?;
        arns.extend(listed.task_arns().iter().cloned());
    }
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let described = ecs.describe_tasks().cluster(cluster).set_tasks(Some(arns)).include(TaskField::Tags).send().await?;
    Ok(described
        .tasks()
        .iter()
        .map(|task| {
            let attempt = task
                .tags()
                .iter()
                .find(|tag| tag.key() == Some("ecsrun.dev/attempt"))
                .and_then(|tag| tag.value())
                .unwrap_or("untagged")
                .to_owned();
            (attempt, task.last_status().unwrap_or_default().to_owned())
        })
        .collect())
}
