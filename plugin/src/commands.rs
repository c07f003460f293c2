//! `run`, `logs`, `rerun` and `stop`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use ecsrun_api::{
    AssignPublicIp, AwsVpcConfiguration, ContainerOverride, EcsTaskRun, EcsTaskRunSpec, EcsTaskRunStatus, EnvVar,
    LastStatus, LaunchType, NetworkConfiguration, Phase, TaskOverrides, TaskStatus,
};
use kube::ResourceExt;
use kube::api::ObjectMeta;
use serde_json::json;

use crate::cloud_logs::{LogSource, TaskRef};
use crate::output::{Output, print_run, render};
use crate::runs::{Runs, is_finished};

/// Marks a run created by `rerun` with the run it repeats.
const RERUN_OF: &str = "ecsrun.dev/rerun-of";

#[derive(Args)]
pub struct RunArgs {
    /// Name of the run; absent: generated from the task definition's family.
    pub name: Option<String>,
    /// ECS cluster (name or ARN). Named `--ecs-cluster` since `--cluster` picks the kubeconfig's cluster,
    /// as in kubectl.
    #[arg(long = "ecs-cluster", value_name = "CLUSTER")]
    pub ecs_cluster: String,
    /// Task definition: family, family:revision or ARN.
    #[arg(long)]
    pub task_definition: String,
    /// AWS region (default: the controller's).
    #[arg(long)]
    pub region: Option<String>,
    /// Where the task runs (default: the cluster's capacity provider strategy).
    #[arg(long, value_enum, ignore_case = true)]
    pub launch_type: Option<LaunchTypeFlag>,
    /// awsvpc subnet (repeat for more).
    #[arg(long = "subnet")]
    pub subnets: Vec<String>,
    /// awsvpc security group (repeat for more).
    #[arg(long = "security-group")]
    pub security_groups: Vec<String>,
    /// Give the task's ENI a public IP.
    #[arg(long)]
    pub assign_public_ip: bool,
    /// The container the command, --env and the logs are about.
    #[arg(short, long)]
    pub container: Option<String>,
    /// Environment variable for the container, NAME=VALUE (repeat for more).
    #[arg(short, long = "env", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Task CPU units (e.g. 1024) and memory in MiB (e.g. 2048).
    #[arg(long)]
    pub cpu: Option<String>,
    #[arg(long)]
    pub memory: Option<String>,
    /// Fail the run (and stop its task) after this long, e.g. 30m.
    #[arg(long)]
    pub timeout: Option<String>,
    /// Wait for the run to finish, streaming the container's logs, and exit with its outcome
    /// (0 Succeeded, 1 Failed, 2 outcome unknown).
    #[arg(short, long)]
    pub wait: bool,
    /// With --wait: delete the run once it finished.
    #[arg(long, requires = "wait")]
    pub rm: bool,
    /// Read the results the container prints (`::ecsrun-result name=value`) into the run's status; with
    /// --wait they are printed once it finishes (`result name=value` on stderr).
    #[arg(long, value_name = "CONTAINER")]
    pub results: Option<String>,
    /// A result the task must publish, or the run fails with ResultMissing (repeat for more; needs --results).
    #[arg(long = "require-result", value_name = "NAME", requires = "results")]
    pub required_results: Vec<String>,
    /// Print the EcsTaskRun instead of creating it.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
    /// The command to run instead of the image's, after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// ECS's launch types, as the flag spells them (any case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LaunchTypeFlag {
    Fargate,
    Ec2,
    External,
}

impl From<LaunchTypeFlag> for LaunchType {
    fn from(flag: LaunchTypeFlag) -> Self {
        match flag {
            LaunchTypeFlag::Fargate => LaunchType::Fargate,
            LaunchTypeFlag::Ec2 => LaunchType::Ec2,
            LaunchTypeFlag::External => LaunchType::External,
        }
    }
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .filter(|(name, _)| !name.is_empty())
        .ok_or_else(|| format!("{text}: expected NAME=VALUE"))
}

#[derive(Args)]
pub struct LogsArgs {
    pub run: String,
    /// Container (default: the first that logs with awslogs).
    #[arg(short, long)]
    pub container: Option<String>,
    /// Task index of a run with count > 1.
    #[arg(long, default_value_t = 0)]
    pub index: i32,
    /// Attempt number (default: the latest).
    #[arg(long)]
    pub attempt: Option<i32>,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<u32>,
    /// Keep printing while the task runs.
    #[arg(short, long)]
    pub follow: bool,
}

/// The spec `run`'s flags describe.
fn spec_from(args: &RunArgs) -> anyhow::Result<EcsTaskRunSpec> {
    let mut spec = EcsTaskRunSpec::new(&args.ecs_cluster);
    spec.task_definition = Some(args.task_definition.clone());
    spec.region = args.region.clone();
    spec.launch_type = args.launch_type.map(LaunchType::from);
    if !args.subnets.is_empty() {
        spec.network_configuration = Some(NetworkConfiguration {
            awsvpc_configuration: AwsVpcConfiguration {
                subnets: args.subnets.clone(),
                security_groups: args.security_groups.clone(),
                assign_public_ip: args.assign_public_ip.then_some(AssignPublicIp::Enabled),
            },
        });
    }
    let mut overrides =
        TaskOverrides { cpu: args.cpu.clone(), memory: args.memory.clone(), ..TaskOverrides::default() };
    if !args.command.is_empty() || !args.env.is_empty() {
        let Some(container) = &args.container else {
            bail!("name the container the command or --env is for: --container NAME");
        };
        overrides.container_overrides.push(ContainerOverride {
            name: container.clone(),
            command: (!args.command.is_empty()).then(|| args.command.clone()),
            environment: args
                .env
                .iter()
                .map(|(name, value)| EnvVar { name: name.clone(), value: value.clone() })
                .collect(),
            ..ContainerOverride::default()
        });
    }
    if overrides != TaskOverrides::default() {
        spec.overrides = Some(overrides);
    }
    spec.wait.timeout = args.timeout.as_deref().map(ecsrun_api::GoDuration::parse);
    spec.results = args.results.as_ref().map(|container| ecsrun_api::ResultsSpec {
        containers: vec![container.clone()],
        required: args.required_results.clone(),
    });
    Ok(spec)
}

/// A family from a reference (`family`, `family:3`, or an ARN), as a name prefix.
fn family(reference: &str) -> String {
    let name = reference.rsplit('/').next().unwrap_or(reference);
    let family = name.split(':').next().unwrap_or(name).to_lowercase();
    let cleaned: String = family.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() { "run".into() } else { trimmed.chars().take(40).collect() }
}

pub async fn run(runs: &Runs, args: RunArgs) -> anyhow::Result<ExitCode> {
    let spec = spec_from(&args)?;
    let metadata = match &args.name {
        Some(name) => ObjectMeta { name: Some(name.clone()), ..ObjectMeta::default() },
        None => {
            ObjectMeta { generate_name: Some(format!("{}-", family(&args.task_definition))), ..ObjectMeta::default() }
        }
    };
    let run =
        EcsTaskRun { metadata: ObjectMeta { namespace: Some(runs.namespace.clone()), ..metadata }, spec, status: None };
    if args.dry_run {
        match render(&run, args.output)? {
            Some(rendered) => print!("{rendered}"),
            None => print!("{}", serde_yaml_ng::to_string(&run)?),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let created = runs.create(&run).await?;
    let name = created.name_any();
    if args.output == Output::Text {
        eprintln!("ecstaskrun {name} created");
    }
    if !args.wait {
        print_run(&created, args.output)?;
        return Ok(ExitCode::SUCCESS);
    }
    let finished = follow_to_the_end(runs, &name, args.container.as_deref()).await?;
    print_run(&finished, args.output)?;
    if args.rm {
        runs.api.delete(&name, &Default::default()).await.with_context(|| format!("deleting {name}"))?;
    }
    Ok(outcome_code(finished.status.as_ref()))
}

/// Streams the run's logs until it finishes and tells how it ended (on stderr: stdout is the job's).
async fn follow_to_the_end(runs: &Runs, name: &str, container: Option<&str>) -> anyhow::Result<EcsTaskRun> {
    let within = Duration::from_secs(24 * 3600);
    let launched = runs
        .wait_for(name, within, "launched", |status| {
            status.task.task_arn.is_some() || tasks_started(status) || is_finished(status)
        })
        .await?;
    let status = launched.status.clone().unwrap_or_default();
    if let Some(task) = current_task(&launched, &status, 0, None) {
        match LogSource::locate(&task, container).await {
            Ok(source) => {
                eprintln!("logs of container {} ({} {}):", source.container, source.group, source.stream);
                let running = || async {
                    let run = runs.get(name).await?;
                    Ok(!run.status.as_ref().is_some_and(is_finished))
                };
                if let Err(error) = source.print(None, running).await {
                    eprintln!("warning: logs stopped: {error:#}");
                }
            }
            Err(error) => eprintln!("warning: not streaming logs: {error:#}"),
        }
    }
    let finished = runs.wait_for(name, within, "finished", is_finished).await?;
    let status = finished.status.clone().unwrap_or_default();
    eprintln!(
        "ecstaskrun {name} {}: {}",
        status.task.phase.map_or("-".into(), |phase| format!("{phase:?}")),
        status.task.message.as_deref().unwrap_or_default()
    );
    for (index, lane) in status.lanes() {
        let prefix = if status.tasks.is_empty() { String::new() } else { format!("index {index}: ") };
        for line in crate::describe::result_lines(lane) {
            eprintln!("result {prefix}{line}");
        }
    }
    Ok(finished)
}

fn tasks_started(status: &EcsTaskRunStatus) -> bool {
    status.tasks.iter().any(|task| task.task.task_arn.is_some())
}

/// 0 Succeeded, 1 Failed, 2 outcome unknown.
fn outcome_code(status: Option<&EcsTaskRunStatus>) -> ExitCode {
    match status.and_then(|status| status.task.phase) {
        Some(Phase::Succeeded) => ExitCode::SUCCESS,
        Some(Phase::Unknown) => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}

/// The task of index `index` and attempt `attempt` (default: the latest) as the run's status records it.
fn current_task<'a>(
    run: &'a EcsTaskRun,
    status: &'a EcsTaskRunStatus,
    index: i32,
    attempt: Option<i32>,
) -> Option<TaskRef<'a>> {
    let lane = status.lane(index)?;
    let (attempts, current, definition) =
        (&lane.attempts, lane.task_arn.as_deref(), lane.task_definition_arn.as_deref());
    let task_arn = match attempt {
        Some(number) => attempts.iter().find(|a| a.attempt == number)?.task_arn.as_deref()?,
        None => current.or_else(|| attempts.iter().rev().find_map(|a| a.task_arn.as_deref()))?,
    };
    Some(TaskRef {
        cluster: &run.spec.cluster,
        task_arn,
        task_definition_arn: definition,
        region: status.region.as_deref(),
    })
}

pub async fn logs(runs: &Runs, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let run = runs.get(&args.run).await?;
    let status = run.status.clone().unwrap_or_default();
    if run.spec.count <= 1 && args.index != 0 {
        bail!("{} runs one task: there is no --index {}", args.run, args.index);
    }
    let Some(task) = current_task(&run, &status, args.index, args.attempt) else {
        match args.attempt {
            Some(attempt) => bail!("{} has no task for attempt {attempt} of index {}", args.run, args.index),
            None => bail!("{} has not launched a task yet (kubectl ecsrun describe {0})", args.run),
        }
    };
    let task_arn = task.task_arn.to_owned();
    let source = LogSource::locate(&task, args.container.as_deref()).await?;
    let (name, index, follow) = (args.run.clone(), args.index, args.follow);
    let running = || {
        let (name, task_arn) = (name.clone(), task_arn.clone());
        async move {
            if !follow {
                return Ok(false);
            }
            let run = runs.get(&name).await?;
            let status = run.status.unwrap_or_default();
            let stopped = |lane: &TaskStatus| {
                lane.task_arn.as_deref() != Some(task_arn.as_str())
                    || lane.last_status.as_ref().is_some_and(|last| last.is(LastStatus::Stopped))
            };
            Ok(!is_finished(&status) && status.lane(index).is_some_and(|lane| !stopped(lane)))
        }
    };
    source.print(args.tail, running).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn rerun(runs: &Runs, name: &str, output: Output) -> anyhow::Result<ExitCode> {
    let original = runs.get(name).await?;
    if original.spec.task_arn.is_some() {
        bail!("{name} follows a task it did not start (spec.taskArn): there is nothing to run again");
    }
    let mut spec = original.spec.clone();
    spec.stop = false;
    let base = original.metadata.annotations.as_ref().and_then(|a| a.get(RERUN_OF)).cloned().unwrap_or(name.to_owned());
    let rerun = EcsTaskRun {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", base.chars().take(50).collect::<String>())),
            namespace: Some(runs.namespace.clone()),
            labels: original.metadata.labels.clone(),
            annotations: Some([(RERUN_OF.to_owned(), base)].into()),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    };
    let created = runs.create(&rerun).await?;
    if !print_run(&created, output)? {
        println!("{}", created.name_any());
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn stop(
    runs: &Runs,
    name: &str,
    reason: Option<String>,
    timeout: Duration,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let run = runs.get(name).await?;
    if let Some(status) = run.status.as_ref().filter(|status| is_finished(status)) {
        eprintln!(
            "ecstaskrun {name} already finished ({:?}): nothing to stop",
            status.task.phase.unwrap_or(Phase::Unknown)
        );
    } else if !run.spec.stop {
        let mut patch = json!({ "stop": true });
        if let Some(reason) = reason {
            patch["stopReason"] = json!(reason);
        }
        runs.patch_spec(name, patch).await?;
    }
    let stopped = runs.wait_for(name, timeout, "STOPPED", is_finished).await?;
    let status = stopped.status.clone().unwrap_or_default();
    if !print_run(&stopped, output)? {
        println!(
            "ecstaskrun {name} {}: {}",
            status.task.phase.map_or("-".into(), |phase| format!("{phase:?}")),
            status.task.message.as_deref().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> RunArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            run: RunArgs,
        }
        let base = [
            "run",
            "--ecs-cluster",
            "batch",
            "--task-definition",
            "arn:aws:ecs:eu-west-1:1:task-definition/Nightly_Report:3",
        ];
        <Cli as clap::Parser>::parse_from(base.iter().chain(extra)).run
    }

    #[test]
    fn flags_make_the_spec_a_manifest_would() {
        let spec = spec_from(&args(&[
            "--subnet",
            "subnet-1",
            "--security-group",
            "sg-1",
            "--launch-type",
            "fargate",
            "-c",
            "app",
            "-e",
            "MODE=full",
            "--cpu",
            "512",
            "--timeout",
            "30m",
            "--",
            "python",
            "report.py",
            "--day",
            "today",
        ]))
        .unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["launchType"], "FARGATE");
        assert_eq!(json["networkConfiguration"]["awsvpcConfiguration"]["subnets"], json!(["subnet-1"]));
        let container = &json["overrides"]["containerOverrides"][0];
        assert_eq!(container["name"], "app");
        assert_eq!(container["command"], json!(["python", "report.py", "--day", "today"]));
        assert_eq!(container["environment"], json!([{"name": "MODE", "value": "full"}]));
        assert_eq!(json["overrides"]["cpu"], "512");
        assert_eq!(json["wait"]["timeout"], "30m");
    }

    #[test]
    fn a_command_needs_its_container() {
        let error = spec_from(&args(&["--", "echo", "hi"])).unwrap_err();
        assert!(error.to_string().contains("--container"), "{error}");
    }

    #[test]
    fn generated_names_come_from_the_family() {
        assert_eq!(family("arn:aws:ecs:eu-west-1:1:task-definition/Nightly_Report:3"), "nightly-report");
        assert_eq!(family("db-dump"), "db-dump");
        assert_eq!(family(":::"), "run");
    }
}
