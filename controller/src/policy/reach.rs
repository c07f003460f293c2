//! What a run reaches beyond its roles (issue 35, finding 6): the network it attaches to, a shell in its
//! tasks, the instances it lands on, the host's network and disks, file systems, secrets, GPUs and
//! ephemeral storage. The same words as the chart's admission policy.

use crate::api::{AssignPublicIp, EcsRunPolicy, EcsTaskRunSpec, ResourceRequirementType};

use super::{Checks, Rule};

impl Checks<'_, '_> {
    pub(super) fn network(&mut self, spec: &EcsTaskRunSpec) {
        let Some(vpc) = spec.network_configuration.as_ref().map(|network| &network.awsvpc_configuration) else {
            return;
        };
        for subnet in &vpc.subnets {
            self.listed(Rule::Subnet, Some(subnet), |policy| policy.spec.network.subnets.clone(), "network.subnets");
        }
        for group in &vpc.security_groups {
            self.listed(
                Rule::SecurityGroup,
                Some(group),
                |policy| policy.spec.network.security_groups.clone(),
                "network.securityGroups",
            );
        }
        if vpc.assign_public_ip == Some(AssignPublicIp::Enabled) {
            self.allowed(
                Rule::PublicIp,
                |policy| policy.spec.network.public_ip,
                "spec.networkConfiguration.awsvpcConfiguration.assignPublicIp ENABLED",
                "network.publicIp",
            );
        }
    }

    pub(super) fn privileges(&mut self, spec: &EcsTaskRunSpec) {
        if spec.enable_execute_command {
            self.allowed(
                Rule::ExecuteCommand,
                |policy| policy.spec.privileges.execute_command,
                "spec.enableExecuteCommand (ECS Exec)",
                "privileges.executeCommand",
            );
        }
        if !spec.placement_constraints.is_empty() || !spec.placement_strategy.is_empty() {
            self.allowed(
                Rule::Placement,
                |policy| policy.spec.privileges.placement,
                "choosing placement (spec.placementConstraints, spec.placementStrategy)",
                "privileges.placement",
            );
        }
        let secret_sources = |policy: &EcsRunPolicy| policy.spec.privileges.secret_sources.clone();
        for container in spec.overrides.iter().flat_map(|overrides| &overrides.container_overrides) {
            for file in &container.environment_files {
                self.listed(Rule::EnvironmentFile, Some(&file.value), secret_sources, "privileges.secretSources");
            }
        }
        let Some(template) = &spec.task_definition_template else { return };
        if template.network_mode.as_deref() == Some("host") {
            self.allowed(
                Rule::HostNetwork,
                |policy| policy.spec.privileges.host_network,
                "spec.taskDefinitionTemplate.networkMode host",
                "privileges.hostNetwork",
            );
        }
        // A host volume without a source path is a scratch directory Docker makes for the task.
        if template.volumes.iter().any(|volume| volume.host.as_ref().is_some_and(|host| host.source_path.is_some())) {
            self.allowed(
                Rule::HostVolume,
                |policy| policy.spec.privileges.host_volumes,
                "spec.taskDefinitionTemplate.volumes[].host.sourcePath (a path of the host)",
                "privileges.hostVolumes",
            );
        }
        for efs in template.volumes.iter().filter_map(|volume| volume.efs_volume_configuration.as_ref()) {
            self.listed(
                Rule::EfsFileSystem,
                Some(&efs.file_system_id),
                |policy| Some(policy.spec.privileges.efs_file_systems.clone()),
                "privileges.efsFileSystems",
            );
        }
        for container in &template.container_definitions {
            let log_secrets = container.log_configuration.iter().flat_map(|log| &log.secret_options);
            for secret in container.secrets.iter().chain(log_secrets) {
                self.listed(Rule::Secret, Some(&secret.value_from), secret_sources, "privileges.secretSources");
            }
            for file in &container.environment_files {
                self.listed(
                    Rule::TemplateEnvironmentFile,
                    Some(&file.value),
                    secret_sources,
                    "privileges.secretSources",
                );
            }
        }
    }

    /// GPUs per container and ephemeral storage per task, run's and template's.
    pub(super) fn reach_limits(&mut self, spec: &EcsTaskRunSpec) {
        let highest = |limit: fn(&EcsRunPolicy) -> Option<i32>| {
            self.policies
                .iter()
                .map(|policy| limit(policy).map(i64::from))
                .try_fold(0, |most, limit| limit.map(|l| most.max(l)))
        };
        let gpus = |requirements: &[crate::api::ResourceRequirement]| -> Vec<i64> {
            requirements
                .iter()
                .filter(|requirement| requirement.type_ == ResourceRequirementType::Gpu)
                // A count that cannot be read counts as too many.
                .map(|requirement| requirement.value.trim().parse().unwrap_or(i64::MAX))
                .collect()
        };
        if let Some(most) = highest(|policy| policy.spec.limits.gpus) {
            let overridden = spec.overrides.iter().flat_map(|overrides| &overrides.container_overrides);
            let asked: Vec<i64> = overridden.flat_map(|container| gpus(&container.resource_requirements)).collect();
            self.bound(Rule::Gpus, most, "GPUs", None, asked.into_iter());
            if let Some(template) = &spec.task_definition_template {
                let containers = template.container_definitions.iter();
                let asked: Vec<i64> = containers.flat_map(|container| gpus(&container.resource_requirements)).collect();
                self.bound(Rule::TemplateGpus, most, "GPUs", None, asked.into_iter());
            }
        }
        if let Some(most) = highest(|policy| policy.spec.limits.ephemeral_storage_gib) {
            let asked = spec.overrides.as_ref().and_then(|overrides| overrides.ephemeral_storage.as_ref());
            let asked = asked.map(|storage| Ok(i64::from(storage.size_in_gib)));
            self.bound(Rule::EphemeralStorage, most, "GiB", asked, std::iter::empty());
            let template =
                spec.task_definition_template.as_ref().and_then(|template| template.ephemeral_storage.as_ref());
            let asked = template.map(|storage| Ok(i64::from(storage.size_in_gib)));
            self.bound(Rule::TemplateEphemeralStorage, most, "GiB", asked, std::iter::empty());
        }
    }
}
