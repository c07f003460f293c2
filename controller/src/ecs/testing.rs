//! A test double of the ECS port for the decorators' unit tests (the adapter itself is tested with
//! aws-smithy-mocks).

use std::sync::Mutex as StdMutex;
use std::time::Instant;

use super::{
    Actor, Described, Ecs, EcsError, EcsTarget, LaunchRequest, Request, Response, RunTaskOutcome, TaskDefinitionInfo,
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
    async fn send(&self, _: &EcsTarget, request: Request<'_>) -> Result<Response, EcsError> {
        self.record(request.operation());
        Ok(match request {
            Request::RunTask(_) => Response::RunTask(RunTaskOutcome::Failures(Vec::new())),
            Request::DescribeTasks(_) => Response::DescribeTasks(Described::default()),
            Request::StopTask { .. } => Response::StopTask(None),
            Request::ListTasks { .. } => Response::ListTasks(Vec::new()),
            Request::DescribeTaskDefinition(_) => Response::DescribeTaskDefinition(TaskDefinitionInfo::default()),
            Request::FindTaskDefinition { template, tag: (key, value) } => {
                let family = &template.family;
                let registered = self.registered.lock().unwrap();
                Response::FindTaskDefinition(
                    registered
                        .iter()
                        .rev()
                        .find(|(arn, tags)| {
                            arn.contains(&format!("/{family}:")) && tags.iter().any(|(k, v)| k == key && v == value)
                        })
                        .map(|(arn, _)| arn.clone()),
                )
            }
            Request::RegisterTaskDefinition { template, tags } => {
                let mut registered = self.registered.lock().unwrap();
                let revision =
                    registered.iter().filter(|(arn, _)| arn.contains(&format!("/{}:", template.family))).count() + 1;
                let arn = format!("arn:aws:ecs:eu-west-1:123456789012:task-definition/{}:{revision}", template.family);
                registered.push((arn.clone(), tags.to_vec()));
                Response::RegisterTaskDefinition(arn)
            }
            Request::LogTail { stream, lines } => {
                Response::LogTail((1..=lines).map(|line| format!("{} line {line}", stream.stream)).collect())
            }
        })
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
        send_within: None,
    }
}
