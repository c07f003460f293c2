//! Deterministic faults for the fakes, for the simulator: whether a call fails, loses its answer after
//! taking effect, or crashes the caller before or after it takes effect is a function of the seed, the
//! step, the call and how often that same call came before in the step. Nothing depends on the order in
//! which concurrent calls arrive (the tracker's batches come out of hash maps), so a seed always replays
//! the same run.
//!
//! Calls take time too, once the world keeps a clock here ([`Chaos::keep_time`]): each leg of a call (the
//! request on its way, the answer on its way back) is mostly instant, sometimes milliseconds or seconds
//! and rarely 20–90 s (an SDK retry storm, a slow API server). A slow leg parks on the world's queue until
//! the world's clock passes its due time ([`Chaos::release_due`]); meanwhile every other actor goes on.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use siphasher::sip::SipHasher13;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::oneshot;

tokio::task_local! {
    /// Who is making the calls of the task at hand: a crash kills that replica's process.
    pub static ACTOR: Actor;
}

/// A replica doing one job (a reconcile, a sweep), as the world started it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub replica: usize,
    pub job: String,
}

/// What happens to one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Served as asked.
    None,
    /// Refused before it takes effect (a throttle, a 500, a conflict).
    Fail,
    /// Takes effect, but the caller hears an error (a timeout, a connection reset).
    LoseAnswer,
    /// The caller's process dies before the call takes effect.
    CrashBefore,
    /// The caller's process dies after the call took effect, before it hears the answer.
    CrashAfter,
}

/// How often each fault happens, per thousand calls.
#[derive(Clone, Copy, Debug)]
pub struct Rates {
    pub fail: u64,
    pub lose: u64,
    /// Lost answers of RunTask: the fault the controller's promises are most about, made common.
    pub lose_launch: u64,
    pub crash: u64,
    /// Calls take time (see the module's notes), as long as the world keeps a clock here.
    pub latency: bool,
}

#[derive(Default)]
struct State {
    step: u64,
    rates: Option<Rates>,
    occurrences: BTreeMap<u64, u64>,
    /// Callers that crashed since the last `take_crashes` (None: a call made by no actor).
    crashed: Vec<Option<Actor>>,
    /// What was injected, for the trace.
    injected: Vec<String>,
    /// The world's clock, once it keeps one here.
    clock: Option<Arc<Mutex<Timestamp>>>,
    /// Legs of calls on their way, by when they arrive, what they are and in which order they came.
    parked: BTreeMap<(Timestamp, u64, u64), oneshot::Sender<()>>,
    parked_count: u64,
    /// Calls begun, legs parked and released, crashes: whether anything moved since the world last looked.
    progress: u64,
}

/// The fault plan a seed stands for; shared by the fake API and the fake ECS.
pub struct Chaos {
    seed: u64,
    state: Mutex<State>,
}

impl Chaos {
    pub fn new(seed: u64) -> Self {
        Self { seed, state: Mutex::default() }
    }

    /// Calls take time on `clock` from now on (while the rates say so).
    pub fn keep_time(&self, clock: Arc<Mutex<Timestamp>>) {
        self.state().clock = Some(clock);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new step: occurrences count afresh.
    pub fn begin_step(&self, step: u64) {
        let mut state = self.state();
        state.step = step;
        state.occurrences.clear();
    }

    /// Faults at `rates` from now on; None: every call is served (the world still lags).
    pub fn set_rates(&self, rates: Option<Rates>) {
        self.state().rates = rates;
    }

    /// A number in 0..1000 for `what`, the same for the same seed, step and what (and occurrence).
    pub fn roll(&self, what: impl Hash) -> u64 {
        let mut state = self.state();
        self.roll_locked(&mut state, what)
    }

    fn roll_locked(&self, state: &mut State, what: impl Hash) -> u64 {
        let mut hasher = SipHasher13::new();
        what.hash(&mut hasher);
        let fingerprint = hasher.finish();
        let occurrence = state.occurrences.entry(fingerprint).or_default();
        *occurrence += 1;
        let mut hasher = SipHasher13::new();
        (self.seed, state.step, fingerprint, *occurrence).hash(&mut hasher);
        hasher.finish() % 1000
    }

    /// A number in 0..1000 that depends on the seed and `what` only (not the step): a world's constant,
    /// such as how long ListTasks lags behind a given task.
    pub fn constant(&self, what: impl Hash) -> u64 {
        let mut hasher = SipHasher13::new();
        (self.seed, what).hash(&mut hasher);
        hasher.finish() % 1000
    }

    /// What happens to the call `peer` `call` (`what` tells it apart from other calls). `acts`: the call
    /// changes something, so its answer can be lost after it took effect.
    pub fn fault(&self, peer: &str, call: &str, acts: bool, what: impl Hash) -> Fault {
        let mut state = self.state();
        let Some(rates) = state.rates else { return Fault::None };
        let roll = self.roll_locked(&mut state, (peer, call, what));
        let fault = if roll < rates.crash / 2 {
            Fault::CrashBefore
        } else if roll < rates.crash {
            Fault::CrashAfter
        } else if roll < rates.crash + rates.fail {
            Fault::Fail
        } else if acts
            && roll < rates.crash + rates.fail + if call == "RunTask" { rates.lose_launch } else { rates.lose }
        {
            Fault::LoseAnswer
        } else {
            Fault::None
        };
        if fault != Fault::None {
            state.injected.push(format!("{peer} {call}: {fault:?}"));
        }
        fault
    }

    /// The caller's process dies here: the world hears of it (`take_crashes`) and kills the actor's
    /// replica; the call never returns.
    pub async fn crash_here(&self) -> ! {
        let actor = ACTOR.try_with(Clone::clone).ok();
        {
            let mut state = self.state();
            state.crashed.push(actor);
            state.progress += 1;
        }
        std::future::pending().await
    }

    /// The callers that crashed since the last call.
    pub fn take_crashes(&self) -> Vec<Option<Actor>> {
        std::mem::take(&mut self.state().crashed)
    }

    /// One leg of the call `peer` `call` (`what` tells it apart) takes its time: returns at once, or once
    /// the world's clock has passed the leg's due time and the world released it. A leg due after
    /// `deadline` (the caller's own timeout) parks until the deadline instead and returns false: the
    /// caller gave up on it.
    pub async fn delay(&self, peer: &str, call: &str, leg: &str, what: impl Hash, deadline: Option<Timestamp>) -> bool {
        let (arrived, in_time) = {
            let mut state = self.state();
            state.progress += 1;
            let (Some(rates), Some(clock)) = (state.rates, state.clock.clone()) else { return true };
            if !rates.latency {
                return true;
            }
            let class = self.roll_locked(&mut state, ("latency", peer, call, leg, &what));
            let size = self.roll_locked(&mut state, ("latency-size", peer, call, leg, &what));
            let latency = latency(class, size);
            let now = *clock.lock().unwrap_or_else(PoisonError::into_inner);
            let due = now.checked_add(latency).unwrap_or(now);
            let (due, in_time) = match deadline {
                Some(deadline) if deadline < due => (deadline.max(now), false),
                _ => (due, true),
            };
            if due == now {
                return in_time;
            }
            let mut hasher = SipHasher13::new();
            (peer, call, leg, &what).hash(&mut hasher);
            state.parked_count += 1;
            let order = state.parked_count;
            let (arrive, arrived) = oneshot::channel();
            state.parked.insert((due, hasher.finish(), order), arrive);
            (arrived, in_time)
        };
        // A dropped sender (the world gone) lets the call on too.
        let _ = arrived.await;
        self.state().progress += 1;
        in_time
    }

    /// The world's clock, once it keeps one here and calls take time.
    pub fn now(&self) -> Option<Timestamp> {
        let state = self.state();
        if !state.rates.is_some_and(|rates| rates.latency) {
            return None;
        }
        let clock = state.clock.clone()?;
        drop(state);
        Some(*clock.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Lets on every parked leg whose due time the world's clock has reached, earliest first; returns how
    /// many were still awaited.
    pub fn release_due(&self) -> usize {
        let mut state = self.state();
        let Some(clock) = state.clock.clone() else { return 0 };
        let now = *clock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut released = 0;
        while let Some(entry) = state.parked.first_entry() {
            if entry.key().0 > now {
                break;
            }
            if entry.remove().send(()).is_ok() {
                released += 1;
            }
        }
        state.progress += released as u64;
        released
    }

    /// When the next leg whose caller still waits for it is due (callers that gave up are forgotten).
    pub fn next_due(&self) -> Option<Timestamp> {
        let mut state = self.state();
        while let Some(entry) = state.parked.first_entry() {
            if !entry.get().is_closed() {
                return Some(entry.key().0);
            }
            entry.remove();
        }
        None
    }

    /// How many legs are on their way (whose callers still wait for them).
    pub fn in_flight(&self) -> usize {
        self.state().parked.values().filter(|arrive| !arrive.is_closed()).count()
    }

    /// A counter that moves whenever a call begins, a leg arrives or a caller crashes.
    pub fn progress(&self) -> u64 {
        self.state().progress
    }

    /// What was injected since the last call.
    pub fn take_injected(&self) -> Vec<String> {
        std::mem::take(&mut self.state().injected)
    }
}

/// How long a leg takes, from two rolls in 0..1000: mostly instant, sometimes milliseconds or seconds,
/// rarely 20–90 s.
fn latency(class: u64, size: u64) -> Duration {
    match class {
        0..800 => Duration::ZERO,
        800..960 => Duration::from_millis(10 + size * 990 / 1000),
        960..992 => Duration::from_millis(1000 + size * 9),
        _ => Duration::from_millis(20_000 + size * 70),
    }
}
