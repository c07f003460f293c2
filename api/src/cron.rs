//! When an `EcsTaskSchedule`'s slots fall: a five-field cron expression read in an IANA time zone.
//!
//! `croner` parses the expression and walks the zone's wall clock, with Vixie cron's answers to the two
//! daylight-saving changes: when clocks fall back, a job at fixed times runs once (at the first of the
//! two instants), while a job that runs every hour or more often runs through both passes of the repeated
//! hour, as the hours really pass; when clocks spring forward, a fixed time the clocks skip runs at the
//! first instant after the jump. The controller and the plugin (`schedule next`) share this one reading.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Beyond this many missed slots the count stops: what matters is that slots were missed, and the latest.
pub const MISSED_SLOTS_COUNTED: usize = 100;

/// Why a schedule cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error(
        "schedule {schedule:?} is not a five-field cron expression or @hourly/@daily/@weekly/@monthly/@yearly: {why}"
    )]
    Expression { schedule: String, why: String },
    #[error("timeZone {0:?} is not an IANA time zone this controller knows")]
    TimeZone(String),
}

/// A schedule's slots: its expression in its zone.
#[derive(Clone, Debug)]
pub struct Slots {
    cron: Cron,
    zone: TimeZone,
}

impl Slots {
    /// Reads `schedule` (five fields, or an `@` nickname) in `time_zone` (UTC when absent).
    pub fn new(schedule: &str, time_zone: Option<&str>) -> Result<Self, ScheduleError> {
        let expression = |why: String| ScheduleError::Expression { schedule: schedule.to_owned(), why };
        let fields = schedule.split_whitespace().count();
        if !schedule.trim_start().starts_with('@') && fields != 5 {
            return Err(expression(format!("{fields} fields, not 5")));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(schedule)
            .map_err(|error| expression(error.to_string()))?;
        let zone = match time_zone {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|_| ScheduleError::TimeZone(name.to_owned()))?,
        };
        Ok(Self { cron, zone })
    }

    /// The zone the expression is read in.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// The first slot strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let from = after.to_zoned(self.zone.clone());
        self.cron.find_next_occurrence(&from, false).ok().map(|next| next.timestamp())
    }

    /// The latest slot at or before `until`.
    pub fn latest_until(&self, until: Timestamp) -> Option<Timestamp> {
        let from = until.to_zoned(self.zone.clone());
        self.cron.find_previous_occurrence(&from, true).ok().map(|previous| previous.timestamp())
    }

    /// The slots in (`after`, `until`]: how many (counted up to [`MISSED_SLOTS_COUNTED`], beyond which
    /// the count says "more") and the latest.
    pub fn due(&self, after: Timestamp, until: Timestamp) -> Due {
        let Some(latest) = self.latest_until(until).filter(|latest| *latest > after) else {
            return Due::default();
        };
        let mut count = 0;
        let mut at = after;
        while let Some(next) = self.next_after(at).filter(|next| *next <= latest) {
            count += 1;
            if count > MISSED_SLOTS_COUNTED {
                break;
            }
            at = next;
        }
        Due { count, latest: Some(latest) }
    }

    /// The next `n` slots after `after`.
    pub fn upcoming(&self, after: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut slots = Vec::with_capacity(n);
        let mut at = after;
        while slots.len() < n {
            let Some(next) = self.next_after(at) else { break };
            slots.push(next);
            at = next;
        }
        slots
    }
}

/// Slots that fell due in an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// How many, up to [`MISSED_SLOTS_COUNTED`] + 1 (meaning "more than that").
    pub count: usize,
    /// The latest of them.
    pub latest: Option<Timestamp>,
}

#[cfg(test)]
mod tests;
