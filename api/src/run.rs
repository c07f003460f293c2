//! The `EcsTaskRun` API (`ecsrun.dev/v1alpha1`).
//!
//! Field names mirror ECS RunTask's own so ECS users recognise them. Validation lives in the schema
//! (OpenAPI limits, enums and CEL rules beside the fields they guard), so the API server rejects a bad
//! manifest before the controller ever sees it. Its status lives in `status.rs`.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::describe::Describe;
use crate::{
    CapacityProviderStrategyItem, Credentials, EcsTaskRunStatus, GoDuration, LaunchType, NetworkConfiguration,
    POLL_INTERVAL_RULE, PlacementConstraint, PlacementStrategy, PropagateTags, RetryPolicy, START_TIMEOUT_RULE,
    TIMEOUT_RULE, TaskOverrides, TaskVolumeConfiguration,
};

/// Finalizer that keeps the object until its ECS task is stopped (or orphaned by policy).
pub const FINALIZER: &str = "ecsrun.dev/stop-task";

/// The message of every immutability rule of the spec.
pub const IMMUTABLE_SPEC: &str = "spec is immutable (only stop, with stopReason, suspend and ttlSecondsAfterFinished may be set); create a new EcsTaskRun";

/// A run of one ECS task (with retries) declared as a Kubernetes resource.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ecsrun.dev",
    version = "v1alpha1",
    kind = "EcsTaskRun",
    doc = "EcsTaskRun runs one AWS ECS task (or `count` indexed tasks) and follows it to the end: RunTask, DescribeTasks until it stops, exit codes and the verdict in status, StopTask when the run is deleted or stopped. Its spec cannot change after creation: re-run a job with a new EcsTaskRun.",
    plural = "ecstaskruns",
    shortname = "etr",
    category = "ecsrun",
    namespaced,
    status = "EcsTaskRunStatus",
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Tasks","type":"string","jsonPath":".status.progress"}"#,
    printcolumn = r#"{"name":"Task","type":"string","jsonPath":".status.taskId"}"#,
    printcolumn = r#"{"name":"Last-Status","type":"string","jsonPath":".status.lastStatus"}"#,
    printcolumn = r#"{"name":"Exit-Codes","type":"string","jsonPath":".status.exitCodes"}"#,
    printcolumn = r#"{"name":"Attempts","type":"integer","priority":1,"jsonPath":".status.attemptCount"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.reason"}"#,
    printcolumn = r#"{"name":"Results","type":"string","priority":1,"jsonPath":".status.results"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("[has(self.taskDefinition), has(self.taskDefinitionTemplate), has(self.taskArn)].filter(set, set).size() == 1")
        .message("set exactly one of taskDefinition, taskDefinitionTemplate or taskArn"),
    validation = Rule::new("!has(self.taskArn) || !has(self.count) || self.count == 1")
        .message("taskArn follows one task: count must be 1"),
    validation = Rule::new("!(has(oldSelf.stop) && oldSelf.stop) || (has(self.stop) && self.stop)")
        .message("stop cannot be undone; create a new EcsTaskRun"),
    validation = Rule::new("!(has(self.taskArn) && has(self.suspend) && self.suspend)")
        .message("a run following a task started elsewhere (taskArn) cannot be suspended; use stop"),
    validation = Rule::new("!(has(self.launchType) && has(self.capacityProviderStrategy))")
        .message("launchType and capacityProviderStrategy are mutually exclusive"),
    validation = Rule::new("!has(self.parallelism) || self.parallelism <= (has(self.count) ? self.count : 1)")
        .message("parallelism cannot exceed count"),
    validation = Rule::new("!has(self.tasksToSucceed) || self.tasksToSucceed <= (has(self.count) ? self.count : 1)")
        .message("tasksToSucceed cannot exceed count"),
    validation = Rule::new(
        "!has(self.tags) || size(self.tags) <= 45 - (has(self.count) && self.count > 1 ? 1 : 0) \
         - (has(self.deletionPolicy) && self.deletionPolicy == 'Orphan' ? 1 : 0)"
    )
    .message(
        "ECS allows 50 tags and ecsrun adds five, a sixth with count > 1 (ecsrun.dev/index) and another with \
         deletionPolicy Orphan (ecsrun.dev/deletion-policy): at most 45 tags, 44 or 43 with those"
    )
)]
pub struct EcsTaskRunSpec {
    /// ECS cluster to run the task in: short name or full ARN.
    #[schemars(length(min = 1, max = 2048))]
    pub cluster: String,

    /// Task definition: `family`, `family:revision` or full ARN. A bare family runs its latest ACTIVE revision.
    /// Exactly one of `taskDefinition` and `taskDefinitionTemplate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub task_definition: Option<String>,

    /// A task definition written here, in RegisterTaskDefinition's JSON shape: registered once per distinct
    /// content (the revision is tagged `ecsrun.dev/template-hash`) and reused by every run of the same
    /// template; `status.taskDefinitionArn` shows the revision. Exactly one of `taskDefinition` and
    /// `taskDefinitionTemplate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition_template: Option<crate::TaskDefinitionTemplate>,

    /// A task started elsewhere (console, CLI, another scheduler), to follow instead of launching one: its
    /// status, `wait`, `timeout` and `stop` work as for a task ecsrun launched, but it is never relaunched,
    /// and deleting the run leaves it running unless `deletionPolicy: Stop`. Its region is the ARN's
    /// unless `region` says otherwise. Exactly one of `taskDefinition`, `taskDefinitionTemplate` and
    /// `taskArn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:task/.+$"))]
    pub task_arn: Option<String>,

    /// Stop the run: its live tasks get StopTask (with `stopReason`), nothing more is launched, and the run
    /// ends Failed with reason `Stopped` once ECS reports them STOPPED (a task that had already succeeded
    /// keeps its success). The one field that may change after creation, from false to true only; a run
    /// already finished is left as it is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop: bool,

    /// Suspend the run, as a Job's `suspend` (and so as Kueue admits runs): created suspended, nothing
    /// launches; set while tasks run, they are stopped and those attempts are not counted as failures;
    /// cleared, the run launches again and its `timeout` starts over. May change after creation, either
    /// way. A `Suspended` condition says so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,

    /// Tasks in this run (1-100), each with its own index (`ECSRUN_TASK_INDEX`, 0 to count-1), launch,
    /// retries and outcome in `status.tasks`. The run succeeds when every index has succeeded.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    #[schemars(range(min = 1, max = 100))]
    pub count: i32,

    /// With `count` > 1: the run succeeds as soon as this many of its tasks have succeeded (1-count), as a
    /// Job's `successPolicy.succeededCount`; tasks still running are stopped and the rest never launched
    /// (reason `NotNeeded`). Absent: every task must succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub tasks_to_succeed: Option<i32>,

    /// At most this many of the run's tasks at once (1-count). Absent: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub parallelism: Option<i32>,

    /// AWS region of the cluster. Defaults to the controller's region (`--default-region` / `AWS_REGION`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$"))]
    pub region: Option<String>,

    /// Launch type. Mutually exclusive with `capacityProviderStrategy`; neither means the cluster's default strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<LaunchType>,

    /// Capacity provider strategy, e.g. FARGATE_SPOT with FARGATE as fallback. Mutually exclusive with `launchType`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 20))]
    pub capacity_provider_strategy: Option<Vec<CapacityProviderStrategyItem>>,

    /// Fargate platform version, e.g. `LATEST` or `1.4.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub platform_version: Option<String>,

    /// Network configuration; required by ECS for `awsvpc` task definitions (all of Fargate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_configuration: Option<NetworkConfiguration>,

    /// Overrides applied to the task definition for this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<TaskOverrides>,

    /// Task group name, e.g. `family:nightly-report`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub group: Option<String>,

    /// Tags put on the task (at most 45: ECS allows 50 and ecsrun adds its own five `ecsrun.dev/*`; one
    /// fewer with `count` > 1, which adds `ecsrun.dev/index`, and one fewer with `deletionPolicy: Orphan`,
    /// which adds `ecsrun.dev/deletion-policy`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 45))]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('ecsrun.dev/') && !k.startsWith('aws:'))")
        .message("tag keys starting with ecsrun.dev/ or aws: are reserved"))]
    #[schemars(transform = Describe("/additionalProperties", "The tag's value (up to 256 characters)."))]
    pub tags: BTreeMap<String, String>,

    /// Copy tags from the task definition to the task. SERVICE is not valid for standalone tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate_tags: Option<PropagateTags>,

    /// Placement constraints (EC2 / EXTERNAL launch types only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub placement_constraints: Vec<PlacementConstraint>,

    /// Placement strategy (EC2 / EXTERNAL launch types only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub placement_strategy: Vec<PlacementStrategy>,

    /// Enable ECS Exec for the task (requires a task role with the SSM permissions).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_execute_command: bool,

    /// Have ECS add its managed tags (`aws:ecs:clusterName`) to the task, for cost allocation by cluster.
    #[serde(default, rename = "enableECSManagedTags", skip_serializing_if = "std::ops::Not::not")]
    pub enable_ecs_managed_tags: bool,

    /// Volumes configured at launch: an Amazon EBS volume ECS creates for the task and deletes after it
    /// (scratch space beyond Fargate's 200 GiB of ephemeral storage). The task definition declares the
    /// volume with `configuredAtLaunch: true`. ECS takes one per task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1))]
    pub volume_configurations: Vec<TaskVolumeConfiguration>,

    /// AWS credentials for this run. Absent: the controller's own identity (IRSA, EKS Pod Identity, env...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,

    /// What to wait for, how often to poll and for how long.
    #[serde(default)]
    pub wait: WaitPolicy,

    /// Which exit codes decide whether a stopped task succeeded.
    #[serde(default)]
    pub success_policy: SuccessPolicy,

    /// Reason sent with StopTask (on delete, timeout or `stop`); shows in the task's stoppedReason. May be
    /// set or changed in the same update that sets `stop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub stop_reason: Option<String>,

    /// What happens to a task still running when this object is deleted. Absent: Stop, or Orphan for a
    /// run that follows a task it did not start (`taskArn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// Delete the run this many seconds after it finished (Succeeded, Failed or Unknown), as Job's
    /// `ttlSecondsAfterFinished`; 0 deletes it as soon as it finishes. The deletion goes through the
    /// finalizer as any other. Absent: kept until someone deletes it. May change after creation (to keep
    /// a finished run longer, or let it go sooner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 31536000))]
    pub ttl_seconds_after_finished: Option<i32>,

    /// What the run reads of its containers' CloudWatch logs (awslogs driver).
    #[serde(default)]
    pub logs: LogsPolicy,

    /// Read the results the task prints (`::ecsrun-result name=value`) into `status.results`
    /// (`status.tasks[].results` with `count` > 1) when it stops. Absent: no results are read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<crate::ResultsSpec>,

    /// How failed attempts are retried.
    #[serde(default)]
    pub retry_policy: RetryPolicy,

    /// Give every container ECSRUN_NAME, ECSRUN_NAMESPACE, ECSRUN_UID, ECSRUN_ATTEMPT, ECSRUN_TASK_INDEX and
    /// ECSRUN_TASK_COUNT environment variables.
    #[serde(default = "default_true")]
    pub inject_run_identity: bool,
}

fn default_true() -> bool {
    true
}

fn one() -> i32 {
    1
}

fn is_one(value: &i32) -> bool {
    *value == 1
}

impl EcsTaskRunSpec {
    /// Every duration of the spec that is set, by its path: each policy lists its own.
    pub fn durations(&self) -> impl Iterator<Item = (&'static str, &GoDuration)> {
        self.wait.durations().chain(self.retry_policy.durations())
    }

    /// A spec with nothing but its cluster set: every other field as a manifest that leaves it out
    /// reads (one task, run identity injected, the default wait, success and retry policies).
    pub fn new(cluster: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
            task_definition: None,
            task_definition_template: None,
            task_arn: None,
            stop: false,
            suspend: false,
            count: one(),
            tasks_to_succeed: None,
            parallelism: None,
            region: None,
            launch_type: None,
            capacity_provider_strategy: None,
            platform_version: None,
            network_configuration: None,
            overrides: None,
            group: None,
            tags: BTreeMap::new(),
            propagate_tags: None,
            placement_constraints: Vec::new(),
            placement_strategy: Vec::new(),
            enable_execute_command: false,
            enable_ecs_managed_tags: false,
            volume_configurations: Vec::new(),
            credentials: None,
            wait: WaitPolicy::default(),
            success_policy: SuccessPolicy::default(),
            stop_reason: None,
            deletion_policy: None,
            ttl_seconds_after_finished: None,
            logs: LogsPolicy::default(),
            results: None,
            retry_policy: RetryPolicy::default(),
            inject_run_identity: default_true(),
        }
    }

    /// What the run names as its task definition, for people: the reference, or the template's family.
    pub fn task_definition_name(&self) -> &str {
        match (&self.task_definition, &self.task_definition_template) {
            (Some(reference), _) => reference,
            (None, Some(template)) => &template.family,
            (None, None) => self.task_arn.as_deref().unwrap_or_default(),
        }
    }

    /// What deleting the run does to a live task: as set, else Stop for tasks ecsrun launched and Orphan
    /// for an adopted one (`taskArn`).
    pub fn deletion_policy(&self) -> DeletionPolicy {
        self.deletion_policy.unwrap_or(if self.task_arn.is_some() {
            DeletionPolicy::Orphan
        } else {
            DeletionPolicy::Stop
        })
    }

    /// How many tasks may run at once: `parallelism`, else all of them.
    pub fn max_parallel(&self) -> usize {
        self.parallelism.unwrap_or(self.count).clamp(1, self.count.max(1)) as usize
    }
}

/// What the run waits for, and how.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitPolicy {
    /// The run succeeds once the task is launched, is RUNNING, or has STOPPED (then judged by `successPolicy`).
    #[serde(default, rename = "for")]
    pub for_: WaitFor,
    /// How often the task is polled, as a duration such as `30s` or `5m` (5s to 10m: ECS forgets a
    /// stopped task about an hour after it stops, so a task must be seen well within that).
    /// Absent: the controller's `--default-poll-interval` (30s unless configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(POLL_INTERVAL_RULE).message("pollInterval must be between 5s and 10m"))]
    pub poll_interval: Option<GoDuration>,
    /// Deadline for the whole run, counted from the object's creation; exceeded, the task is stopped and the
    /// run fails with reason DeadlineExceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(TIMEOUT_RULE).message("timeout must be at least 1s"))]
    pub timeout: Option<GoDuration>,
    /// The longest a task may take from its launch to RUNNING (PROVISIONING, PENDING, ACTIVATING: capacity,
    /// image pulls, ENIs), as a duration such as `10m`. Past it, the task is stopped and the attempt fails
    /// with reason StartTimeout, retried under `retryPolicy` like any failed attempt. Absent: only
    /// `timeout` bounds a task that never starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(START_TIMEOUT_RULE).message("startTimeout must be at least 10s"))]
    pub start_timeout: Option<GoDuration>,
}

impl WaitPolicy {
    pub fn durations(&self) -> impl Iterator<Item = (&'static str, &GoDuration)> {
        [
            ("spec.wait.pollInterval", &self.poll_interval),
            ("spec.wait.timeout", &self.timeout),
            ("spec.wait.startTimeout", &self.start_timeout),
        ]
        .into_iter()
        .filter_map(|(path, value)| Some((path, value.as_ref()?)))
    }
}

/// The task state that completes a run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum WaitFor {
    /// RunTask returned a task: fire and forget.
    Launched,
    /// The task reached RUNNING.
    Running,
    /// The task STOPPED; success is judged by `successPolicy`.
    #[default]
    Stopped,
}

/// How a stopped task is judged.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SuccessPolicy {
    /// Every essential container exited 0; sidecars (non-essential containers) may exit with anything.
    #[default]
    EssentialContainers,
    /// Every container exited 0.
    AllContainers,
    /// Any exit codes; only a task that failed to start fails the run.
    TaskStopped,
}

/// What happens to the task when the object is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// StopTask, and keep the object until ECS reports the task STOPPED.
    Stop,
    /// Leave the task running.
    Orphan,
}

/// What the run reads of its containers' logs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogsPolicy {
    /// When a task stops with a failing container, the last this many lines that container wrote to
    /// CloudWatch Logs (awslogs driver) go into `status.containers[].logTail` (at most 4 KiB) and the
    /// Failed or Retrying Event. 0 turns it off.
    #[serde(default = "default_tail_lines")]
    #[schemars(range(min = 0, max = 200))]
    pub tail_lines: i32,
}

fn default_tail_lines() -> i32 {
    20
}

impl Default for LogsPolicy {
    fn default() -> Self {
        Self { tail_lines: default_tail_lines() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_spec_is_what_a_manifest_naming_only_its_cluster_reads() {
        let read: EcsTaskRunSpec = serde_json::from_value(serde_json::json!({"cluster": "batch"})).unwrap();
        assert_eq!(EcsTaskRunSpec::new("batch"), read);
    }
}
