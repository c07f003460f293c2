//! Which launches the `EcsRunPolicy`s allow: pure functions of the run, its namespace's labels and the
//! policies. The shell asks before every RunTask; the chart's ValidatingAdmissionPolicy asks the same
//! questions at admission (`charts/ecsrun/templates/admission-policy.yaml`), one policy at a time.
//!
//! Several policies selecting one namespace add up, field by field: a run may use a cluster any of them
//! lists, a role any of them lists, up to the highest limit any of them sets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use kube::core::{Selector, SelectorExt};
use kube::{Resource, ResourceExt};
use wildmatch::WildMatch;

use crate::api::{EcsRunPolicy, EcsTaskRunSpec, LaunchType};

/// How policies are applied: `enforce` refuses what they do not allow, `audit` lets it through with a
/// Warning Event and a metric, `off` ignores them (one tenant per controller).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Enforce,
    Audit,
    Off,
}

/// One rule a run breaks. `label()` names the metric series; `field()` the spec field at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    NoPolicy,
    Region,
    Cluster,
    TaskDefinitionFamily,
    ControllerIdentity,
    AssumeRole,
    SecretRef,
    ExternalId,
    TaskRole,
    ExecutionRole,
    /// The task role a task definition template names.
    TemplateTaskRole,
    /// The execution role a task definition template names.
    TemplateExecutionRole,
    /// CPU a task definition template asks for (task and containers).
    TemplateCpu,
    /// Memory a task definition template asks for (task and containers).
    TemplateMemory,
    LaunchType,
    /// A run naming no launch type nor strategy: the cluster's default strategy would choose.
    DefaultLaunchType,
    /// The launch types a run's capacity providers launch on.
    CapacityProviderLaunchType,
    CapacityProvider,
    /// The infrastructure role of an EBS volume ECS creates at launch.
    EbsRole,
    /// The snapshot an EBS volume is created from.
    EbsSnapshot,
    Cpu,
    Memory,
    /// Tasks per run (`count`).
    Tasks,
    Timeout,
    /// Subnets and security groups a task attaches to, and a public IP.
    Subnet,
    SecurityGroup,
    PublicIp,
    /// ECS Exec.
    ExecuteCommand,
    /// Placement constraints and strategies.
    Placement,
    /// A template's `networkMode: host`.
    HostNetwork,
    /// A template's volume from a host path.
    HostVolume,
    /// A template's EFS file system.
    EfsFileSystem,
    /// Where a template container's secrets (and log secret options) come from.
    Secret,
    /// An override's environment file.
    EnvironmentFile,
    /// A template container's environment file.
    TemplateEnvironmentFile,
    /// GPUs per container, overrides' and template's.
    Gpus,
    TemplateGpus,
    /// Ephemeral storage per task, overrides' and template's.
    EphemeralStorage,
    TemplateEphemeralStorage,
}

impl Rule {
    pub fn label(self) -> &'static str {
        match self {
            Rule::NoPolicy => "no_policy",
            Rule::Region => "region",
            Rule::Cluster => "cluster",
            Rule::TaskDefinitionFamily => "task_definition_family",
            Rule::ControllerIdentity => "controller_identity",
            Rule::AssumeRole => "assume_role",
            Rule::SecretRef => "secret_ref",
            Rule::ExternalId => "external_id",
            Rule::TaskRole | Rule::TemplateTaskRole => "task_role",
            Rule::ExecutionRole | Rule::TemplateExecutionRole => "execution_role",
            Rule::LaunchType | Rule::DefaultLaunchType | Rule::CapacityProviderLaunchType => "launch_type",
            Rule::CapacityProvider => "capacity_provider",
            Rule::EbsRole => "ebs_role",
            Rule::EbsSnapshot => "ebs_snapshot",
            Rule::Tasks => "tasks",
            Rule::Cpu | Rule::TemplateCpu => "cpu",
            Rule::Memory | Rule::TemplateMemory => "memory",
            Rule::Timeout => "timeout",
            Rule::Subnet => "subnet",
            Rule::SecurityGroup => "security_group",
            Rule::PublicIp => "public_ip",
            Rule::ExecuteCommand => "execute_command",
            Rule::Placement => "placement",
            Rule::HostNetwork => "host_network",
            Rule::HostVolume => "host_volume",
            Rule::EfsFileSystem => "efs_file_system",
            Rule::Secret | Rule::EnvironmentFile | Rule::TemplateEnvironmentFile => "secret_source",
            Rule::Gpus | Rule::TemplateGpus => "gpus",
            Rule::EphemeralStorage | Rule::TemplateEphemeralStorage => "ephemeral_storage",
        }
    }

    pub fn field(self) -> &'static str {
        match self {
            Rule::NoPolicy => "metadata.namespace",
            Rule::Region => "spec.region",
            Rule::Cluster => "spec.cluster",
            Rule::TaskDefinitionFamily => "spec.taskDefinition",
            Rule::ControllerIdentity => "spec.credentials",
            Rule::AssumeRole => "spec.credentials.assumeRoleArn",
            Rule::SecretRef => "spec.credentials.secretRef",
            Rule::ExternalId => "spec.credentials.externalId",
            Rule::TaskRole => "spec.overrides.taskRoleArn",
            Rule::ExecutionRole => "spec.overrides.executionRoleArn",
            Rule::TemplateTaskRole => "spec.taskDefinitionTemplate.taskRoleArn",
            Rule::TemplateExecutionRole => "spec.taskDefinitionTemplate.executionRoleArn",
            Rule::LaunchType | Rule::DefaultLaunchType => "spec.launchType",
            Rule::CapacityProvider | Rule::CapacityProviderLaunchType => "spec.capacityProviderStrategy",
            Rule::EbsRole => "spec.volumeConfigurations.managedEBSVolume.roleArn",
            Rule::EbsSnapshot => "spec.volumeConfigurations.managedEBSVolume.snapshotId",
            Rule::Tasks => "spec.count",
            Rule::Cpu => "spec.overrides.cpu",
            Rule::Memory => "spec.overrides.memory",
            Rule::TemplateCpu => "spec.taskDefinitionTemplate.cpu",
            Rule::TemplateMemory => "spec.taskDefinitionTemplate.memory",
            Rule::Timeout => "spec.wait.timeout",
            Rule::Subnet => "spec.networkConfiguration.awsvpcConfiguration.subnets",
            Rule::SecurityGroup => "spec.networkConfiguration.awsvpcConfiguration.securityGroups",
            Rule::PublicIp => "spec.networkConfiguration.awsvpcConfiguration.assignPublicIp",
            Rule::ExecuteCommand => "spec.enableExecuteCommand",
            Rule::Placement => "spec.placementConstraints",
            Rule::HostNetwork => "spec.taskDefinitionTemplate.networkMode",
            Rule::HostVolume => "spec.taskDefinitionTemplate.volumes.host.sourcePath",
            Rule::EfsFileSystem => "spec.taskDefinitionTemplate.volumes.efsVolumeConfiguration.fileSystemId",
            Rule::Secret => "spec.taskDefinitionTemplate.containerDefinitions.secrets.valueFrom",
            Rule::EnvironmentFile => "spec.overrides.containerOverrides.environmentFiles.value",
            Rule::TemplateEnvironmentFile => "spec.taskDefinitionTemplate.containerDefinitions.environmentFiles.value",
            Rule::Gpus => "spec.overrides.containerOverrides.resourceRequirements",
            Rule::TemplateGpus => "spec.taskDefinitionTemplate.containerDefinitions.resourceRequirements",
            Rule::EphemeralStorage => "spec.overrides.ephemeralStorage.sizeInGiB",
            Rule::TemplateEphemeralStorage => "spec.taskDefinitionTemplate.ephemeralStorage.sizeInGiB",
        }
    }
}

/// A rule broken, with what the policies allow instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    pub message: String,
}

/// Why a run may not launch: every rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    pub violations: Vec<Violation>,
}

impl Denial {
    /// One line for the run's status and Events: the policies consulted and every rule broken.
    pub fn message(&self) -> String {
        let mut message = String::new();
        for (index, violation) in self.violations.iter().enumerate() {
            if index > 0 {
                message.push_str("; ");
            }
            message.push_str(&violation.message);
        }
        message
    }
}

/// The policies that select a namespace with these labels, by name.
pub fn selecting<'p>(
    policies: impl IntoIterator<Item = &'p EcsRunPolicy>,
    namespace_labels: &BTreeMap<String, String>,
) -> Vec<&'p EcsRunPolicy> {
    let mut selected: Vec<&EcsRunPolicy> =
        policies.into_iter().filter(|policy| selects(policy, namespace_labels)).collect();
    selected.sort_by_key(|policy| policy.name_any());
    selected
}

/// Whether the policy selects a namespace with these labels. A selector Kubernetes would reject (an
/// unknown operator) selects nothing.
pub fn selects(policy: &EcsRunPolicy, namespace_labels: &BTreeMap<String, String>) -> bool {
    policy.meta().deletion_timestamp.is_none()
        && Selector::try_from(policy.spec.namespace_selector.clone())
            .is_ok_and(|selector| selector.matches(namespace_labels))
}

/// Checks a launch of `spec` in `region` from `namespace` against the policies that select the namespace.
pub fn check(namespace: &str, region: &str, spec: &EcsTaskRunSpec, policies: &[&EcsRunPolicy]) -> Result<(), Denial> {
    if policies.is_empty() {
        return Err(Denial {
            violations: vec![Violation {
                rule: Rule::NoPolicy,
                message: format!(
                    "no EcsRunPolicy selects namespace {namespace}: a cluster administrator must allow its runs"
                ),
            }],
        });
    }
    let mut checks = Checks { policies, violations: Vec::new() };
    checks.listed(Rule::Region, Some(region), |policy| Some(policy.spec.regions.clone()), "regions");
    checks.listed(Rule::Cluster, Some(&spec.cluster), |policy| Some(policy.spec.clusters.clone()), "clusters");
    // A run that follows a task started elsewhere launches nothing: the family is not its choice.
    if spec.task_arn.is_none() {
        checks.listed(
            Rule::TaskDefinitionFamily,
            Some(family(spec.task_definition_name())),
            |policy| Some(policy.spec.task_definition_families.clone()),
            "taskDefinitionFamilies",
        );
    }
    match &spec.credentials {
        None => checks.allowed(
            Rule::ControllerIdentity,
            |policy| policy.spec.credentials.controller_identity,
            "running without spec.credentials, as the controller's own AWS identity,",
            "credentials.controllerIdentity",
        ),
        Some(credentials) => {
            checks.listed(
                Rule::AssumeRole,
                credentials.assume_role_arn.as_deref(),
                |policy| Some(policy.spec.credentials.assume_role_arns.clone()),
                "credentials.assumeRoleArns",
            );
            if credentials.secret_ref.is_some() {
                checks.allowed(
                    Rule::SecretRef,
                    |policy| policy.spec.credentials.secret_ref,
                    "spec.credentials.secretRef (static keys from a Secret)",
                    "credentials.secretRef",
                );
            }
            if credentials.external_id.is_some() {
                checks.allowed(
                    Rule::ExternalId,
                    |policy| policy.spec.credentials.external_id,
                    "choosing spec.credentials.externalId",
                    "credentials.externalId",
                );
            }
        }
    }
    let overrides = spec.overrides.as_ref();
    checks.listed(
        Rule::TaskRole,
        overrides.and_then(|o| o.task_role_arn.as_deref()),
        |policy| Some(policy.spec.role_overrides.task_role_arns.clone()),
        "roleOverrides.taskRoleArns",
    );
    checks.listed(
        Rule::ExecutionRole,
        overrides.and_then(|o| o.execution_role_arn.as_deref()),
        |policy| Some(policy.spec.role_overrides.execution_role_arns.clone()),
        "roleOverrides.executionRoleArns",
    );
    // A template names the roles its tasks get as overrides do: the same lists govern them.
    if let Some(template) = &spec.task_definition_template {
        checks.listed(
            Rule::TemplateTaskRole,
            template.task_role_arn.as_deref(),
            |policy| Some(policy.spec.role_overrides.task_role_arns.clone()),
            "roleOverrides.taskRoleArns",
        );
        checks.listed(
            Rule::TemplateExecutionRole,
            template.execution_role_arn.as_deref(),
            |policy| Some(policy.spec.role_overrides.execution_role_arns.clone()),
            "roleOverrides.executionRoleArns",
        );
    }
    checks.listed(
        Rule::LaunchType,
        spec.launch_type.map(launch_type_name),
        |policy| {
            let types = policy.spec.launch_types.as_ref()?;
            Some(types.iter().map(|launch_type| launch_type_name(*launch_type).to_owned()).collect())
        },
        "launchTypes",
    );
    // What the run will really get: a run following a task started elsewhere launches nothing.
    if spec.task_arn.is_none() && spec.launch_type.is_none() {
        checks.launched_on(spec.capacity_provider_strategy.as_deref());
    }
    for item in spec.capacity_provider_strategy.iter().flatten() {
        checks.listed(
            Rule::CapacityProvider,
            Some(&item.capacity_provider),
            |policy| policy.spec.capacity_providers.clone(),
            "capacityProviders",
        );
    }
    for volume in &spec.volume_configurations {
        let ebs = &volume.managed_ebs_volume;
        checks.listed(
            Rule::EbsRole,
            Some(&ebs.role_arn),
            |policy| Some(policy.spec.ebs_volumes.role_arns.clone()),
            "ebsVolumes.roleArns",
        );
        checks.listed(
            Rule::EbsSnapshot,
            ebs.snapshot_id.as_deref(),
            |policy| Some(policy.spec.ebs_volumes.snapshot_ids.clone()),
            "ebsVolumes.snapshotIds",
        );
    }
    checks.network(spec);
    checks.privileges(spec);
    checks.limits(spec);
    checks.reach_limits(spec);
    if checks.violations.is_empty() { Ok(()) } else { Err(Denial { violations: checks.violations }) }
}

/// The most log lines per failed container the policies let a run read (None: as the run asks); the
/// highest of them, a policy without a cap leaving it uncapped.
pub fn max_tail_lines(policies: &[&EcsRunPolicy]) -> Option<u32> {
    policies
        .iter()
        .try_fold(0, |most, policy| policy.spec.logs.max_tail_lines.map(|lines| most.max(lines.max(0) as u32)))
}

/// Whether the policies let runs read their tasks' results: one of them must not turn results off (as
/// with tails, a namespace no policy selects reads none).
pub fn results_allowed(policies: &[&EcsRunPolicy]) -> bool {
    policies.iter().any(|policy| policy.spec.logs.results != Some(false))
}

/// The launch type a capacity provider launches on: Fargate's own two, or EC2 for any other (an Auto
/// Scaling group's; ECS Managed Instances' launch like EC2 as far as a policy can tell).
pub fn capacity_provider_launch_type(capacity_provider: &str) -> LaunchType {
    match capacity_provider {
        "FARGATE" | "FARGATE_SPOT" => LaunchType::Fargate,
        _ => LaunchType::Ec2,
    }
}

/// The task definition family of `family`, `family:revision` or a task definition ARN (a template's
/// family, which has neither `:` nor `/`, is its own).
pub fn family(task_definition: &str) -> &str {
    let reference = if task_definition.starts_with("arn:") {
        task_definition.rsplit('/').next().unwrap_or(task_definition)
    } else {
        task_definition
    };
    reference.split(':').next().unwrap_or(reference)
}

/// Whether `value` matches the glob `pattern` (`*` any run of characters, `?` one).
pub fn matches(pattern: &str, value: &str) -> bool {
    WildMatch::new(pattern).matches(value)
}

struct Checks<'a, 'p> {
    policies: &'a [&'p EcsRunPolicy],
    violations: Vec<Violation>,
}

impl Checks<'_, '_> {
    /// `value` (if the run uses it) must match a pattern of some policy; `patterns` None: that policy
    /// does not restrict the field.
    fn listed(
        &mut self,
        rule: Rule,
        value: Option<&str>,
        patterns: impl Fn(&EcsRunPolicy) -> Option<Vec<String>>,
        list: &str,
    ) {
        let Some(value) = value else { return };
        let mut allowed = Vec::new();
        for policy in self.policies {
            match patterns(policy) {
                None => return,
                Some(list) if list.iter().any(|pattern| matches(pattern, value)) => return,
                Some(list) => {
                    // In the policies' own order, as admission prints one policy's list.
                    for pattern in list {
                        if !allowed.contains(&pattern) {
                            allowed.push(pattern);
                        }
                    }
                }
            }
        }
        let allowed = if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") };
        // The same words as the admission policy's (charts/ecsrun/templates/admission-policy.yaml).
        let message = format!("{} {value:?} is not allowed by {} ({list}: {allowed})", rule.field(), self.names());
        self.violations.push(Violation { rule, message });
    }

    /// The launch types a run without `launchType` gets must be allowed: those of its capacity
    /// providers, or, with no strategy either, none the policies can know (the cluster's default).
    fn launched_on(&mut self, strategy: Option<&[crate::api::CapacityProviderStrategyItem]>) {
        let mut allowed: Vec<&str> = Vec::new();
        for policy in self.policies {
            let Some(types) = &policy.spec.launch_types else { return };
            for name in types.iter().map(|launch_type| launch_type_name(*launch_type)) {
                if !allowed.contains(&name) {
                    allowed.push(name);
                }
            }
        }
        let list = allowed.join(", ");
        // The same words as the admission policy's (charts/ecsrun/templates/admission-policy.yaml).
        let Some(strategy) = strategy else {
            let message = format!(
                "spec.launchType must be set: without it or a capacityProviderStrategy the cluster's default \
                 strategy chooses, which {} cannot check (launchTypes: {list})",
                self.names()
            );
            self.violations.push(Violation { rule: Rule::DefaultLaunchType, message });
            return;
        };
        // A provider other than Fargate's launches on EC2 or on ECS Managed Instances, as the provider
        // was made: no policy can see which, so it needs EC2 allowed and its name listed.
        let named = |provider: &str| {
            self.policies.iter().any(|policy| {
                policy.spec.capacity_providers.as_ref().is_some_and(|list| list.iter().any(|p| matches(p, provider)))
            })
        };
        let refused: Vec<String> = strategy
            .iter()
            .map(|item| &item.capacity_provider)
            .filter_map(|provider| match capacity_provider_launch_type(provider) {
                LaunchType::Fargate => (!allowed.contains(&"FARGATE")).then(|| format!("{provider:?} (FARGATE)")),
                _ => (!allowed.contains(&"EC2") || !named(provider))
                    .then(|| format!("{provider:?} (EC2 or ECS Managed Instances, if listed in capacityProviders)")),
            })
            .collect();
        if !refused.is_empty() {
            let message = format!(
                "spec.capacityProviderStrategy {} is not allowed by {} (launchTypes: {list})",
                refused.join(", "),
                self.names()
            );
            self.violations.push(Violation { rule: Rule::CapacityProviderLaunchType, message });
        }
    }

    /// Some policy must allow what `what` describes (with its `setting`).
    fn allowed(&mut self, rule: Rule, allows: impl Fn(&EcsRunPolicy) -> bool, what: &str, setting: &str) {
        if !self.policies.iter().any(|policy| allows(policy)) {
            let message = format!("{what} is not allowed by {} ({setting})", self.names());
            self.violations.push(Violation { rule, message });
        }
    }

    fn limits(&mut self, spec: &EcsTaskRunSpec) {
        // The highest limit of any policy; a policy without one leaves the field unbounded.
        let highest = |limit: fn(&EcsRunPolicy) -> Option<i64>| {
            self.policies.iter().map(|policy| limit(policy)).try_fold(0, |most, limit| limit.map(|l| most.max(l)))
        };
        let overrides = spec.overrides.clone().unwrap_or_default();
        if let Some(most) = highest(|policy| policy.spec.limits.cpu.map(i64::from)) {
            let asked = overrides.cpu.as_deref().map(|cpu| cpu_units(cpu).ok_or(cpu));
            let containers = overrides.container_overrides.iter().filter_map(|c| c.cpu).map(i64::from);
            self.bound(Rule::Cpu, most, "CPU units", asked, containers);
            // A template asks for its own: the same limit holds (an override, checked above, replaces it).
            if let Some(template) = &spec.task_definition_template {
                let asked = template.cpu.as_deref().map(|cpu| cpu_units(cpu).ok_or(cpu));
                let containers = template.container_definitions.iter().filter_map(|c| c.cpu).map(i64::from);
                self.bound(Rule::TemplateCpu, most, "CPU units", asked, containers);
            }
        }
        if let Some(most) = highest(|policy| policy.spec.limits.memory.map(i64::from)) {
            let asked = overrides.memory.as_deref().map(|memory| memory_mib(memory).ok_or(memory));
            let containers = overrides
                .container_overrides
                .iter()
                .flat_map(|c| [c.memory, c.memory_reservation])
                .flatten()
                .map(i64::from);
            self.bound(Rule::Memory, most, "MiB", asked, containers);
            if let Some(template) = &spec.task_definition_template {
                let asked = template.memory.as_deref().map(|memory| memory_mib(memory).ok_or(memory));
                let containers = template
                    .container_definitions
                    .iter()
                    .flat_map(|c| [c.memory, c.memory_reservation])
                    .flatten()
                    .map(i64::from);
                self.bound(Rule::TemplateMemory, most, "MiB", asked, containers);
            }
        }
        if let Some(most) = highest(|policy| policy.spec.limits.tasks.map(i64::from)) {
            self.bound(Rule::Tasks, most, "tasks", Some(Ok(i64::from(spec.count))), std::iter::empty());
        }
        // The longest limit, as its policy wrote it.
        fn timeout(policy: &EcsRunPolicy) -> Option<(Duration, &str)> {
            let limit = policy.spec.limits.timeout.as_ref()?;
            Some((limit.get().ok()?, limit.as_str()))
        }
        if let Some((most, written)) =
            self.policies.iter().map(|policy| timeout(policy)).try_fold((Duration::ZERO, ""), |most, limit| {
                limit.map(|limit| if limit.0 > most.0 { limit } else { most })
            })
        {
            let asked = spec.wait.timeout.as_ref().and_then(|timeout| timeout.get().ok());
            if asked.is_none_or(|asked| asked > most) {
                let message =
                    format!("spec.wait.timeout must be set and at most {written}, as required by {}", self.names());
                self.violations.push(Violation { rule: Rule::Timeout, message });
            }
        }
    }

    /// The task-level value (a text that cannot be read counts as too much) and each container's must stay
    /// at most `most`.
    fn bound(
        &mut self,
        rule: Rule,
        most: i64,
        unit: &str,
        asked: Option<Result<i64, &str>>,
        mut containers: impl Iterator<Item = i64>,
    ) {
        let task_over = match asked {
            Some(Ok(value)) => value > most,
            Some(Err(_)) => true,
            None => false,
        };
        if task_over || containers.any(|value| value > most) {
            let message = format!("{} exceeds the {most} {unit} allowed by {}", rule.field(), self.names());
            self.violations.push(Violation { rule, message });
        }
    }

    fn names(&self) -> String {
        let mut text = String::from(if self.policies.len() == 1 { "EcsRunPolicy " } else { "EcsRunPolicies " });
        for (index, policy) in self.policies.iter().enumerate() {
            let _ = write!(text, "{}{}", if index > 0 { ", " } else { "" }, policy.name_any());
        }
        text
    }
}

/// CPU units of `1024` or `1 vCPU` (as RunTask's overrides take them).
pub(crate) fn cpu_units(text: &str) -> Option<i64> {
    scaled(text, &["vcpu"], 1024.0)
}

/// MiB of `2048` or `2 GB`.
pub(crate) fn memory_mib(text: &str) -> Option<i64> {
    scaled(text, &["gb", "gib"], 1024.0)
}

fn scaled(text: &str, units: &[&str], factor: f64) -> Option<i64> {
    let lower = text.trim().to_ascii_lowercase();
    for unit in units {
        if let Some(number) = lower.strip_suffix(unit) {
            let value: f64 = number.trim().parse().ok()?;
            return (value.is_finite() && value >= 0.0).then(|| (value * factor).ceil() as i64);
        }
    }
    lower.parse().ok()
}

fn launch_type_name(launch_type: LaunchType) -> &'static str {
    match launch_type {
        LaunchType::Fargate => "FARGATE",
        LaunchType::Ec2 => "EC2",
        LaunchType::External => "EXTERNAL",
    }
}

mod reach;
#[cfg(test)]
mod tests;
