//! What GitOps tools make of a run, judged by their own code on runs the controller took through each
//! phase: Argo CD's health script (charts/ecsrun/argocd-health.lua) run by gopher-lua as Argo CD runs it,
//! and kstatus, which Flux's kustomize-controller and `kubectl wait`-style tools read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use ecsrun::api::EcsTaskRun;
use ecsrun_testbed::repo_root;
use futures::StreamExt as _;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::watcher;

use crate::{Case, Env, case, fargate_run};

/// The shared controller watches it.
use crate::lifecycle::NAMESPACE;

/// The health script as shipped (and shown in the chart's README).
pub const ARGOCD_HEALTH: &str = "charts/ecsrun/argocd-health.lua";

pub fn cases() -> Vec<Case> {
    vec![
        case("gitops::argo_cd_health_and_kstatus_follow_the_phase", health_follows_the_phase),
        case("gitops::readme_shows_the_shipped_argo_cd_health_check", readme_shows_the_health_check),
    ]
}

fn statuscheck() -> anyhow::Result<PathBuf> {
    let path = repo_root().join(".cache/bin/ecsrun-statuscheck");
    ensure!(path.exists(), "{} does not exist: hack/setup builds it from hack/statuscheck", path.display());
    Ok(path)
}

/// Runs `ecsrun-statuscheck <args>` on objects; returns (name, status, message) per object.
pub async fn judge(args: &[&str], objects: &[serde_json::Value]) -> anyhow::Result<Vec<(String, String, String)>> {
    let mut command = Command::new(statuscheck()?);
    command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let input = serde_json::to_vec(objects)?;
    let output = tokio::task::spawn_blocking(move || -> std::io::Result<std::process::Output> {
        let mut child = command.spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            std::io::Write::write_all(&mut stdin, &input)?;
        }
        child.wait_with_output()
    })
    .await??;
    ensure!(output.status.success(), "ecsrun-statuscheck {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    let verdicts: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout)?;
    Ok(verdicts
        .iter()
        .map(|v| {
            let field = |name: &str| v[name].as_str().unwrap_or_default().to_owned();
            (field("name"), field("status"), field("message"))
        })
        .collect())
}

/// Every version of the run the API server sends until it is final, keyed by phase (`-` before the
/// controller wrote any status): the first object seen in each.
async fn phases_of(env: &Env, name: &str) -> anyhow::Result<BTreeMap<String, serde_json::Value>> {
    let resource = ApiResource::erase::<EcsTaskRun>(&());
    let api = kube::Api::<DynamicObject>::namespaced_with(env.client.clone(), NAMESPACE, &resource);
    let mut events = std::pin::pin!(watcher::watch_object(api, name).boxed());
    let mut seen = BTreeMap::new();
    let collect = async {
        while let Some(event) = events.next().await {
            let Some(object) = event? else { continue };
            let object = serde_json::to_value(&object)?;
            let phase = object["status"]["phase"].as_str().unwrap_or("-").to_owned();
            let last = matches!(phase.as_str(), "Succeeded" | "Failed" | "Unknown");
            seen.entry(phase).or_insert(object);
            if last {
                return anyhow::Ok(());
            }
        }
        anyhow::bail!("the watch of {name} ended")
    };
    tokio::time::timeout(Duration::from_secs(90), collect)
        .await
        .with_context(|| format!("{name} did not finish in 90 s"))??;
    Ok(seen)
}

/// Creates the run while following it (the watch's first list shows it however early it is created).
async fn create_and_follow(env: &Env, name: &str, yaml: &str) -> anyhow::Result<BTreeMap<String, serde_json::Value>> {
    let (phases, _) =
        tokio::try_join!(phases_of(env, name), async { env.create(NAMESPACE, &env.manifest(yaml)?).await })?;
    Ok(phases)
}

async fn health_follows_the_phase(env: Arc<Env>) -> anyhow::Result<()> {
    // One run succeeds; the other fails its first attempt (exit 3), waits Pending for its retry, runs
    // again and fails for good.
    let succeeding = fargate_run("health-succeeds", "batch", "transform", "");
    let failing = fargate_run("health-fails", "batch", "failing", "  retryPolicy:\n    backoffLimit: 1\n");
    let (succeeded, failed) = tokio::try_join!(
        create_and_follow(&env, "health-succeeds", &succeeding),
        create_and_follow(&env, "health-fails", &failing),
    )?;
    // (phase, object, Argo CD's health, kstatus)
    let mut expected = vec![
        ("Running", &succeeded, "Progressing", "InProgress"),
        ("Succeeded", &succeeded, "Healthy", "Current"),
        ("Running", &failed, "Progressing", "InProgress"),
        ("Pending", &failed, "Progressing", "InProgress"),
        ("Failed", &failed, "Degraded", "Failed"),
    ];
    for (phase, phases, _, _) in &expected {
        ensure!(phases.contains_key(*phase), "never saw phase {phase}; saw {:?}", phases.keys().collect::<Vec<_>>());
    }
    // Before the controller's first status write, Argo CD waits; kstatus has nothing to read (see README).
    if succeeded.contains_key("-") {
        expected.push(("-", &succeeded, "Progressing", ""));
    }
    let objects: Vec<serde_json::Value> = expected.iter().map(|(phase, phases, _, _)| phases[*phase].clone()).collect();
    let argo = judge(&["argo", &repo_root().join(ARGOCD_HEALTH).to_string_lossy()], &objects).await?;
    let kstatus = judge(&["kstatus"], &objects).await?;
    for (((phase, _, health, computed), argo), kstatus) in expected.iter().zip(&argo).zip(&kstatus) {
        let (name, argo_status, argo_message) = argo;
        ensure!(
            argo_status == health,
            "{name} in phase {phase}: Argo CD says {argo_status} ({argo_message}), not {health}"
        );
        ensure!(!argo_message.is_empty(), "{name} in phase {phase}: Argo CD shows no message");
        let (_, kstatus_status, kstatus_message) = kstatus;
        if !computed.is_empty() {
            ensure!(
                kstatus_status == computed,
                "{name} in phase {phase}: kstatus says {kstatus_status} ({kstatus_message}), not {computed}"
            );
        }
    }
    // A failed run says why in Argo CD, as the run's own message does.
    let failed_message = failed["Failed"]["status"]["message"].as_str().unwrap_or_default();
    let (_, _, argo_message) = expected
        .iter()
        .zip(&argo)
        .find_map(|((phase, phases, _, _), verdict)| {
            (*phase == "Failed" && std::ptr::eq(*phases, &failed)).then_some(verdict)
        })
        .context("no verdict on the failed run")?;
    ensure!(argo_message == failed_message, "Argo CD's message {argo_message:?} is not the run's {failed_message:?}");
    let api = env.runs(NAMESPACE);
    for name in ["health-succeeds", "health-fails"] {
        api.delete(name, &Default::default()).await?;
    }
    Ok(())
}

/// The README's argocd-cm snippet is the shipped file, line for line.
async fn readme_shows_the_health_check(_env: Arc<Env>) -> anyhow::Result<()> {
    let script = std::fs::read_to_string(repo_root().join(ARGOCD_HEALTH))?;
    for (document, indent) in [("README.md", "  "), ("charts/ecsrun/README.md", "  ")] {
        let text = std::fs::read_to_string(repo_root().join(document))?;
        let indented: String = script.lines().map(|line| format!("{indent}{line}\n")).collect();
        ensure!(
            text.contains(&format!("resource.customizations.health.ecsrun.dev_EcsTaskRun: |\n{indented}")),
            "{document} does not show {ARGOCD_HEALTH} as the argocd-cm health customization, line for line"
        );
    }
    Ok(())
}
