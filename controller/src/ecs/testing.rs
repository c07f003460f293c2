//! A test double of the ECS port for the decorators' unit tests (the adapter itself is tested with
//! aws-smithy-mocks).

use std::sync::Mutex as StdMutex;
use std::time::Instant;

use super::{
    Actor, Described, DesiredStatus, Ecs, EcsError, EcsTarget, LaunchRequest, LogStream, RunTaskOutcome,
    TaskDefinitionInfo, TaskSnapshot,
};

/// Answers at once and records when each operation was called. Task definitions it registers are found
/// again by their tags, as ECS finds them.
#[derive(Default)]
pub struct Recording {
    pub calls: StdMutex<Vec<(&'static str, Instant)>>,
    /// Every revision registered, oldest first.
    pub registered: StdMutex<Vec<Registered>>,
}

/// A revision's ARN and tags.
pub type Registered = (String, Vec<(String, String)>);

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
    async fn find_task_definition(
        &self,
        _: &EcsTarget,
        family: &str,
        (key, value): (&str, &str),
    ) -> Result<Option<String>, EcsError> {
        self.record("ListTaskDefinitions");
        let registered = self.registered.lock().unwrap();
        Ok(registered
            .iter()
            .rev()
            .find(|(arn, tags)| {
                arn.contains(&format!("/{family}:")) && tags.iter().any(|(k, v)| k == key && v == value)
            })
            .map(|(arn, _)| arn.clone()))
    }
    async fn log_tail(&self, _: &EcsTarget, stream: &LogStream, lines: u32) -> Result<Vec<String>, EcsError> {
        self.record("GetLogEvents");
        Ok((1..=lines).map(|line| format!("{} line {line}", stream.stream)).collect())
    }
    async fn register_task_definition(
        &self,
        _: &EcsTarget,
        template: &crate::api::TaskDefinitionTemplate,
        tags: &[(String, String)],
    ) -> Result<String, EcsError> {
        self.record("RegisterTaskDefinition");
        let mut registered = self.registered.lock().unwrap();
        let revision = registered.iter().filter(|(arn, _)| arn.contains(&format!("/{}:", template.family))).count() + 1;
        let arn = format!("arn:aws:ecs:eu-west-1:123456789012:task-definition/{}:{revision}", template.family);
        registered.push((arn.clone(), tags.to_vec()));
        Ok(arn)
    }
}

/// The smallest RunTask request.
pub fn launch_request() -> LaunchRequest {
    LaunchRequest {
        spec: serde_json::from_value(serde_json::json!({"cluster": "c", "taskDefinition": "t"})).unwrap(),
        task_definition: "t".into(),
        overrides: None,
        client_token: "t".into(),
        started_by: "s".into(),
        tags: Vec::new(),
        actor: Actor::default(),
    }
}
