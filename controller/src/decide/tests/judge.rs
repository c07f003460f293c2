//! Judging a stopped task: exit codes, stop codes, retryPolicy.rules, which containers count.

use super::*;

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
