//! Kubernetes Events about runs (events.k8s.io/v1). kube-runtime's `Recorder` folds every Event with the
//! same type, reason, action, reporter and object into the first one's series and keeps the first note:
//! a second `Retrying` (another attempt, another message) would show the first one's words, and a
//! `ReconcileError` its first cause. Here a repeat folds into an earlier Event only when its note is the
//! same too; anything else is an Event of its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::Reporter;

use crate::clock::Clock;

/// How long a published Event takes repeats into its series (as kube's Recorder: 6 minutes).
pub const FOLD_WINDOW: Duration = Duration::from_secs(6 * 60);
/// events.k8s.io refuses notes over 1 KiB.
pub use crate::decide::logs::MAX_EVENT_NOTE_BYTES as MAX_NOTE_BYTES;

/// What tells two Events apart: an Event repeats another only if all of it is the same.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    regarding: String,
    warning: bool,
    reason: String,
    note: String,
}

#[derive(Clone, Debug)]
struct Published {
    name: String,
    count: i32,
    last: Timestamp,
}

/// What publishing an Event comes to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Write {
    /// A new Event.
    Create,
    /// The same Event again, within the window: its series count goes up.
    Repeat { name: String, count: i32 },
}

/// A digest of a `Key`: the window holds one entry per Event published, so a fleet's notes are not kept
/// in full (10,000 runs publish tens of thousands of Events within it).
type Digest = [u8; 16];

impl Key {
    fn digest(&self) -> Digest {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        for part in [self.regarding.as_bytes(), &[u8::from(self.warning)], self.reason.as_bytes(), self.note.as_bytes()]
        {
            // Length-prefixed, so no two keys share a byte string.
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        let mut digest = [0; 16];
        digest.copy_from_slice(&hasher.finalize()[..16]);
        digest
    }
}

/// Remembers what was published lately, to fold exact repeats into one Event.
#[derive(Default)]
struct Folds {
    published: HashMap<Digest, Published>,
    /// When each entry was last written, oldest first: expiry without a scan of the whole window.
    written: std::collections::VecDeque<(Timestamp, Digest)>,
}

impl Folds {
    /// Forgets Events past the window, then says whether `key` repeats one still in it.
    fn decide(&mut self, key: &Key, now: Timestamp) -> Write {
        while let Some((at, digest)) = self.written.front().copied() {
            if crate::decide::duration_between(at, now) < FOLD_WINDOW {
                break;
            }
            self.written.pop_front();
            // A later repeat wrote the entry again (and queued itself): only the last write expires it.
            if self.published.get(&digest).is_some_and(|published| published.last == at) {
                self.published.remove(&digest);
            }
        }
        match self.published.get(&key.digest()) {
            Some(published) => Write::Repeat { name: published.name.clone(), count: published.count + 1 },
            None => Write::Create,
        }
    }

    fn remember(&mut self, key: Key, name: String, count: i32, now: Timestamp) {
        let digest = key.digest();
        self.published.insert(digest, Published { name, count, last: now });
        self.written.push_back((now, digest));
    }
}

/// The start of a note that events.k8s.io accepts: its first 1 KiB, cut at a character boundary.
pub fn bounded_note(note: &str) -> &str {
    crate::decide::bound::capped(note, MAX_NOTE_BYTES)
}

/// Publishes Events as `reporter`.
pub struct Publisher {
    client: Client,
    reporter: Reporter,
    folds: Mutex<Folds>,
    /// Event times (and names) come from the shell's clock, so a test that moves it sees them move.
    clock: Clock,
    /// Tells apart Events created within one tick of the clock.
    created: AtomicU64,
}

impl Publisher {
    pub fn new(client: Client, reporter: Reporter, clock: Clock) -> Self {
        Self { client, reporter, folds: Mutex::default(), clock, created: AtomicU64::new(0) }
    }

    /// Who the Events say reported them.
    pub fn reporter(&self) -> &Reporter {
        &self.reporter
    }

    /// Publishes an Event about `regarding` (which must name its namespace). `reason` is also the action.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        warning: bool,
        reason: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let note = bounded_note(note);
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".to_owned());
        let key = Key {
            regarding: regarding.uid.clone().or_else(|| regarding.name.clone()).unwrap_or_default(),
            warning,
            reason: reason.to_owned(),
            note: note.to_owned(),
        };
        let now = self.clock.now();
        let write = self.folds.lock().unwrap_or_else(PoisonError::into_inner).decide(&key, now);
        let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let (name, count) = match write {
            Write::Repeat { name, count } => {
                let series = serde_json::json!({
                    "series": EventSeries { count, last_observed_time: MicroTime(now) }
                });
                events.patch(&name, &PatchParams::default(), &Patch::Merge(&series)).await?;
                (name, count)
            }
            Write::Create => {
                let name = format!(
                    "{}.{:x}{:x}",
                    regarding.name.as_deref().unwrap_or(&self.reporter.controller),
                    now.as_nanosecond(),
                    self.created.fetch_add(1, Ordering::Relaxed)
                );
                let event = Event {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(namespace),
                        ..ObjectMeta::default()
                    },
                    action: Some(reason.to_owned()),
                    reason: Some(reason.to_owned()),
                    note: Some(note.to_owned()),
                    type_: Some(if warning { "Warning" } else { "Normal" }.to_owned()),
                    event_time: Some(MicroTime(now)),
                    regarding: Some(regarding.clone()),
                    reporting_controller: Some(self.reporter.controller.clone()),
                    reporting_instance: Some(
                        self.reporter.instance.clone().unwrap_or_else(|| self.reporter.controller.clone()),
                    ),
                    ..Event::default()
                };
                events.create(&PostParams::default(), &event).await?;
                (name, 1)
            }
        };
        self.folds.lock().unwrap_or_else(PoisonError::into_inner).remember(key, name, count, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(reason: &str, note: &str) -> Key {
        Key { regarding: "uid-1".into(), warning: true, reason: reason.into(), note: note.into() }
    }

    #[test]
    fn only_an_exact_repeat_within_the_window_folds() {
        let mut folds = Folds::default();
        let t0 = Timestamp::UNIX_EPOCH;
        let first = key("Retrying", "attempt 1 failed: exit 3; attempt 2 in 10s");
        assert_eq!(folds.decide(&first, t0), Write::Create);
        folds.remember(first.clone(), "run.1".into(), 1, t0);
        // Same reason, another note: an Event of its own, whatever kube's Recorder would do.
        let second = key("Retrying", "attempt 2 failed: exit 4; attempt 3 in 20s");
        assert_eq!(folds.decide(&second, t0), Write::Create);
        // The very same Event again: its series counts it.
        let t1 = t0.checked_add(Duration::from_secs(60)).unwrap();
        assert_eq!(folds.decide(&first, t1), Write::Repeat { name: "run.1".into(), count: 2 });
        folds.remember(first.clone(), "run.1".into(), 2, t1);
        // Another object's identical Event is its own.
        let other = Key { regarding: "uid-2".into(), ..first.clone() };
        assert_eq!(folds.decide(&other, t1), Write::Create);
        // Past the window, a repeat starts a new Event.
        let later = t1.checked_add(FOLD_WINDOW).unwrap();
        assert_eq!(folds.decide(&first, later), Write::Create);
        assert!(folds.published.is_empty() && folds.written.is_empty(), "forgotten past the window");
    }

    #[test]
    fn a_repeat_keeps_its_event_in_the_window_past_the_first_writes_expiry() {
        let mut folds = Folds::default();
        let t0 = Timestamp::UNIX_EPOCH;
        let at = |minutes: u64| t0.checked_add(Duration::from_secs(minutes * 60)).unwrap();
        let event = key("Retrying", "attempt 1 failed");
        folds.remember(event.clone(), "run.1".into(), 1, t0);
        folds.remember(event.clone(), "run.1".into(), 2, at(5));
        assert_eq!(folds.decide(&event, at(7)), Write::Repeat { name: "run.1".into(), count: 3 });
        assert_eq!(folds.written.len(), 1, "the first write expired, the entry stays for the repeat");
        assert_eq!(folds.decide(&event, at(12)), Write::Create);
    }

    #[test]
    fn notes_are_cut_to_what_the_api_server_accepts_at_a_character_boundary() {
        assert_eq!(bounded_note("short"), "short");
        let wide = "é".repeat(600);
        let cut = bounded_note(&wide);
        assert!(cut.len() <= MAX_NOTE_BYTES && cut.len() >= MAX_NOTE_BYTES - 1, "{}", cut.len());
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
