//! `kubectl ecsrun`: run ECS tasks from the terminal as EcsTaskRuns, read their CloudWatch logs, describe,
//! rerun and stop them. Kubernetes access is the user's kubeconfig; logs are read with the user's own
//! AWS credentials (aws-config's default chain: env, profile, SSO, ...).

mod cloud_logs;
mod commands;
mod describe;
mod kube_flags;
mod output;
mod runs;
mod schedules;

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

pub use output::Output;

#[derive(Parser)]
#[command(
    name = "kubectl ecsrun",
    version,
    about = "Run and operate ECS tasks declared as EcsTaskRuns and EcsTaskSchedules"
)]
struct Cli {
    #[command(flatten)]
    kube: kube_flags::KubeFlags,
    #[command(subcommand)]
    command: Command,
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
    /// Print a shell completion script for kubectl-ecsrun: `source <(kubectl ecsrun completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = async {
        let connect = || runs::Runs::connect(&cli.kube);
        match cli.command {
            Command::Run(args) => commands::run(&connect().await?, *args).await,
            Command::Logs(args) => commands::logs(&connect().await?, args).await,
            Command::Describe { run, output } => describe::describe(&connect().await?, &run, output).await,
            Command::Rerun { run, output } => commands::rerun(&connect().await?, &run, output).await,
            Command::Stop { run, reason, timeout, output } => {
                commands::stop(&connect().await?, &run, reason, timeout, output).await
            }
            Command::Schedule(command) => schedules::schedule(&connect().await?, command).await,
            // Needs no cluster: completion is set up before there is a kubeconfig to read.
            Command::Completion { shell } => {
                clap_complete::generate(shell, &mut Cli::command(), "kubectl-ecsrun", &mut std::io::stdout());
                Ok(ExitCode::SUCCESS)
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_scripts_know_the_verbs_and_kubectls_flags() {
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "kubectl-ecsrun", &mut script);
            let script = String::from_utf8(script).unwrap();
            // Fish names a long flag `-l context`, the others `--context`.
            let long = |flag: &str| {
                if shell == clap_complete::Shell::Fish { format!("-l {flag}") } else { format!("--{flag}") }
            };
            let words = ["describe".into(), "schedule".into(), "trigger".into(), "yaml".into()];
            for word in words.into_iter().chain(["context", "kubeconfig", "user", "ecs-cluster"].map(long)) {
                assert!(script.contains(&word), "{shell}: no {word}");
            }
        }
    }

    #[test]
    fn the_ecs_cluster_is_its_own_flag_and_cluster_is_kubectls() {
        let cli = Cli::try_parse_from([
            "kubectl-ecsrun",
            "--cluster",
            "prod",
            "run",
            "--ecs-cluster",
            "batch",
            "--task-definition",
            "td",
        ])
        .unwrap();
        assert_eq!(cli.kube.cluster.as_deref(), Some("prod"));
        let Command::Run(run) = cli.command else { panic!("not a run") };
        assert_eq!(run.ecs_cluster, "batch");
        let error = Cli::try_parse_from(["kubectl-ecsrun", "run", "--cluster", "batch", "--task-definition", "td"])
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(error.contains("--ecs-cluster"), "{error}");
    }

    #[test]
    fn launch_types_are_ecs_own_in_any_case() {
        let parse = |value: &str| {
            Cli::try_parse_from([
                "kubectl-ecsrun",
                "run",
                "--ecs-cluster",
                "b",
                "--task-definition",
                "td",
                "--launch-type",
                value,
            ])
        };
        for (value, expected) in [("FARGATE", "FARGATE"), ("ec2", "EC2"), ("External", "EXTERNAL")] {
            let Command::Run(run) = parse(value).unwrap().command else { panic!("not a run") };
            let launch_type = ecsrun_api::LaunchType::from(run.launch_type.unwrap());
            assert_eq!(serde_json::to_value(launch_type).unwrap(), expected);
        }
        assert!(parse("lambda").is_err());
    }
}
