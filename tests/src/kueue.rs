//! Kueue's own manager (built from its pinned Go module by hack/setup) against the shared control plane,
//! installed as a user's install has it: its CRDs (the versions converted by its webhook), its mutating
//! and validating webhooks for Kueue's own kinds, and a Configuration. Only the addresses differ: the
//! webhooks are served on 127.0.0.1 with a certificate made here (the API server trusts it through each
//! configuration's caBundle), where a cluster would use a Service and Kueue's own certificates.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::{Process, cache_dir, ensure_namespace, free_port, http_get, setup_binary, tail};

/// Kueue's namespace, as its install has it.
pub const NAMESPACE: &str = "kueue-system";
/// Kueue's webhook Service and certificate Secret, as its install names them.
const SERVICE: &str = "kueue-webhook-service";
const SECRET: &str = "kueue-webhook-server-cert";
/// Kinds whose CRDs Kueue's install gives a conversion webhook (config/components/crd/kustomization.yaml).
const CONVERTED: [&str; 5] = ["workloads", "clusterqueues", "localqueues", "cohorts", "multikueueclusters"];

/// A running Kueue manager.
pub struct Kueue {
    pub process: Process,
    pub health_url: String,
}

impl Kueue {
    /// Installs Kueue's CRDs and webhook configurations and starts its manager; returns once it is ready
    /// (webhooks served). Fails with the reason (and the manager's last lines) if it cannot.
    pub async fn start(work: &Path, kubeconfig: &Path, client: &kube::Client) -> anyhow::Result<Self> {
        let binary = setup_binary("kueue").context("Kueue's manager is built by hack/setup (hack/peers)")?;
        let manifests = cache_dir().join("kueue");
        ensure!(
            manifests.join("webhooks.yaml").exists(),
            "{} has no Kueue manifests: hack/setup copies them (hack/peers/kueue-manifests)",
            manifests.display()
        );
        let dir = work.join("kueue");
        std::fs::create_dir_all(dir.join("certs"))?;
        std::fs::create_dir_all(dir.join("pki"))?;
        let webhook_port = free_port()?;
        let health_port = free_port()?;
        let base = format!("https://127.0.0.1:{webhook_port}");
        ensure_namespace(client, NAMESPACE).await?;
        let ca_bundle = certificates(client, &dir.join("pki")).await?;
        // Where the Secret would be mounted in Kueue's Pod: cert-controller waits for the files there.
        for file in ["ca.crt", "tls.crt", "tls.key"] {
            std::fs::copy(dir.join("pki").join(file), dir.join("certs").join(file))?;
        }
        install_crds(client, &manifests.join("crds"), &base, &ca_bundle).await?;
        install_webhooks(client, &manifests.join("webhooks.yaml"), &base, &ca_bundle).await?;
        let config = dir.join("config.yaml");
        std::fs::write(&config, configuration(webhook_port, health_port, &dir.join("certs")))?;
        let mut command = Command::new(binary);
        command
            .env("KUBECONFIG", kubeconfig)
            .arg(format!("--config={}", config.display()))
            // The on-demand visibility API is an aggregated API server: no test reads it.
            .arg("--feature-gates=VisibilityOnDemand=false");
        let process = Process::spawn("kueue", command, work.join("kueue.log"))?;
        let mut kueue = Self { process, health_url: format!("http://127.0.0.1:{health_port}/readyz") };
        kueue.ready().await?;
        Ok(kueue)
    }

    async fn ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            self.process.ensure_alive()?;
            if http_get(&self.health_url).await.is_ok_and(|(status, _)| status == 200) {
                return Ok(());
            }
            ensure!(Instant::now() < deadline, "Kueue not ready in 90s:\n{}", tail(&self.process.log, 30));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Kueue's own certificate management (its install's default) keeps the certificates it finds in its
/// Secret while they are valid for its CA name and webhook Service: the harness puts there a CA and a
/// serving certificate that also names 127.0.0.1, where the API server reaches the webhooks. Made with
/// Debian's openssl (hack/setup installs it) in `dir`; returns the CA, base64-encoded, as a caBundle.
async fn certificates(client: &kube::Client, dir: &Path) -> anyhow::Result<String> {
    let openssl = |args: &[&str]| -> anyhow::Result<()> {
        let output = Command::new("openssl").current_dir(dir).args(args).output().context("running openssl")?;
        ensure!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        Ok(())
    };
    // cert-controller renews what expires within 90 days: ten years each.
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/O=kueue/CN=kueue-ca",
        "-addext",
        "subjectAltName=DNS:kueue-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,digitalSignature",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ])?;
    // cert-controller reads the CA's key as PKCS #1 only.
    openssl(&["rsa", "-in", "ca.key", "-traditional", "-out", "ca.key"])?;
    std::fs::write(
        dir.join("server.ext"),
        format!("subjectAltName=DNS:{SERVICE}.{NAMESPACE}.svc,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
    )?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        &format!("/CN={SERVICE}.{NAMESPACE}.svc"),
        "-keyout",
        "tls.key",
        "-out",
        "tls.csr",
    ])?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        "server.ext",
        "-out",
        "tls.crt",
    ])?;
    let read = |file: &str| std::fs::read(dir.join(file)).map(k8s_openapi::ByteString);
    let secret = k8s_openapi::api::core::v1::Secret {
        metadata: kube::api::ObjectMeta { name: Some(SECRET.into()), ..Default::default() },
        data: Some(
            [
                ("ca.crt", read("ca.crt")?),
                ("ca.key", read("ca.key")?),
                ("tls.crt", read("tls.crt")?),
                ("tls.key", read("tls.key")?),
            ]
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
        ),
        ..Default::default()
    };
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), NAMESPACE);
    secrets.patch(SECRET, &PatchParams::apply("ecsrun-testbed").force(), &Patch::Apply(&secret)).await?;
    // ByteString serializes as base64, as the API server reads caBundle.
    serde_json::to_value(read("ca.crt")?)?.as_str().map(str::to_owned).context("caBundle")
}

fn configuration(webhook_port: u16, health_port: u16, certs: &Path) -> String {
    format!(
        r#"apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: {NAMESPACE}
health:
  healthProbeBindAddress: 127.0.0.1:{health_port}
metrics:
  bindAddress: "0"
webhook:
  host: 127.0.0.1
  port: {webhook_port}
  certDir: {certs}
leaderElection:
  leaderElect: false
clientConnection:
  qps: 50
  burst: 100
integrations:
  frameworks:
  - batch/job
"#,
        certs = certs.display()
    )
}

/// Applies Kueue's CRDs, each converted kind with the conversion webhook its install configures.
async fn install_crds(client: &kube::Client, dir: &Path, base: &str, ca_bundle: &str) -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir)?.map(|entry| entry.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.sort();
    let mut crds = Vec::new();
    for file in files {
        let mut crd: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&file)?).with_context(|| format!("{}", file.display()))?;
        let plural = crd.pointer("/spec/names/plural").and_then(Value::as_str).unwrap_or_default().to_owned();
        if CONVERTED.contains(&plural.as_str()) {
            crd["spec"]["conversion"] = json!({
                "strategy": "Webhook",
                "webhook": {
                    "conversionReviewVersions": ["v1"],
                    "clientConfig": {"url": format!("{base}/convert"), "caBundle": ca_bundle},
                },
            });
        }
        crds.push(serde_json::from_value(crd)?);
    }
    crate::apply_crds(client, crds).await
}

/// Applies Kueue's webhook configurations (named as its install names them), served at `base`: the
/// webhooks of Kueue's own kinds and of the one job integration configured (batch/job). Those of other
/// integrations (Pods, Deployments, ...) are left out: this manager serves none of them, and a Pod
/// webhook nobody serves would refuse every Pod of the shared control plane.
async fn install_webhooks(client: &kube::Client, file: &Path, base: &str, ca_bundle: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)?;
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let mut configuration: Value = serde::Deserialize::deserialize(document)?;
        let kind = configuration["kind"].as_str().unwrap_or_default().to_owned();
        let name = format!("kueue-{}", configuration["metadata"]["name"].as_str().unwrap_or_default());
        configuration["metadata"]["name"] = json!(name);
        let webhooks = configuration["webhooks"].as_array_mut().context("webhooks")?;
        webhooks.retain(|webhook| {
            let rules = webhook["rules"].as_array().cloned().unwrap_or_default();
            rules.iter().all(|rule| {
                let groups = rule["apiGroups"].as_array().cloned().unwrap_or_default();
                let resources = rule["resources"].as_array().cloned().unwrap_or_default();
                groups.iter().all(|g| g == "kueue.x-k8s.io")
                    || resources.iter().all(|r| r == "jobs") && groups.iter().all(|g| g == "batch")
            })
        });
        for webhook in webhooks.iter_mut() {
            let path = webhook["clientConfig"]["service"]["path"].as_str().unwrap_or_default().to_owned();
            webhook["clientConfig"] = json!({"url": format!("{base}{path}"), "caBundle": ca_bundle});
        }
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", &kind));
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        api.patch(&name, &PatchParams::apply("ecsrun-testbed").force(), &Patch::Apply(&configuration))
            .await
            .with_context(|| format!("applying {kind} {name}"))?;
    }
    Ok(())
}

/// Kueue's `kind` (v1beta2).
fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("kueue.x-k8s.io", "v1beta2", kind))
}

/// Kueue's objects of `kind`, in `namespace` or cluster-wide.
pub fn api(client: &kube::Client, kind: &str, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource(kind)),
        None => Api::all_with(client.clone(), &resource(kind)),
    }
}

/// Creates or updates a Kueue object of `kind` (server-side apply).
pub async fn apply(client: &kube::Client, kind: &str, namespace: Option<&str>, object: Value) -> anyhow::Result<()> {
    crate::apply_object(client, &resource(kind), namespace, object).await
}
