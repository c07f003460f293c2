//! Fluent builders of what ECS reports, in one place for every tier that needs a task: the decision's
//! table tests, the fake ECS of the middle tier and the simulator.
//!
//! `task(ARN).running(at(10)).stopped(StopCode::EssentialContainerExited, "Essential container in task
//! exited", at(60)).exit("app", 1)`
//!
//! Compiled for the crate's own tests and, with the `testing` feature, for ecsrun-testbed.

use jiff::Timestamp;

use crate::api::{DesiredStatus, LastStatus, Reported, StopCode};
use crate::ecs::{ContainerSnapshot, TaskSnapshot};

/// A task ECS has just accepted: PROVISIONING, desired RUNNING, no containers yet.
pub fn task(arn: impl Into<String>) -> TaskSnapshot {
    TaskSnapshot {
        task_arn: arn.into(),
        last_status: Some(LastStatus::Provisioning.into()),
        desired_status: Some(DesiredStatus::Running.into()),
        ..TaskSnapshot::default()
    }
}

impl TaskSnapshot {
    /// With these containers, none of them exited yet.
    pub fn containers(mut self, names: &[&str]) -> Self {
        self.containers = names
            .iter()
            .map(|name| ContainerSnapshot { name: (*name).into(), ..ContainerSnapshot::default() })
            .collect();
        self
    }

    pub fn created(mut self, at: Timestamp) -> Self {
        self.created_at = Some(at);
        self
    }

    /// RUNNING since `at` (or since it first ran).
    pub fn running(mut self, at: Timestamp) -> Self {
        self.last_status = Some(LastStatus::Running.into());
        self.started_at = self.started_at.or(Some(at));
        self
    }

    /// STOPPED at `at` with `code` (a `StopCode`, or a spelling ECS may add later) and `reason`; its
    /// containers stopped too.
    pub fn stopped(mut self, code: impl Into<Reported<StopCode>>, reason: &str, at: Timestamp) -> Self {
        self.last_status = Some(LastStatus::Stopped.into());
        self.desired_status = Some(DesiredStatus::Stopped.into());
        self.stop_code = Some(code.into());
        self.stopped_reason = Some(reason.into());
        self.stopped_at = Some(at);
        for container in &mut self.containers {
            container.last_status = Some("STOPPED".into());
        }
        self
    }

    /// Container `name` exited `code` (added if the task did not have it).
    pub fn exit(mut self, name: &str, code: i32) -> Self {
        match self.containers.iter_mut().find(|container| container.name == name) {
            Some(container) => container.exit_code = Some(code),
            None => self.containers.push(ContainerSnapshot {
                name: name.into(),
                exit_code: Some(code),
                ..ContainerSnapshot::default()
            }),
        }
        self
    }

    /// Every container exited `code` (StopTask's SIGTERM: 143).
    pub fn all_exit(mut self, code: i32) -> Self {
        for container in &mut self.containers {
            container.exit_code = Some(code);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_built_as_ecs_would_report_it() {
        let at = |second: i64| Timestamp::from_second(1_800_000_000 + second).unwrap();
        let built = task("arn:t")
            .containers(&["app", "log-router"])
            .created(at(0))
            .running(at(10))
            .stopped(StopCode::EssentialContainerExited, "Essential container in task exited", at(60))
            .exit("app", 1)
            .exit("log-router", 0);
        assert!(built.is_stopped() && built.stop_requested() && built.stop_code_is(StopCode::EssentialContainerExited));
        assert_eq!((built.created_at, built.started_at, built.stopped_at), (Some(at(0)), Some(at(10)), Some(at(60))));
        let exits: Vec<_> = built.containers.iter().map(|c| (c.name.as_str(), c.exit_code)).collect();
        assert_eq!(exits, [("app", Some(1)), ("log-router", Some(0))]);
    }
}
