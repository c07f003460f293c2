//! `hack/faults`: the fault suite at full size (the e2e suite runs it at CI size). Brings up the local
//! control plane and moto once, runs one pass per fault rate, checks the guarantees and writes the
//! figures to docs/reliability.json and into the figures section of docs/reliability.md.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use ecsrun_testbed::faults::{self, Plan, Report};
use ecsrun_testbed::{LocalStack, repo_root};

#[derive(Parser, Debug)]
#[command(about = "The ecsrun fault suite (docs/reliability.md)")]
struct Args {
    /// Runs per pass.
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// SIGKILLs of the controller per pass (one every 1.5 s or right after a RunTask).
    #[arg(long, default_value_t = 200)]
    kills: usize,
    /// Shares of ECS calls that get a fault, one pass each, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.3")]
    fault_rates: Vec<f64>,
    /// Also run each rate's pass with task events (the controller's SQS calls faulted too, and SQS out
    /// for a sixth of the kills).
    #[arg(long)]
    events: bool,
    /// The controller binary.
    #[arg(long, default_value = "target/debug/ecsrun-controller")]
    binary: PathBuf,
    /// Where reliability.json goes.
    #[arg(long, default_value = "docs/reliability.json")]
    out: PathBuf,
    /// The commit the controller binary was built from (hack/faults passes it), for the report.
    #[arg(long, default_value = "")]
    controller_commit: String,
    /// Only render the figures of reliability.json into reliability.md again; run nothing.
    #[arg(long)]
    report_only: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = repo_root();
    if args.report_only {
        let reports: Vec<Report> = serde_json::from_str(&std::fs::read_to_string(root.join(&args.out))?)?;
        return render(&root.join(&args.out).with_extension("md"), &reports);
    }
    let binary = root.join(&args.binary);
    anyhow::ensure!(binary.exists(), "{} does not exist: hack/faults builds it", binary.display());
    let stack = LocalStack::start("faults").await?;
    let peers = stack.peers(binary);

    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut reports: Vec<Report> = Vec::new();
    let passes = args.fault_rates.iter().flat_map(|rate| {
        let with_events: &[bool] = if args.events { &[false, true] } else { &[false] };
        with_events.iter().map(move |events| (*rate, *events))
    });
    for (rate, events) in passes {
        let label = format!("full-{}{}", (rate * 100.0).round(), if events { "-events" } else { "" });
        let plan = Plan { label: label.clone(), runs: args.runs, kills: args.kills, fault_rate: rate, events };
        eprintln!("faults: {} runs, {} kills, {:.0}% of ECS calls faulted ...", args.runs, args.kills, rate * 100.0);
        let mut report = faults::run(&peers, &plan).await.with_context(|| label.clone())?;
        report.command = command.clone();
        report.controller_commit = args.controller_commit.clone();
        eprintln!("faults: {}", serde_json::to_string(&report)?);
        reports.push(report);
        std::fs::write(root.join(&args.out), serde_json::to_string_pretty(&reports)? + "\n")?;
        render(&root.join(&args.out).with_extension("md"), &reports)?;
    }
    eprintln!("faults: logs in {}", stack.work.display());
    for report in &reports {
        report.check().with_context(|| format!("pass {}", report.label))?;
    }
    eprintln!("faults: every guarantee held");
    Ok(())
}

const BEGIN: &str = "<!-- figures: written by hack/faults -->";
const END: &str = "<!-- /figures -->";

/// Replaces the figures section of reliability.md (between BEGIN and END) with the reports' table.
fn render(markdown: &std::path::Path, reports: &[Report]) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(markdown).with_context(|| format!("reading {}", markdown.display()))?;
    let (head, rest) = text.split_once(BEGIN).context("no figures section in reliability.md")?;
    let (_, tail) = rest.split_once(END).context("the figures section of reliability.md is not closed")?;
    let mut table = String::from("\n| | ");
    table.push_str(
        &reports
            .iter()
            .map(|r| format!("{:.0} % of ECS calls faulted", r.fault_rate * 100.0))
            .collect::<Vec<_>>()
            .join(" | "),
    );
    table.push_str(" |\n|---|");
    table.push_str(&"---|".repeat(reports.len()));
    table.push('\n');
    let mut row = |label: &str, cell: &dyn Fn(&Report) -> String| {
        table.push_str(&format!("| {label} | {} |\n", reports.iter().map(cell).collect::<Vec<_>>().join(" | ")));
    };
    row("runs (of which deleted)", &|r| format!("{} ({})", r.runs, r.deleted_runs));
    row("SIGKILLs of the controller (right after a RunTask reached ECS)", &|r| {
        format!("{} ({})", r.kills, r.kills_right_after_run_task)
    });
    row("injected faults, by kind", &|r| {
        r.faults.iter().map(|(kind, n)| format!("{kind:?} {n}")).collect::<Vec<_>>().join(", ")
    });
    row("ECS calls through the proxy", &|r| r.ecs_calls.values().sum::<u64>().to_string());
    row("conflicting label/annotation edits", &|r| r.conflicting_edits.to_string());
    row("retried or failed ECS attempts in the controllers' metrics", &|r| r.errors_in_metrics.to_string());
    row("attempts / tasks ECS has", &|r| format!("{} / {}", r.attempts, r.tasks));
    row("**duplicates** (must be 0)", &|r| format!("**{}**", r.duplicates));
    row("**tasks left running after deletion** (must be 0)", &|r| format!("**{}**", r.left_running_after_delete));
    row("**runs not converged** (must be 0)", &|r| format!("**{}**", r.not_converged));
    row("time to converge after the last fault", &|r| format!("{:.1} s", r.converged_after_last_fault_s));
    row("**reconcile errors after convergence**, edits going on (must be 0)", &|r| {
        format!("**{}**", r.reconcile_errors_after_convergence)
    });
    row("final outcomes", &|r| r.outcomes.iter().map(|(o, n)| format!("{o} {n}")).collect::<Vec<_>>().join(", "));
    row("wall time of the pass", &|r| format!("{:.0} s", r.wall_s));
    let commits: Vec<&str> = reports.iter().map(|r| r.controller_commit.as_str()).collect();
    table.push_str(&format!(
        "\nController built from {}; measured {}.\n",
        commits.first().copied().unwrap_or("an unrecorded commit"),
        jiff::Timestamp::now().strftime("%Y-%m-%d")
    ));
    std::fs::write(markdown, format!("{head}{BEGIN}\n{table}{END}{tail}"))?;
    Ok(())
}
