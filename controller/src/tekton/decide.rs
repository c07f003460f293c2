//! What a CustomRun asks ecsrun for (`template`, `desired_run`) and what its status says of the run made
//! for it (`status`). Pure: the shell reads the objects and writes what comes out.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::ResourceExt;

use super::{
    API_VERSION, ARGS_PARAM, CUSTOM_RUN_LABEL, CustomRun, CustomRunResult, CustomRunStatus, KIND, KnativeCondition,
    PARAMS_CONTAINER_ANNOTATION,
};
use crate::api::{ContainerOverride, EcsTaskRun, EcsTaskRunSpec, EnvVar, GoDuration, Phase, RunReason, TaskOverrides};

/// Where a CustomRun's EcsTaskRun comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Template<'a> {
    /// An EcsTaskRun of the namespace, by name (`customRef.name`), used as a template.
    Named(&'a str),
    /// The spec embedded in the pipeline task (`customSpec.spec`), with its labels and annotations.
    Embedded { spec: &'a serde_json::Value, metadata: Option<&'a super::EmbeddedMetadata> },
}

/// The template a CustomRun names, if it is ecsrun's to run (its `customRef` or `customSpec` names
/// `ecsrun.dev/v1alpha1` `EcsTaskRun`); an error says what is wrong with one that is.
pub fn template(custom_run: &CustomRun) -> Option<Result<Template<'_>, String>> {
    let ours = |api_version: Option<&str>, kind: Option<&str>| api_version == Some(API_VERSION) && kind == Some(KIND);
    if let Some(reference) = &custom_run.spec.custom_ref
        && ours(reference.api_version.as_deref(), reference.kind.as_deref())
    {
        return Some(match reference.name.as_deref() {
            Some(name) if !name.is_empty() => Ok(Template::Named(name)),
            _ => Err("customRef names no EcsTaskRun: give its name, or embed a spec (taskSpec)".to_owned()),
        });
    }
    let embedded = custom_run.spec.custom_spec.as_ref()?;
    if !ours(embedded.api_version.as_deref(), embedded.kind.as_deref()) {
        return None;
    }
    let metadata = embedded.metadata.as_ref();
    Some(
        embedded
            .spec
            .as_ref()
            .map(|spec| Template::Embedded { spec, metadata })
            .ok_or_else(|| "taskSpec has no spec".to_owned()),
    )
}

/// A template's spec and metadata, as the shell found them.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateRun {
    pub spec: EcsTaskRunSpec,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// The EcsTaskRun a CustomRun asks for: the template's spec with Tekton's params, retries and timeout,
/// named as the CustomRun, in its namespace and owned by it; or why there is none (an invalid request).
///
/// - Params become environment variables of one container (the template's annotation
///   `ecsrun.dev/params-container`, else its first container override, else the first container it
///   reads results from); a param named `args` (an array) becomes that container's command.
/// - `retries` becomes `retryPolicy.backoffLimit`; `timeout` caps `wait.timeout`.
/// - The template's `suspend` and `stop` are dropped: a template is usually kept suspended.
pub fn desired_run(custom_run: &CustomRun, template: TemplateRun) -> Result<EcsTaskRun, String> {
    let name = custom_run.name_any();
    let uid = custom_run.uid().ok_or("the CustomRun has no uid")?;
    let mut spec = template.spec;
    if spec.task_arn.is_some() {
        return Err("the template follows a task started elsewhere (taskArn): a pipeline task launches its own".into());
    }
    spec.suspend = false;
    spec.stop = false;
    spec.stop_reason = None;
    apply_params(custom_run, &mut spec, &template.annotations)?;
    if let Some(retries) = custom_run.spec.retries.filter(|retries| *retries > 0) {
        spec.retry_policy.backoff_limit = retries.min(20);
    }
    if let Some(timeout) = custom_timeout(custom_run)? {
        let shorter = match spec.wait.timeout.as_ref().and_then(|own| own.get().ok()) {
            Some(own) if own <= timeout => None,
            _ => Some(GoDuration::parse(&go_seconds(timeout))),
        };
        if let Some(timeout) = shorter {
            spec.wait.timeout = Some(timeout);
        }
    }
    let mut labels: BTreeMap<String, String> =
        template.labels.into_iter().filter(|(key, _)| !key.starts_with("ecsrun.dev/")).collect();
    labels.extend(custom_run.labels().iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.insert(CUSTOM_RUN_LABEL.to_owned(), name.clone());
    let owner = OwnerReference {
        api_version: "tekton.dev/v1beta1".into(),
        kind: "CustomRun".into(),
        name: name.clone(),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let metadata = ObjectMeta {
        name: Some(name),
        namespace: custom_run.namespace(),
        labels: Some(labels),
        annotations: (!template.annotations.is_empty()).then_some(template.annotations),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    };
    Ok(EcsTaskRun { metadata, spec, status: None })
}

/// The CustomRun's own `timeout`, if it sets one (`0s`: none).
fn custom_timeout(custom_run: &CustomRun) -> Result<Option<Duration>, String> {
    let Some(text) = custom_run.spec.timeout.as_deref() else { return Ok(None) };
    let timeout = GoDuration::parse(text).get().map_err(|why| format!("timeout {text:?}: {why}"))?;
    Ok((!timeout.is_zero()).then_some(timeout))
}

/// Whole seconds as a duration the run's schema takes (at least one).
fn go_seconds(timeout: Duration) -> String {
    format!("{}s", timeout.as_secs().max(1))
}

fn apply_params(
    custom_run: &CustomRun,
    spec: &mut EcsTaskRunSpec,
    annotations: &BTreeMap<String, String>,
) -> Result<(), String> {
    let params = &custom_run.spec.params;
    if params.is_empty() {
        return Ok(());
    }
    let container = annotations
        .get(PARAMS_CONTAINER_ANNOTATION)
        .cloned()
        .or_else(|| spec.overrides.as_ref().and_then(|o| o.container_overrides.first()).map(|c| c.name.clone()))
        .or_else(|| spec.results.as_ref().and_then(|r| r.containers.first().cloned()))
        .ok_or_else(|| {
            format!(
                "params {} have no container to go to: annotate the template with {PARAMS_CONTAINER_ANNOTATION}",
                params.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
            )
        })?;
    let overrides = spec.overrides.get_or_insert_with(TaskOverrides::default);
    let at = match overrides.container_overrides.iter().position(|c| c.name == container) {
        Some(at) => at,
        None => {
            overrides.container_overrides.push(ContainerOverride { name: container, ..ContainerOverride::default() });
            overrides.container_overrides.len() - 1
        }
    };
    let target = &mut overrides.container_overrides[at];
    for param in params {
        if param.name == ARGS_PARAM {
            let args = match &param.value {
                serde_json::Value::Array(items) => items.iter().map(param_text).collect(),
                single => vec![param_text(single)],
            };
            target.command = Some(args);
            continue;
        }
        let value = param_text(&param.value);
        match target.environment.iter_mut().find(|variable| variable.name == param.name) {
            Some(variable) => variable.value = value,
            None => target.environment.push(EnvVar { name: param.name.clone(), value }),
        }
    }
    Ok(())
}

/// A param's value as text: a string as is, an array or object as JSON.
fn param_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Tekton's reasons for the CustomRun's `Succeeded` condition.
pub mod reason {
    pub const STARTED: &str = "Started";
    pub const RUNNING: &str = "Running";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const CANCELLED: &str = "CustomRunCancelled";
    pub const TIMED_OUT: &str = "CustomRunTimedOut";
    /// ecsrun's own: the CustomRun asks for something ecsrun cannot run.
    pub const INVALID: &str = "InvalidEcsTaskRun";
}

/// What the CustomRun's status says, from the run made for it (None: not made; `refusal`: why it
/// cannot be). `lastTransitionTime` moves only when the condition's status or reason does.
pub fn status(
    custom_run: &CustomRun,
    run: Option<&EcsTaskRun>,
    refusal: Option<&str>,
    now: Timestamp,
) -> CustomRunStatus {
    let current = custom_run.status.clone().unwrap_or_default();
    let start_time = current
        .start_time
        .clone()
        .or_else(|| run.and_then(|run| run.metadata.creation_timestamp.clone()))
        .unwrap_or(Time(now));
    let run_status = run.and_then(|run| run.status.clone()).unwrap_or_default();
    let (state, reason, message) = outcome(custom_run, run, refusal);
    let done = state != "Unknown";
    let previous = custom_run.succeeded();
    let last_transition_time = match previous {
        Some(previous) if previous.status == state && previous.reason.as_deref() == Some(reason) => {
            previous.last_transition_time.clone()
        }
        _ => Some(Time(now)),
    };
    let completion_time = done.then(|| {
        current
            .completion_time
            .clone()
            .or_else(|| crate::decide::run::finished_at(&run_status).map(Time))
            .or_else(|| last_transition_time.clone())
    });
    let results = if state == "True" {
        run_status
            .task
            .results
            .iter()
            .map(|(name, value)| CustomRunResult { name: name.clone(), value: value.clone() })
            .collect()
    } else {
        Vec::new()
    };
    CustomRunStatus {
        conditions: vec![KnativeCondition {
            type_: "Succeeded".into(),
            status: state.into(),
            last_transition_time,
            reason: Some(reason.into()),
            message: Some(message),
        }],
        observed_generation: custom_run.metadata.generation,
        start_time: Some(start_time),
        completion_time: completion_time.flatten(),
        results,
        extra_fields: run.map(|run| serde_json::json!({"ecsTaskRun": run.name_any()})),
    }
}

/// The `Succeeded` condition's status, reason and message.
fn outcome(
    custom_run: &CustomRun,
    run: Option<&EcsTaskRun>,
    refusal: Option<&str>,
) -> (&'static str, &'static str, String) {
    let cancelled = custom_run.is_cancelled();
    let cancel_message =
        || custom_run.spec.status_message.clone().unwrap_or_else(|| "the CustomRun was cancelled".to_owned());
    let Some(run) = run else {
        return match (refusal, cancelled) {
            (_, true) => ("False", reason::CANCELLED, cancel_message()),
            (Some(why), false) => ("False", reason::INVALID, why.to_owned()),
            (None, false) => ("Unknown", reason::STARTED, "creating its EcsTaskRun".to_owned()),
        };
    };
    let status = run.status.clone().unwrap_or_default();
    let message = status.task.message.clone().unwrap_or_default();
    let run_reason = status.task.known_reason();
    match status.task.phase {
        Some(Phase::Succeeded) => ("True", reason::SUCCEEDED, message),
        Some(Phase::Failed) if cancelled && run_reason == Some(RunReason::Stopped) => {
            ("False", reason::CANCELLED, format!("{}: {message}", cancel_message()))
        }
        Some(Phase::Failed) if run_reason == Some(RunReason::DeadlineExceeded) => ("False", reason::TIMED_OUT, message),
        Some(Phase::Failed | Phase::Unknown) => {
            let reason = status.task.reason.as_ref().map_or("Failed", |reason| reason.as_str());
            ("False", spelled(reason), message)
        }
        _ if cancelled => ("Unknown", reason::RUNNING, format!("{}: stopping its ECS task", cancel_message())),
        _ => ("Unknown", reason::RUNNING, message),
    }
}

/// A run's reason as a `&'static str`: its RunReason's spelling (an error's reason while held up is not
/// final, so a final one is always known).
fn spelled(reason: &str) -> &'static str {
    crate::api::Reported::<RunReason>::parse(reason).known().map_or("Failed", |reason| reason.into())
}

/// The stop to ask of the run: the CustomRun is cancelled and its run is not finished and not yet told.
pub fn stop_wanted(custom_run: &CustomRun, run: &EcsTaskRun) -> Option<String> {
    let finished = run.status.as_ref().and_then(|status| status.task.phase).is_some_and(Phase::is_terminal);
    (custom_run.is_cancelled() && !run.spec.stop && !finished).then(|| {
        let why = custom_run.spec.status_message.as_deref().unwrap_or("the CustomRun was cancelled");
        crate::decide::bound::capped(&format!("ecsrun: Tekton: {why}"), 200).to_owned()
    })
}
