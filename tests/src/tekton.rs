//! Tekton Pipelines' controller (built from its pinned Go module by hack/setup: hack/peers) against the
//! shared control plane, with its CRDs and configuration ConfigMaps as its install has them. Two things
//! differ from a cluster's install:
//! - Tekton's webhook does not run. It converts Tasks, Pipelines and their runs between v1beta1 and v1;
//!   the tests write v1 Pipelines and PipelineRuns (and Tekton writes v1beta1 CustomRuns), each kept as
//!   written, so the CRDs are installed without conversion. Its defaults are applied by the controller's
//!   reconcilers too.
//! - Its listeners (profiling, metrics) are on 127.0.0.1, and there is one replica without leader
//!   election (hack/peers/tekton/main.go).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use crate::{Process, cache_dir, ensure_namespace, free_port, setup_binary, tail};

/// Tekton's namespace, as its install has it.
pub const NAMESPACE: &str = "tekton-pipelines";

/// A running Tekton Pipelines controller.
pub struct Tekton {
    pub process: Process,
}

impl Tekton {
    /// Installs Tekton's CRDs and configuration and starts its controller; returns once its reconcilers
    /// have started. Fails with the reason (and the controller's last lines) if it cannot.
    pub async fn start(work: &Path, kubeconfig: &Path, client: &kube::Client) -> anyhow::Result<Self> {
        let binary = setup_binary("tekton-controller").context("Tekton's controller is built by hack/setup")?;
        let manifests = cache_dir().join("tekton");
        ensure!(
            manifests.join("crds").exists(),
            "{} has no Tekton manifests: hack/setup copies them (hack/peers/tekton-manifests)",
            manifests.display()
        );
        ensure_namespace(client, NAMESPACE).await?;
        install_crds(client, &manifests.join("crds")).await?;
        let metrics_port = free_port()?;
        install_config(client, &manifests.join("config"), metrics_port).await?;
        let mut command = Command::new(binary);
        command
            .env("KUBECONFIG", kubeconfig)
            .env("SYSTEM_NAMESPACE", NAMESPACE)
            .env("KUBERNETES_MIN_VERSION", "v1.28.0")
            .env("CONFIG_DEFAULTS_NAME", "config-defaults")
            .env("CONFIG_LOGGING_NAME", "config-logging")
            .env("CONFIG_OBSERVABILITY_NAME", "config-observability")
            .env("CONFIG_FEATURE_FLAGS_NAME", "feature-flags")
            .env("CONFIG_LEADERELECTION_NAME", "config-leader-election-controller")
            .env("CONFIG_SPIRE", "config-spire")
            .env("METRICS_DOMAIN", "tekton.dev/pipeline")
            .env("PROFILING_PORT", free_port()?.to_string());
        let log = work.join("tekton.log");
        let process = Process::spawn("tekton", command, log)?;
        let mut tekton = Self { process };
        tekton.started().await?;
        Ok(tekton)
    }

    /// Its reconcilers have started once it says so.
    async fn started(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.process.ensure_alive()?;
            if std::fs::read_to_string(&self.process.log).is_ok_and(|text| text.contains("Starting controllers")) {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "Tekton's controller did not start in 60s:\n{}",
                tail(&self.process.log, 30)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Tekton's CRDs, without the conversion its webhook would serve (see the module's comment).
async fn install_crds(client: &kube::Client, dir: &Path) -> anyhow::Result<()> {
    let mut crds = Vec::new();
    for file in yaml_files(dir)? {
        let mut crd: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&file)?).with_context(|| format!("{}", file.display()))?;
        if let Some(spec) = crd["spec"].as_object_mut() {
            spec.remove("conversion");
        }
        crds.push(serde_json::from_value(crd).with_context(|| format!("{}", file.display()))?);
    }
    crate::apply_crds(client, crds).await
}

/// Tekton's configuration ConfigMaps as its install has them, its metrics served on 127.0.0.1.
async fn install_config(client: &kube::Client, dir: &Path, metrics_port: u16) -> anyhow::Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap")),
    );
    for file in yaml_files(dir)? {
        let mut config: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&file)?).with_context(|| format!("{}", file.display()))?;
        let name = config.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        if name == "config-observability" {
            config["data"]["metrics-endpoint"] = Value::String(format!("127.0.0.1:{metrics_port}"));
        }
        api.patch(&name, &PatchParams::apply("ecsrun-testbed").force(), &Patch::Apply(&config))
            .await
            .with_context(|| format!("ConfigMap {name}"))?;
    }
    Ok(())
}

fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|file| file.extension().is_some_and(|ext| ext == "yaml"));
    files.sort();
    Ok(files)
}

/// Tekton's `kind` (`Pipeline`, `PipelineRun`: v1; `CustomRun`: v1beta1).
fn resource(kind: &str) -> ApiResource {
    let version = if kind == "CustomRun" { "v1beta1" } else { "v1" };
    ApiResource::from_gvk(&GroupVersionKind::gvk("tekton.dev", version, kind))
}

/// Tekton's objects of `kind` in `namespace`.
pub fn api(client: &kube::Client, kind: &str, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &resource(kind))
}

/// Creates or updates a Tekton object of `kind` (server-side apply), in `namespace`.
pub async fn apply(client: &kube::Client, namespace: &str, kind: &str, object: Value) -> anyhow::Result<()> {
    crate::apply_object(client, &resource(kind), Some(namespace), object).await
}
