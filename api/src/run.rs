//! The `EcsTaskRun` API (`ecsrun.dev/v1alpha1`).
//!
//! Field names mirror ECS RunTask's own so ECS users recognise them. Validation lives in the schema
//! (OpenAPI limits, enums and CEL rules beside the fields they guard), so the API server rejects a bad
//! manifest before the controller ever sees it. Its status lives in `status.rs`.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::EcsTaskRunStatus;
use crate::describe::Describe;

/// Finalizer that keeps the object until its ECS task is stopped (or orphaned by policy).
pub const FINALIZER: &str = "ecsrun.dev/stop-task";

/// The message of every immutability rule of the spec.
pub const IMMUTABLE_SPEC: &str = "spec is immutable (only stop, with stopReason, suspend and ttlSecondsAfterFinished may be set); create a new EcsTaskRun";

/// Go-style duration made of whole units, e.g. `30s`, `5m`, `2h15m30s`.
const DURATION_PATTERN: &str = r"^([0-9]+(h|m|s|ms))+$";

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
    validation = Rule::new("!has(self.count) || self.count == 1 || !has(self.tags) || size(self.tags) <= 45")
        .message("with count > 1 ecsrun adds a fifth tag (ecsrun.dev/index): at most 45 tags")
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

    /// Tags put on the task (at most 46: ECS allows 50 and ecsrun adds its own four `ecsrun.dev/*`; 45
    /// with `count` > 1, which adds `ecsrun.dev/index`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 46))]
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

/// ECS launch type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum LaunchType {
    Fargate,
    Ec2,
    External,
}

/// One capacity provider in a strategy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapacityProviderStrategyItem {
    /// Capacity provider name, e.g. `FARGATE` or `FARGATE_SPOT`.
    #[schemars(length(min = 1, max = 255))]
    pub capacity_provider: String,
    /// Relative share of tasks for this provider (0-1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub weight: Option<i32>,
    /// Minimum number of tasks on this provider (0-100000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub base: Option<i32>,
}

/// Task networking.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkConfiguration {
    /// VPC subnets and security groups for an `awsvpc` task.
    pub awsvpc_configuration: AwsVpcConfiguration,
}

/// `awsvpc` network settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsVpcConfiguration {
    /// Subnet IDs (1-16).
    #[schemars(length(min = 1, max = 16))]
    #[schemars(transform = Describe("/items", "A subnet ID, e.g. `subnet-0123456789abcdef0`."))]
    pub subnets: Vec<String>,
    /// Security group IDs (at most 5). Absent: the VPC's default security group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    #[schemars(transform = Describe("/items", "A security group ID, e.g. `sg-0123456789abcdef0`."))]
    pub security_groups: Vec<String>,
    /// Whether the task's ENI gets a public IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assign_public_ip: Option<AssignPublicIp>,
}

/// Whether an awsvpc task gets a public IP.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum AssignPublicIp {
    Enabled,
    Disabled,
}

/// Overrides of the task definition for this run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskOverrides {
    /// Per-container overrides, matched by container name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub container_overrides: Vec<ContainerOverride>,
    /// Task CPU units, e.g. `1024` or `1 vCPU`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Task memory in MiB, e.g. `2048` or `2 GB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// IAM role ARN the containers assume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    /// IAM role ARN ECS uses to pull images and write logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    /// Fargate ephemeral storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<EphemeralStorage>,
}

/// A volume of the task definition configured at launch.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskVolumeConfiguration {
    /// The volume's name in the task definition.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// The EBS volume ECS creates and attaches.
    #[serde(rename = "managedEBSVolume")]
    pub managed_ebs_volume: ManagedEbsVolume,
}

/// An Amazon EBS volume ECS manages for the task.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("has(self.sizeInGiB) || has(self.snapshotId)")
        .message("set sizeInGiB, snapshotId, or both"),
    validation = Rule::new("!has(self.iops) || (has(self.volumeType) && self.volumeType in ['gp3', 'io1', 'io2'])")
        .message("iops is for gp3, io1 and io2 volumes"),
    validation = Rule::new("!has(self.throughput) || (has(self.volumeType) && self.volumeType == 'gp3')")
        .message("throughput is for gp3 volumes"),
    validation = Rule::new("!has(self.kmsKeyId) || (has(self.encrypted) && self.encrypted)")
        .message("kmsKeyId needs encrypted: true")
)]
pub struct ManagedEbsVolume {
    /// The infrastructure role ECS uses to create and attach the volume (AmazonECSInfrastructureRolePolicyForVolumes).
    #[schemars(regex(pattern = r"^arn:aws[a-zA-Z-]*:iam::[0-9]{12}:role/.+$"))]
    pub role_arn: String,
    /// Size in GiB: 1-16384 for gp2/gp3, 4-16384 for io1/io2 (ECS checks the volume type's range).
    #[serde(default, rename = "sizeInGiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65536))]
    pub size_in_gib: Option<i32>,
    /// `gp3` (ECS's default), `gp2`, `io1`, `io2`, `sc1`, `st1` or `standard`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(gp2|gp3|io1|io2|sc1|st1|standard)$"))]
    pub volume_type: Option<String>,
    /// Provisioned IOPS (gp3: 3000-16000, io1/io2: 100-256000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 256000))]
    pub iops: Option<i32>,
    /// Throughput in MiB/s (gp3: 125-2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 125, max = 2000))]
    pub throughput: Option<i32>,
    /// Encrypt the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    /// KMS key for the encryption; absent: the account's default EBS key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub kms_key_id: Option<String>,
    /// Snapshot the volume is created from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^snap-[0-9a-f]+$"))]
    pub snapshot_id: Option<String>,
    /// `ext3`, `ext4` or `xfs` (Linux; ECS's default ext4), `ntfs` (Windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(ext3|ext4|xfs|ntfs)$"))]
    pub filesystem_type: Option<String>,
}

/// Override of one container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerOverride {
    /// Container name as in the task definition.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Replaces the container's command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = Describe("/items", "One argument of the command."))]
    pub command: Option<Vec<String>>,
    /// Environment variables added to (or replacing) the container's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub environment: Vec<EnvVar>,
    /// CPU units for the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub cpu: Option<i32>,
    /// Hard memory limit in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub memory: Option<i32>,
    /// Soft memory limit in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub memory_reservation: Option<i32>,
    /// Files of environment variables in S3 (object ARNs of `.env` files), added to the container's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub environment_files: Vec<EnvironmentFile>,
    /// GPUs or an inference accelerator for the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub resource_requirements: Vec<ResourceRequirement>,
}

/// A file of environment variables in S3.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct EnvironmentFile {
    /// The S3 object's ARN, e.g. `arn:aws:s3:::my-bucket/job.env`.
    #[schemars(regex(pattern = r"^arn:aws[a-zA-Z-]*:s3:::.+$"), length(max = 2048))]
    pub value: String,
    /// `s3`, the only kind ECS reads.
    #[serde(rename = "type")]
    pub type_: EnvironmentFileType,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnvironmentFileType {
    S3,
}

/// A GPU count or an inference accelerator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(cel, validation = Rule::new("self.type != 'GPU' || self.value.matches('^[1-9][0-9]{0,2}$')")
    .message("a GPU requirement's value is a number of GPUs (1-999)"))]
pub struct ResourceRequirement {
    /// `GPU` or `InferenceAccelerator`.
    #[serde(rename = "type")]
    pub type_: ResourceRequirementType,
    /// Number of GPUs, or the inference accelerator's deviceName.
    #[schemars(length(min = 1, max = 255))]
    pub value: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ResourceRequirementType {
    #[serde(rename = "GPU")]
    Gpu,
    InferenceAccelerator,
}

/// An environment variable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct EnvVar {
    /// Variable name.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Variable value.
    #[serde(default)]
    pub value: String,
}

/// Fargate ephemeral storage size.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EphemeralStorage {
    /// Size in GiB (21-200).
    #[serde(rename = "sizeInGiB")]
    #[schemars(range(min = 21, max = 200))]
    pub size_in_gib: i32,
}

/// Whether task definition tags are copied to the task.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PropagateTags {
    TaskDefinition,
    None,
}

/// A placement constraint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct PlacementConstraint {
    /// `distinctInstance` or `memberOf`.
    #[serde(rename = "type")]
    pub type_: PlacementConstraintType,
    /// Cluster query language expression (for `memberOf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2000))]
    pub expression: Option<String>,
}

/// Placement constraint type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PlacementConstraintType {
    #[serde(rename = "distinctInstance")]
    DistinctInstance,
    #[serde(rename = "memberOf")]
    MemberOf,
}

/// A placement strategy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct PlacementStrategy {
    /// `random`, `spread` or `binpack`.
    #[serde(rename = "type")]
    pub type_: PlacementStrategyType,
    /// Field the strategy applies to, e.g. `attribute:ecs.availability-zone` or `memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Placement strategy type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlacementStrategyType {
    Random,
    Spread,
    Binpack,
}

/// Credentials for one run: an IAM role to assume, or static keys from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(cel, validation = Rule::new("has(self.assumeRoleArn) != has(self.secretRef)")
    .message("set exactly one of assumeRoleArn or secretRef"))]
pub struct Credentials {
    /// IAM role assumed (through STS) with the controller's own identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^arn:aws[a-zA-Z-]*:iam::[0-9]{12}:role/.+$"))]
    pub assume_role_arn: Option<String>,
    /// External ID to send instead of the namespace's own (`ecsrun:<cluster id>:<namespace>` by default);
    /// only where an EcsRunPolicy allows runs to choose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 1224))]
    pub external_id: Option<String>,
    /// Deprecated and ignored: sessions are named after the run (`<namespace>.<name>`) and tagged with
    /// it, so CloudTrail shows which run acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[\w+=,.@-]{2,64}$"))]
    pub session_name: Option<String>,
    /// Secret in this namespace with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optionally AWS_SESSION_TOKEN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

/// Reference to a Secret in the run's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretReference {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
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
    #[schemars(regex(pattern = DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('5s') && duration(self) <= duration('10m')")
        .message("pollInterval must be between 5s and 10m"))]
    pub poll_interval: Option<String>,
    /// Deadline for the whole run, counted from the object's creation; exceeded, the task is stopped and the
    /// run fails with reason DeadlineExceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("timeout must be at least 1s"))]
    pub timeout: Option<String>,
    /// The longest a task may take from its launch to RUNNING (PROVISIONING, PENDING, ACTIVATING: capacity,
    /// image pulls, ENIs), as a duration such as `10m`. Past it, the task is stopped and the attempt fails
    /// with reason StartTimeout, retried under `retryPolicy` like any failed attempt. Absent: only
    /// `timeout` bounds a task that never starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('10s')").message("startTimeout must be at least 10s"))]
    pub start_timeout: Option<String>,
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

/// Retries of failed attempts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.maxFailedIndexes) || (has(self.failFast) && !self.failFast)")
        .message("maxFailedIndexes needs failFast: false (failFast stops at the first failed task)")
)]
pub struct RetryPolicy {
    /// Failed attempts relaunched (with exponential backoff) before the run fails, counted per task index
    /// (as Heimdall's max_fail_count). Capacity shortages, tasks that failed to start for transient
    /// reasons and Spot interruptions are retried without counting.
    #[serde(default)]
    #[schemars(range(min = 0, max = 20))]
    pub backoff_limit: i32,
    /// With `count` > 1: once one task has used up its retries (or a FailRun rule matched), stop the
    /// others, launch no more, and fail the run. False: the other tasks run to their end first.
    #[serde(default = "default_true")]
    pub fail_fast: bool,
    /// With `count` > 1 and `failFast: false`: once more than this many tasks have failed for good, the
    /// others are stopped, nothing more launches, and the run fails (Job's `maxFailedIndexes`). Absent:
    /// every task runs to its end. However many fail, the run fails at its end unless `tasksToSucceed`
    /// was reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_failed_indexes: Option<i32>,
    /// What a failed attempt means, as a Job's podFailurePolicy and AWS Batch's evaluateOnExit: the first
    /// rule that matches the attempt's exit codes, stop code and stopped reason decides (FailRun, Ignore
    /// or Count). No match: ecsrun's own judgement (capacity shortages, transient start failures and Spot
    /// interruptions retried without counting; anything else counted against `backoffLimit`). Rules are
    /// read only for failed attempts: a task judged successful stays so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub rules: Vec<RetryRule>,
}

/// One rule on a failed attempt: it matches when every condition it sets holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("has(self.onExitCodes) || has(self.onStopCodes) || has(self.onStoppedReason)")
        .message("a rule needs onExitCodes, onStopCodes or onStoppedReason")
)]
pub struct RetryRule {
    /// `FailRun`: the run fails at once, without retrying. `Ignore`: retried without counting against
    /// `backoffLimit` (at most 10 such retries). `Count`: counted against `backoffLimit`, even for what
    /// ecsrun would retry freely (a Spot interruption, say).
    pub action: RetryRuleAction,
    /// Exit codes of the containers `successPolicy` judges that exited non-zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exit_codes: Option<ExitCodeMatch>,
    /// The task's ECS stop code is one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 6))]
    #[x_kube(validation = Rule::new("self.all(c, self.exists_one(d, d == c))").message("onStopCodes must not repeat"))]
    pub on_stop_codes: Vec<StopCode>,
    /// The task's stoppedReason matches this pattern, case aside: `*` stands for any run of characters and
    /// `?` for one, e.g. `*Timeout waiting for network interface*` or `CannotPullContainerError:*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub on_stopped_reason: Option<String>,
}

/// ECS's stop codes (a task's `stopCode`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum StopCode {
    /// The task never started: capacity, image pulls, ENIs, secrets.
    TaskFailedToStart,
    /// An essential container exited.
    EssentialContainerExited,
    /// Someone (or ecsrun) called StopTask.
    UserInitiated,
    /// Fargate Spot took its capacity back.
    SpotInterruption,
    /// The container instance or Fargate host is being retired.
    TerminationNotice,
    /// ECS's service scheduler stopped it.
    ServiceSchedulerInitiated,
}

impl StopCode {
    /// The code as ECS spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            StopCode::TaskFailedToStart => "TaskFailedToStart",
            StopCode::EssentialContainerExited => "EssentialContainerExited",
            StopCode::UserInitiated => "UserInitiated",
            StopCode::SpotInterruption => "SpotInterruption",
            StopCode::TerminationNotice => "TerminationNotice",
            StopCode::ServiceSchedulerInitiated => "ServiceSchedulerInitiated",
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { backoff_limit: 0, fail_fast: true, max_failed_indexes: None, rules: Vec::new() }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RetryRuleAction {
    FailRun,
    Ignore,
    Count,
}

/// Exit codes of the judged containers that exited non-zero: the rule matches when at least one of them
/// is `In` (or `NotIn`) `values`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("self.operator != 'In' || !(0 in self.values)")
        .message("exit code 0 is a success: it cannot be In a rule's values"),
    validation = Rule::new("self.values.all(v, self.values.exists_one(w, w == v))")
        .message("values must not repeat")
)]
pub struct ExitCodeMatch {
    /// Only this container's exit code; absent: any judged container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub container_name: Option<String>,
    /// `In`: matches an exit code among `values`; `NotIn`: a non-zero exit code not among them.
    pub operator: ExitCodeOperator,
    /// Exit codes (1-64 of them, each 0-255).
    #[schemars(length(min = 1, max = 64), inner(range(min = 0, max = 255)))]
    #[schemars(transform = Describe("/items", "An exit code, 0-255."))]
    pub values: Vec<i32>,
}

/// How `values` are compared with the exit codes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ExitCodeOperator {
    In,
    NotIn,
}
