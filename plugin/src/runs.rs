//! The runs of one namespace through the user's kubeconfig, with errors that say what to do.

use std::time::Duration;

use anyhow::{Context as _, bail};
use ecsrun_api::{EcsTaskRun, EcsTaskRunStatus, Phase};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;

use crate::kube_flags::KubeFlags;

pub struct Runs {
    pub api: Api<EcsTaskRun>,
    pub events: Api<Event>,
    pub namespace: String,
}

impl Runs {
    pub async fn connect(flags: &KubeFlags) -> anyhow::Result<Self> {
        let (config, namespace) = flags.config().await?;
        let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
        Ok(Self {
            api: Api::namespaced(client.clone(), &namespace),
            events: Api::namespaced(client, &namespace),
            namespace,
        })
    }

    pub async fn get(&self, name: &str) -> anyhow::Result<EcsTaskRun> {
        match self.api.get_opt(name).await {
            Ok(Some(run)) => Ok(run),
            Ok(None) => bail!("EcsTaskRun {name} not found in namespace {} (kubectl get etr -n {0})", self.namespace),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                bail!("the EcsTaskRun API is not installed in this cluster: install the ecsrun chart (see the README)")
            }
            Err(error) => Err(error).with_context(|| format!("reading EcsTaskRun {name}")),
        }
    }

    pub async fn create(&self, run: &EcsTaskRun) -> anyhow::Result<EcsTaskRun> {
        self.api.create(&PostParams::default(), run).await.map_err(|error| match error {
            // The API server's own words name the field and the rule.
            kube::Error::Api(status) => anyhow::anyhow!("the API server refused the run: {}", status.message),
            other => anyhow::Error::new(other).context("creating the EcsTaskRun"),
        })
    }

    /// Merge-patches the run's spec.
    pub async fn patch_spec(&self, name: &str, spec: serde_json::Value) -> anyhow::Result<EcsTaskRun> {
        let patch = serde_json::json!({ "spec": spec });
        self.api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(|error| match error {
            kube::Error::Api(status) => anyhow::anyhow!("the API server refused the change: {}", status.message),
            other => anyhow::Error::new(other).context(format!("patching EcsTaskRun {name}")),
        })
    }

    /// Waits (watching) until `done` holds for the run's status; returns the run then.
    pub async fn wait_for(
        &self,
        name: &str,
        within: Duration,
        what: &str,
        done: impl Fn(&EcsTaskRunStatus) -> bool,
    ) -> anyhow::Result<EcsTaskRun> {
        let condition = move |run: Option<&EcsTaskRun>| run.and_then(|run| run.status.as_ref()).is_some_and(&done);
        match tokio::time::timeout(within, await_condition(self.api.clone(), name, condition)).await {
            Ok(Ok(Some(run))) => Ok(run),
            Ok(Ok(None)) => bail!("EcsTaskRun {name} was deleted while waiting for it to be {what}"),
            Ok(Err(error)) => Err(error).with_context(|| format!("watching EcsTaskRun {name}")),
            Err(_) => bail!(
                "EcsTaskRun {name} was not {what} within {}; `kubectl ecsrun describe {name}` shows where it is",
                humantime::format_duration(within)
            ),
        }
    }

    /// The run's Events, oldest first.
    pub async fn events_of(&self, run: &EcsTaskRun) -> anyhow::Result<Vec<Event>> {
        let uid = run.metadata.uid.clone().unwrap_or_default();
        let mut events =
            self.events.list(&ListParams::default().fields(&format!("involvedObject.uid={uid}"))).await?.items;
        events.sort_by_key(event_time);
        Ok(events)
    }
}

/// When an Event last happened, as well as the API records it.
pub fn event_time(event: &Event) -> Option<jiff::Timestamp> {
    event
        .last_timestamp
        .as_ref()
        .map(|time| time.0)
        .or_else(|| event.event_time.as_ref().map(|time| time.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|time| time.0))
}

pub fn is_finished(status: &EcsTaskRunStatus) -> bool {
    status.task.phase.is_some_and(Phase::is_terminal)
}
