//! DescribeTasks batching: concurrent lookups of tasks in the same (region, identity, cluster) are
//! coalesced into one call of up to 100 ARNs (the API's limit). A batch is sent when it is full or when
//! the collection window since its first lookup ends, whichever comes first; each caller gets its own
//! answer through a oneshot channel. This keeps DescribeTasks calls proportional to tasks / 100 instead of
//! one per run per poll, which is what keeps large fleets under ECS's read throttle.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

use super::{Ecs, EcsError, EcsErrorKind, EcsTarget, TaskLookup};

/// DescribeTasks accepts at most this many ARNs per call.
pub const MAX_BATCH: usize = 100;

type Reply = oneshot::Sender<Result<TaskLookup, EcsError>>;

#[derive(Default)]
struct Batch {
    id: u64,
    arns: Vec<String>,
    seen: HashSet<String>,
    waiters: Vec<(String, Reply)>,
}

struct Shared<E> {
    ecs: Arc<E>,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    open: HashMap<EcsTarget, Batch>,
}

/// Coalesces DescribeTasks lookups. Cheap to clone.
pub struct DescribeBatcher<E> {
    shared: Arc<Shared<E>>,
}

impl<E> Clone for DescribeBatcher<E> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

impl<E: Ecs> DescribeBatcher<E> {
    /// `window` is how long the first lookup of a batch waits for company; tens of milliseconds is plenty
    /// next to poll intervals of seconds.
    pub fn new(ecs: Arc<E>, window: Duration) -> Self {
        Self { shared: Arc::new(Shared { ecs, window, state: Mutex::default() }) }
    }

    /// Looks up one task, sharing the DescribeTasks call with concurrent lookups for the same target.
    pub async fn describe(&self, target: &EcsTarget, task_arn: &str) -> Result<TaskLookup, EcsError> {
        let (reply, answer) = oneshot::channel();
        let full_batch = {
            let mut state = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
            let state = &mut *state;
            let batch = match state.open.get_mut(target) {
                Some(batch) => batch,
                None => {
                    state.next_id += 1;
                    let id = state.next_id;
                    self.spawn_window_timer(target.clone(), id);
                    state.open.entry(target.clone()).or_insert(Batch { id, ..Batch::default() })
                }
            };
            if batch.seen.insert(task_arn.to_owned()) {
                batch.arns.push(task_arn.to_owned());
            }
            batch.waiters.push((task_arn.to_owned(), reply));
            if batch.arns.len() >= MAX_BATCH { state.open.remove(target) } else { None }
        };
        if let Some(batch) = full_batch {
            tokio::spawn(flush(self.shared.clone(), target.clone(), batch));
        }
        answer.await.unwrap_or_else(|_| {
            Err(EcsError::new(
                EcsErrorKind::Network,
                "DescribeTasks",
                "batched DescribeTasks was dropped before it answered",
            ))
        })
    }

    fn spawn_window_timer(&self, target: EcsTarget, id: u64) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(shared.window).await;
            let batch = {
                let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
                // The batch may already have been sent because it filled up; a newer one has its own timer.
                match state.open.get(&target) {
                    Some(batch) if batch.id == id => state.open.remove(&target),
                    _ => None,
                }
            };
            if let Some(batch) = batch {
                flush(shared, target, batch).await;
            }
        });
    }
}

async fn flush<E: Ecs>(shared: Arc<Shared<E>>, target: EcsTarget, batch: Batch) {
    let result = shared.ecs.describe_tasks(&target, &batch.arns).await;
    for (arn, reply) in batch.waiters {
        let answer = match &result {
            Ok(described) => Ok(described
                .tasks
                .iter()
                .find(|task| task.task_arn == arn)
                .map_or(TaskLookup::Missing, |task| TaskLookup::Found(task.clone()))),
            Err(error) => Err(error.clone()),
        };
        // A caller that gave up (its reconcile was cancelled) no longer needs the answer.
        let _ = reply.send(answer);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::ecs::{
        Described, DesiredStatus, Identity, LaunchRequest, RunTaskOutcome, TaskDefinitionInfo, TaskSnapshot,
    };

    /// Records DescribeTasks calls; every other operation is unused by the batcher.
    #[derive(Default)]
    struct CountingEcs {
        calls: AtomicUsize,
        batch_sizes: Mutex<Vec<usize>>,
        fail: bool,
    }

    impl Ecs for CountingEcs {
        async fn run_task(&self, _: &EcsTarget, _: &LaunchRequest) -> Result<RunTaskOutcome, EcsError> {
            unreachable!("the batcher only describes")
        }
        async fn describe_tasks(&self, _: &EcsTarget, arns: &[String]) -> Result<Described, EcsError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.batch_sizes.lock().unwrap().push(arns.len());
            if self.fail {
                return Err(EcsError::new(EcsErrorKind::Throttled, "DescribeTasks", "Rate exceeded"));
            }
            // Tasks whose ARN ends in "gone" are not known to ECS.
            Ok(Described {
                tasks: arns
                    .iter()
                    .filter(|arn| !arn.ends_with("gone"))
                    .map(|arn| TaskSnapshot {
                        task_arn: arn.clone(),
                        last_status: Some("RUNNING".into()),
                        ..TaskSnapshot::default()
                    })
                    .collect(),
                missing: arns.iter().filter(|arn| arn.ends_with("gone")).cloned().collect(),
            })
        }
        async fn stop_task(&self, _: &EcsTarget, _: &str, _: &str) -> Result<(), EcsError> {
            unreachable!()
        }
        async fn list_tasks_started_by(
            &self,
            _: &EcsTarget,
            _: &str,
            _: DesiredStatus,
        ) -> Result<Vec<String>, EcsError> {
            unreachable!()
        }
        async fn describe_task_definition(&self, _: &EcsTarget, _: &str) -> Result<TaskDefinitionInfo, EcsError> {
            unreachable!()
        }
    }

    fn target(cluster: &str) -> EcsTarget {
        EcsTarget { region: "eu-west-1".into(), identity: Identity::Default, cluster: cluster.into() }
    }

    async fn lookups(
        batcher: &DescribeBatcher<CountingEcs>,
        target: &EcsTarget,
        arns: Vec<String>,
    ) -> Vec<Result<TaskLookup, EcsError>> {
        futures::future::join_all(arns.iter().map(|arn| batcher.describe(target, arn))).await
    }

    #[tokio::test(start_paused = true)]
    async fn coalesces_250_concurrent_lookups_into_3_calls() {
        let ecs = Arc::new(CountingEcs::default());
        let batcher = DescribeBatcher::new(ecs.clone(), Duration::from_millis(50));
        let arns: Vec<String> = (0..250).map(|i| format!("arn:aws:ecs:eu-west-1:1:task/c/{i}")).collect();

        let answers = lookups(&batcher, &target("c"), arns.clone()).await;

        assert_eq!(ecs.calls.load(Ordering::SeqCst), 3);
        assert_eq!(*ecs.batch_sizes.lock().unwrap(), vec![100, 100, 50]);
        for (arn, answer) in arns.iter().zip(answers) {
            match answer {
                Ok(TaskLookup::Found(task)) => {
                    assert_eq!(&task.task_arn, arn, "each caller gets its own task")
                }
                other => panic!("{arn}: {other:?}"),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn separate_targets_are_separate_calls_and_duplicates_share_one_slot() {
        let ecs = Arc::new(CountingEcs::default());
        let batcher = DescribeBatcher::new(ecs.clone(), Duration::from_millis(50));
        let same = "arn:aws:ecs:eu-west-1:1:task/a/1".to_string();
        let (target_a, target_b) = (target("a"), target("b"));
        let (a, b) = tokio::join!(
            lookups(&batcher, &target_a, vec![same.clone(), same.clone()]),
            lookups(&batcher, &target_b, vec!["arn:aws:ecs:eu-west-1:1:task/b/gone".into()]),
        );
        assert_eq!(ecs.calls.load(Ordering::SeqCst), 2);
        let mut sizes = ecs.batch_sizes.lock().unwrap().clone();
        sizes.sort();
        assert_eq!(sizes, vec![1, 1], "the duplicate ARN is asked for once");
        assert!(a.iter().all(|r| matches!(r, Ok(TaskLookup::Found(_)))));
        assert_eq!(b, vec![Ok(TaskLookup::Missing)]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_reaches_every_caller_of_the_batch() {
        let ecs = Arc::new(CountingEcs { fail: true, ..CountingEcs::default() });
        let batcher = DescribeBatcher::new(ecs.clone(), Duration::from_millis(50));
        let answers = lookups(&batcher, &target("c"), vec!["x/1".into(), "x/2".into()]).await;
        assert_eq!(ecs.calls.load(Ordering::SeqCst), 1);
        for answer in answers {
            assert_eq!(answer.unwrap_err().kind, EcsErrorKind::Throttled);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn lookups_after_a_flush_start_a_new_batch() {
        let ecs = Arc::new(CountingEcs::default());
        let batcher = DescribeBatcher::new(ecs.clone(), Duration::from_millis(50));
        lookups(&batcher, &target("c"), vec!["x/1".into()]).await;
        lookups(&batcher, &target("c"), vec!["x/2".into()]).await;
        assert_eq!(ecs.calls.load(Ordering::SeqCst), 2);
    }
}
