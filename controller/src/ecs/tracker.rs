//! Following tasks is the controller's job, not each run's. The tracker keeps the set of tasks being
//! followed per (region, identity, cluster), sweeps each set with DescribeTasks calls of up to 100 ARNs
//! on the runs' own poll intervals, remembers what it last saw, and reports a run's key only when ECS
//! reports a change. Reconciles read what the tracker saw instead of calling ECS, so polling costs
//! ceil(tasks / 100) calls per interval whatever the reconcile concurrency.
//!
//! A sweep sends every due task, and fills its last batch with the tasks due soonest (those observed at
//! least half their interval ago), so calls stay full and the set settles into full batches.
//!
//! ECS's task state change events (EventBridge → SQS, `task_events`) feed `apply_event`. While a region's
//! events flow, its tasks are described only when no event came for the events sweep interval: polling
//! becomes the safety net. When they stop flowing, every task of the region is described at once and the
//! region is polled again on the runs' own intervals.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use super::{Ecs, EcsError, EcsTarget, LastStatus, TaskLookup, TaskSnapshot};
use crate::clock::Clock;

/// DescribeTasks accepts at most this many ARNs per call.
pub const MAX_BATCH: usize = 100;

/// What the tracker last saw of a task.
pub type Look = Result<TaskLookup, EcsError>;

/// The last look at a task and when it was taken (by the controller's clock): a task DescribeTasks did
/// not know right after its launch may be known a minute later, and only a look taken that late says
/// it is lost.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    pub look: Look,
    pub at: Timestamp,
}

/// One followed task. Kept small: a fleet's tracker holds one per active run, stored inline in the
/// group's table (whose growth briefly holds the old and new tables at once), so the last look, the
/// large part, is boxed.
struct Entry<K> {
    key: Arc<K>,
    every: Duration,
    /// When the task is next described; None while a call is in flight or once it is STOPPED.
    due: Option<Instant>,
    observed_at: Option<Instant>,
    seen: Option<Box<Seen>>,
    /// The highest ECS version of the task applied: a look (event or answer) at a lower one is older.
    version: Option<i64>,
    /// The highest version ECS itself answered with (DescribeTasks, RunTask, StopTask): an event far
    /// ahead of it is not trusted (anyone allowed to send to the queue could make one up).
    described: Option<i64>,
}

/// How far ahead of the last described version an event may be and still be applied. A task changes a
/// handful of times between two looks (PROVISIONING to STOPPED is under ten); a forged event with a huge
/// version would otherwise make every later answer look older and blind the tracker.
pub const MAX_VERSION_LEAP: i64 = 64;

/// Whether a task in this state can end a run (RUNNING: a run that waits for Running; STOPPED: judged):
/// such an event only wakes the task for a DescribeTasks, whose answer is what the run is decided on.
fn decisive(task: &TaskSnapshot) -> bool {
    task.is_stopped() || task.last_is(LastStatus::Running)
}

/// A followed task by where it runs and its ARN, both shared between the two indexes below: a target is
/// stored once however many tasks run in it, an ARN once however many indexes name it.
type TaskRef = (Arc<EcsTarget>, Arc<str>);

struct State<K> {
    tasks: HashMap<Arc<EcsTarget>, HashMap<Arc<str>, Entry<K>>>,
    /// The tasks each key follows: most runs have one task, so a vector, not a set.
    by_key: HashMap<Arc<K>, Vec<TaskRef>>,
    /// Regions whose task events flow, with their sweep interval.
    events: HashMap<String, Duration>,
}

impl<K> Default for State<K> {
    fn default() -> Self {
        Self { tasks: HashMap::new(), by_key: HashMap::new(), events: HashMap::new() }
    }
}

/// How long a task goes undescribed after a look: its run's interval `every`, or, while its region's
/// events flow, the events `sweep` interval (events bring every change; the sweep only catches one dropped).
fn cadence(sweep: Option<Duration>, every: Duration) -> Duration {
    sweep.unwrap_or(every)
}

impl Seen {
    fn is_stopped(&self) -> bool {
        matches!(&self.look, Ok(TaskLookup::Found(task)) if task.is_stopped())
    }
}

/// What became of a task state change event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventOutcome {
    /// Taken as the task's latest look.
    Applied,
    /// Not above the version already applied: a duplicate, or overtaken by a later event or answer.
    Stale,
    /// A task no run follows (not ecsrun's, or its run is gone or not reconciled yet).
    Unfollowed,
    /// A followed task not described yet: events carry no tags, so whose task it is (the namespace a run
    /// may adopt it in) comes from DescribeTasks first. It is described at the next tick instead.
    Undescribed,
    /// An event that could end a run (STOPPED, RUNNING): a message alone never decides one, so the task
    /// is described at once (batched with others) and the answer is applied.
    Confirming,
    /// A version far ahead of what ECS last answered (`MAX_VERSION_LEAP`): not applied; described at once.
    Untrusted,
}

struct Shared<K, E> {
    ecs: Arc<E>,
    batch_size: usize,
    clock: Clock,
    /// Every target a task was seen in since the process started (the orphan sweep's clusters).
    /// In order, so sweeps go through them the same way every time.
    targets: Mutex<BTreeSet<EcsTarget>>,
    state: Mutex<State<K>>,
    changes: Mutex<Option<mpsc::UnboundedSender<K>>>,
    /// Rings when a task is due at once (an event to confirm): the sweep does not wait for its tick.
    wake: tokio::sync::Notify,
}

/// Follows tasks for keys of type `K` (the shell uses the run's ObjectRef). Cheap to clone.
pub struct Tracker<K, E> {
    shared: Arc<Shared<K, E>>,
}

impl<K, E> Clone for Tracker<K, E> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

impl<K, E> Tracker<K, E>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    E: Ecs,
{
    /// `batch_size` is clamped to 1..=100; 1 is what per-task pollers do, for comparison.
    pub fn new(ecs: Arc<E>, batch_size: usize, clock: Clock) -> Self {
        let shared = Shared {
            ecs,
            batch_size: batch_size.clamp(1, MAX_BATCH),
            clock,
            targets: Mutex::default(),
            state: Mutex::default(),
            changes: Mutex::default(),
            wake: tokio::sync::Notify::new(),
        };
        Self { shared: Arc::new(shared) }
    }

    /// Forgets every task and returns the stream of keys whose tasks change from now on. Called when this
    /// replica starts reconciling (again): every active run is reconciled then and follows its task anew.
    pub fn restart(&self) -> mpsc::UnboundedReceiver<K> {
        let (sender, receiver) = mpsc::unbounded_channel();
        *self.state() = State::default();
        *self.shared.changes.lock().unwrap_or_else(PoisonError::into_inner) = Some(sender);
        receiver
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Follows exactly `task_arns` in `target` for `key`, each described every `every`; tasks the key
    /// followed before and not listed here are dropped. A task not seen yet is described at the next sweep.
    pub fn follow(&self, key: &K, target: &EcsTarget, task_arns: &[String], every: Duration) {
        if !task_arns.is_empty() {
            self.remember(target);
        }
        let now = Instant::now();
        let mut state = self.state();
        let state = &mut *state;
        let wanted: HashSet<&str> = task_arns.iter().map(String::as_str).collect();
        if let Some(previous) = state.by_key.get(key) {
            for (old_target, arn) in previous {
                if **old_target != *target || !wanted.contains(&**arn) {
                    remove(&mut state.tasks, old_target, arn);
                }
            }
        }
        if wanted.is_empty() {
            state.by_key.remove(key);
            return;
        }
        let shared_key = match state.by_key.get_key_value(key) {
            Some((shared, _)) => shared.clone(),
            None => Arc::new(key.clone()),
        };
        let shared_target = match state.tasks.get_key_value(target) {
            Some((shared, _)) => shared.clone(),
            None => Arc::new(target.clone()),
        };
        let events = state.events.get(&target.region).copied();
        let group = state.tasks.entry(shared_target.clone()).or_default();
        let mut followed: Vec<TaskRef> = Vec::with_capacity(wanted.len());
        for arn in wanted {
            let arn: Arc<str> = match group.get_key_value(arn) {
                Some((shared, _)) => shared.clone(),
                None => Arc::from(arn),
            };
            let entry = group.entry(arn.clone()).or_insert_with(|| Entry {
                key: shared_key.clone(),
                every,
                due: Some(now),
                observed_at: None,
                seen: None,
                version: None,
                described: None,
            });
            entry.key = shared_key.clone();
            if every < entry.every {
                // Looked at more often from now on (a deletion waiting for STOPPED, a deadline).
                entry.every = every;
                let cadence = cadence(events, every);
                if let (Some(due), Some(observed_at)) = (entry.due, entry.observed_at) {
                    entry.due = Some(due.min(observed_at + cadence));
                }
            }
            entry.every = every;
            followed.push((shared_target.clone(), arn));
        }
        state.by_key.insert(shared_key, followed);
    }

    /// Stops following every task of `key`.
    pub fn forget(&self, key: &K) {
        let mut state = self.state();
        let state = &mut *state;
        for (target, arn) in state.by_key.remove(key).unwrap_or_default() {
            remove(&mut state.tasks, &target, &arn);
        }
    }

    /// The tasks `key` follows in `target` (a launch this replica recorded with the tracker, whose status
    /// write may have been lost).
    pub fn followed(&self, key: &K, target: &EcsTarget) -> Vec<String> {
        let state = self.state();
        let followed = state.by_key.get(key).map(Vec::as_slice).unwrap_or_default();
        followed.iter().filter(|(followed_in, _)| **followed_in == *target).map(|(_, arn)| arn.to_string()).collect()
    }

    /// What the last look at the task found; None when it has not been described yet.
    pub fn last_seen(&self, target: &EcsTarget, task_arn: &str) -> Option<Seen> {
        self.state().tasks.get(target)?.get(task_arn)?.seen.as_deref().cloned()
    }

    /// Takes a snapshot the caller got from ECS itself (RunTask, StopTask) as the latest look of a
    /// followed task. It reports no change: the caller is already acting on it.
    pub fn record(&self, target: &EcsTarget, task: &TaskSnapshot) {
        self.remember(target);
        let now = Instant::now();
        let mut state = self.state();
        let state = &mut *state;
        let events = state.events.get(&target.region).copied();
        if let Some(entry) = state.tasks.get_mut(target).and_then(|group| group.get_mut(task.task_arn.as_str())) {
            // An answer older than what an event or a sweep already brought (StopTask answers with the
            // task as it was then) does not overwrite the newer look.
            if let (Some(seen), Some(answered)) = (entry.version, task.version)
                && answered < seen
            {
                return;
            }
            let cadence = cadence(events, entry.every);
            entry.observed_at = Some(now);
            entry.due = (!task.is_stopped()).then_some(now + cadence);
            let at = self.shared.clock.now();
            entry.version = entry.version.max(task.version);
            entry.described = entry.described.max(task.version);
            entry.seen = Some(Box::new(Seen { look: Ok(TaskLookup::Found(task.clone())), at }));
        }
    }

    /// Takes a task state change event from `region` as the task's latest look, unless a look at
    /// the same or a later version was applied already. A change is reported like a sweep's.
    pub fn apply_event(&self, region: &str, task: TaskSnapshot) -> EventOutcome {
        let Some(version) = task.version else { return EventOutcome::Stale };
        let now = Instant::now();
        let at = self.shared.clock.now();
        let changed = {
            let mut state = self.state();
            let state = &mut *state;
            let events = state.events.get(region).copied();
            let found = state
                .tasks
                .iter_mut()
                .filter(|(target, _)| target.region == region)
                .find_map(|(_, group)| group.get_mut(task.task_arn.as_str()));
            let Some(entry) = found else { return EventOutcome::Unfollowed };
            if entry.version.is_some_and(|seen| version <= seen) {
                return EventOutcome::Stale;
            }
            // What the event says is checked with ECS itself: at once (unless a call is in flight already,
            // whose answer is the look wanted), batched with the other tasks due.
            let confirm = |entry: &mut Entry<K>, outcome: EventOutcome| {
                entry.due = entry.due.map(|due| due.min(now));
                self.shared.wake.notify_one();
                outcome
            };
            if entry.described.is_some_and(|described| version > described.saturating_add(MAX_VERSION_LEAP)) {
                return confirm(entry, EventOutcome::Untrusted);
            }
            let mut task = task;
            match entry.seen.as_deref() {
                // Events carry no tags: the namespace tag read before still holds.
                Some(Seen { look: Ok(TaskLookup::Found(seen)), .. }) => {
                    task.started_for_namespace =
                        task.started_for_namespace.or_else(|| seen.started_for_namespace.clone());
                    task.kept_on_delete |= seen.kept_on_delete;
                    task.started_by_install = task.started_by_install.or_else(|| seen.started_by_install.clone());
                }
                _ => return confirm(entry, EventOutcome::Undescribed),
            }
            if decisive(&task) {
                return confirm(entry, EventOutcome::Confirming);
            }
            let cadence = cadence(events, entry.every);
            entry.observed_at = Some(now);
            // No due time and not stopped: a DescribeTasks call is in flight, and its answer sets the next.
            let in_flight = entry.due.is_none() && !entry.seen.as_deref().is_some_and(Seen::is_stopped);
            if !in_flight || task.is_stopped() {
                entry.due = (!task.is_stopped()).then_some(now + cadence);
            }
            entry.version = Some(version);
            let look = Ok(TaskLookup::Found(task));
            let changed = entry.seen.as_ref().map(|seen| &seen.look) != Some(&look);
            entry.seen = Some(Box::new(Seen { look, at }));
            changed.then(|| K::clone(&entry.key))
        };
        if let Some(key) = changed {
            self.report(vec![key]);
        }
        EventOutcome::Applied
    }

    /// The region's task events flow: from now on its tasks are described only when no event came for
    /// `sweep`, whatever their runs' intervals.
    pub fn events_flowing(&self, region: &str, sweep: Duration) {
        let mut state = self.state();
        let state = &mut *state;
        state.events.insert(region.to_owned(), sweep);
        // A task polled on a longer interval until now is swept on the sweep's from its last look: an event
        // it lost before they flowed is caught as any other.
        for (_, group) in state.tasks.iter_mut().filter(|(target, _)| target.region == region) {
            for entry in group.values_mut() {
                if let (Some(due), Some(observed_at)) = (entry.due, entry.observed_at) {
                    entry.due = Some(due.min(observed_at + sweep));
                }
            }
        }
    }

    /// The region's task events stopped flowing (the queue is missing, unreadable, or its consumer
    /// failed): every task of the region not in flight is described at the next tick, then on its own
    /// interval, as without events. Returns whether they were flowing until now.
    pub fn events_lost(&self, region: &str) -> bool {
        let now = Instant::now();
        let mut state = self.state();
        let state = &mut *state;
        if state.events.remove(region).is_none() {
            return false;
        }
        for (_, group) in state.tasks.iter_mut().filter(|(target, _)| target.region == region) {
            for entry in group.values_mut() {
                entry.due = entry.due.map(|due| due.min(now));
            }
        }
        true
    }

    fn report(&self, keys: Vec<K>) {
        if let Some(changes) = self.shared.changes.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            for key in keys {
                // The receiver is gone only when the controller stops reconciling.
                let _ = changes.send(key);
            }
        }
    }

    /// Tasks followed right now.
    pub fn len(&self) -> usize {
        self.state().tasks.values().map(HashMap::len).sum()
    }

    fn remember(&self, target: &EcsTarget) {
        let mut targets = self.shared.targets.lock().unwrap_or_else(PoisonError::into_inner);
        if !targets.contains(target) {
            targets.insert(target.clone());
        }
    }

    /// Every (region, identity, cluster) a task was launched, stopped or followed in since the process
    /// started.
    pub fn targets(&self) -> Vec<EcsTarget> {
        self.shared.targets.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sweeps every `tick` until the returned future is dropped. Calls run concurrently; the rate ceiling
    /// of the ECS port spaces them.
    pub async fn run(self, tick: Duration) {
        let mut ticks = tokio::time::interval(tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut calls = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                biased;
                _ = ticks.tick() => {}
                () = self.shared.wake.notified() => {}
            }
            while calls.try_join_next().is_some() {}
            for (target, arns) in self.due_batches(Instant::now()) {
                let tracker = self.clone();
                calls.spawn(async move { tracker.describe(target, arns).await });
            }
        }
    }

    /// Describes every followed task that has not stopped, whatever its interval, and waits for the
    /// answers: a sweep on command, for tests that move time themselves.
    pub async fn sweep_now(&self) {
        let everything = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        for (target, arns) in self.due_batches(everything) {
            self.describe(target, arns).await;
        }
    }

    /// Picks what to describe now and marks it in flight.
    fn due_batches(&self, now: Instant) -> Vec<(EcsTarget, Vec<String>)> {
        let batch_size = self.shared.batch_size;
        let mut state = self.state();
        let mut batches = Vec::new();
        let state = &mut *state;
        for (target, group) in state.tasks.iter_mut() {
            let events = state.events.get(&target.region).copied();
            let mut due: Vec<(Instant, &Arc<str>)> = Vec::new();
            let mut early: Vec<(Instant, &Arc<str>)> = Vec::new();
            for (arn, entry) in group.iter() {
                let Some(at) = entry.due else { continue };
                let cadence = cadence(events, entry.every);
                if at <= now {
                    due.push((at, arn));
                } else if entry.observed_at.is_none_or(|seen| now.duration_since(seen) >= cadence / 2) {
                    early.push((at, arn));
                }
            }
            if due.is_empty() {
                continue;
            }
            // Most overdue first; the map's order would make the batches differ from run to run.
            due.sort();
            let room = due.len().div_ceil(batch_size) * batch_size - due.len();
            early.sort();
            let mut picked: Vec<String> =
                due.iter().chain(early.iter().take(room)).map(|(_, arn)| arn.to_string()).collect();
            for arn in &picked {
                if let Some(entry) = group.get_mut(arn.as_str()) {
                    entry.due = None;
                }
            }
            while !picked.is_empty() {
                let rest = picked.split_off(picked.len().min(batch_size));
                batches.push((EcsTarget::clone(target), std::mem::replace(&mut picked, rest)));
            }
        }
        batches.sort();
        batches
    }

    async fn describe(&self, target: EcsTarget, arns: Vec<String>) {
        let result = self.shared.ecs.describe_tasks(&target, &arns).await;
        let now = Instant::now();
        let at = self.shared.clock.now();
        let mut changed = Vec::new();
        {
            let mut state = self.state();
            let state = &mut *state;
            let events = state.events.get(&target.region).copied();
            let Some(group) = state.tasks.get_mut(&target) else { return };
            for arn in &arns {
                // Forgotten while the call was in flight.
                let Some(entry) = group.get_mut(arn.as_str()) else { continue };
                let cadence = cadence(events, entry.every);
                let look: Look = match &result {
                    Ok(described) => Ok(described
                        .tasks
                        .iter()
                        .find(|task| &task.task_arn == arn)
                        .map_or(TaskLookup::Missing, |task| TaskLookup::Found(task.clone()))),
                    Err(error) => Err(error.clone()),
                };
                if let Ok(TaskLookup::Found(task)) = &look
                    && entry.version.is_some_and(|seen| task.version.is_some_and(|version| version < seen))
                {
                    // An event applied while the call was in flight saw a later version: it stands.
                    entry.described = entry.described.max(task.version);
                    let stopped = entry.seen.as_deref().is_some_and(Seen::is_stopped);
                    entry.due = (!stopped).then_some(now + cadence);
                    entry.observed_at = Some(now);
                    continue;
                }
                let stopped = matches!(&look, Ok(TaskLookup::Found(task)) if task.is_stopped());
                entry.due = (!stopped).then_some(now + cadence);
                entry.observed_at = Some(now);
                if let Ok(TaskLookup::Found(task)) = &look {
                    entry.version = entry.version.max(task.version);
                    entry.described = entry.described.max(task.version);
                }
                if entry.seen.as_ref().map(|seen| &seen.look) != Some(&look) {
                    changed.push(K::clone(&entry.key));
                }
                // Stamped afresh even when nothing changed: it says how recent the look is.
                entry.seen = Some(Box::new(Seen { look, at }));
            }
        }
        if let Err(error) = &result {
            debug!(cluster = %target.cluster, %error, tasks = arns.len(), "tracker sweep failed; retrying next interval");
        }
        self.report(changed);
    }
}

fn remove<K>(tasks: &mut HashMap<Arc<EcsTarget>, HashMap<Arc<str>, Entry<K>>>, target: &EcsTarget, arn: &str) {
    if let Some(group) = tasks.get_mut(target) {
        group.remove(arn);
        if group.is_empty() {
            tasks.remove(target);
        }
    }
}

#[cfg(test)]
mod tests;
