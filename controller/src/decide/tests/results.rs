//! A run with `spec.results`: a stopped task that succeeded publishes what its log holds, fails with
//! `ResultMissing` without a required result (once CloudWatch has had its few seconds), says what it
//! refused, and a retried attempt's results are its own.

use super::*;
use crate::decide::results::{ResultLog, ResultLogs, ResultRead};
use crate::decide::run::{Observation, result_reads};

fn results_spec(required: &[&str], backoff_limit: i32) -> EcsTaskRunSpec {
    with(spec(), |s| {
        s.results = Some(crate::api::ResultsSpec {
            containers: vec!["app".into()],
            required: required.iter().map(|name| (*name).to_owned()).collect(),
        });
        s.retry_policy.backoff_limit = backoff_limit;
    })
}

fn printed(task_arn: &str, text: &[&str]) -> ResultLogs {
    let mut logs = ResultLogs::default();
    let read = ResultRead { index: 0, task_arn: task_arn.into(), container: "app".into(), stream: Err(String::new()) };
    logs.insert(&read, ResultLog::Lines(text.iter().map(|line| (*line).to_owned()).collect()));
    logs
}

/// The task succeeded (stopped at t=60).
fn succeeded() -> TaskSnapshot {
    stopped("EssentialContainerExited", "Essential container in task exited", Some(0), Some(0))
}

#[test]
fn a_succeeded_task_publishes_its_results_into_the_status() {
    let run = Run::launched(results_spec(&["rows"], 0));
    let logs = printed(ARN, &["starting", "::ecsrun-result rows=42", "::ecsrun-result key=s3://b/k"]);
    let view = RunView { results: &logs, ..run.view() };
    let plan = after_track(&view, found(succeeded()), at(61));
    assert_eq!(plan.status.task.phase, Some(Phase::Succeeded));
    assert_eq!(
        plan.status.task.results.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(),
        [("key", "s3://b/k"), ("rows", "42")]
    );
    assert!(event_reasons(&plan).iter().all(|reason| *reason != "ResultRefused"));
}

#[test]
fn a_required_result_that_never_came_fails_the_run_after_one_more_look() {
    let mut run = Run::launched(results_spec(&["rows"], 0));
    let logs = printed(ARN, &["no results here"]);
    let view = RunView { results: &logs, ..run.view() };
    // One second after the stop: CloudWatch may still be taking the last lines.
    let plan = after_track(&view, found(succeeded()), at(61));
    assert_eq!(plan.status.task.phase, Some(Phase::Stopping));
    assert_eq!(plan.requeue, Some(Duration::from_secs(4)), "back when the grace ends");
    assert!(plan.status.task.message.as_deref().unwrap_or_default().contains("waiting for its results"));
    run.apply(&plan);

    let view = RunView { results: &logs, ..run.view() };
    let plan = after_track(&view, found(succeeded()), at(65));
    assert_eq!(
        (plan.status.task.phase, plan.status.task.known_reason()),
        (Some(Phase::Failed), Some(RunReason::ResultMissing))
    );
    let message = plan.status.task.message.clone().unwrap_or_default();
    assert!(message.contains("did not publish required result(s) rows"), "{message}");
    assert_eq!(condition(&plan.status, "Failed").map(|c| c.reason.as_str()), Some("ResultMissing"));
}

#[test]
fn a_malformed_result_is_told_and_the_rest_stand() {
    let run = Run::launched(results_spec(&[], 0));
    let logs = printed(ARN, &["::ecsrun-result rows=1", "::ecsrun-result bad name=2"]);
    let view = RunView { results: &logs, ..run.view() };
    let plan = after_track(&view, found(succeeded()), at(61));
    assert_eq!(plan.status.task.phase, Some(Phase::Succeeded));
    assert_eq!(plan.status.task.results.get("rows").map(String::as_str), Some("1"));
    let message = plan.status.task.message.clone().unwrap_or_default();
    assert!(message.contains("results refused: app: result name \"bad name\""), "{message}");
    let refusal = plan.events.iter().find(|e| e.reason == "ResultRefused").expect("a ResultRefused Event");
    assert!(refusal.warning && refusal.note.contains("bad name"), "{refusal:?}");
}

#[test]
fn a_retried_attempts_results_are_its_own() {
    let mut run = Run::launched(results_spec(&["rows"], 1));
    // Attempt 1 published only `key`, and fails for want of `rows`.
    let logs = printed(ARN, &["::ecsrun-result key=first"]);
    let view = RunView { results: &logs, ..run.view() };
    let plan = after_track(&view, found(succeeded()), at(70));
    assert_eq!(plan.status.task.known_reason(), Some(RunReason::WaitingToRetry));
    run.apply(&plan);

    // Attempt 2's task publishes `rows`: `key` was attempt 1's and is gone.
    let second_arn = format!("{ARN}-2");
    let launched = TaskSnapshot { task_arn: second_arn.clone(), ..task("PROVISIONING") };
    run.apply(&after_launch(&run.view(), 2, LaunchObservation::Started(launched.clone()), at(200)));
    assert!(run.status.task.results.is_empty(), "no results of attempt 1 while attempt 2 runs");
    let mut second = succeeded();
    second.task_arn = second_arn.clone();
    // Only attempt 1's stream was read: nothing of it is used for attempt 2.
    let view = RunView { results: &logs, ..run.view() };
    assert!(matches!(after_track(&view, found(second.clone()), at(400)).status.task.phase, Some(Phase::Stopping)));
    let logs = printed(&second_arn, &["::ecsrun-result rows=2"]);
    let view = RunView { results: &logs, ..run.view() };
    let plan = after_track(&view, found(second), at(400));
    assert_eq!(plan.status.task.phase, Some(Phase::Succeeded));
    assert_eq!(plan.status.task.results.keys().collect::<Vec<_>>(), ["rows"]);
}

#[test]
fn only_succeeded_stopped_tasks_have_their_results_read() {
    let run = Run::launched(results_spec(&["rows"], 0));
    let observed = |task: TaskSnapshot| vec![(0, Observation::Tracked(found(task)))];
    let reads = result_reads(&run.view(), &observed(succeeded()), at(61));
    assert_eq!(reads.iter().map(|r| (r.task_arn.as_str(), r.container.as_str())).collect::<Vec<_>>(), [(ARN, "app")]);
    let failed = stopped("EssentialContainerExited", "exited", Some(1), Some(0));
    assert!(result_reads(&run.view(), &observed(failed), at(61)).is_empty());
    assert!(result_reads(&run.view(), &observed(task("RUNNING")), at(61)).is_empty());
    let without = Run::launched(spec());
    assert!(result_reads(&without.view(), &observed(succeeded()), at(61)).is_empty());
}

#[test]
fn a_failed_containers_tail_is_read_once_cloudwatch_has_had_its_seconds() {
    let mut run = Run::launched(spec());
    let awslogs = Some(vec![super::super::testing::awslogs_container("app")]);
    let failed = stopped("EssentialContainerExited", "exited", Some(3), Some(0));
    let observed = |task: &TaskSnapshot| TrackObservation::Found { task: task.clone(), containers: awslogs.clone() };
    // Stopped at t=60, seen at t=61: nothing is judged or told yet; the run comes back at t=65.
    let plan = after_track(&run.view(), observed(&failed), at(61));
    assert_eq!(plan.status, run.status, "nothing written");
    assert!(plan.events.is_empty() && plan.logs.is_empty());
    assert_eq!(plan.requeue, Some(Duration::from_secs(4)));
    assert!(plan.follow.is_some(), "still followed: the tracker keeps the task");
    run.apply(&plan);
    let plan = after_track(&run.view(), observed(&failed), at(65));
    assert_eq!(plan.status.task.known_reason(), Some(RunReason::ContainerFailed));
    assert_eq!(plan.logs.iter().map(|read| read.container.as_str()).collect::<Vec<_>>(), ["app"]);
    // A tail that cannot be read (no awslogs) is not waited for.
    let plan = after_track(&Run::launched(spec()).view(), found(failed), at(61));
    assert_eq!(plan.status.task.known_reason(), Some(RunReason::ContainerFailed));
}
