//! Wiring the shell into kube-runtime: one watch over all namespaces (or one per listed namespace), the
//! tracker's sweeps and changes, readiness once every watch has listed its runs, and the gauges.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Client, Resource};
use tracing::{debug, info, warn};

use super::{Context, Error, FIELD_MANAGER, RunKey, error_policy, reconcile};
use crate::api::{EcsTaskRun, Phase};
use crate::cached::{CachedRun, cached_key};
use crate::ecs::Ecs;
use crate::ecs::task_events::consumer::{self, Change, Consumer};
use crate::ecs::task_events::queue::SqsQueue;
use crate::ecs::task_events::{EventSource, EventsSettings};

/// Fails fast, with the fix in the message, when a CRD is not installed (or RBAC forbids the watch): lists
/// runs and schedules where the controller will watch them.
pub async fn ensure_crd_installed(client: &Client, namespaces: &[String]) -> Result<(), kube::Error> {
    let scopes: Vec<Option<&str>> =
        if namespaces.is_empty() { vec![None] } else { namespaces.iter().map(|n| Some(n.as_str())).collect() };
    for scope in scopes {
        list_one::<EcsTaskRun>(client, scope).await?;
        list_one::<crate::api::EcsTaskSchedule>(client, scope).await?;
    }
    Ok(())
}

async fn list_one<K>(client: &Client, namespace: Option<&str>) -> Result<(), kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = match namespace {
        None => Api::all(client.clone()),
        Some(namespace) => Api::namespaced(client.clone(), namespace),
    };
    api.list(&ListParams::default().limit(1)).await.map(|_| ())
}

/// Runs the controller until `stop` turns true: one watch over all namespaces, or one per listed
/// namespace, plus the tracker's sweeps. Stopping takes no new work and waits for in-flight reconciles.
pub async fn run<E: Ecs>(
    ctx: Arc<Context<E>>,
    namespaces: Vec<String>,
    concurrency: u16,
    stop: tokio::sync::watch::Receiver<bool>,
    ready: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut changes = ctx.tracker.restart();
    // Dropped (and so aborted) with this future: a replica that loses the Lease stops sweeping at once.
    let mut background = tokio::task::JoinSet::new();
    background.spawn(ctx.tracker.clone().run(ctx.settings.tracker_tick));
    background.spawn(ctx.tenancy.clone().publish_policy_status(ctx.client.clone(), FIELD_MANAGER));
    let sweeping = ctx.settings.orphan_sweep.map(|sweep| (sweep, namespaces.clone()));
    let watched_namespaces = namespaces.clone();
    let watched: Vec<Option<String>> =
        if namespaces.is_empty() { vec![None] } else { namespaces.into_iter().map(Some).collect() };
    let mut stores = Vec::new();
    let mut controllers = Vec::new();
    let mut routes: HashMap<Option<String>, tokio::sync::mpsc::UnboundedSender<RunKey>> = HashMap::new();
    for namespace in watched {
        let api: Api<CachedRun> = match &namespace {
            None => Api::all(ctx.client.clone()),
            Some(namespace) => Api::namespaced(ctx.client.clone(), namespace),
        };
        let (route, task_changes) = tokio::sync::mpsc::unbounded_channel();
        routes.insert(namespace.clone(), route);
        let (reader, writer) = kube::runtime::reflector::store();
        stores.push(reader.clone());
        // Our own status writes change neither generation nor finalizers, so they do not retrigger a
        // reconcile. Deletion bumps the generation. The cache keeps runs packed (`CachedRun`).
        let runs = watcher(api, watcher::Config::default().any_semantic())
            .default_backoff()
            .reflect(writer)
            .applied_objects()
            .predicate_filter(predicates::generation.combine(predicates::finalizers), Default::default());
        let mut controller = Controller::for_stream(runs, reader.clone())
            .with_config(kube::runtime::controller::Config::default().concurrency(concurrency));
        if ctx.settings.kueue {
            // Kueue's admissions and evictions bring their runs back: the Workloads ecsrun made, by their
            // owner reference (metadata is enough: every change moves the resourceVersion).
            use kube::core::PartialObjectMeta;
            let workloads: Api<PartialObjectMeta<crate::queue::Workload>> = match &namespace {
                None => Api::all(ctx.client.clone()),
                Some(namespace) => Api::namespaced(ctx.client.clone(), namespace),
            };
            let selector = watcher::Config::default().labels(crate::queue::MANAGED_BY_SELECTOR);
            // A Workload whose run is gone (its creation raced the run's deletion) is let go here: no
            // reconcile of the run will come.
            let (store, sweeper) = (reader.clone(), ctx.clone());
            let workloads = watcher(workloads, selector).default_backoff().touched_objects().inspect(move |event| {
                let Ok(meta) = event else { return };
                let owned_by_cached_run = meta.metadata.owner_references.iter().flatten().any(|owner| {
                    let key =
                        ObjectRef::new(&owner.name).within(meta.metadata.namespace.as_deref().unwrap_or_default());
                    store.get(&key).is_some_and(|run| run.meta().uid.as_deref() == Some(owner.uid.as_str()))
                });
                let holding = meta.metadata.finalizers.iter().flatten().any(|f| f == crate::queue::RESOURCE_IN_USE);
                if holding && !owned_by_cached_run {
                    let workload = crate::queue::Workload {
                        metadata: meta.metadata.clone(),
                        spec: Default::default(),
                        status: None,
                    };
                    let ctx = sweeper.clone();
                    tokio::spawn(async move {
                        if let Err(error) = super::queue::release_orphaned(&ctx, &workload).await {
                            warn!(%error, "could not let an orphaned Workload go");
                        }
                    });
                }
            });
            controller = controller.owns_stream(workloads);
        }
        let controller = controller
            .reconcile_on(futures::stream::unfold(task_changes, |mut changes| async move {
                changes.recv().await.map(|key| (cached_key(&key), changes))
            }))
            .graceful_shutdown_on({
                let mut stop = stop.clone();
                async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                }
            })
            .run(reconcile_cached, error_policy_cached, ctx.clone())
            .for_each(|result| async move {
                if let Err(error) = result {
                    debug!(%error, "reconcile result");
                }
            });
        controllers.push(controller);
    }
    // The tracker reports runs of every namespace; each goes to the controller that watches it.
    background.spawn(async move {
        while let Some(key) = changes.recv().await {
            if let Some(route) = routes.get(&key.namespace).or_else(|| routes.get(&None)) {
                let _ = route.send(key);
            }
        }
    });
    // Ready once every watch has listed its runs: before that, a reconcile would decide on an empty cache.
    background.spawn({
        let stores = stores.clone();
        async move {
            for store in &stores {
                // kube's readiness signal wakes only its latest waiter (the controller's own applier waits
                // on it too): look again every 200 ms rather than wait for a wake-up that may not come.
                loop {
                    match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
                        Ok(Ok(())) => break,
                        Ok(Err(_)) => return,
                        Err(_) => continue,
                    }
                }
            }
            ready.store(true, std::sync::atomic::Ordering::Relaxed);
            info!("caches synced: ready");
        }
    });
    if let Some(events) = ctx.settings.task_events.clone() {
        for source in events.sources.clone() {
            background.spawn(follow_task_events(ctx.clone(), events.clone(), source, stop.clone()));
        }
    }
    if let Some((sweep, namespaces)) = sweeping {
        background.spawn(crate::orphans::run(ctx.sweeper(), stores.clone(), namespaces, sweep));
    }
    background.spawn(keep_gauges(stores, ctx.clone()));
    // Schedules create runs: on the leader only, as everything else that acts.
    let schedules = crate::schedule::wiring::ScheduleSettings {
        client: ctx.client.clone(),
        reporter: ctx.events.reporter().clone(),
        metrics: ctx.metrics.clone(),
        clock: ctx.settings.clock.clone(),
        concurrency,
    };
    let custom_runs = ctx.settings.tekton.then(|| {
        let (client, metrics, clock) = (ctx.client.clone(), ctx.metrics.clone(), ctx.settings.clock.clone());
        crate::tekton::wiring::run(client, metrics, clock, concurrency, watched_namespaces.clone(), stop.clone())
    });
    let schedules = crate::schedule::wiring::run(schedules, watched_namespaces, stop.clone());
    let custom_runs = async move {
        if let Some(custom_runs) = custom_runs {
            custom_runs.await;
        }
    };
    futures::future::join3(futures::future::join_all(controllers), schedules, custom_runs).await;
}

/// Consumes one queue of task state change events into the tracker, and says in the controller's own
/// Events when they start flowing and when they are lost (the region is polled meanwhile).
async fn follow_task_events<E: Ecs>(
    ctx: Arc<Context<E>>,
    events: EventsSettings,
    source: EventSource,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let client = SqsQueue::client(&source.region, events.sqs_endpoint_url.as_deref(), events.call_timeout).await;
    let queue = SqsQueue::new(client, source.queue_url.clone(), ctx.metrics.clone());
    let consumer =
        Consumer::new(queue, ctx.tracker.clone(), source.region.clone(), events.sweep, ctx.metrics.clone()).until(stop);
    let tell = |change: Change| {
        let (ctx, regarding, source) = (ctx.clone(), events.regarding.clone(), source.clone());
        let sweep = humantime::format_duration(events.sweep);
        async move {
            let (warning, reason, note) = match change {
                Change::None => return,
                Change::Flowing { again } => {
                    let note = format!(
                        "task state change events {}flow from {}: tasks in {} are described only after {sweep} without an event",
                        if again { "again " } else { "" },
                        source.queue_url,
                        source.region
                    );
                    info!(queue = %source.queue_url, region = %source.region, "task events flowing");
                    (false, TASK_EVENTS_FLOWING, note)
                }
                Change::Lost(error) => {
                    let note = format!(
                        "cannot read task state change events from {} ({}): {error}; tasks in {} are polled on their runs' intervals until it recovers",
                        source.queue_url,
                        error.label(),
                        source.region
                    );
                    warn!(queue = %source.queue_url, region = %source.region, %error, "task events lost; polling");
                    (true, TASK_EVENTS_UNAVAILABLE, note)
                }
            };
            if let Err(error) = ctx.events.publish(&regarding, warning, reason, &note).await {
                debug!(%error, reason, "could not publish an Event about task events");
            }
        }
    };
    consumer::run(consumer, events.receivers, tell).await;
}

/// Reasons of the controller's Events about task events.
pub const TASK_EVENTS_FLOWING: &str = "TaskEventsFlowing";
pub const TASK_EVENTS_UNAVAILABLE: &str = "TaskEventsUnavailable";

/// Decodes the cached run for the reconcile; a run the API types cannot read fails on its own.
async fn reconcile_cached<E: Ecs>(cached: Arc<CachedRun>, ctx: Arc<Context<E>>) -> Result<Action, Error> {
    match cached.decode() {
        Ok(run) => reconcile(Arc::new(run), ctx).await,
        Err(error) => {
            ctx.metrics.reconciles.with_label_values(&["error"]).inc();
            let error = Error::Undecodable(error.to_string());
            let note = format!("{error} ({}); retrying with backoff", error.label());
            if let Err(publish) = ctx.events.publish(&cached.object_ref(&()), true, "ReconcileError", &note).await {
                warn!(error = %publish, "could not publish event");
            }
            Err(error)
        }
    }
}

fn error_policy_cached<E: Ecs>(cached: Arc<CachedRun>, error: &Error, ctx: Arc<Context<E>>) -> Action {
    error_policy(&cached.key(), error, ctx)
}

async fn keep_gauges<E: Ecs>(stores: Vec<Store<CachedRun>>, ctx: Arc<Context<E>>) {
    const PHASES: [&str; 7] = ["New", "Pending", "Running", "Stopping", "Succeeded", "Failed", "Unknown"];
    loop {
        let now = ctx.settings.clock.now();
        let mut by_phase: HashMap<&'static str, i64> = PHASES.iter().map(|phase| (*phase, 0)).collect();
        let (mut oldest_pending, mut oldest_deleting, mut queued) = (0i64, 0i64, 0i64);
        let age =
            |since: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time| now.duration_since(since.0).as_secs().max(0);
        for run in stores.iter().flat_map(Store::state) {
            *by_phase.entry(phase_label(run.phase())).or_default() += 1;
            if let Some(deleted) = run.meta().deletion_timestamp.as_ref() {
                oldest_deleting = oldest_deleting.max(age(deleted));
            } else if run.queued() {
                // Waiting in a queue is what a queued run is for: not a run stuck before launch.
                queued += 1;
            } else if matches!(run.phase(), None | Some(Phase::Pending)) {
                oldest_pending = oldest_pending.max(run.meta().creation_timestamp.as_ref().map_or(0, age));
            }
        }
        let active = by_phase.iter().filter(|(phase, _)| !matches!(**phase, "Succeeded" | "Failed" | "Unknown"));
        ctx.metrics.active_runs.set(active.map(|(_, count)| count).sum());
        for (phase, count) in &by_phase {
            ctx.metrics.runs_by_phase.with_label_values(&[phase]).set(*count);
        }
        ctx.metrics.oldest_run_seconds.with_label_values(&["pending"]).set(oldest_pending);
        ctx.metrics.oldest_run_seconds.with_label_values(&["deleting"]).set(oldest_deleting);
        ctx.metrics.runs_queued.set(queued);
        ctx.metrics.tracked_tasks.set(ctx.tracker.len() as i64);
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// The `phase` label of a run: its phase, or `New` before the controller first wrote its status.
fn phase_label(phase: Option<Phase>) -> &'static str {
    match phase {
        None => "New",
        Some(Phase::Pending) => "Pending",
        Some(Phase::Running) => "Running",
        Some(Phase::Stopping) => "Stopping",
        Some(Phase::Succeeded) => "Succeeded",
        Some(Phase::Failed) => "Failed",
        Some(Phase::Unknown) => "Unknown",
    }
}
