//! ECS's task state change events as the simulator delivers them. Every change the fake ECS makes to a
//! task ecsrun started goes into one queue (the EventBridge rule's SQS queue); a replica's consumer
//! receives a few at a time, in any order, and hands them to its tracker as the real consumer does. On
//! the way some are delivered twice (SQS is at-least-once; a consumer may die between apply and delete),
//! some never arrive (a rule's delivery that failed), and now and then the queue cannot be read, which
//! puts the tracker back on polling until a receive succeeds again. Seeds with events off never read it.

use std::time::Duration;

use chacha20::ChaCha8Rng;
use ecsrun::api::task_id;
use ecsrun::ecs::tracker::{EventOutcome, Tracker};
use ecsrun::ecs::{Ecs, TaskSnapshot};
use ecsrun::reconcile::RunKey;
use rand::RngExt;

use super::tenants::REGION;
use crate::fakes::FakeEcs;

/// How long a task goes without an event before the tracker describes it (the controller's default).
pub const SWEEP: Duration = Duration::from_secs(300);
/// Out of 100 messages received: delivered again later, and lost before they reach the queue.
const DUPLICATED: u32 = 10;
const LOST: u32 = 3;
/// Out of 100 receives, the queue turns unreadable (or readable again).
const QUEUE_FLIPS: u32 = 8;
/// Messages one receive takes at most (SQS gives up to 10; a few keep each step small).
const BATCH: usize = 3;
/// Out of 100 receives, this many bring a message someone else put on the queue (anyone allowed to send can):
/// a live task STOPPED with exit 0, at the next version or at one far ahead.
const FORGED: u32 = 20;

/// The queue between ECS and the replicas' consumers.
#[derive(Default)]
pub struct TaskEvents {
    /// Messages in the queue, oldest first.
    queued: Vec<TaskSnapshot>,
    unreadable: bool,
    /// Events applied, duplicated and lost so far, for the summary.
    pub delivered: u64,
}

impl TaskEvents {
    /// Takes what ECS sent since the last step into the queue.
    pub fn collect(&mut self, ecs: &FakeEcs) {
        self.queued.extend(ecs.take_events());
    }

    /// One receive by a replica's consumer: messages picked anywhere in the queue (out of order), each
    /// applied through `tracker`, then deleted, or (now and then) left for a later receive. Returns what
    /// happened, for the trace.
    pub fn receive<E: Ecs>(
        &mut self,
        rng: &mut ChaCha8Rng,
        tracker: &Tracker<RunKey, E>,
        ecs: &FakeEcs,
    ) -> Vec<String> {
        if rng.random_range(0..100) < QUEUE_FLIPS {
            self.unreadable = !self.unreadable;
        }
        if self.unreadable {
            // The consumer's receive fails: its region is polled again.
            tracker.events_lost(REGION);
            return vec!["cannot read the task events queue: the tracker polls".into()];
        }
        tracker.events_flowing(REGION, SWEEP);
        let mut said = Vec::new();
        let live = ecs.live();
        if rng.random_range(0..100) < FORGED && !live.is_empty() {
            let arn = &live[rng.random_range(0..live.len())];
            if let Some(task) = ecs.task(arn) {
                let ahead = if rng.random_range(0..2) == 0 { 1 } else { 1_000_000 };
                let mut forged = task.snapshot.clone();
                forged.version = Some(forged.version.unwrap_or_default() + ahead);
                forged.last_status = Some("STOPPED".into());
                forged.desired_status = Some("STOPPED".into());
                forged.stop_code = Some("EssentialContainerExited".into());
                forged.started_for_namespace = None;
                for container in &mut forged.containers {
                    container.exit_code = Some(0);
                }
                let outcome = tracker.apply_event(REGION, forged);
                said.push(format!("task {} forged STOPPED, {ahead} version(s) ahead: {outcome:?}", task_id(arn)));
            }
        }
        for _ in 0..BATCH.min(self.queued.len()) {
            let at = rng.random_range(0..self.queued.len());
            let roll = rng.random_range(0..100);
            let event = if roll < DUPLICATED { self.queued[at].clone() } else { self.queued.remove(at) };
            let what = format!(
                "task {} v{} {}",
                task_id(&event.task_arn),
                event.version.unwrap_or_default(),
                event.last_status.as_ref().map_or("?", |last| last.as_str())
            );
            if (DUPLICATED..DUPLICATED + LOST).contains(&roll) {
                said.push(format!("{what}: lost"));
                continue;
            }
            self.delivered += 1;
            let outcome = match tracker.apply_event(REGION, event) {
                EventOutcome::Applied => "applied",
                EventOutcome::Stale => "stale",
                EventOutcome::Unfollowed => "unfollowed",
                EventOutcome::Undescribed => "undescribed",
                EventOutcome::Confirming => "confirming",
                EventOutcome::Untrusted => "untrusted",
            };
            let again = if roll < DUPLICATED { ", delivered again later" } else { "" };
            said.push(format!("{what}: {outcome}{again}"));
        }
        said
    }

    /// Every queued message to `tracker`, in order, none lost: the quiet phase's consumer.
    pub fn drain<E: Ecs>(&mut self, tracker: &Tracker<RunKey, E>) {
        self.unreadable = false;
        tracker.events_flowing(REGION, SWEEP);
        for event in std::mem::take(&mut self.queued) {
            self.delivered += 1;
            tracker.apply_event(REGION, event);
        }
    }
}
