//! Deterministic faults for the fakes, for the simulator: whether a call fails, loses its answer after
//! taking effect, or crashes the caller before or after it takes effect is a function of the seed, the
//! step, the call and how often that same call came before in the step. Nothing depends on the order in
//! which concurrent calls arrive (the tracker's batches come out of hash maps), so a seed always replays
//! the same run.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

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
}

#[derive(Default)]
struct State {
    step: u64,
    rates: Option<Rates>,
    occurrences: BTreeMap<u64, u64>,
    /// A caller crashed since the last `take_crash`.
    crashed: bool,
    /// What was injected, for the trace.
    injected: Vec<String>,
}

/// The fault plan a seed stands for; shared by the fake API and the fake ECS.
pub struct Chaos {
    seed: u64,
    state: Mutex<State>,
    crash: Notify,
}

impl Chaos {
    pub fn new(seed: u64) -> Self {
        Self { seed, state: Mutex::default(), crash: Notify::new() }
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
        let mut hasher = DefaultHasher::new();
        what.hash(&mut hasher);
        let fingerprint = hasher.finish();
        let occurrence = state.occurrences.entry(fingerprint).or_default();
        *occurrence += 1;
        let mut hasher = DefaultHasher::new();
        (self.seed, state.step, fingerprint, *occurrence).hash(&mut hasher);
        hasher.finish() % 1000
    }

    /// A number in 0..1000 that depends on the seed and `what` only (not the step): a world's constant,
    /// such as how long ListTasks lags behind a given task.
    pub fn constant(&self, what: impl Hash) -> u64 {
        let mut hasher = DefaultHasher::new();
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

    /// The caller's process dies here: whoever runs it hears of it (`crashed`), and the call never returns.
    pub async fn crash_here(&self) -> ! {
        self.state().crashed = true;
        self.crash.notify_one();
        std::future::pending().await
    }

    /// Resolves when a caller crashed.
    pub async fn crashed(&self) {
        self.crash.notified().await
    }

    /// Whether a caller crashed since the last call, clearing it.
    pub fn take_crash(&self) -> bool {
        std::mem::take(&mut self.state().crashed)
    }

    /// What was injected since the last call.
    pub fn take_injected(&self) -> Vec<String> {
        std::mem::take(&mut self.state().injected)
    }
}
