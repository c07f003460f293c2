//! End-to-end cases: the real `ecsrun-controller` against an upstream kube-apiserver + etcd and moto's
//! ECS server, observed through the Kubernetes API and the real aws-sdk-ecs client.
//!
//! One process brings the peers up once, runs every case on libtest's threads (`--test-threads`), prints
//! libtest's "N passed; M failed" line and tears the peers down. A peer that cannot be brought up fails
//! the whole run with the reason: every case runs or the run fails.

mod admission;
mod batch;
mod bench;
mod chart;
mod events;
mod examples;
mod faults;
mod gitops;
mod ha;
mod image;
mod lifecycle;
mod monitoring;
mod operating;
mod pipelines;
mod plugin;
mod policy;
mod preconditions;
mod queueing;
mod recovery;
mod release;
mod schedule_admission;
mod schedules;
mod task_events;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use ecsrun::api::EcsTaskRun;
use ecsrun_testbed::{
    ControlPlane, Controller, Moto, ensure_namespace, install_crds, install_finalizer_policy, repo_root,
};
use kube::api::{Api, Patch, PatchParams};
use libtest_mimic::{Arguments, Failed, Trial};

/// Namespaces the shared controller watches.
const SHARED_NAMESPACES: [&str; 5] =
    [examples::NAMESPACE, lifecycle::NAMESPACE, batch::NAMESPACE, operating::NAMESPACE, schedules::NAMESPACE];

/// What every case gets: clients for both peers and where the peers are.
pub struct Env {
    pub client: kube::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub moto: Moto,
    pub kubeconfig: PathBuf,
    pub work: PathBuf,
    pub runtime: tokio::runtime::Handle,
    /// /metrics of the controller that follows `task_events::NAMESPACE` through task events.
    pub task_events_metrics: String,
    /// Kueue's manager, for the queueing cases (stopped with the environment).
    pub kueue: ecsrun_testbed::kueue::Kueue,
    pub tekton: ecsrun_testbed::tekton::Tekton,
}

impl Env {
    pub fn runs(&self, namespace: &str) -> Api<EcsTaskRun> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// What the fleet benchmark and the fault suite need, with the controller binary Cargo built.
    pub fn peers(&self) -> anyhow::Result<ecsrun_testbed::bench::Peers<'_>> {
        Ok(ecsrun_testbed::bench::Peers {
            client: self.client.clone(),
            kubeconfig: &self.kubeconfig,
            moto: &self.moto,
            work: &self.work,
            binary: ecsrun_testbed::controller_binary()?,
            apiserver_pid: None,
        })
    }

    /// Starts a controller of a case's own (for counting its calls, or killing it).
    pub fn controller(&self, name: &str, namespaces: &[&str]) -> anyhow::Result<Controller> {
        Controller::start(name, &self.work, &self.kubeconfig, &self.moto, namespaces, &[])
    }

    /// An example manifest with its placeholder subnet and security group replaced by moto's.
    pub fn example(&self, file: &str) -> anyhow::Result<EcsTaskRun> {
        let text = std::fs::read_to_string(repo_root().join("examples").join(file))?;
        self.manifest(&text)
    }

    /// Parses a manifest after pointing its network configuration at moto's subnet and security group.
    pub fn manifest(&self, yaml: &str) -> anyhow::Result<EcsTaskRun> {
        self.parse(yaml)
    }

    /// Parses a manifest of any kind after pointing its network configuration at moto's.
    pub fn parse<T: serde::de::DeserializeOwned>(&self, yaml: &str) -> anyhow::Result<T> {
        let yaml = yaml
            .replace("subnet-0123456789abcdef0", &self.moto.fixtures.subnet)
            .replace("sg-0123456789abcdef0", &self.moto.fixtures.security_group);
        Ok(serde_yaml_ng::from_str(&yaml)?)
    }

    /// Creates (server-side applies) a run in `namespace`.
    pub async fn create(&self, namespace: &str, run: &EcsTaskRun) -> anyhow::Result<EcsTaskRun> {
        let name = run.metadata.name.as_deref().context("manifest without a name")?;
        let mut run = run.clone();
        run.metadata.namespace = Some(namespace.into());
        Ok(self.runs(namespace).patch(name, &PatchParams::apply("ecsrun-testbed"), &Patch::Apply(&run)).await?)
    }

    /// Every task ECS (moto) knows that the run with `uid` started, running or stopped.
    pub async fn tasks_started_by(&self, cluster: &str, uid: &str) -> anyhow::Result<Vec<String>> {
        self.tasks_with_started_by(cluster, &ecsrun::decide::started_by(uid)).await
    }

    /// The tasks ECS has for task index `index` of a run of several tasks.
    pub async fn tasks_of_index(&self, cluster: &str, uid: &str, index: u32) -> anyhow::Result<Vec<String>> {
        self.tasks_with_started_by(cluster, &ecsrun::decide::indexed_started_by(uid, index)).await
    }

    async fn tasks_with_started_by(&self, cluster: &str, started_by: &str) -> anyhow::Result<Vec<String>> {
        let mut arns = Vec::new();
        for status in [aws_sdk_ecs::types::DesiredStatus::Running, aws_sdk_ecs::types::DesiredStatus::Stopped] {
            let page =
                self.ecs.list_tasks().cluster(cluster).started_by(started_by).desired_status(status).send().await?;
            arns.extend(page.task_arns().iter().cloned());
        }
        Ok(arns)
    }

    /// The task as moto reports it.
    pub async fn task(&self, cluster: &str, arn: &str) -> anyhow::Result<aws_sdk_ecs::types::Task> {
        let output = self
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .tasks(arn)
            .include(aws_sdk_ecs::types::TaskField::Tags)
            .send()
            .await?;
        output.tasks().first().cloned().with_context(|| format!("moto does not know task {arn}"))
    }
}

/// A Fargate run in moto's `cluster`, on the placeholder network `Env::manifest` points at moto's;
/// `extra` adds spec fields (YAML indented by two spaces).
/// Container overrides of the launcher's `app` container (YAML under `spec:`).
pub fn app_env(vars: &[(&str, &str)]) -> String {
    let mut yaml = String::from("  overrides:\n    containerOverrides:\n      - name: app\n        environment:\n");
    for (name, value) in vars {
        yaml.push_str(&format!("          - name: {name}\n            value: \"{value}\"\n"));
    }
    yaml
}

pub fn fargate_run(name: &str, cluster: &str, task_definition: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: ecsrun.dev/v1alpha1
kind: EcsTaskRun
metadata:
  name: {name}
spec:
  cluster: {cluster}
  taskDefinition: {task_definition}
  launchType: FARGATE
  networkConfiguration:
    awsvpcConfiguration:
      subnets: [subnet-0123456789abcdef0]
      securityGroups: [sg-0123456789abcdef0]
{extra}"#
    )
}

pub type CaseFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// A named case; `run` gets the shared environment.
pub struct Case {
    pub name: String,
    pub run: Box<dyn FnOnce(Arc<Env>) -> CaseFuture + Send>,
}

pub fn case<F, Fut>(name: impl Into<String>, run: F) -> Case
where
    F: FnOnce(Arc<Env>) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    Case { name: name.into(), run: Box::new(move |env| Box::pin(run(env))) }
}

fn main() {
    let mut args = Arguments::from_args();
    // Cases spend their time waiting on the controller, not on the CPU: run them all at once unless told.
    args.test_threads = args.test_threads.or(Some(32));
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let started = Instant::now();
    // Listing (`--list`) must not start anything.
    let cases: Vec<Case> = [
        examples::cases(),
        lifecycle::cases(),
        batch::cases(),
        operating::cases(),
        plugin::cases(),
        events::cases(),
        recovery::cases(),
        ha::cases(),
        chart::cases(),
        gitops::cases(),
        admission::cases(),
        schedule_admission::cases(),
        policy::cases(),
        preconditions::cases(),
        faults::cases(),
        bench::cases(),
        schedules::cases(),
        task_events::cases(),
        monitoring::cases(),
        image::cases(),
        release::cases(),
        queueing::cases(),
        pipelines::cases(),
    ]
    .into_iter()
    .flatten()
    .collect();
    if args.list {
        let trials = cases.into_iter().map(|case| Trial::test(case.name, || Ok(()))).collect();
        libtest_mimic::run(&args, trials).exit();
    }

    let peers = runtime.block_on(bring_up());
    let (env, control_plane, shared_controller, task_events_controller) = match peers {
        Ok(peers) => peers,
        Err(error) => {
            eprintln!("e2e: FAILED to bring up the test environment: {error:#}");
            std::process::exit(1);
        }
    };
    eprintln!("e2e: environment ready after {:.1}s; running {} cases", started.elapsed().as_secs_f64(), cases.len());

    let trials = cases
        .into_iter()
        .map(|case| {
            let env = env.clone();
            let run = case.run;
            Trial::test(case.name, move || {
                let handle = env.runtime.clone();
                handle.block_on(run(env)).map_err(|error| Failed::from(format!("{error:#}")))
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    eprintln!("e2e: wall time {:.1}s", started.elapsed().as_secs_f64());
    if conclusion.has_failed() {
        eprintln!("e2e: logs of this run are in {}", env.work.display());
        eprintln!(
            "e2e: last lines of the shared controller:\n{}",
            ecsrun_testbed::tail(&shared_controller.process.log, 40)
        );
    }
    // exit() skips destructors: stop the controller, moto and the control plane first.
    let work = env.work.clone();
    drop(shared_controller);
    drop(task_events_controller);
    drop(env);
    drop(control_plane);
    drop(runtime);
    if !conclusion.has_failed() {
        let _ = std::fs::remove_dir_all(work);
    }
    conclusion.exit();
}

async fn bring_up() -> anyhow::Result<(Arc<Env>, ControlPlane, Controller, Controller)> {
    let work = repo_root().join(".cache/e2e").join(format!("run-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let (control_plane, moto) = tokio::try_join!(
        async {
            tokio::task::spawn_blocking({
                let work = work.clone();
                move || ControlPlane::start(&work)
            })
            .await?
        },
        async {
            tokio::task::spawn_blocking({
                let work = work.clone();
                move || Moto::start(&work)
            })
            .await?
        },
    )?;
    let client = control_plane.client().await?;
    install_crds(&client).await.context("installing crds/")?;
    install_finalizer_policy(&client, &control_plane.kubeconfig).await.context("the finalizer policy")?;
    for namespace in SHARED_NAMESPACES.iter().chain(&[
        recovery::NAMESPACE,
        recovery::RETARGET_NAMESPACE,
        batch::RESTART_NAMESPACE,
        batch::TEMPLATE_NAMESPACE,
        operating::USAGE_NAMESPACE,
        admission::NAMESPACE,
        ha::KILL_NAMESPACE,
        ha::TERM_NAMESPACE,
        ha::CUT_NAMESPACE,
        chart::NAMESPACE,
        chart::RELEASE_NAMESPACE,
        schedules::KILL_NAMESPACE,
        task_events::NAMESPACE,
        task_events::MISSING_NAMESPACE,
        queueing::TEAM_A,
        queueing::TEAM_B,
        queueing::PRIORITY,
        queueing::EVICTION,
        queueing::MISSING,
        queueing::FLAVORS,
        queueing::SCHEDULED,
        pipelines::PIPELINE,
        pipelines::FAILING,
        pipelines::CANCEL,
        pipelines::TIMEOUT,
        pipelines::EXAMPLES,
    ]) {
        ensure_namespace(&client, namespace).await?;
    }
    let (kueue, tekton) = tokio::try_join!(
        async {
            ecsrun_testbed::kueue::Kueue::start(&work, &control_plane.kubeconfig, &client)
                .await
                .context("Kueue's manager (queueing cases)")
        },
        async {
            ecsrun_testbed::tekton::Tekton::start(&work, &control_plane.kubeconfig, &client)
                .await
                .context("Tekton's controller (pipelines cases)")
        },
    )?;
    let ecs = moto.ecs().await;
    // The only consumer of the events cluster's queue: a second would take messages meant for this one.
    let mut task_events = task_events::controller(&work, &control_plane.kubeconfig, &moto)?;
    let task_events_metrics = task_events.metrics_url.clone();
    let env = Arc::new(Env {
        client,
        ecs,
        moto,
        kubeconfig: control_plane.kubeconfig.clone(),
        work,
        runtime: tokio::runtime::Handle::current(),
        task_events_metrics,
        kueue,
        tekton,
    });
    let mut shared = env.controller("controller-shared", &SHARED_NAMESPACES)?;
    shared.ready().await?;
    task_events.ready().await?;
    Ok((env, control_plane, shared, task_events))
}
