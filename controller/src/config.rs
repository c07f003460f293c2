//! Command-line flags, each also settable from the environment.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use k8s_openapi::api::core::v1::ObjectReference;

use crate::ecs::limit::{Ceiling, Ceilings};
use crate::ecs::task_events::{EventSource, EventsSettings};
use crate::policy::Mode;

#[derive(Parser, Debug, Clone)]
#[command(name = "ecsrun-controller", version = crate::metrics::VERSION, about = "Runs AWS ECS tasks declared as EcsTaskRun resources")]
pub struct Config {
    /// ECS endpoint URL override (emulators, VPC interface endpoints).
    #[arg(long, env = "ECSRUN_ECS_ENDPOINT_URL")]
    pub ecs_endpoint_url: Option<String>,

    /// STS endpoint URL override, used for spec.credentials.assumeRoleArn.
    #[arg(long, env = "ECSRUN_STS_ENDPOINT_URL")]
    pub sts_endpoint_url: Option<String>,

    /// CloudWatch Logs endpoint URL override, for the last lines of failed containers.
    #[arg(long, env = "ECSRUN_LOGS_ENDPOINT_URL")]
    pub logs_endpoint_url: Option<String>,

    /// Region for runs without spec.region. Falls back to AWS_REGION / AWS_DEFAULT_REGION / the AWS profile.
    #[arg(long, env = "ECSRUN_DEFAULT_REGION")]
    pub default_region: Option<String>,

    /// Poll interval for runs without spec.wait.pollInterval (5s to 10m, as the CRD allows).
    #[arg(long, env = "ECSRUN_DEFAULT_POLL_INTERVAL", default_value = "30s", value_parser = parse_poll_interval)]
    pub default_poll_interval: Duration,

    /// Runs reconciled at once.
    #[arg(long, env = "ECSRUN_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,

    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "ECSRUN_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Namespaces to watch, comma-separated. Empty: all namespaces.
    #[arg(long, env = "ECSRUN_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,

    /// Deadline of one ECS API call, SDK retries included.
    #[arg(long, env = "ECSRUN_ECS_CALL_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub ecs_call_timeout: Duration,

    /// How often the leader looks for orphaned tasks (started by ecsrun, their run gone) in the clusters it
    /// has followed tasks in, and stops them. Off unless set: only for ECS clusters no other ecsrun
    /// controller starts tasks in (its tasks would look orphaned).
    #[arg(long, env = "ECSRUN_ORPHAN_SWEEP_INTERVAL", value_parser = humantime::parse_duration)]
    pub orphan_sweep_interval: Option<Duration>,

    /// Queue runs labelled `kueue.x-k8s.io/queue-name` under Kueue: each gets a Workload and launches
    /// only once Kueue admits it. Needs Kueue's CRDs installed (and RBAC for workloads, which the chart
    /// grants with `kueue.enabled`).
    #[arg(long, env = "ECSRUN_KUEUE", default_value_t = false)]
    pub kueue: bool,

    /// Run Tekton's CustomRuns whose customRef or taskSpec names `ecsrun.dev/v1alpha1` `EcsTaskRun` (ecsrun as
    /// a Tekton custom task). Needs Tekton Pipelines' CRDs installed (and RBAC for customruns, which the
    /// chart grants with `tekton.enabled`).
    #[arg(long, env = "ECSRUN_TEKTON", default_value_t = false)]
    pub tekton: bool,

    /// How old a task whose run is gone must be before the orphan sweep stops it.
    #[arg(long, env = "ECSRUN_ORPHAN_GRACE", default_value = "10m", value_parser = humantime::parse_duration)]
    pub orphan_grace: Duration,

    /// Task ARNs per DescribeTasks call when following tasks (ECS's maximum is 100). 1 describes each task
    /// on its own, as per-task pollers do: only for comparison.
    #[arg(long, env = "ECSRUN_DESCRIBE_BATCH_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub describe_batch_size: u16,

    /// Ceiling on DescribeTasks and ListTasks (ECS's cluster resource read class: 20/s, burst 100), as
    /// RATE/BURST per second, per region and account.
    #[arg(long, env = "ECSRUN_ECS_READ_CEILING", default_value = "15/30", value_parser = parse_ceiling)]
    pub ecs_read_ceiling: Ceiling,

    /// Ceiling on RunTask and StopTask together (ECS's cluster resource modify class: 40/s, burst 100).
    #[arg(long, env = "ECSRUN_ECS_MODIFY_CEILING", default_value = "30/60", value_parser = parse_ceiling)]
    pub ecs_modify_ceiling: Ceiling,

    /// Ceiling on RunTask alone (ECS's Fargate task launch rate: 20/s, burst 100). Kept below the modify
    /// ceiling so that StopTask always has room during a burst of launches.
    #[arg(long, env = "ECSRUN_ECS_LAUNCH_CEILING", default_value = "15/30", value_parser = parse_ceiling)]
    pub ecs_launch_ceiling: Ceiling,

    /// Ceiling on DescribeTaskDefinition (ECS's task definition read class: 20/s, burst 100).
    #[arg(long, env = "ECSRUN_ECS_TASK_DEFINITION_CEILING", default_value = "15/30", value_parser = parse_ceiling)]
    pub ecs_task_definition_ceiling: Ceiling,

    /// Ceiling on CloudWatch Logs GetLogEvents (a failed container's last lines; AWS allows 25/s).
    #[arg(long, env = "ECSRUN_LOGS_READ_CEILING", default_value = "10/20", value_parser = parse_ceiling)]
    pub logs_read_ceiling: Ceiling,

    /// Log format.
    #[arg(long, env = "ECSRUN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Name of this controller in Events (reportingController).
    #[arg(long, env = "ECSRUN_CONTROLLER_NAME", default_value = "ecsrun-controller")]
    pub controller_name: String,

    /// This replica's name in Events (reportingInstance) and the Lease; the pod name in a cluster.
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,

    /// Reconcile only while holding a coordination.k8s.io Lease, so several replicas can run safely.
    #[arg(long, env = "ECSRUN_LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,

    /// Namespace of the Lease; the controller's own namespace in a cluster.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub leader_elect_namespace: String,

    /// Name of the Lease.
    #[arg(long, env = "ECSRUN_LEADER_ELECT_LEASE", default_value = "ecsrun-controller")]
    pub leader_elect_lease: String,

    /// How long a Lease stays valid without renewal: the longest a crashed leader blocks a follower.
    #[arg(long, env = "ECSRUN_LEADER_ELECT_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub leader_elect_duration: Duration,

    /// How EcsRunPolicies apply: `enforce` refuses a launch they do not allow (and every run of a namespace
    /// none selects), `audit` lets it through with a Warning Event and a metric, `off` ignores them (a
    /// controller serving a single tenant).
    #[arg(long, env = "ECSRUN_POLICY_MODE", value_enum, default_value_t = Mode::Enforce)]
    pub policy_mode: Mode,

    /// External ID sent when a run assumes a role; `{cluster}` and `{namespace}` are filled in. A role's
    /// trust policy that requires it can only be assumed for runs of that namespace.
    #[arg(long, env = "ECSRUN_EXTERNAL_ID_FORMAT", default_value = "ecsrun:{cluster}:{namespace}")]
    pub external_id_format: String,

    /// This Kubernetes cluster's ID in external IDs. Default: the uid of the kube-system namespace.
    #[arg(long, env = "ECSRUN_CLUSTER_ID")]
    pub cluster_id: Option<String>,

    /// Tag assumed-role sessions with the run's namespace and name (the role's trust policy must allow
    /// sts:TagSession); `false` for roles that cannot.
    #[arg(long, env = "ECSRUN_STS_SESSION_TAGS", default_value_t = true, action = clap::ArgAction::Set)]
    pub sts_session_tags: bool,

    /// SQS queues that receive ECS's task state change events from an EventBridge rule, one per region,
    /// comma-separated (docs/task-events.md). With them, runs learn of a change in seconds and tasks are
    /// described only as a sweep; without them, every task is polled on its run's interval.
    #[arg(long, env = "ECSRUN_ECS_EVENTS_QUEUE_URL", value_delimiter = ',')]
    pub ecs_events_queue_url: Vec<String>,

    /// With task events, how long a task goes without an event before a DescribeTasks sweep looks at it
    /// (it catches an event that was dropped).
    #[arg(long, env = "ECSRUN_EVENTS_SWEEP_INTERVAL", default_value = "5m", value_parser = parse_sweep_interval)]
    pub events_sweep_interval: Duration,

    /// With task events, receivers per queue: each does one receive-apply-delete round trip at a time, so a
    /// burst of stops drains as many times faster.
    #[arg(long, env = "ECSRUN_EVENTS_RECEIVERS", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub events_receivers: u16,

    /// SQS endpoint URL override (emulators, VPC interface endpoints).
    #[arg(long, env = "ECSRUN_SQS_ENDPOINT_URL")]
    pub sqs_endpoint_url: Option<String>,

    /// Longest wait for in-flight reconciles on SIGTERM; keep it below the pod's grace period.
    #[arg(long, env = "ECSRUN_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
}

impl Config {
    pub fn ceilings(&self) -> Ceilings {
        Ceilings {
            read: self.ecs_read_ceiling,
            modify: self.ecs_modify_ceiling,
            launch: self.ecs_launch_ceiling,
            task_definition_read: self.ecs_task_definition_ceiling,
            log_read: self.logs_read_ceiling,
        }
    }

    /// The task events' queues, if any; the controller's own Events about them regard its Pod.
    pub fn task_events(&self, default_region: Option<&str>, pod: &str) -> Result<Option<EventsSettings>, String> {
        if self.ecs_events_queue_url.is_empty() {
            return Ok(None);
        }
        let sources = self
            .ecs_events_queue_url
            .iter()
            .map(|url| EventSource::new(url, default_region))
            .collect::<Result<Vec<_>, String>>()
            .map_err(|error| format!("--ecs-events-queue-url {error}"))?;
        let regarding = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod.to_owned()),
            namespace: Some(self.leader_elect_namespace.clone()),
            ..ObjectReference::default()
        };
        Ok(Some(EventsSettings {
            sources,
            sweep: self.events_sweep_interval,
            receivers: usize::from(self.events_receivers),
            sqs_endpoint_url: self.sqs_endpoint_url.clone(),
            call_timeout: self.ecs_call_timeout,
            regarding,
        }))
    }
}

/// `RATE/BURST`: calls per second sustained, and how many may go at once.
/// A task must be seen well within the hour ECS keeps it after it stops.
fn parse_poll_interval(text: &str) -> Result<Duration, String> {
    let every = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if (crate::api::POLL_INTERVAL_MIN..=crate::api::POLL_INTERVAL_MAX).contains(&every) {
        Ok(every)
    } else {
        Err("must be between 5s and 10m".into())
    }
}

/// A sweep is the safety net for dropped events: at least a poll interval, and within the hour ECS keeps a
/// stopped task.
fn parse_sweep_interval(text: &str) -> Result<Duration, String> {
    let every = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if (Duration::from_secs(30)..=Duration::from_secs(30 * 60)).contains(&every) {
        Ok(every)
    } else {
        Err("must be between 30s and 30m".into())
    }
}

fn parse_ceiling(text: &str) -> Result<Ceiling, String> {
    let (rate, burst) = text.split_once('/').ok_or("expected RATE/BURST, e.g. 15/30")?;
    let number = |part: &str| part.trim().parse::<u32>().map_err(|error| format!("{part:?}: {error}"));
    Ceiling::new(number(rate)?, number(burst)?).ok_or_else(|| "rate and burst must be at least 1".into())
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_flags_parse() {
        let config = Config::try_parse_from(["ecsrun-controller"]).unwrap();
        assert_eq!(config.default_poll_interval, Duration::from_secs(30));
        assert!(config.watch_namespaces.is_empty());
        assert_eq!(config.describe_batch_size, 100);
        assert!(config.ecs_events_queue_url.is_empty(), "polling unless a queue is given");
        assert_eq!(config.events_sweep_interval, Duration::from_secs(300));
        assert_eq!(config.ceilings(), Ceilings::default(), "the flags' defaults are the library's");
        let config = Config::try_parse_from([
            "ecsrun-controller",
            "--ecs-endpoint-url=http://127.0.0.1:5000",
            "--watch-namespaces=a,b",
            "--default-poll-interval=2m",
            "--log-format=json",
            "--ecs-read-ceiling=5/10",
            "--describe-batch-size=1",
            "--ecs-events-queue-url=https://sqs.eu-west-1.amazonaws.com/1/a,https://sqs.us-east-1.amazonaws.com/1/b",
            "--events-sweep-interval=10m",
        ])
        .unwrap();
        assert_eq!(config.ecs_read_ceiling, Ceiling::new(5, 10).unwrap());
        assert_eq!(config.describe_batch_size, 1);
        assert_eq!(config.ecs_events_queue_url.len(), 2);
        assert_eq!(config.events_sweep_interval, Duration::from_secs(600));
        for bad in [
            "--events-sweep-interval=5s",
            "--events-sweep-interval=2h",
            "--ecs-read-ceiling=5",
            "--ecs-read-ceiling=0/10",
            "--describe-batch-size=101",
            "--default-poll-interval=2h",
            "--default-poll-interval=1s",
        ] {
            assert!(Config::try_parse_from(["ecsrun-controller", bad]).is_err(), "{bad}");
        }
        assert_eq!(config.ecs_endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(config.watch_namespaces, vec!["a", "b"]);
        assert_eq!(config.default_poll_interval, Duration::from_secs(120));
        assert_eq!(config.log_format, LogFormat::Json);
    }
}
