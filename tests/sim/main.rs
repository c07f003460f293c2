//! The deterministic simulator as a test: `cargo test --test sim` runs 2,000 seeds; `hack/sim` passes
//! options (`--seeds N`, `--from S`, `--seed S` to replay one with its trace, `--steps K`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ecsrun_testbed::sim::{self, Options, Report, Stats};

const DEFAULT_SEEDS: u64 = 2000;
const DEFAULT_STEPS: u64 = 150;
/// Seeds replayed twice with their traces to show the same seed gives the same run.
const REPLAYED: u64 = 5;

struct Args {
    from: u64,
    seeds: u64,
    steps: u64,
    replay: Option<u64>,
}

fn value(args: &[String], flag: &str) -> Option<u64> {
    let at = args.iter().position(|arg| arg == flag)?;
    let value = args.get(at + 1)?;
    Some(value.parse().unwrap_or_else(|_| panic!("{flag} takes a number, not {value:?}")))
}

fn main() {
    // cargo test passes libtest's own flags to every test binary; those are ignored.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = Args {
        from: value(&args, "--from").unwrap_or(0),
        seeds: value(&args, "--seeds").unwrap_or(DEFAULT_SEEDS),
        steps: value(&args, "--steps").unwrap_or(DEFAULT_STEPS),
        replay: value(&args, "--seed"),
    };
    if let Some(seed) = args.replay {
        // The controller's own log lines, for a seed's trace: ECSRUN_SIM_LOG=info hack/sim --seed S
        if let Ok(filter) = std::env::var("ECSRUN_SIM_LOG") {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::io::stderr)
                .without_time()
                .with_ansi(false)
                .init();
        }
        let report = sim::run(Options { seed, steps: args.steps, trace: true });
        for line in &report.trace {
            println!("{line}");
        }
        match &report.violation {
            Some(violation) => {
                println!("seed {seed}: {violation}");
                std::process::exit(1);
            }
            None => println!("seed {seed}: every invariant held ({:?})", report.stats),
        }
        return;
    }
    let started = Instant::now();
    let next = AtomicU64::new(args.from);
    let end = args.from + args.seeds;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let reports: Vec<(Stats, Vec<Report>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let (mut stats, mut failed) = (Stats::default(), Vec::new());
                    loop {
                        let seed = next.fetch_add(1, Ordering::Relaxed);
                        if seed >= end {
                            break;
                        }
                        let report = sim::run(Options { seed, steps: args.steps, trace: false });
                        stats.add(&report.stats);
                        if report.violation.is_some() {
                            failed.push(report);
                        }
                    }
                    (stats, failed)
                })
            })
            .collect();
        workers.into_iter().map(|worker| worker.join().expect("a simulator thread panicked")).collect()
    });
    let mut stats = Stats::default();
    let mut failed: Vec<Report> = Vec::new();
    for (worker_stats, worker_failed) in reports {
        stats.add(&worker_stats);
        failed.extend(worker_failed);
    }
    failed.sort_by_key(|report| report.seed);
    println!(
        "sim: seeds {}..{end}: {} steps, {} reconciles, {} crashes, {} faults injected, {} runs, {} tasks, {} task events in {:.1}s",
        args.from,
        stats.steps,
        stats.reconciles,
        stats.crashes,
        stats.faults,
        stats.runs,
        stats.tasks,
        stats.task_events,
        started.elapsed().as_secs_f64()
    );
    for report in &failed {
        if let Some(violation) = &report.violation {
            println!(
                "seed {}: {violation}\n  replay: hack/sim --seed {} --steps {}",
                report.seed, report.seed, args.steps
            );
        }
    }
    // Same seed, same run: a few seeds again, twice each with their traces, compared line by line.
    let mut differing = Vec::new();
    for seed in args.from..end.min(args.from + REPLAYED) {
        let first = sim::run(Options { seed, steps: args.steps, trace: true });
        let again = sim::run(Options { seed, steps: args.steps, trace: true });
        if first.trace != again.trace || first.trace.is_empty() {
            differing.push(seed);
        }
    }
    if differing.is_empty() {
        println!(
            "sim: determinism: seeds {}..{} replayed twice with identical traces",
            args.from,
            end.min(args.from + REPLAYED)
        );
    } else {
        println!("sim: determinism broken: seeds {differing:?} gave two different traces (or none)");
        std::process::exit(1);
    }
    let passed = args.seeds - failed.len() as u64;
    println!(
        "test result: {}. {passed} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len()
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
