//! Command-line flags, each also settable from the environment.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Parser, Debug, Clone)]
#[command(name = "ecsrun-controller", version, about = "Runs AWS ECS tasks declared as EcsTaskRun resources")]
pub struct Config {
    /// ECS endpoint URL override (emulators, VPC interface endpoints).
    #[arg(long, env = "ECSRUN_ECS_ENDPOINT_URL")]
    pub ecs_endpoint_url: Option<String>,

    /// STS endpoint URL override, used for spec.credentials.assumeRoleArn.
    #[arg(long, env = "ECSRUN_STS_ENDPOINT_URL")]
    pub sts_endpoint_url: Option<String>,

    /// Region for runs without spec.region. Falls back to AWS_REGION / AWS_DEFAULT_REGION / the AWS profile.
    #[arg(long, env = "ECSRUN_DEFAULT_REGION")]
    pub default_region: Option<String>,

    /// Poll interval for runs without spec.wait.pollInterval.
    #[arg(long, env = "ECSRUN_DEFAULT_POLL_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
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

    /// How long a DescribeTasks batch collects lookups before it is sent (it is sent at once when full).
    #[arg(long, env = "ECSRUN_DESCRIBE_BATCH_WINDOW", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub describe_batch_window: Duration,

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

    /// Longest wait for in-flight reconciles on SIGTERM; keep it below the pod's grace period.
    #[arg(long, env = "ECSRUN_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
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
        let config = Config::try_parse_from([
            "ecsrun-controller",
            "--ecs-endpoint-url=http://127.0.0.1:5000",
            "--watch-namespaces=a,b",
            "--default-poll-interval=2m",
            "--log-format=json",
        ])
        .unwrap();
        assert_eq!(config.ecs_endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(config.watch_namespaces, vec!["a", "b"]);
        assert_eq!(config.default_poll_interval, Duration::from_secs(120));
        assert_eq!(config.log_format, LogFormat::Json);
    }
}
