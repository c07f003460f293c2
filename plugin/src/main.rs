//! `kubectl ecsrun`: run ECS tasks from the terminal as EcsTaskRuns, read their CloudWatch logs, describe,
//! rerun and stop them. Kubernetes access is the user's kubeconfig; logs are read with the user's own
//! AWS credentials (aws-config's default chain: env, profile, SSO, ...).

mod cloud_logs;
mod commands;
mod describe;
mod runs;
mod schedules;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "kubectl ecsrun",
    version,
    about = "Run and operate ECS tasks declared as EcsTaskRuns and EcsTaskSchedules"
)]
struct Cli {
    /// Namespace of the runs (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    #[default]
    Text,
    /// The EcsTaskRun as JSON, for scripts.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Create a run from flags; with --wait, stream its logs and exit with its outcome (0: Succeeded).
    Run(Box<commands::RunArgs>),
    /// Print a run's CloudWatch logs (awslogs driver), following them with -f while the task runs.
    Logs(commands::LogsArgs),
    /// What a run runs, its phase, every task and attempt with exit codes and times, log tails and Events.
    Describe {
        run: String,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Create a new run with the same spec (a fresh name, printed so it can be piped).
    Rerun {
        run: String,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Stop a run's tasks (spec.stop) and wait until ECS reports them STOPPED.
    Stop {
        run: String,
        /// Sent with StopTask; shows in the task's stoppedReason.
        #[arg(long)]
        reason: Option<String>,
        /// How long to wait for STOPPED.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Operate an EcsTaskSchedule: trigger a run now, suspend, resume, list the next slots.
    #[command(subcommand)]
    Schedule(schedules::ScheduleCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = async {
        let runs = runs::Runs::connect(cli.namespace.as_deref()).await?;
        match cli.command {
            Command::Run(args) => commands::run(&runs, *args).await,
            Command::Logs(args) => commands::logs(&runs, args).await,
            Command::Describe { run, output } => describe::describe(&runs, &run, output).await,
            Command::Rerun { run, output } => commands::rerun(&runs, &run, output).await,
            Command::Stop { run, reason, timeout, output } => {
                commands::stop(&runs, &run, reason, timeout, output).await
            }
            Command::Schedule(command) => schedules::schedule(&runs, command).await,
        }
    };
    match outcome.await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
