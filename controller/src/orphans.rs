//! The orphan sweep: tasks ecsrun started (`startedBy` `ecsrun/<uid>…`) whose run no longer exists are
//! stopped. A finalizer holds every run until its tasks are stopped, so an orphan means that promise was
//! got around: a finalizer removed by hand, a deletion that raced a launch whose answer was lost, a
//! controller that was not running. Opt-in (`--orphan-sweep-interval`): another controller starting tasks
//! in the same ECS clusters would have its tasks taken for orphans. The leader sweeps the clusters its
//! tracker has followed tasks in, one ListTasks and DescribeTasks per 100 tasks per cluster, through the
//! rate ceiling, and stops an orphan only once it is older than the grace (its run may just have been
//! created and not reached this replica's cache yet).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use tracing::{info, warn};

use crate::api::StopCause;
use crate::cached::CachedRun;
use crate::clock::Clock;
use crate::decide;
use crate::ecs::{Actor, DesiredStatus, Ecs, EcsTarget, TaskSnapshot, tracker::MAX_BATCH};
use crate::metrics::Metrics;

/// How often, and after how long a task counts as orphaned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrphanSweep {
    pub interval: Duration,
    pub grace: Duration,
}

/// What a sweep needs of the controller: ECS, the clusters its tracker has followed tasks in, the time,
/// the install's identity and a counter.
#[derive(Clone)]
pub struct Sweeper<E> {
    pub ecs: Arc<E>,
    pub targets: Arc<dyn Fn() -> Vec<EcsTarget> + Send + Sync>,
    pub clock: Clock,
    /// `--cluster-id`: with one, only tasks tagged with it are this install's.
    pub cluster_id: Option<String>,
    pub metrics: Arc<Metrics>,
}

/// A task to stop, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    pub task_arn: String,
    pub reason: String,
}

/// The run uid a task ecsrun started carries in its startedBy (`ecsrun/<uid>` or `ecsrun/<uid>/<index>`).
pub fn run_uid(started_by: &str) -> Option<&str> {
    started_by.strip_prefix("ecsrun/")?.split('/').next().filter(|uid| !uid.is_empty())
}

/// What the live runs hold on to: their uids, and the tasks they follow without having started them
/// (`spec.taskArn`), whose startedBy may name a run long gone.
#[derive(Clone, Debug, Default)]
pub struct Known {
    pub uids: HashSet<String>,
    pub adopted: HashSet<String>,
    /// This install's identity: a task another install launched (or one launched before tasks carried
    /// it, when this install has one) is never this sweep's to stop.
    pub cluster_id: Option<String>,
}

/// Which of `tasks` are orphans: started by ecsrun for a namespace this controller watches (`watched`
/// empty: every namespace), for a run uid no run has, not adopted by a live run, not meant to outlive
/// its run (`deletionPolicy: Orphan`), longer than `grace` ago, not STOPPED.
pub fn orphans(
    tasks: &[TaskSnapshot],
    known: &Known,
    watched: &[String],
    now: Timestamp,
    grace: Duration,
) -> Vec<Orphan> {
    tasks
        .iter()
        .filter(|task| !task.is_stopped() && !task.stop_requested())
        .filter(|task| !task.kept_on_delete && !known.adopted.contains(&task.task_arn))
        .filter(|task| task.started_by_install == known.cluster_id)
        .filter_map(|task| {
            let uid = run_uid(task.started_by.as_deref()?)?;
            let namespace = task.started_for_namespace.as_deref()?;
            let watched = watched.is_empty() || watched.iter().any(|w| w == namespace);
            let old_enough = task.created_at.is_some_and(|at| decide::duration_between(at, now) >= grace);
            (watched && old_enough && !known.uids.contains(uid)).then(|| Orphan {
                task_arn: task.task_arn.clone(),
                reason: decide::marked_stop_reason(
                    &format!("ecsrun: orphaned task: no EcsTaskRun in namespace {namespace} has uid {uid} any more"),
                    StopCause::Orphaned,
                ),
            })
        })
        .collect()
}

/// What one sweep came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Swept {
    /// A watch of this leadership term has not completed its first list: its runs are unknown, so every
    /// task of theirs would look orphaned. Nothing is listed or stopped.
    CachesNotReady,
    /// The orphans stopped (or tried).
    Done { stopped: usize },
}

/// Sweeps every `sweep.interval` until dropped (the leader's background work is dropped with its Lease,
/// and `stores` are this term's).
pub async fn run<E: Ecs>(sweeper: Sweeper<E>, stores: Vec<Store<CachedRun>>, watched: Vec<String>, sweep: OrphanSweep) {
    loop {
        tokio::time::sleep(sweep.interval).await;
        if sweep_once(&sweeper, &stores, &watched, sweep).await == Swept::CachesNotReady {
            warn!("orphan sweep deferred to the next interval: a watch of runs has not listed them yet");
        }
    }
}

/// One sweep of every cluster the tracker has followed tasks in, once every store has listed its runs.
pub async fn sweep_once<E: Ecs>(
    sweeper: &Sweeper<E>,
    stores: &[Store<CachedRun>],
    watched: &[String],
    sweep: OrphanSweep,
) -> Swept {
    if !stores.iter().all(|store| store.wait_until_ready().now_or_never().is_some_and(|ready| ready.is_ok())) {
        return Swept::CachesNotReady;
    }
    let mut stopped = 0;
    for target in (sweeper.targets)() {
        match sweep_cluster(sweeper, stores, watched, sweep, &target).await {
            Ok(count) => stopped += count,
            Err(error) => {
                warn!(cluster = %target.cluster, region = %target.region, %error, "orphan sweep failed; trying again next time")
            }
        }
    }
    Swept::Done { stopped }
}

/// What the stores' runs hold on to. The adopted tasks are read only when there are candidates: a run's
/// spec is kept packed in the cache.
fn known(stores: &[Store<CachedRun>], candidates: bool, cluster_id: Option<&str>) -> Known {
    let runs: Vec<Arc<CachedRun>> = stores.iter().flat_map(Store::state).collect();
    let uids = runs.iter().filter_map(|run| run.uid()).collect();
    let adopted = if candidates {
        runs.iter().filter_map(|run| run.decode().ok()?.spec.task_arn).collect()
    } else {
        HashSet::new()
    };
    Known { uids, adopted, cluster_id: cluster_id.map(str::to_owned) }
}

async fn sweep_cluster<E: Ecs>(
    sweeper: &Sweeper<E>,
    stores: &[Store<CachedRun>],
    watched: &[String],
    sweep: OrphanSweep,
    target: &EcsTarget,
) -> Result<usize, crate::ecs::EcsError> {
    let arns = sweeper.ecs.list_cluster_tasks(target, DesiredStatus::Running).await?;
    let mut tasks = Vec::new();
    for batch in arns.chunks(MAX_BATCH) {
        tasks.extend(sweeper.ecs.describe_tasks(target, batch).await?.tasks);
    }
    let now = sweeper.clock.now();
    // Read after the tasks: a run created meanwhile is known, and its task is within the grace anyway.
    let cluster_id = sweeper.cluster_id.as_deref();
    let unknown = Known { cluster_id: cluster_id.map(str::to_owned), ..Known::default() };
    let candidates = !orphans(&tasks, &unknown, watched, now, sweep.grace).is_empty();
    let found = orphans(&tasks, &known(stores, candidates, cluster_id), watched, now, sweep.grace);
    let mut stopped = 0;
    for orphan in found {
        match sweeper.ecs.stop_task(target, &orphan.task_arn, &orphan.reason, &Actor::default()).await {
            Ok(_) => {
                stopped += 1;
                sweeper.metrics.orphans_stopped.inc();
                warn!(cluster = %target.cluster, task_arn = %orphan.task_arn, reason = %orphan.reason, "stopped an orphaned task");
            }
            Err(error) => {
                warn!(cluster = %target.cluster, task_arn = %orphan.task_arn, %error, "could not stop an orphaned task")
            }
        }
    }
    info!(cluster = %target.cluster, tasks = tasks.len(), "orphan sweep done");
    Ok(stopped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(started_by: &str, namespace: &str, minutes_old: i64, status: &str) -> TaskSnapshot {
        TaskSnapshot {
            task_arn: format!("arn:aws:ecs:eu-west-1:1:task/c/{started_by}-{namespace}-{minutes_old}"),
            started_by: Some(started_by.into()),
            started_for_namespace: Some(namespace.into()),
            created_at: Some(now() - jiff::SignedDuration::from_mins(minutes_old)),
            last_status: Some(status.into()),
            ..TaskSnapshot::default()
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn only_old_enough_live_tasks_of_watched_namespaces_whose_run_is_gone_are_orphans() {
        let known = Known { uids: ["live-uid".to_owned()].into(), ..Known::default() };
        let tasks = vec![
            task("ecsrun/gone-uid", "team-a", 20, "RUNNING"),
            task("ecsrun/gone-uid/3", "team-a", 20, "PROVISIONING"),
            task("ecsrun/live-uid", "team-a", 20, "RUNNING"),
            task("ecsrun/new-uid", "team-a", 2, "RUNNING"),
            task("ecsrun/gone-uid", "team-a", 20, "STOPPED"),
            task("ecsrun/gone-uid", "elsewhere", 20, "RUNNING"),
            task("someone-else", "team-a", 20, "RUNNING"),
        ];
        let grace = Duration::from_secs(600);
        let found = orphans(&tasks, &known, &["team-a".to_owned()], now(), grace);
        let arns: Vec<&str> = found.iter().map(|o| o.task_arn.as_str()).collect();
        assert_eq!(arns, vec![tasks[0].task_arn.as_str(), tasks[1].task_arn.as_str()]);
        assert!(found[0].reason.contains("uid gone-uid") && found[0].reason.len() <= 255);
        let everywhere = orphans(&tasks, &known, &[], now(), grace);
        assert_eq!(everywhere.len(), 3, "watching every namespace, the other namespace's orphan too");
    }

    /// Issue 35, finding 4: tasks meant to outlive their run, and tasks a live run adopted, are never
    /// orphans, however gone the run that started them.
    #[test]
    fn tasks_kept_on_delete_or_adopted_by_a_live_run_are_not_orphans() {
        let kept = TaskSnapshot { kept_on_delete: true, ..task("ecsrun/gone-uid", "team-a", 20, "RUNNING") };
        let adopted = task("ecsrun/other-gone-uid", "team-a", 30, "RUNNING");
        let orphan = task("ecsrun/gone-uid", "team-a", 40, "RUNNING");
        let known = Known { adopted: [adopted.task_arn.clone()].into(), ..Known::default() };
        let tasks = [kept, adopted, orphan.clone()];
        let found = orphans(&tasks, &known, &[], now(), Duration::from_secs(600));
        assert_eq!(found.iter().map(|o| o.task_arn.as_str()).collect::<Vec<_>>(), [orphan.task_arn.as_str()]);
        assert_eq!(StopCause::marked_in(&found[0].reason), Some(StopCause::Orphaned));
    }

    /// Issue 35, finding 4: two installs sharing an ECS cluster never sweep each other's tasks.
    #[test]
    fn an_install_sweeps_only_the_tasks_it_launched() {
        let of = |install: Option<&str>| TaskSnapshot {
            started_by_install: install.map(str::to_owned),
            ..task("ecsrun/gone-uid", "team-a", 20, "RUNNING")
        };
        let tasks = [of(Some("cluster-a")), of(Some("cluster-b")), of(None)];
        let grace = Duration::from_secs(600);
        let known = |id: Option<&str>| Known { cluster_id: id.map(str::to_owned), ..Known::default() };
        let swept = |id| orphans(&tasks, &known(id), &[], now(), grace).len();
        assert_eq!(swept(Some("cluster-a")), 1, "its own, not cluster-b's nor an untagged one");
        assert_eq!(swept(None), 1, "an install without an identity: only untagged tasks");
    }

    #[test]
    fn the_uid_is_read_from_either_started_by_shape() {
        assert_eq!(run_uid("ecsrun/abc"), Some("abc"));
        assert_eq!(run_uid("ecsrun/abc/2"), Some("abc"));
        assert_eq!(run_uid("ecsrun/"), None);
        assert_eq!(run_uid("airflow/abc"), None);
    }
}
