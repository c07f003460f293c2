//! The run as the decision sees it, and what it derives from it: its identity in ECS, poll interval,
//! deadlines, log tails.

use std::time::Duration;

use jiff::Timestamp;

use super::{client_token, duration_between, indexed_started_by, marked_stop_reason, started_by};
use crate::api::{EcsTaskRunSpec, EcsTaskRunStatus, POLL_INTERVAL_MAX, RunReason, StopCause};

/// The run as the decision sees it.
#[derive(Clone, Copy, Debug)]
pub struct RunView<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    pub generation: Option<i64>,
    pub created_at: Timestamp,
    pub spec: &'a EcsTaskRunSpec,
    pub status: &'a EcsTaskRunStatus,
    /// The controller's poll interval for runs that do not set one.
    pub default_poll_interval: Duration,
    /// The task index this view decides (0 for a run of one task). With `count` > 1, `status` is that
    /// index's own (see `batch`).
    pub index: u32,
    /// The most log lines per failed container the namespace's EcsRunPolicies let it read (None: as
    /// the spec asks).
    pub max_tail_lines: Option<u32>,
    /// The install's identity (`--cluster-id`), tagged on every task it launches.
    pub cluster_id: Option<&'a str>,
}

impl RunView<'_> {
    /// Whether the run has several tasks (its status keeps them in `tasks`).
    pub(super) fn indexed(&self) -> bool {
        self.spec.count > 1
    }

    /// startedBy of this view's tasks.
    pub fn started_by(&self) -> String {
        if self.indexed() { indexed_started_by(self.uid, self.index) } else { started_by(self.uid) }
    }

    /// RunTask's clientToken for `attempt` of this view's index (at most 64 characters: a uid is 36).
    pub fn client_token(&self, attempt: i32) -> String {
        if self.indexed() { format!("{}-{}-{attempt}", self.uid, self.index) } else { client_token(self.uid, attempt) }
    }

    /// Log lines read per failed container: what the spec asks, within the policies' cap.
    pub fn tail_lines(&self) -> u32 {
        let asked = self.spec.logs.tail_lines.max(0) as u32;
        self.max_tail_lines.map_or(asked, |most| asked.min(most))
    }

    pub fn poll_interval(&self) -> Duration {
        let every = self.spec.wait.poll_interval.as_ref().and_then(|every| every.get().ok());
        every.unwrap_or(self.default_poll_interval).min(POLL_INTERVAL_MAX)
    }

    /// A duration of the spec that is not one (admission refuses them; one that got past fails the run).
    pub(super) fn invalid_duration(&self) -> Option<String> {
        self.spec.durations().find_map(|(path, value)| Some(format!("{path}: {}", value.get().err()?)))
    }

    /// Whether the run is suspended in its status while its spec no longer asks for it: it resumes now.
    pub(super) fn resuming(&self) -> bool {
        !self.spec.suspend && self.status.task.reason_is(RunReason::Suspended)
    }

    /// Where the timeout counts from: the creation, or the last resume (a Job's suspend restarts it).
    pub(super) fn timeout_from(&self, now: Timestamp) -> Timestamp {
        if self.resuming() {
            return now;
        }
        self.status.resumed_at.as_ref().map_or(self.created_at, |resumed| resumed.0.max(self.created_at))
    }

    /// A timeout that is not a duration is never "no limit": its deadline is where it counts from.
    pub(super) fn deadline(&self, now: Timestamp) -> Option<Timestamp> {
        let timeout = self.spec.wait.timeout.as_ref()?.get().unwrap_or(Duration::ZERO);
        self.timeout_from(now).checked_add(timeout).ok()
    }

    pub(super) fn deadline_passed(&self, now: Timestamp) -> bool {
        self.deadline(now).is_some_and(|deadline| now >= deadline)
    }

    /// Time left until the deadline, if there is one.
    pub(super) fn until_deadline(&self, now: Timestamp) -> Option<Duration> {
        self.deadline(now).map(|deadline| duration_between(now, deadline))
    }

    /// When a task launched at `launched_at` must be RUNNING by (`wait.startTimeout`).
    pub(super) fn start_deadline(&self, launched_at: Timestamp) -> Option<Timestamp> {
        let limit = self.spec.wait.start_timeout.as_ref()?.get().unwrap_or(Duration::ZERO);
        launched_at.checked_add(limit).ok()
    }

    /// When a run following a task must look again whatever the tracker reports (it reports changes
    /// only): at the deadline, or at the start deadline of a task launched at `launched_at` that has not
    /// started, whichever comes first.
    pub(super) fn look_again(&self, now: Timestamp, launched_at: Option<Timestamp>, started: bool) -> Option<Duration> {
        let start = launched_at.filter(|_| !started).and_then(|at| self.start_deadline(at));
        let until_start = start.map(|deadline| duration_between(now, deadline));
        [self.until_deadline(now), until_start].into_iter().flatten().min()
    }

    /// A run that follows a task started elsewhere (`spec.taskArn`): it never launches one.
    pub fn adopts(&self) -> bool {
        self.spec.task_arn.is_some()
    }

    /// The StopTask reason for a stop of `cause`: the spec's `stopReason`, else ecsrun's own words (`why`),
    /// followed by the cause's marker.
    pub(super) fn stop_reason(&self, cause: StopCause, why: &str) -> String {
        let text = self
            .spec
            .stop_reason
            .clone()
            .unwrap_or_else(|| format!("ecsrun: {why} ({}/{})", self.namespace, self.name));
        marked_stop_reason(&text, cause)
    }
}
