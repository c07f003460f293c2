//! Table tests of the run policy: no cluster, no AWS, no clock.

use super::judge::first_matching_rule;
use super::*;
use crate::api::{
    ContainerOverride, DeletionPolicy, EcsTaskRunSpec, EcsTaskRunStatus, EnvVar, RetryPolicy, StopCode, SuccessPolicy,
    TaskOverrides, WaitFor, WaitPolicy,
};
use crate::ecs::{ContainerDefinitionInfo, EcsError, EcsErrorKind, EcsFailure, TaskDefinitionInfo, TaskSnapshot};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::testing::{UID, at};
const ARN: &str = "arn:aws:ecs:eu-west-1:123456789012:task/demo/abc123";
const TD_ARN: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/report:3";

fn spec() -> EcsTaskRunSpec {
    serde_json::from_value(serde_json::json!({"cluster": "demo", "taskDefinition": "report:3"})).unwrap()
}

#[derive(Clone)]
struct Run {
    spec: EcsTaskRunSpec,
    status: EcsTaskRunStatus,
    /// What Kueue says of the run (not queued unless a test queues it).
    admission: Admission,
}

impl Run {
    fn new(spec: EcsTaskRunSpec) -> Self {
        Self { spec, status: EcsTaskRunStatus::default(), admission: Admission::NotQueued }
    }

    fn view(&self) -> RunView<'_> {
        RunView { admission: &self.admission, ..super::testing::view("nightly", &self.spec, &self.status) }
    }

    /// Applies a plan's status, as the shell's write would.
    fn apply(&mut self, plan: &Plan) {
        self.status = plan.status.clone();
    }

    /// A run whose attempt 1 launched the task at t=0.
    fn launched(spec: EcsTaskRunSpec) -> Self {
        let mut run = Run::new(spec);
        let plan = after_launch(&run.view(), 1, LaunchObservation::Started(task("PROVISIONING")), at(0));
        run.apply(&plan);
        run
    }
}

/// A task of this run's attempt 1 at `last_status`, as the run's first look saw it.
fn task(last_status: &str) -> TaskSnapshot {
    let launched = crate::testing::task(ARN).containers(&["app", "log-router"]).created(at(0));
    let desired = if last_status == "STOPPED" { "STOPPED" } else { "RUNNING" };
    TaskSnapshot {
        task_definition_arn: Some(TD_ARN.into()),
        last_status: Some(last_status.into()),
        desired_status: Some(desired.into()),
        ..launched
    }
}

/// The task ran from t=10 and stopped at t=60 with `stop_code` and `reason`, its app and log router
/// exiting as given (None: never ran).
fn stopped(stop_code: &str, reason: &str, app: Option<i32>, sidecar: Option<i32>) -> TaskSnapshot {
    let mut task = task("PROVISIONING").running(at(10)).stopped(stop_code, reason, at(60));
    for (container, code) in task.containers.iter_mut().zip([app, sidecar]) {
        container.exit_code = code;
    }
    task
}

fn definition() -> Option<Vec<ContainerDefinitionInfo>> {
    Some(vec![
        ContainerDefinitionInfo { name: "app".into(), essential: true, log: None },
        ContainerDefinitionInfo { name: "log-router".into(), essential: false, log: None },
    ])
}

fn found(task: TaskSnapshot) -> TrackObservation {
    TrackObservation::Found { task, containers: definition() }
}

fn with(mut spec: EcsTaskRunSpec, edit: impl FnOnce(&mut EcsTaskRunSpec)) -> EcsTaskRunSpec {
    edit(&mut spec);
    spec
}

fn condition<'a>(status: &'a EcsTaskRunStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

fn event_reasons(plan: &Plan) -> Vec<&'static str> {
    plan.events.iter().map(|e| e.reason).collect()
}

mod cleanup;
mod follow;
mod judge;
mod launch;
mod operating;
mod phase;
mod queue;
mod results;
mod suspend;
