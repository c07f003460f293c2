//! EcsRunPolicies against the real API server (which evaluates the chart's ValidatingAdmissionPolicy) and
//! moto: two teams' namespaces, each allowed its own clusters, families, roles and regions; everything
//! else refused at `kubectl apply` with the policy's message, and by the controller (PolicyDenied, no
//! RunTask) once the admission binding is gone; audit mode lets a violation through with a warning;
//! the external ID and the session tags the controller sends reach STS.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use ecsrun::api::EcsRunPolicy;
use ecsrun_testbed::{Controller, repo_root, wait};
use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::chart::{kubectl, run};
use crate::{Case, Env, case, fargate_run};

pub const TEAM_A: &str = "e2e-policy-a";
pub const TEAM_B: &str = "e2e-policy-b";
pub const NO_POLICY: &str = "e2e-policy-none";
pub const AUDITED: &str = "e2e-policy-audit";
const ROLE_A: &str = "arn:aws:iam::123456789012:role/e2e-team-a-runner";
const ROLE_B: &str = "arn:aws:iam::123456789012:role/e2e-team-b-runner";
const EBS_ROLE_A: &str = "arn:aws:iam::123456789012:role/e2e-team-a-ebs";

/// A run's EBS volume, made as `role` (from `snapshot` when given).
fn volume(role: &str, snapshot: &str) -> String {
    let snapshot = if snapshot.is_empty() { String::new() } else { format!("        snapshotId: {snapshot}\n") };
    format!(
        "  volumeConfigurations:\n    - name: scratch\n      managedEBSVolume:\n        roleArn: {role}\n        \
         sizeInGiB: 100\n{snapshot}"
    )
}

pub fn cases() -> Vec<Case> {
    vec![
        case("policy::each_team_runs_its_own_and_nothing_of_the_other_team", teams),
        case("policy::audit_mode_lets_a_violation_through_with_a_warning", audit),
    ]
}

/// Creates (or updates) a namespace with labels.
async fn labelled_namespace(env: &Env, name: &str, labels: Value) -> anyhow::Result<()> {
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
    Api::<Namespace>::all(env.client.clone())
        .patch(name, &PatchParams::apply("ecsrun-testbed"), &Patch::Apply(&namespace))
        .await?;
    Ok(())
}

async fn apply_policy(env: &Env, name: &str, spec: Value) -> anyhow::Result<()> {
    let policy =
        json!({"apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsRunPolicy", "metadata": {"name": name}, "spec": spec});
    Api::<EcsRunPolicy>::all(env.client.clone())
        .patch(name, &PatchParams::apply("ecsrun-testbed").force(), &Patch::Apply(&policy))
        .await?;
    Ok(())
}

/// The chart's admission policy and binding (release `release`), covering namespaces labelled `label=covered`.
async fn install_admission(env: &Env, release: &str, mode: &str, label: &str) -> anyhow::Result<()> {
    let mut template = Command::new(crate::chart::helm()?);
    template.args(["template", release]).arg(repo_root().join("charts/ecsrun"));
    template.args(["--namespace", "ecsrun-system", "--show-only", "templates/admission-policy.yaml"]);
    template.args([
        "--set",
        &format!("policy.mode={mode}"),
        "--set",
        "aws.region=eu-west-1",
        "--set",
        crate::chart::IMAGE,
    ]);
    template.args(["--set", &format!("policy.admission.namespaceSelector.matchLabels.{label}=covered")]);
    let rendered = run(template).await?;
    let path = env.work.join(format!("admission-{release}.yaml"));
    std::fs::write(&path, rendered)?;
    let mut apply = kubectl(env);
    apply.args(["apply", "--server-side", "--field-manager=ecsrun-testbed", "-f"]).arg(&path);
    run(apply).await?;
    Ok(())
}

/// Server-side dry-run create of a run: Ok(warnings) if admitted, Err(message) if refused.
async fn admit(env: &Env, namespace: &str, yaml: &str) -> anyhow::Result<Result<String, String>> {
    admit_object(env, namespace, &env.manifest(yaml).map(|run| serde_yaml_ng::to_string(&run))??).await
}

/// The run of `yaml` as the runTemplate of a nightly EcsTaskSchedule.
fn as_schedule(env: &Env, yaml: &str) -> anyhow::Result<String> {
    let run = env.manifest(yaml)?;
    let schedule = json!({
        "apiVersion": "ecsrun.dev/v1alpha1",
        "kind": "EcsTaskSchedule",
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 2 * * *", "runTemplate": {"spec": run.spec}}
    });
    Ok(serde_yaml_ng::to_string(&schedule)?)
}

/// Server-side dry-run create of any object: Ok(warnings) if admitted, Err(message) if refused.
async fn admit_object(env: &Env, namespace: &str, manifest: &str) -> anyhow::Result<Result<String, String>> {
    let path = env.work.join(format!("admit-{namespace}-{}.yaml", rand_suffix()));
    std::fs::write(&path, manifest)?;
    let mut create = kubectl(env);
    create.args(["create", "--dry-run=server", "-n", namespace, "-f"]).arg(&path);
    let output = tokio::task::spawn_blocking(move || create.output()).await??;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    Ok(if output.status.success() { Ok(stderr) } else { Err(stderr) })
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Waits until the API server has loaded an admission policy: `yaml` (forbidden) is refused or warned about.
async fn until_admission_applies(env: &Env, namespace: &str, yaml: &str, warns: bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let result = admit(env, namespace, yaml).await?;
        let applies = match (&result, warns) {
            (Err(message), false) => message.contains("ValidatingAdmissionPolicy"),
            (Ok(warnings), true) => warnings.contains("Warning"),
            _ => false,
        };
        if applies {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "the admission policy never applied in {namespace}: {result:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn run_yaml(name: &str, cluster: &str, family: &str, extra: &str) -> String {
    fargate_run(name, cluster, family, extra)
}

fn assuming(role: &str) -> String {
    format!("  credentials:\n    assumeRoleArn: {role}\n")
}

async fn teams(env: Arc<Env>) -> anyhow::Result<()> {
    labelled_namespace(&env, TEAM_A, json!({"e2e-team": "a", "e2e-policy": "covered"})).await?;
    labelled_namespace(&env, TEAM_B, json!({"e2e-team": "b", "e2e-policy": "covered"})).await?;
    labelled_namespace(&env, NO_POLICY, json!({"e2e-policy": "covered"})).await?;
    apply_policy(
        &env,
        "e2e-team-a",
        json!({
            "namespaceSelector": {"matchLabels": {"e2e-team": "a"}},
            "regions": ["eu-west-1"],
            "clusters": ["batch"],
            "taskDefinitionFamilies": ["transform"],
            "credentials": {"assumeRoleArns": ["arn:aws:iam::123456789012:role/e2e-team-a-*"]},
            "ebsVolumes": {"roleArns": [EBS_ROLE_A]},
            "limits": {"cpu": 2048, "memory": 4096, "tasks": 5, "timeout": "1h"}
        }),
    )
    .await?;
    apply_policy(
        &env,
        "e2e-team-b",
        json!({
            "namespaceSelector": {"matchExpressions": [{"key": "e2e-team", "operator": "In", "values": ["b"]}]},
            "regions": ["eu-*"],
            "clusters": ["reports"],
            "taskDefinitionFamilies": ["db-*"],
            "credentials": {"assumeRoleArns": [ROLE_B]},
            "launchTypes": ["FARGATE"],
            "network": {"subnets": [env.moto.fixtures.subnet]},
            "privileges": {"secretSources": ["arn:aws:secretsmanager:eu-west-1:123456789012:secret:team-b/*"]},
            "limits": {"gpus": 1, "ephemeralStorageGiB": 50}
        }),
    )
    .await?;
    install_admission(&env, "ecsrun", "enforce", "e2e-policy").await?;
    let mut controller = Controller::start(
        "controller-policy",
        &env.work,
        &env.kubeconfig,
        &env.moto,
        &[TEAM_A, TEAM_B, NO_POLICY],
        &["--policy-mode=enforce"],
    )?;
    controller.ready().await?;

    let a = |extra: &str| run_yaml("bad", "batch", "transform", &format!("{}{extra}", assuming(ROLE_A)));
    let a_timed = |extra: &str| a(&format!("  wait:\n    timeout: 30m\n{extra}"));
    let b = |cluster: &str, family: &str, extra: &str| {
        run_yaml("bad", cluster, family, &format!("{}{extra}", assuming(ROLE_B)))
    };
    until_admission_applies(&env, TEAM_A, &run_yaml("bad", "reports", "transform", &assuming(ROLE_A)), false).await?;
    // Team A's run of a task definition template (family, task cpu, extra template and container fields).
    let a_template = |family: &str, cpu: &str, template: &str, container: &str| {
        a_timed("").replace(
            "  taskDefinition: transform\n",
            &format!(
                "  taskDefinitionTemplate:\n    family: {family}\n    cpu: \"{cpu}\"\n    memory: \"512\"\n    \
                 networkMode: awsvpc\n    requiresCompatibilities: [FARGATE]\n{template}    containerDefinitions:\n      \
                 - name: app\n        image: busybox\n{container}"
            ),
        )
    };

    // (case, namespace, manifest, the rule it breaks). Admission must refuse each with the very message
    // the controller's own check gives (ecsrun::policy), so a run gets the same words either way.
    use ecsrun::policy::Rule;
    let timed = |credentials: &str| format!("{credentials}  wait:\n    timeout: 30m\n");
    let refused: Vec<(&str, &str, String, Rule)> = vec![
        ("team B's cluster", TEAM_A, run_yaml("bad", "reports", "transform", &timed(&assuming(ROLE_A))), Rule::Cluster),
        (
            "team B's family",
            TEAM_A,
            run_yaml("bad", "batch", "db-dump", &timed(&assuming(ROLE_A))),
            Rule::TaskDefinitionFamily,
        ),
        ("team B's role", TEAM_A, run_yaml("bad", "batch", "transform", &timed(&assuming(ROLE_B))), Rule::AssumeRole),
        ("another region", TEAM_A, a_timed("  region: us-east-1\n"), Rule::Region),
        (
            "the controller's identity",
            TEAM_A,
            run_yaml("bad", "batch", "transform", &timed("")),
            Rule::ControllerIdentity,
        ),
        (
            "a Secret's keys",
            TEAM_A,
            run_yaml("bad", "batch", "transform", &timed("  credentials:\n    secretRef:\n      name: keys\n")),
            Rule::SecretRef,
        ),
        (
            "its own external ID",
            TEAM_A,
            run_yaml(
                "bad",
                "batch",
                "transform",
                &timed(&format!("  credentials:\n    assumeRoleArn: {ROLE_A}\n    externalId: guessed\n")),
            ),
            Rule::ExternalId,
        ),
        (
            "a task role",
            TEAM_A,
            a_timed("  overrides:\n    taskRoleArn: arn:aws:iam::123456789012:role/admin\n"),
            Rule::TaskRole,
        ),
        (
            "an execution role",
            TEAM_A,
            a_timed("  overrides:\n    executionRoleArn: arn:aws:iam::123456789012:role/admin\n"),
            Rule::ExecutionRole,
        ),
        ("4 vCPU", TEAM_A, a_timed("  overrides:\n    cpu: 4 vCPU\n"), Rule::Cpu),
        (
            "a container's memory",
            TEAM_A,
            a_timed("  overrides:\n    containerOverrides:\n      - name: app\n        memory: 8192\n"),
            Rule::Memory,
        ),
        ("a template of team B's family", TEAM_A, a_template("db-dump", "256", "", ""), Rule::TaskDefinitionFamily),
        (
            "a template's task role",
            TEAM_A,
            a_template("transform", "256", "    taskRoleArn: arn:aws:iam::123456789012:role/admin\n", ""),
            Rule::TemplateTaskRole,
        ),
        ("a template of 4 vCPU", TEAM_A, a_template("transform", "4 vCPU", "", ""), Rule::TemplateCpu),
        (
            "a template container's memory",
            TEAM_A,
            a_template("transform", "256", "", "        memory: 8192\n"),
            Rule::TemplateMemory,
        ),
        ("no timeout", TEAM_A, a(""), Rule::Timeout),
        ("a longer timeout", TEAM_A, a("  wait:\n    timeout: 2h\n"), Rule::Timeout),
        (
            "EC2",
            TEAM_B,
            b("reports", "db-dump", "").replace("launchType: FARGATE", "launchType: EC2"),
            Rule::LaunchType,
        ),
        (
            "team A's family by ARN",
            TEAM_B,
            b("reports", "arn:aws:ecs:eu-west-1:123456789012:task-definition/transform:1", ""),
            Rule::TaskDefinitionFamily,
        ),
        (
            "team A's cluster by ARN",
            TEAM_B,
            b("arn:aws:ecs:eu-west-1:123456789012:cluster/batch", "db-dump", ""),
            Rule::Cluster,
        ),
        ("team A's role", TEAM_B, run_yaml("bad", "reports", "db-dump", &assuming(ROLE_A)), Rule::AssumeRole),
        // Issue 23, finding 3: what a run really gets, EBS volumes, tasks per run.
        (
            "the cluster's default launch type",
            TEAM_B,
            b("reports", "db-dump", "").replace("  launchType: FARGATE\n", ""),
            Rule::DefaultLaunchType,
        ),
        (
            "an Auto Scaling group's capacity provider",
            TEAM_B,
            b("reports", "db-dump", "").replace(
                "  launchType: FARGATE\n",
                "  capacityProviderStrategy:\n    - capacityProvider: FARGATE_SPOT\n    - capacityProvider: reports-asg\n",
            ),
            Rule::CapacityProviderLaunchType,
        ),
        (
            "an EBS volume as another role",
            TEAM_A,
            a_timed(&volume("arn:aws:iam::123456789012:role/admin", "")),
            Rule::EbsRole,
        ),
        ("an EBS volume from a snapshot", TEAM_A, a_timed(&volume(EBS_ROLE_A, "snap-0123456789abcdef0")), Rule::EbsSnapshot),
        ("6 tasks", TEAM_A, a_timed("  count: 6\n"), Rule::Tasks),
        // Issue 35, finding 6: what a run reaches beyond its roles.
        (
            "a public IP",
            TEAM_A,
            a_timed("").replace(
                "      securityGroups: [sg-0123456789abcdef0]\n",
                "      securityGroups: [sg-0123456789abcdef0]\n      assignPublicIp: ENABLED\n",
            ),
            Rule::PublicIp,
        ),
        ("ECS Exec", TEAM_A, a_timed("  enableExecuteCommand: true\n"), Rule::ExecuteCommand),
        ("placement", TEAM_A, a_timed("  placementStrategy:\n    - type: random\n"), Rule::Placement),
        (
            "the host's network",
            TEAM_A,
            a_template("transform", "256", "", "")
                .replace("    networkMode: awsvpc\n    requiresCompatibilities: [FARGATE]\n", "    networkMode: host\n"),
            Rule::HostNetwork,
        ),
        (
            "a host path",
            TEAM_A,
            a_template("transform", "256", "    volumes:\n      - name: root\n        host:\n          sourcePath: /\n", ""),
            Rule::HostVolume,
        ),
        (
            "an EFS file system",
            TEAM_A,
            a_template(
                "transform",
                "256",
                "    volumes:\n      - name: shared\n        efsVolumeConfiguration:\n          fileSystemId: fs-0123\n",
                "",
            ),
            Rule::EfsFileSystem,
        ),
        ("another subnet", TEAM_B, b("reports", "db-dump", "").replace("subnet-0123456789abcdef0", "subnet-0999"), Rule::Subnet),
        (
            "team A's secret",
            TEAM_B,
            b("reports", "db-dump", "").replace(
                "  taskDefinition: db-dump\n",
                "  taskDefinitionTemplate:\n    family: db-dump\n    cpu: \"256\"\n    memory: \"512\"\n    \
                 networkMode: awsvpc\n    requiresCompatibilities: [FARGATE]\n    containerDefinitions:\n      \
                 - name: app\n        image: busybox\n        secrets:\n          - name: DB\n            \
                 valueFrom: arn:aws:secretsmanager:eu-west-1:123456789012:secret:team-a/db\n",
            ),
            Rule::Secret,
        ),
        (
            "two GPUs",
            TEAM_B,
            b(
                "reports",
                "db-dump",
                "  overrides:\n    containerOverrides:\n      - name: app\n        resourceRequirements:\n          \
                 - type: GPU\n            value: \"2\"\n",
            ),
            Rule::Gpus,
        ),
        (
            "100 GiB of storage",
            TEAM_B,
            b("reports", "db-dump", "  overrides:\n    ephemeralStorage:\n      sizeInGiB: 100\n"),
            Rule::EphemeralStorage,
        ),
    ];
    let policies: Api<EcsRunPolicy> = Api::all(env.client.clone());
    let mut failures = Vec::new();
    for (what, namespace, yaml, rule) in &refused {
        let policy = policies.get(if *namespace == TEAM_A { "e2e-team-a" } else { "e2e-team-b" }).await?;
        let run = env.manifest(yaml)?;
        let region = run.spec.region.as_deref().unwrap_or("eu-west-1");
        let denial = match ecsrun::policy::check(namespace, region, &run.spec, &[&policy]) {
            Err(denial) if denial.violations.iter().map(|v| v.rule).eq([*rule]) => denial,
            other => bail!("{what}: the controller's check gives {other:?}, expected one {rule:?} violation"),
        };
        let expected = format!("denied request: {}", denial.message());
        match admit(&env, namespace, yaml).await? {
            Ok(_) => failures.push(format!("{what}: admitted")),
            Err(message) if !message.contains(&expected) => {
                failures.push(format!("{what}: {message} (expected: {expected})"))
            }
            Err(_) => {}
        }
        // The same run as a schedule's runTemplate is refused in the same words.
        match admit_object(&env, namespace, &as_schedule(&env, yaml)?).await? {
            Ok(_) => failures.push(format!("{what}, as a schedule's runTemplate: admitted")),
            Err(message) if !message.contains(&expected) => {
                failures.push(format!("{what}, as a schedule's runTemplate: {message} (expected: {expected})"))
            }
            Err(_) => {}
        }
    }
    ensure!(failures.is_empty(), "admission:\n{}", failures.join("\n"));
    // What the same rules allow is admitted: a volume as the team's role, 5 tasks, FARGATE_SPOT.
    let allowed = [
        (TEAM_A, a_timed(&format!("{}  count: 5\n", volume(EBS_ROLE_A, "")))),
        (
            TEAM_B,
            b("reports", "db-dump", "").replace(
                "  launchType: FARGATE\n",
                "  capacityProviderStrategy:\n    - capacityProvider: FARGATE_SPOT\n    - capacityProvider: FARGATE\n",
            ),
        ),
    ];
    for (namespace, yaml) in &allowed {
        if let Err(message) = admit(&env, namespace, yaml).await? {
            bail!("admission refused what the policy allows in {namespace}: {message}\n{yaml}");
        }
        if let Err(message) = admit_object(&env, namespace, &as_schedule(&env, yaml)?).await? {
            bail!("admission refused a schedule of what the policy allows in {namespace}: {message}\n{yaml}");
        }
    }

    // Following a task started elsewhere launches nothing: its region, cluster and role are checked, not a
    // family, at admission and by the controller alike.
    let adopting = |cluster: &str| {
        format!(
            "apiVersion: ecsrun.dev/v1alpha1\nkind: EcsTaskRun\nmetadata:\n  name: adopt\nspec:\n  cluster: {cluster}\n  \
             taskArn: arn:aws:ecs:eu-west-1:123456789012:task/{cluster}/0123456789abcdef\n{}",
            assuming(ROLE_B)
        )
    };
    let team_b = policies.get("e2e-team-b").await?;
    let own = env.manifest(&adopting("reports"))?;
    ensure!(
        ecsrun::policy::check(TEAM_B, "eu-west-1", &own.spec, &[&team_b]).is_ok(),
        "the controller refuses adopting"
    );
    let admitted = admit(&env, TEAM_B, &adopting("reports")).await?;
    ensure!(admitted.is_ok(), "adopting a task of the team's cluster was refused: {admitted:?}");
    let refused = admit(&env, TEAM_B, &adopting("batch")).await?;
    ensure!(
        refused.as_ref().is_err_and(|message| message.contains("spec.cluster \"batch\" is not allowed")),
        "adopting a task of another team's cluster: {refused:?}"
    );

    // Each team's own run is admitted and runs, as the team's role with the namespace's external ID.
    let own_a = run_yaml("own", "batch", "transform", &format!("{}  wait:\n    timeout: 30m\n", assuming(ROLE_A)));
    let own_b = run_yaml("own", "reports", "db-dump", &format!("{}  region: eu-west-1\n", assuming(ROLE_B)));
    for (namespace, yaml) in [(TEAM_A, &own_a), (TEAM_B, &own_b)] {
        env.create(namespace, &env.manifest(yaml)?).await.with_context(|| format!("{namespace}'s own run"))?;
    }
    for namespace in [TEAM_A, TEAM_B] {
        wait::until(
            &env.runs(namespace),
            "own",
            Duration::from_secs(60),
            "Succeeded",
            wait::has_condition("Succeeded"),
        )
        .await
        .with_context(|| format!("{namespace}: {}", ecsrun_testbed::tail(&controller.process.log, 20)))?;
    }
    let cluster_id = Api::<Namespace>::all(env.client.clone()).get("kube-system").await?.uid().context("no uid")?;
    let sessions = assumed_roles(&env).await?;
    for (namespace, role) in [(TEAM_A, ROLE_A), (TEAM_B, ROLE_B)] {
        let mine: Vec<&Value> = sessions.iter().filter(|s| s["role_arn"] == role).collect();
        ensure!(!mine.is_empty(), "STS was never asked for {role}: {sessions:?}");
        let external_id = format!("ecsrun:{cluster_id}:{namespace}");
        ensure!(mine.iter().all(|s| s["external_id"] == external_id.as_str()), "external IDs for {role}: {mine:?}");
        // The run's own session launched the task, named and tagged after it.
        let launch = mine
            .iter()
            .find(|s| s["session_name"] == format!("{namespace}.own").as_str())
            .with_context(|| format!("no session named {namespace}.own: {mine:?}"))?;
        ensure!(
            launch["tags"]["ecsrun.dev/namespace"] == namespace && launch["tags"]["ecsrun.dev/name"] == "own",
            "session tags: {launch}"
        );
    }

    // A namespace two policies select may use what either allows. Admission, which sees one policy at a
    // time, leaves it to the controller once the policies' status lists it as shared.
    apply_policy(
        &env,
        "e2e-shared-batch",
        json!({
            "namespaceSelector": {"matchLabels": {"e2e-team": "b"}},
            "regions": ["eu-west-1"],
            "clusters": ["batch"],
            "taskDefinitionFamilies": ["transform"]
        }),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = policies.get("e2e-team-b").await?.status.unwrap_or_default();
        if status.shared_namespaces == [TEAM_B] {
            break;
        }
        ensure!(Instant::now() < deadline, "e2e-team-b's status never listed {TEAM_B} as shared: {status:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Team B's role (e2e-team-b) on the shared cluster and family (e2e-shared-batch).
    let union = run_yaml("union", "batch", "transform", &assuming(ROLE_B));
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(message) = admit(&env, TEAM_B, &union).await? {
        ensure!(Instant::now() < deadline, "a run both policies together allow was refused: {message}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // (Before any run of team B names the family bare: a bare family's revision is cached for a minute.)
    // Templates never change what other namespaces run (issue 35, finding 6): team A's template registers
    // a revision of the family both teams may run; team B's run naming the family bare is refused rather
    // than launching it, and runs once it names a revision.
    let template = a_template("transform", "256", "", "").replace("name: bad\n", "name: template\n");
    env.create(TEAM_A, &env.manifest(&template)?).await?;
    let registered = wait::until(
        &env.runs(TEAM_A),
        "template",
        Duration::from_secs(60),
        "Succeeded",
        wait::has_condition("Succeeded"),
    )
    .await
    .with_context(|| ecsrun_testbed::tail(&controller.process.log, 20))?;
    let revision = registered.task.task_definition_arn.clone().context("the template run's revision")?;
    let bare = union.replace("name: union\n", "name: after-template\n");
    env.create(TEAM_B, &env.manifest(&bare)?).await?;
    let refused = wait::until(
        &env.runs(TEAM_B),
        "after-template",
        Duration::from_secs(60),
        "Failed",
        wait::has_condition("Failed"),
    )
    .await?;
    let failed = refused.conditions.iter().find(|c| c.type_ == "Failed").context("no Failed condition")?;
    let expected = format!("was registered from a taskDefinitionTemplate of namespace {TEAM_A}");
    ensure!(failed.reason == "PolicyDenied" && failed.message.contains(&expected), "{failed:?} ({revision})");
    ensure!(refused.task.task_arn.is_none(), "refused yet launched: {refused:?}");
    // Named by revision, team B's run goes (the policies together allow it).
    let union = union.replace("taskDefinition: transform\n", "taskDefinition: transform:1\n");
    env.create(TEAM_B, &env.manifest(&union)?).await?;
    wait::until(&env.runs(TEAM_B), "union", Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded"))
        .await
        .with_context(|| ecsrun_testbed::tail(&controller.process.log, 20))?;

    // Without the admission binding, the controller refuses on its own: no RunTask is sent.
    Api::<ValidatingAdmissionPolicyBinding>::all(env.client.clone())
        .delete("ecsrun-runs", &DeleteParams::default())
        .await?;
    let forbidden =
        run_yaml("forbidden", "reports", "transform", &format!("{}  wait:\n    timeout: 30m\n", assuming(ROLE_A)));
    let deadline = Instant::now() + Duration::from_secs(30);
    while admit(&env, TEAM_A, &forbidden).await?.is_err() {
        ensure!(Instant::now() < deadline, "the API server still applies the deleted binding");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stranger = run_yaml("stranger", "batch", "transform", &assuming(ROLE_A));
    for (namespace, yaml, name, expected) in [
        (
            TEAM_A,
            &forbidden,
            "forbidden",
            "spec.cluster \"reports\" is not allowed by EcsRunPolicy e2e-team-a (clusters: batch)",
        ),
        (NO_POLICY, &stranger, "stranger", "no EcsRunPolicy selects namespace e2e-policy-none"),
    ] {
        let run = env.create(namespace, &env.manifest(yaml)?).await?;
        let status =
            wait::until(&env.runs(namespace), name, Duration::from_secs(30), "Failed", wait::has_condition("Failed"))
                .await?;
        let failed = status.conditions.iter().find(|c| c.type_ == "Failed").context("no Failed condition")?;
        ensure!(failed.reason == "PolicyDenied" && failed.message.contains(expected), "{namespace}/{name}: {failed:?}");
        let uid = run.uid().context("no uid")?;
        for cluster in ["batch", "reports"] {
            let tasks = env.tasks_started_by(cluster, &uid).await?;
            ensure!(tasks.is_empty(), "{namespace}/{name} was refused yet ECS has {tasks:?}");
        }
        ensure!(status.task.task_arn.is_none(), "{namespace}/{name} has a task: {status:?}");
    }
    ensure!(controller.metric("ecsrun_policy_violations_total{mode=\"enforce\",rule=\"cluster\"}").await? >= 1.0);
    ensure!(controller.metric("ecsrun_policy_violations_total{mode=\"enforce\",rule=\"no_policy\"}").await? >= 1.0);

    // The policies say which namespaces they select.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = policies.get("e2e-team-a").await?.status.unwrap_or_default();
        if a.namespaces == [TEAM_A] && a.namespace_count == Some(1) {
            break;
        }
        ensure!(Instant::now() < deadline, "e2e-team-a's status never listed its namespace: {a:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// moto's record of every AssumeRole call: role_arn, session_name, external_id, tags.
async fn assumed_roles(env: &Env) -> anyhow::Result<Vec<Value>> {
    match env.moto.models().await?["sts"]["AssumedRole"].as_array() {
        Some(sessions) => Ok(sessions.clone()),
        None => bail!("moto data.json has no sts.AssumedRole"),
    }
}

async fn audit(env: Arc<Env>) -> anyhow::Result<()> {
    labelled_namespace(&env, AUDITED, json!({"e2e-team": "audit", "e2e-audit": "covered"})).await?;
    apply_policy(
        &env,
        "e2e-team-audit",
        json!({
            "namespaceSelector": {"matchLabels": {"e2e-team": "audit"}},
            "regions": ["eu-west-1"],
            "clusters": ["reports"],
            "taskDefinitionFamilies": ["transform"],
            "credentials": {"controllerIdentity": true}
        }),
    )
    .await?;
    install_admission(&env, "ecsrun-audit", "audit", "e2e-audit").await?;
    let violating = run_yaml("violating", "batch", "transform", "");
    until_admission_applies(&env, AUDITED, &violating, true).await?;
    let warnings = admit(&env, AUDITED, &violating).await?.map_err(|error| anyhow::anyhow!("refused: {error}"))?;
    ensure!(
        warnings.contains("spec.cluster \"batch\" is not allowed by EcsRunPolicy e2e-team-audit (clusters: reports)"),
        "audit warning: {warnings}"
    );

    let mut controller = Controller::start(
        "controller-policy-audit",
        &env.work,
        &env.kubeconfig,
        &env.moto,
        &[AUDITED],
        &["--policy-mode=audit"],
    )?;
    controller.ready().await?;
    env.create(AUDITED, &env.manifest(&violating)?).await?;
    wait::until(
        &env.runs(AUDITED),
        "violating",
        Duration::from_secs(60),
        "Succeeded",
        wait::has_condition("Succeeded"),
    )
    .await
    .with_context(|| ecsrun_testbed::tail(&controller.process.log, 20))?;
    let events = crate::examples::events_of(&env.client, AUDITED, "violating").await?;
    ensure!(events.iter().any(|reason| reason == "PolicyViolation"), "events: {events:?}");
    ensure!(controller.metric("ecsrun_policy_violations_total{mode=\"audit\",rule=\"cluster\"}").await? >= 1.0);
    Ok(())
}
