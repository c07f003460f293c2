//! A new user's first hour, as a release reaches them: `hack/release` publishes the image and the chart
//! to a local OCI registry (distribution's, from its Go module) and writes dist/; the README's
//! `helm install oci://…` runs as written (the registry's host put in for `registry.example.com`, plus
//! `--plain-http`: the local registry has no TLS) on a cluster of its own; the installed Deployment's
//! container, pulled from the registry by the digest the chart pins, runs under podman with the chart's
//! securityContext and the ServiceAccount's token until it leads and is ready. Then krew (from its Go
//! module) installs the plugin from dist/'s manifest and archive, and kubectl finds it: `kubectl ecsrun
//! --version` and a `run --wait` to Succeeded against the shared controller.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use ecsrun_testbed::registry::Registry;
use ecsrun_testbed::{ControlPlane, Controller, controller_binary, repo_root, setup_binary};
use k8s_openapi::api::apps::v1::Deployment;

use crate::chart::{RELEASE, RELEASE_NAMESPACE, helm, readme_install_command, run, token_kubeconfig};
use crate::image::{Released, exits_on_sigterm, podman_command, remove_container};
use crate::{Case, Env, case};

const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn cases() -> Vec<Case> {
    vec![case("release::the_readme_installs_the_published_chart_image_and_plugin", release_installs)]
}

async fn release_installs(env: Arc<Env>) -> anyhow::Result<()> {
    let work = env.work.join("release");
    std::fs::create_dir_all(&work)?;
    let registry = Registry::start(&work).await?;
    let dist = work.join("dist");
    let mut release = Command::new(repo_root().join("hack/release"));
    release.arg("--dist").arg(&dist).args(["--registry", &registry.host]);
    // The binaries hack/test built, the ones the rest of the e2e tier runs: a cargo build under `cargo
    // test` sees the test's environment and rebuilds them. The published build differs only in its
    // profile (link-time optimized), which hack/check-dockerfile checks hack/release and the Dockerfile
    // build alike.
    let binaries = controller_binary()?.parent().context("the target directory")?.to_owned();
    release.arg("--binaries").arg(binaries);
    run(release).await.context("hack/release")?;
    check_dist(&dist).await?;
    ensure!(
        registry.tags("ecsrun/ecsrun-controller").await?.iter().any(|tag| tag == VERSION),
        "the registry has no ecsrun-controller:{VERSION}"
    );
    ensure!(
        registry.tags("ecsrun/charts/ecsrun").await?.iter().any(|tag| tag == VERSION),
        "the registry has no chart ecsrun:{VERSION}"
    );
    let image = std::fs::read_to_string(dist.join("image"))?.trim().to_owned();
    ensure!(image.starts_with(&format!("{}/ecsrun/ecsrun-controller@sha256:", registry.host)), "dist/image: {image}");

    helm_install_from_the_registry(&work, &registry, &image).await?;
    krew_installs_the_plugin(&env, &work, &dist).await
}

/// Everything dist/ promises, its sums right, and the krew manifest's sum the plugin archive's.
async fn check_dist(dist: &Path) -> anyhow::Result<()> {
    for file in [
        format!("ecsrun-controller_{VERSION}_linux-amd64.tar.gz"),
        format!("kubectl-ecsrun_{VERSION}_linux-amd64.tar.gz"),
        format!("ecsrun-{VERSION}.tgz"),
        "ecsrun-crds.yaml".to_owned(),
        "ecsrun-controller.image.tar".to_owned(),
        "ecsrun-controller.cdx.json".to_owned(),
        "kubectl-ecsrun.cdx.json".to_owned(),
        "ecsrun.krew.yaml".to_owned(),
    ] {
        let sums = std::fs::read_to_string(dist.join("SHA256SUMS"))?;
        ensure!(sums.lines().any(|line| line.ends_with(&format!("  {file}"))), "SHA256SUMS has no {file}");
    }
    let mut check = Command::new("sha256sum");
    check.args(["--check", "--strict", "SHA256SUMS"]).current_dir(dist);
    run(check).await.context("dist/SHA256SUMS")?;

    let crds = std::fs::read_to_string(dist.join("ecsrun-crds.yaml"))?;
    for crd in std::fs::read_dir(repo_root().join("crds"))? {
        let name = crd?.file_name().to_string_lossy().trim_end_matches(".yaml").to_owned();
        ensure!(crds.contains(&format!("name: {name}\n")), "the CRD bundle lacks {name}");
    }
    for sbom in ["ecsrun-controller.cdx.json", "kubectl-ecsrun.cdx.json"] {
        let bom: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dist.join(sbom))?)?;
        ensure!(bom["bomFormat"] == "CycloneDX", "{sbom} is not a CycloneDX BOM");
        let components = bom["components"].as_array().map_or(0, Vec::len);
        let names: Vec<&str> =
            bom["components"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
        ensure!(
            names.contains(&"kube") && names.contains(&"tokio"),
            "{sbom} lists {components} components without kube or tokio"
        );
    }
    let manifest: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dist.join("ecsrun.krew.yaml"))?)?;
    let platform = &manifest["spec"]["platforms"][0];
    let archive = dist.join(format!("kubectl-ecsrun_{VERSION}_linux-amd64.tar.gz"));
    let mut sum = Command::new("sha256sum");
    sum.arg(&archive);
    let sum = run(sum).await?;
    ensure!(
        platform["sha256"].as_str() == sum.split_whitespace().next(),
        "the krew manifest's sha256 {} is not the archive's ({sum})",
        platform["sha256"]
    );
    Ok(())
}

/// The README's install, from the registry, on a cluster of its own (the chart's admission policy is
/// cluster-wide), and the Deployment's container as installed.
async fn helm_install_from_the_registry(work: &Path, registry: &Registry, image: &str) -> anyhow::Result<()> {
    let install = readme_install_command()?;
    ensure!(install.contains("oci://registry.example.com/"), "the README installs from somewhere else: {install}");
    let install = format!("{} --plain-http", install.replace("registry.example.com", &registry.host));
    let control_plane = tokio::task::spawn_blocking({
        let work = work.to_owned();
        move || ControlPlane::start_new(&work)
    })
    .await??;
    let helm = helm()?;
    let path = format!(
        "{}:{}",
        helm.parent().context("helm's directory")?.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut shell = Command::new("bash");
    shell.args(["-euo", "pipefail", "-c", &install]).current_dir(work);
    shell.env("PATH", path).env("KUBECONFIG", &control_plane.kubeconfig);
    for (variable, dir) in [("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"), ("HELM_DATA_HOME", "data")] {
        shell.env(variable, work.join("helm").join(dir));
    }
    let output = run(shell).await.with_context(|| format!("the README's install command: {install}"))?;
    ensure!(output.contains("STATUS: deployed"), "helm install did not deploy:\n{output}");

    let client = control_plane.client().await?;
    let deployments: kube::Api<Deployment> = kube::Api::namespaced(client.clone(), RELEASE_NAMESPACE);
    let deployment = deployments.get(RELEASE).await.context("the Deployment the README's install creates")?;
    let pod = deployment.spec.and_then(|spec| spec.template.spec).context("the Deployment has no pod spec")?;
    let installed = pod.containers.first().and_then(|c| c.image.clone()).context("no image")?;
    ensure!(installed == image, "the published chart installs {installed}, not the published image {image}");

    let mut pull = podman_command();
    pull.args(["pull", "--quiet", "--tls-verify=false", image]);
    run(pull).await.context("pulling the published image")?;
    let kubeconfig =
        token_kubeconfig(&control_plane.kubeconfig, RELEASE, RELEASE_NAMESPACE, work.join("sa.kubeconfig")).await?;
    let port = ecsrun_testbed::free_port()?;
    let name = format!("ecsrun-release-{}", std::process::id());
    let released = Released { pod: &pod, release: RELEASE, namespace: RELEASE_NAMESPACE };
    let podman = released.podman_run(&name, image, &kubeconfig, work, port)?;
    let mut controller = Controller::spawn_command("released-controller", podman, work, port)?;
    let outcome = async {
        controller.ready().await.context("the published image as the published chart runs it")?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&controller.process.log)?.contains("caches synced: ready") {
            controller.process.ensure_alive()?;
            ensure!(
                std::time::Instant::now() < deadline,
                "the only replica did not lead and sync its caches in 30 s:\n{}",
                ecsrun_testbed::tail(&controller.process.log, 20)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (status, _) = ecsrun_testbed::http_get(&controller.metrics_url.replace("/metrics", "/readyz")).await?;
        ensure!(status == 200, "/readyz answers {status} after the caches synced");
        exits_on_sigterm(&mut controller).await
    }
    .await;
    remove_container(&name);
    drop(control_plane);
    outcome
}

/// krew installs the plugin from the release's manifest and archive; kubectl finds it on PATH.
async fn krew_installs_the_plugin(env: &Env, work: &Path, dist: &Path) -> anyhow::Result<()> {
    let krew_root = work.join("krew");
    let archive = dist.join(format!("kubectl-ecsrun_{VERSION}_linux-amd64.tar.gz"));
    let mut install = Command::new(setup_binary("krew")?);
    // No upgrade check: it would ask GitHub.
    install.env("KREW_ROOT", &krew_root).env("HOME", work).env("KREW_NO_UPGRADE_CHECK", "1");
    install.arg("install").arg(format!("--manifest={}", dist.join("ecsrun.krew.yaml").display()));
    install.arg(format!("--archive={}", archive.display()));
    run(install).await.context("krew install")?;
    let path = format!("{}:{}", krew_root.join("bin").display(), std::env::var("PATH").unwrap_or_default());

    let kubectl = |args: &[&str]| {
        let mut command = Command::new("kubectl");
        command
            .env("PATH", &path)
            .env("KUBECONFIG", &env.kubeconfig)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_ENDPOINT_URL", &env.moto.endpoint)
            .env_remove("AWS_PROFILE")
            .args(args);
        command
    };
    let version = run(kubectl(&["ecsrun", "--version"])).await.context("kubectl ecsrun --version")?;
    ensure!(version.contains(VERSION), "kubectl ecsrun --version printed {version:?}");

    let fixtures = &env.moto.fixtures;
    let namespace = crate::operating::NAMESPACE;
    let mut args = vec!["ecsrun", "run", "from-krew", "-n", namespace, "--ecs-cluster", "batch"];
    args.extend(["--task-definition", "db-dump", "--wait", "--launch-type", "FARGATE"]);
    args.extend(["--subnet", &fixtures.subnet, "--security-group", &fixtures.security_group]);
    let mut command = kubectl(&args);
    let output = tokio::time::timeout(Duration::from_secs(90), tokio::task::spawn_blocking(move || command.output()))
        .await
        .context("kubectl ecsrun run --wait did not return in 90 s")???;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.success(), "kubectl ecsrun run --wait: {}: {stderr}", output.status);
    ensure!(stderr.contains("from-krew Succeeded"), "run --wait said: {stderr}");
    Ok(())
}
