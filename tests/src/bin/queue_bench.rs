//! `hack/queue-bench`: queued runs under Kueue's own manager (docs/queueing-benchmark.md). N runs of half a
//! vCPU, each running a fixed time, all created at once in one LocalQueue whose ClusterQueue has a quota of
//! Q vCPU, against the release controller, the local control plane and moto. Afterwards every task is read
//! back from ECS (moto): from the tasks' own createdAt and stoppedAt it computes the most tasks ECS ever had
//! unstopped at once (never above the quota's slots), and how soon a stopped task's quota went to the next
//! run (the k-th stop paired with the launch that took its slot: p50/p99).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use clap::Parser;
use ecsrun::api::{EcsTaskRun, Phase};
use ecsrun_testbed::bench::percentile;
use ecsrun_testbed::kueue::{Kueue, apply};
use ecsrun_testbed::{Controller, ControllerOptions, LocalStack, ensure_namespace, repo_root};
use futures::StreamExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

const NAMESPACE: &str = "queue-bench";
const CLUSTER: &str = "bench";
/// Each run's task: half a vCPU.
const TASK_MILLICORES: u64 = 500;

#[derive(Parser, Debug)]
#[command(about = "Queued runs under Kueue (docs/queueing-benchmark.md)")]
struct Args {
    /// Runs created at once.
    #[arg(long, default_value_t = 1000)]
    runs: usize,
    /// The ClusterQueue's CPU quota, in vCPU.
    #[arg(long, default_value_t = 10)]
    quota_vcpu: u64,
    /// How long each task runs.
    #[arg(long, default_value_t = 10)]
    run_seconds: u64,
    /// The controller's poll interval (how soon it sees a task stop without task events).
    #[arg(long, default_value = "5s")]
    poll: String,
    /// The controller binary to measure.
    #[arg(long, default_value = "target/release/ecsrun-controller")]
    binary: PathBuf,
    /// The commit the controller binary was built from, for the report.
    #[arg(long, default_value = "")]
    controller_commit: String,
    /// Where queueing-benchmark.json and .md go.
    #[arg(long, default_value = "docs")]
    out: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct Report {
    runs: usize,
    quota_vcpu: u64,
    slots: u64,
    run_seconds: u64,
    poll: String,
    succeeded: usize,
    most_unstopped_at_once: usize,
    quota_reuse_p50_s: f64,
    quota_reuse_p99_s: f64,
    quota_reuse_max_s: f64,
    makespan_s: f64,
    ideal_makespan_s: f64,
    controller_commit: String,
    machine: String,
    command: String,
}

fn run(name: &str, stack: &LocalStack, run_seconds: u64) -> anyhow::Result<EcsTaskRun> {
    let fixtures = &stack.moto.fixtures;
    let yaml = format!(
        r#"
apiVersion: ecsrun.dev/v1alpha1
kind: EcsTaskRun
metadata:
  name: {name}
  labels:
    kueue.x-k8s.io/queue-name: team
spec:
  cluster: {CLUSTER}
  taskDefinition: db-dump
  launchType: FARGATE
  networkConfiguration:
    awsvpcConfiguration:
      subnets: [{subnet}]
      securityGroups: [{group}]
  overrides:
    cpu: "512"
    memory: "1024"
    containerOverrides:
      - name: app
        environment:
          - name: ECSRUN_E2E_RUN_SECONDS
            value: "{run_seconds}"
"#,
        subnet = fixtures.bench_subnet,
        group = fixtures.security_group,
    );
    Ok(serde_yaml_ng::from_str(&yaml)?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = repo_root();
    let binary = root.join(&args.binary);
    ensure!(binary.exists(), "{} does not exist: hack/queue-bench builds it", binary.display());
    let stack = LocalStack::start("queue-bench").await?;
    let client = stack.client.clone();
    let kubeconfig = stack.control_plane.kubeconfig.clone();
    let _kueue = Kueue::start(&stack.work, &kubeconfig, &client).await?;
    ensure_namespace(&client, NAMESPACE).await?;
    let slots = args.quota_vcpu * 1000 / TASK_MILLICORES;
    apply(&client, "ResourceFlavor", None, json!({"metadata": {"name": "fargate"}})).await?;
    apply(
        &client,
        "ClusterQueue",
        None,
        json!({"metadata": {"name": "bench"}, "spec": {
            "namespaceSelector": {},
            "resourceGroups": [{"coveredResources": ["cpu", "memory"], "flavors": [{"name": "fargate", "resources": [
                {"name": "cpu", "nominalQuota": args.quota_vcpu.to_string()},
                {"name": "memory", "nominalQuota": format!("{}Gi", slots * 2)},
            ]}]}],
        }}),
    )
    .await?;
    apply(
        &client,
        "LocalQueue",
        Some(NAMESPACE),
        json!({"metadata": {"name": "team"}, "spec": {"clusterQueue": "bench"}}),
    )
    .await?;
    let mut controller = Controller::spawn(
        ControllerOptions {
            binary,
            name: "queue-bench",
            ecs_endpoint: &stack.moto.endpoint,
            sts_endpoint: &stack.moto.endpoint,
            logs_endpoint: &stack.moto.endpoint,
            region: &stack.moto.fixtures.region,
            namespaces: &[NAMESPACE],
            args: vec!["--kueue".into(), "--default-poll-interval".into(), args.poll.clone()],
            rust_log: "info",
        },
        &stack.work,
        &kubeconfig,
    )?;
    controller.ready().await?;

    let runs: Api<EcsTaskRun> = Api::namespaced(client.clone(), NAMESPACE);
    let started = Instant::now();
    let manifests = (0..args.runs)
        .map(|index| run(&format!("queued-{index:05}"), &stack, args.run_seconds))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let created: Vec<anyhow::Result<EcsTaskRun>> = futures::stream::iter(manifests)
        .map(|run| {
            let runs = runs.clone();
            async move { Ok(runs.create(&PostParams::default(), &run).await?) }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    created.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    eprintln!("queue-bench: {} runs created in {:.1}s", args.runs, started.elapsed().as_secs_f64());

    let ideal = (args.runs as f64 / slots as f64).ceil() * args.run_seconds as f64;
    let deadline = started + Duration::from_secs_f64(ideal * 4.0 + 300.0);
    let finished = loop {
        let list = runs.list(&ListParams::default()).await?;
        let terminal: Vec<&EcsTaskRun> = list
            .items
            .iter()
            .filter(|run| run.status.as_ref().and_then(|s| s.task.phase).is_some_and(Phase::is_terminal))
            .collect();
        if terminal.len() == args.runs {
            break list.items;
        }
        ensure!(Instant::now() < deadline, "only {} of {} runs finished in time", terminal.len(), args.runs);
        eprintln!(
            "queue-bench: {} of {} runs finished after {:.0}s",
            terminal.len(),
            args.runs,
            started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
    };
    let makespan = started.elapsed().as_secs_f64();
    let succeeded =
        finished.iter().filter(|run| run.status.as_ref().and_then(|s| s.task.phase) == Some(Phase::Succeeded)).count();

    // Every task of every attempt, read back from ECS.
    let arns: Vec<String> = finished
        .iter()
        .filter_map(|run| run.status.as_ref())
        .flat_map(|status| {
            status.task.attempts.iter().filter_map(|attempt| attempt.task_arn.clone()).collect::<Vec<_>>()
        })
        .collect();
    let ecs = stack.moto.ecs().await;
    let mut intervals = Vec::new();
    for chunk in arns.chunks(100) {
        let described = ecs.describe_tasks().cluster(CLUSTER).set_tasks(Some(chunk.to_vec())).send().await?;
        for task in described.tasks() {
            let seconds = |t: &aws_sdk_ecs::primitives::DateTime| t.as_secs_f64();
            let created = task.created_at().map(seconds).context("createdAt")?;
            let stopped = task.stopped_at().map(seconds).context("stoppedAt: a task still running")?;
            intervals.push((created, stopped));
        }
    }
    ensure!(intervals.len() >= args.runs, "{} tasks read back for {} runs", intervals.len(), args.runs);
    // The most tasks unstopped at once: a sweep over starts (+1) and stops (-1), stops first at a tie.
    let mut edges: Vec<(f64, i64)> = intervals.iter().flat_map(|(c, s)| [(*c, 1), (*s, -1)]).collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0i64, 0i64);
    for (_, delta) in &edges {
        now += delta;
        most = most.max(now);
    }
    // Quota reuse: the k-th stop freed the slot the (slots + k)-th launch took.
    let mut starts: Vec<f64> = intervals.iter().map(|(c, _)| *c).collect();
    let mut stops: Vec<f64> = intervals.iter().map(|(_, s)| *s).collect();
    starts.sort_by(f64::total_cmp);
    stops.sort_by(f64::total_cmp);
    let reuse: Vec<f64> = stops
        .iter()
        .zip(starts.iter().skip(slots as usize))
        .map(|(stopped, launched)| (launched - stopped).max(0.0))
        .collect();
    let report = Report {
        runs: args.runs,
        quota_vcpu: args.quota_vcpu,
        slots,
        run_seconds: args.run_seconds,
        poll: args.poll.clone(),
        succeeded,
        most_unstopped_at_once: most as usize,
        quota_reuse_p50_s: percentile(&reuse, 0.5),
        quota_reuse_p99_s: percentile(&reuse, 0.99),
        quota_reuse_max_s: reuse.iter().copied().fold(0.0, f64::max),
        makespan_s: makespan,
        ideal_makespan_s: ideal,
        controller_commit: args.controller_commit.clone(),
        machine: format!("{} cores", std::thread::available_parallelism().map_or(0, usize::from)),
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    eprintln!("queue-bench: {report:#?}");
    let out = root.join(&args.out);
    std::fs::write(out.join("queueing-benchmark.json"), serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::write(out.join("queueing-benchmark.md"), markdown(&report))?;
    ensure!(
        report.most_unstopped_at_once as u64 <= slots,
        "ECS had {most} tasks unstopped at once: the quota has {slots}"
    );
    ensure!(succeeded == args.runs, "{succeeded} of {} runs succeeded", args.runs);
    drop(controller);
    Ok(())
}

fn markdown(report: &Report) -> String {
    format!(
        "# Queueing benchmark: queued runs under Kueue\n\n\
         Generated by `hack/queue-bench` (tests/src/bin/queue_bench.rs); figures in queueing-benchmark.json.\n\n\
         {runs} runs of half a vCPU, each running {secs} s, were created at once in one LocalQueue. Its\n\
         ClusterQueue had {quota} vCPU: {slots} tasks at a time. Kueue v0.17.0's own manager admitted them,\n\
         and the release controller ran them against moto with a poll interval of {poll} (no task events).\n\
         Afterwards every task was read back from ECS, with its own createdAt and stoppedAt.\n\n\
         | Figure | Value |\n|---|---|\n\
         | Runs succeeded | {ok} of {runs} |\n\
         | Most tasks ECS had unstopped at once | {most} (quota: {slots}) |\n\
         | Quota reuse: a task's STOPPED to the RunTask that took its slot, p50 | {p50:.1} s |\n\
         | Quota reuse, p99 | {p99:.1} s |\n\
         | Quota reuse, max | {max:.1} s |\n\
         | Makespan (first creation to last run finished) | {makespan:.0} s |\n\
         | Ideal makespan (⌈runs / slots⌉ × run time) | {ideal:.0} s |\n\
         | Controller commit | {commit} |\n\
         | Machine | {machine} |\n\n\
         How a slot is reused: ECS stops the task, and ecsrun sees it within its poll interval (or at\n\
         once with task events). ecsrun then marks the Workload Finished, Kueue admits the next Workload,\n\
         and the watch of Workloads brings that run to its RunTask.\n\
         The poll interval is most of the reuse time here.\n",
        runs = report.runs,
        secs = report.run_seconds,
        quota = report.quota_vcpu,
        slots = report.slots,
        poll = report.poll,
        ok = report.succeeded,
        most = report.most_unstopped_at_once,
        p50 = report.quota_reuse_p50_s,
        p99 = report.quota_reuse_p99_s,
        max = report.quota_reuse_max_s,
        makespan = report.makespan_s,
        ideal = report.ideal_makespan_s,
        commit = report.controller_commit,
        machine = report.machine,
    )
}
