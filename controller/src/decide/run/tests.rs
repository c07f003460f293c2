//! The order of a reconcile's effects, checked without any server: the launch intent before RunTask, a
//! run found gone during its launch having its task stopped, log tails read before the status and Events
//! that carry them, StopTask before the status that tells it.

use super::*;
use crate::api::{EcsTaskRunSpec, EcsTaskRunStatus, Phase};
use crate::decide::{LaunchObservation, TrackObservation};
use crate::ecs::{ContainerDefinitionInfo, ContainerSnapshot, LogConfiguration, TaskSnapshot};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::decide::testing::{at, spec_with as spec};

fn view<'a>(spec: &'a EcsTaskRunSpec, status: &'a EcsTaskRunStatus) -> RunView<'a> {
    crate::decide::testing::view("nightly", spec, status)
}

fn task(arn: &str, last_status: &str) -> TaskSnapshot {
    TaskSnapshot {
        task_arn: arn.into(),
        last_status: Some(last_status.into()),
        desired_status: Some("RUNNING".into()),
        created_at: Some(at(0)),
        containers: vec![ContainerSnapshot { name: "app".into(), ..ContainerSnapshot::default() }],
        ..TaskSnapshot::default()
    }
}

fn position<T: std::fmt::Debug>(effects: &[T], wanted: impl Fn(&T) -> bool) -> usize {
    effects.iter().position(wanted).unwrap_or_else(|| panic!("not among the effects: {effects:#?}"))
}

/// Runs `begin` and, as the shell does, writes the intent before observing.
fn begin_on(spec: &EcsTaskRunSpec, status: &mut EcsTaskRunStatus, now: i64) -> (Steps, Vec<Opening>) {
    let steps = steps(&view(spec, status), at(now));
    let effects = begin(&view(spec, status), &steps, Some("eu-west-1"), false, at(now));
    if let Some(Opening::WriteIntent(intent)) = effects.first() {
        *status = intent.clone();
    }
    (steps, effects)
}

#[test]
fn the_launch_intent_is_written_before_any_run_task() {
    for spec in [spec(serde_json::json!({})), spec(serde_json::json!({"count": 3, "parallelism": 2}))] {
        let mut status = EcsTaskRunStatus::default();
        let (_, effects) = begin_on(&spec, &mut status, 1);
        let launches: Vec<usize> = effects
            .iter()
            .enumerate()
            .filter(|(_, effect)| matches!(effect, Opening::Observe { step: Step::Launch { .. }, .. }))
            .map(|(at, _)| at)
            .collect();
        assert_eq!(launches.len(), spec.max_parallel().min(spec.count as usize), "{effects:#?}");
        let intent = position(&effects, |effect| matches!(effect, Opening::WriteIntent(_)));
        assert!(launches.iter().all(|launch| intent < *launch), "intent after a launch: {effects:#?}");
        // The intent records every launching lane's attempt, without a task yet.
        let Opening::WriteIntent(intent) = &effects[intent] else { unreachable!() };
        for (index, lane) in intent.lanes() {
            let attempt = lane.attempts.last().unwrap_or_else(|| panic!("lane {index} has no attempt"));
            assert_eq!((attempt.task_arn.as_ref(), attempt.outcome.as_ref()), (None, None));
        }
        assert_eq!(intent.region.as_deref(), Some("eu-west-1"), "the region is pinned with the intent");
    }
}

#[test]
fn a_launch_the_policies_refuse_records_no_intent_and_each_run_task_is_preceded_by_one() {
    let spec = spec(serde_json::json!({}));
    let status = EcsTaskRunStatus::default();
    let steps = steps(&view(&spec, &status), at(1));
    let effects = begin(&view(&spec, &status), &steps, Some("eu-west-1"), true, at(1));
    assert!(!effects.iter().any(|effect| matches!(effect, Opening::WriteIntent(_))), "{effects:#?}");
    // An intent found recorded (a crash after writing it): the launch looks for its task first, and says
    // when it sends RunTask again, from which a task not listed yet is waited for.
    let mut status = EcsTaskRunStatus::default();
    begin_on(&spec, &mut status, 1);
    let (_, effects) = begin_on(&spec, &mut status, 2);
    let [Opening::WriteIntent(intent), Opening::Observe { index: 0, step }] = effects.as_slice() else {
        panic!("{effects:#?}")
    };
    assert_eq!(*step, Step::Launch { attempt: 1, may_exist: true });
    assert_eq!(intent.task.attempts.len(), 1, "the same attempt");
    assert_eq!(intent.task.attempts[0].sent_at, Some(Time(at(2))));
}

#[test]
fn a_run_found_gone_during_its_launch_has_its_task_stopped() {
    let spec = spec(serde_json::json!({}));
    let mut status = EcsTaskRunStatus::default();
    let (steps, _) = begin_on(&spec, &mut status, 1);
    let launched = task("arn:aws:ecs:eu-west-1:123456789012:task/demo/t1", "PROVISIONING");
    let observed = vec![(0, Observation::Launched(LaunchObservation::Started(launched.clone())))];
    let effects = finish(&view(&spec, &status), &steps, observed, at(2));
    let follow = position(&effects, |effect| matches!(effect, Effect::Follow(follows) if follows.len() == 1));
    let record =
        position(&effects, |effect| matches!(effect, Effect::Record(tasks) if tasks == &vec![launched.clone()]));
    let write = position(
        &effects,
        |effect| matches!(effect, Effect::WriteStatus { stop_if_gone, .. } if stop_if_gone == &vec![launched.task_arn.clone()]),
    );
    assert!(follow < record && record < write, "{effects:#?}");
    let Effect::WriteStatus { status: written, .. } = &effects[write] else { unreachable!() };
    assert_eq!(written.task.task_arn.as_deref(), Some(launched.task_arn.as_str()));
    assert!(matches!(effects.last(), Some(Effect::ComeBack(_))), "when to come back is the last word");
}

#[test]
fn every_lane_of_a_batch_launched_now_is_stopped_if_the_run_is_gone() {
    let spec = spec(serde_json::json!({"count": 3, "parallelism": 3}));
    let mut status = EcsTaskRunStatus::default();
    let (steps, _) = begin_on(&spec, &mut status, 1);
    let arn = |i: u32| format!("arn:aws:ecs:eu-west-1:123456789012:task/demo/t{i}");
    let observed =
        (0..3).map(|i| (i, Observation::Launched(LaunchObservation::Started(task(&arn(i), "PENDING"))))).collect();
    let effects = finish(&view(&spec, &status), &steps, observed, at(2));
    let Some(Effect::WriteStatus { stop_if_gone, .. }) =
        effects.iter().find(|effect| matches!(effect, Effect::WriteStatus { .. }))
    else {
        panic!("no status write: {effects:#?}")
    };
    assert_eq!(stop_if_gone, &(0..3).map(arn).collect::<Vec<_>>());
}

fn running(spec: &EcsTaskRunSpec) -> EcsTaskRunStatus {
    let mut status = EcsTaskRunStatus::default();
    let (steps, _) = begin_on(spec, &mut status, 1);
    let observed = vec![(
        0,
        Observation::Launched(LaunchObservation::Started(task("arn:aws:ecs:eu-west-1:1:task/demo/t1", "RUNNING"))),
    )];
    let effects = finish(&view(spec, &status), &steps, observed, at(2));
    effects
        .into_iter()
        .find_map(|effect| match effect {
            Effect::WriteStatus { status, .. } => Some(status),
            _ => None,
        })
        .unwrap()
}

/// The task of `running`, stopped with its essential `app` container exiting 3.
fn failed_app() -> TaskSnapshot {
    TaskSnapshot {
        stop_code: Some("EssentialContainerExited".into()),
        stopped_at: Some(at(50)),
        containers: vec![ContainerSnapshot { name: "app".into(), exit_code: Some(3), ..ContainerSnapshot::default() }],
        ..task("arn:aws:ecs:eu-west-1:1:task/demo/t1", "STOPPED")
    }
}

/// A task definition whose `app` logs with awslogs (group `/ecs/report`, prefix `ecs`).
fn logging_app() -> Vec<ContainerDefinitionInfo> {
    let log = LogConfiguration {
        driver: "awslogs".into(),
        group: Some("/ecs/report".into()),
        region: None,
        stream_prefix: Some("ecs".into()),
    };
    vec![ContainerDefinitionInfo { name: "app".into(), essential: true, log: Some(log) }]
}

#[test]
fn a_failed_containers_last_lines_are_read_before_the_status_and_event_that_carry_them() {
    let spec = spec(serde_json::json!({}));
    let status = running(&spec);
    let steps = steps(&view(&spec, &status), at(60));
    assert!(matches!(steps.acting.as_slice(), [(0, Step::Track { .. })]), "{steps:?}");
    let found = TrackObservation::Found { task: failed_app(), containers: Some(logging_app()) };
    let observed = vec![(0, Observation::Tracked(found))];
    let mut effects = finish(&view(&spec, &status), &steps, observed, at(60));
    let read = position(&effects, |effect| matches!(effect, Effect::ReadLogs(_)));
    let write = position(&effects, |effect| matches!(effect, Effect::WriteStatus { .. }));
    let failed = position(&effects, |effect| matches!(effect, Effect::Publish(event) if event.reason == "Failed"));
    assert!(read < write && write < failed, "{effects:#?}");
    // What the shell reads goes into both.
    let Effect::ReadLogs(reads) = effects[read].clone() else { unreachable!() };
    attach_log_tail(&mut effects[read + 1..], &reads[0], Ok(vec!["boom".into()]));
    let Effect::WriteStatus { status: written, .. } = &effects[write] else { unreachable!() };
    assert_eq!(written.task.containers[0].log_tail.as_deref(), Some("boom"));
    assert_eq!(written.task.phase, Some(Phase::Failed));
    let Effect::Publish(event) = &effects[failed] else { unreachable!() };
    assert!(event.note.ends_with("last lines of app:\nboom"), "{}", event.note);
}

#[test]
fn the_namespaces_policies_cap_the_lines_read_and_zero_reads_none() {
    let spec = spec(serde_json::json!({"logs": {"tailLines": 50}}));
    let status = running(&spec);
    let lines_read = |cap: Option<u32>| {
        let view = RunView { max_tail_lines: cap, ..view(&spec, &status) };
        let steps = steps(&view, at(60));
        let found = TrackObservation::Found { task: failed_app(), containers: Some(logging_app()) };
        let observed = vec![(0, Observation::Tracked(found))];
        let effects = finish(&view, &steps, observed, at(60));
        assert!(
            effects
                .iter()
                .any(|e| matches!(e, Effect::WriteStatus { status, .. } if status.task.phase == Some(Phase::Failed))),
            "the run fails whatever the cap: {effects:#?}"
        );
        effects.into_iter().find_map(|effect| match effect {
            Effect::ReadLogs(reads) => Some(reads.iter().map(|read| read.lines).collect::<Vec<_>>()),
            _ => None,
        })
    };
    assert_eq!(lines_read(None), Some(vec![50]), "uncapped: as the spec asks");
    assert_eq!(lines_read(Some(200)), Some(vec![50]), "a cap above the ask changes nothing");
    assert_eq!(lines_read(Some(5)), Some(vec![5]));
    assert_eq!(lines_read(Some(0)), None, "no tails in this namespace: nothing is read");
}

#[test]
fn a_stop_is_sent_before_the_status_that_tells_it_and_the_run_looks_again_soon() {
    // Running, then asked to stop.
    let status = running(&spec(serde_json::json!({})));
    let spec = spec(serde_json::json!({"stop": true}));
    let steps = steps(&view(&spec, &status), at(3));
    let observed = vec![(
        0,
        Observation::Tracked(TrackObservation::Found {
            task: task("arn:aws:ecs:eu-west-1:1:task/demo/t1", "RUNNING"),
            containers: None,
        }),
    )];
    let effects = finish(&view(&spec, &status), &steps, observed, at(3));
    let stop = position(&effects, |effect| matches!(effect, Effect::StopTask(_)));
    let write = position(&effects, |effect| matches!(effect, Effect::WriteStatus { .. }));
    assert!(stop < write, "{effects:#?}");
    assert_eq!(effects.last(), Some(&Effect::ComeBack(ComeBack::After(STOP_RECHECK))));
}

#[test]
fn a_task_not_seen_yet_is_followed_and_nothing_is_written() {
    let spec = spec(serde_json::json!({}));
    let status = running(&spec);
    let steps = steps(&view(&spec, &status), at(40));
    let effects = finish(&view(&spec, &status), &steps, vec![(0, Observation::NotSeenYet)], at(40));
    assert!(matches!(&effects[0], Effect::Follow(follows) if follows.len() == 1), "{effects:#?}");
    assert!(effects.iter().any(|effect| matches!(effect, Effect::WriteStatus { status: s, .. } if s == &status)));
    assert_eq!(effects.last(), Some(&Effect::ComeBack(ComeBack::Resync)));
}

#[test]
fn a_held_up_launch_says_why_and_a_final_run_does_nothing() {
    let spec = spec(serde_json::json!({}));
    let mut status = EcsTaskRunStatus::default();
    let (steps, _) = begin_on(&spec, &mut status, 1);
    let observed =
        vec![(0, Observation::HeldUp { reason: "Throttled", cause: "ECS RunTask failed (throttled)".into() })];
    let effects = finish(&view(&spec, &status), &steps, observed, at(2));
    let Some(Effect::WriteStatus { status: written, .. }) =
        effects.iter().find(|effect| matches!(effect, Effect::WriteStatus { .. }))
    else {
        panic!("{effects:#?}")
    };
    assert_eq!((written.task.phase, written.task.reason_str()), (Some(Phase::Pending), Some("Throttled")));
    let done = EcsTaskRunStatus {
        task: crate::api::TaskStatus { phase: Some(Phase::Succeeded), ..Default::default() },
        ..Default::default()
    };
    assert!(steps_of(&spec, &done).is_idle());
    assert_eq!(
        idle(&view(&spec, &done), at(100)),
        vec![Effect::Follow(Vec::new()), Effect::ComeBack(ComeBack::OnChange)]
    );
}

/// A run in `phase` whose final condition (`Succeeded`, else `Stalled`) turned True at `second`.
fn finished(phase: Phase, second: i64) -> EcsTaskRunStatus {
    let type_ = if phase == Phase::Succeeded { "Succeeded" } else { "Stalled" };
    let condition =
        |type_: &str, status: &str, second: i64| k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: type_.into(),
            status: status.into(),
            last_transition_time: Time(at(second)),
            reason: "Done".into(),
            message: String::new(),
            observed_generation: Some(1),
        };
    EcsTaskRunStatus {
        task: crate::api::TaskStatus { phase: Some(phase), ..Default::default() },
        // Ready flipped earlier: only the final condition's time counts.
        conditions: vec![condition("Ready", "False", 5), condition(type_, "True", second)],
        ..Default::default()
    }
}

#[test]
fn a_finished_run_is_deleted_once_its_ttl_has_passed_since_it_finished() {
    let last = |spec: &EcsTaskRunSpec, status: &EcsTaskRunStatus, now: i64| {
        idle(&view(spec, status), at(now)).pop().expect("an effect")
    };
    let kept = spec(serde_json::json!({}));
    let ttl = spec(serde_json::json!({"ttlSecondsAfterFinished": 300}));
    let at_once = spec(serde_json::json!({"ttlSecondsAfterFinished": 0}));
    for phase in [Phase::Succeeded, Phase::Failed, Phase::Unknown] {
        let done = finished(phase, 100);
        assert_eq!(finished_at(&done), Some(at(100)), "{phase:?}");
        assert_eq!(last(&kept, &done, 10_000), Effect::ComeBack(ComeBack::OnChange), "{phase:?}: no TTL, kept");
        assert_eq!(last(&ttl, &done, 150), Effect::ComeBack(ComeBack::After(Duration::from_secs(250))), "{phase:?}");
        assert_eq!(last(&ttl, &done, 400), Effect::DeleteRun, "{phase:?}: exactly when it expires");
        assert_eq!(last(&ttl, &done, 9_000), Effect::DeleteRun, "{phase:?}: a controller back after a long outage");
        assert_eq!(last(&at_once, &done, 100), Effect::DeleteRun, "{phase:?}: 0 deletes at once");
    }
    // Not finished: nothing expires.
    let running = EcsTaskRunStatus {
        task: crate::api::TaskStatus { phase: Some(Phase::Running), ..Default::default() },
        ..Default::default()
    };
    assert_eq!(finished_at(&running), None);
    assert_eq!(last(&at_once, &running, 10_000), Effect::ComeBack(ComeBack::OnChange));
}

/// The reconcile that ends a run is the last one its own status write brings (status writes do not
/// change the generation): it sets the TTL's return itself, after the status and Events.
#[test]
fn the_reconcile_that_finishes_a_run_comes_back_when_its_ttl_expires() {
    for (ttl, expected) in [
        (Some(300), Effect::ComeBack(ComeBack::After(Duration::from_secs(300)))),
        (Some(0), Effect::DeleteRun),
        (None, Effect::ComeBack(ComeBack::OnChange)),
    ] {
        let spec = spec(serde_json::json!({"ttlSecondsAfterFinished": ttl}));
        let status = running(&spec);
        let steps = steps(&view(&spec, &status), at(60));
        let stopped = TaskSnapshot {
            stop_code: Some("EssentialContainerExited".into()),
            stopped_at: Some(at(50)),
            containers: vec![ContainerSnapshot {
                name: "app".into(),
                exit_code: Some(0),
                ..ContainerSnapshot::default()
            }],
            ..task("arn:aws:ecs:eu-west-1:1:task/demo/t1", "STOPPED")
        };
        let observed = vec![(0, Observation::Tracked(TrackObservation::Found { task: stopped, containers: None }))];
        let effects = finish(&view(&spec, &status), &steps, observed, at(60));
        let write = position(
            &effects,
            |effect| matches!(effect, Effect::WriteStatus { status, .. } if status.task.phase == Some(Phase::Succeeded)),
        );
        assert_eq!(effects.last(), Some(&expected), "ttl {ttl:?}: {effects:#?}");
        assert!(write < effects.len() - 1, "the status is written before the run is deleted or left");
    }
}

fn steps_of(spec: &EcsTaskRunSpec, status: &EcsTaskRunStatus) -> Steps {
    steps(&view(spec, status), at(100))
}
