//! Where a run stands: retries and their backoff, conditions and their transition times, final runs.

use super::*;

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
    let rows = [
        ("the default first wait", 10, vec![10, 20, 40, 80, 160, 300, 300]),
        ("retryPolicy.backoff 1s", 1, vec![1, 2, 4, 8, 16, 32, 64]),
        ("retryPolicy.backoff 5m", 300, vec![300; 7]),
    ];
    for (row, first, expected) in rows {
        let secs: Vec<u64> = (1..=7).map(|n| retry_backoff(n, Duration::from_secs(first)).as_secs()).collect();
        assert_eq!(secs, expected, "{row}");
    }
}

/// The worked example of docs/ARCHITECTURE.md: `retryPolicy.backoff` sets the first retry's wait.
#[test]
fn a_run_sets_the_wait_before_its_first_retry() {
    let run = Run::launched(with(spec(), |s| {
        s.retry_policy = RetryPolicy { backoff_limit: 2, backoff: Some("1m".into()), ..Default::default() }
    }));
    let failed = stopped("EssentialContainerExited", "exited", Some(1), Some(0));
    let plan = after_track(&run.view(), found(failed), at(61));
    assert_eq!((plan.status.task.phase, plan.requeue), (Some(Phase::Pending), Some(Duration::from_secs(60))));
    assert_eq!(plan.status.task.next_attempt_at, Some(Time(at(121))));
    // A value that is not a duration fails the run before it launches, as every duration of the spec.
    let invalid = with(spec(), |s| s.retry_policy.backoff = Some("a minute".into()));
    let Step::Conclude(plan) = next_step(&Run::new(invalid).view(), at(1)) else { panic!("launched") };
    assert_eq!(plan.status.task.known_reason(), Some(RunReason::InvalidSpec));
    assert!(plan.status.task.message.unwrap().starts_with("spec.retryPolicy.backoff: "));
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
