//! `spec.taskDefinitionTemplate`: a task definition written in the run itself, in ECS's own
//! RegisterTaskDefinition JSON shape (the fields batch jobs use). The controller registers each distinct
//! content once, tags the revision with the content's hash, and reuses it for every run of that template.
//! A field outside this subset is refused by the API server (kubectl's strict field validation), never
//! dropped silently.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub entry_point: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub environment: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub environment_files: Vec<EnvironmentFile>,
    /// Variables read from Secrets Manager or SSM Parameter Store at start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub secrets: Vec<SecretTemplate>,
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub port_mappings: Vec<PortMapping>,
    /// Where the container's logs go, e.g. `awslogs` with its group, region and stream prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<LogConfiguration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub mount_points: Vec<MountPoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub depends_on: Vec<ContainerDependency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub working_directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub user: Option<String>,
    /// Seconds between SIGTERM and SIGKILL when the task is stopped (2-120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 120))]
    pub stop_timeout: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly_root_filesystem: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub resource_requirements: Vec<ResourceRequirement>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50))]
    pub docker_labels: BTreeMap<String, String>,
}

/// A secret made an environment variable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// The secret's or parameter's ARN (or a parameter name in the same region).
    #[schemars(length(min = 1, max = 2048))]
    pub value_from: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    #[schemars(range(min = 1, max = 65535))]
    pub container_port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub host_port: Option<i32>,
    /// `tcp` (default) or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(tcp|udp)$"))]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"))]
    pub name: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogConfiguration {
    /// `awslogs`, `awsfirelens`, `splunk`, `fluentd`, `json-file`, ... (Fargate: awslogs, awsfirelens, splunk).
    #[schemars(regex(pattern = r"^(awslogs|awsfirelens|splunk|fluentd|gelf|json-file|journald|syslog)$"))]
    pub log_driver: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50))]
    pub options: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub secret_options: Vec<SecretTemplate>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MountPoint {
    /// One of the template's `volumes`.
    #[schemars(length(min = 1, max = 255))]
    pub source_volume: String,
    #[schemars(length(min = 1, max = 4096))]
    pub container_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDependency {
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
    #[schemars(regex(pattern = r"^[a-zA-Z0-9_-]{1,255}$"), length(max = 255))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostVolume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efs_volume_configuration: Option<EfsVolume>,
    /// An Amazon EBS volume given at launch by `spec.volumeConfigurations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured_at_launch: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostVolume {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub source_path: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EfsVolume {
    #[schemars(regex(pattern = r"^fs-[0-9a-f]+$"))]
    pub file_system_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub root_directory: Option<String>,
    /// `ENABLED` or `DISABLED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(ENABLED|DISABLED)$"))]
    pub transit_encryption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_config: Option<EfsAuthorization>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EfsAuthorization {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^fsap-[0-9a-f]+$"))]
    pub access_point_id: Option<String>,
    /// `ENABLED` or `DISABLED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(ENABLED|DISABLED)$"))]
    pub iam: Option<String>,
}

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
