//! A run's spec as RunTask's SDK input: network, capacity, overrides, volumes, tags and the run's
//! identity (clientToken, startedBy). Also the container pieces a template shares with overrides.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::error::BuildError;
use aws_sdk_ecs::types;

use crate::api;
use crate::ecs::{EcsError, EcsErrorKind, EcsTarget, LaunchRequest};

pub(super) fn run_task_call(
    client: &Client,
    target: &EcsTarget,
    request: &LaunchRequest,
) -> Result<aws_sdk_ecs::operation::run_task::builders::RunTaskFluentBuilder, EcsError> {
    let invalid = |error: BuildError| EcsError::new(EcsErrorKind::InvalidParameter, "RunTask", error.to_string());
    let spec = &request.spec;
    let capacity_provider_strategy = spec
        .capacity_provider_strategy
        .as_ref()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    types::CapacityProviderStrategyItem::builder()
                        .capacity_provider(&item.capacity_provider)
                        .set_weight(item.weight)
                        .set_base(item.base)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(invalid)?;
    let network_configuration = spec
        .network_configuration
        .as_ref()
        .map(|network| {
            let vpc = &network.awsvpc_configuration;
            types::AwsVpcConfiguration::builder()
                .set_subnets(Some(vpc.subnets.clone()))
                .set_security_groups((!vpc.security_groups.is_empty()).then(|| vpc.security_groups.clone()))
                .set_assign_public_ip(vpc.assign_public_ip.map(|ip| match ip {
                    api::AssignPublicIp::Enabled => types::AssignPublicIp::Enabled,
                    api::AssignPublicIp::Disabled => types::AssignPublicIp::Disabled,
                }))
                .build()
                .map(|vpc| types::NetworkConfiguration::builder().awsvpc_configuration(vpc).build())
        })
        .transpose()
        .map_err(invalid)?;
    let overrides = request.overrides.as_ref().map(task_override).transpose().map_err(invalid)?;
    let volume_configurations = (!spec.volume_configurations.is_empty())
        .then(|| spec.volume_configurations.iter().map(volume_configuration).collect::<Result<Vec<_>, _>>())
        .transpose()
        .map_err(invalid)?;
    let tags = request.tags.iter().map(|(key, value)| types::Tag::builder().key(key).value(value).build()).collect();

    Ok(client
        .run_task()
        .cluster(&target.cluster)
        .task_definition(&request.task_definition)
        .count(1)
        .client_token(&request.client_token)
        .started_by(&request.started_by)
        .set_launch_type(spec.launch_type.map(|launch_type| match launch_type {
            api::LaunchType::Fargate => types::LaunchType::Fargate,
            api::LaunchType::Ec2 => types::LaunchType::Ec2,
            api::LaunchType::External => types::LaunchType::External,
        }))
        .set_capacity_provider_strategy(capacity_provider_strategy)
        .set_platform_version(spec.platform_version.clone())
        .set_network_configuration(network_configuration)
        .set_overrides(overrides)
        .set_group(spec.group.clone())
        .set_tags(Some(tags))
        .set_propagate_tags(spec.propagate_tags.map(|propagate| match propagate {
            api::PropagateTags::TaskDefinition => types::PropagateTags::TaskDefinition,
            api::PropagateTags::None => types::PropagateTags::None,
        }))
        .set_placement_constraints((!spec.placement_constraints.is_empty()).then(|| {
            spec.placement_constraints
                .iter()
                .map(|constraint| {
                    types::PlacementConstraint::builder()
                        .r#type(match constraint.type_ {
                            api::PlacementConstraintType::DistinctInstance => {
                                types::PlacementConstraintType::DistinctInstance
                            }
                            api::PlacementConstraintType::MemberOf => types::PlacementConstraintType::MemberOf,
                        })
                        .set_expression(constraint.expression.clone())
                        .build()
                })
                .collect()
        }))
        .set_placement_strategy((!spec.placement_strategy.is_empty()).then(|| {
            spec.placement_strategy
                .iter()
                .map(|strategy| {
                    types::PlacementStrategy::builder()
                        .r#type(match strategy.type_ {
                            api::PlacementStrategyType::Random => types::PlacementStrategyType::Random,
                            api::PlacementStrategyType::Spread => types::PlacementStrategyType::Spread,
                            api::PlacementStrategyType::Binpack => types::PlacementStrategyType::Binpack,
                        })
                        .set_field(strategy.field.clone())
                        .build()
                })
                .collect()
        }))
        .enable_execute_command(spec.enable_execute_command)
        .set_enable_ecs_managed_tags(spec.enable_ecs_managed_tags.then_some(true))
        .set_volume_configurations(volume_configurations))
}

fn volume_configuration(volume: &api::TaskVolumeConfiguration) -> Result<types::TaskVolumeConfiguration, BuildError> {
    let ebs = &volume.managed_ebs_volume;
    let managed = types::TaskManagedEbsVolumeConfiguration::builder()
        .role_arn(&ebs.role_arn)
        .set_size_in_gib(ebs.size_in_gib)
        .set_volume_type(ebs.volume_type.clone())
        .set_iops(ebs.iops)
        .set_throughput(ebs.throughput)
        .set_encrypted(ebs.encrypted)
        .set_kms_key_id(ebs.kms_key_id.clone())
        .set_snapshot_id(ebs.snapshot_id.clone())
        .set_filesystem_type(ebs.filesystem_type.as_deref().map(types::TaskFilesystemType::from))
        .build()?;
    types::TaskVolumeConfiguration::builder().name(&volume.name).managed_ebs_volume(managed).build()
}

fn task_override(overrides: &api::TaskOverrides) -> Result<types::TaskOverride, BuildError> {
    let ephemeral_storage = overrides
        .ephemeral_storage
        .as_ref()
        .map(|storage| types::EphemeralStorage::builder().size_in_gib(storage.size_in_gib).build());
    let containers = overrides.container_overrides.iter().map(container_override).collect::<Result<Vec<_>, _>>()?;
    Ok(types::TaskOverride::builder()
        .set_container_overrides(Some(containers))
        .set_cpu(overrides.cpu.clone())
        .set_memory(overrides.memory.clone())
        .set_task_role_arn(overrides.task_role_arn.clone())
        .set_execution_role_arn(overrides.execution_role_arn.clone())
        .set_ephemeral_storage(ephemeral_storage)
        .build())
}

fn container_override(container: &api::ContainerOverride) -> Result<types::ContainerOverride, BuildError> {
    let environment_files = container.environment_files.iter().map(environment_file).collect::<Result<Vec<_>, _>>()?;
    let resource_requirements =
        container.resource_requirements.iter().map(resource_requirement).collect::<Result<Vec<_>, _>>()?;
    Ok(types::ContainerOverride::builder()
        .name(&container.name)
        .set_command(container.command.clone())
        .set_environment(environment(&container.environment))
        .set_cpu(container.cpu)
        .set_memory(container.memory)
        .set_memory_reservation(container.memory_reservation)
        .set_environment_files((!environment_files.is_empty()).then_some(environment_files))
        .set_resource_requirements((!resource_requirements.is_empty()).then_some(resource_requirements))
        .build())
}

pub(super) fn environment_file(file: &api::EnvironmentFile) -> Result<types::EnvironmentFile, BuildError> {
    let kind = match file.type_ {
        api::EnvironmentFileType::S3 => types::EnvironmentFileType::S3,
    };
    types::EnvironmentFile::builder().value(&file.value).r#type(kind).build()
}

pub(super) fn resource_requirement(
    requirement: &api::ResourceRequirement,
) -> Result<types::ResourceRequirement, BuildError> {
    let kind = match requirement.type_ {
        api::ResourceRequirementType::Gpu => types::ResourceType::Gpu,
        api::ResourceRequirementType::InferenceAccelerator => types::ResourceType::InferenceAccelerator,
    };
    types::ResourceRequirement::builder().value(&requirement.value).r#type(kind).build()
}

/// Environment variables as ECS's name/value pairs; None for none (the parameter is left out).
pub(super) fn environment(variables: &[api::EnvVar]) -> Option<Vec<types::KeyValuePair>> {
    (!variables.is_empty()).then(|| {
        variables.iter().map(|var| types::KeyValuePair::builder().name(&var.name).value(&var.value).build()).collect()
    })
}
