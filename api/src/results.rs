//! Results: short values a task publishes for whatever comes next (a row count, an object key, a
//! version), by printing `::ecsrun-result name=value` lines to its log. ecsrun reads them from CloudWatch
//! Logs once the task has stopped and keeps them in the status, where a pipeline (Tekton, Argo Workflows)
//! or a script reads them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What starts a result line; the rest of the line is `name=value`.
pub const RESULT_LINE_PREFIX: &str = "::ecsrun-result ";
/// At most this many results per task.
pub const MAX_RESULTS: usize = 16;
/// At most this many bytes of names and values per task.
pub const MAX_RESULTS_BYTES: usize = 4096;
/// At most this many bytes of names and values over every index of a run of several tasks: each index
/// has its share (and at most `MAX_RESULTS_BYTES`), so the status stays small.
pub const MAX_RUN_RESULTS_BYTES: usize = 32 * 1024;

/// The bytes of results one task of a run of `count` tasks may publish.
pub fn results_budget(count: i32) -> usize {
    (MAX_RUN_RESULTS_BYTES / count.max(1) as usize).min(MAX_RESULTS_BYTES)
}
/// Only the last this many lines of a container's log are looked at...
pub const MAX_RESULT_LOG_LINES: u32 = 1000;
/// ...and of those, only the last MiB.
pub const MAX_RESULT_LOG_BYTES: usize = 1 << 20;
/// A result's name, as Tekton's: letters, digits, `-`, `_` and `.`, starting and ending with a letter
/// or digit.
pub const RESULT_NAME_PATTERN: &str = r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$";

/// Which containers' logs hold the task's results, and which results must come.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResultsSpec {
    /// Containers whose CloudWatch Logs (awslogs driver, with a stream prefix) are read for
    /// `::ecsrun-result name=value` lines when the task stops, in this order: where two print the same
    /// name, the later container's value wins.
    #[schemars(length(min = 1, max = 10), inner(length(min = 1, max = 255)))]
    #[schemars(transform = crate::describe::Describe("/items", "A container of the task definition."))]
    pub containers: Vec<String>,
    /// Results the task must publish: a task that succeeds without one fails with reason
    /// `ResultMissing` (an attempt counted against `retryPolicy.backoffLimit`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 63), regex(pattern = RESULT_NAME_PATTERN)))]
    #[schemars(transform = crate::describe::Describe("/items", "A result's name."))]
    pub required: Vec<String>,
}

/// Whether `name` may name a result.
pub fn is_result_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: &u8| b.is_ascii_alphanumeric();
    !bytes.is_empty()
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_names_are_tektons() {
        for good in ["rows", "a", "object-key", "v1.2", "row_count", "A9"] {
            assert!(is_result_name(good), "{good}");
        }
        for bad in ["", "-rows", "rows-", "has space", "k=v", "é", "rows.", "_x"] {
            assert!(!is_result_name(bad), "{bad}");
        }
    }
}
