//! The schedule's decision as tables: one run per slot, concurrency, missed slots and deadlines, suspend,
//! edits, history, clocks that repeat an hour, conditions.

use super::*;
use crate::api::{EcsTaskRunSpec, RunTemplate};

fn utc(text: &str) -> Timestamp {
    text.parse().expect("an RFC 3339 instant")
}

fn spec(schedule: &str) -> EcsTaskScheduleSpec {
    let run: EcsTaskRunSpec = serde_json::from_value(serde_json::json!({
        "cluster": "batch", "taskDefinition": "nightly", "launchType": "FARGATE"
    }))
    .expect("a run spec");
    EcsTaskScheduleSpec {
        schedule: schedule.into(),
        time_zone: None,
        concurrency_policy: ConcurrencyPolicy::Allow,
        starting_deadline_seconds: None,
        suspend: false,
        successful_runs_history_limit: 3,
        failed_runs_history_limit: 1,
        run_template: RunTemplate { metadata: Default::default(), spec: run },
    }
}

fn run(slot: &str, state: RunState) -> OwnedRun {
    OwnedRun { name: format!("run-{slot}"), uid: format!("uid-{slot}"), slot: Some(utc(slot)), state, deleting: false }
}

fn active(slot: &str) -> OwnedRun {
    run(slot, RunState::Active)
}

fn succeeded(slot: &str, finished: &str) -> OwnedRun {
    run(slot, RunState::Succeeded { finished_at: utc(finished) })
}

fn failed(slot: &str, finished: &str) -> OwnedRun {
    run(slot, RunState::Failed { finished_at: utc(finished) })
}

/// A schedule created at 10:00:30Z, with `status` and `runs`, decided at `now`.
fn decide_at(spec: &EcsTaskScheduleSpec, status: &EcsTaskScheduleStatus, runs: &[OwnedRun], now: &str) -> SchedulePlan {
    let view = ScheduleView { generation: Some(1), created_at: utc("2026-12-03T10:00:30Z"), spec, status, runs };
    decide(&view, utc(now))
}

fn created(plan: &SchedulePlan) -> Vec<Timestamp> {
    plan.effects
        .iter()
        .filter_map(|effect| match effect {
            ScheduleEffect::CreateRun { slot } => Some(*slot),
            _ => None,
        })
        .collect()
}

fn deleted(plan: &SchedulePlan) -> Vec<(&str, &str)> {
    plan.effects
        .iter()
        .filter_map(|effect| match effect {
            ScheduleEffect::DeleteRun { name, reason, .. } => Some((name.as_str(), *reason)),
            _ => None,
        })
        .collect()
}

fn reasons(plan: &SchedulePlan) -> Vec<&'static str> {
    plan.events.iter().map(|event| event.reason).collect()
}

fn condition<'a>(
    status: &'a EcsTaskScheduleStatus,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    status.conditions.iter().find(|c| c.type_ == type_).expect("the condition")
}

#[test]
fn each_slot_creates_one_run_and_the_next_slot_is_in_status() {
    let spec = spec("* * * * *");
    let early = decide_at(&spec, &Default::default(), &[], "2026-12-03T10:00:45Z");
    assert!(early.effects.is_empty(), "{:?}", early.effects);
    assert_eq!(early.status.next_schedule_time, Some(Time(utc("2026-12-03T10:01:00Z"))));
    assert_eq!(early.requeue_after, Some(Duration::from_secs(15)));
    assert_eq!(condition(&early.status, "Ready").status, "True");

    let due = decide_at(&spec, &early.status, &[], "2026-12-03T10:01:02Z");
    assert_eq!(created(&due), [utc("2026-12-03T10:01:00Z")]);
    assert_eq!(due.status.last_schedule_time, Some(Time(utc("2026-12-03T10:01:00Z"))));
    assert_eq!(due.status.next_schedule_time, Some(Time(utc("2026-12-03T10:02:00Z"))));
    assert_eq!(due.requeue_after, Some(Duration::from_secs(58)));
    // Decided again (the run's creation came back through the watch): nothing more for that slot.
    let again = decide_at(&spec, &due.status, &[active("2026-12-03T10:01:00Z")], "2026-12-03T10:01:03Z");
    assert!(created(&again).is_empty());
    assert_eq!(again.status.active.len(), 1);
}

#[test]
fn a_crash_before_the_status_write_does_not_create_the_slot_again() {
    // The run of 10:01 exists, but the status that records it was never written: its slot comes from it.
    let spec = spec("* * * * *");
    let plan = decide_at(&spec, &Default::default(), &[active("2026-12-03T10:01:00Z")], "2026-12-03T10:01:30Z");
    assert!(created(&plan).is_empty(), "{:?}", plan.effects);
    assert_eq!(plan.status.last_schedule_time, Some(Time(utc("2026-12-03T10:01:00Z"))));
}

#[test]
fn concurrency_policies() {
    let at = "2026-12-03T10:02:01Z";
    let busy = [active("2026-12-03T10:01:00Z")];
    let status =
        EcsTaskScheduleStatus { last_schedule_time: Some(Time(utc("2026-12-03T10:01:00Z"))), ..Default::default() };
    let allow = decide_at(&spec("* * * * *"), &status, &busy, at);
    assert_eq!(created(&allow), [utc("2026-12-03T10:02:00Z")]);
    assert!(deleted(&allow).is_empty());

    let forbid_spec = EcsTaskScheduleSpec { concurrency_policy: ConcurrencyPolicy::Forbid, ..spec("* * * * *") };
    let forbid = decide_at(&forbid_spec, &status, &busy, at);
    assert!(forbid.effects.is_empty(), "{:?}", forbid.effects);
    assert_eq!(reasons(&forbid), [reason::RUN_STILL_ACTIVE]);
    assert_eq!(forbid.missed, 1);
    // The slot passed over stays passed over: once the run ends, the next slot runs, not that one.
    let later = decide_at(
        &forbid_spec,
        &forbid.status,
        &[succeeded("2026-12-03T10:01:00Z", "2026-12-03T10:02:30Z")],
        "2026-12-03T10:02:40Z",
    );
    assert!(created(&later).is_empty(), "{:?}", later.effects);

    let replace_spec = EcsTaskScheduleSpec { concurrency_policy: ConcurrencyPolicy::Replace, ..spec("* * * * *") };
    let replace = decide_at(&replace_spec, &status, &busy, at);
    // The active run is deleted before the new one is created.
    assert_eq!(
        replace.effects,
        [
            ScheduleEffect::DeleteRun {
                name: "run-2026-12-03T10:01:00Z".into(),
                uid: "uid-2026-12-03T10:01:00Z".into(),
                reason: reason::REPLACED
            },
            ScheduleEffect::CreateRun { slot: utc("2026-12-03T10:02:00Z") },
        ]
    );
    assert!(replace.status.active.is_empty());
}

#[test]
fn after_downtime_only_the_latest_missed_slot_runs_within_the_deadline() {
    let status =
        EcsTaskScheduleStatus { last_schedule_time: Some(Time(utc("2026-12-03T10:01:00Z"))), ..Default::default() };
    // Down from 10:01 to 10:30:10: 29 slots due, the latest runs, 28 are reported missed.
    let plan = decide_at(&spec("* * * * *"), &status, &[], "2026-12-03T10:30:10Z");
    assert_eq!(created(&plan), [utc("2026-12-03T10:30:00Z")]);
    assert_eq!(reasons(&plan), [reason::MISSED_SLOTS]);
    assert!(plan.events[0].note.starts_with("missed 28 slot(s)"), "{}", plan.events[0].note);
    assert_eq!(plan.missed, 28);

    // Hourly with a deadline of 60 s: at 10:30 the 10:00 slot is 30 minutes late and passed over.
    let hourly = EcsTaskScheduleSpec { starting_deadline_seconds: Some(60), ..spec("0 * * * *") };
    let status = EcsTaskScheduleStatus {
        last_schedule_time: Some(Time(utc("2026-12-03T08:00:00Z"))),
        observed_schedule: Some("0 * * * * (UTC)".into()),
        scheduled_since: Some(Time(utc("2026-12-03T08:00:00Z"))),
        ..Default::default()
    };
    let plan = decide_at(&hourly, &status, &[], "2026-12-03T10:30:00Z");
    assert!(created(&plan).is_empty());
    assert_eq!(reasons(&plan), [reason::MISSED_SLOTS, reason::TOO_LATE]);
    assert_eq!(plan.missed, 2);
    assert_eq!(plan.status.next_schedule_time, Some(Time(utc("2026-12-03T11:00:00Z"))));
    // Passed over for good: decided again, nothing is created or told again.
    let again = decide_at(&hourly, &plan.status, &[], "2026-12-03T10:31:00Z");
    assert!(again.effects.is_empty() && again.events.is_empty(), "{:?} {:?}", again.effects, again.events);
}

#[test]
fn suspend_creates_nothing_and_resume_runs_at_most_the_latest_slot() {
    let status =
        EcsTaskScheduleStatus { last_schedule_time: Some(Time(utc("2026-12-03T10:01:00Z"))), ..Default::default() };
    let suspended_spec = EcsTaskScheduleSpec { suspend: true, ..spec("* * * * *") };
    let suspended = decide_at(&suspended_spec, &status, &[], "2026-12-03T12:00:00Z");
    assert!(suspended.effects.is_empty());
    assert_eq!(suspended.status.next_schedule_time, None);
    assert_eq!(suspended.requeue_after, None);
    assert_eq!(condition(&suspended.status, "Suspended").status, "True");
    // Resumed two hours later: one run, for the latest slot; the rest are told as missed.
    let resumed = decide_at(&spec("* * * * *"), &suspended.status, &[], "2026-12-03T12:00:20Z");
    assert_eq!(created(&resumed), [utc("2026-12-03T12:00:00Z")]);
    // 118 were missed; the count stops past 100.
    assert_eq!(resumed.missed, 100);
    assert!(resumed.events[0].note.starts_with("missed more than 100 slot(s)"), "{}", resumed.events[0].note);
    assert_eq!(condition(&resumed.status, "Suspended").status, "False");
    // With a deadline shorter than the lateness, resuming runs nothing.
    let strict = EcsTaskScheduleSpec { starting_deadline_seconds: Some(10), ..spec("* * * * *") };
    let resumed = decide_at(&strict, &suspended.status, &[], "2026-12-03T12:00:20Z");
    assert!(created(&resumed).is_empty());
}

#[test]
fn editing_the_schedule_starts_from_the_edit() {
    let first = decide_at(&spec("0 * * * *"), &Default::default(), &[], "2026-12-03T10:00:40Z");
    assert_eq!(first.status.observed_schedule.as_deref(), Some("0 * * * * (UTC)"));
    // At 10:37 the schedule becomes every 5 minutes: 10:05 to 10:35 are before the edit and never run.
    let edited = decide_at(&spec("*/5 * * * *"), &first.status, &[], "2026-12-03T10:37:00Z");
    assert!(edited.effects.is_empty(), "{:?}", edited.effects);
    assert_eq!(edited.status.next_schedule_time, Some(Time(utc("2026-12-03T10:40:00Z"))));
    let at_slot = decide_at(&spec("*/5 * * * *"), &edited.status, &[], "2026-12-03T10:40:01Z");
    assert_eq!(created(&at_slot), [utc("2026-12-03T10:40:00Z")]);
    // A zone change is an edit too.
    let zoned = EcsTaskScheduleSpec { time_zone: Some("Asia/Tokyo".into()), ..spec("*/5 * * * *") };
    let moved = decide_at(&zoned, &at_slot.status, &[], "2026-12-03T10:47:00Z");
    assert!(created(&moved).is_empty());
}

#[test]
fn history_limits_delete_the_oldest_finished_runs_once_their_slot_is_recorded() {
    let status = EcsTaskScheduleStatus {
        last_schedule_time: Some(Time(utc("2026-12-03T10:06:00Z"))),
        scheduled_since: Some(Time(utc("2026-12-03T10:06:00Z"))),
        observed_schedule: Some("* * * * * (UTC)".into()),
        ..Default::default()
    };
    let runs = [
        succeeded("2026-12-03T10:01:00Z", "2026-12-03T10:01:30Z"),
        failed("2026-12-03T10:02:00Z", "2026-12-03T10:02:30Z"),
        succeeded("2026-12-03T10:03:00Z", "2026-12-03T10:03:30Z"),
        failed("2026-12-03T10:04:00Z", "2026-12-03T10:04:30Z"),
        succeeded("2026-12-03T10:05:00Z", "2026-12-03T10:05:30Z"),
        succeeded("2026-12-03T10:06:00Z", "2026-12-03T10:06:30Z"),
        // Finished, but its slot is not recorded yet: kept, whatever the limit.
        succeeded("2026-12-03T10:07:00Z", "2026-12-03T10:07:30Z"),
    ];
    let plan = decide_at(&spec("* * * * *"), &status, &runs, "2026-12-03T10:07:40Z");
    let mut gone = deleted(&plan);
    gone.sort();
    assert_eq!(gone, [("run-2026-12-03T10:01:00Z", reason::HISTORY), ("run-2026-12-03T10:02:00Z", reason::HISTORY)]);
    assert_eq!(plan.status.last_successful_time, Some(Time(utc("2026-12-03T10:07:30Z"))));
}

#[test]
fn a_fixed_time_in_a_repeated_hour_runs_once() {
    // Berlin, 2026-10-25: 02:30 happens at 00:30Z (CEST) and again at 01:30Z (CET).
    let berlin = EcsTaskScheduleSpec { time_zone: Some("Europe/Berlin".into()), ..spec("30 2 * * *") };
    let status = EcsTaskScheduleStatus {
        last_schedule_time: Some(Time(utc("2026-10-24T00:30:00Z"))),
        observed_schedule: Some("30 2 * * * (Europe/Berlin)".into()),
        scheduled_since: Some(Time(utc("2026-10-24T00:30:00Z"))),
        ..Default::default()
    };
    let first = decide_at(&berlin, &status, &[], "2026-10-25T00:30:05Z");
    assert_eq!(created(&first), [utc("2026-10-25T00:30:00Z")]);
    assert_eq!(first.status.next_schedule_time, Some(Time(utc("2026-10-26T01:30:00Z"))));
    let runs = [active("2026-10-25T00:30:00Z")];
    for now in ["2026-10-25T01:30:00Z", "2026-10-25T01:30:05Z", "2026-10-25T01:45:00Z"] {
        let second = decide_at(&berlin, &first.status, &runs, now);
        assert!(created(&second).is_empty(), "{now}: {:?}", second.effects);
    }
}

#[test]
fn an_unreadable_schedule_stalls_and_says_so_once() {
    let bad = EcsTaskScheduleSpec { time_zone: Some("Europe/Atlantis".into()), ..spec("* * * * *") };
    let plan = decide_at(&bad, &Default::default(), &[], "2026-12-03T10:05:00Z");
    assert!(plan.effects.is_empty());
    assert_eq!(condition(&plan.status, "Stalled").status, "True");
    assert_eq!(condition(&plan.status, "Ready").reason, reason::INVALID_SCHEDULE);
    assert_eq!(reasons(&plan), [reason::INVALID_SCHEDULE]);
    assert_eq!(plan.requeue_after, None);
    let again = decide_at(&bad, &plan.status, &[], "2026-12-03T10:06:00Z");
    assert!(again.events.is_empty(), "{:?}", again.events);
}

#[test]
fn nothing_in_status_moves_while_nothing_happens() {
    let spec = spec("0 * * * *");
    let first = decide_at(&spec, &Default::default(), &[], "2026-12-03T10:10:00Z");
    let second = decide_at(&spec, &first.status, &[], "2026-12-03T10:20:00Z");
    assert_eq!(first.status, second.status);
    assert_eq!(condition(&second.status, "Ready").last_transition_time, Time(utc("2026-12-03T10:10:00Z")));
}

#[test]
fn manual_runs_count_as_active_but_not_as_slots() {
    let manual = OwnedRun { slot: None, ..active("2026-12-03T10:00:50Z") };
    let forbid = EcsTaskScheduleSpec { concurrency_policy: ConcurrencyPolicy::Forbid, ..spec("* * * * *") };
    let plan = decide_at(&forbid, &Default::default(), &[manual], "2026-12-03T10:01:01Z");
    assert!(created(&plan).is_empty());
    assert_eq!(plan.status.last_schedule_time, None);
    assert_eq!(plan.status.active_count, Some(1));
}
