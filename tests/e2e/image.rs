//! The image users get, run as the chart runs it: hack/image builds it FROM scratch around the release
//! binary (the Dockerfile's runtime stage, with podman), and podman runs the chart's Deployment container
//! with its securityContext (read-only root filesystem, non-root uid, no capabilities, no privilege
//! escalation), its args and environment, on the host network against the local control plane and moto,
//! until it is ready and a run reaches Succeeded.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use ecsrun_testbed::{Controller, controller_binary, ensure_namespace, repo_root, wait};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::chart::{helm, run};
use crate::{Case, Env, case, fargate_run};

const NAMESPACE: &str = "e2e-image";
/// A release of its own: its Lease is not the chart case's.
const RELEASE: &str = "ecsrun-image";
const RELEASE_NAMESPACE: &str = "ecsrun-image-system";

pub fn cases() -> Vec<Case> {
    vec![case("image::the_image_runs_as_the_chart_runs_it_and_serves_a_run_to_succeeded", image_serves_a_run)]
}

/// The chart's controller pod, rendered for a release watching NAMESPACE against the local ECS endpoint,
/// policies off (this case is about the image, not tenancy).
async fn chart_pod(env: &Env) -> anyhow::Result<PodSpec> {
    let moto = &env.moto.endpoint;
    let mut template = Command::new(helm()?);
    template.args(["template", RELEASE]).arg(repo_root().join("charts/ecsrun"));
    template.args(["--namespace", RELEASE_NAMESPACE, "--show-only", "templates/deployment.yaml"]);
    for value in [crate::chart::IMAGE, "policy.mode=off", "policy.admission.enabled=false"] {
        template.args(["--set", value]);
    }
    for value in [
        format!("watchNamespaces={{{NAMESPACE}}}"),
        format!("aws.region={}", env.moto.fixtures.region),
        format!("aws.ecsEndpointUrl={moto}"),
        format!("aws.stsEndpointUrl={moto}"),
        format!("aws.logsEndpointUrl={moto}"),
        "controller.defaultPollInterval=5s".to_owned(),
    ] {
        template.args(["--set", &value]);
    }
    let deployment: Deployment = serde_yaml_ng::from_str(&run(template).await?)?;
    deployment.spec.and_then(|spec| spec.template.spec).context("the chart's Deployment has no pod spec")
}

/// podman's flags for the container's securityContext, over the pod's as Kubernetes merges them; fails on
/// a setting it cannot stand in for.
fn security_flags(pod: &PodSpec, container: &Container) -> anyhow::Result<Vec<String>> {
    let context = container.security_context.clone().context("the chart's container has no securityContext")?;
    let pod_context = pod.security_context.clone().unwrap_or_default();
    let mut flags = Vec::new();
    ensure!(context.read_only_root_filesystem == Some(true), "the chart's root filesystem is not read-only");
    flags.push("--read-only".to_owned());
    ensure!(context.allow_privilege_escalation == Some(false), "the chart allows privilege escalation");
    flags.push("--security-opt=no-new-privileges".to_owned());
    let dropped = context.capabilities.as_ref().and_then(|caps| caps.drop.clone()).unwrap_or_default();
    ensure!(dropped == ["ALL"], "the chart drops {dropped:?}, not ALL capabilities");
    flags.push("--cap-drop=ALL".to_owned());
    let non_root = context.run_as_non_root.or(pod_context.run_as_non_root);
    let uid = context.run_as_user.or(pod_context.run_as_user);
    let gid = context.run_as_group.or(pod_context.run_as_group).or(uid);
    match (non_root, uid) {
        (Some(true), Some(uid)) if uid != 0 => flags.push(format!("--user={uid}:{}", gid.unwrap_or(uid))),
        // runAsNonRoot without a uid: the image's own USER, which must not be root.
        (Some(true), None) => {}
        other => bail!("the chart's container may run as root: {other:?}"),
    }
    Ok(flags)
}

/// podman with the configuration hack/podman-env writes (runc, cgroupfs).
pub(crate) fn podman_command() -> Command {
    let mut command = Command::new("podman");
    command.env("CONTAINERS_CONF", ecsrun_testbed::cache_dir().join("podman/containers.conf"));
    command
}

/// A controller pod as a release of the chart runs it.
pub(crate) struct Released<'a> {
    pub pod: &'a PodSpec,
    /// The release's name and namespace, for the fields the pod reads from its own metadata.
    pub release: &'a str,
    pub namespace: &'a str,
}

impl Released<'_> {
    /// `podman run` of the pod's controller container from `image` with its securityContext, args and
    /// environment, on the host network (the metrics address moved to loopback `port`), authenticating
    /// with `kubeconfig` (copied into `work`, readable by the container's non-root user). Removed when it
    /// exits.
    pub fn podman_run(
        &self,
        name: &str,
        image: &str,
        kubeconfig: &std::path::Path,
        work: &std::path::Path,
        port: u16,
    ) -> anyhow::Result<Command> {
        let container = self.pod.containers.first().context("the Deployment has no container")?;
        let mounted = work.join(format!("{name}.kubeconfig"));
        std::fs::copy(kubeconfig, &mounted)?;
        std::fs::set_permissions(&mounted, std::fs::Permissions::from_mode(0o644))?;
        let mut podman = podman_command();
        podman.args(["run", "--rm", "--name", name, "--network=host", "--pull=never"]);
        podman.args(security_flags(self.pod, container)?);
        podman.arg(format!("--volume={}:/etc/ecsrun/kubeconfig:ro", mounted.display()));
        podman.args([
            "--env=KUBECONFIG=/etc/ecsrun/kubeconfig",
            "--env=AWS_ACCESS_KEY_ID=test",
            "--env=AWS_SECRET_ACCESS_KEY=test",
        ]);
        for variable in container.env.clone().unwrap_or_default() {
            let field = variable.value_from.as_ref().and_then(|from| from.field_ref.as_ref());
            let value = match (&variable.value, field) {
                (Some(value), _) => value.clone(),
                (None, Some(field)) if field.field_path == "metadata.name" => format!("{}-0", self.release),
                (None, Some(field)) if field.field_path == "metadata.namespace" => self.namespace.to_owned(),
                _ => bail!("the Deployment sets {} from something this test cannot stand in for", variable.name),
            };
            podman.arg(format!("--env={}={value}", variable.name));
        }
        podman.arg(image);
        for arg in container.args.clone().unwrap_or_default() {
            podman.arg(if arg.starts_with("--metrics-addr=") {
                format!("--metrics-addr=127.0.0.1:{port}")
            } else {
                arg
            });
        }
        Ok(podman)
    }
}

/// Removes the container `name` if it is still there, whatever happened to the case.
pub(crate) fn remove_container(name: &str) {
    let _ = podman_command().args(["rm", "--force", "--ignore", name]).output();
}

async fn image_serves_a_run(env: Arc<Env>) -> anyhow::Result<()> {
    let work = env.work.join("image");
    std::fs::create_dir_all(&work)?;
    let mut build = Command::new(repo_root().join("hack/image"));
    build.args(["--binary"]).arg(controller_binary()?).args(["--tag", "e2e"]);
    let image = run(build).await.context("hack/image")?.trim().to_owned();
    ensure!(image == "localhost/ecsrun-controller:e2e", "hack/image built {image:?}");

    ensure_namespace(&env.client, NAMESPACE).await?;
    ensure_namespace(&env.client, RELEASE_NAMESPACE).await?;
    let pod = chart_pod(&env).await?;
    let port = ecsrun_testbed::free_port()?;
    let name = format!("ecsrun-testbed-{}", std::process::id());
    let released = Released { pod: &pod, release: RELEASE, namespace: RELEASE_NAMESPACE };
    let podman = released.podman_run(&name, &image, &env.kubeconfig, &work, port)?;
    let mut controller = Controller::spawn_command("image-controller", podman, &work, port)?;
    let outcome = async {
        controller.ready().await.context("the container as the chart runs it")?;
        env.create(NAMESPACE, &env.manifest(&fargate_run("from-the-image", "batch", "transform", ""))?).await?;
        let api = env.runs(NAMESPACE);
        let status =
            wait::until(&api, "from-the-image", Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded"))
                .await
                .with_context(|| format!("container log:\n{}", ecsrun_testbed::tail(&controller.process.log, 20)))?;
        ensure!(status.task.task_arn.is_some(), "Succeeded without a task");
        api.delete("from-the-image", &Default::default()).await?;
        wait::gone(&api, "from-the-image", Duration::from_secs(30)).await?;
        exits_on_sigterm(&mut controller).await
    }
    .await;
    // Whatever happened, no container outlives the case.
    remove_container(&name);
    outcome
}

/// SIGTERM, as the kubelet sends: the container exits cleanly within the chart's grace period.
pub(crate) async fn exits_on_sigterm(controller: &mut Controller) -> anyhow::Result<()> {
    controller.process.terminate()?;
    let exited = controller.process.exited(Duration::from_secs(30)).await?;
    ensure!(exited.success(), "the container exited with {exited} on SIGTERM");
    Ok(())
}
