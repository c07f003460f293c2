//! The fleet benchmark: N runs against the real control plane and moto, behind the ECS proxy that
//! throttles as ECS does and counts every call.
//!
//! One pass for (N, mode):
//! 1. a fresh controller (its own namespace) starts; its idle RSS is read;
//! 2. N runs are created at once; their tasks stay RUNNING (the launcher's hold): every RunTask is timed
//!    from its run's creation (the proxy sees it pass);
//! 3. once every run follows its task, a window of `window_intervals` poll intervals counts DescribeTasks
//!    and status writes while nothing changes;
//! 4. the even runs' tasks are stopped in ECS (moto's own StopTask, not through the proxy), and the time
//!    from each stop to its run's final status is measured (they use `successPolicy: TaskStopped`, so
//!    they succeed);
//! 5. every run is deleted: the odd ones still run, so their deletion stops a task; the calls beyond
//!    StopTask are counted.
//!
//! The controller's RSS is sampled throughout; Kubernetes writes come from its own
//! `ecsrun_kube_requests_total`, so other clients of the API server do not count.
//!
//! In `events` mode the controller follows the bench cluster's task state change events (moto's launcher
//! puts them into moto's EventBridge, a rule routes them to the bench queue), and the stopped runs' events
//! are spoiled as a real feed may be: 10 % of the runs get every event twice, 10 % their RUNNING event after
//! STOPPED, 1 % lose their STOPPED event, which only the sweep can catch.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use ecsrun::api::EcsTaskRun;
use ecsrun::ecs::limit::Ceilings;
use futures::{StreamExt, TryStreamExt};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;

use crate::proxy::{Class, EcsProxy, ecs_buckets};

mod measure;
use crate::{Controller, ControllerOptions, Moto};
pub use measure::percentile;
use measure::{cpu_seconds, histogram_quantile, kube_writes, outcomes_of, rss_mib};

/// How the controller describes tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// ecsrun's defaults: DescribeTasks of up to 100 tasks, under the rate ceiling.
    Batched,
    /// What per-task pollers do: one DescribeTasks per task per interval and no client-side ceiling on
    /// reads (ECS's own throttling, enforced by the proxy, is what holds them back).
    PerRun,
    /// ecsrun with task state change events from SQS: DescribeTasks only as the sweep.
    Events,
}

/// The queue the bench cluster's task events go to (hack/moto/launcher.py).
pub const BENCH_EVENT_QUEUE: &str = "ecsrun-bench-events";
/// The controller's default sweep: a task is described after this long without an event.
pub const EVENTS_SWEEP: Duration = Duration::from_secs(300);

/// How a run's task events are spoiled in `events` mode (the launcher's ECSRUN_E2E_EVENTS), by its index:
/// only stopped (even) runs, where a spoiled event can hurt.
pub fn spoilers(index: usize) -> &'static str {
    if index % 100 == 4 {
        "drop-stopped"
    } else if index % 10 == 6 {
        "duplicate"
    } else if index % 10 == 2 {
        "reorder"
    } else {
        ""
    }
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Batched => "batched",
            Mode::PerRun => "per-run",
            Mode::Events => "events",
        }
    }

    fn controller_args(self, moto: &Moto) -> anyhow::Result<Vec<String>> {
        Ok(match self {
            Mode::Batched => Vec::new(),
            Mode::PerRun => vec!["--describe-batch-size=1".into(), "--ecs-read-ceiling=100000/100000".into()],
            Mode::Events => {
                let queue = moto.fixtures.event_queues.get(BENCH_EVENT_QUEUE).context("no bench event queue")?;
                vec![format!("--ecs-events-queue-url={queue}"), format!("--sqs-endpoint-url={}", moto.endpoint)]
            }
        })
    }
}

/// One benchmark pass.
#[derive(Clone, Debug)]
pub struct Plan {
    pub n: usize,
    pub mode: Mode,
    pub poll: Duration,
    pub window_intervals: u32,
}

/// What a pass needs from its surroundings.
pub struct Peers<'a> {
    pub client: kube::Client,
    pub kubeconfig: &'a Path,
    pub moto: &'a Moto,
    pub work: &'a Path,
    /// The controller binary to measure (hack/bench: the release build).
    pub binary: PathBuf,
    /// kube-apiserver's pid, when the bench started it: its CPU during the pass.
    pub apiserver_pid: Option<u32>,
}

/// The figures of one pass; the first keys are the ones docs/benchmarks.json promises.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub n: usize,
    pub mode: String,
    pub poll_interval_s: f64,
    pub describe_per_run_per_interval: f64,
    pub calls_per_launch: f64,
    pub throttles: u64,
    pub launch_all_s: f64,
    pub launch_bound_s: f64,
    pub stopped_to_status_p99_s: f64,
    pub status_patches_unchanged_polls: u64,
    pub api_writes_per_run: f64,
    pub rss_peak_mib: f64,
    pub rss_idle_mib: f64,
    pub ecs_endpoint: String,
    pub detail: Detail,
}

/// Everything else the Markdown report shows.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Detail {
    /// The command that ran this pass, and the commit its controller binary was built from.
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub controller_commit: String,
    pub ecs_calls: BTreeMap<String, u64>,
    pub throttled_calls: BTreeMap<String, u64>,
    pub peak_calls_per_s: BTreeMap<Class, u64>,
    /// Over the whole pass: launches, stops and deletions describe partial batches by nature.
    pub mean_arns_per_describe: f64,
    /// In the steady window, where the tracker's batching is what is measured.
    #[serde(default)]
    pub window_arns_per_describe: f64,
    pub create_to_run_task_p50_s: f64,
    pub create_to_run_task_p99_s: f64,
    pub stopped_to_status_p50_s: f64,
    pub stopped_runs_seen_final: usize,
    pub api_writes_to_running_per_run: f64,
    pub api_writes_to_succeeded_per_run: f64,
    pub deleted_running_runs: usize,
    pub delete_calls_beyond_stop_per_run: f64,
    pub delete_calls: BTreeMap<String, u64>,
    pub cpu_s: f64,
    pub wall_s: f64,
    /// kube-apiserver's CPU time during the pass (user + system), when the bench started it.
    #[serde(default)]
    pub apiserver_cpu_s: Option<f64>,
    /// Stopped runs whose final status is not Succeeded, and runs seen final and then not.
    #[serde(default)]
    pub wrong_statuses: usize,
    #[serde(default)]
    pub regressed_statuses: usize,
    /// Events mode: stopped runs whose STOPPED event was dropped, and the longest any took to be final.
    #[serde(default)]
    pub dropped_stopped_events: usize,
    #[serde(default)]
    pub dropped_caught_max_s: Option<f64>,
    /// Events mode: the controller's `ecsrun_task_events_total` by outcome.
    #[serde(default)]
    pub task_events: BTreeMap<String, u64>,
    /// Events mode: from ECS's change of a task to its event applied, the p99 as the controller's
    /// histogram bounds it (the bucket's upper bound): the queue's share of STOPPED → status.
    #[serde(default)]
    pub event_delay_p99_s: Option<f64>,
}

/// When the bench saw each run do what.
#[derive(Default)]
struct Seen {
    launched: HashMap<String, Instant>,
    finished: HashMap<String, Instant>,
    /// The phase each run was first seen final in.
    outcomes: HashMap<String, ecsrun::api::Phase>,
    /// Runs seen final, then not: a status that went back.
    regressed: usize,
    gone: usize,
}

/// Runs one pass and returns its figures.
pub async fn run(peers: &Peers<'_>, plan: &Plan) -> anyhow::Result<Report> {
    let started = Instant::now();
    let namespace = format!("bench-{}-{}", plan.n, plan.mode.label());
    crate::ensure_namespace(&peers.client, &namespace).await?;
    let api: Api<EcsTaskRun> = Api::namespaced(peers.client.clone(), &namespace);
    ensure!(api.list(&ListParams::default().limit(1)).await?.items.is_empty(), "{namespace} is not empty");

    let proxy = EcsProxy::start(&peers.moto.endpoint, ecs_buckets()).await?;
    if plan.mode == Mode::Events {
        // Events of earlier passes' tasks are nobody's now.
        peers.moto.purge_event_queue(BENCH_EVENT_QUEUE).await?;
    }
    let apiserver_cpu_before = peers.apiserver_pid.map(cpu_seconds).transpose()?;
    let mut args = vec![format!("--default-poll-interval={}s", plan.poll.as_secs())];
    args.extend(plan.mode.controller_args(peers.moto)?);
    let name = format!("controller-{namespace}");
    let mut controller = Controller::spawn(
        ControllerOptions {
            binary: peers.binary.clone(),
            name: &name,
            ecs_endpoint: &proxy.endpoint,
            sts_endpoint: &peers.moto.endpoint,
            logs_endpoint: &peers.moto.endpoint,
            region: &peers.moto.fixtures.region,
            namespaces: &[&namespace],
            args,
            rust_log: "info",
        },
        peers.work,
        peers.kubeconfig,
    )?;
    controller.ready().await?;
    let pid = controller.process.pid();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_mib(pid)?;
    let rss_peak = Arc::new(Mutex::new(rss_idle));
    let sampler = tokio::spawn({
        let rss_peak = rss_peak.clone();
        async move {
            while let Ok(rss) = rss_mib(pid) {
                {
                    let mut peak = rss_peak.lock().unwrap_or_else(PoisonError::into_inner);
                    *peak = peak.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watch = tokio::spawn(watch_runs(api.clone(), seen.clone()));

    // 2. Create N runs at once.
    let created = create_runs(peers, &api, plan.n, plan.mode).await?;
    let t0 = created.values().map(|(at, _)| *at).min().context("no run created")?;
    let launch_deadline = Duration::from_secs(120 + 3 * plan.n as u64 / 10);
    wait_for(&seen, launch_deadline, "every run launched", |seen| seen.launched.len() >= plan.n).await?;
    let mut to_run_task = Vec::new();
    let mut last_run_task = t0;
    for (at, uid) in created.values() {
        let sent = proxy
            .first_run_task(&ecsrun::decide::started_by(uid))
            .with_context(|| format!("no RunTask passed the proxy for run {uid}"))?;
        to_run_task.push(sent.saturating_duration_since(*at).as_secs_f64());
        last_run_task = last_run_task.max(sent);
    }
    let launch_all_s = last_run_task.duration_since(t0).as_secs_f64();
    let launch = Ceilings::default().launch;
    let launch_bound_s = plan.n.saturating_sub(launch.burst.get() as usize) as f64 / f64::from(launch.per_second.get());

    // 3. The steady window: everything runs, nothing changes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_window = (proxy.counts(), kube_writes(&controller).await?);
    let window = plan.poll * plan.window_intervals;
    tokio::time::sleep(window).await;
    let after_window = (proxy.counts(), kube_writes(&controller).await?);
    let describes = after_window.0.calls("DescribeTasks") - before_window.0.calls("DescribeTasks");
    let describe_per_run_per_interval = describes as f64 / (plan.n as f64 * f64::from(plan.window_intervals));
    let window_arns_per_describe =
        (after_window.0.describe_arns - before_window.0.describe_arns) as f64 / describes.max(1) as f64;
    let status_patches_unchanged_polls = after_window.1.status - before_window.1.status;
    let launch_counts = &after_window.0;
    let calls_per_launch =
        ["RunTask", "ListTasks", "DescribeTaskDefinition"].iter().map(|op| launch_counts.calls(op)).sum::<u64>() as f64
            / plan.n as f64;
    let writes_to_running = after_window.1.total as f64 / plan.n as f64;

    // 4. Stop the even runs' tasks in ECS and time how long until their runs say so.
    let even: Vec<String> = created.keys().filter(|name| run_index(name).is_multiple_of(2)).cloned().collect();
    let stopped_at = stop_tasks(peers, &api, &even).await?;
    let mut stop_deadline = Duration::from_secs(120) + plan.poll * 4 + Duration::from_secs(plan.n as u64 / 20);
    if plan.mode == Mode::Events {
        // A STOPPED event dropped is caught by the sweep, up to its interval after the task's last look.
        stop_deadline = stop_deadline.max(EVENTS_SWEEP + Duration::from_secs(120));
    }
    let all_final = wait_for(&seen, stop_deadline, "every stopped run final", |seen| {
        even.iter().all(|name| seen.finished.contains_key(name))
    })
    .await;
    let dropped = |name: &String| plan.mode == Mode::Events && spoilers(run_index(name)) == "drop-stopped";
    let (stop_latencies, dropped_latencies, stopped_runs_seen_final, wrong_statuses) = {
        let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        let latency = |name: &String| {
            let finished = seen.finished.get(name)?;
            Some(finished.saturating_duration_since(*stopped_at.get(name)?).as_secs_f64())
        };
        // STOPPED → status is measured where an event told it; a dropped one is the sweep's (apart).
        let latencies: Vec<f64> = even.iter().filter(|name| !dropped(name)).filter_map(latency).collect();
        let dropped_latencies: Vec<f64> = even.iter().filter(|name| dropped(name)).filter_map(latency).collect();
        let count = latencies.len() + dropped_latencies.len();
        let wrong = even
            .iter()
            .filter(|name| seen.outcomes.get(*name).is_some_and(|phase| *phase != ecsrun::api::Phase::Succeeded))
            .count();
        (latencies, dropped_latencies, count, wrong)
    };
    if let Err(error) = all_final {
        // Reported, not fatal: per-run polling under ECS's throttle may not keep up, which is the point.
        eprintln!("bench {namespace}: {error:#}; {stopped_runs_seen_final}/{} seen final", even.len());
    }
    let after_stops = (proxy.counts(), kube_writes(&controller).await?);
    let writes_to_succeeded = (after_stops.1.total - after_window.1.total) as f64 / even.len().max(1) as f64;

    // 5. Delete every run (one request each, as GitOps pruning does; one DeleteCollection of 10,000
    // outlives the API server's request timeout); the odd ones still run.
    let deleted_running_runs = plan.n - even.len();
    let deletes = created.keys().cloned().map(|name| {
        let api = api.clone();
        async move {
            let params = DeleteParams::default();
            retried(|| api.delete(&name, &params)).await.map(|_| ())
        }
    });
    futures::stream::iter(deletes).buffer_unordered(32).try_collect::<Vec<()>>().await?;
    let delete_deadline = Duration::from_secs(180 + plan.n as u64 / 10);
    wait_for(&seen, delete_deadline, "every run deleted", |seen| seen.gone >= plan.n).await?;
    let after_delete = proxy.counts();
    let delete_calls = after_delete.since(&after_stops.0);
    let beyond_stop = delete_calls.iter().filter(|(op, _)| *op != "StopTask").map(|(_, n)| n).sum::<u64>();
    let cpu_s = cpu_seconds(pid)?;
    let task_events = outcomes_of(&controller, "ecsrun_task_events_total").await?;
    let event_delay_p99_s = histogram_quantile(&controller, "ecsrun_task_event_delay_seconds", 0.99).await?;
    let apiserver_cpu_s = match (peers.apiserver_pid, apiserver_cpu_before) {
        (Some(apiserver), Some(before)) => Some(cpu_seconds(apiserver)? - before),
        _ => None,
    };
    let regressed_statuses = seen.lock().unwrap_or_else(PoisonError::into_inner).regressed;
    watch.abort();
    sampler.abort();
    controller.process.kill();
    let rss_peak_mib = *rss_peak.lock().unwrap_or_else(PoisonError::into_inner);

    let counts = proxy.counts();
    let forwarded_describes =
        counts.calls("DescribeTasks") - counts.throttled.get("DescribeTasks").copied().unwrap_or(0);
    Ok(Report {
        n: plan.n,
        mode: plan.mode.label().into(),
        poll_interval_s: plan.poll.as_secs_f64(),
        describe_per_run_per_interval,
        calls_per_launch,
        throttles: counts.total_throttled(),
        launch_all_s,
        launch_bound_s,
        stopped_to_status_p99_s: percentile(&stop_latencies, 0.99),
        status_patches_unchanged_polls,
        api_writes_per_run: writes_to_running + writes_to_succeeded,
        rss_peak_mib,
        rss_idle_mib: rss_idle,
        ecs_endpoint: "moto".into(),
        detail: Detail {
            command: String::new(),
            controller_commit: String::new(),
            ecs_calls: counts.calls.clone(),
            throttled_calls: counts.throttled.clone(),
            peak_calls_per_s: [Class::Read, Class::Modify, Class::Launch, Class::TaskDefinitionRead]
                .into_iter()
                .map(|class| (class, counts.peak_per_second(class)))
                .collect(),
            mean_arns_per_describe: counts.describe_arns as f64 / forwarded_describes.max(1) as f64,
            window_arns_per_describe,
            create_to_run_task_p50_s: percentile(&to_run_task, 0.5),
            create_to_run_task_p99_s: percentile(&to_run_task, 0.99),
            stopped_to_status_p50_s: percentile(&stop_latencies, 0.5),
            stopped_runs_seen_final,
            api_writes_to_running_per_run: writes_to_running,
            api_writes_to_succeeded_per_run: writes_to_succeeded,
            deleted_running_runs,
            delete_calls_beyond_stop_per_run: beyond_stop as f64 / deleted_running_runs.max(1) as f64,
            delete_calls,
            cpu_s,
            wall_s: started.elapsed().as_secs_f64(),
            apiserver_cpu_s,
            wrong_statuses,
            regressed_statuses,
            dropped_stopped_events: even.iter().filter(|name| dropped(name)).count(),
            dropped_caught_max_s: dropped_latencies.iter().copied().reduce(f64::max),
            task_events,
            event_delay_p99_s,
        },
    })
}

/// The bench's own calls (to moto and the API server, both busy at fleet size) get a few tries.
async fn retried<T, E, F, Fut>(mut call: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut tries = 0;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(error) if tries < 4 => {
                tries += 1;
                eprintln!("bench: retrying after {error}");
                tokio::time::sleep(Duration::from_secs(tries)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

fn run_index(name: &str) -> usize {
    name.rsplit('-').next().and_then(|index| index.parse().ok()).unwrap_or(0)
}

/// Creates `bench-00000` … with at most 32 requests in flight; returns name → (created at, uid).
async fn create_runs(
    peers: &Peers<'_>,
    api: &Api<EcsTaskRun>,
    n: usize,
    mode: Mode,
) -> anyhow::Result<BTreeMap<String, (Instant, String)>> {
    let fixtures = &peers.moto.fixtures;
    let manifests = (0..n).map(|index| {
        let name = format!("bench-{index:05}");
        let spoiled = if mode == Mode::Events { spoilers(index) } else { "" };
        let run: Result<EcsTaskRun, _> = serde_json::from_value(serde_json::json!({
            "apiVersion": "ecsrun.dev/v1alpha1",
            "kind": "EcsTaskRun",
            "metadata": {"name": name},
            "spec": {
                "cluster": "bench",
                "taskDefinition": "transform",
                "launchType": "FARGATE",
                "networkConfiguration": {"awsvpcConfiguration": {
                    "subnets": [fixtures.bench_subnet], "securityGroups": [fixtures.security_group]}},
                "overrides": {"containerOverrides": [{"name": "app", "environment": [
                    {"name": "ECSRUN_E2E_HOLD", "value": "running"},
                    {"name": "ECSRUN_E2E_EVENTS", "value": spoiled}]}]},
                "successPolicy": "TaskStopped",
            }
        }));
        async move {
            let created = api.create(&PostParams::default(), &run?).await?;
            anyhow::Ok((name, (Instant::now(), created.uid().context("created run without a uid")?)))
        }
    });
    futures::stream::iter(manifests).buffer_unordered(32).try_collect().await
}

/// Stops the runs' tasks through moto directly; returns name → when StopTask returned.
async fn stop_tasks(
    peers: &Peers<'_>,
    api: &Api<EcsTaskRun>,
    names: &[String],
) -> anyhow::Result<HashMap<String, Instant>> {
    let ecs = peers.moto.ecs().await;
    let stops = names.iter().cloned().map(|name| {
        let (ecs, api) = (ecs.clone(), api.clone());
        async move {
            let run = retried(|| api.get(&name)).await?;
            let arn =
                run.status.and_then(|status| status.task.task_arn).with_context(|| format!("{name} has no task"))?;
            retried(|| ecs.stop_task().cluster("bench").task(&arn).reason("bench: the task finished").send()).await?;
            anyhow::Ok((name, Instant::now()))
        }
    });
    futures::stream::iter(stops).buffer_unordered(16).try_collect().await
}

async fn watch_runs(api: Api<EcsTaskRun>, seen: Arc<Mutex<Seen>>) {
    let mut events = watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        let now = Instant::now();
        let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            Ok(watcher::Event::Apply(run) | watcher::Event::InitApply(run)) => {
                let status = run.status.as_ref();
                if status.and_then(|status| status.task.task_arn.as_ref()).is_some() {
                    seen.launched.entry(run.name_any()).or_insert(now);
                }
                let phase = status.and_then(|status| status.task.phase);
                match phase {
                    Some(phase) if phase.is_terminal() => {
                        seen.finished.entry(run.name_any()).or_insert(now);
                        seen.outcomes.entry(run.name_any()).or_insert(phase);
                    }
                    // Seen final before, not now (a deletion keeps the phase): a status that went back.
                    _ if seen.outcomes.contains_key(&run.name_any()) => seen.regressed += 1,
                    _ => {}
                }
            }
            Ok(watcher::Event::Delete(_)) => seen.gone += 1,
            Ok(_) => {}
            Err(error) => eprintln!("bench: watch: {error}"),
        }
    }
}

async fn wait_for(
    seen: &Mutex<Seen>,
    within: Duration,
    what: &str,
    done: impl Fn(&Seen) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if done(&seen.lock().unwrap_or_else(PoisonError::into_inner)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            bail!(
                "not {what} within {within:?} (launched {}, final {}, gone {})",
                seen.launched.len(),
                seen.finished.len(),
                seen.gone
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn spoilers_take_the_shares_the_report_promises_and_only_stopped_runs() {
        let count = |what: &str| (0..1000).filter(|i| spoilers(*i) == what).count();
        assert_eq!((count("duplicate"), count("reorder"), count("drop-stopped")), (100, 100, 10));
        assert!((0..1000).filter(|i| !spoilers(*i).is_empty()).all(|i| i % 2 == 0), "even runs are the stopped ones");
    }

    #[test]
    fn runs_are_indexed_by_their_name() {
        assert_eq!(run_index("bench-00042"), 42);
    }
}
