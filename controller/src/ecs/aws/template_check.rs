//! Whether a revision found by its `ecsrun.dev/template-hash` tag is what the template says. The tag
//! proves nothing: whoever may register and tag task definitions in the account can put a revision with
//! other roles, images or privileges under a harmless template's hash. A found revision is used only
//! when everything that decides what runs, and as whom, is the template's; ECS's own defaults (an unset
//! `essential` is true, an unset container cpu is 0, an unset network mode is bridge, empty lists)
//! count as unset on both sides, so ECS describing a revision its own way is no difference.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ecs::types;

use super::template::{container, volume};
use crate::api;
use crate::policy::{cpu_units, memory_mib};

/// The first field in which the revision differs from the template (None: it is the template's).
pub(super) fn difference(template: &api::TaskDefinitionTemplate, found: &types::TaskDefinition) -> Option<String> {
    let expected_containers: Result<Vec<_>, _> = template.container_definitions.iter().map(container).collect();
    let expected_volumes: Result<Vec<_>, _> = template.volumes.iter().map(volume).collect();
    let (Ok(expected_containers), Ok(expected_volumes)) = (expected_containers, expected_volumes) else {
        return Some("the template cannot be built to compare".into());
    };
    let task = [
        ("taskRoleArn", opt(template.task_role_arn.as_deref()), opt(found.task_role_arn())),
        ("executionRoleArn", opt(template.execution_role_arn.as_deref()), opt(found.execution_role_arn())),
        (
            "networkMode",
            template.network_mode.clone().unwrap_or_else(|| "bridge".into()),
            found.network_mode().map_or("bridge", |mode| mode.as_str()).to_owned(),
        ),
        ("pidMode", String::new(), found.pid_mode().map_or("", |mode| mode.as_str()).to_owned()),
        ("ipcMode", String::new(), found.ipc_mode().map_or("", |mode| mode.as_str()).to_owned()),
        (
            "cpu",
            format!("{:?}", template.cpu.as_deref().and_then(cpu_units)),
            format!("{:?}", found.cpu().and_then(cpu_units)),
        ),
        (
            "memory",
            format!("{:?}", template.memory.as_deref().and_then(memory_mib)),
            format!("{:?}", found.memory().and_then(memory_mib)),
        ),
    ];
    for (field, expected, actual) in task {
        if expected != actual {
            return Some(format!("{field}: {actual:?} where the template has {expected:?}"));
        }
    }
    if volumes(&expected_volumes) != volumes(found.volumes()) {
        return Some("volumes".into());
    }
    let expected: BTreeMap<_, _> = expected_containers.iter().map(|c| (c.name().unwrap_or_default(), c)).collect();
    let actual: BTreeMap<_, _> =
        found.container_definitions().iter().map(|c| (c.name().unwrap_or_default(), c)).collect();
    if expected.keys().ne(actual.keys()) {
        return Some(format!(
            "containers {:?} where the template has {:?}",
            actual.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>()
        ));
    }
    expected
        .iter()
        .find(|(name, wanted)| Runs::of(wanted) != Runs::of(actual[*name]))
        .map(|(name, _)| format!("container {name}"))
}

fn opt(value: Option<&str>) -> String {
    value.unwrap_or_default().to_owned()
}

type Volume = (String, Option<String>, Option<String>, Option<String>, bool);

/// Volumes by name: a host path, an EFS file system and root, given at launch.
fn volumes(volumes: &[types::Volume]) -> BTreeSet<Volume> {
    volumes
        .iter()
        .map(|v| {
            let efs = v.efs_volume_configuration();
            (
                v.name().unwrap_or_default().to_owned(),
                v.host().and_then(|host| host.source_path()).map(str::to_owned),
                efs.map(|efs| efs.file_system_id().to_owned()),
                efs.and_then(|efs| efs.root_directory()).filter(|root| *root != "/").map(str::to_owned),
                v.configured_at_launch().unwrap_or(false),
            )
        })
        .collect()
}

/// A log driver, its options and its secret options.
type Log<'a> = (&'a str, BTreeMap<&'a str, &'a str>, BTreeSet<(&'a str, &'a str)>);

/// What decides what a container runs, and with which privileges, with ECS's defaults made explicit.
#[derive(Debug, PartialEq)]
struct Runs<'a> {
    image: Option<&'a str>,
    command: &'a [String],
    entry_point: &'a [String],
    environment: BTreeSet<(Option<&'a str>, Option<&'a str>)>,
    environment_files: BTreeSet<(&'a str, &'a str)>,
    secrets: BTreeSet<(&'a str, &'a str)>,
    essential: bool,
    privileged: bool,
    user: Option<&'a str>,
    working_directory: Option<&'a str>,
    readonly_root_filesystem: bool,
    cpu: i32,
    memory: Option<i32>,
    memory_reservation: Option<i32>,
    /// Capabilities, devices, init process: never in a template, so any is a difference.
    linux_parameters: bool,
    volumes_from: usize,
    log: Option<Log<'a>>,
    mount_points: BTreeSet<(Option<&'a str>, Option<&'a str>, bool)>,
    depends_on: BTreeSet<(&'a str, &'a str)>,
    resource_requirements: BTreeSet<(&'a str, &'a str)>,
    docker_labels: BTreeMap<&'a str, &'a str>,
}

impl<'a> Runs<'a> {
    fn of(c: &'a types::ContainerDefinition) -> Self {
        let secrets = |secrets: &'a [types::Secret]| secrets.iter().map(|s| (s.name(), s.value_from())).collect();
        let map = |map: Option<&'a std::collections::HashMap<String, String>>| {
            map.into_iter().flatten().map(|(k, v)| (k.as_str(), v.as_str())).collect()
        };
        Runs {
            image: c.image(),
            command: c.command(),
            entry_point: c.entry_point(),
            environment: c.environment().iter().map(|e| (e.name(), e.value())).collect(),
            environment_files: c.environment_files().iter().map(|f| (f.r#type().as_str(), f.value())).collect(),
            secrets: secrets(c.secrets()),
            essential: c.essential().unwrap_or(true),
            privileged: c.privileged().unwrap_or(false),
            user: c.user(),
            working_directory: c.working_directory(),
            readonly_root_filesystem: c.readonly_root_filesystem().unwrap_or(false),
            cpu: c.cpu(),
            memory: c.memory(),
            memory_reservation: c.memory_reservation(),
            linux_parameters: c.linux_parameters().is_some(),
            volumes_from: c.volumes_from().len(),
            log: c
                .log_configuration()
                .map(|log| (log.log_driver().as_str(), map(log.options()), secrets(log.secret_options()))),
            mount_points: c
                .mount_points()
                .iter()
                .map(|m| (m.source_volume(), m.container_path(), m.read_only().unwrap_or(false)))
                .collect(),
            depends_on: c.depends_on().iter().map(|d| (d.container_name(), d.condition().as_str())).collect(),
            resource_requirements: c.resource_requirements().iter().map(|r| (r.r#type().as_str(), r.value())).collect(),
            docker_labels: map(c.docker_labels()),
        }
    }
}
