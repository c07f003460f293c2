//! The CustomRuns' controller under kube-runtime, beside the runs' and on the leader only: one watch of
//! CustomRuns and one of the runs made for them (by their label), per watched namespace or over all. A
//! run that changes brings its CustomRun back through its owner reference.

use std::sync::Arc;

use futures::StreamExt;
use kube::Client;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::{WatchStreamExt, watcher};
use tracing::debug;

use super::shell::{TektonContext, error_policy, reconcile};
use super::{CUSTOM_RUN_LABEL, CustomRun};
use crate::api::EcsTaskRun;
use crate::clock::Clock;
use crate::metrics::Metrics;

/// Runs the CustomRuns' controllers until `stop` turns true.
pub async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    clock: Clock,
    concurrency: u16,
    namespaces: Vec<String>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let watched: Vec<Option<String>> =
        if namespaces.is_empty() { vec![None] } else { namespaces.into_iter().map(Some).collect() };
    let ctx = Arc::new(TektonContext { client: client.clone(), metrics, clock });
    let mut controllers = Vec::new();
    for namespace in watched {
        let (custom_runs, runs): (Api<CustomRun>, Api<EcsTaskRun>) = match &namespace {
            None => (Api::all(client.clone()), Api::all(client.clone())),
            Some(namespace) => (Api::namespaced(client.clone(), namespace), Api::namespaced(client.clone(), namespace)),
        };
        let owned = watcher(runs, watcher::Config::default().labels(CUSTOM_RUN_LABEL).any_semantic())
            .default_backoff()
            .touched_objects();
        let controller = Controller::new(custom_runs, watcher::Config::default().any_semantic())
            .owns_stream(owned)
            .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
            .graceful_shutdown_on({
                let mut stop = stop.clone();
                async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                }
            })
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|result| async move {
                if let Err(error) = result {
                    debug!(%error, "CustomRun reconcile result");
                }
            });
        controllers.push(controller);
    }
    futures::future::join_all(controllers).await;
}
