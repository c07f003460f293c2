//! The deterministic simulator: the controller's real reconcile (decide, the effect interpreter, the
//! finalizer, the tracker) on two replicas, against the in-memory Kubernetes API and ECS disturbed by a
//! seed (`Chaos`): calls that fail, answers lost after the call took effect, the process crashing before
//! or after any call, calls that take virtual time while every other actor goes on (`world::flights`:
//! each reconcile and sweep is a task of its own; reconciles time out on the world's clock), a schedule
//! and namespace deletion (`world::schedules`), caches that lag the API (a fresh replica starts from a stale list), ECS's eventual
//! consistency, tasks that stop on their own (exit codes, TaskFailedToStart, Spot), tasks forgotten an
//! hour after they stop, a Lease handed over while the deposed replica runs on, users who create, stop,
//! delete and delete-and-recreate runs, and (odd seeds) ECS's task state change events reaching the
//! replicas' trackers twice, out of order, never, or not while their queue is unreadable (`task_events`).
//! Every invariant (`invariants`) is checked after every step; then the faults stop and every run must
//! settle.
//!
//! Same seed, same run: the world's choices come from one seeded generator, and the faults from the seed
//! and the call (see `Chaos`), never from the order concurrent calls arrive in.

mod invariants;
mod task_events;
mod tenants;
mod world;

use std::panic::AssertUnwindSafe;

pub use invariants::Violation;
use world::World;

/// How a seed is run.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub seed: u64,
    /// Steps with faults; the quiet phase that follows has its own bound.
    pub steps: u64,
    /// Keep a readable trace of every step.
    pub trace: bool,
}

/// What a seed came to.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub violation: Option<Violation>,
    pub trace: Vec<String>,
    pub stats: Stats,
}

/// What a seed did, for the summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub steps: u64,
    pub reconciles: u64,
    pub crashes: u64,
    pub faults: u64,
    pub runs: u64,
    pub tasks: u64,
    /// Task state change events delivered to a replica's tracker.
    pub task_events: u64,
}

impl Stats {
    pub fn add(&mut self, other: &Stats) {
        self.steps += other.steps;
        self.reconciles += other.reconciles;
        self.crashes += other.crashes;
        self.faults += other.faults;
        self.runs += other.runs;
        self.tasks += other.tasks;
        self.task_events += other.task_events;
    }
}

/// Runs one seed to its end or its first broken invariant. A panic anywhere is a broken invariant too.
pub fn run(options: Options) -> Report {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            return Report::broken(options.seed, Violation::new("no panic", 0, format!("no runtime: {error}")));
        }
    };
    let trace = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(async {
            let mut world = World::new(options, trace.clone()).await?;
            let result = world.simulate().await;
            Ok::<_, anyhow::Error>((result, world.stats()))
        })
    }));
    let trace = std::mem::take(&mut *trace.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let (violation, stats) = match outcome {
        Ok(Ok((result, stats))) => (result.err(), stats),
        Ok(Err(error)) => (Some(Violation::new("set-up", 0, format!("{error:#}"))), Stats::default()),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            (Some(Violation::new("no panic", 0, message)), Stats::default())
        }
    };
    Report { seed: options.seed, violation, trace, stats }
}

impl Report {
    fn broken(seed: u64, violation: Violation) -> Self {
        Self { seed, violation: Some(violation), trace: Vec::new(), stats: Stats::default() }
    }
}
