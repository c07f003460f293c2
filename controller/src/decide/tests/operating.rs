//! Operating runs: `spec.stop`, adopting a task started elsewhere (`spec.taskArn`), what tasks used.

use super::*;

fn stop(spec: EcsTaskRunSpec) -> EcsTaskRunSpec {
    with(spec, |s| s.stop = true)
}

fn adopting() -> EcsTaskRunSpec {
    serde_json::from_value(serde_json::json!({"cluster": "demo", "taskArn": ARN})).unwrap()
}

#[test]
fn stopping_a_running_run_sends_stop_task_and_ends_stopped_once_stopped() {
    let mut run = Run::launched(spec());
    run.apply(&after_track(&run.view(), found(task("RUNNING")), at(5)));
    run.spec = stop(with(run.spec.clone(), |s| s.stop_reason = Some("operator asked".into())));

    assert!(matches!(next_step(&run.view(), at(6)), Step::Track { .. }));
    let plan = after_track(&run.view(), found(task("RUNNING")), at(6));
    assert_eq!(plan.stop, Some(StopTask { task_arn: ARN.into(), reason: "operator asked [ecsrun:stop]".into() }));
    assert_eq!(plan.status.task.phase, Some(Phase::Stopping));
    assert_eq!(plan.status.task.reason, Some(RunReason::Stopped.into()));
    run.apply(&plan);

    // StopTask already sent: not sent again while ECS stops the task.
    let mut stopping = task("RUNNING");
    stopping.desired_status = Some("STOPPED".into());
    assert_eq!(after_track(&run.view(), found(stopping), at(7)).stop, None);

    // SIGTERM's 143 does not make it a ContainerFailed to retry: the run was stopped.
    run.spec.retry_policy.backoff_limit = 3;
    let plan = after_track(&run.view(), found(stopped("UserInitiated", "operator asked", Some(143), Some(0))), at(9));
    assert_eq!(plan.status.task.phase, Some(Phase::Failed));
    assert_eq!(plan.status.task.reason, Some(RunReason::Stopped.into()));
    assert_eq!(plan.status.task.next_attempt_at, None, "never retried");
    assert!(
        plan.status.task.message.as_deref().unwrap().starts_with("stopped (spec.stop): "),
        "{:?}",
        plan.status.task.message
    );
    assert_eq!(event_reasons(&plan), vec!["Failed"]);
}

#[test]
fn a_task_that_succeeded_before_the_stop_reached_it_keeps_its_success() {
    let mut run = Run::launched(stop(spec()));
    let plan = after_track(&run.view(), found(stopped("EssentialContainerExited", "done", Some(0), Some(1))), at(9));
    run.apply(&plan);
    assert_eq!(run.status.task.phase, Some(Phase::Succeeded));
}

#[test]
fn stopping_a_run_with_no_task_ends_it_without_launching() {
    let run = Run::new(stop(spec()));
    let Step::Conclude(plan) = next_step(&run.view(), at(1)) else { panic!("a stopped run does not launch") };
    assert_eq!(plan.status.task.phase, Some(Phase::Failed));
    assert_eq!(plan.status.task.reason, Some(RunReason::Stopped.into()));

    // Waiting out a retry backoff: stopped at once, not relaunched.
    let mut run = Run::launched(with(spec(), |s| s.retry_policy.backoff_limit = 2));
    run.apply(&after_track(&run.view(), found(stopped("EssentialContainerExited", "", Some(1), Some(0))), at(60)));
    assert!(run.status.task.next_attempt_at.is_some());
    run.spec.stop = true;
    let Step::Conclude(plan) = next_step(&run.view(), at(61)) else { panic!("no relaunch") };
    assert_eq!(plan.status.task.reason, Some(RunReason::Stopped.into()));

    // A launch whose RunTask may have gone out unrecorded is looked for first.
    let mut run = Run::new(spec());
    run.status = launch_intent(&run.view(), 1, "eu-west-1", at(1));
    run.spec.stop = true;
    assert_eq!(next_step(&run.view(), at(2)), Step::Find { attempt: 1 });
    // ListTasks lags RunTask: nothing listed 2 s after it proves nothing; 30 s after, it does.
    let too_soon = after_find(&run.view(), 1, None, at(3));
    assert_eq!((too_soon.status.task.phase, too_soon.stop.is_none()), (run.status.task.phase, true));
    let found_nothing = after_find(&run.view(), 1, None, at(1) + UNRECORDED_LAUNCH_GRACE);
    assert_eq!(found_nothing.status.task.reason, Some(RunReason::Stopped.into()));
    // ... and a task found is adopted, then stopped at its next look.
    let found_one = after_find(&run.view(), 1, Some(task("RUNNING")), at(3));
    run.apply(&found_one);
    assert!(after_track(&run.view(), found(task("RUNNING")), at(4)).stop.is_some());
}

#[test]
fn a_finished_run_is_left_as_it_is() {
    let mut run = Run::launched(spec());
    run.apply(&after_track(&run.view(), found(stopped("EssentialContainerExited", "", Some(0), Some(0))), at(60)));
    run.spec.stop = true;
    assert_eq!(next_step(&run.view(), at(61)), Step::Idle);
}

#[test]
fn adopting_follows_the_task_as_attempt_one_without_ever_launching() {
    let run = Run::new(adopting());
    assert_eq!(next_step(&run.view(), at(1)), Step::Adopt { task_arn: ARN.into() });
    let plan = after_adopt(&run.view(), Some(task("RUNNING")), "eu-west-1", at(1));
    assert_eq!(plan.status.task.phase, Some(Phase::Running));
    assert_eq!(plan.status.region.as_deref(), Some("eu-west-1"));
    assert_eq!(plan.status.task.attempts[0].task_arn.as_deref(), Some(ARN));
    assert_eq!(plan.follow.as_ref().map(|f| f.task_arn.as_str()), Some(ARN));
    assert_eq!(event_reasons(&plan), vec!["Adopted"]);

    // Its failure is final, whatever backoffLimit says: ecsrun cannot start it again.
    let mut run = Run::new(with(adopting(), |s| s.retry_policy.backoff_limit = 3));
    run.apply(&after_adopt(&run.view(), Some(task("RUNNING")), "eu-west-1", at(1)));
    let plan = after_track(&run.view(), found(stopped("EssentialContainerExited", "", Some(2), Some(0))), at(60));
    assert_eq!(plan.status.task.phase, Some(Phase::Failed));
    assert_eq!(plan.status.task.reason, Some(RunReason::ContainerFailed.into()));
    run.apply(&plan);
    assert_eq!(next_step(&run.view(), at(400)), Step::Idle);
}

#[test]
fn adopting_a_task_ecs_does_not_know_fails_the_run() {
    let run = Run::new(adopting());
    let plan = after_adopt(&run.view(), None, "eu-west-1", at(1));
    assert_eq!(plan.status.task.phase, Some(Phase::Failed));
    assert_eq!(plan.status.task.reason, Some(RunReason::TaskNotFound.into()));
    assert!(plan.status.task.message.as_deref().unwrap().contains(ARN));
}

/// Issue 23's finding 2: a namespace whose policy allows a shared cluster could adopt another
/// namespace's task, read its containers and exit codes, and stop it.
#[test]
fn a_task_ecsrun_started_for_another_namespace_is_refused_and_nothing_of_it_is_read_or_stopped() {
    let theirs = |namespace: &str| TaskSnapshot { started_for_namespace: Some(namespace.into()), ..task("RUNNING") };
    // A stopped run fails as stopped (the Stop Task action refused), with the same explanation.
    for (spec, why) in [(adopting(), RunReason::AdoptionDenied), (stop(adopting()), RunReason::Stopped)] {
        let run = Run::new(spec);
        let plan = after_adopt(&run.view(), Some(theirs("team-a")), "eu-west-1", at(1));
        assert_eq!(plan.status.task.phase, Some(Phase::Failed));
        assert_eq!(plan.status.task.known_reason(), Some(why));
        assert!(plan.status.task.message.as_deref().unwrap().contains("namespace team-a"));
        assert_eq!(plan.status.task.task_arn, None, "not recorded");
        assert!(plan.status.task.containers.is_empty() && plan.status.task.exit_codes.is_none());
        assert!(plan.stop.is_none() && plan.follow.is_none());
        let mut done = run.clone();
        done.apply(&plan);
        assert_eq!(next_step(&done.view(), at(2)), Step::Idle, "never looked at again");
        assert_eq!(cleanup_step(&done.spec, UID, Some(&done.status)), CleanupStep::Release, "deleting stops nothing");
    }
    // Its own namespace's task, and one started outside ecsrun, are adopted as before.
    let run = Run::new(adopting());
    for task in [theirs("jobs"), task("RUNNING")] {
        let plan = after_adopt(&run.view(), Some(task), "eu-west-1", at(1));
        assert_eq!(plan.status.task.task_arn.as_deref(), Some(ARN));
    }
}

#[test]
fn adopting_and_stopping_is_the_stop_task_action() {
    let mut run = Run::new(stop(adopting()));
    assert_eq!(next_step(&run.view(), at(1)), Step::Adopt { task_arn: ARN.into() }, "adopted first, then stopped");
    run.apply(&after_adopt(&run.view(), Some(task("RUNNING")), "eu-west-1", at(1)));
    let plan = after_track(&run.view(), found(task("RUNNING")), at(2));
    assert!(plan.stop.is_some());
    run.apply(&plan);
    let plan = after_track(&run.view(), found(stopped("UserInitiated", "ecsrun", Some(143), None)), at(5));
    assert_eq!(plan.status.task.reason, Some(RunReason::Stopped.into()));
}

#[test]
fn an_adopted_task_is_orphaned_on_delete_unless_the_run_says_stop() {
    let mut run = Run::new(adopting());
    run.apply(&after_adopt(&run.view(), Some(task("RUNNING")), "eu-west-1", at(1)));
    assert_eq!(cleanup_step(&run.spec, UID, Some(&run.status)), CleanupStep::Release);
    run.spec.deletion_policy = Some(DeletionPolicy::Stop);
    assert!(matches!(cleanup_step(&run.spec, UID, Some(&run.status)), CleanupStep::Stop { .. }));
}

#[test]
fn usage_is_recorded_per_attempt_and_summed_for_the_run() {
    let mut run = Run::launched(with(spec(), |s| s.retry_policy.backoff_limit = 1));
    let sized = |task: TaskSnapshot| TaskSnapshot { cpu: Some("512".into()), memory: Some("1024".into()), ..task };
    // 10 s to 60 s: 50 s of half a vCPU and 1 GiB.
    run.apply(&after_track(
        &run.view(),
        found(sized(stopped("EssentialContainerExited", "", Some(1), Some(0)))),
        at(60),
    ));
    let first = run.status.task.attempts[0].usage.clone().unwrap();
    assert_eq!((first.vcpu_seconds, first.gib_seconds), (25.0, 50.0));
    let plan = after_launch(&run.view(), 2, LaunchObservation::Started(task("PROVISIONING")), at(100));
    run.apply(&plan);
    run.apply(&after_track(
        &run.view(),
        found(sized(stopped("EssentialContainerExited", "", Some(0), Some(0)))),
        at(160),
    ));
    let total = run.status.usage.clone().unwrap();
    assert_eq!((total.vcpu_seconds, total.gib_seconds), (50.0, 100.0));
}

#[test]
fn the_stop_task_action_stops_whatever_wait_for_says() {
    let run = Run::new(stop(with(adopting(), |s| s.wait.for_ = WaitFor::Launched)));
    let plan = after_adopt(&run.view(), Some(task("RUNNING")), "eu-west-1", at(1));
    assert_eq!(
        plan.status.task.phase,
        Some(Phase::Stopping),
        "not Succeeded on Launched: {:?}",
        plan.status.task.message
    );
}

/// Issue 35, finding 1: a deletion that began while a launch was held up (DescribeTaskDefinition,
/// template registration, the rate ceiling, SDK retries) must not give up looking for its task before the
/// RunTask could last have reached ECS: the grace counts from the latest intent when that is later.
#[test]
fn a_deletion_racing_a_slow_launch_looks_for_its_task_from_the_launch_intent() {
    let run = Run::new(spec());
    let spec = run.spec.clone();
    let intent = launch_intent(&run.view(), 1, "eu-west-1", at(20));
    // Deleted at t=5, while the launch (intent at t=20) was on its way.
    let since = unrecorded_launch_for(Some(&intent), at(5), at(50));
    assert_eq!(since, Duration::from_secs(30), "counted from the intent, not the deletion");
    let plan = cleanup(&spec, "jobs", "nightly", &[], Some(since));
    assert!(!plan.done(&[]), "still looking: RunTask may reach ECS up to the intent's age plus a call's timeout later");
    // Long enough after the intent: nothing listed means nothing started.
    let since = unrecorded_launch_for(Some(&intent), at(5), at(20) + UNRECORDED_LAUNCH_GRACE);
    assert!(cleanup(&spec, "jobs", "nightly", &[], Some(since)).done(&[]));
    // The grace covers a RunTask sent at the intent's oldest plus a 20 s call, with room for ListTasks' lag.
    assert!(UNRECORDED_LAUNCH_GRACE >= LAUNCH_INTENT_MAX_AGE + Duration::from_secs(20) + Duration::from_secs(20));
}
