//! Fencing: a replica that may have lost the leader Lease starts and stops no tasks.
//!
//! kube-lease-manager keeps reporting "leader" while the API server cannot be reached (it only retries
//! renewing), and a leader cut off from the API server works from a frozen cache. The `Fence` is open
//! only until the Lease it last saw itself holding could have expired; `Fenced` refuses RunTask and
//! StopTask once it is closed. The leader module keeps the fence up to date.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::{Ecs, EcsError, EcsErrorKind, EcsTarget, Request, Response, TaskDefinitionInfo};

/// Until when this replica may act on ECS. Without leader election it is always open.
#[derive(Clone, Debug)]
pub struct Fence {
    open_until: Option<Arc<Mutex<Option<Instant>>>>,
}

impl Default for Fence {
    fn default() -> Self {
        Self::none()
    }
}

impl Fence {
    /// A single replica: nothing to fence.
    pub fn none() -> Self {
        Self { open_until: None }
    }

    /// Closed until `open_until` is called.
    pub fn closed() -> Self {
        Self { open_until: Some(Arc::default()) }
    }

    pub fn is_open(&self) -> bool {
        self.open_until.as_ref().is_none_or(|slot| {
            slot.lock().unwrap_or_else(PoisonError::into_inner).is_some_and(|until| Instant::now() < until)
        })
    }

    /// The Lease was seen held by this replica; no other can take it before `until`.
    pub fn open_until(&self, until: Instant) {
        if let Some(slot) = &self.open_until {
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(until);
        }
    }

    pub fn close(&self) {
        if let Some(slot) = &self.open_until {
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
}

/// Whether the SDK's attempt `attempt` of `operation` must not go out: a retry of RunTask or StopTask once
/// the fence has closed (the first attempt is `Fenced`'s to refuse; the SDK retries within one call, after
/// backoffs that can outlast the Lease).
pub fn refuses_attempt(fence: &Fence, operation: &str, attempt: u32) -> bool {
    attempt > 1 && matches!(operation, "RunTask" | "StopTask") && !fence.is_open()
}

/// The ECS port behind a fence: reads pass, RunTask and StopTask only while the fence is open.
pub struct Fenced<E> {
    inner: E,
    fence: Fence,
}

impl<E> Fenced<E> {
    pub fn new(inner: E, fence: Fence) -> Self {
        Self { inner, fence }
    }

    /// The port behind the fence.
    pub fn inner(&self) -> &E {
        &self.inner
    }
}

/// RunTask, StopTask and RegisterTaskDefinition go out only while the fence is open; reads go out
/// whoever leads. Checked as the request is sent: the port puts the fence inside the rate ceiling, so a
/// request that waited for tokens meanwhile is judged on the fence as it is now.
impl<E: Ecs> Ecs for Fenced<E> {
    async fn send(&self, target: &EcsTarget, request: Request<'_>) -> Result<Response, EcsError> {
        if request.acts() && !self.fence.is_open() {
            return Err(EcsError::new(
                EcsErrorKind::NotLeader,
                request.operation(),
                "this replica may have lost the leader Lease",
            ));
        }
        self.inner.send(target, request).await
    }

    fn cached_task_definition(&self, target: &EcsTarget, task_definition: &str) -> Option<TaskDefinitionInfo> {
        self.inner.cached_task_definition(target, task_definition)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ecs::testing::{Recording, launch_request};
    use crate::ecs::{Actor, Identity};

    fn target() -> EcsTarget {
        EcsTarget { region: "eu-west-1".into(), identity: Identity::Default, cluster: "c".into() }
    }

    #[tokio::test]
    async fn a_closed_fence_lets_reads_through_and_refuses_run_task_and_stop_task() {
        let fence = Fence::closed();
        let ecs = Fenced::new(Recording::default(), fence.clone());
        let refused = ecs.run_task(&target(), &launch_request()).await.unwrap_err();
        assert_eq!(refused.kind, EcsErrorKind::NotLeader);
        assert!(!refused.kind.is_permanent(), "the next leader carries on");
        assert_eq!(
            ecs.stop_task(&target(), "arn", "why", &Actor::default()).await.unwrap_err().kind,
            EcsErrorKind::NotLeader
        );
        ecs.describe_tasks(&target(), &["arn".into()]).await.unwrap();
        assert_eq!(ecs.inner.operations(), vec!["DescribeTasks"]);

        fence.open_until(Instant::now() + Duration::from_secs(60));
        ecs.run_task(&target(), &launch_request()).await.unwrap();
        ecs.stop_task(&target(), "arn", "why", &Actor::default()).await.unwrap();
        assert_eq!(ecs.inner.operations(), vec!["DescribeTasks", "RunTask", "StopTask"]);
    }

    /// Issue 35, finding 7: the fence is checked at every SDK attempt of an acting call, not once per call.
    #[test]
    fn a_retry_of_an_acting_call_is_refused_once_the_fence_closed() {
        let fence = Fence::closed();
        fence.open_until(Instant::now() + Duration::from_secs(60));
        assert!(!refuses_attempt(&fence, "RunTask", 2), "open: retried");
        fence.close();
        assert!(refuses_attempt(&fence, "RunTask", 2));
        assert!(refuses_attempt(&fence, "StopTask", 3));
        assert!(!refuses_attempt(&fence, "RunTask", 1), "the first attempt is Fenced's to refuse");
        assert!(!refuses_attempt(&fence, "DescribeTasks", 2), "reads are never fenced");
        assert!(!refuses_attempt(&Fence::none(), "RunTask", 2), "no election, no fence");
    }

    #[test]
    fn the_fence_closes_by_itself_when_the_lease_may_have_expired() {
        let fence = Fence::closed();
        assert!(!fence.is_open());
        fence.open_until(Instant::now() + Duration::from_millis(30));
        assert!(fence.is_open());
        std::thread::sleep(Duration::from_millis(40));
        assert!(!fence.is_open(), "nobody confirmed the Lease since");
        fence.open_until(Instant::now() + Duration::from_secs(60));
        fence.close();
        assert!(!fence.is_open());
        assert!(Fence::none().is_open(), "a single replica is never fenced");
    }
}
