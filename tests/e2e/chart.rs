//! The Helm chart against the real API server: lint, template, server-side dry-run, and the controller
//! running as the chart's ServiceAccount (its own token) through a run, in single-namespace mode, with
//! `kubectl auth can-i` proving what it cannot do.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use ecsrun_testbed::{ControlPlane, Controller, repo_root, wait};
use kube::api::DeleteParams;
use kube::config::Kubeconfig;
use serde::Deserialize as _;

use crate::{Case, Env, case, fargate_run};

/// Where the chart is installed.
pub const RELEASE_NAMESPACE: &str = "ecsrun-system";
/// The one namespace the installed chart may reconcile (single-namespace mode).
pub const NAMESPACE: &str = "e2e-rbac";
pub(crate) const RELEASE: &str = "ecsrun";
const SERVICE_ACCOUNT: &str = "system:serviceaccount:ecsrun-system:ecsrun";
/// The one value an install needs: where the image is (none is published).
pub(crate) const IMAGE: &str = "image.repository=registry.example.com/ecsrun-controller";

pub fn cases() -> Vec<Case> {
    vec![
        case("chart::helm_lint_is_clean", helm_lint),
        case("chart::rendered_manifests_pass_server_side_dry_run", dry_run),
        case("chart::controller_runs_as_the_charts_service_account_with_least_privilege", least_privilege),
        case("chart::namespace_editors_manage_runs_and_viewers_read_them", aggregated_roles),
        case("chart::helm_upgrade_upgrades_the_crds_and_uninstall_keeps_them", crd_upgrade),
    ]
}

pub(crate) fn helm() -> anyhow::Result<PathBuf> {
    ecsrun_testbed::helm_binary()
}

/// Runs a command to completion off the async threads; fails with its output unless it succeeds.
pub(crate) async fn run(mut command: Command) -> anyhow::Result<String> {
    let shown = format!("{command:?}");
    let output = tokio::task::spawn_blocking(move || command.output()).await?.with_context(|| shown.clone())?;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    ensure!(output.status.success(), "{shown} failed ({}):\n{text}", output.status);
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub(crate) fn kubectl(env: &Env) -> Command {
    let mut command = Command::new("kubectl");
    command.env("KUBECONFIG", &env.kubeconfig);
    command
}

/// `helm template` with the image set and `values`.
fn template(values: &[&str]) -> anyhow::Result<Command> {
    template_without_image(&[&[IMAGE], values].concat())
}

fn template_without_image(values: &[&str]) -> anyhow::Result<Command> {
    let mut command = Command::new(helm()?);
    command.args(["template", RELEASE]).arg(repo_root().join("charts/ecsrun"));
    command.args(["--namespace", RELEASE_NAMESPACE]);
    for value in values {
        command.args(["--set", value]);
    }
    Ok(command)
}

async fn helm_lint(_env: Arc<Env>) -> anyhow::Result<()> {
    let chart = repo_root().join("charts/ecsrun");
    for values in [&[IMAGE][..], &[IMAGE, "watchNamespaces={team-a,team-b}", "credentials.secretRef.enabled=true"][..]]
    {
        let mut command = Command::new(helm()?);
        command.args(["lint", "--strict"]).arg(&chart);
        for value in values {
            command.args(["--set", value]);
        }
        let output = run(command).await?;
        ensure!(output.contains("0 chart(s) failed"), "helm lint: {output}");
    }
    // The schema rejects what the templates cannot work with.
    let mut typo = Command::new(helm()?);
    typo.args(["lint", "--strict"]).arg(&chart).args(["--set", IMAGE, "--set", "replicas=2"]);
    ensure!(run(typo).await.is_err(), "values.schema.json accepted an unknown value (replicas)");
    let mut unsafe_replicas = Command::new(helm()?);
    unsafe_replicas.args(["lint"]).arg(&chart).args([
        "--set",
        IMAGE,
        "--set",
        "replicaCount=2",
        "--set",
        "leaderElection.enabled=false",
    ]);
    ensure!(run(unsafe_replicas).await.is_err(), "two replicas without leader election were accepted");
    // Values that would install something useless fail at install time, saying why.
    for (values, says) in [
        (&["podDisruptionBudget.enabled=true"][..], "podDisruptionBudget.enabled needs replicaCount > 1"),
        (
            &["metrics.serviceMonitor.enabled=true", "metrics.service.enabled=false"][..],
            "metrics.serviceMonitor.enabled needs metrics.service.enabled",
        ),
        (&["image.digest=latest"][..], "image.digest"),
    ] {
        match run(template(values)?).await {
            Ok(_) => bail!("values {values:?} were accepted"),
            Err(error) => ensure!(format!("{error:#}").contains(says), "values {values:?}: {error:#}"),
        }
    }
    // No image is published: without one, the install fails saying how to get one.
    match run(template_without_image(&[])?).await {
        Ok(_) => bail!("the chart installed without image.repository, which points nowhere"),
        Err(error) => {
            let error = format!("{error:#}");
            for says in
                ["image.repository is required", "Dockerfile", "kind load docker-image", "--set image.repository="]
            {
                ensure!(error.contains(says), "the missing image's message does not say {says:?}: {error}");
            }
        }
    }
    // A digest pins the image; the tag is then ignored.
    let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
    let rendered = run(template(&[&format!("image.digest={digest}"), "image.tag=ignored"])?).await?;
    let pinned = format!("image: \"registry.example.com/ecsrun-controller@{digest}\"");
    ensure!(rendered.contains(&pinned), "no {pinned} in the Deployment");
    Ok(())
}

async fn dry_run(env: Arc<Env>) -> anyhow::Result<()> {
    for values in [
        &[][..],
        &["watchNamespaces={e2e-rbac}", "credentials.secretRef.enabled=true", "replicaCount=2"][..],
        &["podDisruptionBudget.enabled=true", "replicaCount=2", "networkPolicy.enabled=true", "rbac.create=true"][..],
        &[
            "taskEvents.queueUrls={https://sqs.eu-west-1.amazonaws.com/123456789012/ecsrun-task-events}",
            "taskEvents.sweepInterval=2m",
            "taskEvents.receivers=8",
            "aws.sqsEndpointUrl=https://sqs.eu-west-1.amazonaws.com",
        ][..],
    ] {
        let rendered = run(template(values)?).await?;
        let manifests = env.work.join(format!("chart-{}.yaml", values.len()));
        std::fs::write(&manifests, &rendered)?;
        let mut apply = kubectl(&env);
        apply
            .args(["apply", "--dry-run=server", "--server-side", "--field-manager=ecsrun-testbed", "-f"])
            .arg(&manifests);
        run(apply).await.with_context(|| format!("values {values:?}"))?;
        controller_accepts_the_rendered_args(&rendered).with_context(|| format!("values {values:?}"))?;
    }
    Ok(())
}

/// The Deployment's container args, parsed by the controller's own flag definitions: a flag the chart
/// passes and the binary no longer knows (or a value it rejects) fails here, not in a user's cluster.
fn controller_accepts_the_rendered_args(rendered: &str) -> anyhow::Result<()> {
    use clap::Parser as _;
    let deployment = serde_yaml_ng::Deserializer::from_str(rendered)
        .filter_map(|document| serde_yaml_ng::Value::deserialize(document).ok())
        .find(|document| document["kind"] == "Deployment")
        .context("the chart renders no Deployment")?;
    let args: Vec<String> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .context("the controller container has no args")?
        .iter()
        .map(|arg| arg.as_str().map(str::to_owned).context("an arg that is not a string"))
        .collect::<anyhow::Result<_>>()?;
    ecsrun::config::Config::try_parse_from(std::iter::once("ecsrun-controller".to_string()).chain(args.clone()))
        .map_err(|error| anyhow::anyhow!("the controller rejects the chart's args {args:?}: {error}"))?;
    Ok(())
}

/// A kubeconfig that authenticates with the chart's ServiceAccount's token instead of the admin certificate.
async fn service_account_kubeconfig(env: &Env) -> anyhow::Result<PathBuf> {
    token_kubeconfig(&env.kubeconfig, RELEASE, NAMESPACE, env.work.join("service-account.kubeconfig")).await
}

/// A kubeconfig at `path` for the cluster of `admin`, authenticating as ServiceAccount `account` of the
/// release namespace with a token of its own, with `namespace` as the default namespace.
pub(crate) async fn token_kubeconfig(
    admin: &Path,
    account: &str,
    namespace: &str,
    path: PathBuf,
) -> anyhow::Result<PathBuf> {
    let mut create_token = Command::new("kubectl");
    create_token.env("KUBECONFIG", admin);
    create_token.args(["create", "token", account, "-n", RELEASE_NAMESPACE, "--duration=1h"]);
    let token = run(create_token).await?.trim().to_owned();
    let admin = Kubeconfig::read_from(admin)?;
    let cluster = admin.clusters.first().and_then(|c| c.cluster.clone()).context("no cluster in kubeconfig")?;
    let server = cluster.server.context("no server")?;
    let ca = cluster.certificate_authority_data.context("no CA data")?;
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: \
             sa\n  context: {{cluster: local, user: sa, namespace: {namespace}}}\ncurrent-context: sa\n"
        ),
    )?;
    Ok(path)
}

async fn can_i(env: &Env, args: &[&str]) -> anyhow::Result<bool> {
    can_i_as(env, SERVICE_ACCOUNT, args).await
}

async fn can_i_as(env: &Env, who: &str, args: &[&str]) -> anyhow::Result<bool> {
    let mut command = kubectl(env);
    command.args(["auth", "can-i"]).args(args).args(["--as", who]);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    match String::from_utf8_lossy(&output.stdout).trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => bail!("kubectl auth can-i {args:?}: {other} {}", String::from_utf8_lossy(&output.stderr)),
    }
}

async fn least_privilege(env: Arc<Env>) -> anyhow::Result<()> {
    // Install the chart's RBAC and ServiceAccount for real (the Deployment would need an image).
    // The admission policy would judge every namespace's runs: policy::* installs its own, scoped.
    let rendered = run(template(&[
        "watchNamespaces={e2e-rbac}",
        "credentials.secretRef.enabled=true",
        "policy.admission.enabled=false",
        "tekton.enabled=true",
    ])?)
    .await?;
    let manifests = env.work.join("chart-installed.yaml");
    std::fs::write(&manifests, rendered)?;
    let mut apply = kubectl(&env);
    apply.args([
        "apply",
        "--server-side",
        "--field-manager=ecsrun-testbed",
        "-l",
        "app.kubernetes.io/name=ecsrun",
        "-f",
    ]);
    apply.arg(&manifests);
    run(apply).await?;

    // What it must be able to do, and what it must not.
    let allowed: &[&[&str]] = &[
        &["watch", "ecstaskruns.ecsrun.dev", "-n", NAMESPACE],
        // ttlSecondsAfterFinished.
        &["delete", "ecstaskruns.ecsrun.dev", "-n", NAMESPACE],
        &["patch", "ecstaskruns.ecsrun.dev", "--subresource=status", "-n", NAMESPACE],
        // Schedules: their runs created, their status written.
        &["create", "ecstaskruns.ecsrun.dev", "-n", NAMESPACE],
        &["watch", "ecstaskschedules.ecsrun.dev", "-n", NAMESPACE],
        &["patch", "ecstaskschedules.ecsrun.dev", "--subresource=status", "-n", NAMESPACE],
        &["create", "events.events.k8s.io", "-n", NAMESPACE],
        &["get", "secrets", "-n", NAMESPACE],
        &["patch", "leases.coordination.k8s.io/ecsrun", "-n", RELEASE_NAMESPACE],
        &["watch", "ecsrunpolicies.ecsrun.dev"],
        &["patch", "ecsrunpolicies.ecsrun.dev", "--subresource=status"],
        &["watch", "namespaces"],
        &["get", "namespaces/kube-system"],
        // Tekton's CustomRuns (tekton.enabled): watched, their status written.
        &["watch", "customruns.tekton.dev", "-n", NAMESPACE],
        &["patch", "customruns.tekton.dev", "--subresource=status", "-n", NAMESPACE],
    ];
    let denied: &[&[&str]] = &[
        &["list", "secrets", "--all-namespaces"],
        &["list", "secrets", "-n", NAMESPACE],
        &["get", "secrets", "-n", RELEASE_NAMESPACE],
        &["create", "pods", "-n", NAMESPACE],
        &["list", "ecstaskruns.ecsrun.dev", "--all-namespaces"],
        &["get", "ecstaskruns.ecsrun.dev", "-n", "default"],
        &["update", "ecstaskruns.ecsrun.dev", "-n", NAMESPACE],
        &["patch", "ecstaskschedules.ecsrun.dev", "-n", NAMESPACE],
        &["delete", "ecstaskschedules.ecsrun.dev", "-n", NAMESPACE],
        &["patch", "leases.coordination.k8s.io/someone-elses", "-n", RELEASE_NAMESPACE],
        &["create", "customresourcedefinitions.apiextensions.k8s.io"],
        &["patch", "ecsrunpolicies.ecsrun.dev"],
        &["create", "ecsrunpolicies.ecsrun.dev"],
        &["get", "namespaces/default"],
        &["patch", "namespaces/e2e-rbac"],
        &["delete", "validatingadmissionpolicybindings.admissionregistration.k8s.io"],
        &["patch", "customruns.tekton.dev", "-n", NAMESPACE],
        &["create", "customruns.tekton.dev", "-n", NAMESPACE],
        &["watch", "customruns.tekton.dev", "-n", "default"],
    ];
    for args in allowed {
        ensure!(can_i(&env, args).await?, "the ServiceAccount cannot {args:?}, which the controller needs");
    }
    for args in denied {
        ensure!(!can_i(&env, args).await?, "the ServiceAccount can {args:?}: more than the controller needs");
    }
    everything_it_may_do_is_needed(&env).await?;

    // The real controller with the ServiceAccount's token: a run with secretRef credentials succeeds,
    // and deletion goes through the finalizer.
    let kubeconfig = service_account_kubeconfig(&env).await?;
    // As the chart runs it: policies enforced, so the run's namespace needs one.
    let policy = serde_json::json!({
        "apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsRunPolicy", "metadata": {"name": "e2e-rbac"},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}},
            "regions": ["eu-west-1"], "clusters": ["batch"], "taskDefinitionFamilies": ["transform"],
            "credentials": {"secretRef": true}
        }
    });
    kube::Api::<ecsrun::api::EcsRunPolicy>::all(env.client.clone())
        .patch("e2e-rbac", &kube::api::PatchParams::apply("ecsrun-testbed").force(), &kube::api::Patch::Apply(&policy))
        .await?;
    let mut controller = Controller::start(
        "controller-service-account",
        &env.work,
        &kubeconfig,
        &env.moto,
        &[NAMESPACE],
        &[
            "--leader-elect",
            "--leader-elect-namespace",
            RELEASE_NAMESPACE,
            "--leader-elect-lease",
            RELEASE,
            "--policy-mode=enforce",
        ],
    )?;
    controller.ready().await?;
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "aws-batch"},
        "stringData": {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    });
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(env.client.clone(), NAMESPACE);
    secrets.create(&Default::default(), &serde_json::from_value(secret)?).await?;
    let yaml = fargate_run(
        "as-service-account",
        "batch",
        "transform",
        "  credentials:\n    secretRef:\n      name: aws-batch\n",
    );
    env.create(NAMESPACE, &env.manifest(&yaml)?).await?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "as-service-account", Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded"))
            .await
            .with_context(|| format!("controller log:\n{}", ecsrun_testbed::tail(&controller.process.log, 20)))?;
    ensure!(status.task.task_arn.is_some(), "no taskArn");
    api.delete("as-service-account", &DeleteParams::default()).await?;
    wait::gone(&api, "as-service-account", Duration::from_secs(30)).await?;
    let log = std::fs::read_to_string(&controller.process.log)?;
    ensure!(
        !log.contains("forbidden"),
        "the controller hit RBAC denials:\n{}",
        ecsrun_testbed::tail(&controller.process.log, 20)
    );
    Ok(())
}

/// `kubectl auth can-i --list` as the ServiceAccount, in the namespace it serves and cluster-wide: every
/// rule it holds must be one the controller's code needs (besides what every authenticated user may do).
async fn everything_it_may_do_is_needed(env: &Env) -> anyhow::Result<()> {
    // (resource, resource names, verbs), as kubectl prints them.
    let needed: &[(&str, &str, &str)] = &[
        ("ecstaskruns.ecsrun.dev", "[]", "[get list watch create patch delete]"),
        ("ecstaskruns.ecsrun.dev/status", "[]", "[patch]"),
        ("ecstaskruns.ecsrun.dev/finalizers", "[]", "[update]"),
        ("ecstaskschedules.ecsrun.dev", "[]", "[get list watch]"),
        ("ecstaskschedules.ecsrun.dev/status", "[]", "[patch]"),
        ("ecstaskschedules.ecsrun.dev/finalizers", "[]", "[update]"),
        ("events.events.k8s.io", "[]", "[create patch]"),
        ("secrets", "[]", "[get]"),
        ("ecsrunpolicies.ecsrun.dev", "[]", "[list watch]"),
        ("ecsrunpolicies.ecsrun.dev/status", "[]", "[patch]"),
        ("namespaces", "[]", "[list watch]"),
        ("namespaces", "[kube-system]", "[get]"),
        ("customruns.tekton.dev", "[]", "[list watch]"),
        ("customruns.tekton.dev/status", "[]", "[patch]"),
        // What Kubernetes grants every authenticated user (system:basic-user, system:discovery, ...).
        ("selfsubjectreviews.authentication.k8s.io", "[]", "[create]"),
        ("selfsubjectaccessreviews.authorization.k8s.io", "[]", "[create]"),
        ("selfsubjectrulesreviews.authorization.k8s.io", "[]", "[create]"),
        ("clustertrustbundles.certificates.k8s.io", "[]", "[get list watch]"),
    ];
    for namespace in [NAMESPACE, "default"] {
        let mut list = kubectl(env);
        list.args(["auth", "can-i", "--list", "-n", namespace, "--as", SERVICE_ACCOUNT]);
        let table = run(list).await?;
        let mut rows = 0;
        for line in table.lines().skip(1) {
            let columns: Vec<&str> = line.split_whitespace().collect();
            // Non-resource URLs (/api, /healthz, ...) come with an empty first column.
            if line.starts_with(' ') || columns.first().is_some_and(|first| first.starts_with('[')) {
                continue;
            }
            let resource = columns.first().copied().unwrap_or_default();
            let rest = line[resource.len()..].trim();
            // Resource names and verbs are the last two bracketed groups.
            let groups: Vec<&str> = rest.split(']').filter(|g| !g.trim().is_empty()).map(|g| g.trim()).collect();
            let (names, verbs) = match groups.as_slice() {
                [.., names, verbs] => (format!("{names}]"), format!("{verbs}]")),
                _ => bail!("unexpected `can-i --list` row: {line}"),
            };
            let names = names.trim_start_matches("[]").trim().to_owned();
            let names = if names.is_empty() { "[]".to_owned() } else { names };
            rows += 1;
            ensure!(
                needed.iter().any(|(r, n, v)| *r == resource && *n == names && *v == verbs),
                "the ServiceAccount may {verbs} {resource} {names} in {namespace}: more than the controller needs\n{table}"
            );
        }
        ensure!(rows >= 5, "`can-i --list` in {namespace} listed only {rows} rules:\n{table}");
    }
    Ok(())
}

/// The chart's aggregated ClusterRoles: a user bound to Kubernetes' `edit` role in a namespace manages runs
/// there (not their status), one bound to `view` reads them; neither reaches another namespace.
/// kube-controller-manager's clusterrole-aggregation controller folds the chart's rules into the defaults.
async fn aggregated_roles(env: Arc<Env>) -> anyhow::Result<()> {
    const TENANT: &str = "e2e-tenant";
    let rendered = run(template(&[])?).await?;
    let manifests = env.work.join("chart-aggregated-roles.yaml");
    std::fs::write(&manifests, rendered)?;
    for selector in
        ["rbac.authorization.k8s.io/aggregate-to-edit=true", "rbac.authorization.k8s.io/aggregate-to-view=true"]
    {
        let mut apply = kubectl(&env);
        apply.args(["apply", "--server-side", "--field-manager=ecsrun-testbed", "-l", selector, "-f"]).arg(&manifests);
        run(apply).await?;
    }
    ecsrun_testbed::ensure_namespace(&env.client, TENANT).await?;
    for (user, role) in [("alice", "edit"), ("bob", "view")] {
        let binding = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": format!("{user}-{role}"), "namespace": TENANT},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        });
        let bindings: kube::Api<k8s_openapi::api::rbac::v1::RoleBinding> =
            kube::Api::namespaced(env.client.clone(), TENANT);
        bindings
            .patch(
                &format!("{user}-{role}"),
                &kube::api::PatchParams::apply("ecsrun-testbed"),
                &kube::api::Patch::Apply(&binding),
            )
            .await?;
    }
    // The aggregation controller fills `edit` a moment after the chart's role appears.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !can_i_as(&env, "alice", &["create", "ecstaskruns.ecsrun.dev", "-n", TENANT]).await? {
        ensure!(std::time::Instant::now() < deadline, "the edit role never got the chart's EcsTaskRun rules");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cases: &[(&str, &[&str], bool)] = &[
        ("alice", &["create", "ecstaskruns.ecsrun.dev", "-n", TENANT], true),
        ("alice", &["delete", "ecstaskruns.ecsrun.dev", "-n", TENANT], true),
        ("alice", &["patch", "ecstaskruns.ecsrun.dev", "-n", TENANT], true),
        ("alice", &["patch", "ecstaskruns.ecsrun.dev", "--subresource=status", "-n", TENANT], false),
        ("alice", &["create", "ecstaskruns.ecsrun.dev", "-n", "default"], false),
        ("alice", &["create", "customresourcedefinitions.apiextensions.k8s.io"], false),
        // Only cluster administrators say what a namespace may run.
        ("alice", &["create", "ecsrunpolicies.ecsrun.dev"], false),
        ("alice", &["patch", "ecsrunpolicies.ecsrun.dev"], false),
        ("bob", &["list", "ecstaskruns.ecsrun.dev", "-n", TENANT], true),
        ("bob", &["watch", "ecstaskruns.ecsrun.dev", "-n", TENANT], true),
        ("bob", &["create", "ecstaskruns.ecsrun.dev", "-n", TENANT], false),
        ("bob", &["delete", "ecstaskruns.ecsrun.dev", "-n", TENANT], false),
        ("bob", &["get", "ecstaskruns.ecsrun.dev", "-n", "default"], false),
    ];
    for (user, args, expected) in cases {
        let allowed = can_i_as(&env, user, args).await?;
        ensure!(allowed == *expected, "{user} {} {args:?}", if allowed { "may" } else { "may not" });
    }
    Ok(())
}

/// The README's `helm install` command, continuation lines joined: the first one in "## Install".
pub(crate) fn readme_install_command() -> anyhow::Result<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md"))?;
    let section = readme.split("\n## Install\n").nth(1).context("README.md has no \"## Install\" section")?;
    let section = section.split("\n## ").next().unwrap_or(section);
    let block = section.split("```sh\n").nth(1).and_then(|rest| rest.split("```").next());
    let block = block.context("the Install section has no sh code block")?;
    let joined = block.replace("\\\n", " ");
    joined
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("helm install "))
        .map(str::to_owned)
        .context("the Install section's code block has no `helm install`")
}

/// The chart's YAML with one property's block (its key line and everything indented under it) left out.
fn without_property(yaml: &str, key: &str) -> anyhow::Result<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let start = lines.iter().position(|line| line.trim() == format!("{key}:")).with_context(|| format!("no {key}"))?;
    let indent = |line: &str| line.len() - line.trim_start().len();
    let depth = indent(lines[start]);
    let end = lines[start + 1..].iter().position(|line| indent(line) <= depth).map_or(lines.len(), |n| start + 1 + n);
    Ok(lines[..start].iter().chain(&lines[end..]).map(|line| format!("{line}\n")).collect())
}

/// `helm upgrade` upgrades the CRDs (Helm never upgrades a chart's crds/ directory, so they are
/// templates): a release whose EcsTaskRun CRD lacks `ttlSecondsAfterFinished` refuses the field under
/// strict validation; upgraded to this chart, the same run is accepted and keeps it. Uninstalling leaves
/// the CRDs, and so every run, in place. On a cluster of its own: CRDs are cluster-wide.
async fn crd_upgrade(env: Arc<Env>) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::ResourceExt;
    use kube::api::{Patch, PatchParams};
    const FIELD: &str = "ttlSecondsAfterFinished";
    let work = env.work.join("crd-upgrade");
    let old_chart = work.join("ecsrun-old");
    copy_dir(&repo_root().join("charts/ecsrun"), &old_chart)?;
    let crd_file = old_chart.join("templates/crds/ecstaskruns.ecsrun.dev.yaml");
    std::fs::write(&crd_file, without_property(&std::fs::read_to_string(&crd_file)?, FIELD)?)?;
    let control_plane = tokio::task::spawn_blocking({
        let work = work.clone();
        move || ControlPlane::start_new(&work)
    })
    .await??;
    // Helm's own state stays in the work directory, not the user's home.
    let helm_on = |args: &[&str]| -> anyhow::Result<Command> {
        let mut command = Command::new(helm()?);
        command.args(args).args(["--namespace", RELEASE_NAMESPACE]);
        command.env("KUBECONFIG", &control_plane.kubeconfig);
        for (variable, dir) in
            [("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"), ("HELM_DATA_HOME", "data")]
        {
            command.env(variable, work.join("helm").join(dir));
        }
        Ok(command)
    };
    let helm_in = |verb: &str, chart: &Path| -> anyhow::Result<Command> {
        let mut command = helm_on(&[verb, RELEASE])?;
        command.arg(chart).args(["--create-namespace", "--set", IMAGE, "--set", "policy.admission.enabled=false"]);
        Ok(command)
    };
    run(helm_in("install", &old_chart)?).await.context("installing the release without the field")?;

    let client = control_plane.client().await?;
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    let established = |crds: kube::Api<CustomResourceDefinition>| async move {
        let wait = kube::runtime::wait::await_condition(
            crds,
            "ecstaskruns.ecsrun.dev",
            kube::runtime::wait::conditions::is_crd_established(),
        );
        tokio::time::timeout(Duration::from_secs(30), wait).await.context("the CRD was not Established in 30 s")??;
        anyhow::Ok(())
    };
    established(crds.clone()).await?;
    let has_field = |crd: &CustomResourceDefinition| {
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|schema| schema.open_api_v3_schema.as_ref())
            .and_then(|schema| schema.properties.as_ref()?.get("spec")?.properties.as_ref())
            .is_some_and(|spec| spec.contains_key(FIELD))
    };
    let crd = crds.get("ecstaskruns.ecsrun.dev").await?;
    ensure!(!has_field(&crd), "the old release's CRD has {FIELD}");
    ensure!(
        crd.annotations().get("helm.sh/resource-policy").map(String::as_str) == Some("keep"),
        "the CRD is not kept on uninstall: {:?}",
        crd.annotations()
    );

    let runs: kube::Api<ecsrun::api::EcsTaskRun> = kube::Api::namespaced(client.clone(), "default");
    let run_yaml: serde_json::Value = serde_json::json!({
        "apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskRun", "metadata": {"name": "kept-an-hour"},
        "spec": {"cluster": "batch", "taskDefinition": "db-dump", FIELD: 3600},
    });
    let strict = PatchParams::apply("crd-upgrade").validation_strict();
    let refused = runs.patch("kept-an-hour", &strict, &Patch::Apply(&run_yaml)).await;
    ensure!(
        matches!(&refused, Err(kube::Error::Api(status)) if status.message.contains(FIELD)),
        "the old CRD accepted {FIELD}: {refused:?}"
    );

    run(helm_in("upgrade", &repo_root().join("charts/ecsrun"))?).await.context("upgrading to this chart")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !has_field(&crds.get("ecstaskruns.ecsrun.dev").await?) {
        ensure!(std::time::Instant::now() < deadline, "helm upgrade did not add {FIELD} to the CRD in 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    established(crds.clone()).await?;
    let accepted = runs.patch("kept-an-hour", &strict, &Patch::Apply(&run_yaml)).await.context("the upgraded CRD")?;
    ensure!(accepted.spec.ttl_seconds_after_finished == Some(3600), "{FIELD} did not persist: {:?}", accepted.spec);

    run(helm_on(&["uninstall", RELEASE])?).await.context("uninstalling")?;
    for name in ["ecstaskruns.ecsrun.dev", "ecstaskschedules.ecsrun.dev", "ecsrunpolicies.ecsrun.dev"] {
        let crd = crds.get(name).await.with_context(|| format!("helm uninstall deleted the CRD {name}"))?;
        ensure!(crd.metadata.deletion_timestamp.is_none(), "helm uninstall is deleting the CRD {name}");
    }
    ensure!(runs.get_opt("kept-an-hour").await?.is_some(), "the run did not survive the uninstall");
    drop(control_plane);
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
