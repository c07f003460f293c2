//! ecsrun as a Tekton custom task: Tekton's PipelineRun controller creates a `CustomRun`
//! (tekton.dev/v1beta1) for each pipeline task whose `taskRef` or `taskSpec` names
//! `ecsrun.dev/v1alpha1` `EcsTaskRun`; ecsrun runs it as an EcsTaskRun of its own (same namespace, same
//! policies, owned by the CustomRun) and mirrors that run into the CustomRun's `Succeeded` condition and
//! `results`, which is all Tekton reads.
//!
//! `decide` is pure (what run a CustomRun asks for, what its status says); `shell` reads and writes;
//! `wiring` runs the controller on the leader, with `--tekton`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

pub mod decide;
pub mod shell;
pub mod wiring;

/// The `apiVersion` and `kind` a CustomRun names for ecsrun to run it.
pub const API_VERSION: &str = "ecsrun.dev/v1alpha1";
pub const KIND: &str = "EcsTaskRun";
/// The label of a run made for a CustomRun: its CustomRun's name (and the selector of ecsrun's watch).
pub const CUSTOM_RUN_LABEL: &str = "ecsrun.dev/custom-run";
/// The annotation of a template naming the container Tekton's params go to.
pub const PARAMS_CONTAINER_ANNOTATION: &str = "ecsrun.dev/params-container";
/// The param whose value (an array) becomes the container's command.
pub const ARGS_PARAM: &str = "args";
/// What `spec.status` says when the CustomRun is cancelled (its PipelineRun was, or timed out).
pub const CANCELLED: &str = "RunCancelled";

/// Tekton's CustomRun, as far as ecsrun reads and writes it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "tekton.dev",
    version = "v1beta1",
    kind = "CustomRun",
    namespaced,
    status = "CustomRunStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct CustomRunSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_ref: Option<TaskRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_spec: Option<EmbeddedSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// `RunCancelled` once cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i32>,
    /// A Go duration (`1h0m0s`); `0s`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TaskRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A pipeline task's `taskSpec` of a custom kind: its `spec` is the EcsTaskRun's spec.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<EmbeddedMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct EmbeddedMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A param: a string, an array of strings or an object of strings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    pub value: serde_json::Value,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CustomRunStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<KnativeCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<CustomRunResult>,
    /// Where the run is: the EcsTaskRun's name, for `kubectl get customrun -o yaml` readers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_fields: Option<serde_json::Value>,
}

/// knative's condition (Tekton's status duck type): `Succeeded` Unknown, True or False.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KnativeCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CustomRunResult {
    pub name: String,
    pub value: String,
}

impl CustomRun {
    /// The CustomRun's `Succeeded` condition.
    pub fn succeeded(&self) -> Option<&KnativeCondition> {
        self.status.as_ref()?.conditions.iter().find(|c| c.type_ == "Succeeded")
    }

    /// Done: its `Succeeded` condition is True or False. Tekton reads a done CustomRun's outcome once;
    /// ecsrun never changes it after.
    pub fn is_done(&self) -> bool {
        self.succeeded().is_some_and(|c| c.status != "Unknown")
    }

    pub fn is_cancelled(&self) -> bool {
        self.spec.status.as_deref() == Some(CANCELLED)
    }
}

#[cfg(test)]
mod tests;
