//! The `ecsrun-controller` binary: flags, logging, clients, endpoints and the controller.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use aws_config::meta::region::ProvideRegion;
use clap::Parser;
use ecsrun::config::{Config, LogFormat};
use ecsrun::ecs::aws::{AwsEcs, AwsSettings};
use ecsrun::metrics::Metrics;
use ecsrun::reconcile::{self, Context, Settings};
use kube::runtime::events::Reporter;
use tracing::info;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt().json().with_env_filter(filter).init(),
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }

    let client = kube::Client::try_default().await.context("connecting to the Kubernetes API")?;
    reconcile::ensure_crd_installed(&client).await.context(
        "listing EcsTaskRuns failed: is the CRD installed? (kubectl apply -f crds/) Does the controller's RBAC allow it?",
    )?;

    let metrics = Arc::new(Metrics::new()?);
    let ready = Arc::new(AtomicBool::new(false));
    tokio::spawn(ecsrun::http::serve(config.metrics_addr, metrics.clone(), ready.clone()));

    let default_region = match config.default_region.clone() {
        Some(region) => Some(region),
        None => {
            aws_config::default_provider::region::default_provider().region().await.map(|region| region.to_string())
        }
    };
    let ecs = Arc::new(AwsEcs::new(
        AwsSettings {
            ecs_endpoint_url: config.ecs_endpoint_url.clone(),
            sts_endpoint_url: config.sts_endpoint_url.clone(),
            call_timeout: config.ecs_call_timeout,
        },
        metrics.clone(),
    ));
    let reporter = Reporter { controller: config.controller_name.clone(), instance: config.instance.clone() };
    let settings = Settings {
        default_region,
        default_poll_interval: config.default_poll_interval,
        stop_poll_interval: std::time::Duration::from_secs(5),
    };
    let ctx = Arc::new(Context::new(client, ecs, config.describe_batch_window, reporter, metrics, settings));

    info!(namespaces = ?config.watch_namespaces, region = ?ctx.settings.default_region, "ecsrun-controller starting");
    ready.store(true, Ordering::Relaxed);
    reconcile::run(ctx, config.watch_namespaces, config.concurrency).await;
    info!("ecsrun-controller stopped");
    Ok(())
}
