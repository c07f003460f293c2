//! Table tests of the run policy: no cluster, no AWS, no clock.

use super::judge::first_matching_rule;
use super::*;
use crate::api::{
    ContainerOverride, DeletionPolicy, EcsTaskRunSpec, EnvVar, RetryPolicy, StopCode, SuccessPolicy, TaskOverrides,
    WaitFor, WaitPolicy,
};
use crate::ecs::{ContainerSnapshot, EcsErrorKind, TaskDefinitionInfo};
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
}

impl Run {
    fn new(spec: EcsTaskRunSpec) -> Self {
        Self { spec, status: EcsTaskRunStatus::default() }
    }

    fn view(&self) -> RunView<'_> {
        super::testing::view("nightly", &self.spec, &self.status)
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

fn task(last_status: &str) -> TaskSnapshot {
    TaskSnapshot {
        task_arn: ARN.into(),
        task_definition_arn: Some(TD_ARN.into()),
        last_status: Some(last_status.into()),
        desired_status: Some(if last_status == "STOPPED" { "STOPPED" } else { "RUNNING" }.into()),
        created_at: Some(at(0)),
        containers: vec![container("app", None), container("log-router", None)],
        ..TaskSnapshot::default()
    }
}

fn container(name: &str, exit_code: Option<i32>) -> ContainerSnapshot {
    ContainerSnapshot { name: name.into(), exit_code, ..ContainerSnapshot::default() }
}

fn stopped(stop_code: &str, reason: &str, app: Option<i32>, sidecar: Option<i32>) -> TaskSnapshot {
    TaskSnapshot {
        stop_code: Some(stop_code.into()),
        stopped_reason: Some(reason.into()),
        stopped_at: Some(at(60)),
        started_at: Some(at(10)),
        containers: vec![container("app", app), container("log-router", sidecar)],
        ..task("STOPPED")
    }
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

#[test]
fn a_new_run_launches_attempt_one() {
    let run = Run::new(spec());
    assert_eq!(next_step(&run.view(), at(1)), Step::Launch { attempt: 1, may_exist: false });
}

#[test]
fn a_recorded_launch_intent_means_the_task_may_exist() {
    let mut run = Run::new(spec());
    let intent = launch_intent(&run.view(), 1, "eu-west-1", at(1));
    assert_eq!(intent.region.as_deref(), Some("eu-west-1"), "the region is pinned at the first launch");
    assert_eq!(intent.task.phase, Some(Phase::Pending));
    assert_eq!(intent.task.reason, Some(RunReason::Launching.into()));
    assert_eq!(intent.task.attempts.len(), 1);
    assert_eq!((intent.task.attempts[0].task_arn.as_ref(), intent.task.attempts[0].outcome.as_ref()), (None, None));
    assert_eq!(condition(&intent, "Reconciling").unwrap().status, "True");
    run.status = intent;
    // A restart finds the intent: the adoption lookup comes before another RunTask, for the same attempt.
    assert_eq!(next_step(&run.view(), at(2)), Step::Launch { attempt: 1, may_exist: true });
    // Deleting it now must look for the task, which only ECS may know.
    assert_eq!(
        cleanup_step(&run.spec, UID, Some(&run.status)),
        CleanupStep::Stop { task_arns: vec![], list_started_by: vec![started_by(UID)] }
    );
    // The launch replaces the intent; the condition keeps its transition time.
    let plan = after_launch(&run.view(), 1, LaunchObservation::Started(task("PROVISIONING")), at(3));
    assert_eq!(plan.status.task.attempts.len(), 1);
    assert_eq!(plan.status.task.attempts[0].task_arn.as_deref(), Some(ARN));
    assert_eq!(condition(&plan.status, "Reconciling").unwrap().last_transition_time, Time(at(1)));
}

#[test]
fn identity_in_ecs_comes_from_the_uid() {
    let run = Run::new(spec());
    let request = launch_request(&run.view(), 2, &TaskDefinitionInfo::default());
    assert_eq!(request.client_token, "0f0e0d0c-1111-2222-3333-444455556666-2");
    assert!(request.client_token.len() <= 64);
    assert_eq!(request.started_by, "ecsrun/0f0e0d0c-1111-2222-3333-444455556666");
    assert!(request.tags.contains(&("ecsrun.dev/uid".into(), "0f0e0d0c-1111-2222-3333-444455556666".into())));
    assert!(request.tags.contains(&("ecsrun.dev/attempt".into(), "2".into())));
    assert!(request.tags.contains(&("ecsrun.dev/namespace".into(), "jobs".into())));
    assert!(request.tags.contains(&("ecsrun.dev/name".into(), "nightly".into())));
}

#[test]
fn run_identity_reaches_every_container_and_user_values_win() {
    let spec = with(spec(), |s| {
        s.overrides = Some(TaskOverrides {
            container_overrides: vec![ContainerOverride {
                name: "app".into(),
                command: Some(vec!["report".into()]),
                environment: vec![EnvVar { name: "ECSRUN_NAME".into(), value: "custom".into() }],
                ..ContainerOverride::default()
            }],
            ..TaskOverrides::default()
        })
    });
    let run = Run::new(spec);
    let definition = TaskDefinitionInfo { arn: TD_ARN.into(), containers: definition().unwrap(), registered_by: None };
    let request = launch_request(&run.view(), 3, &definition);
    let overrides = request.overrides.unwrap().container_overrides;
    assert_eq!(overrides.len(), 2, "the sidecar gets an override of its own");
    let env = |i: usize, name: &str| overrides[i].environment.iter().find(|v| v.name == name).map(|v| v.value.clone());
    assert_eq!(overrides[0].command, Some(vec!["report".to_string()]));
    assert_eq!(env(0, "ECSRUN_NAME").as_deref(), Some("custom"));
    assert_eq!(env(0, "ECSRUN_ATTEMPT").as_deref(), Some("3"));
    assert_eq!(overrides[1].name, "log-router");
    assert_eq!(env(1, "ECSRUN_NAME").as_deref(), Some("nightly"));
    assert_eq!(env(1, "ECSRUN_NAMESPACE").as_deref(), Some("jobs"));
    assert_eq!(env(1, "ECSRUN_UID").as_deref(), Some("0f0e0d0c-1111-2222-3333-444455556666"));
}

/// Issue 35, finding 6: a bare family that was described launches the revision described, so a revision
/// registered in between (another namespace's template) cannot slip in; anything else runs as written.
#[test]
fn the_task_definition_launched_is_the_one_described() {
    let rows = [
        ("a bare family that was described", Some("report"), TD_ARN, TD_ARN),
        (
            "a bare family by ARN that was described",
            Some("arn:aws:ecs:eu-west-1:123456789012:task-definition/report"),
            TD_ARN,
            TD_ARN,
        ),
        ("a bare family not described (policies off, no injection)", Some("report"), "", "report"),
        ("a pinned revision", Some("report:2"), TD_ARN, "report:2"),
        ("a template's revision", None, TD_ARN, TD_ARN),
    ];
    for (row, reference, described, expected) in rows {
        let run = Run::new(with(spec(), |s| s.task_definition = reference.map(str::to_owned)));
        let definition = TaskDefinitionInfo { arn: described.into(), containers: vec![], registered_by: None };
        assert_eq!(launch_request(&run.view(), 1, &definition).task_definition, expected, "{row}");
    }
}

#[test]
fn another_namespaces_template_revision_is_refused_in_words_that_say_what_to_do() {
    let why = foreign_template_revision("report", TD_ARN, "team-b");
    assert_eq!(
        why,
        "the latest ACTIVE revision of task definition family report (report:3) was registered from a \
         taskDefinitionTemplate of namespace team-b; a run of another namespace does not launch it: name the \
         revision to run (report:<revision>)"
    );
}

#[test]
fn without_injection_and_overrides_nothing_is_overridden() {
    let run = Run::new(with(spec(), |s| s.inject_run_identity = false));
    let definition = TaskDefinitionInfo { arn: TD_ARN.into(), containers: definition().unwrap(), registered_by: None };
    assert_eq!(launch_request(&run.view(), 1, &definition).overrides, None);
}

#[test]
fn a_launched_task_is_recorded_at_once_and_followed() {
    let run = Run::new(spec());
    let plan = after_launch(&run.view(), 1, LaunchObservation::Started(task("PROVISIONING")), at(1));
    let status = &plan.status;
    assert_eq!(status.task.phase, Some(Phase::Running));
    assert_eq!(status.task.task_arn.as_deref(), Some(ARN));
    assert_eq!(status.task.task_id.as_deref(), Some("abc123"));
    assert_eq!(status.task.last_status, Some("PROVISIONING".into()));
    assert_eq!(status.task.attempts.len(), 1);
    assert_eq!(status.task.attempts[0].task_arn.as_deref(), Some(ARN));
    assert_eq!(plan.follow, Some(Follow { task_arn: ARN.into(), every: Duration::from_secs(30) }));
    assert_eq!(plan.requeue, None, "no deadline: only a change of the task brings the run back");
    assert_eq!(event_reasons(&plan), vec!["Launched"]);
    assert_eq!(condition(status, "Reconciling").unwrap().status, "True");
    assert_eq!(condition(status, "Ready").unwrap().status, "False");

    let mut run = run;
    run.apply(&plan);
    assert_eq!(next_step(&run.view(), at(31)), Step::Track { task_arn: ARN.into(), every: Duration::from_secs(30) });
}

#[test]
fn fire_and_forget_succeeds_on_launch_and_is_never_polled() {
    let spec = with(spec(), |s| s.wait = WaitPolicy { for_: WaitFor::Launched, ..WaitPolicy::default() });
    let mut run = Run::new(spec);
    let plan = after_launch(&run.view(), 1, LaunchObservation::Started(task("PROVISIONING")), at(1));
    assert_eq!(plan.status.task.phase, Some(Phase::Succeeded));
    assert_eq!((plan.requeue, plan.follow.clone()), (None, None));
    assert_eq!(event_reasons(&plan), vec!["Launched", "Succeeded"]);
    assert_eq!(condition(&plan.status, "Succeeded").unwrap().status, "True");
    run.apply(&plan);
    assert_eq!(next_step(&run.view(), at(100)), Step::Idle);
}

#[test]
fn an_adopted_task_is_recorded_like_a_launched_one() {
    let run = Run::new(spec());
    let plan = after_launch(&run.view(), 1, LaunchObservation::Adopted(task("RUNNING")), at(5));
    assert_eq!(plan.status.task.task_arn.as_deref(), Some(ARN));
    assert_eq!(plan.status.task.attempts.len(), 1);
    // One Event per transition: the launch says it is running already.
    assert_eq!(event_reasons(&plan), vec!["Launched"]);
    assert!(plan.events[0].note.ends_with(", RUNNING"), "{}", plan.events[0].note);
}

#[test]
fn a_task_already_running_at_launch_is_judged_at_once() {
    // The tracker only reports changes, so what RunTask said is judged now, not at the next change.
    let running = with(spec(), |s| s.wait = WaitPolicy { for_: WaitFor::Running, ..WaitPolicy::default() });
    let mut run = Run::new(running);
    let plan = after_launch(&run.view(), 1, LaunchObservation::Started(task("RUNNING")), at(1));
    assert_eq!(plan.status.task.phase, Some(Phase::Succeeded));
    assert_eq!(event_reasons(&plan), vec!["Launched", "Succeeded"]);
    // Succeeded with its task still running: deleting the run stops the task.
    run.apply(&plan);
    assert_eq!(
        cleanup_step(&run.spec, UID, Some(&run.status)),
        CleanupStep::Stop { task_arns: vec![ARN.into()], list_started_by: vec![] }
    );

    let run = Run::new(spec());
    let plan = after_launch(&run.view(), 1, LaunchObservation::Started(task("RUNNING")), at(1));
    assert_eq!(plan.status.task.reason, Some(RunReason::TaskRunning.into()));
    let mut run = run;
    run.apply(&plan);
    // The shell passes the task definition's containers only for a stopped task.
    let next = after_track(&run.view(), TrackObservation::Found { task: task("RUNNING"), containers: None }, at(31));
    assert_eq!(next.status, run.status, "the first look after launch writes nothing new");
}

#[test]
fn an_adopted_task_that_already_stopped_is_judged_by_the_next_look_right_away() {
    let run = Run::new(spec());
    let done = stopped("EssentialContainerExited", "done", Some(0), Some(0));
    let plan = after_launch(&run.view(), 1, LaunchObservation::Adopted(done), at(1));
    assert_eq!(plan.status.task.phase, Some(Phase::Running));
    assert_eq!(plan.requeue, Some(Duration::ZERO));
    assert_eq!(plan.follow.as_ref().map(|f| f.task_arn.as_str()), Some(ARN));
}

#[test]
fn launch_outcomes() {
    let capacity = || {
        LaunchObservation::Failures(vec![EcsFailure {
            arn: None,
            reason: Some("RESOURCE:MEMORY".into()),
            detail: None,
        }])
    };
    let attribute = || {
        LaunchObservation::Failures(vec![EcsFailure {
            arn: None,
            reason: Some("ATTRIBUTE".into()),
            detail: Some("requires ecs.capability.x".into()),
        }])
    };
    let rejected = |kind, message: &str| LaunchObservation::Rejected(EcsError::new(kind, "RunTask", message));
    /// What a launch came to, with a backoffLimit of `backoff_limit`: the run is then in phase `then`
    /// because of `because`, and `retried` says whether it comes back for another attempt.
    struct LaunchCase {
        case: &'static str,
        backoff_limit: i32,
        observation: LaunchObservation,
        then: Phase,
        because: RunReason,
        retried: bool,
    }
    let cases = vec![
        LaunchCase {
            case: "capacity is retried without counting",
            backoff_limit: 0,
            observation: capacity(),
            then: Phase::Pending,
            because: RunReason::WaitingToRetry,
            retried: true,
        },
        LaunchCase {
            case: "other failures count",
            backoff_limit: 0,
            observation: attribute(),
            then: Phase::Failed,
            because: RunReason::LaunchFailed,
            retried: false,
        },
        LaunchCase {
            case: "other failures retry within the limit",
            backoff_limit: 1,
            observation: attribute(),
            then: Phase::Pending,
            because: RunReason::WaitingToRetry,
            retried: true,
        },
        LaunchCase {
            case: "unknown cluster fails at once",
            backoff_limit: 5,
            observation: rejected(EcsErrorKind::ClusterNotFound, "ClusterNotFoundException: Cluster not found."),
            then: Phase::Failed,
            because: RunReason::ClusterNotFound,
            retried: false,
        },
        LaunchCase {
            case: "unknown task definition fails at once",
            backoff_limit: 5,
            observation: rejected(
                EcsErrorKind::TaskDefinitionNotFound,
                "ClientException: Unable to describe task definition.",
            ),
            then: Phase::Failed,
            because: RunReason::TaskDefinitionNotFound,
            retried: false,
        },
        LaunchCase {
            case: "access denied fails at once",
            backoff_limit: 5,
            observation: rejected(EcsErrorKind::AccessDenied, "AccessDeniedException: not authorized"),
            then: Phase::Failed,
            because: RunReason::AccessDenied,
            retried: false,
        },
        LaunchCase {
            case: "a launch no policy allows fails at once, whatever the backoffLimit",
            backoff_limit: 5,
            observation: LaunchObservation::Denied(
                "spec.cluster \"x\" is not allowed by EcsRunPolicy a (clusters: b)".into(),
            ),
            then: Phase::Failed,
            because: RunReason::PolicyDenied,
            retried: false,
        },
    ];
    for LaunchCase { case, backoff_limit, observation, then, because, retried } in cases {
        let run = Run::new(with(spec(), |s| s.retry_policy = RetryPolicy { backoff_limit, ..Default::default() }));
        let plan = after_launch(&run.view(), 1, observation, at(1));
        assert_eq!(plan.status.task.phase, Some(then), "{case}");
        assert_eq!(plan.status.task.known_reason(), Some(because), "{case}");
        assert_eq!(plan.requeue.is_some(), retried, "{case}");
        assert_eq!(plan.follow, None, "{case}: no task to follow");
        assert_eq!(plan.status.task.attempts.len(), 1, "{case}");
        assert!(plan.status.task.task_arn.is_none(), "{case}");
    }
}

#[test]
fn a_rejection_keeps_the_aws_message_in_the_failed_condition() {
    let run = Run::new(spec());
    let error = EcsError::new(EcsErrorKind::ClusterNotFound, "RunTask", "ClusterNotFoundException: Cluster not found.");
    let plan = after_launch(&run.view(), 1, LaunchObservation::Rejected(error), at(1));
    let failed = condition(&plan.status, "Failed").unwrap();
    assert_eq!(failed.status, "True");
    assert_eq!(failed.reason, "ClusterNotFound");
    assert!(failed.message.contains("Cluster not found."), "{}", failed.message);
    assert_eq!(condition(&plan.status, "Stalled").unwrap().status, "True");
    assert_eq!(plan.events.last().unwrap().reason, "Failed");
    assert!(plan.events.last().unwrap().warning);
}

/// retryPolicy.rules: the first rule matching a judged container's non-zero exit code decides.
#[test]
fn exit_code_rules() {
    use crate::api::{ExitCodeMatch, ExitCodeOperator::*, RetryRule, RetryRuleAction::*};
    let rule = |action, container: Option<&str>, operator, values: &[i32]| RetryRule {
        action,
        on_exit_codes: Some(ExitCodeMatch {
            container_name: container.map(str::to_owned),
            operator,
            values: values.to_vec(),
        }),
        on_stop_codes: vec![],
        on_stopped_reason: None,
    };
    /// With `rules` and `backoff_limit`, a task whose app exited `app_exits` and whose sidecar exited
    /// `sidecar_exits` leaves the run in phase `then` because of `because`.
    struct RuleCase {
        case: &'static str,
        rules: Vec<RetryRule>,
        app_exits: i32,
        sidecar_exits: i32,
        backoff_limit: i32,
        then: Phase,
        because: RunReason,
    }
    let cases = vec![
        RuleCase {
            case: "no rules: counted",
            rules: vec![],
            app_exits: 3,
            sidecar_exits: 0,
            backoff_limit: 0,
            then: Phase::Failed,
            because: RunReason::ContainerFailed,
        },
        RuleCase {
            case: "FailRun on 3 despite backoffLimit 5",
            rules: vec![rule(FailRun, None, In, &[3])],
            app_exits: 3,
            sidecar_exits: 0,
            backoff_limit: 5,
            then: Phase::Failed,
            because: RunReason::FailedByRule,
        },
        RuleCase {
            case: "FailRun on 3 does not match 4",
            rules: vec![rule(FailRun, None, In, &[3])],
            app_exits: 4,
            sidecar_exits: 0,
            backoff_limit: 5,
            then: Phase::Pending,
            because: RunReason::WaitingToRetry,
        },
        RuleCase {
            case: "Ignore retries with backoffLimit 0",
            rules: vec![rule(Ignore, None, In, &[137])],
            app_exits: 137,
            sidecar_exits: 0,
            backoff_limit: 0,
            then: Phase::Pending,
            because: RunReason::WaitingToRetry,
        },
        RuleCase {
            case: "NotIn: 3 is not in [1, 2]",
            rules: vec![rule(FailRun, None, NotIn, &[1, 2])],
            app_exits: 3,
            sidecar_exits: 0,
            backoff_limit: 5,
            then: Phase::Failed,
            because: RunReason::FailedByRule,
        },
        RuleCase {
            case: "NotIn: 2 is in [1, 2]",
            rules: vec![rule(FailRun, None, NotIn, &[1, 2])],
            app_exits: 2,
            sidecar_exits: 0,
            backoff_limit: 5,
            then: Phase::Pending,
            because: RunReason::WaitingToRetry,
        },
        RuleCase {
            case: "first match wins: Count before FailRun",
            rules: vec![rule(Count, None, In, &[3]), rule(FailRun, None, In, &[3])],
            app_exits: 3,
            sidecar_exits: 0,
            backoff_limit: 0,
            then: Phase::Failed,
            because: RunReason::ContainerFailed,
        },
        RuleCase {
            case: "first match wins: Ignore before FailRun",
            rules: vec![rule(Ignore, None, In, &[3]), rule(FailRun, None, In, &[3])],
            app_exits: 3,
            sidecar_exits: 0,
            backoff_limit: 0,
            then: Phase::Pending,
            because: RunReason::WaitingToRetry,
        },
        RuleCase {
            case: "another container's code does not match",
            rules: vec![rule(FailRun, Some("other"), In, &[3])],
            app_exits: 3,
            sidecar_exits: 0,
            backoff_limit: 5,
            then: Phase::Pending,
            because: RunReason::WaitingToRetry,
        },
        RuleCase {
            case: "the named container's code matches",
            rules: vec![rule(FailRun, Some("app"), In, &[3])],
            app_exits: 3,
            sidecar_exits: 0,
            backoff_limit: 5,
            then: Phase::Failed,
            because: RunReason::FailedByRule,
        },
        // The sidecar is not judged (EssentialContainers): its exit code 3 matches nothing.
        RuleCase {
            case: "a sidecar's code is not judged",
            rules: vec![rule(FailRun, None, In, &[3])],
            app_exits: 1,
            sidecar_exits: 3,
            backoff_limit: 5,
            then: Phase::Pending,
            because: RunReason::WaitingToRetry,
        },
        // NotIn never matches exit code 0 (a container that succeeded).
        RuleCase {
            case: "NotIn ignores containers that exited 0",
            rules: vec![rule(FailRun, None, NotIn, &[1])],
            app_exits: 1,
            sidecar_exits: 0,
            backoff_limit: 5,
            then: Phase::Pending,
            because: RunReason::WaitingToRetry,
        },
    ];
    for RuleCase { case, rules, app_exits, sidecar_exits, backoff_limit, then, because } in cases {
        let spec = with(spec(), |s| {
            s.retry_policy.rules = rules;
            s.retry_policy.backoff_limit = backoff_limit;
        });
        let mut run = Run::launched(spec);
        run.status.task.phase = Some(Phase::Running);
        let plan = after_track(
            &run.view(),
            found(stopped("EssentialContainerExited", "exited", Some(app_exits), Some(sidecar_exits))),
            at(61),
        );
        assert_eq!(plan.status.task.phase, Some(then), "{case}: {:?}", plan.status.task.message);
        assert_eq!(plan.status.task.known_reason(), Some(because), "{case}: {:?}", plan.status.task.message);
    }
}

/// retryPolicy.rules on stop codes and stopped reasons: every condition a rule sets must hold, rules read
/// only failed attempts, and with no match ecsrun's own judgement (free retries of interruptions and
/// transient start failures) stands.
#[test]
fn stop_code_and_reason_rules() {
    use crate::api::{ExitCodeMatch, ExitCodeOperator, RetryRule, RetryRuleAction::*, StopCode::*};
    let rule = |action, codes: &[crate::api::StopCode], pattern: Option<&str>| RetryRule {
        action,
        on_exit_codes: None,
        on_stop_codes: codes.to_vec(),
        on_stopped_reason: pattern.map(str::to_owned),
    };
    let pull_denied = "CannotPullContainerError: pull access denied for app";
    let eni_timeout = "Timeout waiting for network interface provisioning to complete.";
    /// (case, rules, stop code, stopped reason, app's exit code, phase after, the attempt's outcome)
    type Case = (&'static str, Vec<RetryRule>, &'static str, &'static str, Option<i32>, Phase, RunReason);
    let cases: Vec<Case> = vec![
        (
            "no rule: a Spot interruption is retried free",
            vec![],
            "SpotInterruption",
            "spot",
            Some(143),
            Phase::Pending,
            RunReason::Interrupted,
        ),
        (
            "Count on SpotInterruption uses up backoffLimit 0",
            vec![rule(Count, &[SpotInterruption], None)],
            "SpotInterruption",
            "spot",
            Some(143),
            Phase::Failed,
            RunReason::CountedByRule,
        ),
        (
            "FailRun on SpotInterruption",
            vec![rule(FailRun, &[SpotInterruption, TerminationNotice], None)],
            "SpotInterruption",
            "spot",
            Some(143),
            Phase::Failed,
            RunReason::FailedByRule,
        ),
        (
            "FailRun on a pull error that failed the start",
            vec![rule(FailRun, &[TaskFailedToStart], Some("CannotPullContainerError:*"))],
            "TaskFailedToStart",
            pull_denied,
            None,
            Phase::Failed,
            RunReason::FailedByRule,
        ),
        (
            "the same rule passes an ENI timeout by: still a free retry",
            vec![rule(FailRun, &[TaskFailedToStart], Some("CannotPullContainerError:*"))],
            "TaskFailedToStart",
            eni_timeout,
            None,
            Phase::Pending,
            RunReason::InsufficientCapacity,
        ),
        (
            "Ignore on a reason, case aside",
            vec![rule(Ignore, &[], Some("*outofmemoryerror*"))],
            "EssentialContainerExited",
            "OutOfMemoryError: Container killed due to memory usage",
            Some(137),
            Phase::Pending,
            RunReason::IgnoredByRule,
        ),
        (
            "a stop code alone does not match another",
            vec![rule(Ignore, &[SpotInterruption], None)],
            "EssentialContainerExited",
            "exited",
            Some(1),
            Phase::Failed,
            RunReason::ContainerFailed,
        ),
        (
            "Count on what is counted already changes nothing",
            vec![rule(Count, &[EssentialContainerExited], None)],
            "EssentialContainerExited",
            "exited",
            Some(1),
            Phase::Failed,
            RunReason::ContainerFailed,
        ),
        (
            "a success is not read by rules",
            vec![rule(FailRun, &[EssentialContainerExited], None)],
            "EssentialContainerExited",
            "exited",
            Some(0),
            Phase::Succeeded,
            RunReason::Succeeded,
        ),
    ];
    for (case, rules, stop_code, stopped_reason, app, then, outcome) in cases {
        let spec = with(spec(), |s| s.retry_policy.rules = rules);
        let mut run = Run::launched(spec);
        run.status.task.phase = Some(Phase::Running);
        let plan = after_track(&run.view(), found(stopped(stop_code, stopped_reason, app, Some(0))), at(61));
        assert_eq!(plan.status.task.phase, Some(then), "{case}: {:?}", plan.status.task.message);
        let attempt = plan.status.task.attempts.last().expect("the attempt");
        assert_eq!(attempt.known_outcome(), Some(outcome), "{case}: {:?}", plan.status.task.message);
    }
    // Conditions of one rule all hold, or it does not match: exit code 1 and a Spot interruption.
    let both = RetryRule {
        action: FailRun,
        on_exit_codes: Some(ExitCodeMatch { container_name: None, operator: ExitCodeOperator::In, values: vec![1] }),
        on_stop_codes: vec![SpotInterruption],
        on_stopped_reason: None,
    };
    let rules = [both];
    assert_eq!(first_matching_rule(&rules, Some(StopCode::EssentialContainerExited), None, &[("app", 1)]), None);
    assert_eq!(first_matching_rule(&rules, Some(StopCode::SpotInterruption), None, &[("app", 2)]), None);
    assert_eq!(first_matching_rule(&rules, Some(StopCode::SpotInterruption), None, &[("app", 1)]), Some((0, FailRun)));
}

#[test]
fn ignored_exit_codes_are_retried_ten_times_at_most() {
    use crate::api::{ExitCodeMatch, ExitCodeOperator, RetryRule, RetryRuleAction};
    let ignore = RetryRule {
        action: RetryRuleAction::Ignore,
        on_exit_codes: Some(ExitCodeMatch { container_name: None, operator: ExitCodeOperator::In, values: vec![137] }),
        on_stop_codes: vec![],
        on_stopped_reason: None,
    };
    let mut run = Run::launched(with(spec(), |s| s.retry_policy.rules = vec![ignore]));
    run.status.task.phase = Some(Phase::Running);
    let earlier: Vec<Attempt> = (1..=MAX_FREE_RETRIES as i32)
        .map(|attempt| Attempt {
            attempt,
            task_arn: Some(format!("arn:{attempt}")),
            outcome: Some(RunReason::IgnoredByRule.into()),
            ..Attempt::default()
        })
        .collect();
    let current = run.status.task.attempts.pop().expect("the launched attempt");
    run.status.task.attempts = earlier;
    run.status.task.attempts.push(Attempt { attempt: MAX_FREE_RETRIES as i32 + 1, ..current });
    let plan =
        after_track(&run.view(), found(stopped("EssentialContainerExited", "exited", Some(137), Some(0))), at(61));
    assert_eq!(plan.status.task.phase, Some(Phase::Failed), "{:?}", plan.status.task.message);
    assert_eq!(plan.status.task.reason, Some(RunReason::IgnoredByRule.into()));
    assert!(
        plan.status.task.message.as_deref().unwrap_or_default().contains("giving up after"),
        "{:?}",
        plan.status.task.message
    );
}

/// Stopped tasks: every stopCode and exit-code combination that decides a run.
#[test]
fn stopped_task_verdicts() {
    use SuccessPolicy::*;
    let pull_error = "CannotPullContainerError: pull image manifest has been retried 5 time(s): not found";
    let eni_timeout = "Timeout waiting for network interface provisioning to complete.";
    let capacity = "ResourceInitializationError: unable to pull secrets; capacity is unavailable at this time";
    /// Under success policy `policy`, `task` stopping leaves the run in phase `then` because of `because`.
    struct VerdictCase {
        case: &'static str,
        policy: SuccessPolicy,
        task: TaskSnapshot,
        then: Phase,
        because: RunReason,
    }
    let cases = vec![
        VerdictCase {
            case: "essential exited 0, sidecar 137",
            policy: EssentialContainers,
            task: stopped("EssentialContainerExited", "Essential container in task exited", Some(0), Some(137)),
            then: Phase::Succeeded,
            because: RunReason::Succeeded,
        },
        VerdictCase {
            case: "sidecar 137 fails AllContainers",
            policy: AllContainers,
            task: stopped("EssentialContainerExited", "Essential container in task exited", Some(0), Some(137)),
            then: Phase::Failed,
            because: RunReason::ContainerFailed,
        },
        VerdictCase {
            case: "essential exited 1",
            policy: EssentialContainers,
            task: stopped("EssentialContainerExited", "Essential container in task exited", Some(1), Some(0)),
            then: Phase::Failed,
            because: RunReason::ContainerFailed,
        },
        VerdictCase {
            case: "any exit codes pass TaskStopped",
            policy: TaskStopped,
            task: stopped("EssentialContainerExited", "Essential container in task exited", Some(1), Some(137)),
            then: Phase::Succeeded,
            because: RunReason::Succeeded,
        },
        VerdictCase {
            case: "image pull failure is a real failure",
            policy: EssentialContainers,
            task: stopped("TaskFailedToStart", pull_error, None, None),
            then: Phase::Failed,
            because: RunReason::TaskFailedToStart,
        },
        VerdictCase {
            case: "TaskStopped still fails a task that never started",
            policy: TaskStopped,
            task: stopped("TaskFailedToStart", pull_error, None, None),
            then: Phase::Failed,
            because: RunReason::TaskFailedToStart,
        },
        VerdictCase {
            case: "ENI timeout is retried for free",
            policy: EssentialContainers,
            task: stopped("TaskFailedToStart", eni_timeout, None, None),
            then: Phase::Pending,
            because: RunReason::WaitingToRetry,
        },
        VerdictCase {
            case: "capacity at start is retried for free",
            policy: EssentialContainers,
            task: stopped("TaskFailedToStart", capacity, None, None),
            then: Phase::Pending,
            because: RunReason::WaitingToRetry,
        },
        VerdictCase {
            case: "spot interruption is retried for free",
            policy: EssentialContainers,
            task: stopped("SpotInterruption", "Your Spot Task was interrupted.", Some(143), Some(143)),
            then: Phase::Pending,
            because: RunReason::WaitingToRetry,
        },
        VerdictCase {
            case: "stopped by someone else with SIGTERM",
            policy: EssentialContainers,
            task: stopped("UserInitiated", "Task stopped by user", Some(143), Some(0)),
            then: Phase::Failed,
            because: RunReason::ContainerFailed,
        },
        VerdictCase {
            case: "stopped by someone else, judged by TaskStopped",
            policy: TaskStopped,
            task: stopped("UserInitiated", "Task stopped by user", Some(143), Some(0)),
            then: Phase::Succeeded,
            because: RunReason::Succeeded,
        },
        VerdictCase {
            case: "essential container without exit code never ran",
            policy: EssentialContainers,
            task: stopped("EssentialContainerExited", "Essential container in task exited", None, Some(0)),
            then: Phase::Failed,
            because: RunReason::ContainerNeverRan,
        },
        VerdictCase {
            case: "sidecar without exit code does not matter",
            policy: EssentialContainers,
            task: stopped("EssentialContainerExited", "Essential container in task exited", Some(0), None),
            then: Phase::Succeeded,
            because: RunReason::Succeeded,
        },
        VerdictCase {
            case: "an unknown stop code is data, judged by exit codes",
            policy: EssentialContainers,
            task: stopped("InfrastructureHealth", "host retired", Some(0), Some(0)),
            then: Phase::Succeeded,
            because: RunReason::Succeeded,
        },
        VerdictCase {
            case: "no stop code at all (emulators) is judged by exit codes",
            policy: EssentialContainers,
            task: TaskSnapshot { stop_code: None, ..stopped("x", "", Some(0), Some(0)) },
            then: Phase::Succeeded,
            because: RunReason::Succeeded,
        },
    ];
    for VerdictCase { case, policy, task, then, because } in cases {
        let mut run = Run::launched(with(spec(), |s| s.success_policy = policy));
        run.status.task.phase = Some(Phase::Running);
        let plan = after_track(&run.view(), found(task.clone()), at(61));
        assert_eq!(plan.status.task.phase, Some(then), "{case}: {:?}", plan.status.task.message);
        assert_eq!(plan.status.task.known_reason(), Some(because), "{case}");
        assert_eq!(plan.status.task.last_status, Some("STOPPED".into()), "{case}");
        assert_eq!(plan.status.task.stop_code, task.stop_code, "{case}");
        assert_eq!(plan.status.task.containers.len(), 2, "{case}");
        assert_eq!(plan.status.task.containers[1].essential, Some(false), "{case}");
        let attempt = plan.status.task.attempts.last().unwrap();
        assert!(attempt.outcome.is_some(), "{case}: the attempt is concluded");
        assert_eq!(attempt.stop_code, task.stop_code, "{case}");
        // The stop is told by the Event of what it decided, not by a second one.
        let reasons = event_reasons(&plan);
        assert!(!reasons.contains(&"Stopped"), "{case}: {reasons:?}");
        assert!(reasons.iter().any(|r| ["Succeeded", "Failed", "Retrying"].contains(r)), "{case}: {reasons:?}");
        assert_eq!(plan.follow, None, "{case}: a stopped task is not followed");
        if then.is_terminal() {
            assert_eq!(plan.requeue, None, "{case}: a final run is never requeued");
        } else {
            assert!(plan.status.task.next_attempt_at.is_some(), "{case}");
        }
    }
}

#[test]
fn a_start_failure_that_is_not_transient_counts() {
    // Counted against backoffLimit 0: the run fails at once instead of ten free retries.
    let run = Run::launched(spec());
    let denied = stopped(
        "TaskFailedToStart",
        "CannotPullContainerError: pull access denied for app, repository does not exist",
        None,
        None,
    );
    let plan = after_track(&run.view(), found(denied), at(60));
    assert_eq!(plan.status.task.phase, Some(Phase::Failed));
    assert_eq!(plan.status.task.reason, Some(RunReason::TaskFailedToStart.into()));
}

#[test]
fn the_message_says_which_container_failed_and_why() {
    let run = Run::launched(spec());
    let mut task = stopped("EssentialContainerExited", "Essential container in task exited", Some(2), Some(0));
    task.containers[0].reason = Some("OutOfMemoryError: Container killed due to memory usage".into());
    let plan = after_track(&run.view(), found(task), at(61));
    let message = plan.status.task.message.unwrap();
    assert!(message.contains("app exited 2 (OutOfMemoryError"), "{message}");
    assert_eq!(plan.status.task.exit_codes.as_deref(), Some("app=2,log-router=0"));
}

#[test]
fn a_container_that_never_ran_is_explained() {
    let run = Run::launched(spec());
    let task = stopped("EssentialContainerExited", "CannotStartContainerError", None, Some(0));
    let plan = after_track(&run.view(), found(task), at(61));
    let message = plan.status.task.message.unwrap();
    assert!(message.contains("probably never started"), "{message}");
    assert_eq!(plan.status.task.exit_codes.as_deref(), Some("app=-,log-router=0"));
}

#[test]
fn without_the_task_definition_every_container_counts_as_essential() {
    let run = Run::launched(spec());
    let task = stopped("EssentialContainerExited", "exited", Some(0), Some(137));
    let plan = after_track(&run.view(), TrackObservation::Found { task, containers: None }, at(61));
    assert_eq!(plan.status.task.phase, Some(Phase::Failed));
}

#[test]
fn a_failed_attempt_is_retried_after_a_backoff_with_a_new_attempt_number() {
    let mut run =
        Run::launched(with(spec(), |s| s.retry_policy = RetryPolicy { backoff_limit: 1, ..Default::default() }));
    let failed = stopped("EssentialContainerExited", "exited", Some(1), Some(0));
    let plan = after_track(&run.view(), found(failed.clone()), at(61));
    assert_eq!(plan.status.task.phase, Some(Phase::Pending));
    assert_eq!(plan.status.task.next_attempt_at, Some(Time(at(71))));
    assert_eq!(plan.requeue, Some(Duration::from_secs(10)));
    assert!(event_reasons(&plan).contains(&"Retrying"));
    run.apply(&plan);

    assert_eq!(next_step(&run.view(), at(65)), Step::Wait(Duration::from_secs(6)));
    assert_eq!(next_step(&run.view(), at(71)), Step::Launch { attempt: 2, may_exist: false });

    let second = TaskSnapshot { task_arn: format!("{ARN}-2"), ..task("PROVISIONING") };
    let plan = after_launch(&run.view(), 2, LaunchObservation::Started(second), at(72));
    assert_eq!(plan.status.task.attempts.len(), 2);
    assert_eq!(plan.status.attempt_count, Some(2));
    assert_eq!(plan.status.task.next_attempt_at, None);
    run.apply(&plan);

    let failed_again = TaskSnapshot { task_arn: format!("{ARN}-2"), ..failed };
    let plan = after_track(&run.view(), found(failed_again), at(200));
    assert_eq!(plan.status.task.phase, Some(Phase::Failed));
    assert_eq!(plan.status.task.reason, Some(RunReason::BackoffLimitExceeded.into()));
    assert!(plan.status.task.message.unwrap().contains("backoffLimit 1"));
    let outcomes: Vec<_> = plan.status.task.attempts.iter().map(|a| a.known_outcome().unwrap()).collect();
    assert_eq!(outcomes, vec![RunReason::ContainerFailed, RunReason::ContainerFailed]);
}

#[test]
fn free_retries_are_bounded() {
    let mut run = Run::new(spec());
    for attempt in 1..=(MAX_FREE_RETRIES as i32 + 1) {
        let capacity = LaunchObservation::Failures(vec![EcsFailure {
            arn: None,
            reason: Some("RESOURCE:CPU".into()),
            detail: None,
        }]);
        let plan = after_launch(&run.view(), attempt, capacity, at(attempt as i64 * 1000));
        run.apply(&plan);
    }
    assert_eq!(run.status.task.phase, Some(Phase::Failed));
    assert_eq!(run.status.task.reason, Some(RunReason::InsufficientCapacity.into()));
}

#[test]
fn retry_backoff_doubles_up_to_five_minutes() {
    let secs: Vec<u64> = (1..=7).map(|n| retry_backoff(n).as_secs()).collect();
    assert_eq!(secs, vec![10, 20, 40, 80, 160, 300, 300]);
}

#[test]
fn waiting_for_running() {
    let spec = with(spec(), |s| s.wait = WaitPolicy { for_: WaitFor::Running, ..WaitPolicy::default() });
    let run = Run::launched(spec);
    let pending = after_track(&run.view(), found(task("PENDING")), at(30));
    assert_eq!(pending.status.task.phase, Some(Phase::Running));
    assert_eq!(pending.status.task.reason, Some(RunReason::TaskStarting.into()));
    assert!(pending.follow.is_some());

    let running = after_track(&run.view(), found(task("RUNNING")), at(30));
    assert_eq!(running.status.task.phase, Some(Phase::Succeeded));
    assert_eq!(running.status.task.last_status, Some("RUNNING".into()));
    assert_eq!((running.requeue, running.follow.clone()), (None, None));
    assert_eq!(event_reasons(&running), vec!["Running", "Succeeded"]);
}

#[test]
fn polling_follows_the_spec_then_the_controller_default() {
    let run = Run::launched(with(spec(), |s| s.wait.poll_interval = Some("8m15s".into())));
    let plan = after_track(&run.view(), found(task("RUNNING")), at(30));
    assert_eq!(plan.follow.unwrap().every, Duration::from_secs(8 * 60 + 15));
    let run = Run::launched(spec());
    let plan = after_track(&run.view(), found(task("RUNNING")), at(30));
    assert_eq!(plan.follow.clone().unwrap().every, Duration::from_secs(30));
    // A deadline brings the run back when it passes, whatever the tracker reports.
    let run = Run::launched(with(spec(), |s| s.wait.timeout = Some("10m".into())));
    let plan = after_track(&run.view(), found(task("RUNNING")), at(30));
    assert_eq!(plan.requeue, Some(Duration::from_secs(570)));
    assert_eq!(plan.status.task.reason, Some(RunReason::TaskRunning.into()));
}

#[test]
fn a_task_unknown_right_after_launch_is_looked_at_again_not_failed() {
    let run = Run::launched(spec());
    let soon = after_track(&run.view(), TrackObservation::Missing { observed_at: at(4) }, at(4));
    assert_eq!(soon.status, run.status, "nothing to write");
    assert!(soon.events.is_empty());
    assert_eq!(soon.requeue, Some(Duration::from_secs(2)));
    assert_eq!(soon.follow, Some(Follow { task_arn: ARN.into(), every: Duration::from_secs(2) }));
    let later = after_track(&run.view(), TrackObservation::Missing { observed_at: at(100) }, at(100));
    assert_eq!(later.requeue, Some(Duration::from_secs(30)));

    let gone = after_track(&run.view(), TrackObservation::Missing { observed_at: at(121) }, at(121));
    assert_eq!(gone.status.task.phase, Some(Phase::Failed));
    assert_eq!(gone.status.task.reason, Some(RunReason::TaskLost.into()));
}

/// Simulator seed 893: the tracker looked right after the launch (DescribeTasks did not know the task
/// yet), then did not look again for two minutes (a deposed leader's tracker, a sweep held up); a
/// reconcile reading that old look failed the run as TaskLost while the task ran. How long after the
/// launch the look was taken decides, not how long ago.
#[test]
fn an_old_look_taken_right_after_launch_does_not_make_a_task_lost() {
    let run = Run::launched(spec());
    let stale = after_track(&run.view(), TrackObservation::Missing { observed_at: at(1) }, at(122));
    assert_eq!(stale.status.task.phase, run.status.task.phase, "{:?}", stale.status.task.message);
    assert_eq!(stale.follow, Some(Follow { task_arn: ARN.into(), every: Duration::from_secs(2) }));
    assert_eq!(stale.requeue, Some(Duration::from_secs(2)), "looked at again soon");
    // A look taken long enough after the launch still says the task is lost, whenever it is read.
    let lost = after_track(&run.view(), TrackObservation::Missing { observed_at: at(121) }, at(300));
    assert_eq!(lost.status.task.reason, Some(RunReason::TaskLost.into()));
}

fn condition_status<'a>(status: &'a EcsTaskRunStatus, type_: &str) -> Option<&'a str> {
    status.conditions.iter().find(|c| c.type_ == type_).map(|c| c.status.as_str())
}

#[test]
fn a_task_seen_running_then_forgotten_after_an_outage_ends_unknown_and_is_never_relaunched() {
    // The controller saw the task RUNNING, was down for two hours, and ECS has forgotten it since.
    let mut run =
        Run::launched(with(spec(), |s| s.retry_policy = RetryPolicy { backoff_limit: 3, ..Default::default() }));
    run.apply(&after_track(&run.view(), found(TaskSnapshot { started_at: Some(at(20)), ..task("RUNNING") }), at(30)));
    for when in [at(130), at(7200)] {
        let plan = after_track(&run.view(), TrackObservation::Missing { observed_at: when }, when);
        assert_eq!(plan.status.task.phase, Some(Phase::Unknown), "at {when}");
        assert_eq!(plan.status.task.reason, Some(RunReason::OutcomeUnknown.into()));
        assert_eq!(plan.status.task.next_attempt_at, None, "no retry is scheduled");
        assert_eq!(plan.status.task.attempts.len(), 1);
        assert_eq!(plan.status.task.attempts[0].outcome, Some(RunReason::OutcomeUnknown.into()));
        assert!(
            plan.status.task.message.as_deref().unwrap_or_default().contains("last seen RUNNING"),
            "{:?}",
            plan.status
        );
        assert_eq!(condition_status(&plan.status, condition::SUCCEEDED), Some("Unknown"));
        assert_eq!(condition_status(&plan.status, condition::FAILED), Some("Unknown"));
        assert_eq!(condition_status(&plan.status, condition::STALLED), Some("True"));
        assert_eq!(event_reasons(&plan), vec!["OutcomeUnknown"]);
        assert!(plan.events[0].warning);
        assert_eq!((plan.follow.clone(), plan.requeue), (None, None));
        let mut after = Run { spec: run.spec.clone(), status: plan.status.clone() };
        after.apply(&plan);
        assert_eq!(next_step(&after.view(), when), Step::Idle, "never launched again");
    }
}

#[test]
fn a_task_launched_more_than_an_hour_ago_and_never_described_since_is_not_a_lost_launch() {
    // RunTask answered, the controller went down before its first look and came back two hours later:
    // the task may have run to its end and been forgotten.
    let run = Run::launched(with(spec(), |s| s.retry_policy = RetryPolicy { backoff_limit: 3, ..Default::default() }));
    let plan = after_track(&run.view(), TrackObservation::Missing { observed_at: at(7200) }, at(7200));
    assert_eq!(plan.status.task.phase, Some(Phase::Unknown));
    assert_eq!(plan.status.task.next_attempt_at, None);
    // Within ECS's memory, a task never seen past launch and unknown for long was never there.
    let lost = after_track(&run.view(), TrackObservation::Missing { observed_at: at(600) }, at(600));
    assert_eq!(lost.status.task.phase, Some(Phase::Pending));
    assert_eq!(lost.status.task.attempts[0].outcome, Some(RunReason::TaskLost.into()));
    assert!(lost.status.task.next_attempt_at.is_some(), "a lost launch is retried");
}

#[test]
fn a_task_stopped_for_the_deadline_then_forgotten_ends_deadline_exceeded() {
    let mut run = Run::launched(with(spec(), |s| s.wait.timeout = Some("5m".into())));
    run.apply(&after_track(&run.view(), found(task("RUNNING")), at(300)));
    assert_eq!(run.status.task.phase, Some(Phase::Stopping));
    let plan = after_track(&run.view(), TrackObservation::Missing { observed_at: at(7200) }, at(7200));
    assert_eq!(plan.status.task.phase, Some(Phase::Failed));
    assert_eq!(plan.status.task.reason, Some(RunReason::DeadlineExceeded.into()));
}

#[test]
fn the_poll_interval_never_exceeds_ten_minutes() {
    // An object from before the CRD's limit, or a large controller default.
    let run = Run::launched(with(spec(), |s| s.wait.poll_interval = Some("2h".into())));
    assert_eq!(next_step(&run.view(), at(1)), Step::Track { task_arn: ARN.into(), every: MAX_POLL_INTERVAL });
    let run = Run::launched(spec());
    let view = RunView { default_poll_interval: Duration::from_secs(7200), ..run.view() };
    assert_eq!(view.poll_interval(), MAX_POLL_INTERVAL);
}

#[test]
fn the_deadline_stops_the_task_once_and_fails_the_run_when_it_stopped() {
    let mut run = Run::launched(with(spec(), |s| s.wait.timeout = Some("5m".into())));
    let before = after_track(&run.view(), found(task("RUNNING")), at(299));
    assert_eq!(before.stop, None);

    let plan = after_track(&run.view(), found(task("RUNNING")), at(300));
    assert_eq!(plan.status.task.phase, Some(Phase::Stopping));
    assert_eq!(plan.status.task.reason, Some(RunReason::DeadlineExceeded.into()));
    let stop = plan.stop.clone().expect("StopTask");
    assert_eq!(stop.task_arn, ARN);
    assert!(stop.reason.contains("timeout"), "{}", stop.reason);
    assert!(event_reasons(&plan).contains(&"Stopping"));
    assert_eq!(plan.follow, Some(Follow { task_arn: ARN.into(), every: Duration::from_secs(10) }));
    run.apply(&plan);
    assert_eq!(next_step(&run.view(), at(301)), Step::Track { task_arn: ARN.into(), every: Duration::from_secs(10) });

    let stopping = TaskSnapshot { desired_status: Some("STOPPED".into()), ..task("DEACTIVATING") };
    let again = after_track(&run.view(), found(stopping), at(310));
    assert_eq!(again.stop, None, "StopTask is not sent twice");

    let done = after_track(
        &run.view(),
        found(stopped("UserInitiated", "ecsrun: timeout exceeded", Some(143), Some(143))),
        at(330),
    );
    assert_eq!(done.status.task.phase, Some(Phase::Failed));
    assert_eq!(done.status.task.reason, Some(RunReason::DeadlineExceeded.into()));
    assert_eq!(done.status.task.exit_codes.as_deref(), Some("app=143,log-router=143"));
}

#[test]
fn a_deadline_that_passed_during_an_unrecorded_launch_looks_for_the_task_first() {
    let mut run = Run::new(with(spec(), |s| s.wait.timeout = Some("1m".into())));
    run.status = launch_intent(&run.view(), 1, "eu-west-1", at(59));
    // RunTask went out at 59 s; the controller crashed before writing its answer and is back at 70 s.
    assert_eq!(next_step(&run.view(), at(70)), Step::Find { attempt: 1 });

    let found = after_find(&run.view(), 1, Some(task("RUNNING")), at(70));
    assert_eq!(found.status.task.task_arn.as_deref(), Some(ARN), "the task is adopted");
    assert_eq!(found.requeue, Some(Duration::ZERO), "and looked at again at once");
    run.apply(&found);
    let stop = after_track(&run.view(), TrackObservation::Found { task: task("RUNNING"), containers: None }, at(70));
    assert_eq!(stop.stop.map(|s| s.task_arn).as_deref(), Some(ARN), "the deadline stops it");

    // ECS lists nothing: ListTasks may lag RunTask, so the run keeps looking (its attempt open) until the
    // grace deletion also waits out has passed since the RunTask; only then is it DeadlineExceeded.
    let mut nothing = Run::new(with(spec(), |s| s.wait.timeout = Some("1m".into())));
    nothing.status = launch_intent(&nothing.view(), 1, "eu-west-1", at(59));
    let looking = after_find(&nothing.view(), 1, None, at(70));
    assert_eq!(looking.status, nothing.status, "nothing concluded 11 s after RunTask");
    assert_eq!(looking.requeue, Some(UNRECORDED_LAUNCH_GRACE - Duration::from_secs(11)));
    assert_eq!(next_step(&nothing.view(), at(88)), Step::Find { attempt: 1 }, "looked for again");
    let plan = after_find(&nothing.view(), 1, None, at(59) + UNRECORDED_LAUNCH_GRACE);
    assert_eq!(plan.status.task.phase, Some(Phase::Failed));
    assert_eq!(plan.status.task.reason, Some(RunReason::DeadlineExceeded.into()));
    assert_eq!(plan.status.task.attempts[0].outcome, Some(RunReason::DeadlineExceeded.into()));
}

#[test]
fn a_timeout_stop_whose_status_write_was_lost_is_still_a_timeout() {
    let run = Run::launched(with(spec(), |s| s.wait.timeout = Some("5m".into())));
    // The run never recorded Stopping: the task is found stopped by the timeout's own StopTask.
    let reason = "ecsrun: timeout exceeded (jobs/nightly)";
    let sigterm = TaskSnapshot { stopped_at: Some(at(310)), ..stopped("UserInitiated", reason, Some(143), Some(143)) };
    let plan = after_track(&run.view(), found(sigterm), at(320));
    assert_eq!(plan.status.task.phase, Some(Phase::Failed));
    assert_eq!(plan.status.task.reason, Some(RunReason::DeadlineExceeded.into()), "not ContainerFailed for exit 143");
    // Someone else's StopTask before the deadline is judged by the exit codes as usual.
    let manual =
        TaskSnapshot { stopped_at: Some(at(100)), ..stopped("UserInitiated", "ops: cancelled", Some(143), Some(0)) };
    let plan = after_track(&run.view(), found(manual), at(120));
    assert_eq!(plan.status.task.reason, Some(RunReason::ContainerFailed.into()));
}

/// `wait.startTimeout` (issue 24, item 4): a task stuck before RUNNING is stopped and the attempt fails
/// with StartTimeout, retried under the retry policy; a task that started in time is left alone.
#[test]
fn a_task_not_running_within_its_start_timeout_is_stopped_and_retried() {
    let spec = with(spec(), |s| {
        s.wait.start_timeout = Some("2m".into());
        s.retry_policy = RetryPolicy { backoff_limit: 1, ..Default::default() };
    });
    // The launch itself comes back when the start timeout runs out: the tracker reports changes only,
    // and a task stuck PROVISIONING changes nothing.
    let launch =
        after_launch(&Run::new(spec.clone()).view(), 1, LaunchObservation::Started(task("PROVISIONING")), at(0));
    assert_eq!(launch.requeue, Some(Duration::from_secs(120)));
    let mut run = Run::launched(spec.clone());
    // Within the start timeout: followed, and come back when it runs out.
    let waiting = after_track(&run.view(), found(task("PROVISIONING")), at(30));
    assert_eq!(waiting.stop, None);
    assert_eq!(waiting.requeue, Some(Duration::from_secs(90)));
    // Past it: StopTask with a reason that says so, the run Stopping.
    let stuck = after_track(&run.view(), found(task("PENDING")), at(121));
    let stop = stuck.stop.clone().expect("a stuck task is stopped");
    assert_eq!(stop.reason, "ecsrun: start timeout exceeded (jobs/nightly) [ecsrun:start-timeout]");
    assert_eq!(stuck.status.task.phase, Some(Phase::Stopping));
    assert_eq!(stuck.status.task.reason, Some(RunReason::StartTimeout.into()));
    run.apply(&stuck);
    // Stopped (never started): a failed attempt, retried (backoffLimit 1).
    let never_started = TaskSnapshot {
        started_at: None,
        stopped_at: Some(at(125)),
        ..stopped("UserInitiated", &stop.reason, None, None)
    };
    let retried = after_track(&run.view(), found(never_started.clone()), at(130));
    assert_eq!(retried.status.task.attempts[0].outcome, Some(RunReason::StartTimeout.into()));
    assert_ne!(retried.status.task.phase, Some(Phase::Failed), "{:?}", retried.status.task.message);
    // The Stopping status lost (a crash): the stop reason still tells it was the start timeout.
    let fresh = Run::launched(spec.clone());
    let judged = after_track(&fresh.view(), found(never_started), at(130));
    assert_eq!(judged.status.task.attempts[0].outcome, Some(RunReason::StartTimeout.into()));
    // A task RUNNING in time is not touched past the start timeout.
    let running = TaskSnapshot { started_at: Some(at(20)), ..task("RUNNING") };
    let fine = after_track(&Run::launched(spec.clone()).view(), found(running), at(600));
    assert_eq!(fine.stop, None);
    assert_eq!(fine.status.task.phase, Some(Phase::Running));
    // No start timeout: a task may take as long as it takes.
    let patient = after_track(&Run::launched(self::spec()).view(), found(task("PROVISIONING")), at(3600));
    assert_eq!(patient.stop, None);
}

/// Issue 35, finding 8: with `spec.stopReason` every StopTask carries the same text, so a start timeout's
/// stop was judged as the suspension's and retried without counting, forever. Why ecsrun stopped a task is
/// recorded on the attempt (and marked in the reason, for when that write is lost), and judged by it.
#[test]
fn a_start_timeout_stop_counts_even_with_a_stop_reason_of_the_users() {
    let spec = with(spec(), |s| {
        s.wait.start_timeout = Some("2m".into());
        s.stop_reason = Some("stopped by the nightly operator".into());
        s.retry_policy = RetryPolicy { backoff_limit: 1, ..Default::default() };
    });
    let mut run = Run::launched(spec.clone());
    let stuck = after_track(&run.view(), found(task("PENDING")), at(121));
    let stop = stuck.stop.clone().expect("a stuck task is stopped");
    assert!(stop.reason.starts_with("stopped by the nightly operator"), "the user's words first: {}", stop.reason);
    assert_eq!(stuck.status.task.attempts[0].stop_cause, Some(StopCause::StartTimeout));
    run.apply(&stuck);
    let never_started = TaskSnapshot {
        started_at: None,
        stopped_at: Some(at(125)),
        ..stopped("UserInitiated", &stop.reason, None, None)
    };
    for (row, run) in [("the Stopping status written", run.clone()), ("the Stopping status lost", Run::launched(spec))]
    {
        let judged = after_track(&run.view(), found(never_started.clone()), at(130));
        assert_eq!(
            judged.status.task.attempts[0].outcome,
            Some(RunReason::StartTimeout.into()),
            "{row}: {:?}",
            judged.status.task.message
        );
        assert_eq!(bound::failures(&judged.status.task).failed, 1, "{row}: the attempt counts");
    }
}

/// A suspension's stop with a stop reason of the user's is still a suspension, not a failure.
#[test]
fn a_suspension_stop_with_a_stop_reason_of_the_users_is_not_counted() {
    let spec = with(spec(), |s| s.stop_reason = Some("paused by the operator".into()));
    let mut run = Run::launched(spec.clone());
    run.apply(&after_track(&run.view(), found(task("RUNNING")), at(5)));
    run.spec = with(spec, |s| s.suspend = true);
    let plan = after_track(&run.view(), found(task("RUNNING")), at(6));
    let stop = plan.stop.clone().expect("StopTask");
    assert_eq!(plan.status.task.attempts[0].stop_cause, Some(StopCause::Suspended));
    let lost = run.clone();
    run.apply(&plan);
    let stopped = stopped("UserInitiated", &stop.reason, Some(143), Some(143));
    for (row, run) in [("the Stopping status written", run), ("the Stopping status lost", lost)] {
        let judged = after_track(&run.view(), found(stopped.clone()), at(20));
        assert_eq!(judged.status.task.attempts[0].outcome, Some(RunReason::Suspended.into()), "{row}");
        assert_eq!(bound::failures(&judged.status.task).failed, 0, "{row}");
    }
}

/// The marker survives a stop reason of the most characters ECS takes.
#[test]
fn the_stop_marker_survives_the_longest_stop_reason() {
    let spec = with(spec(), |s| {
        s.wait.start_timeout = Some("2m".into());
        s.stop_reason = Some("x".repeat(300));
    });
    let run = Run::launched(spec);
    let stop = after_track(&run.view(), found(task("PENDING")), at(121)).stop.expect("StopTask");
    assert!(stop.reason.chars().count() <= MAX_STOP_REASON_CHARS, "{}", stop.reason.len());
    assert_eq!(StopCause::marked_in(&stop.reason), Some(StopCause::StartTimeout));
}

#[test]
fn the_deadline_ends_a_run_waiting_to_retry() {
    let mut run = Run::new(with(spec(), |s| {
        s.wait.timeout = Some("1m".into());
        s.retry_policy = RetryPolicy { backoff_limit: 3, ..Default::default() };
    }));
    let capacity = LaunchObservation::Failures(vec![EcsFailure {
        arn: None,
        reason: Some("RESOURCE:MEMORY".into()),
        detail: None,
    }]);
    let plan = after_launch(&run.view(), 1, capacity, at(55));
    run.apply(&plan);
    let Step::Conclude(plan) = next_step(&run.view(), at(65)) else { panic!("expected a conclusion") };
    assert_eq!(plan.status.task.phase, Some(Phase::Failed));
    assert_eq!(plan.status.task.reason, Some(RunReason::DeadlineExceeded.into()));
    assert_eq!(plan.status.task.next_attempt_at, None);
    assert_eq!(plan.requeue, None);
}

#[test]
fn an_error_while_following_a_task_does_not_end_the_run_and_clears_when_the_task_is_seen_again() {
    // One IAM mistake used to fail every in-flight run of an identity, terminally, tasks still running.
    let mut run = Run::launched(spec());
    let denied = EcsError::new(
        EcsErrorKind::AccessDenied,
        "DescribeTasks",
        "AccessDeniedException: not authorized to perform: ecs:DescribeTasks",
    );
    for error in [denied, EcsError::new(EcsErrorKind::Server, "DescribeTasks", "ServerException: internal")] {
        let plan = after_track(&run.view(), TrackObservation::Unobservable(error.clone()), at(30));
        assert_eq!(plan.status.task.phase, Some(Phase::Running), "{error}");
        assert_eq!(plan.status.task.reason_str(), Some(error.kind.reason()));
        let message = plan.status.task.message.clone().unwrap();
        assert!(message.contains(&error.message) && message.contains("abc123"), "{message}");
        assert_eq!(condition(&plan.status, "Reconciling").unwrap().reason, error.kind.reason());
        assert_eq!(plan.follow.as_ref().map(|f| f.task_arn.as_str()), Some(ARN), "still followed");
        assert_eq!(plan.stop, None);
    }
    let plan = after_track(
        &run.view(),
        TrackObservation::Unobservable(EcsError::new(EcsErrorKind::AccessDenied, "DescribeTasks", "denied")),
        at(30),
    );
    run.apply(&plan);
    let recovered = after_track(&run.view(), found(task("RUNNING")), at(60));
    assert_eq!(recovered.status.task.reason, Some(RunReason::TaskRunning.into()));
    let done = after_track(&run.view(), found(stopped("EssentialContainerExited", "done", Some(0), Some(1))), at(90));
    assert_eq!(done.status.task.phase, Some(Phase::Succeeded));
}

#[test]
fn a_launch_that_cannot_get_through_says_why_in_status() {
    let mut run = Run::new(spec());
    run.status = launch_intent(&run.view(), 1, "eu-west-1", at(1));
    let blocked = launch_blocked(&run.view(), "EcsServerError", "ECS RunTask failed (server_error): 500", at(2));
    assert_eq!(blocked.task.phase, Some(Phase::Pending));
    assert_eq!(blocked.task.reason_str(), Some("EcsServerError"));
    assert!(blocked.task.message.as_deref().unwrap().contains("RunTask failed (server_error)"));
    assert_eq!(blocked.task.attempts, run.status.task.attempts, "the launch intent stands: the next try looks first");
    run.status = blocked;
    assert_eq!(next_step(&run.view(), at(10)), Step::Launch { attempt: 1, may_exist: true });
}

#[test]
fn repeating_an_observation_writes_an_identical_status() {
    let mut run = Run::launched(spec());
    let first = after_track(&run.view(), found(task("RUNNING")), at(30));
    run.apply(&first);
    let second = after_track(&run.view(), found(task("RUNNING")), at(60));
    assert_eq!(second.status, first.status, "no timestamps that change by themselves");
    assert!(second.events.is_empty());
}

#[test]
fn a_look_older_than_the_status_records_leaves_the_status_as_it_is() {
    let mut run = Run::launched(spec());
    run.apply(&after_track(&run.view(), found(task("STOPPING")), at(30)));
    // A deposed replica's tracker, or one that started again, may still have the task RUNNING.
    let stale = after_track(&run.view(), found(task("RUNNING")), at(31));
    assert_eq!(stale.status, run.status, "ECS's lifecycle only goes forward");
    assert!(stale.events.is_empty() && stale.stop.is_none());
    assert_eq!(stale.follow.map(|follow| follow.every), Some(Duration::from_secs(10)), "looked at again soon");
    let done = after_track(&run.view(), found(stopped("EssentialContainerExited", "", Some(0), Some(0))), at(40));
    assert_eq!(done.status.task.phase, Some(Phase::Succeeded), "a later look is taken as ever");
}

#[test]
fn last_transition_time_moves_only_when_a_condition_flips() {
    let mut run = Run::launched(spec());
    let launched_at = condition(&run.status, "Ready").unwrap().last_transition_time.clone();
    let running = after_track(&run.view(), found(task("RUNNING")), at(30));
    assert_eq!(
        condition(&running.status, "Ready").unwrap().last_transition_time,
        launched_at,
        "Ready stays False: same time, new reason"
    );
    assert_eq!(condition(&running.status, "Ready").unwrap().reason, "TaskRunning");
    run.apply(&running);
    let done = after_track(&run.view(), found(stopped("EssentialContainerExited", "", Some(0), Some(0))), at(90));
    let ready = condition(&done.status, "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.last_transition_time.clone()), ("True", Time(at(90))));
    assert!(condition(&done.status, "Reconciling").is_none());
    assert_eq!(condition(&done.status, "Succeeded").unwrap().observed_generation, Some(1));
    assert_eq!(done.status.observed_generation, Some(1));
}

#[test]
fn a_final_run_is_idle() {
    for phase in [Phase::Succeeded, Phase::Failed] {
        let mut run = Run::launched(spec());
        run.status.task.phase = Some(phase);
        assert_eq!(next_step(&run.view(), at(1000)), Step::Idle);
    }
}

#[test]
fn deletion_policy() {
    let orphan = with(spec(), |s| s.deletion_policy = Some(DeletionPolicy::Orphan));
    assert_eq!(cleanup_step(&orphan, UID, None), CleanupStep::Release);
    let mut run = Run::launched(spec());
    assert_eq!(
        cleanup_step(&run.spec, UID, Some(&run.status)),
        CleanupStep::Stop { task_arns: vec![ARN.into()], list_started_by: vec![] },
        "the task is on record: no ListTasks"
    );
    assert_eq!(cleanup_step(&spec(), UID, None), CleanupStep::Release, "never launched: nothing to stop");
    let plan = after_track(&run.view(), found(stopped("EssentialContainerExited", "done", Some(0), Some(0))), at(60));
    run.apply(&plan);
    assert_eq!(cleanup_step(&run.spec, UID, Some(&run.status)), CleanupStep::Release, "its task stopped");
}

#[test]
fn cleanup_stops_running_tasks_and_waits_for_stopped() {
    let spec = with(spec(), |s| s.stop_reason = Some("cancelled by the platform team".into()));
    let running = task("RUNNING");
    let plan = cleanup(&spec, "jobs", "nightly", std::slice::from_ref(&running), None);
    let reason = "cancelled by the platform team [ecsrun:delete]".into();
    assert_eq!(plan.stop, vec![StopTask { task_arn: ARN.into(), reason }]);
    assert!(!plan.done);

    let stopping = TaskSnapshot { desired_status: Some("STOPPED".into()), ..task("STOPPING") };
    let plan = cleanup(&spec, "jobs", "nightly", &[stopping], None);
    assert!(plan.stop.is_empty(), "StopTask is not repeated");
    assert!(!plan.done);

    let plan = cleanup(&spec, "jobs", "nightly", &[task("STOPPED")], None);
    assert!(plan.stop.is_empty() && plan.done);
    assert!(cleanup(&spec, "jobs", "nightly", &[], None).done, "no task, nothing to wait for");
}

#[test]
fn deleting_a_run_whose_launch_may_be_unrecorded_looks_for_its_task_a_while() {
    // Created and deleted within a second: RunTask started a task ListTasks does not list yet.
    let nothing_yet = cleanup(&spec(), "jobs", "nightly", &[], Some(Duration::from_secs(2)));
    assert!(!nothing_yet.done, "an empty list right after RunTask proves nothing");
    let listed = cleanup(&spec(), "jobs", "nightly", &[task("RUNNING")], Some(Duration::from_secs(6)));
    assert_eq!(listed.stop.len(), 1);
    assert!(!listed.done);
    let still_none = cleanup(&spec(), "jobs", "nightly", &[], Some(UNRECORDED_LAUNCH_GRACE));
    assert!(still_none.done, "after the grace, nothing listed means nothing started");
}

#[test]
fn durations_parse_go_style() {
    assert_eq!(parse_duration("2h15m30s"), Some(Duration::from_secs(8130)));
    assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
    assert_eq!(parse_duration("1500ms"), Some(Duration::from_millis(1500)));
    assert_eq!(parse_duration("abc"), None);
}

#[test]
fn a_deletion_held_up_by_an_error_says_why_and_a_final_run_keeps_its_result() {
    let run = Run::launched(spec());
    let blocked = cleanup_blocked(&run.view(), "EcsServerError", "ECS StopTask failed", at(5));
    assert_eq!(blocked.task.phase, Some(Phase::Stopping));
    assert_eq!(blocked.task.reason_str(), Some("EcsServerError"));
    assert!(
        blocked.task.message.as_deref().unwrap_or_default().contains("cannot stop its task yet: ECS StopTask failed")
    );

    let mut done = Run::launched(with(spec(), |s| s.wait.for_ = WaitFor::Running));
    done.apply(&after_track(&done.view(), found(task("RUNNING")), at(3)));
    assert_eq!(done.status.task.phase, Some(Phase::Succeeded));
    let blocked = cleanup_blocked(&done.view(), "EcsServerError", "ECS StopTask failed", at(5));
    assert_eq!(blocked.task.phase, Some(Phase::Succeeded), "the result stands");
    assert_eq!(blocked.conditions, done.status.conditions);
    assert!(blocked.task.message.as_deref().unwrap_or_default().contains("cannot stop its task yet"));
}

#[test]
fn a_template_run_launches_the_revision_registered_for_it() {
    let template = serde_json::json!({"family": "etl", "containerDefinitions": [{"name": "app", "image": "etl:1"}]});
    let spec: EcsTaskRunSpec =
        serde_json::from_value(serde_json::json!({"cluster": "demo", "taskDefinitionTemplate": template})).unwrap();
    let run = Run::new(spec);
    let registered = TaskDefinitionInfo {
        arn: "arn:aws:ecs:eu-west-1:123456789012:task-definition/etl:7".into(),
        containers: vec![ContainerDefinitionInfo { name: "app".into(), essential: true, log: None }],
        registered_by: None,
    };
    let request = launch_request(&run.view(), 1, &registered);
    assert_eq!(request.task_definition, registered.arn);
    let app = &request.overrides.expect("identity injected").container_overrides[0];
    assert!(app.environment.iter().any(|v| v.name == "ECSRUN_UID"), "{app:?}");
    let intent = launch_intent(&run.view(), 1, "eu-west-1", at(0));
    assert_eq!(intent.task.message.as_deref(), Some("launching a task of etl (attempt 1)"));
    // A reference not described runs as written: a bare family is resolved by ECS to its latest revision.
    let by_reference = Run::new(spec_with_reference("report"));
    assert_eq!(launch_request(&by_reference.view(), 1, &TaskDefinitionInfo::default()).task_definition, "report");
}

fn spec_with_reference(reference: &str) -> EcsTaskRunSpec {
    with(spec(), |s| s.task_definition = Some(reference.into()))
}

mod operating;
mod suspend;

/// ECS refuses StopTask reasons past 255 characters as a permanent error, and Kubernetes names reach
/// 253: every reason ecsrun makes up fits, or deletion, the timeout and failFast could never stop a task.
#[test]
fn stop_reasons_of_the_longest_names_fit_what_ecs_accepts() {
    let name = "n".repeat(253);
    let namespace = "s".repeat(63);
    let on_delete = cleanup(&spec(), &namespace, &name, &[task("RUNNING")], None);
    assert_eq!(on_delete.stop.len(), 1);
    assert_eq!(on_delete.stop[0].reason.chars().count(), MAX_STOP_REASON_CHARS, "{}", on_delete.stop[0].reason);
    assert!(on_delete.stop[0].reason.starts_with("ecsrun: EcsTaskRun sss"), "cut at its end");

    let mut run = Run::launched(with(spec(), |s| s.wait.timeout = Some("60s".into())));
    run.status.task.phase = Some(Phase::Running);
    let view = RunView { name: &name, namespace: &namespace, ..run.view() };
    let plan = after_track(&view, found(task("RUNNING")), at(61));
    let stop = plan.stop.expect("the deadline stops the task");
    assert!(stop.reason.chars().count() <= MAX_STOP_REASON_CHARS, "{} characters", stop.reason.chars().count());
    // A reason that fits is left as it is, its cause marked at its end.
    assert_eq!(
        marked_stop_reason("ecsrun: timeout exceeded (jobs/nightly)", StopCause::DeadlineExceeded),
        "ecsrun: timeout exceeded (jobs/nightly) [ecsrun:deadline]"
    );
}
