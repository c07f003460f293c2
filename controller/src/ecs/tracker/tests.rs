//! The tracker against a fake ECS port that records every DescribeTasks call, in paused tokio time.

use std::sync::Mutex;

use super::*;
use crate::ecs::{Described, EcsErrorKind, Identity, Request, Response};

const EVERY: Duration = Duration::from_secs(30);
const TICK: Duration = Duration::from_secs(1);

/// ECS as far as DescribeTasks goes: a task's lastStatus by ARN; unknown ARNs are missing.
#[derive(Default)]
struct FakeEcs {
    tasks: Mutex<HashMap<String, &'static str>>,
    calls: Mutex<Vec<Vec<String>>>,
    fail: Mutex<bool>,
    /// ECS's version of a task, when a test gives one.
    versions: Mutex<HashMap<String, i64>>,
}

impl FakeEcs {
    fn set(&self, arn: &str, last_status: &'static str) {
        self.tasks.lock().unwrap().insert(arn.into(), last_status);
    }
    fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().unwrap().clone()
    }
}

impl Ecs for FakeEcs {
    async fn send(&self, _: &EcsTarget, request: Request<'_>) -> Result<Response, EcsError> {
        let Request::DescribeTasks(arns) = request else { unreachable!("the tracker only describes") };
        self.calls.lock().unwrap().push(arns.to_vec());
        if *self.fail.lock().unwrap() {
            return Err(EcsError::new(EcsErrorKind::Server, "DescribeTasks", "internal"));
        }
        let known = self.tasks.lock().unwrap();
        let versions = self.versions.lock().unwrap();
        Ok(Response::DescribeTasks(Described {
            tasks: arns
                .iter()
                .filter_map(|arn| {
                    known.get(arn).map(|status| TaskSnapshot {
                        task_arn: arn.clone(),
                        last_status: Some((*status).into()),
                        version: versions.get(arn).copied(),
                        ..TaskSnapshot::default()
                    })
                })
                .collect(),
            missing: arns.iter().filter(|arn| !known.contains_key(*arn)).cloned().collect(),
        }))
    }
}

fn target(cluster: &str) -> EcsTarget {
    EcsTarget { region: "eu-west-1".into(), identity: Identity::Default, cluster: cluster.into() }
}

fn arn(i: usize) -> String {
    format!("arn:aws:ecs:eu-west-1:1:task/c/{i}")
}

struct Harness {
    ecs: Arc<FakeEcs>,
    tracker: Tracker<usize, FakeEcs>,
    changes: mpsc::UnboundedReceiver<usize>,
    sweeper: tokio::task::JoinHandle<()>,
}

impl Harness {
    fn new(batch_size: usize) -> Self {
        let ecs = Arc::new(FakeEcs::default());
        let tracker = Tracker::new(ecs.clone(), batch_size, crate::clock::Clock::default());
        let changes = tracker.restart();
        let sweeper = tokio::spawn(tracker.clone().run(TICK));
        Self { ecs, tracker, changes, sweeper }
    }

    /// Follows task i for key i, running.
    fn follow(&self, range: std::ops::Range<usize>) {
        for i in range {
            self.ecs.set(&arn(i), "RUNNING");
            self.tracker.follow(&i, &target("c"), &[arn(i)], EVERY);
        }
    }

    fn drain(&mut self) -> Vec<usize> {
        let mut keys = Vec::new();
        while let Ok(key) = self.changes.try_recv() {
            keys.push(key);
        }
        keys.sort();
        keys
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.sweeper.abort();
    }
}

async fn sleep(seconds: u64) {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
}

#[tokio::test(start_paused = true)]
async fn first_sweep_describes_250_tasks_in_3_calls_and_reports_each_run_once() {
    let mut h = Harness::new(MAX_BATCH);
    h.follow(0..250);
    sleep(2).await;
    let sizes: Vec<usize> = h.ecs.calls().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![100, 100, 50]);
    assert_eq!(h.drain(), (0..250).collect::<Vec<_>>(), "every run hears of its first observation");
    let seen = h.tracker.last_seen(&target("c"), &arn(7)).unwrap().look.unwrap();
    assert!(matches!(seen, TaskLookup::Found(task) if task.last_status == Some("RUNNING".into())));
}

#[tokio::test(start_paused = true)]
async fn unchanged_tasks_are_described_once_per_interval_and_report_nothing() {
    let mut h = Harness::new(MAX_BATCH);
    h.follow(0..100);
    sleep(2).await;
    h.drain();
    sleep(10 * 30).await;
    let calls = h.ecs.calls().len();
    assert!((10..=12).contains(&calls), "{calls} calls for 100 tasks over 10 intervals");
    assert_eq!(h.drain(), Vec::<usize>::new(), "no change, no reconcile");
}

#[tokio::test(start_paused = true)]
async fn a_change_wakes_only_its_run_and_a_stopped_task_is_not_described_again() {
    let mut h = Harness::new(MAX_BATCH);
    h.follow(0..10);
    sleep(2).await;
    h.drain();
    h.ecs.set(&arn(3), "STOPPED");
    sleep(31).await;
    assert_eq!(h.drain(), vec![3]);
    let before = h.ecs.calls().len();
    sleep(31).await;
    let last = h.ecs.calls()[before..].concat();
    assert!(!last.is_empty() && !last.contains(&arn(3)), "a STOPPED task is final: {last:?}");
}

#[tokio::test(start_paused = true)]
async fn forgotten_and_refollowed_tasks() {
    let mut h = Harness::new(MAX_BATCH);
    h.follow(0..2);
    sleep(2).await;
    h.drain();
    h.tracker.forget(&0);
    // Run 1 moves on to a new task (a retry): the old one is dropped.
    h.ecs.set("next", "PROVISIONING");
    h.tracker.follow(&1, &target("c"), &["next".to_string()], EVERY);
    assert_eq!(h.tracker.len(), 1);
    sleep(2).await;
    assert_eq!(h.ecs.calls().last().unwrap(), &vec!["next".to_string()]);
    assert_eq!(h.drain(), vec![1]);
    assert!(h.tracker.last_seen(&target("c"), &arn(0)).is_none());
}

/// The indexes share targets and ARNs: whatever a key follows next, exactly that is followed, once.
#[tokio::test(start_paused = true)]
async fn a_key_follows_exactly_its_latest_list_in_its_latest_target() {
    let h = Harness::new(MAX_BATCH);
    let (a, b) = ("a".to_string(), "b".to_string());
    h.tracker.follow(&7, &target("c"), &[a.clone(), b.clone(), a.clone()], EVERY);
    assert_eq!(h.tracker.len(), 2, "a listed twice is followed once");
    h.tracker.follow(&7, &target("c"), std::slice::from_ref(&b), EVERY);
    assert_eq!(h.tracker.len(), 1);
    // The same ARN in another cluster is another task: the old one is dropped.
    h.tracker.follow(&7, &target("d"), std::slice::from_ref(&b), EVERY);
    assert_eq!(h.tracker.len(), 1);
    h.tracker.follow(&8, &target("d"), std::slice::from_ref(&a), EVERY);
    h.tracker.sweep_now().await;
    assert!(h.tracker.last_seen(&target("c"), &b).is_none());
    assert!(h.tracker.last_seen(&target("d"), &b).is_some());
    h.tracker.forget(&7);
    assert_eq!(h.tracker.len(), 1, "key 8's task stays");
    h.tracker.follow(&8, &target("d"), &[], EVERY);
    assert!(h.tracker.is_empty());
}

#[tokio::test(start_paused = true)]
async fn errors_reach_the_run_once_and_recovery_wakes_it_again() {
    let mut h = Harness::new(MAX_BATCH);
    h.follow(0..3);
    sleep(2).await;
    h.drain();
    *h.ecs.fail.lock().unwrap() = true;
    sleep(31).await;
    assert_eq!(h.drain(), vec![0, 1, 2]);
    assert!(
        matches!(h.tracker.last_seen(&target("c"), &arn(0)).map(|seen| seen.look), Some(Err(e)) if e.kind == EcsErrorKind::Server)
    );
    sleep(30).await;
    assert_eq!(h.drain(), Vec::<usize>::new(), "the same error again is no news");
    *h.ecs.fail.lock().unwrap() = false;
    sleep(30).await;
    assert_eq!(h.drain(), vec![0, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn staggered_tasks_settle_into_full_batches() {
    // 150 tasks followed in three waves 10 s apart: without filling, three calls per interval;
    // the floor is ceil(150 / 100) = 2.
    let h = Harness::new(MAX_BATCH);
    h.follow(0..50);
    sleep(10).await;
    h.follow(50..100);
    sleep(10).await;
    h.follow(100..150);
    sleep(120).await;
    let settled = h.ecs.calls().len();
    sleep(10 * 30).await;
    let calls = &h.ecs.calls()[settled..];
    assert!(calls.len() <= 2 * 10 + 1, "{} calls over 10 intervals", calls.len());
    // Every task is still looked at at least once per interval.
    for i in 0..150 {
        let seen = calls.iter().filter(|call| call.contains(&arn(i))).count();
        assert!(seen >= 9, "task {i} described {seen} times in 10 intervals");
    }
}

#[tokio::test(start_paused = true)]
async fn batch_size_one_is_a_call_per_task() {
    let h = Harness::new(1);
    h.follow(0..20);
    sleep(2).await;
    assert_eq!(h.ecs.calls().len(), 20);
    assert!(h.ecs.calls().iter().all(|call| call.len() == 1));
}

#[tokio::test(start_paused = true)]
async fn a_recorded_snapshot_is_the_latest_observation_without_a_call() {
    let mut h = Harness::new(MAX_BATCH);
    h.tracker.follow(&9, &target("c"), &[arn(9)], EVERY);
    let stopping = TaskSnapshot {
        task_arn: arn(9),
        last_status: Some("RUNNING".into()),
        desired_status: Some("STOPPED".into()),
        ..TaskSnapshot::default()
    };
    h.tracker.record(&target("c"), &stopping);
    sleep(2).await;
    assert!(h.ecs.calls().is_empty(), "nothing due until an interval after the snapshot");
    assert_eq!(h.tracker.last_seen(&target("c"), &arn(9)).map(|seen| seen.look), Some(Ok(TaskLookup::Found(stopping))));
    assert_eq!(h.drain(), Vec::<usize>::new());
    // A shorter interval (deletion waiting for STOPPED) takes effect at once.
    h.tracker.follow(&9, &target("c"), &[arn(9)], Duration::from_secs(5));
    sleep(6).await;
    assert_eq!(h.ecs.calls().len(), 1);
}

// Task state change events.

const SWEEP: Duration = Duration::from_secs(300);

fn event(i: usize, last_status: &str, version: i64) -> TaskSnapshot {
    TaskSnapshot {
        task_arn: arn(i),
        last_status: Some(last_status.into()),
        version: Some(version),
        ..TaskSnapshot::default()
    }
}

fn status_of(h: &Harness, i: usize) -> Option<String> {
    match h.tracker.last_seen(&target("c"), &arn(i))?.look {
        Ok(TaskLookup::Found(task)) => task.last_status_str().map(str::to_owned),
        _ => None,
    }
}

#[tokio::test(start_paused = true)]
async fn while_events_flow_tasks_are_described_only_by_the_sweep() {
    let mut h = Harness::new(MAX_BATCH);
    h.tracker.events_flowing("eu-west-1", SWEEP);
    h.follow(0..150);
    sleep(2).await;
    assert_eq!(h.ecs.calls().len(), 2, "every task is looked at once when it is first followed");
    h.drain();
    sleep(290).await;
    assert_eq!(h.ecs.calls().len(), 2, "no call within the sweep interval, though the runs poll every 30 s");
    assert_eq!(h.tracker.apply_event("eu-west-1", event(5, "DEPROVISIONING", 3)), EventOutcome::Applied);
    assert_eq!(h.drain(), vec![5], "an event wakes its run at once");
    assert_eq!(status_of(&h, 5).as_deref(), Some("DEPROVISIONING"));
    // A STOPPED event is confirmed by DescribeTasks at once, not at the next tick, and then wakes its run.
    h.ecs.set(&arn(4), "STOPPED");
    assert_eq!(h.tracker.apply_event("eu-west-1", event(4, "STOPPED", 3)), EventOutcome::Confirming);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(h.ecs.calls().len(), 3, "described without waiting for the tick");
    assert!(h.ecs.calls()[2].contains(&arn(4)), "in a batch filled with the tasks due soonest");
    assert_eq!(h.drain(), vec![4]);
    assert_eq!(status_of(&h, 4).as_deref(), Some("STOPPED"));
    sleep(20).await;
    let mut swept: Vec<String> = h.ecs.calls()[2..].concat();
    swept.sort();
    swept.dedup();
    assert_eq!(h.ecs.calls()[2..].concat().len(), swept.len(), "each task described once");
    assert_eq!(swept.len(), 149, "every task without an event for 300 s, and the STOPPED one once");
    assert!(!swept.contains(&arn(5)));
}

#[tokio::test(start_paused = true)]
async fn duplicates_and_older_events_are_stale_and_change_nothing() {
    let mut h = Harness::new(MAX_BATCH);
    h.tracker.events_flowing("eu-west-1", SWEEP);
    h.follow(0..1);
    sleep(2).await;
    h.drain();
    assert_eq!(h.tracker.apply_event("eu-west-1", event(0, "DEPROVISIONING", 5)), EventOutcome::Applied);
    assert_eq!(h.tracker.apply_event("eu-west-1", event(0, "DEPROVISIONING", 5)), EventOutcome::Stale, "a duplicate");
    assert_eq!(h.tracker.apply_event("eu-west-1", event(0, "PENDING", 2)), EventOutcome::Stale, "late and older");
    assert_eq!(status_of(&h, 0).as_deref(), Some("DEPROVISIONING"), "never regressed");
    assert_eq!(h.drain(), vec![0], "one wake-up for the one change");
    let unversioned = TaskSnapshot { version: None, ..event(0, "RUNNING", 0) };
    assert_eq!(h.tracker.apply_event("eu-west-1", unversioned), EventOutcome::Stale, "no version, no order");
}

#[tokio::test(start_paused = true)]
async fn events_of_tasks_nobody_follows_or_of_another_region_are_unfollowed() {
    let h = Harness::new(MAX_BATCH);
    h.follow(0..1);
    assert_eq!(h.tracker.apply_event("eu-west-1", event(9, "RUNNING", 1)), EventOutcome::Unfollowed);
    assert_eq!(h.tracker.apply_event("us-east-1", event(0, "RUNNING", 1)), EventOutcome::Unfollowed);
}

#[tokio::test(start_paused = true)]
async fn an_event_of_a_task_not_described_yet_waits_for_its_description() {
    let mut h = Harness::new(MAX_BATCH);
    h.tracker.events_flowing("eu-west-1", SWEEP);
    h.ecs.set(&arn(0), "RUNNING");
    // An adopted task: whose it is (its namespace tag) only DescribeTasks says; events carry no tags.
    h.tracker.follow(&0, &target("c"), &[arn(0)], EVERY);
    assert_eq!(h.tracker.apply_event("eu-west-1", event(0, "RUNNING", 2)), EventOutcome::Undescribed);
    assert_eq!(h.tracker.last_seen(&target("c"), &arn(0)), None, "not taken as the task's look");
    assert!(h.drain().is_empty());
    sleep(2).await;
    assert_eq!(h.ecs.calls().len(), 1, "described at the next tick");
    assert_eq!(status_of(&h, 0).as_deref(), Some("RUNNING"));
    assert_eq!(h.tracker.apply_event("eu-west-1", event(0, "STOPPING", 9)), EventOutcome::Applied, "then events apply");
}

/// Issue 35, finding 7: StopTask answers with the task as it was when ECS took the call; an event that
/// came first with a later version (the task already STOPPED) is not overwritten by that answer.
#[tokio::test(start_paused = true)]
async fn a_stop_answer_older_than_the_applied_event_does_not_undo_it() {
    let mut h = Harness::new(MAX_BATCH);
    h.follow(0..1);
    sleep(2).await;
    h.drain();
    assert_eq!(h.tracker.apply_event("eu-west-1", event(0, "DEPROVISIONING", 7)), EventOutcome::Applied);
    let answered = TaskSnapshot { desired_status: Some("STOPPED".into()), ..event(0, "RUNNING", 6) };
    h.tracker.record(&target("c"), &answered);
    assert_eq!(status_of(&h, 0).as_deref(), Some("DEPROVISIONING"), "the newer look stands");
    // An answer as new or newer is taken.
    let newer = TaskSnapshot { desired_status: Some("STOPPED".into()), ..event(0, "STOPPED", 8) };
    h.tracker.record(&target("c"), &newer);
    assert_eq!(h.tracker.last_seen(&target("c"), &arn(0)).map(|seen| seen.look), Some(Ok(TaskLookup::Found(newer))));
}

#[tokio::test(start_paused = true)]
async fn an_answer_older_than_the_applied_event_does_not_undo_it() {
    let mut h = Harness::new(MAX_BATCH);
    h.follow(0..1);
    h.ecs.versions.lock().unwrap().insert(arn(0), 2);
    sleep(2).await;
    h.drain();
    // ECS's answer lags its own event (eventual consistency): RUNNING at version 2 after STOPPING at 4.
    h.tracker.apply_event("eu-west-1", event(0, "STOPPING", 4));
    assert_eq!(h.drain(), vec![0]);
    h.tracker.follow(&0, &target("c"), &[arn(0)], Duration::from_secs(5));
    h.tracker.sweep_now().await;
    assert_eq!(status_of(&h, 0).as_deref(), Some("STOPPING"));
    assert_eq!(h.drain(), Vec::<usize>::new());
    // A newer answer is taken as ever.
    h.tracker.apply_event("eu-west-1", event(0, "DEPROVISIONING", 5));
    h.ecs.versions.lock().unwrap().insert(arn(0), 6);
    h.tracker.sweep_now().await;
    assert_eq!(h.drain(), vec![0, 0]);
}

#[tokio::test(start_paused = true)]
async fn when_events_are_lost_every_task_is_described_at_once_then_polled_again() {
    let mut h = Harness::new(MAX_BATCH);
    h.tracker.events_flowing("eu-west-1", SWEEP);
    h.follow(0..50);
    sleep(2).await;
    h.drain();
    sleep(60).await;
    assert_eq!(h.ecs.calls().len(), 1);
    h.ecs.set(&arn(7), "STOPPED");
    assert!(h.tracker.events_lost("eu-west-1"));
    assert!(!h.tracker.events_lost("eu-west-1"), "lost once; no second sweep for the same outage");
    sleep(2).await;
    assert_eq!(h.ecs.calls().len(), 2, "one call for the 50 tasks at once");
    assert_eq!(h.drain(), vec![7], "the transition the events missed is caught");
    sleep(31).await;
    assert_eq!(h.ecs.calls().len(), 3, "back on the runs' own interval");
}

#[tokio::test(start_paused = true)]
async fn tasks_polled_before_events_flow_are_swept_from_their_last_look() {
    let h = Harness::new(MAX_BATCH);
    let hourly = Duration::from_secs(600);
    for i in 0..3 {
        h.tracker.follow(&i, &target("c"), &[arn(i)], hourly);
        h.ecs.set(&arn(i), "RUNNING");
    }
    sleep(2).await;
    assert_eq!(h.ecs.calls().len(), 1);
    h.tracker.events_flowing("eu-west-1", Duration::from_secs(60));
    sleep(61).await;
    assert_eq!(h.ecs.calls().len(), 2, "swept a minute after the last look, not ten");
}

/// Issue 35, finding 3: a version far ahead of what ECS last answered is not applied (it would make every
/// later answer look older and blind the tracker to DescribeTasks); the task is described at once instead.
#[tokio::test(start_paused = true)]
async fn an_event_far_ahead_of_the_described_version_is_not_trusted() {
    let mut h = Harness::new(MAX_BATCH);
    h.follow(0..1);
    h.ecs.versions.lock().unwrap().insert(arn(0), 3);
    sleep(2).await;
    h.drain();
    let forged = event(0, "DEPROVISIONING", 3 + MAX_VERSION_LEAP + 1);
    assert_eq!(h.tracker.apply_event("eu-west-1", forged), EventOutcome::Untrusted);
    assert_eq!(status_of(&h, 0).as_deref(), Some("RUNNING"));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(h.ecs.calls().len(), 2, "described at once");
    h.ecs.versions.lock().unwrap().insert(arn(0), 5);
    h.ecs.set(&arn(0), "STOPPED");
    h.tracker.sweep_now().await;
    assert_eq!(status_of(&h, 0).as_deref(), Some("STOPPED"), "ECS's answers are still taken");
}
