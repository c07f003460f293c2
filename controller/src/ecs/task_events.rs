//! ECS's task state change events, as EventBridge delivers them to an SQS queue: the envelope's body read
//! into the port's `TaskSnapshot` (with ECS's `version`, which orders them), for the tracker to apply.
//! `queue` is the SQS port and its adapter; `consumer` the loop that receives, applies, then deletes.

pub mod consumer;
pub mod queue;

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use serde::Deserialize;

use super::{ContainerSnapshot, Reported, TaskSnapshot};

/// EventBridge's `source` and `detail-type` of a task state change.
pub const SOURCE: &str = "aws.ecs";
pub const DETAIL_TYPE: &str = "ECS Task State Change";
/// What `startedBy` of every task ecsrun starts begins with (the EventBridge rule matches it too).
pub const STARTED_BY_PREFIX: &str = "ecsrun/";

/// Where task events come from: one SQS queue per region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSource {
    pub queue_url: String,
    pub region: String,
}

impl EventSource {
    /// The queue at `url`, in the region its host names (`sqs.<region>.amazonaws.com`, or the legacy
    /// `<region>.queue.amazonaws.com`), else in `default_region` (an endpoint override, an emulator).
    pub fn new(url: &str, default_region: Option<&str>) -> Result<Self, String> {
        let host = url.split("://").nth(1).and_then(|rest| rest.split(['/', ':']).next()).unwrap_or_default();
        let labels: Vec<&str> = host.split('.').collect();
        let named = match labels.as_slice() {
            ["sqs", region, ..] if labels.len() > 3 => Some(*region),
            [region, "queue", "amazonaws", ..] => Some(*region),
            _ => None,
        };
        let region = named.or(default_region).ok_or_else(|| {
            format!("{url}: no region in the queue's host name; set --default-region for an endpoint override")
        })?;
        Ok(Self { queue_url: url.to_owned(), region: region.to_owned() })
    }
}

/// How the controller follows task events.
#[derive(Clone, Debug)]
pub struct EventsSettings {
    pub sources: Vec<EventSource>,
    /// How long a task goes without an event before the sweep describes it.
    pub sweep: Duration,
    /// Receivers per queue, each a receive-apply-delete round trip at a time.
    pub receivers: usize,
    /// SQS endpoint override (emulators, VPC interface endpoints).
    pub sqs_endpoint_url: Option<String>,
    /// Deadline of one SQS call beyond the long poll.
    pub call_timeout: Duration,
    /// What the controller's own Events (events flowing, or lost) are about: its Pod.
    pub regarding: ObjectReference,
}

/// A task state change of a task ecsrun started.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskEvent {
    /// The region the task runs in (the envelope's).
    pub region: String,
    /// The account the event came from (the envelope's).
    pub account: Option<String>,
    /// The task as the event shows it; `version` is always set.
    pub task: TaskSnapshot,
    /// When ECS changed the task (`detail.updatedAt`): the event's delay is measured from it.
    pub updated_at: Option<Timestamp>,
}

/// What a message's body is.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Task(TaskEvent),
    /// Another kind of event, or a task another client started: not ecsrun's to follow.
    Foreign,
}

/// A body that is no EventBridge event, or an ECS task event without what ordering it needs.
#[derive(Debug, thiserror::Error)]
#[error("not an ECS task state change event: {0}")]
pub struct Malformed(String);

#[derive(Deserialize)]
struct Envelope {
    source: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    #[serde(default)]
    account: Option<String>,
    region: String,
    detail: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    task_arn: String,
    version: i64,
    cluster_arn: Option<String>,
    task_definition_arn: Option<String>,
    last_status: Option<String>,
    desired_status: Option<String>,
    stop_code: Option<String>,
    stopped_reason: Option<String>,
    started_by: Option<String>,
    created_at: Option<String>,
    started_at: Option<String>,
    stopped_at: Option<String>,
    updated_at: Option<String>,
    cpu: Option<String>,
    memory: Option<String>,
    capacity_provider_name: Option<String>,
    launch_type: Option<String>,
    /// A task that failed to start can come without containers, or without the key at all.
    #[serde(default)]
    containers: Vec<Container>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Container {
    name: String,
    exit_code: Option<i32>,
    reason: Option<String>,
    last_status: Option<String>,
}

/// Reads one message body.
pub fn parse(body: &str) -> Result<Body, Malformed> {
    let envelope: Envelope = serde_json::from_str(body).map_err(|error| Malformed(error.to_string()))?;
    if envelope.source != SOURCE || envelope.detail_type != DETAIL_TYPE {
        return Ok(Body::Foreign);
    }
    let detail: Detail = serde_json::from_value(envelope.detail).map_err(|error| Malformed(error.to_string()))?;
    if !detail.started_by.as_deref().is_some_and(|by| by.starts_with(STARTED_BY_PREFIX)) {
        return Ok(Body::Foreign);
    }
    let task = TaskSnapshot {
        task_arn: detail.task_arn,
        cluster_arn: detail.cluster_arn,
        task_definition_arn: detail.task_definition_arn,
        last_status: detail.last_status.as_deref().map(Reported::parse),
        desired_status: detail.desired_status.as_deref().map(Reported::parse),
        stop_code: detail.stop_code.as_deref().filter(|code| !code.is_empty()).map(Reported::parse),
        stopped_reason: detail.stopped_reason.filter(|reason| !reason.is_empty()),
        created_at: time(detail.created_at.as_deref()),
        started_at: time(detail.started_at.as_deref()),
        stopped_at: time(detail.stopped_at.as_deref()),
        containers: detail
            .containers
            .into_iter()
            .map(|container| ContainerSnapshot {
                name: container.name,
                exit_code: container.exit_code,
                reason: container.reason,
                last_status: container.last_status,
            })
            .collect(),
        cpu: detail.cpu,
        memory: detail.memory,
        capacity_provider: detail.capacity_provider_name.or(detail.launch_type),
        // Events carry no tags; the tracker keeps the namespace it read from DescribeTasks.
        started_for_namespace: None,
        kept_on_delete: false,
        started_by_install: None,
        started_by: detail.started_by,
        version: Some(detail.version),
    };
    Ok(Body::Task(TaskEvent {
        region: envelope.region,
        account: envelope.account,
        task,
        updated_at: time(detail.updated_at.as_deref()),
    }))
}

impl TaskEvent {
    /// Why the event cannot be ECS's about the task it names, if it cannot: ECS sends an event of a task
    /// from the task's own account and region (its ARN's), to the queue of that region. Anyone allowed to
    /// send to the queue could write any body; what does not add up is dropped.
    pub fn forged(&self, queue_region: &str) -> Option<String> {
        let mut parts = self.task.task_arn.split(':');
        let (region, account) = match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("arn"), Some(_partition), Some("ecs"), Some(region), Some(account)) => (region, account),
            _ => return Some(format!("{} is no ECS task ARN", self.task.task_arn)),
        };
        if self.region != queue_region || region != queue_region {
            return Some(format!("region {} (task {region}) on the queue of {queue_region}", self.region));
        }
        match self.account.as_deref() {
            Some(sender) if sender == account => None,
            sender => Some(format!("account {} for a task of account {account}", sender.unwrap_or("missing"))),
        }
    }
}

/// ECS writes times as RFC 3339 (`2026-12-03T03:26:01.123Z`); one it does not is left out, not fatal.
fn time(text: Option<&str>) -> Option<Timestamp> {
    text?.parse().ok()
}

#[cfg(test)]
mod tests;
