//! The schedules' controller under kube-runtime, beside the runs' and on the leader only: one watch of
//! schedules and one of the runs schedules created (by their label: no other run is cached twice) per
//! watched namespace, or one each over all namespaces. A run that changes (created, finished, deleted)
//! brings its schedule back through its owner reference; the next slot, through the requeue.

use std::sync::Arc;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::events::Reporter;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tracing::debug;

use super::shell::{ScheduleContext, error_policy, reconcile};
use crate::api::{EcsTaskRun, EcsTaskSchedule, SCHEDULE_LABEL};
use crate::clock::Clock;
use crate::events::Publisher;
use crate::metrics::Metrics;

/// What the schedules' controller needs from the process.
pub struct ScheduleSettings {
    pub client: Client,
    pub reporter: Reporter,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    pub concurrency: u16,
}

/// Runs the schedules' controllers until `stop` turns true.
pub async fn run(settings: ScheduleSettings, namespaces: Vec<String>, stop: tokio::sync::watch::Receiver<bool>) {
    let watched: Vec<Option<String>> =
        if namespaces.is_empty() { vec![None] } else { namespaces.into_iter().map(Some).collect() };
    let mut controllers = Vec::new();
    for namespace in watched {
        let (schedules, runs): (Api<EcsTaskSchedule>, Api<EcsTaskRun>) = match &namespace {
            None => (Api::all(settings.client.clone()), Api::all(settings.client.clone())),
            Some(namespace) => (
                Api::namespaced(settings.client.clone(), namespace),
                Api::namespaced(settings.client.clone(), namespace),
            ),
        };
        let (reader, writer) = kube::runtime::reflector::store();
        let owned = watcher(runs, watcher::Config::default().labels(SCHEDULE_LABEL).any_semantic())
            .default_backoff()
            .modify(|run: &mut EcsTaskRun| run.managed_fields_mut().clear())
            .reflect(writer)
            .touched_objects();
        let ctx = Arc::new(ScheduleContext {
            client: settings.client.clone(),
            runs: reader,
            events: Publisher::new(settings.client.clone(), settings.reporter.clone(), settings.clock.clone()),
            metrics: settings.metrics.clone(),
            clock: settings.clock.clone(),
        });
        let controller = Controller::new(schedules, watcher::Config::default().any_semantic())
            .owns_stream(owned)
            .with_config(kube::runtime::controller::Config::default().concurrency(settings.concurrency))
            .graceful_shutdown_on({
                let mut stop = stop.clone();
                async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                }
            })
            .run(reconcile, error_policy, ctx)
            .for_each(|result| async move {
                if let Err(error) = result {
                    debug!(%error, "schedule reconcile result");
                }
            });
        controllers.push(controller);
    }
    futures::future::join_all(controllers).await;
}
