//! What must hold after every step, whatever happened; each named in the output when broken.

use std::collections::BTreeMap;
use std::time::Duration;

use ecsrun::api::{EcsTaskRun, Phase};
use ecsrun::decide::bound::STATUS_BUDGET_BYTES;
use jiff::Timestamp;

use crate::fakes::ecs::FakeTask;

/// A broken invariant: which, at which step, and what showed it.
#[derive(Clone, Debug)]
pub struct Violation {
    pub invariant: &'static str,
    pub step: u64,
    pub detail: String,
}

impl Violation {
    pub fn new(invariant: &'static str, step: u64, detail: String) -> Self {
        Self { invariant, step, detail }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` broken at step {}: {}", self.invariant, self.step, self.detail)
    }
}

/// How long a task may run on once no run has its uid: the deletion's ListTasks grace, a few polls, and
/// the orphan sweep's own grace.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(10 * 60);

/// What the checks remember from step to step.
#[derive(Default)]
pub struct Memory {
    /// Live tasks no run owns, since when.
    orphaned_since: BTreeMap<String, Timestamp>,
    /// The first final phase each run (uid) reached.
    finished: BTreeMap<String, Phase>,
}

/// Checks every invariant on the world as it is now.
pub fn check(
    memory: &mut Memory,
    step: u64,
    now: Timestamp,
    runs: &[EcsTaskRun],
    tasks: &[FakeTask],
) -> Result<(), Violation> {
    let broken = |invariant: &'static str, detail: String| Err(Violation::new(invariant, step, detail));

    // At most one task per (run uid, index, attempt).
    let mut seen = BTreeMap::new();
    for task in tasks {
        let Some(uid) = task.tag("ecsrun.dev/uid") else { continue };
        let key = (uid, task.tag("ecsrun.dev/index").unwrap_or("0"), task.tag("ecsrun.dev/attempt").unwrap_or("?"));
        if let Some(earlier) = seen.insert(key, &task.snapshot.task_arn) {
            return broken(
                "at most one task per (run, index, attempt)",
                format!("run {uid} index {} attempt {}: {earlier} and {}", key.1, key.2, task.snapshot.task_arn),
            );
        }
    }

    // No task left running for a run that no longer exists, or that finished (the simulator's runs wait
    // for their tasks to stop), once the grace has passed.
    let finished: BTreeMap<&str, bool> = runs
        .iter()
        .filter_map(|run| {
            let done = run.status.as_ref().and_then(|s| s.task.phase).is_some_and(Phase::is_terminal);
            Some((run.metadata.uid.as_deref()?, done))
        })
        .collect();
    let mut still = BTreeMap::new();
    for task in tasks.iter().filter(|task| !task.snapshot.is_stopped()) {
        let Some(uid) = task.tag("ecsrun.dev/uid") else { continue };
        let whose = match finished.get(uid) {
            Some(false) => continue,
            Some(true) => "finished",
            None => "was gone",
        };
        let arn = &task.snapshot.task_arn;
        let since = memory.orphaned_since.get(arn).copied().unwrap_or(now);
        if now.duration_since(since) > jiff::SignedDuration::try_from(ORPHAN_GRACE).unwrap_or_default() {
            return broken(
                "no task left running without its run",
                format!(
                    "{arn} of run {}/{} (uid {uid}) runs {}s after its run {whose}",
                    task.tag("ecsrun.dev/namespace").unwrap_or("?"),
                    task.tag("ecsrun.dev/name").unwrap_or("?"),
                    now.duration_since(since).as_secs()
                ),
            );
        }
        still.insert(arn.clone(), since);
    }
    memory.orphaned_since = still;

    let by_arn: BTreeMap<&str, &FakeTask> = tasks.iter().map(|task| (task.snapshot.task_arn.as_str(), task)).collect();
    for run in runs {
        let name = format!(
            "{}/{}",
            run.metadata.namespace.as_deref().unwrap_or("?"),
            run.metadata.name.as_deref().unwrap_or("?")
        );
        let Some(status) = &run.status else { continue };
        // Every status under the size bound.
        let size = serde_json::to_vec(status).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
        if size > STATUS_BUDGET_BYTES {
            return broken("status under its size bound", format!("{name}: {size} bytes"));
        }
        // Succeeded only when ECS reported every judged container exiting 0.
        if status.task.phase == Some(Phase::Succeeded) {
            for (index, lane) in status.lanes() {
                let Some(arn) = lane.task_arn.as_deref() else {
                    return broken("Succeeded only on ECS's word", format!("{name} index {index}: no task"));
                };
                let Some(task) = by_arn.get(arn) else {
                    return broken("Succeeded only on ECS's word", format!("{name}: ECS never ran {arn}"));
                };
                let app = task.snapshot.containers.iter().find(|c| c.name == "app").and_then(|c| c.exit_code);
                if !task.snapshot.is_stopped() || app != Some(0) {
                    return broken(
                        "Succeeded only on ECS's word",
                        format!(
                            "{name} index {index}: ECS says {arn} is {:?} with app exiting {app:?}",
                            task.snapshot.last_status
                        ),
                    );
                }
            }
        }
        // A final phase stands.
        if let Some(uid) = run.metadata.uid.as_deref() {
            match (memory.finished.get(uid), status.task.phase) {
                (Some(first), phase) if phase != Some(*first) => {
                    return broken("a final phase stands", format!("{name}: was {first:?}, now {phase:?}"));
                }
                (None, Some(phase)) if phase.is_terminal() => {
                    memory.finished.insert(uid.to_owned(), phase);
                }
                _ => {}
            }
        }
    }
    Ok(())
}
