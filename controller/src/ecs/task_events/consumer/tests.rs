//! The consumer against an in-memory queue and a real tracker (over the recording ECS double).

use std::collections::VecDeque;
use std::sync::Mutex;

use super::*;
use crate::ecs::task_events::queue::Message;
use crate::ecs::testing::Recording;
use crate::ecs::{EcsTarget, Identity, TaskLookup, TaskSnapshot};

const REGION: &str = "eu-west-1";
const ARN: &str = "arn:aws:ecs:eu-west-1:111122223333:task/batch/t1";

/// A queue whose receives answer from a script; deletes are recorded with what the tracker had applied by
/// then, to show that nothing is deleted before it is applied.
struct ScriptedQueue {
    /// Set: the replica stops leading while this receive is under way.
    deposed_during_receive: Mutex<Option<tokio::sync::watch::Sender<bool>>>,
    receives: Mutex<VecDeque<Result<Vec<Message>, QueueError>>>,
    deletes: Mutex<Vec<(Vec<String>, Option<String>)>>,
    delete_error: Mutex<Option<QueueError>>,
    waits: Mutex<Vec<Duration>>,
    tracker: Tracker<usize, Recording>,
}

impl EventQueue for Arc<ScriptedQueue> {
    fn url(&self) -> &str {
        "https://sqs.eu-west-1.amazonaws.com/111122223333/ecsrun-task-events"
    }

    async fn receive(&self, wait: Duration) -> Result<Vec<Message>, QueueError> {
        self.waits.lock().unwrap().push(wait);
        if let Some(stop) = self.deposed_during_receive.lock().unwrap().as_ref() {
            let _ = stop.send(true);
        }
        self.receives.lock().unwrap().pop_front().unwrap_or(Ok(Vec::new()))
    }

    async fn delete(&self, messages: &[Message]) -> Result<usize, QueueError> {
        let applied = match self.tracker.last_seen(&target(), ARN).map(|seen| seen.look) {
            Some(Ok(TaskLookup::Found(task))) => task.last_status_str().map(str::to_owned),
            _ => None,
        };
        let ids = messages.iter().map(|message| message.id.clone()).collect();
        self.deletes.lock().unwrap().push((ids, applied));
        match self.delete_error.lock().unwrap().clone() {
            Some(error) => Err(error),
            None => Ok(messages.len()),
        }
    }
}

fn target() -> EcsTarget {
    EcsTarget { region: REGION.into(), identity: Identity::Default, cluster: "batch".into() }
}

fn body(last_status: &str, version: i64, started_by: &str) -> String {
    envelope("111122223333", REGION, last_status, version, started_by)
}

fn envelope(account: &str, region: &str, last_status: &str, version: i64, started_by: &str) -> String {
    serde_json::json!({
        "detail-type": "ECS Task State Change", "source": "aws.ecs", "account": account, "region": region,
        "detail": {"taskArn": ARN, "lastStatus": last_status, "version": version, "startedBy": started_by,
                   "updatedAt": "2026-12-03T10:00:00Z", "containers": []}
    })
    .to_string()
}

fn message(id: &str, body: String) -> Message {
    Message { id: id.into(), receipt: format!("receipt-{id}"), body }
}

type TestConsumer = Consumer<Arc<ScriptedQueue>, usize, Recording>;

fn setup(receives: Vec<Result<Vec<Message>, QueueError>>) -> (TestConsumer, Arc<ScriptedQueue>, Arc<Metrics>) {
    let tracker = Tracker::new(Arc::new(Recording::default()), 100, crate::clock::Clock::default());
    let _changes = tracker.restart();
    tracker.follow(&1, &target(), &[ARN.to_owned()], Duration::from_secs(30));
    // Launched: RunTask's answer is the first look, with the task's tags.
    let launched = TaskSnapshot {
        task_arn: ARN.into(),
        last_status: Some("PROVISIONING".into()),
        started_for_namespace: Some("jobs".into()),
        version: Some(1),
        ..TaskSnapshot::default()
    };
    tracker.record(&target(), &launched);
    let queue = Arc::new(ScriptedQueue {
        deposed_during_receive: Mutex::default(),
        receives: Mutex::new(receives.into()),
        deletes: Mutex::default(),
        delete_error: Mutex::default(),
        waits: Mutex::default(),
        tracker: tracker.clone(),
    });
    let metrics = Arc::new(Metrics::new().unwrap());
    let consumer = Consumer::new(queue.clone(), tracker, REGION.into(), Duration::from_secs(300), metrics.clone());
    (consumer, queue, metrics)
}

#[tokio::test]
async fn a_batch_is_applied_then_deleted_whatever_each_message_was() {
    let (consumer, queue, metrics) = setup(vec![Ok(vec![
        message("pending", body("PENDING", 2, "ecsrun/uid-1")),
        message("deprovisioning", body("DEPROVISIONING", 4, "ecsrun/uid-1")),
        message("duplicate", body("DEPROVISIONING", 4, "ecsrun/uid-1")),
        message("late", body("PROVISIONING", 1, "ecsrun/uid-1")),
        message("stopped", body("STOPPED", 5, "ecsrun/uid-1")),
        message("service", body("RUNNING", 1, "ecs-svc/123")),
        message("garbage", "{".into()),
    ])]);
    let (round, change) = consumer.round().await;
    assert_eq!(change, Change::Flowing { again: false });
    assert_eq!(
        round,
        Round {
            received: 7,
            applied: 2,
            stale: 2,
            unfollowed: 0,
            undescribed: 0,
            confirming: 1,
            untrusted: 0,
            forged: 0,
            foreign: 1,
            malformed: 1,
            deleted: 7
        }
    );
    let deletes = queue.deletes.lock().unwrap().clone();
    assert_eq!(deletes.len(), 1, "one batch delete");
    assert_eq!(deletes[0].0.len(), 7, "every message, the unreadable one too");
    assert_eq!(deletes[0].1.as_deref(), Some("DEPROVISIONING"), "deleted only once the latest was applied");
    assert_eq!(metrics.task_events.with_label_values(&["applied"]).get(), 2);
    assert_eq!(metrics.task_events.with_label_values(&["confirming"]).get(), 1, "STOPPED waits for DescribeTasks");
    assert_eq!(metrics.task_events.with_label_values(&["stale"]).get(), 2);
    assert_eq!(metrics.task_events.with_label_values(&["foreign"]).get(), 1);
    assert_eq!(metrics.task_events.with_label_values(&["malformed"]).get(), 1);
    assert_eq!(metrics.task_events_flowing.with_label_values(&[REGION]).get(), 1);
    assert_eq!(metrics.task_event_delay.get_sample_count(), 2);
}

/// Issue 35, finding 3: anyone allowed to send to the queue can write any body. An envelope whose
/// account or region is not the task's own is dropped; a STOPPED event (even ECS's) and a version far
/// ahead of what ECS last answered are never taken as the task's state: the task is described instead.
#[tokio::test]
async fn a_message_alone_never_ends_a_run() {
    let (consumer, _, metrics) = setup(vec![Ok(vec![
        message("other-account", envelope("999988887777", REGION, "STOPPED", 3, "ecsrun/uid-1")),
        message("other-region", envelope("111122223333", "us-east-1", "STOPPED", 3, "ecsrun/uid-1")),
        message("no-account", envelope("", REGION, "STOPPED", 3, "ecsrun/uid-1")),
        message("stopped", body("STOPPED", 3, "ecsrun/uid-1")),
        message("far-ahead", body("DEPROVISIONING", 1_000_000, "ecsrun/uid-1")),
    ])]);
    let (round, _) = consumer.round().await;
    assert_eq!((round.forged, round.confirming, round.untrusted, round.applied), (3, 1, 1, 0), "{round:?}");
    assert_eq!(metrics.task_events.with_label_values(&["forged"]).get(), 3);
    let seen = consumer.tracker.last_seen(&target(), ARN).map(|seen| seen.look);
    let last_status = match seen {
        Some(Ok(TaskLookup::Found(task))) => task.last_status,
        other => panic!("the launch's look stands: {other:?}"),
    };
    assert_eq!(last_status, Some("PROVISIONING".into()), "nothing a message said was taken as the task's state");
    // ECS's own answer is what counts, and a later event within reach of it applies as ever.
    let described = TaskSnapshot {
        task_arn: ARN.into(),
        last_status: Some("RUNNING".into()),
        version: Some(2),
        ..TaskSnapshot::default()
    };
    consumer.tracker.record(&target(), &described);
    assert_eq!(consumer.tracker.apply_event(REGION, deprovisioning(4)), EventOutcome::Applied);
}

fn deprovisioning(version: i64) -> TaskSnapshot {
    TaskSnapshot {
        task_arn: ARN.into(),
        last_status: Some("DEPROVISIONING".into()),
        version: Some(version),
        ..TaskSnapshot::default()
    }
}

#[tokio::test]
async fn a_missing_queue_puts_the_region_back_on_polling_and_says_so_once() {
    let missing = QueueError::Missing("no such queue".into());
    let (consumer, queue, metrics) = setup(vec![
        Ok(vec![]),
        Err(missing.clone()),
        Err(missing.clone()),
        Ok(vec![message("m", body("PENDING", 2, "ecsrun/uid-1"))]),
    ]);
    assert_eq!(consumer.round().await.1, Change::Flowing { again: false });
    assert_eq!(consumer.round().await.1, Change::Lost(missing));
    assert!(consumer.failing());
    assert_eq!(metrics.task_events_flowing.with_label_values(&[REGION]).get(), 0);
    assert_eq!(consumer.round().await.1, Change::None, "told once per outage");
    let (round, change) = consumer.round().await;
    assert_eq!(change, Change::Flowing { again: true });
    assert_eq!(round.applied, 1);
    assert!(!consumer.failing());
    let waits: Vec<u64> = queue.waits.lock().unwrap().iter().map(Duration::as_secs).collect();
    assert_eq!(waits, vec![0, 20, 0, 0], "a short poll tells at once whether the queue reads; then long polls");
}

#[tokio::test]
async fn a_failed_delete_is_an_outage_too_but_the_events_were_applied() {
    let (consumer, queue, _) = setup(vec![Ok(vec![message("m", body("DEPROVISIONING", 3, "ecsrun/uid-1"))])]);
    *queue.delete_error.lock().unwrap() = Some(QueueError::Denied("no sqs:DeleteMessage".into()));
    let (round, change) = consumer.round().await;
    assert_eq!(round.applied, 1);
    assert!(matches!(change, Change::Lost(QueueError::Denied(_))), "{change:?}");
}

#[tokio::test]
async fn a_first_receive_that_fails_is_lost_from_the_start() {
    let (consumer, _, _) = setup(vec![Err(QueueError::Unavailable("connection refused".into()))]);
    assert!(matches!(consumer.round().await.1, Change::Lost(QueueError::Unavailable(_))));
}

#[test]
fn backoff_doubles_to_a_minute() {
    let waits: Vec<u64> = (0..9).map(|failures| backoff(failures).as_secs()).collect();
    assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
}

#[tokio::test]
async fn receivers_sharing_a_consumer_tell_a_change_once() {
    let missing = QueueError::Missing("no such queue".into());
    let (consumer, _, _) = setup(vec![Ok(vec![]), Ok(vec![]), Err(missing.clone()), Err(missing.clone())]);
    let (first, second) = futures::join!(consumer.round(), consumer.round());
    let flowing = [first.1, second.1].iter().filter(|change| **change == Change::Flowing { again: false }).count();
    assert_eq!(flowing, 1, "one receiver tells that events flow");
    let (third, fourth) = futures::join!(consumer.round(), consumer.round());
    let lost = [third.1, fourth.1].iter().filter(|change| matches!(change, Change::Lost(_))).count();
    assert_eq!(lost, 1, "one receiver tells they are lost");
}

/// Issue 35, finding 7: a replica that stops leading deletes no more messages (the new leader would never
/// see those events), and takes no more.
#[tokio::test]
async fn a_deposed_leader_deletes_no_message() {
    let (consumer, queue, _) = setup(vec![
        Ok(vec![message("m", body("DEPROVISIONING", 3, "ecsrun/uid-1"))]),
        Ok(vec![message("n", body("DEPROVISIONING", 4, "ecsrun/uid-1"))]),
    ]);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let consumer = consumer.until(stopped);
    *queue.deposed_during_receive.lock().unwrap() = Some(stop);
    let (round, _) = consumer.round().await;
    assert_eq!((round.received, round.deleted), (1, 0), "taken while leading, not deleted once deposed");
    assert!(queue.deletes.lock().unwrap().is_empty(), "it comes back to the next leader");
    let (round, change) = consumer.round().await;
    assert_eq!((round, change), (Round::default(), Change::None), "nothing more is taken");
    assert_eq!(queue.waits.lock().unwrap().len(), 1);
}
