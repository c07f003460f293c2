//! How failed attempts are retried: `backoffLimit`, failFast and its budget, and rules on exit codes, stop
//! codes and stopped reasons.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::describe::Describe;

fn default_true() -> bool {
    true
}

/// Retries of failed attempts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.maxFailedIndexes) || (has(self.failFast) && !self.failFast)")
        .message("maxFailedIndexes needs failFast: false (failFast stops at the first failed task)")
)]
pub struct RetryPolicy {
    /// Failed attempts relaunched (with exponential backoff) before the run fails, counted per task index
    /// (as Heimdall's max_fail_count). Capacity shortages, tasks that failed to start for transient
    /// reasons and Spot interruptions are retried without counting.
    #[serde(default)]
    #[schemars(range(min = 0, max = 20))]
    pub backoff_limit: i32,
    /// The wait before the first retry, doubled for each failed attempt after it, up to 5 minutes, as a
    /// duration such as `30s` (1s to 5m). Absent: 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('5m')")
        .message("backoff must be between 1s and 5m"))]
    pub backoff: Option<crate::GoDuration>,
    /// With `count` > 1: once one task has used up its retries (or a FailRun rule matched), stop the
    /// others, launch no more, and fail the run. False: the other tasks run to their end first.
    #[serde(default = "default_true")]
    pub fail_fast: bool,
    /// With `count` > 1 and `failFast: false`: once more than this many tasks have failed for good, the
    /// others are stopped, nothing more launches, and the run fails (Job's `maxFailedIndexes`). Absent:
    /// every task runs to its end. However many fail, the run fails at its end unless `tasksToSucceed`
    /// was reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_failed_indexes: Option<i32>,
    /// What a failed attempt means, as a Job's podFailurePolicy and AWS Batch's evaluateOnExit: the first
    /// rule that matches the attempt's exit codes, stop code and stopped reason decides (FailRun, Ignore
    /// or Count). No match: ecsrun's own judgement (capacity shortages, transient start failures and Spot
    /// interruptions retried without counting; anything else counted against `backoffLimit`). Rules are
    /// read only for failed attempts: a task judged successful stays so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub rules: Vec<RetryRule>,
}

/// One rule on a failed attempt: it matches when every condition it sets holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("has(self.onExitCodes) || has(self.onStopCodes) || has(self.onStoppedReason)")
        .message("a rule needs onExitCodes, onStopCodes or onStoppedReason")
)]
pub struct RetryRule {
    /// `FailRun`: the run fails at once, without retrying. `Ignore`: retried without counting against
    /// `backoffLimit` (at most 10 such retries). `Count`: counted against `backoffLimit`, even for what
    /// ecsrun would retry freely (a Spot interruption, say).
    pub action: RetryRuleAction,
    /// Exit codes of the containers `successPolicy` judges that exited non-zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exit_codes: Option<ExitCodeMatch>,
    /// The task's ECS stop code is one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 6))]
    #[x_kube(validation = Rule::new("self.all(c, self.exists_one(d, d == c))").message("onStopCodes must not repeat"))]
    pub on_stop_codes: Vec<StopCode>,
    /// The task's stoppedReason matches this pattern, case aside: `*` stands for any run of characters and
    /// `?` for one, e.g. `*Timeout waiting for network interface*` or `CannotPullContainerError:*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub on_stopped_reason: Option<String>,
}

/// ECS's stop codes (a task's `stopCode`).
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    JsonSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
pub enum StopCode {
    /// The task never started: capacity, image pulls, ENIs, secrets.
    TaskFailedToStart,
    /// An essential container exited.
    EssentialContainerExited,
    /// Someone (or ecsrun) called StopTask.
    UserInitiated,
    /// Fargate Spot took its capacity back.
    SpotInterruption,
    /// The container instance or Fargate host is being retired.
    TerminationNotice,
    /// ECS's service scheduler stopped it.
    ServiceSchedulerInitiated,
}

impl RetryPolicy {
    /// Its durations that are set, by path.
    pub fn durations(&self) -> impl Iterator<Item = (&'static str, &crate::GoDuration)> {
        self.backoff.as_ref().map(|backoff| ("spec.retryPolicy.backoff", backoff)).into_iter()
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { backoff_limit: 0, backoff: None, fail_fast: true, max_failed_indexes: None, rules: Vec::new() }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RetryRuleAction {
    FailRun,
    Ignore,
    Count,
}

/// Exit codes of the judged containers that exited non-zero: the rule matches when at least one of them
/// is `In` (or `NotIn`) `values`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("self.operator != 'In' || !(0 in self.values)")
        .message("exit code 0 is a success: it cannot be In a rule's values"),
    validation = Rule::new("self.values.all(v, self.values.exists_one(w, w == v))")
        .message("values must not repeat")
)]
pub struct ExitCodeMatch {
    /// Only this container's exit code; absent: any judged container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub container_name: Option<String>,
    /// `In`: matches an exit code among `values`; `NotIn`: a non-zero exit code not among them.
    pub operator: ExitCodeOperator,
    /// Exit codes (1-64 of them, each 0-255).
    #[schemars(length(min = 1, max = 64), inner(range(min = 0, max = 255)))]
    #[schemars(transform = Describe("/items", "An exit code, 0-255."))]
    pub values: Vec<i32>,
}

/// How `values` are compared with the exit codes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ExitCodeOperator {
    In,
    NotIn,
}
