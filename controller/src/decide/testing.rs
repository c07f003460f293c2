//! What the decision's tests share: a fixed epoch, specs from a few JSON fields, and the view of a run.

use std::time::Duration;

use jiff::Timestamp;

use super::{Admission, RunView};
use crate::api::{EcsTaskRunSpec, EcsTaskRunStatus};

pub const UID: &str = "0f0e0d0c-1111-2222-3333-444455556666";

/// `seconds` after the tests' epoch.
pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap()
}

/// A spec of cluster `demo` and task definition `report:3`, with `extra` fields.
pub fn spec_with(extra: serde_json::Value) -> EcsTaskRunSpec {
    let mut value = serde_json::json!({"cluster": "demo", "taskDefinition": "report:3"});
    value.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    serde_json::from_value(value).unwrap()
}

/// Run `jobs/<name>` created at the epoch, polled every 30 s by default.
pub fn view<'a>(name: &'a str, spec: &'a EcsTaskRunSpec, status: &'a EcsTaskRunStatus) -> RunView<'a> {
    RunView {
        namespace: "jobs",
        name,
        uid: UID,
        generation: Some(1),
        created_at: at(0),
        spec,
        status,
        default_poll_interval: Duration::from_secs(30),
        index: 0,
        max_tail_lines: None,
        cluster_id: None,
        admission: &Admission::NotQueued,
        results_allowed: true,
        results: &super::results::NO_RESULT_LOGS,
    }
}

/// An essential container `name` that logs with the awslogs driver to `/ecs/report`, prefix `ecs`.
pub fn awslogs_container(name: &str) -> crate::ecs::ContainerDefinitionInfo {
    crate::ecs::ContainerDefinitionInfo {
        name: name.into(),
        essential: true,
        log: Some(crate::ecs::LogConfiguration {
            driver: "awslogs".into(),
            group: Some("/ecs/report".into()),
            region: None,
            stream_prefix: Some("ecs".into()),
        }),
    }
}
