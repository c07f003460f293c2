//! `spec.taskDefinitionTemplate`: a task definition written in the run itself, in ECS's own
//! RegisterTaskDefinition JSON shape (the fields batch jobs use). The controller registers each distinct
//! content once, tags the revision with the content's hash, and reuses it for every run of that template.
//! A field outside this subset is refused by the API server (kubectl's strict field validation), never
//! dropped silently.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::describe::Describe;

use crate::{EnvVar, EnvironmentFile, EphemeralStorage, ResourceRequirement};

const ROLE_ARN: &str = r"^arn:aws[a-zA-Z-]*:iam::[0-9]{12}:role/.+$";

/// RegisterTaskDefinition's input, as ECS's JSON names it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("self.containerDefinitions.exists(c, !has(c.essential) || c.essential)")
        .message("at least one container must be essential"),
    validation = Rule::new("!has(self.requiresCompatibilities) || !('FARGATE' in self.requiresCompatibilities) || (has(self.networkMode) && self.networkMode == 'awsvpc' && has(self.cpu) && has(self.memory))")
        .message("a FARGATE task definition needs networkMode awsvpc, cpu and memory"),
    validation = Rule::new("self.containerDefinitions.all(c, !has(c.mountPoints) || c.mountPoints.all(m, has(self.volumes) && self.volumes.exists(v, v.name == m.sourceVolume)))")
        .message("every mountPoints[].sourceVolume must name one of volumes"),
    validation = Rule::new("self.containerDefinitions.all(c, !has(c.dependsOn) || c.dependsOn.all(d, self.containerDefinitions.exists(o, o.name == d.containerName)))")
        .message("every dependsOn[].containerName must name one of containerDefinitions")
)]
pub struct TaskDefinitionTemplate {
    /// The family the revisions are registered in (letters, digits, `-`, `_`; up to 255).
    #[schemars(regex(pattern = r"^[a-zA-Z0-9_-]{1,255}$"))]
    pub family: String,
    /// The containers (1-10), names unique.
    #[schemars(length(min = 1, max = 10))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub container_definitions: Vec<ContainerDefinitionTemplate>,
    /// Task CPU, e.g. `256` or `1 vCPU` (required by Fargate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub cpu: Option<String>,
    /// Task memory, e.g. `512` or `2 GB` (required by Fargate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub memory: Option<String>,
    /// `awsvpc` (Fargate's only mode), `bridge`, `host` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(awsvpc|bridge|host|none)$"))]
    pub network_mode: Option<String>,
    /// `FARGATE`, `EC2` and/or `EXTERNAL`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3), inner(regex(pattern = r"^(FARGATE|EC2|EXTERNAL)$")))]
    #[schemars(transform = Describe("/items", "`FARGATE`, `EC2` or `EXTERNAL`."))]
    pub requires_compatibilities: Vec<String>,
    /// The role ECS uses to pull images, read secrets and write logs (the controller needs iam:PassRole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ROLE_ARN))]
    pub execution_role_arn: Option<String>,
    /// The role the containers act as (the controller needs iam:PassRole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ROLE_ARN))]
    pub task_role_arn: Option<String>,
    /// Volumes the containers mount (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub volumes: Vec<VolumeTemplate>,
    /// CPU architecture and operating system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_platform: Option<RuntimePlatform>,
    /// Fargate ephemeral storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<EphemeralStorage>,
}

/// One container of the template.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDefinitionTemplate {
    /// Letters, digits, `-` and `_`; unique in the task definition.
    #[schemars(regex(pattern = r"^[a-zA-Z0-9_-]{1,255}$"), length(max = 255))]
    pub name: String,
    /// Image, e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com/etl:1.4`.
    #[schemars(length(min = 1, max = 4096))]
    pub image: String,
    /// Whether the task stops when this container stops (ECS's default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub essential: Option<bool>,
    /// The command the container runs (Docker's CMD), one argument per item.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    #[schemars(transform = Describe("/items", "One argument of the command."))]
    pub command: Vec<String>,
    /// The entry point (Docker's ENTRYPOINT), one argument per item.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    #[schemars(transform = Describe("/items", "One argument of the entry point."))]
    pub entry_point: Vec<String>,
    /// Environment variables (at most 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub environment: Vec<EnvVar>,
    /// Environment files in S3 (`.env` format, at most 10), read by the execution role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub environment_files: Vec<EnvironmentFile>,
    /// Variables read from Secrets Manager or SSM Parameter Store at start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub secrets: Vec<SecretTemplate>,
    /// CPU units reserved for the container (1024 = one vCPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 196608))]
    pub cpu: Option<i32>,
    /// Hard memory limit in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 6, max = 1048576))]
    pub memory: Option<i32>,
    /// Soft memory limit in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 6, max = 1048576))]
    pub memory_reservation: Option<i32>,
    /// Ports the container listens on (at most 50).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub port_mappings: Vec<PortMapping>,
    /// Where the container's logs go, e.g. `awslogs` with its group, region and stream prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<LogConfiguration>,
    /// Where the template's volumes are mounted in the container (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub mount_points: Vec<MountPoint>,
    /// Containers that must reach a condition before this one starts (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub depends_on: Vec<ContainerDependency>,
    /// The directory the command runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub working_directory: Option<String>,
    /// The user the container runs as: `user`, `uid`, `user:group`, `uid:gid` and so on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub user: Option<String>,
    /// Seconds between SIGTERM and SIGKILL when the task is stopped (2-120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 120))]
    pub stop_timeout: Option<i32>,
    /// Mount the container's root filesystem read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly_root_filesystem: Option<bool>,
    /// GPUs or an Elastic Inference accelerator for the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub resource_requirements: Vec<ResourceRequirement>,
    /// Docker labels on the container (at most 50).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50))]
    #[schemars(transform = Describe("/additionalProperties", "The label's value."))]
    pub docker_labels: BTreeMap<String, String>,
}

/// A secret made an environment variable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// The environment variable's name.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// The secret's or parameter's ARN (or a parameter name in the same region).
    #[schemars(length(min = 1, max = 2048))]
    pub value_from: String,
}

/// A port the container listens on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The port in the container.
    #[schemars(range(min = 1, max = 65535))]
    pub container_port: i32,
    /// The port on the host (`bridge` mode); with `awsvpc` and `host` it equals `containerPort` or is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub host_port: Option<i32>,
    /// `tcp` (default) or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(tcp|udp)$"))]
    pub protocol: Option<String>,
    /// A name for the mapping (Service Connect refers to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"))]
    pub name: Option<String>,
}

/// The container's log driver and its options.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogConfiguration {
    /// `awslogs`, `awsfirelens`, `splunk`, `fluentd`, `json-file`, ... (Fargate: awslogs, awsfirelens, splunk).
    #[schemars(regex(pattern = r"^(awslogs|awsfirelens|splunk|fluentd|gelf|json-file|journald|syslog)$"))]
    pub log_driver: String,
    /// The driver's options, e.g. `awslogs-group`, `awslogs-region` and `awslogs-stream-prefix`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50))]
    #[schemars(transform = Describe("/additionalProperties", "The option's value."))]
    pub options: BTreeMap<String, String>,
    /// Driver options read from Secrets Manager or SSM Parameter Store (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub secret_options: Vec<SecretTemplate>,
}

/// A volume mounted in the container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MountPoint {
    /// One of the template's `volumes`.
    #[schemars(length(min = 1, max = 255))]
    pub source_volume: String,
    /// Where the volume appears in the container.
    #[schemars(length(min = 1, max = 4096))]
    pub container_path: String,
    /// Mount it read-only (default: read-write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// A container this one waits for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDependency {
    /// One of the template's containers.
    #[schemars(length(min = 1, max = 255))]
    pub container_name: String,
    /// `START`, `COMPLETE`, `SUCCESS` or `HEALTHY`.
    #[schemars(regex(pattern = r"^(START|COMPLETE|SUCCESS|HEALTHY)$"))]
    pub condition: String,
}

/// A volume: a host path (EC2), an EFS file system, or one configured at launch (`volumeConfigurations`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(cel, validation = Rule::new("[has(self.host), has(self.efsVolumeConfiguration), has(self.configuredAtLaunch) && self.configuredAtLaunch].filter(x, x).size() <= 1")
    .message("a volume is a host path, an EFS file system or configured at launch, not several"))]
pub struct VolumeTemplate {
    /// The volume's name, which `mountPoints[].sourceVolume` refers to.
    #[schemars(regex(pattern = r"^[a-zA-Z0-9_-]{1,255}$"), length(max = 255))]
    pub name: String,
    /// A path on the container instance (EC2 and EXTERNAL only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostVolume>,
    /// An Amazon EFS file system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efs_volume_configuration: Option<EfsVolume>,
    /// An Amazon EBS volume given at launch by `spec.volumeConfigurations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured_at_launch: Option<bool>,
}

/// A bind mount from the container instance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostVolume {
    /// The path on the host; absent: a Docker-managed directory that lives as long as the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub source_path: Option<String>,
}

/// An Amazon EFS file system.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EfsVolume {
    /// The file system's ID, e.g. `fs-0123456789abcdef0`.
    #[schemars(regex(pattern = r"^fs-[0-9a-f]+$"))]
    pub file_system_id: String,
    /// The directory of the file system mounted as the volume's root (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub root_directory: Option<String>,
    /// `ENABLED` or `DISABLED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(ENABLED|DISABLED)$"))]
    pub transit_encryption: Option<String>,
    /// An access point and IAM authorization for the mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_config: Option<EfsAuthorization>,
}

/// How the task authenticates to EFS.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EfsAuthorization {
    /// The access point to mount through, e.g. `fsap-0123456789abcdef0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^fsap-[0-9a-f]+$"))]
    pub access_point_id: Option<String>,
    /// `ENABLED` or `DISABLED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(ENABLED|DISABLED)$"))]
    pub iam: Option<String>,
}

/// The CPU architecture and operating system the task needs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimePlatform {
    /// `X86_64` or `ARM64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(X86_64|ARM64)$"))]
    pub cpu_architecture: Option<String>,
    /// e.g. `LINUX` or `WINDOWS_SERVER_2022_CORE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Z0-9_]{1,64}$"))]
    pub operating_system_family: Option<String>,
}

impl TaskDefinitionTemplate {
    /// The template's content as one canonical JSON text (struct fields in declaration order, maps
    /// sorted): equal templates give equal text, whatever the manifest's key order or formatting.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
