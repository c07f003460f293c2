//! The end-to-end environment: the upstream kube-apiserver + etcd from `hack/controlplane`, moto's ECS
//! server from `hack/moto`, the CRD from `crds/`, and the real `ecsrun-controller` binary. Nothing here
//! imitates a peer; whatever cannot be brought up fails the run with the reason.
//!
//! Environment variables:
//! - `ECSRUN_E2E_KUBECONFIG`: use this disposable cluster (kind, k3d) instead of starting a control plane.
//! - `ECSRUN_E2E_PYTHON`: the Python with `moto[server]` (default `.cache/venv/bin/python`, made by `hack/setup`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};

pub mod bench;
pub mod fakes;
pub mod faults;
pub mod kueue;
pub mod link;
pub mod proxy;
pub mod registry;
pub mod sim;
pub mod tekton;
pub mod wait;

/// The repository root. Cargo's run-time CARGO_MANIFEST_DIR comes first: the target directory is shared
/// by every clone (hack/env.sh), and a binary another clone built from the same sources carries that
/// clone's path in the compile-time one.
pub fn repo_root() -> PathBuf {
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir.parent().expect("tests/ sits in the repository root").to_path_buf()
}

/// Where hack/setup puts what it builds and installs: `ECSRUN_CACHE_DIR`, else the checkout's `.cache/`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("ECSRUN_CACHE_DIR").map_or_else(|| repo_root().join(".cache"), PathBuf::from)
}

/// A program hack/setup builds into the cache's `bin/` (registry, krew, ...).
pub fn setup_binary(name: &str) -> anyhow::Result<PathBuf> {
    let binary = cache_dir().join("bin").join(name);
    ensure!(binary.exists(), "{} does not exist: hack/setup builds it", binary.display());
    Ok(binary)
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A child process that is killed when dropped, so nothing outlives a failed test run.
pub struct Process {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, mut command: Command, log: PathBuf) -> anyhow::Result<Self> {
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        Ok(Self { name: name.into(), child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the end of the log when the process has exited.
    pub fn ensure_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); last log lines:\n{}", self.name, tail(&self.log, 30));
        }
        Ok(())
    }

    /// SIGTERM, as the kubelet sends on pod deletion.
    pub fn terminate(&self) -> anyhow::Result<()> {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status()?;
        ensure!(status.success(), "kill -TERM {} failed", self.pid());
        Ok(())
    }

    /// Waits for the process to exit by itself.
    pub async fn exited(&mut self, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            ensure!(Instant::now() < deadline, "{} still running after {within:?}", self.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The local control plane (or a cluster given by `ECSRUN_E2E_KUBECONFIG`).
pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    /// Set when this run started the control plane and must stop it.
    state_dir: Option<PathBuf>,
}

impl ControlPlane {
    pub fn start(work: &Path) -> anyhow::Result<Self> {
        if let Ok(path) = std::env::var("ECSRUN_E2E_KUBECONFIG") {
            eprintln!("e2e: using the cluster in ECSRUN_E2E_KUBECONFIG={path}");
            return Ok(Self { kubeconfig: path.into(), state_dir: None });
        }
        Self::start_new(work)
    }

    /// A control plane of its own, whatever ECSRUN_E2E_KUBECONFIG says (a test that needs a cluster
    /// nobody else uses), in `work/controlplane`.
    pub fn start_new(work: &Path) -> anyhow::Result<Self> {
        let state_dir = work.join("controlplane");
        let script = repo_root().join("hack/controlplane/controlplane.sh");
        let started = Instant::now();
        let output = Command::new(&script)
            .arg("up")
            .env("ECSRUN_CP_DIR", &state_dir)
            .env("ECSRUN_CP_OWNER_PID", std::process::id().to_string())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        ensure!(
            output.status.success(),
            "the local control plane could not be brought up ({}): see the messages above. \
             It is built from Go modules by hack/controlplane/build.sh (hack/setup runs it).",
            output.status
        );
        eprintln!("e2e: control plane up in {:.1}s", started.elapsed().as_secs_f64());
        Ok(Self { kubeconfig: state_dir.join("kubeconfig"), state_dir: Some(state_dir) })
    }

    /// Stops kube-apiserver and starts it again on the same port and etcd (fault tests).
    pub fn restart_apiserver(&self) -> anyhow::Result<()> {
        let state_dir = self.state_dir.as_ref().context("not a control plane this run started")?;
        let status = Command::new(repo_root().join("hack/controlplane/controlplane.sh"))
            .arg("restart-apiserver")
            .env("ECSRUN_CP_DIR", state_dir)
            .stderr(Stdio::inherit())
            .status()?;
        ensure!(status.success(), "restarting kube-apiserver failed ({status})");
        Ok(())
    }

    /// kube-apiserver's pid, when this run started it (its CPU in the benchmark).
    pub fn apiserver_pid(&self) -> Option<u32> {
        let state_dir = self.state_dir.as_ref()?;
        std::fs::read_to_string(state_dir.join("apiserver.pid")).ok()?.trim().parse().ok()
    }

    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(state_dir) = &self.state_dir {
            let _ = Command::new(repo_root().join("hack/controlplane/controlplane.sh"))
                .arg("down")
                .env("ECSRUN_CP_DIR", state_dir)
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// What the moto launcher created for tasks to run in.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fixtures {
    pub region: String,
    pub subnet: String,
    /// A /17 subnet: room for the fleet benchmark's tasks at N = 30,000 (every awsvpc task takes an address).
    pub bench_subnet: String,
    pub security_group: String,
    /// Queues of task state change events by name (`ecsrun-task-events`: the "events" cluster's;
    /// `ecsrun-bench-events`: the "bench" cluster's), each fed by an EventBridge rule.
    pub event_queues: std::collections::BTreeMap<String, String>,
}

/// moto's server with ecsrun's launcher (hack/moto/launcher.py).
pub struct Moto {
    pub endpoint: String,
    pub fixtures: Fixtures,
    /// The venv's Python, with boto3: what a team's own scripts start tasks with.
    pub python: PathBuf,
    _process: Process,
}

impl Moto {
    /// moto's own records of every model (`/moto-api/data.json`): what STS was asked (AssumedRole), what
    /// the launcher kept of a RunTask (Task), ... It holds AWS's managed IAM policies too: tens of MB.
    pub async fn models(&self) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}/moto-api/data.json", self.endpoint);
        let body = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
            let mut response = ureq::get(&url).call()?;
            Ok(response.body_mut().with_config().limit(1 << 30).read_to_string()?)
        })
        .await??;
        Ok(serde_json::from_str(&body)?)
    }

    pub fn start(work: &Path) -> anyhow::Result<Self> {
        let python = std::env::var("ECSRUN_E2E_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join(".cache/venv/bin/python"));
        ensure!(
            python.exists(),
            "{} does not exist: moto is installed by `hack/setup` (a Python venv under .cache/)",
            python.display()
        );
        let port = free_port()?;
        let fixtures_path = work.join("moto-fixtures.json");
        let mut command = Command::new(&python);
        command
            .arg(repo_root().join("hack/moto/launcher.py"))
            .args(["--port", &port.to_string(), "--parent-pid", &std::process::id().to_string()])
            .arg("--fixtures")
            .arg(&fixtures_path);
        let mut process = Process::spawn("moto", command, work.join("moto.log"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !fixtures_path.exists() {
            process.ensure_alive()?;
            ensure!(Instant::now() < deadline, "moto did not come up in 60s:\n{}", tail(&process.log, 30));
            std::thread::sleep(Duration::from_millis(200));
        }
        let fixtures = serde_json::from_str(&std::fs::read_to_string(&fixtures_path)?)?;
        Ok(Self { endpoint: format!("http://127.0.0.1:{port}"), fixtures, python, _process: process })
    }

    /// What every client of moto's services shares: its endpoint, region and the test credentials.
    async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(self.fixtures.region.clone()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_ecs::config::Credentials::new("test", "test", None, None, "e2e"))
            .load()
            .await
    }

    /// An ECS client talking to moto, to check what the controller did from ECS's side.
    pub async fn ecs(&self) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&self.sdk_config().await)
    }

    /// Empties a queue of task events (the benchmark's, between passes), through moto's SQS.
    pub async fn purge_event_queue(&self, name: &str) -> anyhow::Result<()> {
        let url = self.fixtures.event_queues.get(name).with_context(|| format!("no event queue {name}"))?;
        let config = self.sdk_config().await;
        aws_sdk_sqs::Client::new(&config).purge_queue().queue_url(url).send().await?;
        Ok(())
    }
}

/// The `ecsrun-controller` binary Cargo built beside this test.
pub fn controller_binary() -> anyhow::Result<PathBuf> {
    workspace_binary("ecsrun-controller")
}

/// A binary of the workspace Cargo built beside this test (`ecsrun-controller`, `kubectl-ecsrun`).
pub fn workspace_binary(name: &str) -> anyhow::Result<PathBuf> {
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/<name>
    let exe = std::env::current_exe()?;
    let binary =
        exe.parent().and_then(Path::parent).map(|dir| dir.join(name)).context("locating the target directory")?;
    ensure!(
        binary.exists(),
        "{} does not exist: build it first (`cargo build --workspace --bins`, as hack/test does)",
        binary.display()
    );
    Ok(binary)
}

/// One running `ecsrun-controller`.
pub struct Controller {
    pub process: Process,
    pub metrics_url: String,
}

/// How to start a controller: which binary, where ECS is, which flags.
pub struct ControllerOptions<'a> {
    pub binary: PathBuf,
    pub name: &'a str,
    pub ecs_endpoint: &'a str,
    pub sts_endpoint: &'a str,
    /// CloudWatch Logs: moto's own, whatever proxy stands in front of ECS.
    pub logs_endpoint: &'a str,
    pub region: &'a str,
    /// Namespaces to watch; all when empty.
    pub namespaces: &'a [&'a str],
    pub args: Vec<String>,
    pub rust_log: &'a str,
}

impl Controller {
    /// Starts the controller against moto, watching `namespaces` (all when empty), polling every 5 s.
    pub fn start(
        name: &str,
        work: &Path,
        kubeconfig: &Path,
        moto: &Moto,
        namespaces: &[&str],
        extra_args: &[&str],
    ) -> anyhow::Result<Self> {
        let mut args = vec!["--default-poll-interval".to_string(), "5s".into()];
        args.extend(extra_args.iter().map(|arg| arg.to_string()));
        Self::spawn(
            ControllerOptions {
                binary: controller_binary()?,
                name,
                ecs_endpoint: &moto.endpoint,
                sts_endpoint: &moto.endpoint,
                logs_endpoint: &moto.endpoint,
                region: &moto.fixtures.region,
                namespaces,
                args,
                rust_log: "info,ecsrun=debug",
            },
            work,
            kubeconfig,
        )
    }

    pub fn spawn(options: ControllerOptions, work: &Path, kubeconfig: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut command = Command::new(&options.binary);
        command
            .env("KUBECONFIG", kubeconfig)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_PROFILE")
            .env("RUST_LOG", options.rust_log)
            .args(["--ecs-endpoint-url", options.ecs_endpoint, "--sts-endpoint-url", options.sts_endpoint])
            .args(["--logs-endpoint-url", options.logs_endpoint])
            .args(["--default-region", options.region])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(["--controller-name", "ecsrun-controller", "--instance", options.name])
            .args(&options.args);
        // Tests that are not about EcsRunPolicies run a single-tenant controller.
        if !options.args.iter().any(|arg| arg.starts_with("--policy-mode")) {
            command.arg("--policy-mode=off");
        }
        if !options.namespaces.is_empty() {
            command.arg(format!("--watch-namespaces={}", options.namespaces.join(",")));
        }
        Self::spawn_command(options.name, command, work, port)
    }

    /// Starts a controller command line made elsewhere (say, from a chart's Deployment) whose metrics
    /// listen on 127.0.0.1:`port`; its log goes to `work/<name>.log`.
    pub fn spawn_command(name: &str, command: Command, work: &Path, port: u16) -> anyhow::Result<Self> {
        let process = Process::spawn(name, command, work.join(format!("{name}.log")))?;
        Ok(Self { process, metrics_url: format!("http://127.0.0.1:{port}/metrics") })
    }

    /// Waits until /readyz answers, failing with the controller's log if it exits first.
    pub async fn ready(&mut self) -> anyhow::Result<()> {
        let url = self.metrics_url.replace("/metrics", "/readyz");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.process.ensure_alive()?;
            if http_get(&url).await.is_ok_and(|(status, _)| status == 200) {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "{} not ready in 30s:\n{}",
                self.process.name,
                tail(&self.process.log, 30)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The sum of every series of a metric family on /metrics, whatever their labels (0 when absent).
    pub async fn metric_total(&self, family: &str) -> anyhow::Result<f64> {
        let (_, page) = http_get(&self.metrics_url).await?;
        let series = format!("{family}{{");
        Ok(page
            .lines()
            .filter(|line| line.starts_with(&series) || line.split(' ').next() == Some(family))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// The value of one counter series on /metrics (0 when absent).
    pub async fn metric(&self, series: &str) -> anyhow::Result<f64> {
        let (_, page) = http_get(&self.metrics_url).await?;
        Ok(page
            .lines()
            .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .map(|value| value.trim().parse())
            .transpose()?
            .unwrap_or(0.0))
    }
}

/// GET over loopback: /metrics and /readyz.
pub async fn http_get(url: &str) -> anyhow::Result<(u16, String)> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut response = ureq::get(&url).config().http_status_as_error(false).build().call()?;
        let status = response.status().as_u16();
        Ok((status, response.body_mut().read_to_string()?))
    })
    .await?
}

/// Creates the namespace if it does not exist (server-side apply, so a second call changes nothing).
pub async fn ensure_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    namespaces.patch(name, &PatchParams::apply("ecsrun-testbed"), &Patch::Apply(&body)).await?;
    Ok(())
}

/// The peers of a standalone harness run (hack/bench, hack/faults): a control plane and moto of its own,
/// with the CRD installed, and a work directory for their logs.
pub struct LocalStack {
    pub work: PathBuf,
    pub client: kube::Client,
    pub moto: Moto,
    pub control_plane: ControlPlane,
}

impl LocalStack {
    /// `purpose` names the work directory under .cache/.
    pub async fn start(purpose: &str) -> anyhow::Result<Self> {
        let work = repo_root().join(".cache").join(purpose).join(format!("run-{}", std::process::id()));
        std::fs::create_dir_all(&work)?;
        let control_plane = ControlPlane::start(&work)?;
        let moto = Moto::start(&work)?;
        let client = control_plane.client().await?;
        install_crds(&client).await.context("installing crds/")?;
        install_finalizer_policy(&client, &control_plane.kubeconfig).await.context("the finalizer policy")?;
        Ok(Self { work, client, moto, control_plane })
    }

    pub fn peers(&self, binary: PathBuf) -> bench::Peers<'_> {
        bench::Peers {
            client: self.client.clone(),
            kubeconfig: &self.control_plane.kubeconfig,
            moto: &self.moto,
            work: &self.work,
            binary,
            apiserver_pid: self.control_plane.apiserver_pid(),
        }
    }
}

/// The helm binary hack/setup builds (or `ECSRUN_HELM`).
pub fn helm_binary() -> anyhow::Result<PathBuf> {
    let helm = std::env::var("ECSRUN_HELM").map(PathBuf::from).unwrap_or_else(|_| repo_root().join(".cache/bin/helm"));
    ensure!(helm.exists(), "{} does not exist: hack/setup builds helm from its Go module", helm.display());
    Ok(helm)
}

/// Applies the chart's MutatingAdmissionPolicy that creates every run with the controller's finalizer on
/// (what a chart install gets), and waits until the API server applies it: a dry-run create comes back
/// with the finalizer.
pub async fn install_finalizer_policy(client: &kube::Client, kubeconfig: &Path) -> anyhow::Result<()> {
    let rendered = Command::new(helm_binary()?)
        .args(["template", "ecsrun"])
        .arg(repo_root().join("charts/ecsrun"))
        .args(["--set", "image.repository=ecsrun-controller", "--show-only", "templates/finalizer-policy.yaml"])
        .args(["--api-versions", "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy"])
        .output()
        .context("running helm template")?;
    ensure!(rendered.status.success(), "helm template: {}", String::from_utf8_lossy(&rendered.stderr));
    let mut apply = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(["apply", "--server-side", "--field-manager=ecsrun-testbed", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running kubectl")?;
    std::io::Write::write_all(&mut apply.stdin.take().context("kubectl's stdin")?, &rendered.stdout)?;
    let applied = apply.wait_with_output()?;
    ensure!(applied.status.success(), "kubectl apply: {}", String::from_utf8_lossy(&applied.stderr));
    let probe: ecsrun::api::EcsTaskRun = serde_json::from_value(serde_json::json!({
        "apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskRun",
        "metadata": {"name": "finalizer-probe", "namespace": "default"},
        "spec": {"cluster": "probe", "taskDefinition": "probe"}
    }))?;
    let api: Api<ecsrun::api::EcsTaskRun> = Api::namespaced(client.clone(), "default");
    let params = kube::api::PostParams { dry_run: true, ..Default::default() };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let created = api.create(&params, &probe).await?;
        if created.metadata.finalizers.unwrap_or_default().iter().any(|f| f == ecsrun::api::FINALIZER) {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "the finalizer MutatingAdmissionPolicy had no effect within 60 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Applies every CRD in `crds/` with server-side apply and waits until each is Established.
pub async fn install_crds(client: &kube::Client) -> anyhow::Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("crds"))?.collect::<Result<_, _>>()?;
    files.sort_by_key(|entry| entry.file_name());
    let mut crds = Vec::new();
    for file in files {
        crds.push(
            serde_yaml_ng::from_str(&std::fs::read_to_string(file.path())?)
                .with_context(|| format!("{}", file.path().display()))?,
        );
    }
    apply_crds(client, crds).await
}

/// Applies `crds` with server-side apply, then waits until each is Established.
pub async fn apply_crds(client: &kube::Client, crds: Vec<CustomResourceDefinition>) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for crd in crds {
        let name = crd.metadata.name.clone().context("CRD without a name")?;
        api.patch(&name, &PatchParams::apply("ecsrun-testbed").force(), &Patch::Apply(&crd)).await?;
        names.push(name);
    }
    for name in names {
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .with_context(|| format!("CRD {name} not Established within 30s"))??;
    }
    Ok(())
}

/// Creates or updates an object of `resource` (server-side apply, field manager `ecsrun-testbed`), in
/// `namespace` or cluster-wide; its apiVersion and kind are the resource's.
pub async fn apply_object(
    client: &kube::Client,
    resource: &kube::core::ApiResource,
    namespace: Option<&str>,
    mut object: serde_json::Value,
) -> anyhow::Result<()> {
    let name = object.pointer("/metadata/name").and_then(serde_json::Value::as_str).context("no metadata.name")?;
    let name = name.to_owned();
    object["apiVersion"] = serde_json::Value::String(resource.api_version.clone());
    object["kind"] = serde_json::Value::String(resource.kind.clone());
    let object: kube::api::DynamicObject = serde_json::from_value(object)?;
    let api: Api<kube::api::DynamicObject> = match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, resource),
        None => Api::all_with(client.clone(), resource),
    };
    api.patch(&name, &PatchParams::apply("ecsrun-testbed").force(), &Patch::Apply(&object))
        .await
        .with_context(|| format!("applying {} {name}", resource.kind))?;
    Ok(())
}
