//! A test double of the ECS port for the decorators' unit tests (the adapter itself is tested with
//! aws-smithy-mocks).

use std::sync::Mutex as StdMutex;
use std::time::Instant;

use super::{
    Actor, Described, DesiredStatus, Ecs, EcsError, EcsTarget, LaunchRequest, RunTaskOutcome, TaskDefinitionInfo,
    TaskSnapshot,
};

/// Answers at once and records when each operation was called.
#[derive(Default)]
pub struct Recording {
    pub calls: StdMutex<Vec<(&'static str, Instant)>>,
}

impl Recording {
    /// The operations called so far, in order.
    pub fn operations(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().iter().map(|(operation, _)| *operation).collect()
    }

    pub fn record(&self, operation: &'static str) {
        self.calls.lock().unwrap().push((operation, Instant::now()));
    }
}

impl Ecs for Recording {
    async fn run_task(&self, _: &EcsTarget, _: &LaunchRequest) -> Result<RunTaskOutcome, EcsError> {
        self.record("RunTask");
        Ok(RunTaskOutcome::Failures(Vec::new()))
    }
    async fn describe_tasks(&self, _: &EcsTarget, _: &[String]) -> Result<Described, EcsError> {
        self.record("DescribeTasks");
        Ok(Described::default())
    }
    async fn stop_task(&self, _: &EcsTarget, _: &str, _: &str, _: &Actor) -> Result<Option<TaskSnapshot>, EcsError> {
        self.record("StopTask");
        Ok(None)
    }
    async fn list_tasks_started_by(&self, _: &EcsTarget, _: &str, _: DesiredStatus) -> Result<Vec<String>, EcsError> {
        self.record("ListTasks");
        Ok(Vec::new())
    }
    async fn describe_task_definition(&self, _: &EcsTarget, _: &str) -> Result<TaskDefinitionInfo, EcsError> {
        self.record("DescribeTaskDefinition");
        Ok(TaskDefinitionInfo::default())
    }
}

/// The smallest RunTask request.
pub fn launch_request() -> LaunchRequest {
    LaunchRequest {
        spec: serde_json::from_value(serde_json::json!({"cluster": "c", "taskDefinition": "t"})).unwrap(),
        overrides: None,
        client_token: "t".into(),
        started_by: "s".into(),
        tags: Vec::new(),
        actor: Actor::default(),
    }
}
