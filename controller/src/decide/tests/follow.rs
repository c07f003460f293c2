//! Following a task: polling, a task ECS does not know, deadlines and start timeouts, why ecsrun stopped a
//! task, errors while looking.

use super::*;

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
        let mut after = Run { status: plan.status.clone(), ..run.clone() };
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
    assert_eq!(
        next_step(&run.view(), at(1)),
        Step::Track { task_arn: ARN.into(), every: crate::api::POLL_INTERVAL_MAX }
    );
    let run = Run::launched(spec());
    let view = RunView { default_poll_interval: Duration::from_secs(7200), ..run.view() };
    assert_eq!(view.poll_interval(), crate::api::POLL_INTERVAL_MAX);
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
