//! The account-wide ceiling on ECS calls. ECS throttles every caller of an account and region together,
//! with one token bucket per throttle class; this decorator keeps ecsrun's own share below ECS's buckets
//! so it neither gets throttled nor starves the account's other callers.
//!
//! Every call waits for a token of its class's bucket, kept per (region, account, class). RunTask also
//! takes a token of the launch bucket (ECS's Fargate launch rate), which is smaller than the modify
//! bucket it shares with StopTask, so a burst of launches always leaves StopTask room. Waiting is not
//! an error: it shows in `ecsrun_ecs_rate_limit_wait_seconds`, never as a failed reconcile. What still
//! gets throttled (other callers in the account) is left to the SDK's own retry.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::{Ecs, EcsError, EcsErrorKind, EcsTarget, Identity, Request, Response, TaskDefinitionInfo};
use crate::metrics::Metrics;

/// ECS's throttle classes, as far as ecsrun's calls go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThrottleClass {
    /// Cluster resource read: DescribeTasks, ListTasks.
    Read,
    /// Cluster resource modify: RunTask, StopTask.
    Modify,
    /// Task launches (ECS's Fargate launch rate): RunTask, on top of Modify.
    Launch,
    /// Task definition read: DescribeTaskDefinition.
    TaskDefinitionRead,
    /// CloudWatch Logs GetLogEvents (a quota of its own, per account and region).
    LogRead,
}

impl ThrottleClass {
    pub const ALL: [ThrottleClass; 5] =
        [Self::Read, Self::Modify, Self::Launch, Self::TaskDefinitionRead, Self::LogRead];

    /// Stable label for metrics and flags.
    pub fn label(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Modify => "modify",
            Self::Launch => "launch",
            Self::TaskDefinitionRead => "task_definition_read",
            Self::LogRead => "log_read",
        }
    }
}

/// A sustained rate (tokens per second) and a burst (bucket size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ceiling {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Ceiling {
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        Some(Self { per_second: NonZeroU32::new(per_second)?, burst: NonZeroU32::new(burst)? })
    }
}

/// The ceiling of every class. The defaults are three quarters of ECS's own sustained rates (read 20/s,
/// modify 40/s, Fargate launches 20/s, task definition read 20/s), leaving the rest to other callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ceilings {
    pub read: Ceiling,
    pub modify: Ceiling,
    pub launch: Ceiling,
    pub task_definition_read: Ceiling,
    pub log_read: Ceiling,
}

impl Default for Ceilings {
    fn default() -> Self {
        let ceiling = |per_second, burst| Ceiling::new(per_second, burst).unwrap_or(Ceiling::MIN);
        Self {
            read: ceiling(15, 30),
            modify: ceiling(30, 60),
            launch: ceiling(15, 30),
            task_definition_read: ceiling(15, 30),
            log_read: ceiling(10, 20),
        }
    }
}

impl Ceiling {
    const MIN: Ceiling = Ceiling { per_second: NonZeroU32::MIN, burst: NonZeroU32::MIN };
}

impl Ceilings {
    pub fn get(&self, class: ThrottleClass) -> Ceiling {
        match class {
            ThrottleClass::Read => self.read,
            ThrottleClass::Modify => self.modify,
            ThrottleClass::Launch => self.launch,
            ThrottleClass::TaskDefinitionRead => self.task_definition_read,
            ThrottleClass::LogRead => self.log_read,
        }
    }
}

/// ECS throttles per account: roles of one account share a bucket. The controller's own identity and
/// Secret keys name no account without an STS call, so each is a bucket of its own.
fn account(identity: &Identity) -> String {
    match identity {
        Identity::Default => "default".into(),
        Identity::AssumeRole { role_arn, .. } => {
            role_arn.split(':').nth(4).filter(|account| !account.is_empty()).unwrap_or(role_arn).to_owned()
        }
        // The Secret (namespace/name; older sources carried `@resourceVersion`): rotated, the same caller.
        Identity::Static { source, .. } => source.split('@').next().unwrap_or(source).to_owned(),
    }
}

type BucketKey = (String, String, ThrottleClass);

/// Wraps an ECS port so that every call first waits for its tokens.
pub struct RateLimited<E> {
    inner: E,
    ceilings: Ceilings,
    buckets: Mutex<HashMap<BucketKey, Arc<DefaultDirectRateLimiter>>>,
    metrics: Arc<Metrics>,
}

impl<E: Ecs> RateLimited<E> {
    pub fn new(inner: E, ceilings: Ceilings, metrics: Arc<Metrics>) -> Self {
        Self { inner, ceilings, buckets: Mutex::default(), metrics }
    }

    fn bucket(&self, target: &EcsTarget, class: ThrottleClass) -> Arc<DefaultDirectRateLimiter> {
        let key = (target.region.clone(), account(&target.identity), class);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets
            .entry(key)
            .or_insert_with(|| {
                let ceiling = self.ceilings.get(class);
                Arc::new(RateLimiter::direct(Quota::per_second(ceiling.per_second).allow_burst(ceiling.burst)))
            })
            .clone()
    }

    /// Waits for one token of each class, in order, and records how long that took.
    async fn admit(&self, target: &EcsTarget, classes: &[ThrottleClass]) {
        for &class in classes {
            let bucket = self.bucket(target, class);
            if bucket.check().is_ok() {
                continue;
            }
            let started = Instant::now();
            self.metrics.ecs_rate_limited.with_label_values(&[class.label()]).inc();
            bucket.until_ready().await;
            self.metrics
                .ecs_rate_limit_wait
                .with_label_values(&[class.label()])
                .observe(started.elapsed().as_secs_f64());
        }
    }
}

impl<E: Ecs> Ecs for RateLimited<E> {
    async fn send(&self, target: &EcsTarget, request: Request<'_>) -> Result<Response, EcsError> {
        match request {
            // The scarcer launch bucket first, so a waiting launch does not hold a modify token StopTask needs.
            // A launch waits no longer than its intent allows: sent later, it could start a task after the
            // graces anchored at the intent have stopped looking for one.
            Request::RunTask(launch) => {
                let admitted = self.admit(target, &[ThrottleClass::Launch, ThrottleClass::Modify]);
                match launch.send_within {
                    Some(within) => {
                        if tokio::time::timeout(within, admitted).await.is_err() {
                            let message = format!(
                                "held at the launch rate ceiling past its intent's bound ({} ms left when it came): not sent",
                                within.as_millis()
                            );
                            return Err(EcsError::new(EcsErrorKind::HeldUp, "RunTask", message));
                        }
                    }
                    None => admitted.await,
                }
            }
            Request::StopTask { .. } => self.admit(target, &[ThrottleClass::Modify]).await,
            Request::DescribeTasks(_) | Request::ListTasks { .. } => self.admit(target, &[ThrottleClass::Read]).await,
            Request::DescribeTaskDefinition(task_definition) => {
                if let Some(info) = self.inner.cached_task_definition(target, task_definition) {
                    return Ok(Response::DescribeTaskDefinition(info));
                }
                self.admit(target, &[ThrottleClass::TaskDefinitionRead]).await
            }
            // Once per template and replica (the registry caches what it finds): one token for the lookup.
            Request::FindTaskDefinition { .. } | Request::RegisterTaskDefinition { .. } => {
                self.admit(target, &[ThrottleClass::TaskDefinitionRead]).await
            }
            // The quota is the stream's region's.
            Request::LogTail { stream, .. } => {
                let logs = EcsTarget { region: stream.region.clone(), ..target.clone() };
                self.admit(&logs, &[ThrottleClass::LogRead]).await
            }
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
    use crate::ecs::Actor;
    use crate::ecs::LaunchRequest;
    use crate::ecs::testing::{Recording, launch_request};

    fn target(region: &str, identity: Identity) -> EcsTarget {
        EcsTarget { region: region.into(), identity, cluster: "c".into() }
    }

    fn role(account: &str, name: &str) -> Identity {
        Identity::AssumeRole {
            role_arn: format!("arn:aws:iam::{account}:role/{name}"),
            external_id: None,
            session: crate::ecs::Session::for_namespace("s"),
        }
    }

    fn limited(ceilings: Ceilings) -> (RateLimited<Recording>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new().unwrap());
        (RateLimited::new(Recording::default(), ceilings, metrics.clone()), metrics)
    }

    #[test]
    fn roles_of_one_account_share_its_buckets() {
        assert_eq!(account(&role("111122223333", "a")), account(&role("111122223333", "b")));
        assert_ne!(account(&role("111122223333", "a")), account(&role("444455556666", "a")));
        let secret = |version: &str| Identity::Static {
            source: format!("team-a/aws@{version}"),
            keys: crate::ecs::StaticKeys {
                access_key_id: "AKIA".into(),
                secret_access_key: "x".into(),
                session_token: None,
            },
        };
        assert_eq!(account(&secret("1")), account(&secret("2")), "a rotated Secret is the same caller");
    }

    #[tokio::test]
    async fn calls_beyond_the_burst_wait_for_the_sustained_rate_and_say_so_in_metrics() {
        let ceilings = Ceilings { read: Ceiling::new(20, 5).unwrap(), ..Ceilings::default() };
        let (ecs, metrics) = limited(ceilings);
        let started = Instant::now();
        let here = target("eu-west-1", Identity::Default);
        futures::future::join_all((0..15).map(|_| ecs.describe_tasks(&here, &[]))).await;
        // 5 at once, then 10 more at 20/s: at least half a second.
        assert!(started.elapsed() >= Duration::from_millis(450), "{:?}", started.elapsed());
        assert_eq!(ecs.inner.calls.lock().unwrap().len(), 15);
        assert_eq!(metrics.ecs_rate_limited.with_label_values(&["read"]).get(), 10);
        assert_eq!(metrics.ecs_rate_limit_wait.with_label_values(&["read"]).get_sample_count(), 10);
        // Another region (another of ECS's buckets) does not wait behind this one.
        let elsewhere = Instant::now();
        ecs.describe_tasks(&target("us-east-1", Identity::Default), &[]).await.unwrap();
        assert!(elsewhere.elapsed() < Duration::from_millis(100));
    }

    #[tokio::test]
    async fn stop_task_is_not_starved_by_a_burst_of_launches() {
        let ceilings = Ceilings {
            modify: Ceiling::new(100, 20).unwrap(),
            launch: Ceiling::new(5, 1).unwrap(),
            ..Ceilings::default()
        };
        let (ecs, _) = limited(ceilings);
        let here = target("eu-west-1", Identity::Default);
        let request = launch_request();
        let started = Instant::now();
        let launches = futures::future::join_all((0..6).map(|_| ecs.run_task(&here, &request)));
        let stop = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            ecs.stop_task(&here, "arn", "bye", &Actor::default()).await.unwrap();
            started.elapsed()
        };
        let (_, stopped_after) = tokio::join!(launches, stop);
        let calls = ecs.inner.calls.lock().unwrap().clone();
        let last_launch = calls.iter().filter(|(op, _)| *op == "RunTask").map(|(_, at)| *at).max().unwrap();
        assert!(last_launch.duration_since(started) >= Duration::from_millis(900), "launches waited for 5/s");
        assert!(stopped_after < Duration::from_millis(300), "StopTask waited {stopped_after:?} behind launches");
    }

    /// Issue 35, finding 1: the graces that look for an unrecorded launch are anchored at its intent, so a
    /// RunTask held at the ceiling past the intent's bound is not sent at all (the next reconcile records a
    /// new intent and looks for a task first); one within its bound waits for its token and goes.
    #[tokio::test]
    async fn a_launch_held_at_the_ceiling_past_its_intents_bound_is_not_sent() {
        let ceilings = Ceilings { launch: Ceiling::new(1, 1).unwrap(), ..Ceilings::default() };
        let (ecs, metrics) = limited(ceilings);
        let here = target("eu-west-1", Identity::Default);
        ecs.run_task(&here, &launch_request()).await.unwrap();
        let hurried = LaunchRequest { send_within: Some(Duration::from_millis(100)), ..launch_request() };
        let refused = ecs.run_task(&here, &hurried).await.unwrap_err();
        assert_eq!(refused.kind, EcsErrorKind::HeldUp);
        assert_eq!(ecs.inner.operations(), vec!["RunTask"], "the held-up launch never went out");
        assert_eq!(metrics.ecs_rate_limited.with_label_values(&["launch"]).get(), 1);
        let patient = LaunchRequest { send_within: Some(Duration::from_secs(5)), ..launch_request() };
        ecs.run_task(&here, &patient).await.unwrap();
        assert_eq!(ecs.inner.operations(), vec!["RunTask", "RunTask"]);
    }

    /// The port as main wires it: the fence inside the ceiling. A launch that waited for a token while this
    /// replica lost the Lease is refused when it would be sent, not let through on the fence it saw before
    /// waiting.
    #[tokio::test]
    async fn the_fence_is_checked_after_the_wait_for_the_ceiling() {
        use crate::ecs::fence::{Fence, Fenced};
        let metrics = Arc::new(Metrics::new().unwrap());
        let fence = Fence::closed();
        fence.open_until(Instant::now() + Duration::from_secs(60));
        let ceilings = Ceilings { launch: Ceiling::new(2, 1).unwrap(), ..Ceilings::default() };
        let ecs = Arc::new(RateLimited::new(Fenced::new(Recording::default(), fence.clone()), ceilings, metrics));
        let here = target("eu-west-1", Identity::Default);
        ecs.run_task(&here, &launch_request()).await.unwrap();
        let waiting = tokio::spawn({
            let (ecs, here) = (ecs.clone(), here.clone());
            async move { ecs.run_task(&here, &launch_request()).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        fence.close();
        let refused = waiting.await.unwrap().unwrap_err();
        assert_eq!(refused.kind, crate::ecs::EcsErrorKind::NotLeader);
        assert_eq!(ecs.inner.inner().operations(), vec!["RunTask"], "only the launch sent while leading went out");
    }

    #[tokio::test]
    async fn a_cached_task_definition_costs_no_token() {
        struct Cached(Recording);
        impl Ecs for Cached {
            async fn send(&self, target: &EcsTarget, request: Request<'_>) -> Result<Response, EcsError> {
                assert!(!matches!(request, Request::DescribeTaskDefinition(_)), "served from the cache");
                self.0.send(target, request).await
            }
            fn cached_task_definition(&self, _: &EcsTarget, _: &str) -> Option<TaskDefinitionInfo> {
                Some(TaskDefinitionInfo::default())
            }
        }
        let metrics = Arc::new(Metrics::new().unwrap());
        let ceilings = Ceilings { task_definition_read: Ceiling::new(1, 1).unwrap(), ..Ceilings::default() };
        let ecs = RateLimited::new(Cached(Recording::default()), ceilings, metrics.clone());
        let here = target("eu-west-1", Identity::Default);
        for _ in 0..5 {
            ecs.describe_task_definition(&here, "family").await.unwrap();
        }
        assert_eq!(metrics.ecs_rate_limited.with_label_values(&["task_definition_read"]).get(), 0);
    }
}
