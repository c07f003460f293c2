//! The `ecsrun-controller` binary: flags, logging, clients, endpoints and the controller.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use aws_config::meta::region::ProvideRegion;
use clap::Parser;
use ecsrun::clock::Clock;
use ecsrun::config::{Config, LogFormat};
use ecsrun::ecs::aws::{AwsEcs, AwsSettings};
use ecsrun::ecs::fence::{Fence, Fenced};
use ecsrun::ecs::limit::RateLimited;
use ecsrun::leader::{self, LeaseSettings};
use ecsrun::metrics::Metrics;
use ecsrun::reconcile::{self, Context, Settings};
use ecsrun::tenancy::Tenancy;
use kube::runtime::events::Reporter;
use tracing::info;
use tracing_subscriber::EnvFilter;

/// jemalloc gives a fleet's freed memory back where glibc's per-thread arenas kept it.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt().json().with_env_filter(filter).init(),
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }

    let metrics = Arc::new(Metrics::new()?);
    let kube_config = kube::Config::infer().await.context("finding the Kubernetes API (in-cluster or KUBECONFIG)")?;
    let client =
        ecsrun::kube_client::instrumented(kube_config, metrics.clone()).context("connecting to the Kubernetes API")?;
    reconcile::ensure_crd_installed(&client, &config.watch_namespaces).await.context(
        "listing EcsTaskRuns and EcsTaskSchedules failed: are the CRDs installed? (kubectl apply --server-side -f crds/) Does the controller's RBAC allow it?",
    )?;

    let ready = Arc::new(AtomicBool::new(false));
    tokio::spawn(ecsrun::http::serve(config.metrics_addr, metrics.clone(), ready.clone()));

    let default_region = match config.default_region.clone() {
        Some(region) => Some(region),
        None => {
            aws_config::default_provider::region::default_provider().region().await.map(|region| region.to_string())
        }
    };
    // With leader election, nothing is started or stopped until the Lease is confirmed held.
    let fence = if config.leader_elect { Fence::closed() } else { Fence::none() };
    let aws = AwsEcs::new(
        AwsSettings {
            ecs_endpoint_url: config.ecs_endpoint_url.clone(),
            sts_endpoint_url: config.sts_endpoint_url.clone(),
            logs_endpoint_url: config.logs_endpoint_url.clone(),
            call_timeout: config.ecs_call_timeout,
            session_tags: config.sts_session_tags,
            fence: fence.clone(),
        },
        metrics.clone(),
    );
    // The fence inside the ceiling: a request that waited for tokens is judged on the fence as it is then.
    let ecs = Arc::new(RateLimited::new(Fenced::new(aws, fence.clone()), config.ceilings(), metrics.clone()));
    // Unique per replica: the Lease holder identity and the Events' reportingInstance.
    let identity = config
        .instance
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("ecsrun-controller-{}", std::process::id()));
    let reporter = Reporter { controller: config.controller_name.clone(), instance: Some(identity.clone()) };
    let task_events = config.task_events(default_region.as_deref(), &identity).map_err(anyhow::Error::msg)?;
    let settings = Settings {
        default_region,
        default_poll_interval: config.default_poll_interval,
        stop_poll_interval: std::time::Duration::from_secs(5),
        reconcile_timeout: ecsrun::reconcile::reconcile_timeout(config.ecs_call_timeout),
        tracker_tick: std::time::Duration::from_secs(1),
        clock: Clock::default(),
        orphan_sweep: config
            .orphan_sweep_interval
            .map(|interval| ecsrun::orphans::OrphanSweep { interval, grace: config.orphan_grace }),
        task_events,
        kueue: config.kueue,
        tekton: config.tekton,
    };
    let tenancy =
        Tenancy::start(&client, config.policy_mode, config.cluster_id.clone(), &config.external_id_format).await?;
    let batch_size = usize::from(config.describe_batch_size);
    let ctx =
        Arc::new(Context::new(client.clone(), ecs, batch_size, reporter, metrics.clone(), settings, Arc::new(tenancy)));
    let lease = config.leader_elect.then(|| LeaseSettings {
        namespace: config.leader_elect_namespace.clone(),
        name: config.leader_elect_lease.clone(),
        identity,
        duration: config.leader_elect_duration,
    });

    // The effective flags hold endpoints, regions and formats: no secret is ever a flag.
    info!(version = env!("CARGO_PKG_VERSION"), commit = ecsrun::metrics::COMMIT, flags = ?config, region = ?ctx.settings.default_region, "ecsrun-controller starting");
    // Ready means able to serve: a follower waiting for the Lease is ready; a replica that reconciles is
    // ready once its watches have listed every run (`reconcile::run` says so).
    if config.leader_elect {
        ready.store(true, Ordering::Relaxed);
    }
    let work =
        |stop| reconcile::run(ctx.clone(), config.watch_namespaces.clone(), config.concurrency, stop, ready.clone());
    leader::supervise(client, lease, fence, metrics, leader::shutdown_signal(), config.shutdown_timeout, work).await?;
    info!("ecsrun-controller stopped");
    Ok(())
}
