//! Fencing: a replica that may have lost the leader Lease starts and stops no tasks.
//!
//! kube-lease-manager keeps reporting "leader" while the API server cannot be reached (it only retries
//! renewing), and a leader cut off from the API server works from a frozen cache. The `Fence` is open
//! only until the Lease it last saw itself holding could have expired; `Fenced` refuses RunTask and
//! StopTask once it is closed. The leader module keeps the fence up to date.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::{
    Actor, Described, DesiredStatus, Ecs, EcsError, EcsErrorKind, EcsTarget, LaunchRequest, LogStream, RunTaskOutcome,
    TaskDefinitionInfo, TaskSnapshot,
};

/// Until when this replica may act on ECS. Without leader election it is always open.
#[derive(Clone, Debug)]
pub struct Fence {
    open_until: Option<Arc<Mutex<Option<Instant>>>>,
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

/// The ECS port behind a fence: reads pass, RunTask and StopTask only while the fence is open.
pub struct Fenced<E> {
    inner: E,
    fence: Fence,
}

impl<E> Fenced<E> {
    pub fn new(inner: E, fence: Fence) -> Self {
        Self { inner, fence }
    }

    fn admit(&self, operation: &'static str) -> Result<(), EcsError> {
        if self.fence.is_open() {
            Ok(())
        } else {
            Err(EcsError::new(EcsErrorKind::NotLeader, operation, "this replica may have lost the leader Lease"))
        }
    }
}

impl<E: Ecs> Ecs for Fenced<E> {
    async fn run_task(&self, target: &EcsTarget, request: &LaunchRequest) -> Result<RunTaskOutcome, EcsError> {
        self.admit("RunTask")?;
        self.inner.run_task(target, request).await
    }

    async fn describe_tasks(&self, target: &EcsTarget, task_arns: &[String]) -> Result<Described, EcsError> {
        self.inner.describe_tasks(target, task_arns).await
    }

    async fn stop_task(
        &self,
        target: &EcsTarget,
        task_arn: &str,
        reason: &str,
        actor: &Actor,
    ) -> Result<Option<TaskSnapshot>, EcsError> {
        self.admit("StopTask")?;
        self.inner.stop_task(target, task_arn, reason, actor).await
    }

    async fn list_tasks_started_by(
        &self,
        target: &EcsTarget,
        started_by: &str,
        desired_status: DesiredStatus,
    ) -> Result<Vec<String>, EcsError> {
        self.inner.list_tasks_started_by(target, started_by, desired_status).await
    }

    async fn describe_task_definition(
        &self,
        target: &EcsTarget,
        task_definition: &str,
    ) -> Result<TaskDefinitionInfo, EcsError> {
        self.inner.describe_task_definition(target, task_definition).await
    }

    async fn find_task_definition(
        &self,
        target: &EcsTarget,
        family: &str,
        tag: (&str, &str),
    ) -> Result<Option<String>, EcsError> {
        self.inner.find_task_definition(target, family, tag).await
    }

    /// Fenced: a replica that lost the Lease must not register a revision the new leader registers too.
    async fn register_task_definition(
        &self,
        target: &EcsTarget,
        template: &crate::api::TaskDefinitionTemplate,
        tags: &[(String, String)],
    ) -> Result<String, EcsError> {
        self.admit("RegisterTaskDefinition")?;
        self.inner.register_task_definition(target, template, tags).await
    }

    /// A read: allowed whoever leads.
    async fn log_tail(&self, target: &EcsTarget, stream: &LogStream, lines: u32) -> Result<Vec<String>, EcsError> {
        self.inner.log_tail(target, stream, lines).await
    }

    fn cached_task_definition(&self, target: &EcsTarget, task_definition: &str) -> Option<TaskDefinitionInfo> {
        self.inner.cached_task_definition(target, task_definition)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ecs::Identity;
    use crate::ecs::testing::{Recording, launch_request};

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
