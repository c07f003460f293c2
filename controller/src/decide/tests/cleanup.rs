//! Deleting a run: the deletion policy, stopping its tasks, a launch that may be unrecorded, and StopTask
//! reasons ECS accepts.

use super::*;

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

fn event_reasons_of(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.reason).collect()
}

#[test]
fn cleanup_stops_running_tasks_and_waits_for_stopped() {
    let spec = with(spec(), |s| s.stop_reason = Some("cancelled by the platform team".into()));
    let running = task("RUNNING");
    let plan = cleanup(&spec, "jobs", "nightly", std::slice::from_ref(&running), None);
    let reason = "cancelled by the platform team [ecsrun:delete]".into();
    assert_eq!(plan.stop, vec![StopTask { task_arn: ARN.into(), reason }]);
    assert_eq!(event_reasons_of(&plan.events), ["Stopping"], "the StopTask is told, by the decision");
    assert!(!plan.done(&[running]));

    let stopping = TaskSnapshot { desired_status: Some("STOPPED".into()), ..task("STOPPING") };
    let plan = cleanup(&spec, "jobs", "nightly", std::slice::from_ref(&stopping), None);
    assert!(plan.stop.is_empty() && plan.events.is_empty(), "StopTask is not repeated");
    assert!(!plan.done(&[stopping]));

    let plan = cleanup(&spec, "jobs", "nightly", &[task("STOPPED")], None);
    assert!(plan.stop.is_empty() && plan.done(&[task("STOPPED")]));
    assert!(cleanup(&spec, "jobs", "nightly", &[], None).done(&[]), "no task, nothing to wait for");
    // A StopTask answered STOPPED (or "no such task", which drops it) lets the finalizer go at once.
    let plan = cleanup(&spec, "jobs", "nightly", &[task("RUNNING")], None);
    assert!(plan.done(&[task("STOPPED")]) && plan.done(&[]));
}

#[test]
fn deleting_a_run_whose_launch_may_be_unrecorded_looks_for_its_task_a_while() {
    // Created and deleted within a second: RunTask started a task ListTasks does not list yet.
    let nothing_yet = cleanup(&spec(), "jobs", "nightly", &[], Some(Duration::from_secs(2)));
    assert!(!nothing_yet.done(&[]), "an empty list right after RunTask proves nothing");
    let listed = cleanup(&spec(), "jobs", "nightly", &[task("RUNNING")], Some(Duration::from_secs(6)));
    assert_eq!(listed.stop.len(), 1);
    assert!(!listed.done(&[task("RUNNING")]));
    let still_none = cleanup(&spec(), "jobs", "nightly", &[], Some(UNRECORDED_LAUNCH_GRACE));
    assert!(still_none.done(&[]), "after the grace, nothing listed means nothing started");
}

#[test]
fn a_deletion_held_up_by_an_error_says_why_and_a_final_run_keeps_its_result() {
    let run = Run::launched(spec());
    let held_up = cleanup_held_up(&run.view(), "EcsServerError", "ECS StopTask failed", at(5));
    assert_eq!(held_up.task.phase, Some(Phase::Stopping));
    assert_eq!(held_up.task.reason_str(), Some("EcsServerError"));
    assert!(
        held_up.task.message.as_deref().unwrap_or_default().contains("cannot stop its task yet: ECS StopTask failed")
    );

    let mut done = Run::launched(with(spec(), |s| s.wait.for_ = WaitFor::Running));
    done.apply(&after_track(&done.view(), found(task("RUNNING")), at(3)));
    assert_eq!(done.status.task.phase, Some(Phase::Succeeded));
    let held_up = cleanup_held_up(&done.view(), "EcsServerError", "ECS StopTask failed", at(5));
    assert_eq!(held_up.task.phase, Some(Phase::Succeeded), "the result stands");
    assert_eq!(held_up.conditions, done.status.conditions);
    assert!(held_up.task.message.as_deref().unwrap_or_default().contains("cannot stop its task yet"));
}

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
