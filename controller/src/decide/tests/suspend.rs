//! `spec.suspend`, as a Job's (and so as Kueue admits runs): nothing launches while suspended, running
//! tasks are stopped without counting as failures, and resuming launches again with the timeout restarted.

use super::*;

fn suspend(spec: EcsTaskRunSpec, suspended: bool) -> EcsTaskRunSpec {
    with(spec, |s| s.suspend = suspended)
}

fn condition_status<'a>(status: &'a EcsTaskRunStatus, type_: &str) -> Option<&'a str> {
    condition(status, type_).map(|c| c.status.as_str())
}

#[test]
fn a_run_created_suspended_launches_nothing_until_resumed() {
    let mut run = Run::new(suspend(spec(), true));
    let Step::Conclude(plan) = next_step(&run.view(), at(1)) else {
        panic!("a suspended run concludes without launching")
    };
    assert_eq!(plan.status.task.phase, Some(Phase::Pending));
    assert_eq!(plan.status.task.reason, Some(RunReason::Suspended.into()));
    assert_eq!(condition_status(&plan.status, "Suspended"), Some("True"));
    assert_eq!(condition_status(&plan.status, "Reconciling"), None, "nothing is under way");
    assert_eq!(plan.events.iter().map(|e| e.reason).collect::<Vec<_>>(), ["Suspended"]);
    assert!(plan.stop.is_none() && plan.follow.is_none() && plan.requeue.is_none());
    run.apply(&plan);
    // Nothing more to do while suspended, however long, past the timeout included.
    let timed = with(suspend(spec(), true), |s| s.wait.timeout = Some("1m".into()));
    run.spec = timed;
    assert_eq!(next_step(&run.view(), at(3600)), Step::Idle);

    // Resumed an hour after creation with a 1-minute timeout: it launches, and the timeout counts from now.
    run.spec = suspend(run.spec.clone(), false);
    assert_eq!(next_step(&run.view(), at(3600)), Step::Launch { attempt: 1, may_exist: false });
    let intent = launch_intent(&run.view(), 1, "eu-west-1", at(3600));
    assert_eq!(intent.resumed_at, Some(Time(at(3600))));
    run.status = intent;
    run.apply(&after_launch(&run.view(), 1, LaunchObservation::Started(task("RUNNING")), at(3601)));
    let plan = after_track(&run.view(), found(task("RUNNING")), at(3630));
    assert_eq!(plan.status.task.phase, Some(Phase::Running), "{:?}", plan.status.task.message);
    assert_eq!(condition_status(&plan.status, "Suspended"), Some("False"));
    let late = after_track(&run.view(), found(task("RUNNING")), at(3661));
    assert_eq!(
        late.status.task.reason,
        Some(RunReason::DeadlineExceeded.into()),
        "the timeout restarted at the resume"
    );
}

#[test]
fn suspending_a_running_run_stops_its_task_without_counting_a_failure() {
    let mut run = Run::launched(spec());
    run.apply(&after_track(&run.view(), found(task("RUNNING")), at(5)));
    run.spec = suspend(run.spec.clone(), true);
    assert!(matches!(next_step(&run.view(), at(6)), Step::Track { .. }));
    let plan = after_track(&run.view(), found(task("RUNNING")), at(6));
    let stop = plan.stop.clone().expect("StopTask");
    assert!(stop.reason.contains("run suspended"), "{}", stop.reason);
    assert_eq!(
        (plan.status.task.phase, plan.status.task.known_reason()),
        (Some(Phase::Stopping), Some(RunReason::Suspended))
    );
    run.apply(&plan);

    // Stopped (SIGTERM, exit 143): the attempt is over, not failed; backoffLimit 0 is untouched.
    let plan = after_track(&run.view(), found(stopped("UserInitiated", &stop.reason, Some(143), Some(143))), at(20));
    assert_eq!(plan.status.task.phase, Some(Phase::Pending));
    assert_eq!(plan.status.task.reason, Some(RunReason::Suspended.into()));
    assert_eq!(plan.status.task.attempts.last().and_then(|a| a.known_outcome()), Some(RunReason::Suspended));
    assert_eq!(bound::failures(&plan.status.task).failed, 0);
    assert!(plan.status.task.next_attempt_at.is_none(), "no retry is scheduled while suspended");
    assert_eq!(condition_status(&plan.status, "Reconciling"), None, "{:?}", plan.status.conditions);
    assert_eq!(condition_status(&plan.status, "Suspended"), Some("True"));
    assert!(plan.logs.is_empty(), "no log tail for a suspension: {:?}", plan.logs);
    run.apply(&plan);
    assert_eq!(next_step(&run.view(), at(30)), Step::Idle);

    // Resumed: attempt 2 launches, and the run can still succeed with backoffLimit 0.
    run.spec = suspend(run.spec.clone(), false);
    assert_eq!(next_step(&run.view(), at(40)), Step::Launch { attempt: 2, may_exist: false });
}

#[test]
fn a_task_that_fails_on_its_own_while_suspending_counts_but_is_not_retried_yet() {
    let mut run = Run::launched(with(spec(), |s| s.retry_policy.backoff_limit = 3));
    run.apply(&after_track(&run.view(), found(task("RUNNING")), at(5)));
    run.spec = suspend(run.spec.clone(), true);
    let plan = after_track(&run.view(), found(stopped("EssentialContainerExited", "exited", Some(2), Some(0))), at(6));
    assert_eq!(plan.status.task.reason, Some(RunReason::Suspended.into()));
    assert_eq!(plan.status.task.attempts.last().and_then(|a| a.known_outcome()), Some(RunReason::ContainerFailed));
    assert!(plan.status.task.next_attempt_at.is_none());
}

#[test]
fn suspending_while_the_launch_may_have_gone_out_looks_for_the_task_first() {
    let mut run = Run::new(spec());
    run.status = launch_intent(&run.view(), 1, "eu-west-1", at(1));
    run.spec = suspend(run.spec.clone(), true);
    assert_eq!(next_step(&run.view(), at(2)), Step::Find { attempt: 1 });
    // None found (long enough after the RunTask for ECS to list it): suspended, nothing counted.
    let plan = after_find(&run.view(), 1, None, at(120));
    assert_eq!(plan.status.task.reason, Some(RunReason::Suspended.into()));
    assert_eq!(bound::failures(&plan.status.task).failed, 0);
    // Found: adopted, then stopped at its first look.
    let plan = after_find(&run.view(), 1, Some(task("RUNNING")), at(3));
    run.apply(&plan);
    assert!(after_track(&run.view(), found(task("RUNNING")), at(4)).stop.is_some());
}

/// Issue 35, finding 9: a run resumed right after its suspension's StopTask, before its task was seen
/// STOPPED. The look that sees it STOPPED comes after the resume (whose spec change was the last thing to
/// bring the run back), so it must bring the run back itself: status writes do not.
#[test]
fn a_run_resumed_before_its_suspended_task_is_seen_stopped_launches_again() {
    let (mut run, stop) = suspended_while_running();
    // Resumed at once: the run still follows its task, which is stopping.
    run.spec = suspend(run.spec.clone(), false);
    assert!(matches!(next_step(&run.view(), at(7)), Step::Track { .. }));
    let stopping = TaskSnapshot { desired_status: Some("STOPPED".into()), ..task("DEACTIVATING") };
    let plan = after_track(&run.view(), found(stopping), at(8));
    assert!(plan.stop.is_none(), "resumed: nothing more to stop");
    run.apply(&plan);
    // Seen STOPPED: the attempt ends as the suspension's, and the run comes back to launch again.
    let plan = after_track(&run.view(), found(stopped("UserInitiated", &stop.reason, Some(143), Some(143))), at(20));
    assert_eq!(plan.status.task.attempts.last().and_then(|a| a.known_outcome()), Some(RunReason::Suspended));
    assert_eq!(bound::failures(&plan.status.task).failed, 0);
    assert!(plan.requeue.is_some(), "nothing else brings the resumed run back: {plan:?}");
    run.apply(&plan);
    assert_eq!(next_step(&run.view(), at(21)), Step::Launch { attempt: 2, may_exist: false });
}

/// The same with the STOPPED look before the resume reached the controller: written Suspended, and the
/// resume (a spec change) launches.
#[test]
fn a_run_resumed_after_its_suspended_task_is_seen_stopped_launches_again() {
    let (mut run, stop) = suspended_while_running();
    run.apply(&after_track(&run.view(), found(stopped("UserInitiated", &stop.reason, Some(143), None)), at(20)));
    assert_eq!(run.status.task.reason, Some(RunReason::Suspended.into()));
    run.spec = suspend(run.spec.clone(), false);
    assert_eq!(next_step(&run.view(), at(21)), Step::Launch { attempt: 2, may_exist: false });
}

/// A run whose RUNNING task was just sent the suspension's StopTask (at t=6), and that StopTask.
fn suspended_while_running() -> (Run, StopTask) {
    let mut run = Run::launched(spec());
    run.apply(&after_track(&run.view(), found(task("RUNNING")), at(5)));
    run.spec = suspend(run.spec.clone(), true);
    let plan = after_track(&run.view(), found(task("RUNNING")), at(6));
    let stop = plan.stop.clone().expect("StopTask");
    run.apply(&plan);
    (run, stop)
}
