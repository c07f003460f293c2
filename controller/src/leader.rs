//! Who reconciles, and until when: leader election on a coordination.k8s.io Lease (kube-lease-manager)
//! and graceful shutdown. With two replicas only the Lease holder reconciles and writes status; losing
//! the Lease stops its work at once, and SIGTERM stops taking new work, lets in-flight reconciles finish
//! within a deadline, then releases the Lease so a follower takes over without waiting for it to expire.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("leader election on Lease {namespace}/{name}: {source}")]
    Lease {
        namespace: String,
        name: String,
        #[source]
        source: LeaseManagerError,
    },
    #[error("the leader election task stopped; the Lease state is unknown")]
    ElectionEnded,
}

impl Error {
    pub fn label(&self) -> &'static str {
        match self {
            Error::Lease { .. } => "lease",
            Error::ElectionEnded => "lease_election_ended",
        }
    }
}

#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// Unique per replica: the pod name.
    pub identity: String,
    pub duration: Duration,
}

/// A running election; `leading` follows whether this process holds the Lease.
struct Election {
    leading: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
}

impl Election {
    async fn start(client: Client, settings: &LeaseSettings) -> Result<Self, Error> {
        let seconds = settings.duration.as_secs().max(3);
        let manager = LeaseManagerBuilder::new(client, &settings.name)
            .with_namespace(&settings.namespace)
            .with_identity(&settings.identity)
            .with_duration(seconds)
            // Renew a third of the duration before expiry; this is also the clock skew tolerated.
            .with_grace((seconds / 3).max(1))
            .build()
            .await
            .map_err(|source| Error::Lease {
                namespace: settings.namespace.clone(),
                name: settings.name.clone(),
                source,
            })?;
        let (leading, task) = manager.watch().await;
        Ok(Self { leading, task })
    }

    async fn acquired(&mut self) -> Result<(), Error> {
        self.leading.wait_for(|leading| *leading).await.map(|_| ()).map_err(|_| Error::ElectionEnded)
    }

    /// Resolves when the Lease is lost, or when the election itself stopped (then nothing is known).
    async fn lost(&mut self) {
        let _ = self.leading.wait_for(|leading| !*leading).await;
    }

    /// Closing the channel makes kube-lease-manager release the Lease if held.
    async fn release(self) {
        drop(self.leading);
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(_))) => info!("released the Lease"),
            Ok(Ok(Err(error))) => warn!(%error, "could not release the Lease; followers wait for it to expire"),
            Ok(Err(error)) => warn!(%error, "leader election task failed"),
            Err(_) => warn!("releasing the Lease timed out; followers wait for it to expire"),
        }
    }
}

enum Stopped {
    ByItself,
    Shutdown,
    LeaseLost,
}

/// Runs `work` while this process should reconcile: always without a Lease, only while holding it
/// with one. `work` gets a channel that turns true when it must stop taking new work; it then has
/// `grace` to finish in-flight reconciles. Returns once `shutdown` resolved and everything stopped.
pub async fn supervise<W, Fut>(
    client: Client,
    lease: Option<LeaseSettings>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    work: W,
) -> Result<(), Error>
where
    W: Fn(watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut shutdown = pin!(shutdown);
    let mut election = match &lease {
        Some(settings) => Some(Election::start(client, settings).await?),
        None => None,
    };
    loop {
        if let (Some(election), Some(settings)) = (election.as_mut(), &lease) {
            info!(lease = %settings.name, identity = %settings.identity, "waiting to become the leader");
            tokio::select! {
                _ = &mut shutdown => break,
                acquired = election.acquired() => acquired?,
            }
            info!(lease = %settings.name, identity = %settings.identity, "became the leader; reconciling");
        }
        metrics.leader.set(1);
        let (stop, stop_requested) = watch::channel(false);
        let mut running = pin!(work(stop_requested));
        let lost = async {
            match election.as_mut() {
                Some(election) => election.lost().await,
                None => std::future::pending().await,
            }
        };
        let stopped = tokio::select! {
            _ = &mut running => Stopped::ByItself,
            _ = &mut shutdown => Stopped::Shutdown,
            _ = lost => Stopped::LeaseLost,
        };
        if !matches!(stopped, Stopped::ByItself) {
            let _ = stop.send(true);
            if tokio::time::timeout(grace, &mut running).await.is_err() {
                warn!(grace_s = grace.as_secs(), "in-flight reconciles did not finish in time; abandoning them");
            }
        }
        metrics.leader.set(0);
        match stopped {
            Stopped::LeaseLost => warn!("lost the Lease; stopped reconciling until it is won back"),
            Stopped::ByItself | Stopped::Shutdown => break,
        }
    }
    if let Some(election) = election {
        election.release().await;
    }
    Ok(())
}

/// Resolves on SIGTERM (what the kubelet sends) or Ctrl-C.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the controller");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => info!("Ctrl-C: shutting down"),
    }
}
