//! `spec.taskDefinitionTemplate` as RegisterTaskDefinition's SDK input. String enums go through the
//! SDK's own `From<&str>`: the CRD already limits them to ECS's values.

use std::collections::HashMap;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::error::BuildError;
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types;

use super::launch::{environment, environment_file, resource_requirement};
use crate::api;

/// The RegisterTaskDefinition call for `template`, tagged with `tags`.
pub(super) fn register_call(
    client: &Client,
    template: &api::TaskDefinitionTemplate,
    tags: &[(String, String)],
) -> Result<RegisterTaskDefinitionFluentBuilder, BuildError> {
    let containers = template.container_definitions.iter().map(container).collect::<Result<Vec<_>, _>>()?;
    let volumes = template.volumes.iter().map(volume).collect::<Result<Vec<_>, _>>()?;
    let ephemeral_storage = template
        .ephemeral_storage
        .as_ref()
        .map(|s| types::EphemeralStorage::builder().size_in_gib(s.size_in_gib).build());
    let runtime_platform = template.runtime_platform.as_ref().map(|platform| {
        types::RuntimePlatform::builder()
            .set_cpu_architecture(platform.cpu_architecture.as_deref().map(types::CpuArchitecture::from))
            .set_operating_system_family(platform.operating_system_family.as_deref().map(types::OsFamily::from))
            .build()
    });
    Ok(client
        .register_task_definition()
        .family(&template.family)
        .set_container_definitions(Some(containers))
        .set_cpu(template.cpu.clone())
        .set_memory(template.memory.clone())
        .set_network_mode(template.network_mode.as_deref().map(types::NetworkMode::from))
        .set_requires_compatibilities(non_empty(
            template.requires_compatibilities.iter().map(|c| types::Compatibility::from(c.as_str())).collect(),
        ))
        .set_execution_role_arn(template.execution_role_arn.clone())
        .set_task_role_arn(template.task_role_arn.clone())
        .set_volumes(non_empty(volumes))
        .set_runtime_platform(runtime_platform)
        .set_ephemeral_storage(ephemeral_storage)
        .set_tags(Some(tags.iter().map(|(key, value)| types::Tag::builder().key(key).value(value).build()).collect())))
}

fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

pub(super) fn container(
    container: &api::ContainerDefinitionTemplate,
) -> Result<types::ContainerDefinition, BuildError> {
    let secret = |s: &api::SecretTemplate| types::Secret::builder().name(&s.name).value_from(&s.value_from).build();
    let log_configuration = container
        .log_configuration
        .as_ref()
        .map(|log| {
            let secret_options = log.secret_options.iter().map(secret).collect::<Result<Vec<_>, _>>()?;
            types::LogConfiguration::builder()
                .log_driver(types::LogDriver::from(log.log_driver.as_str()))
                .set_options(non_empty_map(&log.options))
                .set_secret_options(non_empty(secret_options))
                .build()
        })
        .transpose()?;
    let depends_on = container
        .depends_on
        .iter()
        .map(|d| {
            types::ContainerDependency::builder()
                .container_name(&d.container_name)
                .condition(types::ContainerCondition::from(d.condition.as_str()))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(types::ContainerDefinition::builder()
        .name(&container.name)
        .image(&container.image)
        .set_essential(container.essential)
        .set_command(non_empty(container.command.clone()))
        .set_entry_point(non_empty(container.entry_point.clone()))
        .set_environment(environment(&container.environment))
        .set_environment_files(non_empty(
            container.environment_files.iter().map(environment_file).collect::<Result<Vec<_>, _>>()?,
        ))
        .set_secrets(non_empty(container.secrets.iter().map(secret).collect::<Result<Vec<_>, _>>()?))
        .set_cpu(container.cpu)
        .set_memory(container.memory)
        .set_memory_reservation(container.memory_reservation)
        .set_port_mappings(non_empty(
            container
                .port_mappings
                .iter()
                .map(|p| {
                    types::PortMapping::builder()
                        .container_port(p.container_port)
                        .set_host_port(p.host_port)
                        .set_protocol(p.protocol.as_deref().map(types::TransportProtocol::from))
                        .set_name(p.name.clone())
                        .build()
                })
                .collect(),
        ))
        .set_log_configuration(log_configuration)
        .set_mount_points(non_empty(
            container
                .mount_points
                .iter()
                .map(|m| {
                    types::MountPoint::builder()
                        .source_volume(&m.source_volume)
                        .container_path(&m.container_path)
                        .set_read_only(m.read_only)
                        .build()
                })
                .collect(),
        ))
        .set_depends_on(non_empty(depends_on))
        .set_working_directory(container.working_directory.clone())
        .set_user(container.user.clone())
        .set_stop_timeout(container.stop_timeout)
        .set_readonly_root_filesystem(container.readonly_root_filesystem)
        .set_resource_requirements(non_empty(
            container.resource_requirements.iter().map(resource_requirement).collect::<Result<Vec<_>, _>>()?,
        ))
        .set_docker_labels(non_empty_map(&container.docker_labels))
        .build())
}

fn non_empty_map(map: &std::collections::BTreeMap<String, String>) -> Option<HashMap<String, String>> {
    (!map.is_empty()).then(|| map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

pub(super) fn volume(volume: &api::VolumeTemplate) -> Result<types::Volume, BuildError> {
    let efs = volume
        .efs_volume_configuration
        .as_ref()
        .map(|efs| {
            let authorization = efs.authorization_config.as_ref().map(|auth| {
                types::EfsAuthorizationConfig::builder()
                    .set_access_point_id(auth.access_point_id.clone())
                    .set_iam(auth.iam.as_deref().map(types::EfsAuthorizationConfigIam::from))
                    .build()
            });
            types::EfsVolumeConfiguration::builder()
                .file_system_id(&efs.file_system_id)
                .set_root_directory(efs.root_directory.clone())
                .set_transit_encryption(efs.transit_encryption.as_deref().map(types::EfsTransitEncryption::from))
                .set_authorization_config(authorization)
                .build()
        })
        .transpose()?;
    Ok(types::Volume::builder()
        .name(&volume.name)
        .set_host(
            volume
                .host
                .as_ref()
                .map(|host| types::HostVolumeProperties::builder().set_source_path(host.source_path.clone()).build()),
        )
        .set_efs_volume_configuration(efs)
        .set_configured_at_launch(volume.configured_at_launch)
        .build())
}
