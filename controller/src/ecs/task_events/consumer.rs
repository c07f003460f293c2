//! One queue's consumer: receive up to 10 messages, apply each through the tracker, then delete them, never
//! before (a message deleted before it is applied is a transition lost if the process dies in between).
//! Delivery is at least once and unordered; the tracker drops what is not above the version it applied.
//! While receiving fails, the queue's region is polled as without events. Several receivers share one
//! consumer: a burst of stops (thousands of events at once) drains in parallel round trips.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tracing::{info, warn};

use super::queue::{EventQueue, QueueError};
use super::{Body, parse};
use crate::ecs::Ecs;
use crate::ecs::tracker::{EventOutcome, Tracker};
use crate::metrics::Metrics;

/// Where the consumer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Feed {
    /// Not received anything yet: the region is polled.
    Starting,
    Flowing,
    /// Receiving or deleting failed: the region is polled until a receive succeeds again.
    Failing,
}

/// What a round changed, for the shell to tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    None,
    /// Events flow (first time, or again after `Lost`).
    Flowing {
        again: bool,
    },
    /// Events stopped flowing: the region is polled again.
    Lost(QueueError),
}

/// What one round did, for tests and the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub received: usize,
    pub applied: usize,
    pub stale: usize,
    pub unfollowed: usize,
    pub undescribed: usize,
    /// Events that could end a run (STOPPED, RUNNING), described before they count.
    pub confirming: usize,
    /// Versions far ahead of what ECS last answered: described instead.
    pub untrusted: usize,
    /// Envelopes whose account or region is not the task's own: dropped.
    pub forged: usize,
    pub foreign: usize,
    pub malformed: usize,
    pub deleted: usize,
}

pub struct Consumer<Q, K, E> {
    queue: Q,
    tracker: Tracker<K, E>,
    /// The region whose tasks the queue's events are about (the tracker's feed is per region).
    region: String,
    /// How long a task goes without an event before the sweep describes it.
    sweep: Duration,
    metrics: Arc<Metrics>,
    /// Shared by the receivers: a change of feed is told once, by the receiver that made it.
    feed: std::sync::Mutex<Feed>,
    /// Turns true when this replica stops leading: it takes and deletes no more messages, so that the
    /// events it took but did not delete come back to the next leader.
    stop: Option<tokio::sync::watch::Receiver<bool>>,
}

impl<Q, K, E> Consumer<Q, K, E>
where
    Q: EventQueue,
    K: Clone + Eq + std::hash::Hash + Send + Sync + 'static,
    E: Ecs,
{
    pub fn new(queue: Q, tracker: Tracker<K, E>, region: String, sweep: Duration, metrics: Arc<Metrics>) -> Self {
        metrics.task_events_flowing.with_label_values(&[&region]).set(0);
        Self { queue, tracker, region, sweep, metrics, feed: std::sync::Mutex::new(Feed::Starting), stop: None }
    }

    /// The consumer of a leader's term, which ends when `stop` turns true.
    pub fn until(mut self, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Whether this replica has stopped leading.
    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|stop| *stop.borrow())
    }

    pub fn url(&self) -> &str {
        self.queue.url()
    }

    fn feed(&self) -> std::sync::MutexGuard<'_, Feed> {
        self.feed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One receive, apply and delete.
    pub async fn round(&self) -> (Round, Change) {
        if self.stopping() {
            return (Round::default(), Change::None);
        }
        // Until the queue has answered once (at start, after a failure), a short poll: the region leaves
        // polling as soon as the queue reads, not a long poll later.
        let wait = if *self.feed() == Feed::Flowing { super::queue::WAIT } else { Duration::ZERO };
        let messages = match self.queue.receive(wait).await {
            Ok(messages) => messages,
            Err(error) => return (Round::default(), self.lost(error)),
        };
        let change = self.flowing();
        let mut round = Round { received: messages.len(), ..Round::default() };
        for message in &messages {
            let outcome = match parse(&message.body) {
                Ok(Body::Task(event)) if let Some(why) = event.forged(&self.region) => {
                    warn!(queue = %self.queue.url(), message = %message.id, task_arn = %event.task.task_arn, %why, "dropping an event that cannot be ECS's");
                    round.forged += 1;
                    "forged"
                }
                Ok(Body::Task(event)) => {
                    let updated_at = event.updated_at;
                    match self.tracker.apply_event(&event.region, event.task) {
                        EventOutcome::Applied => {
                            if let Some(updated_at) = updated_at {
                                let delay = Timestamp::now().duration_since(updated_at).as_secs_f64().max(0.0);
                                self.metrics.task_event_delay.observe(delay);
                            }
                            round.applied += 1;
                            "applied"
                        }
                        EventOutcome::Stale => {
                            round.stale += 1;
                            "stale"
                        }
                        EventOutcome::Unfollowed => {
                            round.unfollowed += 1;
                            "unfollowed"
                        }
                        EventOutcome::Undescribed => {
                            round.undescribed += 1;
                            "undescribed"
                        }
                        EventOutcome::Confirming => {
                            round.confirming += 1;
                            "confirming"
                        }
                        EventOutcome::Untrusted => {
                            round.untrusted += 1;
                            "untrusted"
                        }
                    }
                }
                Ok(Body::Foreign) => {
                    round.foreign += 1;
                    "foreign"
                }
                Err(error) => {
                    // Deleted all the same: a body that cannot be read now never will be.
                    warn!(queue = %self.queue.url(), message = %message.id, %error, "dropping an unreadable message");
                    round.malformed += 1;
                    "malformed"
                }
            };
            self.metrics.task_events.with_label_values(&[outcome]).inc();
        }
        // A deposed leader deletes nothing: the messages come back to the new one after their
        // visibility timeout, and what this tracker applied dies with its term.
        if self.stopping() {
            return (round, change);
        }
        match self.queue.delete(&messages).await {
            Ok(deleted) => round.deleted = deleted,
            // Applied already; they come back after the visibility timeout and are dropped as stale.
            Err(error) => return (round, self.lost(error)),
        }
        (round, change)
    }

    fn flowing(&self) -> Change {
        let mut feed = self.feed();
        let before = *feed;
        if before == Feed::Flowing {
            return Change::None;
        }
        *feed = Feed::Flowing;
        self.tracker.events_flowing(&self.region, self.sweep);
        self.metrics.task_events_flowing.with_label_values(&[&self.region]).set(1);
        Change::Flowing { again: before == Feed::Failing }
    }

    fn lost(&self, error: QueueError) -> Change {
        let mut feed = self.feed();
        let before = *feed;
        *feed = Feed::Failing;
        self.tracker.events_lost(&self.region);
        self.metrics.task_events_flowing.with_label_values(&[&self.region]).set(0);
        if before == Feed::Failing { Change::None } else { Change::Lost(error) }
    }

    /// Whether the last round failed: the caller waits before the next.
    pub fn failing(&self) -> bool {
        *self.feed() == Feed::Failing
    }
}

/// The wait after the `failures`-th failed round in a row: 1 s doubling to a minute.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60))
}

/// Runs `receivers` receivers of one consumer until dropped, telling each change through `tell` (the
/// shell's Events and log).
pub async fn run<Q, K, E, F, Fut>(consumer: Consumer<Q, K, E>, receivers: usize, tell: F)
where
    Q: EventQueue,
    K: Clone + Eq + std::hash::Hash + Send + Sync + 'static,
    E: Ecs,
    F: Fn(Change) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    info!(queue = %consumer.url(), region = %consumer.region, sweep = ?consumer.sweep, receivers, "following task state change events");
    let receiver = || async {
        let mut failures = 0;
        while !consumer.stopping() {
            let (_, change) = consumer.round().await;
            if change != Change::None {
                tell(change).await;
            }
            if consumer.failing() {
                tokio::time::sleep(backoff(failures)).await;
                failures += 1;
            } else {
                failures = 0;
            }
        }
    };
    futures::future::join_all((0..receivers.max(1)).map(|_| receiver())).await;
}

#[cfg(test)]
mod tests;
