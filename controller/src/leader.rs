//! Who reconciles, and until when: leader election on a coordination.k8s.io Lease (kube-lease-manager)
//! and graceful shutdown. With two replicas only the Lease holder reconciles and writes status; losing
//! the Lease stops its work at once, and SIGTERM stops taking new work, lets in-flight reconciles finish
//! within a deadline, then releases the Lease so a follower takes over without waiting for it to expire.
//!
//! kube-lease-manager goes on saying "leader" while the API server cannot be reached. So the leader also
//! reads the Lease itself: each time it sees itself holding it, the `Fence` stays open until the Lease
//! could expire (its renewTime plus its duration, less a second of clock skew). A leader that cannot
//! confirm that in time stops reconciling, and its ECS port refuses to start or stop tasks.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::ecs::fence::Fence;
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

/// Tolerated clock skew between this replica and the API server's other clients.
const CLOCK_SKEW: Duration = Duration::from_secs(1);
/// How often the fence looks at the Lease, at least.
const FENCE_CHECK_MIN: Duration = Duration::from_millis(500);

/// A running election; `leading` follows whether this process holds the Lease.
struct Election {
    leading: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
    fence: Fence,
    fence_keeper: JoinHandle<()>,
}

impl Election {
    async fn start(client: Client, settings: &LeaseSettings, fence: Fence) -> Result<Self, Error> {
        let leases: Api<Lease> = Api::namespaced(client.clone(), &settings.namespace);
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
        let fence_keeper = tokio::spawn(keep_fence(leases, settings.clone(), fence.clone()));
        Ok(Self { leading, task, fence, fence_keeper })
    }

    /// Resolves once the Lease is held and confirmed, so the fence is open.
    async fn acquired(&mut self) -> Result<(), Error> {
        loop {
            self.leading.wait_for(|leading| *leading).await.map_err(|_| Error::ElectionEnded)?;
            if self.fence.is_open() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Resolves when the Lease is lost or may have expired, or when the election itself stopped (then
    /// nothing is known).
    async fn lost(&mut self) {
        let fence = self.fence.clone();
        let fence_closed = async move {
            while fence.is_open() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            warn!("the Lease could not be confirmed before it could expire (API server unreachable?)");
        };
        tokio::select! {
            _ = self.leading.wait_for(|leading| !*leading) => {}
            _ = fence_closed => {}
        }
    }

    /// Closing the channel makes kube-lease-manager release the Lease if held.
    async fn release(self) {
        self.fence_keeper.abort();
        self.fence.close();
        drop(self.leading);
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(_))) => info!("released the Lease"),
            Ok(Ok(Err(error))) => warn!(%error, "could not release the Lease; followers wait for it to expire"),
            Ok(Err(error)) => warn!(%error, "leader election task failed"),
            Err(_) => warn!("releasing the Lease timed out; followers wait for it to expire"),
        }
    }
}

/// Reads the Lease every few seconds and keeps the fence open while this replica holds it: until the
/// Lease as last seen would expire. Errors leave the fence to close by itself.
async fn keep_fence(leases: Api<Lease>, settings: LeaseSettings, fence: Fence) {
    let every = (settings.duration / 6).max(FENCE_CHECK_MIN);
    loop {
        let asked = Instant::now();
        match tokio::time::timeout(every, leases.get_opt(&settings.name)).await {
            Ok(Ok(lease)) => {
                let spec = lease.and_then(|lease| lease.spec).unwrap_or_default();
                let held = spec.holder_identity.as_deref() == Some(settings.identity.as_str());
                let expires = spec.renew_time.map(|renewed| renewed.0).and_then(|renewed| {
                    let seconds = i64::from(spec.lease_duration_seconds.unwrap_or_default());
                    renewed.checked_add(jiff::SignedDuration::from_secs(seconds)).ok()
                });
                match expires.filter(|_| held) {
                    Some(expires) => {
                        let left = Duration::try_from(expires.duration_since(Timestamp::now())).unwrap_or_default();
                        fence.open_until(asked + left.saturating_sub(CLOCK_SKEW));
                    }
                    None => fence.close(),
                }
            }
            Ok(Err(error)) => debug!(%error, "could not read the Lease"),
            Err(_) => debug!("reading the Lease timed out"),
        }
        tokio::time::sleep(every.saturating_sub(asked.elapsed())).await;
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
    fence: Fence,
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
        Some(settings) => Some(Election::start(client, settings, fence).await?),
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
        // Not the leader from this moment: in-flight reconciles may finish, but take no new work, and a lost
        // Lease has already closed the fence on their ECS calls.
        metrics.leader.set(0);
        if !matches!(stopped, Stopped::ByItself) {
            let _ = stop.send(true);
            if tokio::time::timeout(grace, &mut running).await.is_err() {
                warn!(grace_s = grace.as_secs(), "in-flight reconciles did not finish in time; abandoning them");
            }
        }
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
