//! `hack/bench`: the fleet benchmark at full size. Brings up the local control plane and moto once, runs
//! every (N, mode) pass against the release controller, and writes docs/benchmarks.json and
//! docs/benchmarks.md after each pass (so a long run that is stopped keeps what it measured).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ecsrun_testbed::bench::{self, Mode, Plan, Report};
use ecsrun_testbed::{LocalStack, repo_root};

#[derive(Parser, Debug)]
#[command(about = "The ecsrun fleet benchmark (docs/benchmarks.md)")]
struct Args {
    /// Fleet sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    sizes: Vec<usize>,
    /// Modes, comma-separated: batched (ecsrun), per-run (batch size 1, no read ceiling) and events (task
    /// state change events from SQS, DescribeTasks only as the sweep).
    #[arg(long, value_delimiter = ',', default_value = "batched,per-run,events")]
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
    /// Only render benchmarks.md again from benchmarks.json; run nothing.
    #[arg(long)]
    report_only: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = repo_root();
    if args.report_only {
        let existing = std::fs::read_to_string(root.join(&args.out).join("benchmarks.json"))?;
        let reports: Vec<Report> = serde_json::from_str(&existing)?;
        return write(&root.join(&args.out), &reports);
    }
    let binary = root.join(&args.binary);
    anyhow::ensure!(binary.exists(), "{} does not exist: hack/bench builds it", binary.display());
    let modes = args
        .modes
        .iter()
        .map(|mode| match mode.as_str() {
            "batched" => Ok(Mode::Batched),
            "per-run" => Ok(Mode::PerRun),
            "events" => Ok(Mode::Events),
            other => anyhow::bail!("unknown mode {other:?} (batched, per-run, events)"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let stack = LocalStack::start("bench").await?;
    let peers = stack.peers(binary);

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
    eprintln!("bench: logs in {}", stack.work.display());
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
    md.push_str(
        "`--describe-batch-size=1 --ecs-read-ceiling=100000/100000` (what per-task pollers do); `events` adds ",
    );
    md.push_str("`--ecs-events-queue-url` (moto's SQS, fed by moto's EventBridge from the launcher's task events; sweep 5 min), ");
    md.push_str("with 10 % of the runs' events duplicated, 10 % reordered and 1 % of STOPPED events dropped.\n\n");
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
    md.push_str(&targets(reports));
    md.push_str("\n## Per pass\n\n");
    md.push_str("| N | mode | ECS calls by operation | throttled | peak calls in one second by class | ARNs / DescribeTasks | create → RunTask p50 / p99 | stopped runs final | wrong / regressed statuses | writes to Running + to Succeeded | deleting running runs: calls beyond StopTask / run | kube-apiserver CPU | task events | dropped STOPPED: caught after at most | wall |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in reports {
        let d = &r.detail;
        let map = |m: &std::collections::BTreeMap<String, u64>| {
            if m.is_empty() {
                "none".to_string()
            } else {
                // A request without X-Amz-Target names no ECS operation.
                m.iter()
                    .map(|(k, v)| format!("{} {v}", if k.is_empty() { "(no X-Amz-Target)" } else { k }))
                    .collect::<Vec<_>>()
                    .join(", ")
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
        let apiserver = d.apiserver_cpu_s.map_or("not measured".to_string(), |cpu| format!("{cpu:.0}s"));
        let (events, dropped) = if r.mode == "events" {
            let caught = d.dropped_caught_max_s.map_or("none caught".to_string(), |s| format!("{s:.0}s"));
            let delay = d.event_delay_p99_s.map_or(String::new(), |s| format!("; ECS change → applied p99 ≤ {s}s"));
            (format!("{}{delay}", map(&d.task_events)), format!("{caught} ({} dropped)", d.dropped_stopped_events))
        } else {
            ("—".to_string(), "—".to_string())
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1} | {:.1}s / {:.1}s | {} of {} | {} / {} | {:.2} + {:.2} | {:.3} ({} runs) | {} | {} | {} | {:.0}s |\n",
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
            d.wrong_statuses,
            d.regressed_statuses,
            d.api_writes_to_running_per_run,
            d.api_writes_to_succeeded_per_run,
            d.delete_calls_beyond_stop_per_run,
            d.deleted_running_runs,
            apiserver,
            events,
            dropped,
            d.wall_s,
        ));
    }
    md.push_str(NOTES);
    md
}

/// The targets of the fleet-scale work, each next to what was measured (batched mode unless it says).
fn targets(reports: &[Report]) -> String {
    let pass = |n: usize, mode: &str| reports.iter().find(|r| r.n == n && r.mode == mode);
    let batched: Vec<&Report> = reports.iter().filter(|r| r.mode == "batched").collect();
    let mut rows: Vec<(String, String, Option<bool>)> = Vec::new();
    let mut row = |target: &str, measured: String, met: Option<bool>| rows.push((target.into(), measured, met));
    if let Some(r) = pass(10_000, "batched") {
        let value = r.describe_per_run_per_interval;
        row(
            "DescribeTasks per active run per interval ≤ 0.011 at N = 10,000",
            format!("{value:.4}"),
            Some(value <= 0.011),
        );
    }
    for n in [100, 1_000, 10_000] {
        if let (Some(b), Some(p)) = (pass(n, "batched"), pass(n, "per-run")) {
            let ratio = p.describe_per_run_per_interval / b.describe_per_run_per_interval;
            row(
                &format!("≥ 90× fewer DescribeTasks than per-run polling, N = {n}"),
                format!("{ratio:.0}×"),
                Some(ratio >= 90.0),
            );
        }
    }
    if !batched.is_empty() {
        let throttles: u64 = batched.iter().map(|r| r.throttles).sum();
        row("ThrottlingExceptions with default settings: 0 at every N", throttles.to_string(), Some(throttles == 0));
        let ceilings = ecsrun::ecs::limit::Ceilings::default();
        let bound = |c: ecsrun::ecs::limit::Ceiling| u64::from(c.burst.get() + c.per_second.get());
        let within = batched.iter().all(|r| {
            r.detail.peak_calls_per_s.iter().all(|(class, peak)| match class {
                ecsrun_testbed::proxy::Class::Read => *peak <= bound(ceilings.read),
                ecsrun_testbed::proxy::Class::Modify => *peak <= bound(ceilings.modify),
                ecsrun_testbed::proxy::Class::Launch => *peak <= bound(ceilings.launch),
                ecsrun_testbed::proxy::Class::TaskDefinitionRead => *peak <= bound(ceilings.task_definition_read),
            })
        });
        let peaks =
            batched.iter().map(|r| r.detail.peak_calls_per_s.values().max().copied().unwrap_or(0)).max().unwrap_or(0);
        row(
            "Peak calls per class within the ceiling (a bucket passes at most burst + rate in one second)",
            format!("highest one-second count {peaks}"),
            Some(within),
        );
    }
    if let Some(r) = pass(1_000, "batched") {
        row(
            "1,000 runs in a burst: every RunTask within the ceiling's bound + 5 s",
            format!("{:.1}s (bound {:.1}s)", r.launch_all_s, r.launch_bound_s),
            Some(r.launch_all_s <= r.launch_bound_s + 5.0),
        );
        row("ECS calls per launched run ≤ 1.1", format!("{:.3}", r.calls_per_launch), Some(r.calls_per_launch <= 1.1));
    }
    if let Some(worst) = batched
        .iter()
        .max_by(|a, b| a.detail.delete_calls_beyond_stop_per_run.total_cmp(&b.detail.delete_calls_beyond_stop_per_run))
    {
        let beyond = worst.detail.delete_calls_beyond_stop_per_run;
        let largest = batched.iter().map(|r| r.detail.deleted_running_runs).max().unwrap_or(0);
        row(
            "Deleting running runs: ≤ 1.1 ECS calls per run beyond its StopTask",
            format!("{beyond:.3} at worst (up to {largest} running runs deleted at once)"),
            Some(beyond <= 1.1),
        );
    }
    if !batched.is_empty() {
        let worst = batched.iter().map(|r| r.stopped_to_status_p99_s - r.poll_interval_s).fold(f64::MIN, f64::max);
        row(
            "STOPPED → status p99 ≤ poll interval + 2 s",
            format!("poll interval + {worst:.1}s at worst"),
            Some(worst <= 2.0),
        );
        let unchanged: u64 = batched.iter().map(|r| r.status_patches_unchanged_polls).sum();
        row("Status writes for polls that saw no change: 0", unchanged.to_string(), Some(unchanged == 0));
        let writes = batched.iter().map(|r| r.api_writes_per_run).fold(0.0, f64::max);
        row("API server writes per run, create → Succeeded ≤ 6", format!("{writes:.2}"), Some(writes <= 6.0));
        let idle = batched.iter().map(|r| r.rss_idle_mib).fold(0.0, f64::max);
        row("Controller RSS idle < 32 MiB", format!("{idle:.1} MiB"), Some(idle < 32.0));
    }
    if let Some(r) = pass(10_000, "batched") {
        row(
            "Controller RSS < 128 MiB with 10,000 active runs",
            format!("{:.1} MiB peak", r.rss_peak_mib),
            Some(r.rss_peak_mib < 128.0),
        );
    }
    for r in reports.iter().filter(|r| r.mode == "events") {
        let n = r.n;
        row(
            &format!("events, N = {n}: STOPPED → status p99 ≤ 2 s"),
            format!("{:.2}s (p50 {:.2}s)", r.stopped_to_status_p99_s, r.detail.stopped_to_status_p50_s),
            Some(r.stopped_to_status_p99_s <= 2.0),
        );
        row(
            &format!("events, N = {n}: DescribeTasks per run per interval ≤ 0.001 (the sweep only)"),
            format!("{:.5}", r.describe_per_run_per_interval),
            Some(r.describe_per_run_per_interval <= 0.001),
        );
        let wrong = r.detail.wrong_statuses + r.detail.regressed_statuses;
        row(
            &format!("events, N = {n}, 10 % duplicated, 10 % reordered, 1 % dropped: 0 wrong or regressed statuses"),
            format!("{} wrong, {} regressed", r.detail.wrong_statuses, r.detail.regressed_statuses),
            Some(wrong == 0 && r.detail.stopped_runs_seen_final == r.n / 2 + r.n % 2),
        );
        let sweep = ecsrun_testbed::bench::EVENTS_SWEEP.as_secs_f64();
        let caught = r.detail.dropped_caught_max_s;
        row(
            &format!("events, N = {n}: every dropped STOPPED caught within one sweep interval ({sweep:.0} s)"),
            caught.map_or(format!("none of {} caught", r.detail.dropped_stopped_events), |s| {
                format!("{s:.0}s at most, {} dropped", r.detail.dropped_stopped_events)
            }),
            Some(r.detail.dropped_stopped_events == 0 || caught.is_some_and(|s| s <= sweep + 5.0)),
        );
    }
    if let Some(r) = pass(10_000, "events") {
        row(
            "Controller RSS < 96 MiB with 10,000 active runs (events)",
            format!("{:.1} MiB peak", r.rss_peak_mib),
            Some(r.rss_peak_mib < 96.0),
        );
    }
    let mut md = String::from("\n## Targets\n\n| Target | Measured | Met |\n|---|---|---|\n");
    for (target, measured, met) in rows {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        md.push_str(&format!("| {target} | {measured} | {met} |\n"));
    }
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

In `events` mode, *STOPPED → status* counts the stopped runs whose STOPPED event was delivered (late,
twice or after their RUNNING event included); the 1 % whose STOPPED event was dropped are caught by the
sweep and reported apart. *wrong* counts stopped runs not Succeeded, *regressed* runs seen final and then
not. *kube-apiserver CPU* is its user + system time over the pass.

*API writes / run* is create → Running (finalizer, launch intent, launched status, Launched Event) plus
Running → Succeeded (final status, Succeeded Event), from the controller's own
`ecsrun_kube_requests_total`. *throttles* are ThrottlingExceptions the proxy answered. RSS is sampled every
0.5 s; CPU is the controller's user + system time for the pass.
";
