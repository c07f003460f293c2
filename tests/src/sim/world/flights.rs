//! The replicas' work in flight: every reconcile and sweep runs as a task of its own, so while one waits
//! inside a slow call (see `Chaos::delay`) the other replica, the same replica's other runs, the users,
//! ECS and the clock go on. A step starts work; then the world lets every task run until none can move
//! before the clock does, lands what finished, kills the replicas whose process crashed, and gives up
//! (as kube-runtime's reconcile timeout does) on reconciles older than the timeout on the world's clock.

use std::sync::Arc;
use std::time::Duration;

use ecsrun::cached::CachedRun;
use ecsrun::orphans::sweep_once;
use ecsrun::reconcile::{self, RunKey};
use ecsrun::schedule;
use jiff::Timestamp;
use kube::runtime::controller::Action;
use tokio::task::JoinHandle;

use super::{ORPHAN_SWEEP, World};
use crate::fakes::chaos::{ACTOR, Actor};
use crate::fakes::{listed_store, schedule_context};

/// What a replica is doing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Job {
    Reconcile(String, String),
    /// The tracker describes the tasks it follows.
    Sweep,
    OrphanSweep,
    /// Its watch of Workloads saw one of ecsrun's whose run it does not know (namespace, name).
    WorkloadOrphaned(String, String),
    /// The schedule's reconcile.
    Schedule,
}

impl Job {
    fn describe(&self) -> String {
        match self {
            Job::Reconcile(namespace, name) => format!("reconciling {namespace}/{name}"),
            Job::Sweep => "sweeping".into(),
            Job::OrphanSweep => "in its orphan sweep".into(),
            Job::WorkloadOrphaned(namespace, name) => format!("looking at Workload {namespace}/{name}"),
            Job::Schedule => "reconciling the schedule".into(),
        }
    }
}

/// What finished work says, and when kube-runtime would run it again unasked (its `Action`).
pub(super) struct Landed {
    said: String,
    requeue: Option<Duration>,
}

impl Landed {
    fn said(said: String) -> Self {
        Self { said, requeue: None }
    }
}

pub(super) struct Flight {
    replica: usize,
    job: Job,
    started: Timestamp,
    handle: JoinHandle<Landed>,
    /// Triggered again while in flight: started again as soon as it lands, as kube-runtime's queue does.
    again: bool,
}

/// Rounds of yielding without anything moving after which the world takes its tasks to be waiting for
/// the clock (or for each other).
const QUIET_ROUNDS: u32 = 3;
/// Rounds after which a world that never quiets is a broken simulator, not a slow one.
const MAX_ROUNDS: u32 = 100_000;

impl World {
    /// Starts `job` on replica `id`, unless the same job is in flight there: kube-runtime never runs two
    /// reconciles of one run at once, and runs it again as soon as the one in flight ends.
    pub(super) fn launch(&mut self, id: usize, job: Job) {
        if let Some(flight) = self.flights.iter_mut().find(|flight| flight.replica == id && flight.job == job) {
            flight.again = true;
            self.say(format!("replica {id} is still {}: again once it ends", job.describe()));
            return;
        }
        let ctx = self.replicas[id].ctx.clone();
        let work: std::pin::Pin<Box<dyn Future<Output = Landed> + Send>> = match &job {
            Job::Reconcile(namespace, name) => {
                let Some(run) = self.replicas[id].cache.get(&(namespace.clone(), name.clone())).cloned() else {
                    return;
                };
                self.stats.reconciles += 1;
                Box::pin(async move {
                    let run = Arc::new(run);
                    let key = RunKey::from_obj(run.as_ref());
                    match reconcile::reconcile(run, ctx.clone()).await {
                        Ok(action) => {
                            let requeue = requeue_of(&action);
                            // The requeue's delay carries jitter: only whether there is one goes into the trace.
                            let said = if requeue.is_some() { "ok, requeues" } else { "ok, awaits a change" };
                            Landed { said: said.to_owned(), requeue }
                        }
                        Err(error) => {
                            let requeue = requeue_of(&reconcile::error_policy(&key, &error, ctx));
                            Landed { said: format!("{error} ({})", error.label()), requeue }
                        }
                    }
                })
            }
            Job::Sweep => Box::pin(async move {
                ctx.tracker.sweep_now().await;
                Landed::said(format!("swept {} tasks", ctx.tracker.len()))
            }),
            Job::OrphanSweep => {
                // The stores of its term as its cache has them, not ready while its first list is pending.
                let (reader, writer) = if self.replicas[id].listed {
                    let cached = self.replicas[id]
                        .cache
                        .values()
                        .filter_map(|run| serde_json::to_value(run).and_then(serde_json::from_value::<CachedRun>).ok());
                    listed_store(cached)
                } else {
                    kube::runtime::reflector::store::<CachedRun>()
                };
                Box::pin(async move {
                    let stores = [reader];
                    let swept = sweep_once(&ctx.sweeper(), &stores, &[], ORPHAN_SWEEP).await;
                    drop(writer);
                    Landed::said(format!("{swept:?}"))
                })
            }
            Job::WorkloadOrphaned(namespace, name) => {
                let Some(object) = self.api.object("workloads", namespace, name) else { return };
                let Ok(workload) = serde_json::from_value::<ecsrun::queue::Workload>(object) else { return };
                Box::pin(async move {
                    match reconcile::queue::release_orphaned(&ctx, &workload).await {
                        Ok(()) => Landed::said("ok".to_owned()),
                        Err(error) => Landed::said(format!("{error} ({})", error.label())),
                    }
                })
            }
            Job::Schedule => {
                // Decided on its cache of the runs, which waits for its first list (the controller's
                // reconcile gives up after a few seconds: CacheNotReady).
                if !self.replicas[id].listed {
                    self.say(format!("replica {id}'s schedule reconcile waits for its first list"));
                    self.requeue(id, Job::Schedule, schedule::shell::ERROR_REQUEUE);
                    return;
                }
                // As its watch has it: the status may lag behind a slot recorded since.
                let Some(schedule) = self.replicas[id].schedule.clone() else { return };
                let (reader, writer) = listed_store(self.replicas[id].cache.values().cloned());
                let schedules = Arc::new(schedule_context(&ctx, reader));
                Box::pin(async move {
                    let schedule = Arc::new(schedule);
                    let landed = match schedule::shell::reconcile(schedule.clone(), schedules.clone()).await {
                        Ok(action) => Landed { said: "ok".to_owned(), requeue: requeue_of(&action) },
                        Err(error) => {
                            let requeue = requeue_of(&schedule::shell::error_policy(schedule, &error, schedules));
                            Landed { said: format!("{error} ({})", error.label()), requeue }
                        }
                    };
                    drop(writer);
                    landed
                })
            }
        };
        let actor = Actor { replica: id, job: job.describe() };
        let handle = tokio::spawn(ACTOR.scope(actor, work));
        self.flights.push(Flight { replica: id, job, started: self.now(), handle, again: false });
    }

    /// Lets every task run until nothing moves before the clock does: calls due by now arrive, finished
    /// work lands in the trace, crashed replicas start again, reconciles past the timeout are given up.
    pub(super) async fn fly(&mut self) {
        loop {
            // A reconcile past its deadline is dropped before any call it waits for arrives.
            self.time_out();
            self.chaos.release_due();
            self.quiesce().await;
            self.time_out();
            self.land().await;
            let crashes = self.chaos.take_crashes();
            if crashes.is_empty() {
                return;
            }
            let mut crashed: Vec<usize> = Vec::new();
            for actor in crashes {
                let Some(actor) = actor else { panic!("a call crashed outside any replica's task") };
                if crashed.contains(&actor.replica) {
                    continue;
                }
                crashed.push(actor.replica);
                self.say(format!("replica {} crashes {}", actor.replica, actor.job));
                self.restart(actor.replica, "crashed").await;
            }
        }
    }

    /// Yields until no task moves: their calls wait for the clock, or they wait for one another.
    async fn quiesce(&mut self) {
        let mut quiet = 0;
        let mut last = (self.chaos.progress(), self.finished());
        for _ in 0..MAX_ROUNDS {
            tokio::task::yield_now().await;
            let now = (self.chaos.progress(), self.finished());
            if now == last {
                quiet += 1;
                if quiet == QUIET_ROUNDS {
                    return;
                }
            } else {
                quiet = 0;
                last = now;
            }
        }
        panic!("the simulated world never quiets: {} tasks in flight", self.flights.len());
    }

    fn finished(&self) -> usize {
        self.flights.iter().filter(|flight| flight.handle.is_finished()).count()
    }

    /// The reconciles' timeouts (runs' and the schedule's), on the world's clock: the reconcile is dropped
    /// wherever it waits; a request still on its way to the server goes with it.
    fn time_out(&mut self) {
        let now = self.now();
        let mut kept = Vec::new();
        let mut again = Vec::new();
        for flight in std::mem::take(&mut self.flights) {
            let timeout = match flight.job {
                Job::Reconcile(..) => Some(self.replicas[flight.replica].ctx.settings.reconcile_timeout),
                Job::Schedule => Some(schedule::shell::RECONCILE_TIMEOUT),
                Job::Sweep | Job::OrphanSweep | Job::WorkloadOrphaned(..) => None,
            };
            let late = timeout
                .and_then(|timeout| flight.started.checked_add(timeout).ok())
                .is_some_and(|deadline| deadline <= now);
            if late && !flight.handle.is_finished() {
                flight.handle.abort();
                self.say(format!("replica {} {}: timed out", flight.replica, flight.job.describe()));
                if flight.again {
                    again.push((flight.replica, flight.job));
                }
            } else {
                kept.push(flight);
            }
        }
        self.flights = kept;
        for (id, job) in again {
            if self.replicas[id].acting.is_some() {
                self.launch(id, job);
            }
        }
    }

    /// The finished work, in the order it was started, into the trace.
    async fn land(&mut self) {
        let (done, flying): (Vec<Flight>, Vec<Flight>) =
            std::mem::take(&mut self.flights).into_iter().partition(|flight| flight.handle.is_finished());
        self.flights = flying;
        for flight in done {
            let Landed { said: outcome, requeue } = match flight.handle.await {
                Ok(landed) => landed,
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(_) => continue,
            };
            let id = flight.replica;
            let again = flight.again.then(|| flight.job.clone());
            if let Some(after) = requeue {
                self.requeue(id, flight.job.clone(), after);
            }
            match flight.job {
                Job::Reconcile(namespace, name) => {
                    let now = self.status_line(&namespace, &name);
                    self.say(format!("replica {id} reconciles {namespace}/{name}: {outcome}; now {now}"));
                }
                Job::Sweep => self.say(format!("replica {id} {outcome}")),
                Job::OrphanSweep => self.say(format!("replica {id} orphan sweep: {outcome}")),
                Job::WorkloadOrphaned(namespace, name) => {
                    self.say(format!("replica {id} looks at orphaned Workload {namespace}/{name}: {outcome}"))
                }
                Job::Schedule => {
                    self.say(format!("replica {id} reconciles the schedule: {outcome}"));
                    self.runs_created_reach_the_leader();
                }
            }
            if let Some(job) = again
                && self.replicas[id].acting.is_some()
            {
                self.launch(id, job);
            }
        }
    }

    /// kube-runtime's scheduler: the work runs again unasked once `after` has passed on the world's clock
    /// (an earlier deadline already set for it wins).
    fn requeue(&mut self, id: usize, job: Job, after: Duration) {
        let Ok(due) = self.now().checked_add(after) else { return };
        let timer = self.timers.entry((id, job)).or_insert(due);
        *timer = (*timer).min(due);
    }

    /// Starts the work whose requeue is due first on replica `id`, among what `pick` selects; false if
    /// none is due.
    pub(super) fn fire_timer(&mut self, id: usize, pick: impl Fn(&Job) -> bool) -> bool {
        let now = self.now();
        let due = self
            .timers
            .iter()
            .filter(|((replica, job), at)| *replica == id && pick(job) && **at <= now)
            .min_by_key(|(_, at)| **at)
            .map(|(key, _)| key.clone());
        let Some(key) = due else { return false };
        self.timers.remove(&key);
        self.launch(id, key.1);
        true
    }

    /// The replica's process is gone: its work in flight with it, and the requeues it kept in memory.
    pub(super) fn abort_flights(&mut self, id: usize) {
        self.timers.retain(|(replica, _), _| *replica != id);
        let (gone, kept): (Vec<Flight>, Vec<Flight>) =
            std::mem::take(&mut self.flights).into_iter().partition(|flight| flight.replica == id);
        self.flights = kept;
        for flight in gone {
            flight.handle.abort();
        }
    }

    /// Whether any work is still in flight.
    pub(super) fn flying(&self) -> bool {
        !self.flights.is_empty()
    }

    fn status_line(&self, namespace: &str, name: &str) -> String {
        self.api.run(namespace, name).map_or_else(
            || "gone".to_owned(),
            |run| {
                let status = run.status.unwrap_or_default();
                let deleting = if run.metadata.deletion_timestamp.is_some() { ", being deleted" } else { "" };
                format!(
                    "{:?} {:?} {:?}{deleting}",
                    status.task.phase,
                    status.task.reason,
                    status.task.task_arn.as_deref().map(ecsrun::api::task_id)
                )
            },
        )
    }
}

/// When an `Action` runs the work again. kube-runtime keeps the delay private, so it is read from the
/// `Debug` form (`Action { requeue_after: Some(1.5s) }`); a form this cannot read stops the simulator.
fn requeue_of(action: &Action) -> Option<Duration> {
    let text = format!("{action:?}");
    if text.contains("requeue_after: None") {
        return None;
    }
    let read = || {
        let inner = text.split("Some(").nth(1)?.split(')').next()?;
        let at = inner.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, unit) = inner.split_at(at);
        let number: f64 = number.parse().ok()?;
        let scale = match unit {
            "s" => 1.0,
            "ms" => 1e-3,
            "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        Some(Duration::from_secs_f64(number * scale))
    };
    Some(read().unwrap_or_else(|| panic!("the simulator cannot read kube-runtime's {text}")))
}
