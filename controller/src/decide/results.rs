//! Results a task published: `::ecsrun-result name=value` lines its containers printed, read from
//! CloudWatch Logs once the task has stopped. Which logs to read is decided here; the shell reads them
//! (under the logs ceiling) and hands back their lines in `RunView::results`; what they mean, within
//! the protocol's bounds, is decided here again.
//!
//! A line is only ever taken from the stream of the container named, of the task being judged: the
//! awslogs driver names streams `prefix/container/task-id`, so another container's or another
//! attempt's lines are in another stream and never read.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::{RunView, duration_between, logs, task_id};
use crate::api::{
    MAX_RESULT_LOG_BYTES, MAX_RESULT_LOG_LINES, MAX_RESULTS, RESULT_LINE_PREFIX, is_result_name, results_budget,
};
use crate::ecs::{ContainerDefinitionInfo, LogStream, TaskSnapshot};

/// CloudWatch Logs may hold a task's last lines for a few seconds after it stops: a result missing
/// before this long after the stop is looked for once more at its end.
pub const RESULTS_GRACE: Duration = Duration::from_secs(5);
/// How long after the stop a log that cannot be read (throttled, unreachable) is tried again before
/// its results are given up as missing.
pub const RESULTS_READ_DEADLINE: Duration = Duration::from_secs(120);
/// How soon a log that could not be read is tried again.
const UNREADABLE_RETRY: Duration = Duration::from_secs(10);

/// One container's log to read for the results of `task_arn`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultRead {
    pub index: u32,
    pub task_arn: String,
    pub container: String,
    /// Where the container's output is, or why that is not known (no awslogs driver, no stream prefix).
    pub stream: Result<LogStream, String>,
}

/// What reading one container's log gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResultLog {
    /// Its last lines, oldest first (at most `MAX_RESULT_LOG_LINES`).
    Lines(Vec<String>),
    /// The container has no stream (it printed nothing, or its log group does not exist).
    NoStream,
    /// The stream cannot be named from the task definition: reading again changes nothing.
    Unnamed(String),
    /// The read failed (throttled, unreachable, access denied): another may succeed.
    Unreadable(String),
}

impl ResultLog {
    /// Stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Lines(_) => "lines",
            Self::NoStream => "no_stream",
            Self::Unnamed(_) => "unnamed",
            Self::Unreadable(_) => "unreadable",
        }
    }
}

/// The result logs the shell read for this reconcile, by task ARN and container: an input of the
/// decision, like the observations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResultLogs(BTreeMap<(String, String), ResultLog>);

/// No result logs: the view of a reconcile that read none.
pub static NO_RESULT_LOGS: ResultLogs = ResultLogs(BTreeMap::new());

impl ResultLogs {
    pub fn insert(&mut self, read: &ResultRead, log: ResultLog) {
        self.0.insert((read.task_arn.clone(), read.container.clone()), log);
    }

    fn get(&self, task_arn: &str, container: &str) -> Option<&ResultLog> {
        self.0.get(&(task_arn.to_owned(), container.to_owned()))
    }
}

/// The logs to read for a stopped `task` of the run, if it asks for results and may have them.
pub fn reads(view: &RunView, task: &TaskSnapshot, definition: Option<&[ContainerDefinitionInfo]>) -> Vec<ResultRead> {
    let Some(asked) = view.spec.results.as_ref().filter(|_| view.results_allowed) else { return Vec::new() };
    asked
        .containers
        .iter()
        .map(|container| ResultRead {
            index: view.index,
            task_arn: task.task_arn.clone(),
            container: container.clone(),
            stream: logs::stream_of(definition, container, &task.task_arn),
        })
        .collect()
}

/// What one container's lines hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The results, each name's last value.
    pub values: BTreeMap<String, String>,
    /// Why lines that looked like results were not taken, in one short sentence each.
    pub refused: Vec<String>,
}

/// Reads the result lines out of `lines` (oldest first): only the last `MAX_RESULT_LOG_LINES` lines and
/// `MAX_RESULT_LOG_BYTES` bytes count; the last value of a name wins; at most `MAX_RESULTS` results and
/// `budget` bytes of names and values (`results_budget`) are taken, the names printed last first.
pub fn parse(lines: &[String], budget: usize) -> Parsed {
    let mut log_left = MAX_RESULT_LOG_BYTES;
    let window: Vec<&String> = lines
        .iter()
        .rev()
        .take(MAX_RESULT_LOG_LINES as usize)
        .take_while(|line| match log_left.checked_sub(line.len() + 1) {
            Some(left) => {
                log_left = left;
                true
            }
            None => false,
        })
        .collect();
    let mut parsed = Parsed::default();
    // Newest first: the first value seen of a name is its last.
    let mut newest: Vec<(String, String)> = Vec::new();
    for line in &window {
        let Some(rest) = line.trim_end_matches(['\r', '\n']).strip_prefix(RESULT_LINE_PREFIX) else { continue };
        let Some((name, value)) = rest.split_once('=') else {
            parsed.refused.push(format!("a result line without '=' ({})", shorten(rest)));
            continue;
        };
        if !is_result_name(name) || name.len() > 63 {
            parsed.refused.push(format!(
                "result name {:?} is not one (letters, digits, '-', '_', '.', at most 63)",
                shorten(name)
            ));
            continue;
        }
        if !newest.iter().any(|(seen, _)| seen == name) {
            newest.push((name.to_owned(), value.to_owned()));
        }
    }
    let mut used = 0;
    for (name, value) in newest {
        let size = name.len() + value.len();
        if parsed.values.len() == MAX_RESULTS {
            parsed.refused.push(format!("result {name} is past the {MAX_RESULTS} a task may publish"));
        } else if used + size > budget {
            parsed
                .refused
                .push(format!("result {name} ({size} bytes) is past the {budget} bytes a task's results may take"));
        } else {
            used += size;
            parsed.values.insert(name, value);
        }
    }
    // Told oldest line first, as they were printed.
    parsed.refused.reverse();
    parsed
}

fn shorten(text: &str) -> &str {
    super::bound::capped(text, 64)
}

/// What the results of a stopped, succeeded task come to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Collected {
    /// Not yet: look again after `after` (the logs may not be all there yet, or could not be read).
    Wait { after: Duration, why: String },
    /// What the task published, what was refused, and which required results never came (and why, where
    /// a log could not be read).
    Done { values: BTreeMap<String, String>, refused: Vec<String>, missing: Vec<String>, why_missing: Vec<String> },
}

/// The results of the stopped `task`, from the logs read for it (`view.results`), in the order of
/// `spec.results.containers` (a later container's value of a name wins).
pub fn collect(view: &RunView, task: &TaskSnapshot, now: Timestamp) -> Collected {
    let Some(asked) = view.spec.results.as_ref() else {
        return Collected::Done {
            values: BTreeMap::new(),
            refused: Vec::new(),
            missing: Vec::new(),
            why_missing: Vec::new(),
        };
    };
    let stopped_for = task.stopped_at.map_or(Duration::MAX, |at| duration_between(at, now));
    let mut values = BTreeMap::new();
    let mut refused = Vec::new();
    let mut why_missing = Vec::new();
    if !view.results_allowed {
        why_missing.push("results are turned off for this namespace by its EcsRunPolicies".to_owned());
    }
    // Whether a log that was read may yet show more: a stream that cannot be named never will.
    let mut may_grow = false;
    for container in asked.containers.iter().filter(|_| view.results_allowed) {
        match view.results.get(&task.task_arn, container) {
            Some(ResultLog::Lines(lines)) => {
                let parsed = parse(lines, results_budget(view.spec.count));
                refused.extend(parsed.refused.into_iter().map(|why| format!("{container}: {why}")));
                values.extend(parsed.values);
                may_grow = true;
            }
            Some(ResultLog::NoStream) => may_grow = true,
            Some(ResultLog::Unnamed(why)) => why_missing.push(why.clone()),
            Some(ResultLog::Unreadable(why)) if stopped_for < RESULTS_READ_DEADLINE => {
                let why = format!("cannot read {container}'s log yet: {why}");
                return Collected::Wait { after: UNREADABLE_RETRY, why };
            }
            Some(ResultLog::Unreadable(why)) => why_missing.push(format!("{container}'s log: {why}")),
            // Read by no one this reconcile (a view built without them): read next time.
            None => return Collected::Wait { after: UNREADABLE_RETRY, why: format!("{container}'s log not read") },
        }
    }
    let missing: Vec<String> = asked.required.iter().filter(|name| !values.contains_key(*name)).cloned().collect();
    if !missing.is_empty()
        && may_grow
        && let Some(after) = settling(task, now)
    {
        let why = format!("{} not in the log yet; CloudWatch Logs may still be taking it", missing.join(", "));
        return Collected::Wait { after, why };
    }
    Collected::Done { values, refused, missing, why_missing }
}

/// How long CloudWatch Logs may still be taking the stopped `task`'s last lines, if it may.
pub fn settling(task: &TaskSnapshot, now: Timestamp) -> Option<Duration> {
    let stopped_for = duration_between(task.stopped_at?, now);
    RESULTS_GRACE.checked_sub(stopped_for).filter(|left| !left.is_zero())
}

/// The message a task that succeeded without a required result fails with.
pub fn missing_message(task: &TaskSnapshot, missing: &[String], why_missing: &[String]) -> String {
    let mut message = format!(
        "task {} succeeded but did not publish required result(s) {}",
        task_id(&task.task_arn),
        missing.join(", ")
    );
    if !why_missing.is_empty() {
        message.push_str(&format!(" ({})", why_missing.join("; ")));
    }
    message
}

#[cfg(test)]
mod tests;
