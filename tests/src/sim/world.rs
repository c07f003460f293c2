//! The simulated world: the API, ECS, the clock, two controller replicas and the users, moved one step
//! at a time by a seeded generator.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chacha20::ChaCha8Rng;
use ecsrun::api::{EcsTaskRun, EcsTaskRunSpec, EcsTaskSchedule, LastStatus};
use ecsrun::ecs::fence::{Fence, Fenced};
use ecsrun::ecs::{Ecs, EcsError, EcsTarget, Request, Response, TaskDefinitionInfo};
use ecsrun::orphans::OrphanSweep;
use ecsrun::reconcile::{self, Context, RunKey, Settings};
use jiff::Timestamp;
use rand::{RngExt, SeedableRng};
use tokio::sync::mpsc::UnboundedReceiver;

use super::invariants::{self, Memory, Violation};
use super::task_events::TaskEvents;
use super::tenants::{self, Act, NAMESPACES};
use super::{Options, Stats};
use crate::fakes::chaos::{Chaos, Rates};
use crate::fakes::ecs::CALL_TIMEOUT;
use crate::fakes::{EPOCH, FakeApi, FakeEcs, context_from, settings};

/// Faults while the seed stirs things up.
const RATES: Rates = Rates { fail: 60, lose: 30, lose_launch: 150, crash: 25, latency: true };
/// Rounds the quiet phase may take for every run to settle.
const SETTLE_ROUNDS: u64 = 80;
/// Runs a seed creates at most.
const MAX_RUNS: usize = 6;
/// The orphan sweep as the replicas run it: a grace well above how far a cache lags here and above the
/// 60 s an unrecorded launch is looked for, and short enough that live runs' tasks are old enough to be
/// swept by mistake within a seed (the controller's default is 10 minutes).
const ORPHAN_SWEEP: OrphanSweep =
    OrphanSweep { interval: Duration::from_secs(300), grace: Duration::from_secs(3 * 60) };

mod flights;
mod kueue;
mod schedules;
mod users;

use flights::{Flight, Job};
use schedules::SCHEDULE;

/// The ECS port of one replica: records whether it acted with its fence closed (the fence sits outside it),
/// and every launch and stop it sent, for the tenancy invariants.
struct Port {
    ecs: Arc<FakeEcs>,
    fence: Fence,
    fenced_acts: Arc<Mutex<Vec<String>>>,
    acts: Arc<Mutex<Vec<Act>>>,
    /// The API, where a queued run's Workload is looked at when its RunTask goes out.
    api: FakeApi,
    /// RunTasks of queued runs whose Workload held no quota at the call.
    unadmitted: Arc<Mutex<Vec<String>>>,
}

impl Ecs for Port {
    async fn send(&self, target: &EcsTarget, request: Request<'_>) -> Result<Response, EcsError> {
        if request.acts() && !self.fence.is_open() {
            self.fenced_acts.lock().unwrap_or_else(PoisonError::into_inner).push(format!("{request:?}"));
        }
        if let Some(act) = Act::of(&request) {
            if let Some(unadmitted) = invariants::launch_without_quota(&self.api, &act) {
                self.unadmitted.lock().unwrap_or_else(PoisonError::into_inner).push(unadmitted);
            }
            self.acts.lock().unwrap_or_else(PoisonError::into_inner).push(act);
        }
        self.ecs.send(target, request).await
    }

    fn cached_task_definition(&self, target: &EcsTarget, task_definition: &str) -> Option<TaskDefinitionInfo> {
        self.ecs.cached_task_definition(target, task_definition)
    }
}

type Ctx = Context<Fenced<Port>>;

struct Replica {
    ctx: Arc<Ctx>,
    fence: Fence,
    /// The runs as this replica's watch cache has them.
    cache: BTreeMap<(String, String), EcsTaskRun>,
    /// Whether the watch's first list of this term has completed (until then the cache is empty and a
    /// store built from it is not ready).
    listed: bool,
    /// The schedule as this replica's watch of schedules has it (it lags as the runs' watch does).
    schedule: Option<EcsTaskSchedule>,
    /// The runs its tracker reports changed (kube-runtime reconciles them at once).
    changes: UnboundedReceiver<RunKey>,
    /// Reconciles (the leader, or a deposed leader that has not noticed yet: steps left).
    acting: Option<u64>,
    incarnation: u64,
}

pub struct World {
    options: Options,
    rng: ChaCha8Rng,
    chaos: Arc<Chaos>,
    api: FakeApi,
    ecs: Arc<FakeEcs>,
    now: Arc<Mutex<Timestamp>>,
    replicas: Vec<Replica>,
    leader: usize,
    fenced_acts: Arc<Mutex<Vec<String>>>,
    unadmitted: Arc<Mutex<Vec<String>>>,
    /// Launches and stops the replicas sent since the last step's checks.
    acts: Arc<Mutex<Vec<Act>>>,
    /// Every run created: uid → (namespace, spec as created).
    specs: BTreeMap<String, (String, EcsTaskRunSpec)>,
    /// The API's runs a few steps back: what a fresh replica's first list (resourceVersion 0) may return.
    history: VecDeque<Vec<EcsTaskRun>>,
    /// Names to create again once their deletion went through (GitOps `Replace`).
    recreate: Vec<(String, String, EcsTaskRunSpec)>,
    /// What users do to a run a few steps after creating it, when they get to it: (step, namespace,
    /// name, delete rather than stop). Early stops and deletions meet launches whose answers are lost.
    soon: Vec<(u64, String, String, bool)>,
    created: usize,
    /// ECS's task state change events on their way to the replicas; None in seeds that only poll.
    task_events: Option<TaskEvents>,
    memory: Memory,
    /// The replicas' reconciles and sweeps under way.
    flights: Vec<Flight>,
    /// Work each replica's kube-runtime will run again unasked, and when (its requeues).
    timers: BTreeMap<(usize, Job), Timestamp>,
    step: u64,
    stats: Stats,
    trace: Arc<Mutex<Vec<String>>>,
}

impl World {
    pub async fn new(options: Options, trace: Arc<Mutex<Vec<String>>>) -> anyhow::Result<Self> {
        let chaos = Arc::new(Chaos::new(options.seed));
        let ecs = Arc::new(FakeEcs::with_chaos(chaos.clone()));
        let start = Timestamp::from_second(EPOCH)?;
        ecs.set_now(start);
        let now = Arc::new(Mutex::new(start));
        chaos.keep_time(now.clone());
        let mut world = Self {
            options,
            rng: ChaCha8Rng::seed_from_u64(options.seed),
            api: FakeApi::with_chaos(chaos.clone()),
            chaos,
            ecs,
            now,
            replicas: Vec::new(),
            leader: 0,
            fenced_acts: Arc::default(),
            unadmitted: Arc::default(),
            acts: Arc::default(),
            specs: BTreeMap::new(),
            history: VecDeque::new(),
            recreate: Vec::new(),
            soon: Vec::new(),
            created: 0,
            // Odd seeds follow tasks through events too, even ones by polling alone.
            task_events: (options.seed % 2 == 1).then(TaskEvents::default),
            memory: Memory::default(),
            flights: Vec::new(),
            timers: BTreeMap::new(),
            step: 0,
            stats: Stats::default(),
            trace,
        };
        for id in 0..2 {
            let replica = world.replica(id, 0, Some(Vec::new())).await?;
            world.replicas.push(replica);
        }
        world.replicas[0].acting = Some(u64::MAX);
        world.replicas[0].fence.open_until(far_future());
        world.add_schedule()?;
        Ok(world)
    }

    /// A replica process; `list`: what its watch's first list returned (None: it has not completed yet).
    async fn replica(&self, id: usize, incarnation: u64, list: Option<Vec<EcsTaskRun>>) -> anyhow::Result<Replica> {
        let fence = Fence::closed();
        let port = Port {
            ecs: self.ecs.clone(),
            fence: fence.clone(),
            fenced_acts: self.fenced_acts.clone(),
            acts: self.acts.clone(),
            api: self.api.clone(),
            unadmitted: self.unadmitted.clone(),
        };
        let ecs = Arc::new(Fenced::new(port, fence.clone()));
        // The controller's own reconcile deadline for its ECS call timeout, on the world's clock.
        let settings = Settings {
            reconcile_timeout: reconcile::reconcile_timeout(CALL_TIMEOUT),
            kueue: true,
            tekton: false,
            ..settings(&self.now)
        };
        let ctx = Arc::new(context_from(&self.api, ecs, &format!("replica-{id}"), tenants::tenancy(), settings)?);
        let changes = ctx.tracker.restart();
        let listed = list.is_some();
        let schedule = if listed { self.api.schedule(NAMESPACES[0], SCHEDULE) } else { None };
        let cache = list.unwrap_or_default().into_iter().map(|run| (key(&run), run)).collect();
        Ok(Replica { ctx, fence, cache, listed, schedule, changes, acting: None, incarnation })
    }

    pub fn stats(&self) -> Stats {
        let mut stats = self.stats;
        stats.tasks = self.ecs.every_task().len() as u64;
        stats.task_events = self.task_events.as_ref().map_or(0, |events| events.delivered);
        stats
    }

    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn say(&self, line: String) {
        if self.options.trace {
            let at = self.now().as_second() - EPOCH;
            self.trace
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(format!("[{:>4} t+{at:>5}s] {line}", self.step));
        }
    }

    /// Time passes: the clock stops at every call due on the way, which arrives then (and whatever it sets
    /// off runs) before the clock goes on, so a call takes effect when it is due, not when the step ends.
    async fn pass(&mut self, by: Duration) {
        let end = self.now().checked_add(by).unwrap_or(self.now());
        loop {
            let timer = self.next_timer_in_passes();
            let next = [self.chaos.next_due(), timer.as_ref().map(|(due, ..)| *due)].into_iter().flatten().min();
            let Some(due) = next.filter(|due| *due <= end) else { break };
            let now = self.now();
            if due > now {
                self.advance(now.duration_until(due).unsigned_abs());
            }
            if let Some((at, id, job)) = timer
                && at <= due
            {
                self.timers.remove(&(id, job.clone()));
                self.launch(id, job);
            }
            self.fly().await;
        }
        let now = self.now();
        if end > now {
            self.advance(now.duration_until(end).unsigned_abs());
        }
    }

    /// The first requeue that fires while time passes: the schedule's (its slots), and those of runs being
    /// deleted (where a grace or a slot's settling ends), on replicas that act. Other runs' requeues fire
    /// on reconcile steps, which keeps the number of reconciles a seed makes near a real controller's
    /// share of them.
    fn next_timer_in_passes(&self) -> Option<(Timestamp, usize, Job)> {
        self.timers
            .iter()
            .filter(|((id, job), _)| {
                self.replicas[*id].acting.is_some()
                    && match job {
                        Job::Schedule => true,
                        Job::Reconcile(namespace, name) => {
                            self.api.run(namespace, name).is_some_and(|run| run.metadata.deletion_timestamp.is_some())
                        }
                        Job::Sweep | Job::OrphanSweep | Job::WorkloadOrphaned(..) => false,
                    }
            })
            .min_by_key(|(_, due)| **due)
            .map(|((id, job), due)| (*due, *id, job.clone()))
    }

    fn advance(&mut self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = now.checked_add(by).unwrap_or(*now);
        self.ecs.set_now(*now);
        self.api.set_now(*now);
        drop(now);
        self.ecs.forget_stopped_before(self.now().checked_sub(Duration::from_secs(3600)).unwrap_or(self.now()));
    }

    /// The seed's steps with faults, then the quiet phase in which every run must settle.
    pub async fn simulate(&mut self) -> Result<(), Violation> {
        self.chaos.set_rates(Some(RATES));
        while self.step < self.options.steps {
            self.step += 1;
            self.chaos.begin_step(self.step);
            self.stir().await;
            self.fly().await;
            self.after_step()?;
        }
        self.chaos.set_rates(None);
        self.say("faults stop; every run must settle".into());
        self.suspend_schedule();
        self.settle().await
    }

    fn after_step(&mut self) -> Result<(), Violation> {
        let injected = self.chaos.take_injected();
        self.stats.faults += injected.len() as u64;
        for line in injected {
            self.say(format!("  fault: {line}"));
        }
        self.stats.steps += 1;
        if let Some(events) = self.task_events.as_mut() {
            events.collect(&self.ecs);
        }
        let runs = self.api.runs();
        if self.history.len() == 5 {
            self.history.pop_front();
        }
        self.history.push_back(runs.clone());
        if let Some(act) = self.fenced_acts.lock().unwrap_or_else(PoisonError::into_inner).first() {
            return Err(Violation::new("no RunTask or StopTask through a closed fence", self.step, act.clone()));
        }
        if let Some(launch) = self.unadmitted.lock().unwrap_or_else(PoisonError::into_inner).first() {
            let invariant = "no RunTask for a queued run whose Workload holds no quota at the call";
            return Err(Violation::new(invariant, self.step, launch.clone()));
        }
        let now = self.now();
        let tasks = self.ecs.every_task();
        let created = self.api.created_runs();
        for run in &created {
            if let (Some(uid), Some(namespace)) = (&run.metadata.uid, &run.metadata.namespace) {
                self.specs.entry(uid.clone()).or_insert_with(|| (namespace.clone(), run.spec.clone()));
            }
        }
        invariants::slots(self.step, &created)?;
        let schedule_uid = self.api.schedule(NAMESPACES[0], SCHEDULE).and_then(|schedule| schedule.metadata.uid);
        invariants::slot_names(self.step, &self.api.take_removed_runs(), schedule_uid.as_deref())?;
        let acts = std::mem::take(&mut *self.acts.lock().unwrap_or_else(PoisonError::into_inner));
        invariants::tenancy(self.step, &acts, &self.specs, &runs, &tasks)?;
        invariants::stops(self.step, &acts, &self.specs, &runs, &tasks)?;
        invariants::revisions(self.step, &tasks)?;
        invariants::queued_tasks_hold_quota(self.step, &created, &self.api.objects("workloads"), &tasks)?;
        invariants::launches(&mut self.memory, self.step, &self.api.take_run_statuses(), &tasks)?;
        invariants::check(&mut self.memory, self.step, now, &runs, &tasks)
    }

    /// One step with faults: a user, a replica, ECS or the clock moves.
    async fn stir(&mut self) {
        // A deposed leader notices after a while, and stops reconciling.
        for (id, replica) in self.replicas.iter_mut().enumerate() {
            if id != self.leader {
                replica.acting = replica.acting.and_then(|left| left.checked_sub(1));
            }
        }
        // The schedule's own requeue (a second past its next slot, or after an error) fires when due.
        for id in 0..self.replicas.len() {
            if self.replicas[id].acting.is_some() {
                self.fire_timer(id, |job| *job == Job::Schedule);
            }
        }
        let roll = self.rng.random_range(0..100);
        match roll {
            0..6 => self.create(),
            6..8 => self.delete(false).await,
            8..10 => self.delete(true).await,
            10..11 => self.stop().await,
            11..13 => self.toggle_suspend().await,
            13..41 => {
                // Half the time the run whose requeue is due first (kube-runtime's scheduler), else a
                // random one (a watch event).
                let id = self.acting_replica();
                let timed =
                    self.rng.random_range(0..2) == 0 && self.fire_timer(id, |job| matches!(job, Job::Reconcile(..)));
                if !timed {
                    self.reconcile_one(id);
                }
            }
            41..44 => {
                let id = self.acting_replica();
                self.schedule_one(id);
            }
            44..45 => self.user_elsewhere(),
            45..52 => {
                let id = self.acting_replica();
                self.sweep(id);
            }
            52..55 => {
                let id = self.acting_replica();
                self.orphan_sweep(id);
            }
            55..63 => self.deliver(),
            63..70 if self.task_events.is_some() => self.receive_task_events().await,
            63..70 => self.deliver(),
            70..77 => self.ecs_moves(),
            77..82 => self.kueue_moves(),
            82..95 => {
                // Mostly seconds (ECS's lag is seconds), now and then minutes.
                let seconds = if self.rng.random_range(0..10) < 7 {
                    self.rng.random_range(1..15)
                } else {
                    self.rng.random_range(15..120)
                };
                self.pass(Duration::from_secs(seconds)).await;
            }
            95..97 => {
                let id = self.rng.random_range(0..self.replicas.len());
                self.restart(id, "killed").await;
            }
            _ => self.hand_over(),
        }
        self.recreate_gone();
        self.act_soon().await;
    }

    /// Every fault off: the leader reconciles every run it knows each round, ECS moves every task on,
    /// and every run must reach a final phase (or be gone, if deleted) within `SETTLE_ROUNDS`.
    async fn settle(&mut self) -> Result<(), Violation> {
        for id in 0..self.replicas.len() {
            if id != self.leader {
                self.replicas[id].acting = None;
            }
        }

        for round in 0..SETTLE_ROUNDS {
            self.step += 1;
            self.chaos.begin_step(self.step);
            self.pass(Duration::from_secs(20)).await;
            self.kueue_settles();
            // A suspended run waits for its resume: every one (a run created again, too) is resumed, and
            // must then finish.
            for run in self.api.runs().iter().filter(|run| run.spec.suspend) {
                let (namespace, name) = key(run);
                self.say(format!("user resumes {namespace}/{name} while settling"));
                self.api.edit_spec(&namespace, &name, |spec| spec.suspend = false);
            }
            // Only tasks whose run still waits for them end by themselves: a task leaked by a run that
            // is gone or finished runs on, for the invariants to see.
            // A task a waiting run adopted (started elsewhere, untagged) is one it waits for too.
            let waiting_runs: Vec<EcsTaskRun> = self
                .api
                .runs()
                .into_iter()
                .filter(|run| !run.status.as_ref().and_then(|s| s.task.phase).is_some_and(|phase| phase.is_terminal()))
                .collect();
            let waiting: Vec<String> = waiting_runs.iter().filter_map(|run| run.metadata.uid.clone()).collect();
            let adopted: Vec<String> = waiting_runs
                .iter()
                .filter_map(|run| run.status.as_ref())
                .flat_map(|status| {
                    status.lanes().into_iter().filter_map(|(_, lane)| lane.task_arn.clone()).collect::<Vec<_>>()
                })
                .collect();
            for task in self.ecs.live() {
                let owner = self.ecs.task(&task).and_then(|t| t.tag("ecsrun.dev/uid").map(str::to_owned));
                if owner.is_some_and(|uid| waiting.contains(&uid)) || adopted.contains(&task) {
                    self.move_task(&task, true);
                }
            }
            let runs = self.api.runs();
            self.replicas[self.leader].cache = runs.iter().map(|run| (key(run), run.clone())).collect();
            self.replicas[self.leader].listed = true;
            self.replicas[self.leader].schedule = self.api.schedule(NAMESPACES[0], SCHEDULE);
            if let Some(events) = self.task_events.as_mut() {
                events.collect(&self.ecs);
                events.drain(&self.replicas[self.leader].ctx.tracker);
            }
            self.sweep(self.leader);
            // Its runs' changes wake the schedule (it watches the runs it owns).
            self.schedule_one(self.leader);
            self.fly().await;
            for run in &runs {
                self.reconcile(self.leader, key(run));
            }
            self.fly().await;
            self.recreate_gone();
            self.after_step()?;
            let unsettled: Vec<String> = self
                .api
                .runs()
                .iter()
                .filter(|run| {
                    run.metadata.deletion_timestamp.is_some()
                        || !run.status.as_ref().and_then(|s| s.task.phase).is_some_and(|phase| phase.is_terminal())
                })
                .map(|run| key(run).1)
                .collect();
            let leaked = self.leaked_quota();
            if unsettled.is_empty() && leaked.is_empty() && round > 0 && self.memory_clear() && !self.flying() {
                self.say(format!("settled after {} quiet rounds", round + 1));
                // The leader's orphan sweep comes round once every task is past its grace: what it may
                // stop (a task kept by deletionPolicy: Orphan, adopted, or of a live run) is old enough.
                self.pass(ORPHAN_SWEEP.grace).await;
                self.launch(self.leader, Job::OrphanSweep);
                self.fly().await;
                return self.after_step();
            }
            if round + 1 == SETTLE_ROUNDS {
                return Err(Violation::new(
                    "every run reaches a final phase once faults stop",
                    self.step,
                    format!(
                        "after {SETTLE_ROUNDS} quiet rounds: runs {unsettled:?} ({:?}), Workloads holding quota for no run {leaked:?}, live tasks {:?}, calls on their way {}",
                        self.api
                            .runs()
                            .iter()
                            .filter(|run| run.metadata.name.as_ref().is_some_and(|name| unsettled.contains(name)))
                            .map(|run| run.status.as_ref().and_then(|status| status.task.message.clone()))
                            .collect::<Vec<_>>(),
                        self.ecs.live(),
                        self.chaos.in_flight()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// No task runs for a run that is gone or finished.
    fn memory_clear(&self) -> bool {
        let runs = self.api.runs();
        self.ecs.live().iter().all(|arn| {
            let task = self.ecs.task(arn);
            if task.as_ref().is_some_and(|t| t.snapshot.kept_on_delete) {
                // Its run was deleted with deletionPolicy Orphan: it runs on by the user's choice.
                return true;
            }
            let owner = task.and_then(|t| t.tag("ecsrun.dev/uid").map(str::to_owned));
            runs.iter().any(|run| {
                run.metadata.uid == owner
                    && !run.status.as_ref().and_then(|s| s.task.phase).is_some_and(|phase| phase.is_terminal())
            })
        })
    }

    fn acting_replica(&mut self) -> usize {
        let acting: Vec<usize> = (0..self.replicas.len()).filter(|id| self.replicas[*id].acting.is_some()).collect();
        acting[self.rng.random_range(0..acting.len())]
    }

    /// A watch event reaches a replica: one run's latest state, the schedule's, or (now and then) a relist
    /// of every run and schedule.
    fn deliver(&mut self) {
        let id = self.rng.random_range(0..self.replicas.len());
        if !self.replicas[id].listed || self.rng.random_range(0..5) == 0 {
            let runs = self.api.runs();
            self.replicas[id].cache = runs.iter().map(|run| (key(run), run.clone())).collect();
            self.replicas[id].listed = true;
            self.replicas[id].schedule = self.api.schedule(NAMESPACES[0], SCHEDULE);
            // A (re)list reconciles what it lists: here, the schedule.
            if self.replicas[id].acting.is_some() {
                self.schedule_one(id);
            }
            return;
        }
        if self.rng.random_range(0..4) == 0 {
            self.replicas[id].schedule = self.api.schedule(NAMESPACES[0], SCHEDULE);
            return;
        }
        let mut names: Vec<(String, String)> = self.api.runs().iter().map(key).collect();
        names.extend(self.replicas[id].cache.keys().cloned());
        names.sort();
        names.dedup();
        if names.is_empty() {
            return;
        }
        let name = names[self.rng.random_range(0..names.len())].clone();
        let owned = name.1.starts_with(&format!("{SCHEDULE}-"));
        let run = self.api.run(&name.0, &name.1);
        let present = run.is_some();
        match run {
            Some(run) => self.replicas[id].cache.insert(name.clone(), run),
            None => self.replicas[id].cache.remove(&name),
        };
        // A watch event reconciles its run, and the schedule's controller watches the runs it owns: a
        // change to one (its end, its deletion) reconciles the schedule too, on a replica that acts.
        if self.replicas[id].acting.is_some() {
            if present {
                self.reconcile(id, name);
            }
            if owned {
                self.schedule_one(id);
            }
        }
    }

    /// An acting replica's consumer receives a few task state change events.
    /// The runs whose task the events changed are reconciled at once, as the tracker's report makes
    /// kube-runtime do: an event taken for the task's state meets a reconcile before the next look.
    async fn receive_task_events(&mut self) {
        let id = self.acting_replica();
        let tracker = self.replicas[id].ctx.tracker.clone();
        while self.replicas[id].changes.try_recv().is_ok() {}
        let Some(events) = self.task_events.as_mut() else { return };
        let said = events.receive(&mut self.rng, &tracker, &self.ecs);
        for line in said {
            self.say(format!("replica {id} task event: {line}"));
        }
        let mut woken = Vec::new();
        while let Ok(key) = self.replicas[id].changes.try_recv() {
            let name = (key.namespace.clone().unwrap_or_default(), key.name.clone());
            if !woken.contains(&name) {
                woken.push(name);
            }
        }
        for name in woken {
            if self.replicas[id].acting.is_some() {
                self.reconcile(id, name);
            }
        }
    }

    /// ECS moves one task on by itself.
    fn ecs_moves(&mut self) {
        let live = self.ecs.live();
        if live.is_empty() {
            return;
        }
        let arn = live[self.rng.random_range(0..live.len())].clone();
        self.move_task(&arn, false);
    }

    /// A task moves one state on: PROVISIONING to RUNNING (now and then failing to start), RUNNING to
    /// STOPPED with an exit code, or (now and then) a Spot interruption.
    fn move_task(&mut self, arn: &str, quiet: bool) {
        let Some(task) = self.ecs.task(arn) else { return };
        let roll = self.rng.random_range(0..100);
        let id = ecsrun::api::task_id(arn).to_owned();
        if !task.snapshot.last_is(LastStatus::Running) {
            if roll < 8 {
                self.say(format!("ECS: task {id} fails to start"));
                self.ecs.fail_to_start(arn);
            } else {
                self.say(format!("ECS: task {id} is RUNNING"));
                self.ecs.run(arn);
            }
        } else if roll < 5 && !quiet {
            self.say(format!("ECS: task {id} interrupted (Spot)"));
            self.ecs.interrupt(arn);
        } else if quiet || (roll < 70 && !self.long_running(arn)) {
            let code = if roll % 3 == 0 { 1 } else { 0 };
            self.say(format!("ECS: task {id} exits {code}"));
            self.ecs.exit(arn, code);
        }
    }

    /// Tasks kept past their run's deletion and a quarter of the others run until stopped (a server, a
    /// stuck job): only a StopTask, a Spot interruption or the quiet phase ends them, so a kept task lives
    /// long enough for the orphan sweep to find it.
    fn long_running(&self, arn: &str) -> bool {
        // What is kept past its run's deletion is what is meant to run on (a server, a backfill).
        let kept = self.ecs.task(arn).is_some_and(|task| task.snapshot.kept_on_delete);
        kept || self.chaos.constant(("long-running", arn)) < 250
    }

    /// A replica reconciles one run its cache holds, as its queue would.
    fn reconcile_one(&mut self, id: usize) {
        let keys: Vec<(String, String)> = self.replicas[id].cache.keys().cloned().collect();
        if keys.is_empty() {
            return;
        }
        let name = keys[self.rng.random_range(0..keys.len())].clone();
        self.reconcile(id, name);
    }

    fn reconcile(&mut self, id: usize, name: (String, String)) {
        self.launch(id, Job::Reconcile(name.0, name.1));
    }

    /// A replica's tracker describes every task it follows.
    fn sweep(&mut self, id: usize) {
        self.launch(id, Job::Sweep);
    }

    /// A replica's orphan sweep (the leader's background work, and a deposed leader's until it notices).
    fn orphan_sweep(&mut self, id: usize) {
        self.launch(id, Job::OrphanSweep);
    }

    /// The replica's process starts again: nothing carried over; its first list may be stale.
    async fn restart(&mut self, id: usize, why: &str) {
        self.stats.crashes += 1;
        let back = self.rng.random_range(0..self.history.len().max(1));
        // Now and then its first list has not completed yet (a slow or failing list): its stores are
        // empty and not ready until a later delivery completes it.
        let list = (self.rng.random_range(0..3) != 0).then(|| self.history.get(back).cloned().unwrap_or_default());
        let incarnation = self.replicas[id].incarnation + 1;
        match &list {
            Some(_) => self.say(format!(
                "replica {id} {why}: starts again (incarnation {incarnation}) from a list {} steps old",
                self.history.len().saturating_sub(back)
            )),
            None => self.say(format!(
                "replica {id} {why}: starts again (incarnation {incarnation}); its first list has not completed"
            )),
        }
        self.abort_flights(id);
        let was = &self.replicas[id];
        let (acting, open) = (was.acting.is_some(), was.fence.is_open());
        was.fence.close();
        match self.replica(id, incarnation, list).await {
            Ok(mut replica) => {
                // The leader takes its Lease back; a deposed one restarts as a follower.
                if id == self.leader && acting {
                    replica.acting = Some(u64::MAX);
                    if open {
                        replica.fence.open_until(far_future());
                    }
                }
                self.replicas[id] = replica;
            }
            Err(error) => panic!("a replica cannot start: {error:#}"),
        }
    }

    /// The Lease goes to the other replica: the old leader's fence closes (its Lease could have expired),
    /// then the new one acts. The old one may go on reconciling from its cache for a while.
    fn hand_over(&mut self) {
        let old = self.leader;
        let new = (old + 1) % self.replicas.len();
        let lingering = self.rng.random_range(0..20);
        self.say(format!("the Lease passes from replica {old} to replica {new}; {old} notices in {lingering} steps"));
        self.replicas[old].fence.close();
        self.replicas[old].acting = Some(lingering);
        self.replicas[new].ctx.tracker.restart();
        // A new term's watches list afresh: its stores are empty and not ready until that list completes.
        self.replicas[new].cache.clear();
        self.replicas[new].listed = false;
        self.replicas[new].acting = Some(u64::MAX);
        self.replicas[new].fence.open_until(far_future());
        self.leader = new;
    }
}

fn key(run: &EcsTaskRun) -> (String, String) {
    (run.metadata.namespace.clone().unwrap_or_default(), run.metadata.name.clone().unwrap_or_default())
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(10 * 365 * 24 * 3600)
}
