//! `hack/bench`: the fleet benchmark at full size. Brings up the local control plane and moto once, runs
//! every (N, mode) pass against the release controller, and writes docs/benchmarks.json and
//! docs/benchmarks.md after each pass (so a long run that is stopped keeps what it measured).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ecsrun_e2e::bench::{self, Mode, Peers, Plan, Report};
use ecsrun_e2e::{ControlPlane, Moto, install_crds, repo_root};

#[derive(Parser, Debug)]
#[command(about = "The ecsrun fleet benchmark (docs/benchmarks.md)")]
struct Args {
    /// Fleet sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    sizes: Vec<usize>,
    /// Modes, comma-separated: batched (ecsrun) and per-run (batch size 1, no read ceiling).
    #[arg(long, value_delimiter = ',', default_value = "batched,per-run")]
    modes: Vec<String>,
    /// The controller's default poll interval.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    poll: Duration,
    /// Poll intervals in the window where nothing changes.
    #[arg(long, default_value_t = 4)]
    window_intervals: u32,
    /// The controller binary to measure.
    #[arg(long, default_value = "target/release/ecsrun-controller")]
    binary: PathBuf,
    /// Where benchmarks.json and benchmarks.md go.
    #[arg(long, default_value = "docs")]
    out: PathBuf,
    /// Keep the passes already in benchmarks.json (those of other sizes or modes) and add these.
    #[arg(long)]
    append: bool,
    /// The commit the controller binary was built from (hack/bench passes it), for the report.
    #[arg(long, default_value = "")]
    controller_commit: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = repo_root();
    let binary = root.join(&args.binary);
    anyhow::ensure!(binary.exists(), "{} does not exist: hack/bench builds it", binary.display());
    let modes = args
        .modes
        .iter()
        .map(|mode| match mode.as_str() {
            "batched" => Ok(Mode::Batched),
            "per-run" => Ok(Mode::PerRun),
            other => anyhow::bail!("unknown mode {other:?} (batched, per-run)"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let work = root.join(".cache/bench").join(format!("run-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let control_plane = ControlPlane::start(&work)?;
    let moto = Moto::start(&work)?;
    let client = control_plane.client().await?;
    install_crds(&client).await.context("installing crds/")?;
    let peers = Peers { client, kubeconfig: &control_plane.kubeconfig, moto: &moto, work: &work, binary };

    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut reports: Vec<Report> = Vec::new();
    if args.append {
        let existing = std::fs::read_to_string(root.join(&args.out).join("benchmarks.json")).unwrap_or_default();
        reports = serde_json::from_str(&existing).unwrap_or_default();
    }
    for &n in &args.sizes {
        for &mode in &modes {
            let plan = Plan { n, mode, poll: args.poll, window_intervals: args.window_intervals };
            eprintln!("bench: N={n} {} ...", mode.label());
            let mut report = bench::run(&peers, &plan).await.with_context(|| format!("N={n} {}", mode.label()))?;
            report.detail.command = command.clone();
            report.detail.controller_commit = args.controller_commit.clone();
            eprintln!("bench: N={n} {}: {}", mode.label(), serde_json::to_string(&report)?);
            reports.retain(|other| (other.n, other.mode.as_str()) != (n, mode.label()));
            reports.push(report);
            reports.sort_by(|a, b| (a.n, &a.mode).cmp(&(b.n, &b.mode)));
            write(&root.join(&args.out), &reports)?;
        }
    }
    eprintln!("bench: logs in {}", work.display());
    Ok(())
}

fn write(out: &std::path::Path, reports: &[Report]) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("benchmarks.json"), serde_json::to_string_pretty(reports)? + "\n")?;
    std::fs::write(out.join("benchmarks.md"), markdown(reports))?;
    Ok(())
}

fn or_unknown(text: &str) -> &str {
    if text.is_empty() { "an unrecorded commit" } else { text }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name")?.split(':').nth(1).map(str::trim).map(str::to_owned))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| info.lines().find_map(|line| line.strip_prefix("MemTotal:").map(|kb| kb.trim().to_owned())))
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cores} cores ({cpu}), {memory} memory")
}

fn markdown(reports: &[Report]) -> String {
    let mut md = String::from("# Fleet benchmark\n\n");
    md.push_str("Generated by `hack/bench`; the figures below are measured, not typed. How to read them: ");
    md.push_str("[the notes at the end](#how-it-is-measured).\n\n");
    md.push_str(&format!("- Machine: {}\n", machine()));
    md.push_str(&format!("- Date: {}\n", jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC")));
    let mut commands: Vec<String> = reports
        .iter()
        .map(|r| format!("`{}` (controller built from {})", r.detail.command, or_unknown(&r.detail.controller_commit)))
        .collect();
    commands.dedup();
    md.push_str(&format!("- Command{}: {}\n", if commands.len() > 1 { "s" } else { "" }, commands.join("; ")));
    md.push_str(
        "- Peers: upstream kube-apiserver and etcd (hack/controlplane), moto 5.2.5 through hack/moto/launcher.py, ",
    );
    md.push_str("behind tests/src/proxy.rs, which throttles as ECS does (per class: read 20/s burst 100, modify 40/s burst 100, ");
    md.push_str("Fargate launches 20/s burst 100, task definition read 20/s burst 100).\n");
    md.push_str("- Controller: the release build with default flags but the poll interval; `per-run` adds ");
    md.push_str("`--describe-batch-size=1 --ecs-read-ceiling=100000/100000` (what per-task pollers do).\n\n");
    md.push_str("| N | mode | poll | DescribeTasks / run / interval | ECS calls / launch | throttles | all launched | ceiling bound | STOPPED → status p50 / p99 | status writes, unchanged polls | API writes / run | RSS idle / peak | CPU |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in reports {
        md.push_str(&format!(
            "| {} | {} | {:.0}s | {:.4} | {:.3} | {} | {:.1}s | {:.1}s | {:.1}s / {:.1}s | {} | {:.2} | {:.1} / {:.1} MiB | {:.1}s |\n",
            r.n,
            r.mode,
            r.poll_interval_s,
            r.describe_per_run_per_interval,
            r.calls_per_launch,
            r.throttles,
            r.launch_all_s,
            r.launch_bound_s,
            r.detail.stopped_to_status_p50_s,
            r.stopped_to_status_p99_s,
            r.status_patches_unchanged_polls,
            r.api_writes_per_run,
            r.rss_idle_mib,
            r.rss_peak_mib,
            r.detail.cpu_s,
        ));
    }
    md.push_str("\n## Per pass\n\n");
    md.push_str("| N | mode | ECS calls by operation | throttled | peak calls in one second by class | ARNs / DescribeTasks | create → RunTask p50 / p99 | stopped runs final | writes to Running + to Succeeded | deleting running runs: calls beyond StopTask / run | wall |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in reports {
        let d = &r.detail;
        let map = |m: &std::collections::BTreeMap<String, u64>| {
            if m.is_empty() {
                "none".to_string()
            } else {
                m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
            }
        };
        let peaks = d
            .peak_calls_per_s
            .iter()
            .map(|(k, v)| {
                format!(
                    "{} {v}",
                    serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1} | {:.1}s / {:.1}s | {} of {} | {:.2} + {:.2} | {:.3} ({} runs) | {:.0}s |\n",
            r.n,
            r.mode,
            map(&d.ecs_calls),
            map(&d.throttled_calls),
            peaks,
            d.mean_arns_per_describe,
            d.create_to_run_task_p50_s,
            d.create_to_run_task_p99_s,
            d.stopped_runs_seen_final,
            r.n / 2 + r.n % 2,
            d.api_writes_to_running_per_run,
            d.api_writes_to_succeeded_per_run,
            d.delete_calls_beyond_stop_per_run,
            d.deleted_running_runs,
            d.wall_s,
        ));
    }
    md.push_str(NOTES);
    md
}

const NOTES: &str = "
## How it is measured

One pass per (N, mode), each with a fresh controller watching a namespace of its own (tests/src/bench.rs):
1. The controller starts; its idle RSS is read 2 s after it is ready.
2. N runs are created at once (32 requests in flight). Their tasks stay RUNNING (the launcher's hold). Each
   RunTask is timed from its run's creation as the proxy sees it pass. *all launched* is the first creation
   to the last RunTask; *ceiling bound* is (N − launch burst) / launch rate of the controller's default
   ceiling (15/s, burst 30).
3. Once every run follows its task, a window of 4 poll intervals counts DescribeTasks (*per run per
   interval* = calls / (N × 4)) and status writes (*unchanged polls*: nothing changes in ECS then).
4. The even runs' tasks are stopped through moto's own StopTask (not through the proxy); *STOPPED →
   status* is from that call's return to the bench's watch seeing the run final.
5. Every run is deleted: the odd ones still run, so their deletion sends StopTask; the calls beyond it are
   counted. *ECS calls / launch* counts RunTask, ListTasks and DescribeTaskDefinition of the whole pass
   per run.

*API writes / run* is create → Running (finalizer, launch intent, launched status, Launched Event) plus
Running → Succeeded (final status, Succeeded Event), from the controller's own
`ecsrun_kube_requests_total`. *throttles* are ThrottlingExceptions the proxy answered. RSS is sampled every
0.5 s; CPU is the controller's user + system time for the pass.
";
