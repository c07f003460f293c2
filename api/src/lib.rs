//! The `ecsrun.dev/v1alpha1` API: [`EcsTaskRun`] (one ECS task run), [`EcsTaskSchedule`] (runs on a cron
//! schedule, with [`cron`] saying when) and [`EcsRunPolicy`] (what the runs of a set of namespaces may use). The controller, its tests and tools share these types; `crdgen` turns
//! them into the CRDs committed in `crds/` and the Helm chart.

pub mod cron;
mod describe;
mod launch;
mod policy;
mod retry;
mod run;
mod schedule;
mod status;
mod template;

pub use launch::*;
pub use policy::*;
pub use retry::*;
pub use run::*;
pub use schedule::*;
pub use status::*;
pub use template::*;

/// Every CRD of the API as (file name, YAML), exactly as committed in `crds/` and the Helm chart.
pub fn crds() -> Result<Vec<(&'static str, String)>, serde_yaml_ng::Error> {
    use kube::CustomResourceExt;
    Ok(vec![
        ("ecstaskruns.ecsrun.dev.yaml", serde_yaml_ng::to_string(&with_immutable_spec(EcsTaskRun::crd()))?),
        ("ecsrunpolicies.ecsrun.dev.yaml", serde_yaml_ng::to_string(&EcsRunPolicy::crd())?),
        ("ecstaskschedules.ecsrun.dev.yaml", serde_yaml_ng::to_string(&with_short_name(EcsTaskSchedule::crd()))?),
    ])
}

/// Fields of `EcsTaskRun.spec` that may change after creation: `stop`, `suspend`,
/// `ttlSecondsAfterFinished`, and `stopReason` in the update that sets `stop`.
const MUTABLE_SPEC_FIELDS: [&str; 4] = ["stop", "stopReason", "suspend", "ttlSecondsAfterFinished"];

/// Adds the spec's immutability rule: every field but `stop` keeps its value (present or not) across
/// updates, and `stopReason` changes only with `stop` turning true. Generated from the schema's own
/// field list, so a new field is immutable without anyone remembering to say so.
fn with_immutable_spec(
    mut crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule;
    let unchanged = |field: &str| {
        format!(
            "(has(self.{field}) == has(oldSelf.{field}) && (!has(self.{field}) || self.{field} == oldSelf.{field}))"
        )
    };
    for version in &mut crd.spec.versions {
        let Some(spec) = version
            .schema
            .as_mut()
            .and_then(|schema| schema.open_api_v3_schema.as_mut())
            .and_then(|schema| schema.properties.as_mut())
            .and_then(|properties| properties.get_mut("spec"))
        else {
            continue;
        };
        let fields: Vec<String> = spec
            .properties
            .iter()
            .flat_map(|properties| properties.keys())
            .filter(|field| !MUTABLE_SPEC_FIELDS.contains(&field.as_str()))
            .map(|field| unchanged(field))
            .collect();
        let stop_turns_true = "(has(self.stop) && self.stop && !(has(oldSelf.stop) && oldSelf.stop))";
        let rules = [fields.join(" && "), format!("{} || {stop_turns_true}", unchanged("stopReason"))];
        let rules = rules.map(|rule| ValidationRule {
            rule,
            message: Some(IMMUTABLE_SPEC.to_owned()),
            ..ValidationRule::default()
        });
        spec.x_kubernetes_validations.get_or_insert_with(Vec::new).splice(0..0, rules);
    }
    crd
}

/// Adds a rule on the schedule's own name: its runs are named `<schedule>-<unix minutes>` and labelled
/// with it, so it must leave room for both (CronJob's limit, 52 characters).
fn with_short_name(
    mut crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule;
    for version in &mut crd.spec.versions {
        if let Some(root) = version.schema.as_mut().and_then(|schema| schema.open_api_v3_schema.as_mut()) {
            root.x_kubernetes_validations.get_or_insert_with(Vec::new).push(ValidationRule {
                rule: format!("self.metadata.name.size() <= {MAX_SCHEDULE_NAME}"),
                message: Some(format!(
                    "a schedule's name has at most {MAX_SCHEDULE_NAME} characters: its runs are named <schedule>-<slot in unix minutes>"
                )),
                ..ValidationRule::default()
            });
        }
    }
    crd
}

/// The task ID: the last segment of a task ARN.
pub fn task_id(task_arn: &str) -> &str {
    task_arn.rsplit('/').next().unwrap_or(task_arn)
}

/// The region of an ECS ARN (`arn:aws:ecs:<region>:<account>:...`), if it has one.
pub fn arn_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|region| !region.is_empty())
}

/// The CloudWatch Logs stream the awslogs driver writes a container's output to: `prefix/container/task-id`.
pub fn awslogs_stream(prefix: &str, container: &str, task_arn: &str) -> String {
    format!("{prefix}/{container}/{}", task_id(task_arn))
}
