//! What RunTask is asked for beyond the task definition: launch type and capacity providers, networking,
//! overrides, volumes configured at launch, placement, and the run's AWS credentials.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::describe::Describe;

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
