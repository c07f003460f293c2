//! ecsrun: a Kubernetes controller that runs AWS ECS tasks declared as `EcsTaskRun` resources.
//!
//! - [`api`]: the CRD types (the `ecsrun-api` crate, re-exported);
//! - [`policy`]: which runs an `EcsRunPolicy` lets launch (pure);
//! - [`decide`]: the run policy as pure functions;
//! - [`ecs`]: the ECS port, its aws-sdk-ecs adapter, the rate ceiling and the task tracker;
//! - [`reconcile`]: the kube-runtime shell (finalizer, status, events, error policy);
//! - [`leader`]: leader election on a Lease and graceful shutdown;
//! - [`metrics`], [`http`], [`kube_client`], [`config`]: the process around it.

// Observations and plans are built once per reconcile and moved, never stored in bulk: boxing their
// large variants would cost an allocation for nothing.
#![allow(clippy::large_enum_variant)]

pub use ecsrun_api as api;
pub mod cached;
pub mod clock;
pub mod config;
pub mod decide;
pub mod ecs;
pub mod events;
pub mod http;
pub mod kube_client;
pub mod leader;
pub mod metrics;
pub mod orphans;
pub mod policy;
pub mod queue;
pub mod reconcile;
pub mod schedule;
pub mod tekton;
pub mod tenancy;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
