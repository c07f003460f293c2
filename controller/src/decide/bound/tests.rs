//! The status stays small: attempts summed past the latest few without changing any decision, messages
//! capped, and a run of several tasks fitted to its budget in a fixed order.

use std::time::Duration;

use jiff::Timestamp;

use super::*;
use crate::api::{ContainerStatus, EcsTaskRunSpec, ResourceUsage};
use crate::decide::{
    Admission, LaunchObservation, RunView, Step, TrackObservation, after_launch, after_track, next_step,
};
use crate::ecs::{ContainerDefinitionInfo, ContainerSnapshot, TaskSnapshot};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap()
}

fn ended(number: i32, outcome: RunReason) -> Attempt {
    Attempt {
        attempt: number,
        task_arn: Some(format!("arn:aws:ecs:eu-west-1:123456789012:task/demo/t{number}")),
        stopped_at: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(i64::from(number) * 60))),
        outcome: Some(outcome.into()),
        message: Some(format!("attempt {number} ended {outcome:?}")),
        usage: Some(ResourceUsage { vcpu_seconds: 1.5, gib_seconds: 3.0, capacity_provider: None }),
        ..Attempt::default()
    }
}

#[test]
fn older_attempts_are_summed_and_the_tallies_do_not_change() {
    let outcomes = [
        RunReason::ContainerFailed,
        RunReason::InsufficientCapacity,
        RunReason::ContainerFailed,
        RunReason::Interrupted,
        RunReason::ContainerFailed,
        RunReason::IgnoredByRule,
        RunReason::ContainerFailed,
        RunReason::ContainerFailed,
    ];
    let mut task = TaskStatus {
        attempts: outcomes.iter().enumerate().map(|(i, outcome)| ended(i as i32 + 1, *outcome)).collect(),
        ..TaskStatus::default()
    };
    let (made, tally, used) =
        (attempts_made(&task), failures(&task), crate::decide::usage::of_tasks([&task].into_iter()));
    keep_latest_attempts(&mut task, KEPT_ATTEMPTS);
    assert_eq!(task.attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(), vec![4, 5, 6, 7, 8]);
    assert_eq!(
        task.earlier_attempts,
        Some(EarlierAttempts {
            count: 3,
            failed: 3,
            uncounted: 1,
            usage: Some(ResourceUsage { vcpu_seconds: 4.5, gib_seconds: 9.0, capacity_provider: None })
        })
    );
    assert_eq!((attempts_made(&task), failures(&task)), (made, tally));
    assert_eq!(tally, Failures { failed: 8, uncounted: 3 });
    assert_eq!(crate::decide::usage::of_tasks([&task].into_iter()), used, "what the run used is kept");
}

#[test]
fn an_attempt_whose_task_may_be_alive_or_the_latest_is_never_summed() {
    let mut alive = ended(1, RunReason::TaskLost);
    alive.stopped_at = None;
    let mut task = TaskStatus {
        attempts: vec![alive, ended(2, RunReason::ContainerFailed), Attempt { attempt: 3, ..Attempt::default() }],
        ..TaskStatus::default()
    };
    keep_latest_attempts(&mut task, 1);
    // Attempt 1's task was never seen stopped (deletion stops it); 3 is in progress.
    assert_eq!(task.attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(task.earlier_attempts.as_ref().map(|e| e.count), Some(1));
}

#[test]
fn messages_are_cut_at_a_character_boundary() {
    assert_eq!(capped("short", 10), "short");
    let wide = "é".repeat(10);
    assert_eq!(capped(&wide, 5), "éé");
}

fn failing_task(attempt: i32) -> TaskSnapshot {
    TaskSnapshot {
        task_arn: format!("arn:aws:ecs:eu-west-1:123456789012:task/demo/t{attempt}"),
        last_status: Some("STOPPED".into()),
        desired_status: Some("STOPPED".into()),
        stop_code: Some("EssentialContainerExited".into()),
        stopped_reason: Some("x".repeat(255)),
        created_at: Some(at(0)),
        started_at: Some(at(1)),
        stopped_at: Some(at(2)),
        containers: vec![ContainerSnapshot {
            name: "app".into(),
            exit_code: Some(1),
            reason: Some("r".repeat(255)),
            ..ContainerSnapshot::default()
        }],
        ..TaskSnapshot::default()
    }
}

#[test]
fn a_run_retried_to_its_highest_backoff_limit_keeps_five_attempts_and_gives_up_when_it_should() {
    let spec: EcsTaskRunSpec = serde_json::from_value(serde_json::json!({
        "cluster": "demo", "taskDefinition": "report:3", "retryPolicy": {"backoffLimit": 20}
    }))
    .unwrap();
    let mut status = crate::api::EcsTaskRunStatus::default();
    let definition = vec![ContainerDefinitionInfo { name: "app".into(), essential: true, log: None }];
    let mut now = 0;
    let mut launched = Vec::new();
    loop {
        let view = RunView {
            namespace: "jobs",
            name: "nightly",
            uid: "0f0e0d0c-1111-2222-3333-444455556666",
            generation: Some(1),
            created_at: at(0),
            spec: &spec,
            status: &status,
            default_poll_interval: Duration::from_secs(30),
            index: 0,
            max_tail_lines: None,
            cluster_id: None,
            admission: &Admission::NotQueued,
            results_allowed: true,
            results: &crate::decide::results::NO_RESULT_LOGS,
        };
        let plan = match next_step(&view, at(now)) {
            Step::Idle => break,
            Step::Wait(after) => {
                now += after.as_secs() as i64;
                continue;
            }
            Step::Launch { attempt, may_exist: false } => {
                launched.push(attempt);
                after_launch(&view, attempt, LaunchObservation::Started(failing_task(attempt)), at(now))
            }
            Step::Track { task_arn, .. } => {
                let attempt: i32 = task_arn.rsplit('t').next().unwrap().parse().unwrap();
                let found =
                    TrackObservation::Found { task: failing_task(attempt), containers: Some(definition.clone()) };
                after_track(&view, found, at(now))
            }
            other => panic!("unexpected step {other:?}"),
        };
        assert!(
            plan.status.task.attempts.len() <= KEPT_ATTEMPTS,
            "{} attempts listed",
            plan.status.task.attempts.len()
        );
        status = plan.status;
        now += 1;
    }
    // backoffLimit 20: the first attempt and 20 retries, numbered without a gap or a repeat.
    assert_eq!(launched, (1..=21).collect::<Vec<_>>());
    assert_eq!(status.attempt_count, Some(21));
    assert_eq!(status.task.reason, Some(RunReason::BackoffLimitExceeded.into()));
    assert!(
        status.task.message.as_deref().unwrap().contains("giving up after 21 attempt(s)"),
        "{:?}",
        status.task.message
    );
    assert_eq!(status.task.earlier_attempts.as_ref().map(|e| (e.count, e.failed)), Some((16, 16)));
}

fn lane(index: i32, active: bool, tail: bool) -> IndexedTaskStatus {
    let mut attempts: Vec<Attempt> = (1..=5).map(|n| ended(n, RunReason::ContainerFailed)).collect();
    if active {
        attempts.push(Attempt {
            attempt: 6,
            task_arn: Some("arn:aws:ecs:::task/demo/live".into()),
            ..Attempt::default()
        });
    }
    IndexedTaskStatus {
        index,
        task: TaskStatus {
            message: Some("m".repeat(MAX_MESSAGE_BYTES)),
            task_arn: attempts.last().and_then(|a| a.task_arn.clone()),
            last_status: Some(if active { "RUNNING" } else { "STOPPED" }.into()),
            containers: (0..10)
                .map(|c| ContainerStatus {
                    name: format!("container-{c}"),
                    exit_code: Some(1),
                    reason: Some("r".repeat(255)),
                    last_status: Some("STOPPED".into()),
                    essential: Some(true),
                    log_tail: tail.then(|| "l".repeat(crate::decide::logs::MAX_LOG_TAIL_BYTES)),
                    log_tail_error: None,
                })
                .collect(),
            attempts,
            ..TaskStatus::default()
        },
    }
}

#[test]
fn a_run_of_several_tasks_gives_up_detail_of_finished_indexes_first_and_never_what_decisions_read() {
    let mut status = crate::api::EcsTaskRunStatus {
        tasks: (0..100).map(|index| lane(index, index % 2 == 0, index < 3)).collect(),
        ..Default::default()
    };
    let before = status.clone();
    assert!(size_of(&status) > 2 * STATUS_BUDGET_BYTES, "the unfitted status is {} bytes", size_of(&status));
    fit(&mut status, Some(1), STATUS_BUDGET_BYTES);
    assert!(size_of(&status) <= STATUS_BUDGET_BYTES, "{} bytes", size_of(&status));
    for (fitted, original) in status.tasks.iter().zip(&before.tasks) {
        assert_eq!(attempts_made(&fitted.task), attempts_made(&original.task), "index {}", fitted.index);
        assert_eq!(failures(&fitted.task), failures(&original.task), "index {}", fitted.index);
        let what_decisions_read =
            |a: Option<&Attempt>| a.map(|a| (a.attempt, a.task_arn.clone(), a.stopped_at.clone(), a.outcome.clone()));
        assert_eq!(
            what_decisions_read(fitted.task.attempts.last()),
            what_decisions_read(original.task.attempts.last()),
            "the latest attempt stays"
        );
        assert_eq!(
            (&fitted.task.phase, &fitted.task.task_arn, &fitted.task.last_status),
            (&original.task.phase, &original.task.task_arn, &original.task.last_status)
        );
    }
    // The index that failed the run keeps its last lines; the others' go first.
    assert!(status.tasks[1].task.containers.iter().all(|c| c.log_tail.is_some()), "the culprit's last lines stay");
    assert!(status.tasks[0].task.containers.iter().all(|c| c.log_tail.is_none()), "the others' go");
    // Fitting again changes nothing: no write of its own.
    let fitted = status.clone();
    fit(&mut status, Some(1), STATUS_BUDGET_BYTES);
    assert_eq!(status, fitted);
}

#[test]
fn a_status_within_its_budget_is_left_alone() {
    let mut status = crate::api::EcsTaskRunStatus {
        tasks: (0..3).map(|index| lane(index, index == 0, true)).collect(),
        ..Default::default()
    };
    let before = status.clone();
    fit(&mut status, Some(1), STATUS_BUDGET_BYTES);
    assert_eq!(status, before);
}

#[test]
fn log_tails_are_kept_for_a_bounded_few_indexes_and_containers() {
    // Indexes 0 and 1 hold ten tails each: no room for more containers, whatever the index.
    let mut status = crate::api::EcsTaskRunStatus {
        tasks: (0..10).map(|index| lane(index, false, index < 2)).collect(),
        ..Default::default()
    };
    assert!(!may_read_log_tail(&status, 0, &[]));
    for lane in &mut status.tasks {
        lane.task.containers.truncate(2);
    }
    // Now four: a third index may read, not a fourth; nor past eight containers.
    assert!(may_read_log_tail(&status, 0, &[]), "an index that has tails may read more");
    assert!(may_read_log_tail(&status, 5, &[]), "a third index may");
    assert!(!may_read_log_tail(&status, 6, &[5]), "not a fourth");
    assert!(may_read_log_tail(&status, 5, &[5, 5, 5]));
    assert!(!may_read_log_tail(&status, 5, &[5, 5, 5, 5]), "eight containers at most");
}
