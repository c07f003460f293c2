//! The time decisions are made at and observations are stamped with: the system's, or one a test or
//! the simulator moves.

use std::sync::Arc;

use jiff::Timestamp;

/// Where the shell reads the time decisions are made at: the system's, or one a test moves.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<dyn Fn() -> Timestamp + Send + Sync>>);

impl Clock {
    /// A clock that reads `now`.
    pub fn from_fn(now: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(now)))
    }

    pub fn now(&self) -> Timestamp {
        self.0.as_ref().map_or_else(Timestamp::now, |now| now())
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Clock(test)" } else { "Clock(system)" })
    }
}
