//! A queued run (`kueue.x-k8s.io/queue-name`) under Kueue's admission: nothing launches until admitted,
//! an eviction stops its tasks without counting a failure, and a new admission launches again.

use super::*;

fn waiting(why: &str) -> Admission {
    Admission::Waiting(why.to_owned())
}

fn condition_status<'a>(status: &'a EcsTaskRunStatus, type_: &str) -> Option<&'a str> {
    condition(status, type_).map(|c| c.status.as_str())
}

#[test]
fn a_queued_run_launches_nothing_until_admitted_and_its_timeout_counts_from_the_admission() {
    let mut run = Run::new(with(spec(), |s| s.wait.timeout = Some("1m".into())));
    run.admission = waiting("couldn't assign flavors to pod set tasks: insufficient quota for cpu");
    let Step::Conclude(plan) = next_step(&run.view(), at(1)) else {
        panic!("a queued run concludes without launching")
    };
    assert_eq!(
        (plan.status.task.phase, plan.status.task.known_reason()),
        (Some(Phase::Pending), Some(RunReason::Queued))
    );
    let message = plan.status.task.message.clone().unwrap_or_default();
    assert!(message.contains("insufficient quota for cpu"), "Kueue's words: {message}");
    // Progressing to kstatus (and so to Flux and Argo CD), not suspended.
    assert_eq!(condition_status(&plan.status, "Reconciling"), Some("True"));
    assert_eq!(condition_status(&plan.status, "Suspended"), None);
    assert_eq!(plan.events.iter().map(|e| e.reason).collect::<Vec<_>>(), ["Queued"]);
    assert!(plan.stop.is_none() && plan.follow.is_none());
    run.apply(&plan);

    // Still queued an hour later, past its one-minute timeout: nothing changes and nothing is told again.
    let Step::Conclude(plan) = next_step(&run.view(), at(3600)) else { panic!("still queued") };
    assert_eq!(plan.status, run.status, "nothing to write");
    assert!(plan.events.is_empty());

    // Admitted: it launches, and its timeout counts from now.
    run.admission = Admission::Admitted;
    assert_eq!(next_step(&run.view(), at(3600)), Step::Launch { attempt: 1, may_exist: false });
    let intent = launch_intent(&run.view(), 1, "eu-west-1", at(3600));
    assert_eq!(intent.resumed_at, Some(Time(at(3600))));
}

#[test]
fn an_eviction_stops_the_task_without_counting_a_failure_and_the_run_waits_for_admission_again() {
    let mut run = Run::launched(with(spec(), |s| s.retry_policy.backoff_limit = 0));
    run.admission = Admission::Admitted;
    run.apply(&after_track(&run.view(), found(task("RUNNING")), at(5)));
    assert_eq!(run.status.task.phase, Some(Phase::Running));

    run.admission = waiting("evicted: Preempted to accommodate a higher priority Workload");
    assert!(matches!(next_step(&run.view(), at(6)), Step::Track { .. }), "the task is followed to its end");
    let plan = after_track(&run.view(), found(task("RUNNING")), at(6));
    let stop = plan.stop.clone().expect("StopTask");
    assert_eq!(StopCause::marked_in(&stop.reason), Some(StopCause::Evicted), "{}", stop.reason);
    assert_eq!(
        (plan.status.task.phase, plan.status.task.known_reason()),
        (Some(Phase::Stopping), Some(RunReason::Evicted))
    );
    run.apply(&plan);

    // Stopped (SIGTERM, exit 143): not a failure; backoffLimit 0 is untouched and no retry is scheduled.
    let plan = after_track(&run.view(), found(stopped("UserInitiated", &stop.reason, Some(143), Some(143))), at(20));
    assert_eq!(
        (plan.status.task.phase, plan.status.task.known_reason()),
        (Some(Phase::Pending), Some(RunReason::Queued))
    );
    assert_eq!(plan.status.task.attempts.last().and_then(|a| a.known_outcome()), Some(RunReason::Evicted));
    assert_eq!(bound::failures(&plan.status.task).failed, 0);
    assert!(plan.status.task.next_attempt_at.is_none() && plan.logs.is_empty());
    run.apply(&plan);

    // Admitted again: attempt 2.
    run.admission = Admission::Admitted;
    assert_eq!(next_step(&run.view(), at(40)), Step::Launch { attempt: 2, may_exist: false });
}

#[test]
fn admitted_again_while_the_evictions_stop_was_under_way_the_run_comes_back_to_launch() {
    let mut run = Run::launched(spec());
    run.admission = waiting("evicted: ClusterQueue shared is stopped");
    let plan = after_track(&run.view(), found(task("RUNNING")), at(5));
    let stop = plan.stop.clone().expect("StopTask");
    run.apply(&plan);
    run.admission = Admission::Admitted;
    let plan = after_track(&run.view(), found(stopped("UserInitiated", &stop.reason, Some(143), Some(143))), at(20));
    assert_eq!(plan.status.task.phase, Some(Phase::Pending));
    assert!(plan.requeue.is_some_and(|after| after <= Duration::from_secs(1)), "{:?}", plan.requeue);
    run.apply(&plan);
    assert_eq!(next_step(&run.view(), at(21)), Step::Launch { attempt: 2, may_exist: false });
}

#[test]
fn a_run_that_lost_its_admission_with_a_launch_recorded_looks_for_the_task_and_never_launches() {
    let mut run = Run::new(spec());
    run.admission = Admission::Admitted;
    run.status = launch_intent(&run.view(), 1, "eu-west-1", at(0));
    run.admission = waiting("evicted: the Workload was deactivated");
    assert_eq!(next_step(&run.view(), at(1)), Step::Find { attempt: 1 });
    // Nothing found once ECS would list it: the attempt ends as evicted, no failure, and the run queues.
    let plan = after_find(&run.view(), 1, None, at(600));
    assert_eq!(
        (plan.status.task.phase, plan.status.task.known_reason()),
        (Some(Phase::Pending), Some(RunReason::Queued))
    );
    assert_eq!(plan.status.task.attempts.last().and_then(|a| a.known_outcome()), Some(RunReason::Evicted));
    run.apply(&plan);
    assert!(matches!(next_step(&run.view(), at(601)), Step::Conclude(_)), "queued, never a launch");
}

#[test]
fn a_suspended_queued_run_is_suspended_and_a_run_following_a_task_started_elsewhere_is_never_held() {
    let mut run = Run::new(with(spec(), |s| s.suspend = true));
    run.admission = waiting("the Workload is inactive");
    let Step::Conclude(plan) = next_step(&run.view(), at(1)) else { panic!("held") };
    assert_eq!(plan.status.task.known_reason(), Some(RunReason::Suspended));

    let mut adopting = Run::new(with(spec(), |s| s.task_arn = Some(ARN.into())));
    adopting.admission = waiting("not admitted");
    assert_eq!(next_step(&adopting.view(), at(1)), Step::Adopt { task_arn: ARN.into() });
}
