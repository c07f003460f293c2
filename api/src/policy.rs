//! `EcsRunPolicy`: what the runs of a set of namespaces may use in AWS.
//!
//! A cluster administrator writes one per team (or tier). The controller checks every launch against the
//! policies that select the run's namespace, and the Helm chart's ValidatingAdmissionPolicy checks every
//! new run at admission. Several policies selecting one namespace add up: a run may use what any of them
//! allows. Lists of *where and as whom* (regions, clusters, families, roles, EFS file systems) and
//! privileges (ECS Exec, placement, the host's network and paths, a public IP) allow nothing until filled
//! or set; launch types, capacity providers, subnets, security groups, secret sources and limits restrict
//! nothing until set.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::LaunchType;
use crate::describe::Describe;

/// What the runs of the selected namespaces may use. Patterns are globs: `*` matches any run of
/// characters (`/` and `:` included), `?` any one character; everything else matches itself.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ecsrun.dev",
    version = "v1alpha1",
    kind = "EcsRunPolicy",
    doc = "EcsRunPolicy says what the EcsTaskRuns of the namespaces it selects may use in AWS: regions, clusters, task definition families, credentials, roles, launch types, capacity providers and limits. Cluster-scoped, written by cluster administrators; several policies selecting one namespace add up, field by field.",
    plural = "ecsrunpolicies",
    shortname = "erp",
    category = "ecsrun",
    status = "EcsRunPolicyStatus",
    printcolumn = r#"{"name":"Selector","type":"string","jsonPath":".spec.namespaceSelector"}"#,
    printcolumn = r#"{"name":"Namespaces","type":"integer","jsonPath":".status.namespaceCount"}"#,
    printcolumn = r#"{"name":"Regions","type":"string","jsonPath":".spec.regions"}"#,
    printcolumn = r#"{"name":"Clusters","type":"string","jsonPath":".spec.clusters"}"#,
    printcolumn = r#"{"name":"Families","type":"string","priority":1,"jsonPath":".spec.taskDefinitionFamilies"}"#,
    printcolumn = r#"{"name":"Roles","type":"string","priority":1,"jsonPath":".spec.credentials.assumeRoleArns"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct EcsRunPolicySpec {
    /// Namespaces whose runs this policy governs (their labels; `kubernetes.io/metadata.name` names one).
    /// `{}` selects every namespace.
    #[schemars(transform = Describe("/properties/matchLabels/additionalProperties", "The label's value."))]
    #[schemars(transform = Describe("/properties/matchExpressions/items/properties/values/items", "A label value."))]
    pub namespace_selector: LabelSelector,

    /// Regions runs may launch in, e.g. `eu-west-1` or `eu-*`. A run without `spec.region` is checked
    /// with the controller's default region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256), regex(pattern = PATTERN)))]
    #[schemars(transform = Describe("/items", "A region pattern, e.g. `eu-west-1` or `eu-*`."))]
    pub regions: Vec<String>,

    /// Clusters, matched against `spec.cluster` as the run writes it: list the name (`batch-*`) and,
    /// if runs use them, the ARNs (`arn:aws:ecs:eu-west-1:111122223333:cluster/batch-*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256), regex(pattern = PATTERN)))]
    #[schemars(transform = Describe("/items", "A cluster name or ARN pattern."))]
    pub clusters: Vec<String>,

    /// Task definition families, e.g. `team-a-*` (the family of `family:3` or of a task definition ARN).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256), regex(pattern = PATTERN)))]
    #[schemars(transform = Describe("/items", "A task definition family pattern."))]
    pub task_definition_families: Vec<String>,

    /// Whose AWS credentials the runs may use.
    #[serde(default)]
    pub credentials: CredentialRules,

    /// Roles the runs may hand their containers through `overrides`.
    #[serde(default)]
    pub role_overrides: RoleOverrideRules,

    /// Launch types runs may get. Absent: any. Set, it governs what a run really gets: its
    /// `launchType`, or the launch type of each provider in its `capacityProviderStrategy` (`FARGATE`
    /// and `FARGATE_SPOT` launch on FARGATE, any other provider on EC2). A run naming neither would get
    /// whatever the cluster's default strategy says, which no policy can see: it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_types: Option<Vec<LaunchType>>,

    /// Capacity providers runs may name in `capacityProviderStrategy` (patterns). Absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256), regex(pattern = PATTERN)))]
    #[schemars(transform = Describe("/items", "A capacity provider pattern, e.g. `FARGATE*`."))]
    pub capacity_providers: Option<Vec<String>>,

    /// Amazon EBS volumes runs may have ECS create at launch (`volumeConfigurations`).
    #[serde(default, rename = "ebsVolumes")]
    pub ebs_volumes: EbsVolumeRules,

    /// Where runs' tasks attach to the network (`networkConfiguration.awsvpcConfiguration`).
    #[serde(default)]
    pub network: NetworkRules,

    /// What runs may reach beyond their roles: shells in their tasks, chosen instances, the host's
    /// network and disks, file systems and secrets. Nothing until allowed.
    #[serde(default)]
    pub privileges: PrivilegeRules,

    /// Upper bounds on what one run asks for.
    #[serde(default)]
    pub limits: Limits,

    /// What runs may read of their failed containers' logs into status and Events.
    #[serde(default)]
    pub logs: LogRules,
}

/// The EBS volumes runs may have ECS create. A run with no `volumeConfigurations` is not concerned;
/// one with a volume needs its infrastructure role listed, and its snapshot if it names one.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EbsVolumeRules {
    /// Infrastructure roles ECS may create and attach volumes as (`managedEBSVolume.roleArn`), e.g.
    /// `arn:aws:iam::111122223333:role/team-a-ebs`. Empty: no run may have a volume.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256), regex(pattern = PATTERN)))]
    #[schemars(transform = Describe("/items", "A role ARN pattern."))]
    pub role_arns: Vec<String>,
    /// Snapshots volumes may be made from (`managedEBSVolume.snapshotId`), e.g. `snap-0123*`. Empty:
    /// volumes start empty; a snapshot holds whatever data it was taken of, from any team.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256), regex(pattern = PATTERN)))]
    #[schemars(transform = Describe("/items", "A snapshot ID pattern."))]
    pub snapshot_ids: Vec<String>,
}

/// Subnets and security groups (patterns; absent: any) and whether a task may have a public IP.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkRules {
    /// Subnets runs' tasks may attach to, e.g. `subnet-0a1b*`. Absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256), regex(pattern = PATTERN)))]
    #[schemars(transform = Describe("/items", "A subnet ID pattern."))]
    pub subnets: Option<Vec<String>>,
    /// Security groups runs' tasks may have, e.g. `sg-0a1b*`. Absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256), regex(pattern = PATTERN)))]
    #[schemars(transform = Describe("/items", "A security group ID pattern."))]
    pub security_groups: Option<Vec<String>>,
    /// Runs may give their tasks a public IP (`assignPublicIp: ENABLED`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public_ip: bool,
}

/// What runs may reach beyond their roles. Each is refused until allowed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivilegeRules {
    /// Runs may turn on ECS Exec (`enableExecuteCommand`): a shell in their tasks, as their task role.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub execute_command: bool,
    /// Runs may choose where their tasks are placed (`placementConstraints`, `placementStrategy`): a
    /// `memberOf` expression picks any instance of the cluster, another team's capacity included.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub placement: bool,
    /// Templates may use the host's network (`networkMode: host`): the instance's interfaces and ports.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_network: bool,
    /// Templates may mount the host's paths (`volumes[].host`): whatever the instance holds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_volumes: bool,
    /// EFS file systems templates may mount (`volumes[].efsVolumeConfiguration.fileSystemId`), e.g.
    /// `fs-0a1b*`. Empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256), regex(pattern = PATTERN)))]
    #[schemars(transform = Describe("/items", "An EFS file system ID pattern."))]
    pub efs_file_systems: Vec<String>,
    /// Where containers' secrets and environment files may come from: the `valueFrom` of templates'
    /// `secrets` and log `secretOptions` (an SSM parameter or Secrets Manager ARN or name) and the S3
    /// ARNs of `environmentFiles` (templates' and overrides'), e.g.
    /// `arn:aws:secretsmanager:eu-west-1:111122223333:secret:team-a/*`. Absent: any (what the execution
    /// role may read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256), regex(pattern = PATTERN)))]
    #[schemars(transform = Describe("/items", "A secret, parameter or S3 object ARN pattern."))]
    pub secret_sources: Option<Vec<String>>,
}

/// Failed containers' last log lines go into the run's status and its Failed or Retrying Event, which
/// anyone who may read the namespace's EcsTaskRuns or Events reads too.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogRules {
    /// At most this many lines per failed container, whatever the run's `logs.tailLines` asks; 0: no
    /// run reads its logs. Absent: as the run asks (at most 200). Several policies: the highest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 200))]
    pub max_tail_lines: Option<i32>,
    /// Whether runs may read the results their tasks print into their status (`spec.results`). False:
    /// no run of the namespaces reads results, and one that requires a result fails with
    /// `ResultMissing`. Absent: allowed. Several policies: allowed if any allows.
    /// Results are as readable as log tails: by anyone who may read the namespace's EcsTaskRuns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<bool>,
}

/// Glob patterns: the characters of ARNs and names, plus `*` and `?`.
const PATTERN: &str = r"^[A-Za-z0-9:/_+=,.@*?-]+$";

/// Whose credentials runs may use. Everything is refused until allowed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialRules {
    /// Runs without `spec.credentials` act as the controller itself (IRSA / Pod Identity), which usually
    /// holds every team's permissions: allow it only where that is what you mean.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub controller_identity: bool,
    /// Roles runs may assume (`spec.credentials.assumeRoleArn`), e.g. `arn:aws:iam::111122223333:role/team-a-*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256), regex(pattern = PATTERN)))]
    #[schemars(transform = Describe("/items", "A role ARN pattern."))]
    pub assume_role_arns: Vec<String>,
    /// Runs may sign with static keys from a Secret in their namespace (`spec.credentials.secretRef`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret_ref: bool,
    /// Runs may choose their own `spec.credentials.externalId`. Otherwise the controller sends the one it
    /// derives for the namespace, which a role's trust policy can require.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external_id: bool,
}

/// Roles runs may set in `overrides.taskRoleArn` / `overrides.executionRoleArn` (patterns). A run that
/// overrides neither keeps its task definition's roles.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleOverrideRules {
    /// Roles runs may give their containers (`overrides.taskRoleArn`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256), regex(pattern = PATTERN)))]
    #[schemars(transform = Describe("/items", "A role ARN pattern."))]
    pub task_role_arns: Vec<String>,
    /// Roles runs may have ECS pull images and write logs with (`overrides.executionRoleArn`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256), regex(pattern = PATTERN)))]
    #[schemars(transform = Describe("/items", "A role ARN pattern."))]
    pub execution_role_arns: Vec<String>,
}

/// Upper bounds. Absent: unbounded.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Most CPU units a run may ask for in `overrides.cpu` (and per container override).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub cpu: Option<i32>,
    /// Most memory (MiB) a run may ask for in `overrides.memory` (and per container override).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub memory: Option<i32>,
    /// Most tasks one run may have (`spec.count`): CPU and memory are limited per task, so this bounds
    /// what a run takes in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub tasks: Option<i32>,
    /// Most GPUs one container may ask for (`resourceRequirements` of type GPU, templates' and
    /// overrides'). Absent: unbounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 16))]
    pub gpus: Option<i32>,
    /// Most ephemeral storage (GiB) a task may ask for (`overrides.ephemeralStorage`, a template's
    /// `ephemeralStorage`). Absent: unbounded.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "ephemeralStorageGiB")]
    #[schemars(range(min = 21, max = 200))]
    pub ephemeral_storage_gib: Option<i32>,
    /// Longest `wait.timeout` a run may set; with a limit, a run must set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(crate::TIMEOUT_RULE).message("timeout must be at least 1s"))]
    pub timeout: Option<crate::GoDuration>,
}

/// What the controller observes about the policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EcsRunPolicyStatus {
    /// How many namespaces the policy selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_count: Option<i32>,
    /// The namespaces it selects (the first 1000, sorted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    #[schemars(transform = Describe("/items", "A namespace name."))]
    pub namespaces: Vec<String>,
    /// Selected namespaces that another policy selects too. Their runs may use what any of those policies
    /// allows; admission, which sees one policy at a time, leaves them to the controller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    #[schemars(transform = Describe("/items", "A namespace name."))]
    pub shared_namespaces: Vec<String>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
