//! A task container's CloudWatch Logs stream (awslogs driver), read with the user's own AWS credentials:
//! the task definition says where the container logs, the task ID names the stream.

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context as _, bail};
use aws_config::{BehaviorVersion, Region};
use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, ProvideErrorMetadata};

/// How often a followed stream is read again.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// Which task's output, as the run's status names it.
pub struct TaskRef<'a> {
    pub cluster: &'a str,
    pub task_arn: &'a str,
    pub task_definition_arn: Option<&'a str>,
    /// The run's pinned region; else the task ARN's.
    pub region: Option<&'a str>,
}

pub struct LogSource {
    client: aws_sdk_cloudwatchlogs::Client,
    pub container: String,
    pub group: String,
    pub stream: String,
}

impl LogSource {
    /// Finds where `container` (default: the first container logging with awslogs) of the task writes.
    pub async fn locate(task: &TaskRef<'_>, container: Option<&str>) -> anyhow::Result<Self> {
        let region = task
            .region
            .or_else(|| ecsrun_api::arn_region(task.task_arn))
            .context("the run's region is not known yet")?
            .to_owned();
        let config = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.clone())).load().await;
        let ecs = aws_sdk_ecs::Client::new(&config);
        let task_definition = match task.task_definition_arn {
            Some(arn) => arn.to_owned(),
            None => {
                let described = ecs
                    .describe_tasks()
                    .cluster(task.cluster)
                    .tasks(task.task_arn)
                    .send()
                    .await
                    .map_err(|error| aws_error("ecs:DescribeTasks", error))?;
                described
                    .tasks()
                    .first()
                    .and_then(|t| t.task_definition_arn())
                    .context("ECS does not describe the task (it forgets tasks about an hour after they stop)")?
                    .to_owned()
            }
        };
        let described = ecs
            .describe_task_definition()
            .task_definition(&task_definition)
            .send()
            .await
            .map_err(|error| aws_error("ecs:DescribeTaskDefinition", error))?;
        let containers = described.task_definition().map(|d| d.container_definitions()).unwrap_or_default();
        let awslogs = |c: &&aws_sdk_ecs::types::ContainerDefinition| {
            c.log_configuration().is_some_and(|log| log.log_driver().as_str() == "awslogs")
        };
        let chosen = match container {
            Some(name) => containers.iter().find(|c| c.name() == Some(name)).with_context(|| {
                let names: Vec<&str> = containers.iter().filter_map(|c| c.name()).collect();
                format!("the task has no container {name} (containers: {})", names.join(", "))
            })?,
            None => containers.iter().find(awslogs).context("no container of the task logs with the awslogs driver")?,
        };
        let name = chosen.name().unwrap_or_default().to_owned();
        let Some(log) = chosen.log_configuration().filter(|_| awslogs(&chosen)) else {
            bail!("container {name} does not log with the awslogs driver: its output is not in CloudWatch Logs");
        };
        let option = |key: &str| log.options().and_then(|options| options.get(key)).cloned();
        let group = option("awslogs-group").with_context(|| format!("container {name} sets no awslogs-group"))?;
        let prefix = option("awslogs-stream-prefix").with_context(|| {
            format!("container {name} sets no awslogs-stream-prefix: its stream is named after a container ID")
        })?;
        // The driver may write to another region than the task's.
        let logs_config = match option("awslogs-region").filter(|r| *r != region) {
            Some(other) => aws_config::defaults(BehaviorVersion::latest()).region(Region::new(other)).load().await,
            None => config,
        };
        Ok(Self {
            client: aws_sdk_cloudwatchlogs::Client::new(&logs_config),
            stream: ecsrun_api::awslogs_stream(&prefix, &name, task.task_arn),
            container: name,
            group,
        })
    }

    /// One page of events from `token` (None: the start, or the last `tail` lines); the lines and the
    /// token to go on from. A stream not created yet (the task is starting) reads as empty.
    pub async fn read(&self, token: Option<&str>, tail: Option<u32>) -> anyhow::Result<(Vec<String>, Option<String>)> {
        let mut request = self.client.get_log_events().log_group_name(&self.group).log_stream_name(&self.stream);
        request = match (token, tail) {
            (Some(token), _) => request.next_token(token).start_from_head(true),
            (None, Some(lines)) => request.start_from_head(false).limit(lines.clamp(1, 10_000) as i32),
            (None, None) => request.start_from_head(true),
        };
        match request.send().await {
            Ok(output) => Ok((
                output.events().iter().filter_map(|e| e.message().map(str::to_owned)).collect(),
                output.next_forward_token().map(str::to_owned),
            )),
            Err(error) if error.code() == Some("ResourceNotFoundException") && token.is_none() => {
                Ok((Vec::new(), None))
            }
            Err(error) => Err(aws_error("logs:GetLogEvents", error)),
        }
    }

    /// Prints the stream (its last `tail` lines, or all of it), then what is written next for as long as
    /// `running` says the task runs. `running` is asked before each read, so the read after it turns
    /// false still catches the lines the driver flushed as the task stopped.
    pub async fn print<F, Fut>(&self, tail: Option<u32>, mut running: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<bool>>,
    {
        let mut stdout = std::io::stdout();
        let (lines, mut token) = self.read(None, tail).await?;
        print_lines(&mut stdout, &lines)?;
        loop {
            let still_running = running().await?;
            let (lines, next) = self.read(token.as_deref(), None).await?;
            print_lines(&mut stdout, &lines)?;
            token = next.or(token);
            if !lines.is_empty() {
                continue;
            }
            if !still_running {
                return Ok(());
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    }
}

fn print_lines(out: &mut impl Write, lines: &[String]) -> anyhow::Result<()> {
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// An AWS error with what to do about it: the action the user's identity needs, or the service's words.
fn aws_error<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    action: &str,
    error: aws_sdk_cloudwatchlogs::error::SdkError<E, R>,
) -> anyhow::Error {
    match error.code() {
        Some("AccessDeniedException" | "AccessDenied") => {
            anyhow::anyhow!("your AWS identity may not call {action}: {}", error.message().unwrap_or_default())
        }
        Some(code) => anyhow::anyhow!("{action}: {code}: {}", error.message().unwrap_or_default()),
        None => anyhow::anyhow!(
            "{action} failed: {} (are AWS credentials configured? aws sts get-caller-identity)",
            DisplayErrorContext(&error)
        ),
    }
}
