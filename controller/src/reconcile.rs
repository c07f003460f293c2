//! The Kubernetes shell around `decide`: one `finalizer()` call per reconcile (kube-runtime's, guarded by the
//! run's uid: `finalizer`) with Apply and Cleanup as
//! separate functions. Apply interprets the run's effects (`effects`: one path for every run, whatever its
//! count), observing lanes as they ask (`observe`) with the run's credentials (`credentials`); Cleanup
//! stops a deleted run's tasks (`cleanup`); `wiring` puts it all under kube-runtime. The shell makes no
//! policy decisions of its own.
//!
//! Runs come back to the queue when their object changes, when the tracker reports a change of their
//! task, or at a time the decision asked for (deadline, retry backoff); never to poll ECS.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::runtime::finalizer::Event as Finalizer;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use tracing::{Instrument, debug, info_span, warn};

use crate::api::{EcsTaskRun, FINALIZER};
use crate::clock::Clock;
use crate::decide;
use crate::ecs::templates::TemplateRegistry;
use crate::ecs::tracker::Tracker;
use crate::ecs::{Ecs, Identity};
use crate::events::Publisher;
use crate::metrics::Metrics;
use crate::tenancy::Tenancy;

/// How the tracker knows a run.
pub type RunKey = ObjectRef<EcsTaskRun>;

pub use crate::kube_client::FIELD_MANAGER;

/// The deadline of one reconcile whose ECS calls are each bounded by `ecs_call_timeout`: room for the
/// slowest path (four ECS calls back to back at their own timeout) plus Kubernetes.
pub fn reconcile_timeout(ecs_call_timeout: Duration) -> Duration {
    ecs_call_timeout * 4 + Duration::from_secs(30)
}

/// Controller-wide settings the shell needs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub default_region: Option<String>,
    pub default_poll_interval: Duration,
    /// How often deletion checks whether the task reached STOPPED.
    pub stop_poll_interval: Duration,
    /// Deadline of one whole reconcile, Kubernetes calls included (ECS calls have their own).
    pub reconcile_timeout: Duration,
    /// How often the tracker checks which tasks are due to be described.
    pub tracker_tick: Duration,
    /// Where decisions read the time.
    pub clock: Clock,
    /// The orphan sweep, if on (the leader runs it).
    pub orphan_sweep: Option<crate::orphans::OrphanSweep>,
    /// ECS's task state change events, if configured (the leader consumes them).
    pub task_events: Option<crate::ecs::task_events::EventsSettings>,
    /// Runs labelled `kueue.x-k8s.io/queue-name` wait for Kueue's admission (`--kueue`); off, the label
    /// means nothing to ecsrun.
    pub kueue: bool,
    /// Tekton's CustomRuns naming EcsTaskRun are run (`--tekton`).
    pub tekton: bool,
}

pub struct Context<E> {
    pub client: Client,
    pub ecs: Arc<E>,
    pub tracker: Tracker<RunKey, E>,
    pub events: Publisher,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    /// EcsRunPolicies and the external ID of assumed roles.
    pub tenancy: Arc<Tenancy>,
    /// Revisions registered for task definition templates.
    pub templates: TemplateRegistry,
    /// Consecutive failed reconciles per object, for the error backoff; cleared by a good reconcile.
    failures: Mutex<HashMap<ObjectRef<EcsTaskRun>, u32>>,
    /// The identity last read from each secretRef Secret (namespace, name). Deleting a namespace deletes
    /// its Secrets at once, while its runs wait on their finalizers for their tasks to be stopped: those
    /// StopTasks are signed with the credentials last read.
    secret_identities: Mutex<HashMap<(String, String), Identity>>,
}

impl<E: Ecs> Context<E> {
    /// What the orphan sweep needs of this controller.
    pub fn sweeper(&self) -> crate::orphans::Sweeper<E> {
        let tracker = self.tracker.clone();
        crate::orphans::Sweeper {
            ecs: self.ecs.clone(),
            targets: Arc::new(move || tracker.targets()),
            clock: self.settings.clock.clone(),
            cluster_id: self.tenancy.cluster_id().map(str::to_owned),
            metrics: self.metrics.clone(),
        }
    }

    /// `describe_batch_size`: ARNs per DescribeTasks call of the tracker (100; 1 polls like per-task pollers).
    pub fn new(
        client: Client,
        ecs: Arc<E>,
        describe_batch_size: usize,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        settings: Settings,
        tenancy: Arc<Tenancy>,
    ) -> Self {
        Self {
            tenancy,
            events: Publisher::new(client.clone(), reporter, settings.clock.clone()),
            tracker: Tracker::new(ecs.clone(), describe_batch_size, settings.clock.clone()),
            client,
            ecs,
            metrics,
            settings,
            failures: Mutex::default(),
            secret_identities: Mutex::default(),
            templates: TemplateRegistry::default(),
        }
    }

    async fn publish(&self, run: &EcsTaskRun, event: &decide::Event) {
        if let Err(error) = self.events.publish(&run.object_ref(&()), event.warning, event.reason, &event.note).await {
            warn!(%error, reason = %event.reason, "could not publish event");
        }
    }
}

/// Reconciles one `EcsTaskRun`.
pub async fn reconcile<E: Ecs>(run: Arc<EcsTaskRun>, ctx: Arc<Context<E>>) -> Result<Action, Error> {
    let namespace = run.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let span = info_span!("reconcile", namespace = %namespace, name = %run.name_any());
    let started = Instant::now();
    let api: Api<EcsTaskRun> = Api::namespaced(ctx.client.clone(), &namespace);
    let reconciled = finalizer::finalizer(&api, FINALIZER, run.clone(), |event| async {
        match event {
            Finalizer::Apply(run) => effects::Shell::new(&run, &namespace, &api, &ctx).apply().await,
            Finalizer::Cleanup(run) => {
                let cleaned = cleanup::cleanup(&run, &namespace, &api, &ctx).await;
                if let Err(error) = &cleaned {
                    effects::Shell::new(&run, &namespace, &api, &ctx).record_cleanup_held_up(error).await;
                }
                cleaned
            }
        }
    })
    .instrument(span);
    // Abandoning a reconcile midway is safe: a task launched but not yet recorded is adopted next time.
    let result = match tokio::time::timeout(ctx.settings.reconcile_timeout, reconciled).await {
        // A copy the cache still held after the deletion went through (a task's change woke it first):
        // the finalizer's removal finds the run gone, which is what it was for.
        Ok(Err(kube::runtime::finalizer::Error::RemoveFinalizer(error)))
            if error::not_found(&error, &run.name_any()) =>
        {
            Ok(Action::await_change())
        }
        Ok(result) => result.map_err(|error| Error::Finalizer(Box::new(error))),
        Err(_) => Err(Error::Timeout(ctx.settings.reconcile_timeout)),
    };
    let outcome = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics.reconciles.with_label_values(&[outcome]).inc();
    ctx.metrics.reconcile_duration.with_label_values(&[outcome]).observe(started.elapsed().as_secs_f64());
    match &result {
        Ok(_) => {
            ctx.failures.lock().unwrap_or_else(PoisonError::into_inner).remove(&crate::cached::run_key(run.meta()));
        }
        // Waiting for a task to stop is progress, and a stale copy is reconciled again: not problems.
        Err(error) if error.is_routine() => {}
        // Retried errors show on the run itself, not only in the controller's log. Repeats of the same
        // note fold into one Event with a count; another cause is an Event of its own.
        Err(error) => {
            let event = decide::Event {
                warning: true,
                reason: "ReconcileError",
                note: format!("{} ({}); retrying with backoff", error.cause(), error.label()),
            };
            ctx.publish(&run, &event).await;
        }
    }
    result
}

/// Requeues a failed reconcile with a per-object exponential backoff (throttles wait longer).
pub fn error_policy<E: Ecs>(key: &RunKey, error: &Error, ctx: Arc<Context<E>>) -> Action {
    let label = error.label();
    if error.is_routine() {
        debug!(namespace = ?key.namespace, name = %key.name, %error, label, "reconciled again shortly");
        // Nothing to look at before the slot has settled.
        if let Error::SlotSettling(left) = error.inner() {
            return Action::requeue(*left);
        }
        return Action::requeue(ctx.settings.stop_poll_interval);
    }
    ctx.metrics.reconcile_errors.with_label_values(&[label]).inc();
    let failures = {
        let mut failures = ctx.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let count = failures.entry(key.clone()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    };
    let base = if error.is_throttle() { Duration::from_secs(20) } else { Duration::from_secs(2) };
    let backoff =
        base.saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(10))).min(Duration::from_secs(300));
    warn!(namespace = ?key.namespace, name = %key.name, error = %error, label, failures, retry_in_s = backoff.as_secs(), "reconcile failed");
    Action::requeue(with_jitter(backoff, key.namespace.as_deref().unwrap_or_default(), &key.name))
}

/// Spreads requeues by up to 10% so runs created together do not poll together forever. Each run's share
/// is its own (from its namespace and name), not drawn afresh: its rhythm stays steady, and the simulator
/// replays a seed to the same trace.
fn with_jitter(duration: Duration, namespace: &str, name: &str) -> Duration {
    let mut hasher = std::hash::DefaultHasher::new();
    (namespace, name).hash(&mut hasher);
    let share = (hasher.finish() % 1000) as f64 / 10_000.0;
    duration.mul_f64(1.0 + share)
}

mod cleanup;
mod credentials;
mod effects;
mod error;
mod finalizer;
mod observe;
pub mod queue;
mod slots;
mod wiring;

use credentials::{actor, region};
pub use error::Error;
pub use wiring::{ensure_crd_installed, run};

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::with_jitter;

    #[test]
    fn a_runs_requeues_keep_one_share_of_jitter_and_runs_created_together_spread() {
        let poll = Duration::from_secs(10);
        let shares: Vec<Duration> = (0..20).map(|n| with_jitter(poll, "team-a", &format!("run-{n}"))).collect();
        assert!(shares.iter().all(|after| *after >= poll && *after < poll.mul_f64(1.1)), "{shares:?}");
        assert_eq!(with_jitter(poll, "team-a", "run-0"), shares[0], "one run, one share");
        let mut distinct = shares.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() > 15, "twenty runs created together poll at {} moments", distinct.len());
    }
}
