//! Prometheus metrics. Labels are bounded sets (operation, outcome, error label, reason); never a
//! per-object label, so the series count does not grow with the number of runs.

use prometheus::core::Collector;
use prometheus::{
    CounterVec, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder, exponential_buckets,
};

/// Registers a collector and notes its families' names, with the registry's `ecsrun_` prefix.
/// Runs one reconcile of a controller beside the runs' (schedules, CustomRuns) within `deadline`, and
/// counts it in `reconciles_total`; past the deadline it fails with `timed_out(deadline)`.
pub async fn bounded_reconcile<T, E>(
    metrics: &Metrics,
    deadline: std::time::Duration,
    work: impl std::future::Future<Output = Result<T, E>>,
    timed_out: impl FnOnce(std::time::Duration) -> E,
) -> Result<T, E> {
    let result = match tokio::time::timeout(deadline, work).await {
        Ok(result) => result,
        Err(_) => Err(timed_out(deadline)),
    };
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics.reconciles.with_label_values(&[outcome]).inc();
    result
}

fn register<C: Collector + 'static>(
    registry: &Registry,
    families: &mut Vec<String>,
    collector: C,
) -> Result<(), prometheus::Error> {
    families.extend(collector.desc().iter().map(|desc| format!("ecsrun_{}", desc.fq_name)));
    registry.register(Box::new(collector))
}

/// The version `--version` prints: the crate's, and the commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("ECSRUN_COMMIT"), ")");
/// The commit the binary was built from (`unknown` outside a checkout).
pub const COMMIT: &str = env!("ECSRUN_COMMIT");

pub struct Metrics {
    registry: Registry,
    /// Every family's name as /metrics shows it, for the dashboard's and alerts' test.
    families: Vec<String>,
    /// `process_*` (CPU, memory, file descriptors), under their standard unprefixed names.
    process: Registry,
    /// Reconciles by result (`ok` or `error`).
    pub reconciles: IntCounterVec,
    /// Reconcile errors by stable error label.
    pub reconcile_errors: IntCounterVec,
    pub reconcile_duration: HistogramVec,
    /// ECS API calls by operation and outcome (`ok`, `throttled`, `server_error`, ...).
    pub ecs_calls: IntCounterVec,
    pub ecs_call_duration: HistogramVec,
    /// Attempts the AWS SDK retried within one ECS call (throttles, 5xx, dropped connections), by operation.
    pub ecs_retries: IntCounterVec,
    /// Tasks DescribeTasks was asked about per call, to see batching at work.
    pub describe_batch_size: Histogram,
    /// ECS calls that had to wait for the rate ceiling, by throttle class.
    pub ecs_rate_limited: IntCounterVec,
    /// How long those calls waited, by throttle class.
    pub ecs_rate_limit_wait: HistogramVec,
    /// Tasks the tracker follows.
    pub tracked_tasks: IntGauge,
    /// Kubernetes API requests by verb (APPLY for server-side apply, WATCH) and resource.
    pub kube_requests: IntCounterVec,
    /// Runs that reached a final phase, by outcome and reason.
    pub runs_finished: IntCounterVec,
    /// Runs known to the controller that are not yet Succeeded or Failed.
    pub active_runs: IntGauge,
    /// Runs in the cluster by phase (`New` before the controller first wrote status).
    pub runs_by_phase: IntGaugeVec,
    /// Age of the oldest run in a state: `pending` (since creation, not launched yet or retrying) and
    /// `deleting` (since its deletion was asked for, its tasks not yet stopped): what stuck runs look like.
    pub oldest_run_seconds: IntGaugeVec,
    /// Tasks ecsrun started whose run no longer exists, stopped by the orphan sweep.
    pub orphans_stopped: IntCounter,
    pub runs_expired: IntCounter,
    /// Workloads created for queued runs (Kueue).
    pub workloads_created: IntCounter,
    /// Evicted Workloads whose quota ecsrun gave back once their run's tasks had stopped.
    pub workload_evictions: IntCounter,
    /// Runs waiting for Kueue's admission (reason Queued).
    pub runs_queued: IntGauge,
    /// Container logs read for a stopped task's results, by outcome (`lines`, `no_stream`, `unnamed`,
    /// `unreadable`).
    pub result_logs_read: IntCounterVec,
    /// Results found in those logs, by outcome (`read`, `refused`: malformed, or past the bounds).
    pub results: IntCounterVec,
    /// EcsTaskRuns created for Tekton CustomRuns.
    pub custom_runs_created: IntCounter,
    /// Tekton CustomRuns ecsrun marked done, by outcome (`succeeded`, `failed`).
    pub custom_runs_finished: IntCounterVec,
    /// From a Workload's creation (or its last release) to its admission as the run saw it.
    pub admission_wait: Histogram,
    /// Runs EcsTaskSchedules created for their slots, by namespace.
    pub schedule_runs_created: IntCounterVec,
    /// Slots EcsTaskSchedules passed over (missed while down or suspended, too late, or forbidden), by namespace.
    pub schedule_missed_slots: IntCounterVec,
    /// From a slot to the creation of its run.
    pub schedule_start_lag: Histogram,
    /// 1 while this replica reconciles (holds the Lease, or runs without leader election).
    pub leader: IntGauge,
    /// Launches that broke an EcsRunPolicy rule, by rule and mode (`enforce`: refused, `audit`: let through).
    pub policy_violations: IntCounterVec,
    /// vCPU-seconds the runs' tasks used, by namespace and capacity provider (for chargeback).
    pub task_vcpu_seconds: CounterVec,
    /// GiB-seconds of memory the runs' tasks used, by namespace and capacity provider.
    pub task_gib_seconds: CounterVec,
    /// Task state change events received, by outcome (`applied`, `stale`, `unfollowed`, `undescribed`,
    /// `confirming`, `untrusted`, `forged`, `foreign`, `malformed`).
    pub task_events: IntCounterVec,
    /// From ECS's change of a task (`detail.updatedAt`) to the event being applied.
    pub task_event_delay: Histogram,
    /// 1 while a region's task events flow; 0 while its tasks are polled instead, by region.
    pub task_events_flowing: IntGaugeVec,
    /// SQS calls by operation and outcome, and their latency.
    pub sqs_calls: IntCounterVec,
    pub sqs_call_duration: HistogramVec,
}

/// Capacity provider labels: ECS's own names as they are; any other name is an EC2 Auto Scaling group
/// provider, so the label set stays bounded whatever clusters call their providers.
pub fn capacity_provider_label(provider: Option<&str>) -> &'static str {
    match provider {
        Some("FARGATE") => "FARGATE",
        Some("FARGATE_SPOT") => "FARGATE_SPOT",
        Some("EXTERNAL") => "EXTERNAL",
        Some(_) => "EC2",
        None => "unknown",
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("ecsrun".into()), None)?;
        let mut families = Vec::new();
        let reconciles = IntCounterVec::new(Opts::new("reconciles_total", "Reconciles by result"), &["result"])?;
        let reconcile_errors =
            IntCounterVec::new(Opts::new("reconcile_errors_total", "Reconcile errors by error label"), &["error"])?;
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new("reconcile_duration_seconds", "Time spent in one reconcile")
                .buckets(exponential_buckets(0.005, 2.0, 12)?),
            &["result"],
        )?;
        let ecs_calls = IntCounterVec::new(
            Opts::new("ecs_calls_total", "ECS API calls by operation and outcome"),
            &["operation", "outcome"],
        )?;
        let ecs_call_duration = HistogramVec::new(
            HistogramOpts::new("ecs_call_duration_seconds", "ECS API call latency, SDK retries included")
                .buckets(exponential_buckets(0.01, 2.0, 12)?),
            &["operation"],
        )?;
        let ecs_retries = IntCounterVec::new(
            Opts::new("ecs_retries_total", "ECS call attempts the AWS SDK retried, by operation"),
            &["operation"],
        )?;
        let describe_batch_size = Histogram::with_opts(
            HistogramOpts::new("describe_tasks_batch_size", "Task ARNs per DescribeTasks call")
                .buckets(vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0]),
        )?;
        let ecs_rate_limited = IntCounterVec::new(
            Opts::new("ecs_rate_limited_total", "ECS calls that waited for the rate ceiling, by throttle class"),
            &["class"],
        )?;
        let ecs_rate_limit_wait = HistogramVec::new(
            HistogramOpts::new("ecs_rate_limit_wait_seconds", "Time ECS calls waited for the rate ceiling")
                .buckets(exponential_buckets(0.01, 2.0, 14)?),
            &["class"],
        )?;
        let tracked_tasks = IntGauge::new("tracked_tasks", "ECS tasks the tracker follows")?;
        let kube_requests = IntCounterVec::new(
            Opts::new("kube_requests_total", "Kubernetes API requests by verb and resource"),
            &["verb", "resource"],
        )?;
        let runs_finished = IntCounterVec::new(
            Opts::new("runs_finished_total", "Runs that reached Succeeded or Failed, by outcome and reason"),
            &["outcome", "reason"],
        )?;
        let active_runs = IntGauge::new("active_runs", "Runs not yet Succeeded or Failed")?;
        let runs_by_phase = IntGaugeVec::new(Opts::new("runs", "Runs in the cluster by phase"), &["phase"])?;
        let oldest_run_seconds = IntGaugeVec::new(
            Opts::new("oldest_run_seconds", "Age of the oldest run pending launch, or being deleted, by state"),
            &["state"],
        )?;
        register(&registry, &mut families, runs_by_phase.clone())?;
        register(&registry, &mut families, oldest_run_seconds.clone())?;
        let workloads_created = IntCounter::new("workloads_created_total", "Kueue Workloads created for queued runs")?;
        let workload_evictions = IntCounter::new(
            "workload_evictions_total",
            "Evicted Kueue Workloads whose quota was given back once their run's tasks stopped",
        )?;
        let runs_queued = IntGauge::new("runs_queued", "Runs waiting for Kueue's admission")?;
        let admission_wait = Histogram::with_opts(
            HistogramOpts::new("admission_wait_seconds", "From a Workload's creation or release to its admission")
                .buckets(exponential_buckets(0.25, 2.0, 16)?),
        )?;
        register(&registry, &mut families, workloads_created.clone())?;
        register(&registry, &mut families, workload_evictions.clone())?;
        register(&registry, &mut families, runs_queued.clone())?;
        register(&registry, &mut families, admission_wait.clone())?;
        let result_logs_read = IntCounterVec::new(
            Opts::new("result_logs_read_total", "Container logs read for a stopped task's results, by outcome"),
            &["outcome"],
        )?;
        let results = IntCounterVec::new(
            Opts::new("results_total", "Results found in tasks' logs, read or refused (malformed, past the bounds)"),
            &["outcome"],
        )?;
        register(&registry, &mut families, result_logs_read.clone())?;
        register(&registry, &mut families, results.clone())?;
        let custom_runs_created =
            IntCounter::new("custom_runs_created_total", "EcsTaskRuns created for Tekton CustomRuns")?;
        let custom_runs_finished = IntCounterVec::new(
            Opts::new("custom_runs_finished_total", "Tekton CustomRuns marked done, by outcome"),
            &["outcome"],
        )?;
        register(&registry, &mut families, custom_runs_created.clone())?;
        register(&registry, &mut families, custom_runs_finished.clone())?;
        let orphans_stopped =
            IntCounter::new("orphans_stopped_total", "Tasks ecsrun started whose run is gone, stopped by the sweep")?;
        let leader = IntGauge::new("leader", "1 while this replica reconciles (holds the Lease)")?;
        let policy_violations = IntCounterVec::new(
            Opts::new("policy_violations_total", "Launches that broke an EcsRunPolicy rule, by rule and mode"),
            &["rule", "mode"],
        )?;

        let task_vcpu_seconds = CounterVec::new(
            Opts::new("task_vcpu_seconds_total", "vCPU-seconds used by tasks, by namespace and capacity provider"),
            &["namespace", "capacity_provider"],
        )?;
        let task_gib_seconds = CounterVec::new(
            Opts::new("task_memory_gib_seconds_total", "GiB-seconds used by tasks, by namespace and capacity provider"),
            &["namespace", "capacity_provider"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "1, labelled with the version and commit of the running binary"),
            &["version", "commit"],
        )?;
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION"), COMMIT]).set(1);
        register(&registry, &mut families, build_info)?;
        let process = Registry::new();
        #[cfg(target_os = "linux")]
        {
            let collector = prometheus::process_collector::ProcessCollector::for_self();
            families.extend(collector.desc().iter().map(|desc| desc.fq_name.clone()));
            process.register(Box::new(collector))?;
        }
        register(&registry, &mut families, task_vcpu_seconds.clone())?;
        register(&registry, &mut families, task_gib_seconds.clone())?;
        register(&registry, &mut families, reconciles.clone())?;
        register(&registry, &mut families, reconcile_errors.clone())?;
        register(&registry, &mut families, reconcile_duration.clone())?;
        register(&registry, &mut families, ecs_calls.clone())?;
        register(&registry, &mut families, ecs_call_duration.clone())?;
        register(&registry, &mut families, ecs_retries.clone())?;
        register(&registry, &mut families, describe_batch_size.clone())?;
        register(&registry, &mut families, ecs_rate_limited.clone())?;
        register(&registry, &mut families, ecs_rate_limit_wait.clone())?;
        register(&registry, &mut families, tracked_tasks.clone())?;
        register(&registry, &mut families, kube_requests.clone())?;
        register(&registry, &mut families, runs_finished.clone())?;
        register(&registry, &mut families, active_runs.clone())?;
        register(&registry, &mut families, orphans_stopped.clone())?;
        let runs_expired = IntCounter::new(
            "runs_expired_total",
            "Finished runs deleted once their ttlSecondsAfterFinished had passed",
        )?;
        register(&registry, &mut families, runs_expired.clone())?;
        let schedule_runs_created = IntCounterVec::new(
            Opts::new("schedule_runs_created_total", "Runs EcsTaskSchedules created for their slots, by namespace"),
            &["namespace"],
        )?;
        let schedule_missed_slots = IntCounterVec::new(
            Opts::new(
                "schedule_missed_slots_total",
                "Slots EcsTaskSchedules passed over (missed while down or suspended, too late, or forbidden), by namespace",
            ),
            &["namespace"],
        )?;
        let schedule_start_lag = Histogram::with_opts(
            HistogramOpts::new("schedule_start_lag_seconds", "From a schedule's slot to the creation of its run")
                .buckets(exponential_buckets(0.05, 2.0, 14)?),
        )?;
        register(&registry, &mut families, schedule_runs_created.clone())?;
        register(&registry, &mut families, schedule_missed_slots.clone())?;
        register(&registry, &mut families, schedule_start_lag.clone())?;
        register(&registry, &mut families, leader.clone())?;
        register(&registry, &mut families, policy_violations.clone())?;
        let task_events = IntCounterVec::new(
            Opts::new("task_events_total", "ECS task state change events received from SQS, by outcome"),
            &["outcome"],
        )?;
        let task_event_delay = Histogram::with_opts(
            HistogramOpts::new("task_event_delay_seconds", "From ECS's change of a task to its event being applied")
                .buckets(exponential_buckets(0.05, 2.0, 14)?),
        )?;
        let task_events_flowing = IntGaugeVec::new(
            Opts::new("task_events_flowing", "1 while a region's task events flow, 0 while its tasks are polled"),
            &["region"],
        )?;
        let sqs_calls = IntCounterVec::new(
            Opts::new("sqs_calls_total", "SQS calls by operation and outcome"),
            &["operation", "outcome"],
        )?;
        let sqs_call_duration = HistogramVec::new(
            HistogramOpts::new("sqs_call_duration_seconds", "SQS call latency (ReceiveMessage includes its long poll)")
                .buckets(exponential_buckets(0.005, 2.0, 14)?),
            &["operation"],
        )?;
        register(&registry, &mut families, task_events.clone())?;
        register(&registry, &mut families, task_event_delay.clone())?;
        register(&registry, &mut families, task_events_flowing.clone())?;
        register(&registry, &mut families, sqs_calls.clone())?;
        register(&registry, &mut families, sqs_call_duration.clone())?;
        Ok(Self {
            registry,
            families,
            process,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            ecs_calls,
            ecs_call_duration,
            ecs_retries,
            describe_batch_size,
            ecs_rate_limited,
            ecs_rate_limit_wait,
            tracked_tasks,
            kube_requests,
            runs_finished,
            active_runs,
            runs_by_phase,
            oldest_run_seconds,
            orphans_stopped,
            runs_expired,
            workloads_created,
            workload_evictions,
            runs_queued,
            admission_wait,
            result_logs_read,
            results,
            custom_runs_created,
            custom_runs_finished,
            schedule_runs_created,
            schedule_missed_slots,
            schedule_start_lag,
            leader,
            policy_violations,
            task_vcpu_seconds,
            task_gib_seconds,
            task_events,
            task_event_delay,
            task_events_flowing,
            sqs_calls,
            sqs_call_duration,
        })
    }

    /// Every metric family's name, as /metrics shows it (histograms without `_bucket`, `_sum`, `_count`).
    pub fn family_names(&self) -> &[String] {
        &self.families
    }

    /// The text exposition format served on /metrics.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding our own well-formed families into a Vec cannot fail; an empty page is the fallback.
        let mut families = self.registry.gather();
        families.extend(self.process.gather());
        let _ = TextEncoder::new().encode(&families, &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_families_with_the_ecsrun_prefix() {
        let metrics = Metrics::new().unwrap();
        metrics.ecs_calls.with_label_values(&["RunTask", "throttled"]).inc();
        metrics.active_runs.set(3);
        let page = metrics.render();
        assert!(page.contains(r#"ecsrun_ecs_calls_total{operation="RunTask",outcome="throttled"} 1"#), "{page}");
        assert!(page.contains("ecsrun_active_runs 3"), "{page}");
        let build = format!(r#"ecsrun_build_info{{commit="{COMMIT}",version="{}"}} 1"#, env!("CARGO_PKG_VERSION"));
        assert!(page.contains(&build), "{page}");
        #[cfg(target_os = "linux")]
        assert!(page.contains("\nprocess_resident_memory_bytes "), "{page}");
    }

    #[test]
    fn capacity_provider_labels_stay_bounded() {
        assert_eq!(capacity_provider_label(Some("FARGATE_SPOT")), "FARGATE_SPOT");
        assert_eq!(capacity_provider_label(Some("team-a-asg-provider")), "EC2");
        assert_eq!(capacity_provider_label(Some("EC2")), "EC2");
        assert_eq!(capacity_provider_label(None), "unknown");
    }
}
