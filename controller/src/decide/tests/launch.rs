//! Launching: the intent before RunTask, the run's identity in ECS, what RunTask is told to run, and what
//! its answers mean.

use super::*;

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
    let definition = TaskDefinitionInfo {
        arn: TD_ARN.into(),
        containers: definition().unwrap(),
        registered_by: None,
        size: Default::default(),
    };
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
        let definition = TaskDefinitionInfo {
            arn: described.into(),
            containers: vec![],
            registered_by: None,
            size: Default::default(),
        };
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
    let definition = TaskDefinitionInfo {
        arn: TD_ARN.into(),
        containers: definition().unwrap(),
        registered_by: None,
        size: Default::default(),
    };
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

#[test]
fn a_launch_that_cannot_get_through_says_why_in_status() {
    let mut run = Run::new(spec());
    run.status = launch_intent(&run.view(), 1, "eu-west-1", at(1));
    let held_up = launch_held_up(&run.view(), "EcsServerError", "ECS RunTask failed (server_error): 500", at(2));
    assert_eq!(held_up.task.phase, Some(Phase::Pending));
    assert_eq!(held_up.task.reason_str(), Some("EcsServerError"));
    assert!(held_up.task.message.as_deref().unwrap().contains("RunTask failed (server_error)"));
    assert_eq!(held_up.task.attempts, run.status.task.attempts, "the launch intent stands: the next try looks first");
    run.status = held_up;
    assert_eq!(next_step(&run.view(), at(10)), Step::Launch { attempt: 1, may_exist: true });
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
        size: Default::default(),
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

/// Issue 36: a duration that is not one (admission refuses it; a run can still hold one, written before the
/// CRD had its pattern or by a client that bypassed validation) fails the run before anything launches.
/// Before, an unparsable `timeout` read as "no timeout".
#[test]
fn a_duration_that_is_not_one_fails_the_run_instead_of_meaning_no_limit() {
    let rows = [
        ("timeout", with(spec(), |s| s.wait.timeout = Some("soon".into())), "spec.wait.timeout"),
        ("startTimeout", with(spec(), |s| s.wait.start_timeout = Some("10 minutes".into())), "spec.wait.startTimeout"),
        ("pollInterval", with(spec(), |s| s.wait.poll_interval = Some("30".into())), "spec.wait.pollInterval"),
    ];
    for (row, spec, field) in rows {
        let run = Run::new(spec);
        let Step::Conclude(plan) = next_step(&run.view(), at(1)) else { panic!("{row}: launched") };
        assert_eq!(
            (plan.status.task.phase, plan.status.task.known_reason()),
            (Some(Phase::Failed), Some(RunReason::InvalidSpec)),
            "{row}"
        );
        let message = plan.status.task.message.unwrap();
        assert!(message.starts_with(field) && message.contains("is not a duration"), "{row}: {message}");
    }
    // Valid ones launch.
    let run = Run::new(with(spec(), |s| s.wait.timeout = Some("1h30m".into())));
    assert_eq!(next_step(&run.view(), at(1)), Step::Launch { attempt: 1, may_exist: false });
}
