//! `hack/faults`: the fault suite at full size (the e2e suite runs it at CI size). Brings up the local
//! control plane and moto once, runs one pass per fault rate, checks the guarantees and writes the
//! figures to docs/reliability.json (docs/reliability.md explains them).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use ecsrun_e2e::faults::{self, Plan, Report};
use ecsrun_e2e::{LocalStack, repo_root};

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
    /// The controller binary.
    #[arg(long, default_value = "target/debug/ecsrun-controller")]
    binary: PathBuf,
    /// Where reliability.json goes.
    #[arg(long, default_value = "docs/reliability.json")]
    out: PathBuf,
    /// The commit the controller binary was built from (hack/faults passes it), for the report.
    #[arg(long, default_value = "")]
    controller_commit: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = repo_root();
    let binary = root.join(&args.binary);
    anyhow::ensure!(binary.exists(), "{} does not exist: hack/faults builds it", binary.display());
    let stack = LocalStack::start("faults").await?;
    let peers = stack.peers(binary);

    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut reports: Vec<Report> = Vec::new();
    for &rate in &args.fault_rates {
        let label = format!("full-{}", (rate * 100.0).round());
        let plan = Plan { label: label.clone(), runs: args.runs, kills: args.kills, fault_rate: rate };
        eprintln!("faults: {} runs, {} kills, {:.0}% of ECS calls faulted ...", args.runs, args.kills, rate * 100.0);
        let mut report = faults::run(&peers, &plan).await.with_context(|| label.clone())?;
        report.command = command.clone();
        report.controller_commit = args.controller_commit.clone();
        eprintln!("faults: {}", serde_json::to_string(&report)?);
        reports.push(report);
        std::fs::write(root.join(&args.out), serde_json::to_string_pretty(&reports)? + "\n")?;
    }
    eprintln!("faults: logs in {}", stack.work.display());
    for report in &reports {
        report.check().with_context(|| format!("pass {}", report.label))?;
    }
    eprintln!("faults: every guarantee held");
    Ok(())
}
