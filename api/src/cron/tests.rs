//! The schedule's time arithmetic across both daylight-saving changes, in two zones that change on
//! different dates (Europe/Berlin and America/New_York), and around the slots a controller counts.

use jiff::Timestamp;

use super::*;

fn utc(text: &str) -> Timestamp {
    text.parse().expect("an RFC 3339 instant")
}

fn slots(schedule: &str, zone: &str) -> Slots {
    Slots::new(schedule, Some(zone)).expect("a valid schedule")
}

/// The slots in [`from`, `until`), as UTC instants.
fn between(slots: &Slots, from: &str, until: &str) -> Vec<String> {
    let (mut at, until) = (utc(from) - jiff::SignedDuration::from_secs(1), utc(until));
    let mut seen = Vec::new();
    while let Some(next) = slots.next_after(at).filter(|next| *next < until) {
        seen.push(next.to_string());
        at = next;
    }
    seen
}

#[test]
fn a_fixed_time_in_the_hour_clocks_repeat_runs_once() {
    // Berlin falls back on 2026-10-25 at 03:00 CEST to 02:00 CET: 02:30 happens at 00:30Z and 01:30Z.
    let berlin = slots("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        between(&berlin, "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z"),
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    );
    // New York falls back on 2026-11-01 at 02:00 EDT to 01:00 EST: 01:30 happens at 05:30Z and 06:30Z.
    let new_york = slots("30 1 * * *", "America/New_York");
    assert_eq!(
        between(&new_york, "2026-10-31T12:00:00Z", "2026-11-02T12:00:00Z"),
        ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
    );
}

#[test]
fn no_fixed_time_of_the_fall_back_day_runs_twice() {
    for (zone, day_start, day_end) in [
        ("Europe/Berlin", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"),
        ("America/New_York", "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"),
    ] {
        for hour in 0..24 {
            for minute in [0, 15, 30, 59] {
                let schedule = format!("{minute} {hour} * * *");
                let fired = between(&slots(&schedule, zone), day_start, day_end);
                assert_eq!(fired.len(), 1, "{zone} {schedule}: {fired:?}");
            }
        }
    }
}

#[test]
fn a_job_every_half_hour_runs_through_both_passes_of_the_repeated_hour() {
    // 02:00 CEST, 02:30 CEST, 02:00 CET, 02:30 CET: every 30 minutes of real time, none missing or doubled.
    let berlin = slots("*/30 * * * *", "Europe/Berlin");
    assert_eq!(
        between(&berlin, "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z"),
        ["2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z"]
    );
    let new_york = slots("0 * * * *", "America/New_York");
    assert_eq!(
        between(&new_york, "2026-11-01T04:00:00Z", "2026-11-01T08:00:00Z"),
        ["2026-11-01T04:00:00Z", "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"]
    );
}

#[test]
fn a_fixed_time_the_clocks_skip_runs_right_after_the_jump() {
    // Berlin springs forward on 2026-03-29 from 02:00 CET to 03:00 CEST: 02:30 does not exist that day
    // and runs at 03:00 CEST (01:00Z); the next day 02:30 CEST is 00:30Z.
    let berlin = slots("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        between(&berlin, "2026-03-28T12:00:00Z", "2026-03-30T12:00:00Z"),
        ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
    );
    // New York springs forward on 2026-03-08 from 02:00 EST to 03:00 EDT: 02:30 runs at 03:00 EDT (07:00Z).
    let new_york = slots("30 2 * * *", "America/New_York");
    assert_eq!(
        between(&new_york, "2026-03-07T12:00:00Z", "2026-03-09T12:00:00Z"),
        ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]
    );
    // A fixed time just before the gap is not run again after it.
    let before_gap = slots("30 1 * * *", "Europe/Berlin");
    assert_eq!(between(&before_gap, "2026-03-28T12:00:00Z", "2026-03-29T12:00:00Z"), ["2026-03-29T00:30:00Z"]);
}

#[test]
fn an_hourly_job_keeps_real_hours_when_the_clocks_spring_forward() {
    // 01:00 EST is 06:00Z; the next hour of real time is 03:00 EDT (07:00Z).
    let new_york = slots("@hourly", "America/New_York");
    assert_eq!(
        between(&new_york, "2026-03-08T05:00:00Z", "2026-03-08T08:00:00Z"),
        ["2026-03-08T05:00:00Z", "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z"]
    );
}

#[test]
fn nicknames_and_zones() {
    let daily = Slots::new("@daily", None).expect("@daily");
    assert_eq!(daily.next_after(utc("2026-12-03T10:00:00Z")), Some(utc("2026-12-04T00:00:00Z")));
    let weekly = Slots::new("@weekly", Some("Asia/Tokyo")).expect("@weekly");
    // Sunday 2026-12-06 00:00 JST is Saturday 15:00Z.
    assert_eq!(weekly.next_after(utc("2026-12-03T10:00:00Z")), Some(utc("2026-12-05T15:00:00Z")));
    for nickname in ["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually"] {
        assert!(Slots::new(nickname, None).is_ok(), "{nickname}");
    }
}

#[test]
fn what_is_refused() {
    for bad in ["0 0 * * * *", "* * * *", "61 * * * *", "0 25 * * *", "@every 5m", "TZ=UTC 0 0 * * *", ""] {
        assert!(matches!(Slots::new(bad, None), Err(ScheduleError::Expression { .. })), "{bad:?}");
    }
    assert_eq!(
        Slots::new("0 0 * * *", Some("Mars/Olympus_Mons")).err(),
        Some(ScheduleError::TimeZone("Mars/Olympus_Mons".into()))
    );
}

#[test]
fn due_counts_missed_slots_and_names_the_latest() {
    let every_minute = slots("* * * * *", "UTC");
    let due = every_minute.due(utc("2026-12-03T10:00:00Z"), utc("2026-12-03T10:05:30Z"));
    assert_eq!(due, Due { count: 5, latest: Some(utc("2026-12-03T10:05:00Z")) });
    // A slot exactly at `after` was already taken; one exactly at `until` is due.
    let due = every_minute.due(utc("2026-12-03T10:05:00Z"), utc("2026-12-03T10:06:00Z"));
    assert_eq!(due, Due { count: 1, latest: Some(utc("2026-12-03T10:06:00Z")) });
    assert_eq!(every_minute.due(utc("2026-12-03T10:05:00Z"), utc("2026-12-03T10:05:59Z")), Due::default());
    // A year suspended: the count stops past the cap, the latest is still right.
    let due = every_minute.due(utc("2025-12-03T10:00:00Z"), utc("2026-12-03T10:00:30Z"));
    assert_eq!(due, Due { count: MISSED_SLOTS_COUNTED + 1, latest: Some(utc("2026-12-03T10:00:00Z")) });
}

#[test]
fn upcoming_lists_the_next_slots() {
    // 02:00 happens twice on 2026-10-25: the first, in CEST (00:00Z), is the slot.
    let nightly = slots("0 2 * * *", "Europe/Berlin");
    let next = nightly.upcoming(utc("2026-10-23T12:00:00Z"), 3);
    let expected: Vec<Timestamp> =
        ["2026-10-24T00:00:00Z", "2026-10-25T00:00:00Z", "2026-10-26T01:00:00Z"].map(utc).to_vec();
    assert_eq!(next, expected);
}
