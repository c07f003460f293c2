//! The orphan sweep against the controller's real tracker and the fake ECS: it stops the tasks of runs
//! that are gone, and nothing else (issue 35, findings 2 and 4).

use std::time::Duration;

use ecsrun::api::EcsTaskRun;
use ecsrun::cached::CachedRun;
use ecsrun::orphans::{OrphanSweep, Swept, sweep_once};
use ecsrun_testbed::fakes::Harness;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::Event;

use crate::{NS, launched};

const SWEEP: OrphanSweep = OrphanSweep { interval: Duration::from_secs(300), grace: Duration::ZERO };

fn cached(run: &EcsTaskRun) -> CachedRun {
    serde_json::from_value(serde_json::to_value(run).expect("a run serializes")).expect("a run caches")
}

/// A store as a watch leaves it: `listed`, holding the API's runs; else its first list never completed.
fn store(harness: &Harness, listed: bool) -> Store<CachedRun> {
    let (reader, mut writer) = reflector::store();
    if listed {
        writer.apply_watcher_event(&Event::Init);
        for run in harness.api.runs() {
            writer.apply_watcher_event(&Event::InitApply(cached(&run)));
        }
        writer.apply_watcher_event(&Event::InitDone);
    }
    reader
}

fn desired(harness: &Harness, task: &str) -> Option<String> {
    harness.ecs.task(task).and_then(|task| task.snapshot.desired_status).map(|desired| desired.to_string())
}

/// Finding 2: a new leadership term's watch that has not listed yet (or never does: a namespace it may
/// not list) knows no run, so every live run's task looked orphaned and was stopped.
#[tokio::test]
async fn the_sweep_waits_for_every_watch_to_list_its_runs() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let task = launched(&harness, "live", "").await?;
    harness.ecs.run(&task);
    let listed = store(&harness, true);
    let unlisted = store(&harness, false);
    assert_eq!(
        sweep_once(&harness.ctx.sweeper(), &[listed.clone(), unlisted], &[], SWEEP).await,
        Swept::CachesNotReady
    );
    assert_eq!(sweep_once(&harness.ctx.sweeper(), &[listed], &[], SWEEP).await, Swept::Done { stopped: 0 });
    assert_eq!(desired(&harness, &task).as_deref(), Some("RUNNING"), "a live run's task runs on");
    assert_eq!(harness.ecs.count("StopTask"), 0);
    // The same task once its run is gone behind the finalizer's back (listed by a ready store): an orphan.
    let empty = {
        let (reader, mut writer) = reflector::store::<CachedRun>();
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        reader
    };
    assert_eq!(sweep_once(&harness.ctx.sweeper(), &[empty], &[], SWEEP).await, Swept::Done { stopped: 1 });
    assert_eq!(desired(&harness, &task).as_deref(), Some("STOPPED"));
    Ok(())
}

/// Finding 4: a run deleted with `deletionPolicy: Orphan` leaves its task running, and so does the sweep.
#[tokio::test]
async fn a_task_left_running_by_deletion_policy_orphan_is_no_orphan() -> anyhow::Result<()> {
    let harness = Harness::new().await?;
    let task = launched(&harness, "keep", "deletionPolicy: Orphan\n").await?;
    harness.ecs.run(&task);
    harness.api.delete_run(NS, "keep", harness.now());
    harness.reconcile(NS, "keep").await?;
    assert!(harness.run(NS, "keep").is_none(), "released at once");
    let stopped = sweep_once(&harness.ctx.sweeper(), &[store(&harness, true)], &[], SWEEP).await;
    assert_eq!(stopped, Swept::Done { stopped: 0 });
    assert_eq!(desired(&harness, &task).as_deref(), Some("RUNNING"), "the task the user chose to keep runs on");
    Ok(())
}
