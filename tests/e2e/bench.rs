//! The fleet benchmark at its smallest size (hack/bench runs 100, 1,000 and 10,000): what it measures
//! must hold for 100 runs on every change.

use std::sync::Arc;
use std::time::Duration;

use anyhow::ensure;
use ecsrun::ecs::limit::Ceilings;
use ecsrun_testbed::bench::{self, Mode, Plan};
use ecsrun_testbed::proxy::Class;

use crate::{Case, Env, case};

pub fn cases() -> Vec<Case> {
    vec![case("bench::a_fleet_of_100_costs_one_call_per_launch_and_is_never_throttled", fleet_of_100)]
}

async fn fleet_of_100(env: Arc<Env>) -> anyhow::Result<()> {
    let peers = env.peers()?;
    let plan = Plan { n: 100, mode: Mode::Batched, poll: Duration::from_secs(5), window_intervals: 3 };
    let report = bench::run(&peers, &plan).await?;
    eprintln!("bench at N=100: {}", serde_json::to_string(&report)?);
    ensure!(
        report.throttles == 0,
        "ECS (the proxy) throttled {} calls: {:?}",
        report.throttles,
        report.detail.throttled_calls
    );
    ensure!(
        report.calls_per_launch <= 1.1,
        "{} ECS calls per launch: {:?}",
        report.calls_per_launch,
        report.detail.ecs_calls
    );
    // 100 tasks fit one DescribeTasks: one call per interval, give or take the window's edge.
    let most = (f64::from(plan.window_intervals) + 1.0) / (100.0 * f64::from(plan.window_intervals));
    ensure!(
        report.describe_per_run_per_interval <= most,
        "{} DescribeTasks per run per interval (at most {most})",
        report.describe_per_run_per_interval
    );
    // In the window every task runs and is described at least w - 1 times (its interval, give or take the
    // window's edges) in at most w + 1 calls (asserted above): at least n·(w - 1)/(w + 1) ARNs a call.
    // Launches, stops and deletions describe partial batches by nature, more of them the slower the
    // machine: the whole pass's mean is reported, not asserted.
    let w = f64::from(plan.window_intervals);
    let fewest = 100.0 * (w - 1.0) / (w + 1.0);
    ensure!(
        report.detail.window_arns_per_describe >= fewest,
        "{} ARNs per DescribeTasks while all 100 ran (at least {fewest}); {} over the whole pass",
        report.detail.window_arns_per_describe,
        report.detail.mean_arns_per_describe
    );
    ensure!(
        report.status_patches_unchanged_polls == 0,
        "{} status writes while nothing changed",
        report.status_patches_unchanged_polls
    );
    ensure!(
        report.api_writes_per_run <= 6.0,
        "{} API writes per run from create to Succeeded",
        report.api_writes_per_run
    );
    ensure!(
        report.detail.stopped_runs_seen_final == 50,
        "{} of 50 stopped runs reached a final status",
        report.detail.stopped_runs_seen_final
    );
    ensure!(
        report.detail.delete_calls_beyond_stop_per_run <= 1.1,
        "deleting running runs cost {} calls beyond StopTask per run: {:?}",
        report.detail.delete_calls_beyond_stop_per_run,
        report.detail.delete_calls
    );
    // A token bucket lets through at most burst + rate calls in any one second.
    let ceilings = Ceilings::default();
    for (class, ceiling) in
        [(Class::Read, ceilings.read), (Class::Launch, ceilings.launch), (Class::Modify, ceilings.modify)]
    {
        let peak = report.detail.peak_calls_per_s.get(&class).copied().unwrap_or(0);
        let bound = u64::from(ceiling.burst.get() + ceiling.per_second.get());
        ensure!(peak <= bound, "{class:?}: {peak} calls in one second, above the ceiling's {bound}");
    }
    Ok(())
}
