//! Table tests of runs of several tasks: which indexes act, parallelism, per-index retries, failFast,
//! rules, timeouts, and what the run says.

use super::*;
use crate::api::{EcsTaskRunSpec, EcsTaskRunStatus, Phase, RunReason, StopCode};
use crate::decide::run::{self, ComeBack, Effect, Observation, Opening};
use crate::decide::{
    CleanupStep, LaunchObservation, TrackObservation, UNRECORDED_LAUNCH_GRACE, cleanup_step, indexed_started_by,
    launch_request,
};
use crate::ecs::{ContainerDefinitionInfo, ContainerSnapshot, TaskDefinitionInfo, TaskSnapshot};

use crate::decide::testing::{UID, at, spec_with as spec};

fn arn(index: u32, attempt: i32) -> String {
    format!("arn:aws:ecs:eu-west-1:123456789012:task/demo/t{index}a{attempt}")
}

fn task(index: u32, attempt: i32, last_status: &str) -> TaskSnapshot {
    let launched = crate::testing::task(arn(index, attempt)).containers(&["app"]).created(at(0));
    let desired = if last_status == "STOPPED" { "STOPPED" } else { "RUNNING" };
    TaskSnapshot { last_status: Some(last_status.into()), desired_status: Some(desired.into()), ..launched }
}

fn exited(index: u32, attempt: i32, code: i32) -> TrackObservation {
    let task = task(index, attempt, "PROVISIONING")
        .running(at(5))
        .stopped(StopCode::EssentialContainerExited, "Essential container in task exited", at(30))
        .exit("app", code);
    TrackObservation::Found {
        task,
        containers: Some(vec![ContainerDefinitionInfo { name: "app".into(), essential: true, log: None }]),
    }
}

/// A run of several tasks, driven as the shell drives it.
struct Batch {
    spec: EcsTaskRunSpec,
    status: EcsTaskRunStatus,
}

impl Batch {
    fn new(spec: EcsTaskRunSpec) -> Self {
        Self { spec, status: EcsTaskRunStatus::default() }
    }

    fn view(&self) -> RunView<'_> {
        crate::decide::testing::view("shards", &self.spec, &self.status)
    }

    fn steps(&self, now: i64) -> Vec<(u32, Step)> {
        next_steps(&self.view(), at(now))
    }

    fn lane(&self, index: u32) -> &IndexedTaskStatus {
        self.status.tasks.iter().find(|t| t.index == index as i32).expect("index recorded")
    }

    /// Reconciles as the shell does, through the same `steps`, `begin` and `finish`: the intents written
    /// first, then each acting index observed from `ecs`; the effects are summed up as a `BatchPlan`.
    fn reconcile(&mut self, now: i64, ecs: impl Fn(u32, &Step) -> Option<Observed>) -> BatchPlan {
        let steps = run::steps(&self.view(), at(now));
        let mut observed = Vec::new();
        for opening in run::begin(&self.view(), &steps, Some("eu-west-1"), false, at(now)) {
            match opening {
                Opening::WriteIntent(intent) => self.status = intent,
                Opening::Observe { index, step } => observed.extend(ecs(index, &step).map(|seen| (index, seen.into()))),
            }
        }
        let mut plan = BatchPlan {
            status: self.status.clone(),
            stops: Vec::new(),
            events: Vec::new(),
            follows: Vec::new(),
            requeue: None,
            logs: Vec::new(),
        };
        for effect in run::finish(&self.view(), &steps, observed, at(now)) {
            match effect {
                Effect::ReadLogs(reads) => plan.logs = reads,
                Effect::Follow(follows) => plan.follows = follows,
                Effect::StopTask(stop) => plan.stops.push(stop),
                Effect::WriteStatus { status, .. } => plan.status = status,
                Effect::Publish(event) => plan.events.push(event),
                Effect::ComeBack(ComeBack::After(after)) => plan.requeue = Some(after),
                Effect::ComeBack(ComeBack::OnChange | ComeBack::Resync) | Effect::Record(_) | Effect::DeleteRun => {}
            }
        }
        self.status = plan.status.clone();
        plan
    }
}

#[derive(Debug)]
enum Observed {
    Launch(LaunchObservation),
    Find(Option<TaskSnapshot>),
    Track(TrackObservation),
}

impl From<Observed> for Observation {
    fn from(observed: Observed) -> Self {
        match observed {
            Observed::Launch(launched) => Observation::Launched(launched),
            Observed::Find(found) => Observation::Found(found),
            Observed::Track(tracked) => Observation::Tracked(tracked),
        }
    }
}

/// ECS starting every launch and reporting every task RUNNING.
fn all_run(index: u32, step: &Step) -> Option<Observed> {
    Some(match step {
        Step::Launch { attempt, .. } => Observed::Launch(LaunchObservation::Started(task(index, *attempt, "PENDING"))),
        Step::Track { task_arn, .. } => {
            let attempt = task_arn.rsplit('a').next().unwrap().parse().unwrap();
            Observed::Track(TrackObservation::Found { task: task(index, attempt, "RUNNING"), containers: None })
        }
        Step::Find { .. } => Observed::Find(None),
        _ => return None,
    })
}

fn launched(steps: &[(u32, Step)]) -> Vec<u32> {
    steps.iter().filter(|(_, s)| matches!(s, Step::Launch { may_exist: false, .. })).map(|(i, _)| *i).collect()
}

#[test]
fn parallelism_caps_the_indexes_launched_at_once() {
    let mut run = Batch::new(spec(serde_json::json!({"count": 5, "parallelism": 2})));
    assert_eq!(launched(&run.steps(0)), vec![0, 1], "the lowest indexes take the two slots");
    let plan = run.reconcile(0, all_run);
    assert_eq!(run.status.active_tasks, Some(2));
    assert_eq!(run.status.progress.as_deref(), Some("0/5"));
    assert_eq!(run.status.task.phase, Some(Phase::Running));
    assert_eq!(run.status.task.task_arn, None, "a run of several tasks keeps them in status.tasks");
    assert_eq!(plan.follows.iter().map(|f| f.task_arn.clone()).collect::<Vec<_>>(), vec![arn(0, 1), arn(1, 1)]);
    // One Event for the run, not one per index.
    assert_eq!(plan.events.len(), 1, "{:?}", plan.events);
    assert_eq!(
        (plan.events[0].reason, plan.events[0].note.as_str()),
        ("Running", "0 of 5 tasks succeeded, 0 failed, 2 active")
    );
    // Both slots taken: the others wait, however often the run is looked at.
    assert_eq!(launched(&run.steps(10)), Vec::<u32>::new());
    assert_ne!(plan.requeue, Some(NEXT_INDEX_DELAY), "no slot is free: nothing to come back for early");
}

#[test]
fn a_finished_index_gives_its_slot_to_the_next() {
    let mut run = Batch::new(spec(serde_json::json!({"count": 3, "parallelism": 2})));
    run.reconcile(0, all_run);
    let plan = run.reconcile(40, |index, step| match (index, step) {
        (0, Step::Track { .. }) => Some(Observed::Track(exited(0, 1, 0))),
        _ => all_run(index, step),
    });
    assert_eq!(run.lane(0).task.phase, Some(Phase::Succeeded));
    assert!(plan.events.is_empty(), "an index's success lives in status.tasks: {:?}", plan.events);
    assert_eq!(plan.requeue, Some(NEXT_INDEX_DELAY), "a slot is free: look again soon to fill it");
    assert_eq!(launched(&run.steps(42)), vec![2]);
    run.reconcile(42, all_run);
    assert_eq!(run.status.active_tasks, Some(2));
    assert_eq!(run.status.progress.as_deref(), Some("1/3"));
    // The rest succeed: the run does, once.
    let plan = run.reconcile(90, |index, _| Some(Observed::Track(exited(index, 1, 0))));
    assert_eq!(run.status.task.phase, Some(Phase::Succeeded));
    assert_eq!(run.status.progress.as_deref(), Some("3/3"));
    assert_eq!(run.status.task.message.as_deref(), Some("all 3 tasks succeeded"));
    assert_eq!(plan.events.iter().filter(|e| e.reason == "Succeeded").count(), 1);
    assert!(plan.follows.is_empty() && plan.requeue.is_none());
    assert!(run.steps(100).is_empty(), "a final run does nothing");
}

#[test]
fn every_index_gets_its_own_identity_in_ecs() {
    let mut run = Batch::new(spec(serde_json::json!({"count": 4})));
    run.status = launch_intents(&run.view(), &[(3, 1)], "eu-west-1", at(0));
    let lane = lane_status(&run.status, 3);
    let view = lane_view(&run.view(), 3, &lane);
    let definition = TaskDefinitionInfo {
        containers: vec![ContainerDefinitionInfo { name: "app".into(), essential: true, log: None }],
        ..TaskDefinitionInfo::default()
    };
    let request = launch_request(&view, 1, &definition);
    assert_eq!(request.client_token, format!("{UID}-3-1"));
    assert_eq!(request.started_by, indexed_started_by(UID, 3));
    assert!(request.tags.contains(&("ecsrun.dev/index".into(), "3".into())));
    let env = &request.overrides.unwrap().container_overrides[0].environment;
    let get = |name: &str| env.iter().find(|v| v.name == name).map(|v| v.value.clone());
    assert_eq!((get("ECSRUN_TASK_INDEX").as_deref(), get("ECSRUN_TASK_COUNT").as_deref()), (Some("3"), Some("4")));
    assert!(request.client_token.len() <= 64, "RunTask's clientToken limit");
}

#[test]
fn each_index_retries_on_its_own_backoff_limit() {
    let mut run = Batch::new(spec(serde_json::json!({"count": 2, "retryPolicy": {"backoffLimit": 1}})));
    run.reconcile(0, all_run);
    run.reconcile(30, |index, step| match index {
        1 => Some(Observed::Track(exited(1, 1, 1))),
        _ => all_run(index, step),
    });
    let lane = run.lane(1);
    assert_eq!((lane.task.phase, lane.task.known_reason()), (Some(Phase::Pending), Some(RunReason::WaitingToRetry)));
    assert_eq!(run.status.task.phase, Some(Phase::Running), "one index retrying does not stop the run");
    // The backoff (10 s) waited out, index 1 launches attempt 2 with its own clientToken; index 0 runs on.
    let steps = run.steps(41);
    assert!(steps.contains(&(1, Step::Launch { attempt: 2, may_exist: false })), "{steps:?}");
    run.reconcile(41, all_run);
    assert_eq!(run.lane(1).task.attempts.len(), 2);
    assert_eq!(run.lane(1).task.task_arn.as_deref(), Some(arn(1, 2).as_str()));
    assert_eq!(run.lane(0).task.attempts.len(), 1);
    assert_eq!(run.status.attempt_count, Some(3));
}

#[test]
fn fail_fast_stops_the_others_and_fails_the_run() {
    let mut run = Batch::new(spec(serde_json::json!({"count": 4, "parallelism": 3})));
    run.reconcile(0, all_run);
    // Index 1 exits 1 with no retries left: the others are stopped, index 3 never launches.
    let plan = run.reconcile(30, |index, step| match index {
        1 => Some(Observed::Track(exited(1, 1, 1))),
        _ => all_run(index, step),
    });
    let mut stopped: Vec<String> = plan.stops.iter().map(|s| s.task_arn.clone()).collect();
    stopped.sort();
    assert_eq!(stopped, vec![arn(0, 1), arn(2, 1)]);
    assert!(plan.stops[0].reason.contains("task index 1 failed"), "{:?}", plan.stops);
    assert_eq!(
        (run.status.task.phase, run.status.task.known_reason()),
        (Some(Phase::Stopping), Some(RunReason::FailFast))
    );
    assert_eq!(run.lane(0).task.reason, Some(RunReason::FailFast.into()));
    assert!(plan.follows.iter().all(|f| f.every <= STOPPING_POLL));
    assert_eq!(launched(&run.steps(31)), Vec::<u32>::new(), "nothing launches once failFast applies");
    // StopTask's SIGTERM ends them with 143: not their own failure, and not retried.
    let plan = run.reconcile(40, |index, _| Some(Observed::Track(exited(index, 1, 143))));
    assert_eq!(run.status.task.phase, Some(Phase::Failed));
    assert_eq!(run.status.task.reason, Some(RunReason::ContainerFailed.into()), "the culprit's own reason");
    let message = run.status.task.message.clone().unwrap();
    assert!(message.starts_with("task index 1: task t1a1 stopped"), "{message}");
    assert_eq!(
        (run.status.succeeded_tasks, run.status.failed_tasks, run.status.active_tasks),
        (Some(0), Some(3), Some(0))
    );
    assert_eq!(run.lane(0).task.reason, Some(RunReason::FailFast.into()));
    assert!(run.status.tasks.iter().all(|t| t.index != 3), "index 3 never started");
    assert!(plan.stops.is_empty() && plan.follows.is_empty());
    assert_eq!(plan.events.iter().filter(|e| e.reason == "Failed").count(), 1);
}

#[test]
fn without_fail_fast_the_others_run_to_their_end() {
    let mut run =
        Batch::new(spec(serde_json::json!({"count": 3, "parallelism": 2, "retryPolicy": {"failFast": false}})));
    run.reconcile(0, all_run);
    let plan = run.reconcile(30, |index, step| match index {
        0 => Some(Observed::Track(exited(0, 1, 2))),
        _ => all_run(index, step),
    });
    assert!(plan.stops.is_empty());
    assert_eq!(run.status.task.phase, Some(Phase::Running));
    assert_eq!(launched(&run.steps(32)), vec![2], "the failed index's slot goes to the next");
    run.reconcile(32, all_run);
    run.reconcile(60, |index, _| Some(Observed::Track(exited(index, 1, 0))));
    assert_eq!(run.status.task.phase, Some(Phase::Failed));
    assert_eq!(run.status.progress.as_deref(), Some("2/3"));
    assert_eq!((run.status.succeeded_tasks, run.status.failed_tasks), (Some(2), Some(1)));
}

#[test]
fn rules_act_per_index() {
    let rules = serde_json::json!({"backoffLimit": 5, "rules": [
        {"action": "FailRun", "onExitCodes": {"operator": "In", "values": [3]}},
        {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [75]}},
    ]});
    let mut run = Batch::new(spec(serde_json::json!({"count": 2, "retryPolicy": rules})));
    run.reconcile(0, all_run);
    // 75 on index 0: retried without counting; 3 on index 1: the run fails at once, backoffLimit 5 or not.
    run.reconcile(30, |index, _| Some(Observed::Track(exited(index, 1, if index == 0 { 75 } else { 3 }))));
    assert_eq!(run.lane(0).task.reason, Some(RunReason::FailFast.into()), "not retried once the run fails");
    assert_eq!(run.lane(0).task.attempts[0].outcome, Some(RunReason::IgnoredByRule.into()));
    assert_eq!(run.lane(1).task.reason, Some(RunReason::FailedByRule.into()));
    assert_eq!(
        (run.status.task.phase, run.status.task.known_reason()),
        (Some(Phase::Failed), Some(RunReason::FailedByRule))
    );
}

#[test]
fn a_timeout_stops_every_task_and_launches_no_more() {
    let mut run = Batch::new(spec(serde_json::json!({"count": 3, "parallelism": 2, "wait": {"timeout": "60s"}})));
    run.reconcile(0, all_run);
    let plan = run.reconcile(61, all_run);
    let mut stopped: Vec<String> = plan.stops.iter().map(|s| s.task_arn.clone()).collect();
    stopped.sort();
    assert_eq!(stopped, vec![arn(0, 1), arn(1, 1)]);
    assert!(plan.stops.iter().all(|s| s.reason.contains("timeout exceeded")), "{:?}", plan.stops);
    assert_eq!(run.status.task.reason, Some(RunReason::DeadlineExceeded.into()));
    assert_eq!(run.lane(2).task.reason, Some(RunReason::DeadlineExceeded.into()), "never launched after the deadline");
    run.reconcile(70, |index, _| Some(Observed::Track(exited(index, 1, 143))));
    assert_eq!(
        (run.status.task.phase, run.status.task.known_reason()),
        (Some(Phase::Failed), Some(RunReason::DeadlineExceeded))
    );
}

#[test]
fn under_fail_fast_an_unrecorded_launch_is_looked_for_not_repeated() {
    let rules = serde_json::json!({"backoffLimit": 1, "rules": [
        {"action": "FailRun", "onExitCodes": {"operator": "In", "values": [3]}},
    ]});
    let mut run = Batch::new(spec(serde_json::json!({"count": 3, "retryPolicy": rules})));
    run.reconcile(0, all_run);
    run.reconcile(30, |index, step| match index {
        1 => Some(Observed::Track(exited(1, 1, 1))),
        _ => all_run(index, step),
    });
    // Index 1's attempt 2: its intent is written, then the replica dies before RunTask answers.
    assert_eq!(launched(&run.steps(41)), vec![1]);
    run.status = launch_intents(&run.view(), &[(1, 2)], "eu-west-1", at(41));
    // The next replica: index 0 fails by rule while index 1's task is not yet looked for.
    run.reconcile(45, |index, step| match index {
        0 => Some(Observed::Track(exited(0, 1, 3))),
        1 => None,
        _ => all_run(index, step),
    });
    let steps = run.steps(46);
    assert!(steps.contains(&(1, Step::Find { attempt: 2 })), "looked for, never launched again: {steps:?}");
    assert_eq!(
        cleanup_step(&run.spec, UID, Some(&run.status)),
        CleanupStep::Stop { task_arns: vec![arn(2, 1)], list_started_by: vec![indexed_started_by(UID, 1)] },
        "deleting it now stops index 2's task and lists index 1's startedBy only"
    );
    run.reconcile(46, |index, step| match index {
        2 => Some(Observed::Track(exited(2, 1, 143))),
        _ => all_run(index, step),
    });
    assert_eq!(
        run.lane(1).task.phase,
        Some(Phase::Stopping),
        "5 s after its RunTask, ListTasks may not list its task yet: still looking"
    );
    assert_ne!(run.status.task.phase, Some(Phase::Failed));
    // The grace counts from the latest intent: the replica at t=45 wrote index 1's again before its lookup.
    let sent_at = run.lane(1).task.attempts.last().and_then(|attempt| attempt.sent_at.clone());
    assert_eq!(sent_at.map(|time| time.0), Some(at(45)));
    run.reconcile(44 + UNRECORDED_LAUNCH_GRACE.as_secs() as i64, all_run);
    assert_eq!(run.lane(1).task.phase, Some(Phase::Stopping), "still looking");
    run.reconcile(45 + UNRECORDED_LAUNCH_GRACE.as_secs() as i64, all_run);
    assert_eq!(run.lane(1).task.reason, Some(RunReason::FailFast.into()), "ECS has no task for it: it never started");
    assert_eq!(run.lane(2).task.reason, Some(RunReason::FailFast.into()));
    assert_eq!(
        (run.status.task.phase, run.status.task.known_reason()),
        (Some(Phase::Failed), Some(RunReason::FailedByRule))
    );
    assert_eq!(run.status.progress.as_deref(), Some("0/3"));
}

#[test]
fn deleting_a_run_of_several_tasks_stops_every_live_one() {
    let mut run = Batch::new(spec(serde_json::json!({"count": 3})));
    run.reconcile(0, all_run);
    run.reconcile(30, |index, step| match index {
        1 => Some(Observed::Track(exited(1, 1, 0))),
        _ => all_run(index, step),
    });
    assert_eq!(
        cleanup_step(&run.spec, UID, Some(&run.status)),
        CleanupStep::Stop { task_arns: vec![arn(0, 1), arn(2, 1)], list_started_by: vec![] }
    );
}

#[test]
fn a_run_of_100_tasks_with_retries_writes_a_handful_of_events() {
    let mut run = Batch::new(spec(serde_json::json!({"count": 100, "parallelism": 10,
        "retryPolicy": {"backoffLimit": 1, "failFast": false}})));
    let mut events = Vec::new();
    let mut now = 0;
    // Odd indexes fail their first attempt and succeed their second; even ones succeed at once.
    while !run.status.task.phase.is_some_and(Phase::is_terminal) {
        assert!(now < 100_000, "the run never ended: {:?}", run.status.task.message);
        let plan = run.reconcile(now, |index, step| match step {
            Step::Track { task_arn, .. } => {
                let attempt: i32 = task_arn.rsplit('a').next().unwrap().parse().unwrap();
                let code = if index % 2 == 1 && attempt == 1 { 1 } else { 0 };
                Some(Observed::Track(exited(index, attempt, code)))
            }
            _ => all_run(index, step),
        });
        events.extend(plan.events);
        now += 30;
    }
    assert_eq!(run.status.task.phase, Some(Phase::Succeeded), "{:?}", run.status.task.message);
    assert_eq!(run.status.attempt_count, Some(150));
    let reasons: Vec<&str> = events.iter().map(|e| e.reason).collect();
    eprintln!("a run of 100 tasks, 50 of them retried once: {} Events {reasons:?}", events.len());
    assert_eq!(reasons, vec!["Running", "Succeeded"]);
}

/// The largest status the schema allows: 100 indexes, each retried to the highest backoffLimit, every
/// container failing with ECS's longest reasons, every failed container's last lines read in full.
#[test]
fn the_largest_status_stays_under_256_kib_at_every_step() {
    let mut run = Batch::new(spec(serde_json::json!({"count": 100, "parallelism": 100,
        "retryPolicy": {"backoffLimit": 20, "failFast": false}, "logs": {"tailLines": 200}})));
    let names: Vec<String> = (0..10).map(|c| format!("container-{c:0>2}-{}", "n".repeat(40))).collect();
    let definition: Vec<ContainerDefinitionInfo> =
        names.iter().map(|name| ContainerDefinitionInfo { name: name.clone(), essential: true, log: None }).collect();
    let failing = |index: u32, attempt: i32| {
        let task = TaskSnapshot {
            stop_code: Some("EssentialContainerExited".into()),
            stopped_reason: Some(format!("Essential container in task exited {}", "x".repeat(220))),
            started_at: Some(at(5)),
            stopped_at: Some(at(30)),
            containers: names
                .iter()
                .map(|name| ContainerSnapshot {
                    name: name.clone(),
                    exit_code: Some(137),
                    reason: Some(format!("OutOfMemoryError: {}", "y".repeat(230))),
                    last_status: Some("STOPPED".into()),
                })
                .collect(),
            ..task(index, attempt, "STOPPED")
        };
        TrackObservation::Found { task, containers: Some(definition.clone()) }
    };
    let line = "z".repeat(199);
    let (mut now, mut largest, mut steps) = (0, 0, 0);
    while !run.status.task.phase.is_some_and(Phase::is_terminal) {
        assert!(steps < 10_000, "the run never ended: {:?}", run.status.task.message);
        let mut plan = run.reconcile(now, |index, step| match step {
            Step::Track { task_arn, .. } => {
                Some(Observed::Track(failing(index, task_arn.rsplit('a').next().unwrap().parse().unwrap())))
            }
            _ => all_run(index, step),
        });
        // What the shell does before writing: every read answered with the most lines there can be.
        for read in &plan.logs {
            let lines = vec![line.clone(); read.lines as usize];
            crate::decide::logs::attach(&mut plan.status, &mut plan.events, read, Ok(lines));
        }
        run.status = plan.status;
        let size = serde_json::to_vec(&run.status).unwrap().len();
        assert!(size < 256 * 1024, "step {steps}: {size} bytes");
        largest = largest.max(size);
        now += 400;
        steps += 1;
    }
    eprintln!("count 100, 21 attempts per index: the largest status was {largest} bytes");
    assert_eq!(run.status.task.phase, Some(Phase::Failed));
    assert_eq!(run.status.attempt_count, Some(2100), "every index retried to its backoffLimit");
    let tailed = run.status.tasks.iter().filter(|t| t.task.containers.iter().any(|c| c.log_tail.is_some())).count();
    assert!((1..=super::bound::MAX_TASKS_WITH_LOG_TAILS).contains(&tailed), "{tailed} indexes with log tails");
}

/// `spec.suspend` on a run of several tasks: every running index is stopped, none counts a failure, the
/// run is Pending and Suspended; resumed, the indexes launch again within `parallelism`.
#[test]
fn suspending_a_run_of_several_tasks_stops_them_all_and_resuming_relaunches() {
    let mut run = Batch::new(spec(serde_json::json!({"count": 3, "parallelism": 2})));
    run.reconcile(0, all_run);
    run.reconcile(1, all_run);
    assert_eq!(run.status.task.phase, Some(Phase::Running));
    run.spec.suspend = true;
    let plan = run.reconcile(2, all_run);
    assert_eq!(plan.stops.len(), 2, "both running indexes are stopped: {:?}", plan.stops);
    assert_eq!(run.status.task.reason, Some(RunReason::Suspended.into()));
    assert_eq!(run.status.task.phase, Some(Phase::Stopping));
    // ECS reports them stopped by the StopTask: each index Pending, Suspended, with no failure.
    let stopped = |index: u32, step: &Step| {
        let Step::Track { task_arn, .. } = step else { return all_run(index, step) };
        let attempt = task_arn.rsplit('a').next().unwrap().parse().unwrap();
        let task = TaskSnapshot {
            stop_code: Some("UserInitiated".into()),
            stopped_reason: Some("ecsrun: run suspended (jobs/shards)".into()),
            stopped_at: Some(at(3)),
            ..task(index, attempt, "STOPPED")
        };
        Some(Observed::Track(TrackObservation::Found { task, containers: None }))
    };
    let plan = run.reconcile(3, stopped);
    assert_eq!(run.status.task.phase, Some(Phase::Pending), "{:?}", run.status.task.message);
    assert_eq!(run.status.task.reason, Some(RunReason::Suspended.into()));
    assert!(plan.events.iter().any(|event| event.reason == "Suspended"), "{:?}", plan.events);
    assert_eq!(run.status.failed_tasks, Some(0));
    for index in 0..2 {
        assert_eq!(crate::decide::bound::failures(&run.lane(index).task).failed, 0, "index {index}");
    }
    assert!(run.steps(4).iter().all(|(_, step)| matches!(step, Step::Conclude(_))) || run.steps(4).is_empty());
    run.reconcile(4, all_run);
    assert!(run.steps(5).is_empty(), "nothing acts while suspended: {:?}", run.steps(5));
    // Resumed: two indexes launch again (parallelism 2), their attempt 2.
    run.spec.suspend = false;
    let steps = run.steps(100);
    assert_eq!(launched(&steps), vec![0, 1], "{steps:?}");
}

/// ECS reporting index `index`'s task stopped by a StopTask (SIGTERM, exit 143).
fn stopped_by_us(index: u32, attempt: i32) -> TrackObservation {
    let TrackObservation::Found { task, containers } = exited(index, attempt, 143) else { unreachable!() };
    let task = TaskSnapshot {
        stop_code: Some("UserInitiated".into()),
        stopped_reason: Some("ecsrun: enough tasks succeeded (jobs/shards)".into()),
        ..task
    };
    TrackObservation::Found { task, containers }
}

/// `tasksToSucceed`: once two of four tasks succeeded the run succeeds; the two still running are stopped
/// and marked NotNeeded, which is no failure.
#[test]
fn tasks_to_succeed_ends_the_run_in_success_and_stops_the_rest() {
    let mut run = Batch::new(spec(serde_json::json!({"count": 4, "tasksToSucceed": 2})));
    run.reconcile(0, all_run);
    run.reconcile(1, all_run);
    let two_done = |index: u32, step: &Step| match (index, step) {
        (0 | 1, Step::Track { .. }) => Some(Observed::Track(exited(index, 1, 0))),
        _ => all_run(index, step),
    };
    let plan = run.reconcile(40, two_done);
    assert_eq!(run.status.task.phase, Some(Phase::Stopping), "{:?}", run.status.task.message);
    assert_eq!(run.status.task.reason, Some(RunReason::NotNeeded.into()));
    let mut stopped: Vec<String> = plan.stops.iter().map(|s| s.task_arn.clone()).collect();
    stopped.sort();
    assert_eq!(stopped, vec![arn(2, 1), arn(3, 1)]);
    assert!(
        run.steps(41).iter().all(|(_, step)| matches!(step, Step::Track { .. })),
        "nothing launches: {:?}",
        run.steps(41)
    );
    let rest_stopped = |index: u32, step: &Step| match step {
        Step::Track { .. } => Some(Observed::Track(stopped_by_us(index, 1))),
        _ => all_run(index, step),
    };
    run.reconcile(50, rest_stopped);
    assert_eq!(run.status.task.phase, Some(Phase::Succeeded), "{:?}", run.status.task.message);
    assert_eq!(run.status.succeeded_tasks, Some(2));
    assert_eq!(run.status.failed_tasks, Some(0));
    for index in [2, 3] {
        assert_eq!(run.lane(index).task.reason, Some(RunReason::NotNeeded.into()), "index {index}");
    }
    assert!(run.steps(60).is_empty());
}

/// `maxFailedIndexes: 1` with `failFast: false`: one failed task is tolerated while the others run; a
/// second stops the rest and fails the run.
#[test]
fn max_failed_indexes_stops_the_run_past_its_budget() {
    let mut run = Batch::new(spec(serde_json::json!({
        "count": 4, "retryPolicy": {"failFast": false, "maxFailedIndexes": 1}
    })));
    run.reconcile(0, all_run);
    run.reconcile(1, all_run);
    let first_fails = |index: u32, step: &Step| match (index, step) {
        (0, Step::Track { .. }) => Some(Observed::Track(exited(0, 1, 1))),
        _ => all_run(index, step),
    };
    let plan = run.reconcile(40, first_fails);
    assert!(plan.stops.is_empty(), "one failure is within the budget: {:?}", plan.stops);
    assert_eq!(run.status.task.phase, Some(Phase::Running));
    let second_fails = |index: u32, step: &Step| match (index, step) {
        (1, Step::Track { .. }) => Some(Observed::Track(exited(1, 1, 1))),
        _ => all_run(index, step),
    };
    let plan = run.reconcile(50, second_fails);
    assert_eq!(plan.stops.len(), 2, "{:?}", plan.stops);
    assert_eq!(run.status.task.reason, Some(RunReason::MaxFailedIndexesExceeded.into()));
    let rest_stopped = |index: u32, step: &Step| match step {
        Step::Track { .. } => Some(Observed::Track(stopped_by_us(index, 1))),
        _ => all_run(index, step),
    };
    run.reconcile(60, rest_stopped);
    assert_eq!(run.status.task.phase, Some(Phase::Failed), "{:?}", run.status.task.message);
    assert_eq!(run.status.task.reason, Some(RunReason::MaxFailedIndexesExceeded.into()));
    assert_eq!(run.status.failed_tasks, Some(4));
    for index in [2, 3] {
        assert_eq!(run.lane(index).task.reason, Some(RunReason::FailFast.into()), "stopped for the others: {index}");
    }
}
