//! The middle tier: the controller's real reconcile (the effect interpreter, the tracker, the finalizer,
//! Events) against in-memory fakes of the Kubernetes API and of ECS, in milliseconds. Time is the test's:
//! decisions read a clock the test moves, and the tracker describes tasks when the test sweeps.

pub mod chaos;
pub mod ecs;
pub mod kube_api;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ecsrun::api::{EcsTaskRun, Phase};
use ecsrun::clock::Clock;
use ecsrun::events::Publisher;
use ecsrun::metrics::Metrics;
use ecsrun::reconcile::{self, Context, Error, RunKey, Settings};
use ecsrun::schedule::shell::ScheduleContext;
use ecsrun::tenancy::Tenancy;
use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use tokio::sync::mpsc::UnboundedReceiver;

pub use ecs::FakeEcs;
pub use kube_api::FakeApi;

/// The test harness: a controller's shell with its peers faked, and a clock the test moves.
pub struct Harness {
    pub api: FakeApi,
    pub ecs: Arc<FakeEcs>,
    pub ctx: Arc<Context<FakeEcs>>,
    now: Arc<Mutex<Timestamp>>,
    changes: Mutex<UnboundedReceiver<RunKey>>,
}

/// When the fake clock starts.
pub const EPOCH: i64 = 1_800_000_000;

/// A controller's context over `api` and `ecs` (whatever wraps the fake ECS), reading the time from `now`;
/// `instance` names it in Events. Policies off.
pub async fn context<E: ecsrun::ecs::Ecs>(
    api: &FakeApi,
    ecs: Arc<E>,
    now: &Arc<Mutex<Timestamp>>,
    instance: &str,
) -> anyhow::Result<Context<E>> {
    let tenancy = Tenancy::off("ecsrun:test-cluster:{namespace}");
    context_with(api, ecs, now, instance, tenancy)
}

/// As [`context`], with the EcsRunPolicies and namespaces of `tenancy`.
pub fn context_with<E: ecsrun::ecs::Ecs>(
    api: &FakeApi,
    ecs: Arc<E>,
    now: &Arc<Mutex<Timestamp>>,
    instance: &str,
    tenancy: Tenancy,
) -> anyhow::Result<Context<E>> {
    let settings = settings(now);
    context_from(api, ecs, instance, tenancy, settings)
}

/// The settings of the middle tier's controller: its clock `now`, the run reconcile cut short at 10 s.
pub fn settings(now: &Arc<Mutex<Timestamp>>) -> Settings {
    let clock = {
        let now = now.clone();
        Clock::from_fn(move || *now.lock().unwrap_or_else(PoisonError::into_inner))
    };
    Settings {
        default_region: Some("eu-west-1".into()),
        default_poll_interval: Duration::from_secs(30),
        stop_poll_interval: Duration::from_secs(5),
        reconcile_timeout: Duration::from_secs(10),
        tracker_tick: Duration::from_millis(5),
        clock,
        orphan_sweep: None,
        task_events: None,
        kueue: false,
        tekton: false,
    }
}

/// A controller's context with `settings`.
pub fn context_from<E: ecsrun::ecs::Ecs>(
    api: &FakeApi,
    ecs: Arc<E>,
    instance: &str,
    tenancy: Tenancy,
    settings: Settings,
) -> anyhow::Result<Context<E>> {
    let client = api.client();
    let reporter = Reporter { controller: "ecsrun-controller".into(), instance: Some(instance.into()) };
    let metrics = Arc::new(Metrics::new()?);
    Ok(Context::new(client, ecs, 100, reporter, metrics, settings, Arc::new(tenancy)))
}

/// The schedules' side of the controller `ctx`, deciding on `runs` (a store of the runs as its watch has
/// them), as the binary wires it.
pub fn schedule_context<E>(ctx: &Context<E>, runs: Store<EcsTaskRun>) -> ScheduleContext {
    ScheduleContext {
        client: ctx.client.clone(),
        runs,
        events: Publisher::new(ctx.client.clone(), ctx.events.reporter().clone(), ctx.settings.clock.clone()),
        metrics: ctx.metrics.clone(),
        clock: ctx.settings.clock.clone(),
    }
}

/// A watch store whose first list returned `objects`, and its writer (the store stays ready while the
/// writer lives).
pub fn listed_store<K>(objects: impl IntoIterator<Item = K>) -> (Store<K>, Writer<K>)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, mut writer) = kube::runtime::reflector::store::<K>();
    writer.apply_watcher_event(&Event::Init);
    for object in objects {
        writer.apply_watcher_event(&Event::InitApply(object));
    }
    writer.apply_watcher_event(&Event::InitDone);
    (reader, writer)
}

impl Harness {
    pub async fn new() -> anyhow::Result<Self> {
        let ecs = Arc::new(FakeEcs::default());
        ecs.set_now(Timestamp::from_second(EPOCH)?);
        Self::with(FakeApi::default(), ecs, Arc::new(Mutex::new(Timestamp::from_second(EPOCH)?))).await
    }

    /// A controller that queues runs under Kueue (`--kueue`): Kueue's part is the test's, through the API.
    pub async fn queueing() -> anyhow::Result<Self> {
        let ecs = Arc::new(FakeEcs::default());
        ecs.set_now(Timestamp::from_second(EPOCH)?);
        let (api, now) = (FakeApi::default(), Arc::new(Mutex::new(Timestamp::from_second(EPOCH)?)));
        let settings = Settings { kueue: true, ..settings(&now) };
        let tenancy = Tenancy::off("ecsrun:test-cluster:{namespace}");
        let ctx = Arc::new(context_from(&api, ecs.clone(), "middle", tenancy, settings)?);
        let changes = ctx.tracker.restart();
        Ok(Self { api, ecs, ctx, now, changes: Mutex::new(changes) })
    }

    /// Another controller process over the same API, ECS and clock: nothing carried over but what they
    /// hold (a restart, or a new leader).
    pub async fn restart(&self) -> anyhow::Result<Self> {
        Self::with(self.api.clone(), self.ecs.clone(), self.now.clone()).await
    }

    async fn with(api: FakeApi, ecs: Arc<FakeEcs>, now: Arc<Mutex<Timestamp>>) -> anyhow::Result<Self> {
        let ctx = Arc::new(context(&api, ecs.clone(), &now, "middle").await?);
        let changes = ctx.tracker.restart();
        Ok(Self { api, ecs, ctx, now, changes: Mutex::new(changes) })
    }

    pub fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the clock (decisions' and ECS's timestamps) on.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = now.checked_add(by).expect("the clock stays in range");
        self.ecs.set_now(*now);
        self.api.set_now(*now);
    }

    /// The next ECS call of `operation` takes `by` (the clock moves on while it is made).
    pub fn stall_next(&self, operation: &'static str, by: Duration) {
        self.ecs.stall_next(operation, by, self.now.clone());
    }

    /// Creates a run from a manifest's spec (YAML of the spec alone).
    pub fn create(&self, namespace: &str, name: &str, spec_yaml: &str) -> anyhow::Result<EcsTaskRun> {
        let spec = serde_yaml_ng::from_str(spec_yaml)?;
        Ok(self.api.create_run(namespace, &EcsTaskRun::new(name, spec), self.now()))
    }

    pub fn run(&self, namespace: &str, name: &str) -> Option<EcsTaskRun> {
        self.api.run(namespace, name)
    }

    /// The run's status as the API has it (default while it has none).
    pub fn status(&self, namespace: &str, name: &str) -> ecsrun::api::EcsTaskRunStatus {
        self.run(namespace, name).and_then(|run| run.status).unwrap_or_default()
    }

    /// One reconcile of the run as the API has it now, as the controller's queue would start it. A run
    /// that is gone is not reconciled (Ok(None)).
    pub async fn reconcile(&self, namespace: &str, name: &str) -> Result<Option<Action>, Error> {
        let Some(run) = self.api.run(namespace, name) else { return Ok(None) };
        reconcile::reconcile(Arc::new(run), self.ctx.clone()).await.map(Some)
    }

    /// One reconcile of `run` as given: a copy the cache may still hold after the API moved on.
    pub async fn reconcile_copy(&self, run: EcsTaskRun) -> Result<Action, Error> {
        reconcile::reconcile(Arc::new(run), self.ctx.clone()).await
    }

    /// The tracker describes every task it follows now, and says which runs' tasks changed.
    pub async fn sweep(&self) -> Vec<RunKey> {
        self.ctx.tracker.sweep_now().await;
        let mut changes = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut changed = Vec::new();
        while let Ok(key) = changes.try_recv() {
            changed.push(key);
        }
        changed
    }

    /// Moves the clock by `by` and sweeps (the tracker's changes bring runs back); says whether run `name`
    /// has finished.
    pub async fn pass(&self, namespace: &str, name: &str, by: Duration) -> bool {
        self.advance(by);
        self.sweep().await;
        self.api
            .run(namespace, name)
            .and_then(|run| run.status)
            .and_then(|s| s.task.phase)
            .is_some_and(Phase::is_terminal)
    }

    /// Sweeps and reconciles `name` `times` times, moving the clock by `step` in between: what the queue
    /// does for a run whose task it follows.
    pub async fn follow(&self, namespace: &str, name: &str, times: usize, step: Duration) -> Result<(), Error> {
        for _ in 0..times {
            self.advance(step);
            self.sweep().await;
            self.reconcile(namespace, name).await?;
        }
        Ok(())
    }
}
