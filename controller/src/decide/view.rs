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
    /// Whether Kueue lets the run have tasks now (a queued run), as the shell read its Workload.
    pub admission: &'a Admission,
    /// Whether the namespace's EcsRunPolicies let the run read its tasks' results.
    pub results_allowed: bool,
    /// The result logs read for this reconcile's stopped tasks (`results::reads`).
    pub results: &'a super::results::ResultLogs,
}

/// Whether Kueue lets a queued run (`kueue.x-k8s.io/queue-name`) have tasks now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Admission {
    /// The run is not queued: it launches as its spec says.
    #[default]
    NotQueued,
    /// Kueue admitted the run's Workload.
    Admitted,
    /// The run is queued and holds no admission (not admitted yet, or evicted): no task may run. The
    /// message says why, in Kueue's words where it gave some.
    Waiting(String),
}

/// Why a run may have no task now, whatever its tasks are doing: it is suspended or waits in a queue.
/// Either way nothing launches, tasks running are stopped, and neither counts as a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold<'a> {
    /// `spec.suspend` is set.
    Suspended,
    /// Queued, without Kueue's admission (`message` says why).
    Queued(&'a str),
}

impl Hold<'_> {
    /// The run's reason while held.
    pub fn reason(self) -> RunReason {
        match self {
            Hold::Suspended => RunReason::Suspended,
            Hold::Queued(_) => RunReason::Queued,
        }
    }

    /// The outcome of an attempt the hold ended, and the reason of a run stopping its tasks for it.
    pub fn outcome(self) -> RunReason {
        match self {
            Hold::Suspended => RunReason::Suspended,
            Hold::Queued(_) => RunReason::Evicted,
        }
    }

    /// The cause marked on the StopTask of a task the hold stops.
    pub fn stop_cause(self) -> StopCause {
        match self {
            Hold::Suspended => StopCause::Suspended,
            Hold::Queued(_) => StopCause::Evicted,
        }
    }

    /// Why, in the StopTask reason's own words.
    pub fn stop_why(self) -> &'static str {
        match self {
            Hold::Suspended => "run suspended",
            Hold::Queued(_) => "evicted by Kueue",
        }
    }

    /// What holds the run, for its message.
    pub fn describe(self) -> String {
        match self {
            Hold::Suspended => "spec.suspend is set".to_owned(),
            Hold::Queued(why) => format!("waiting for Kueue to admit the run ({why})"),
        }
    }
}

/// Whether an attempt's outcome is a hold's (not a failure of any kind).
pub fn is_hold_outcome(reason: RunReason) -> bool {
    matches!(reason, RunReason::Suspended | RunReason::Evicted)
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

    /// What holds the run now, if anything: a run following a task started elsewhere is never held.
    pub fn hold(&self) -> Option<Hold<'_>> {
        if self.adopts() {
            return None;
        }
        if self.spec.suspend {
            return Some(Hold::Suspended);
        }
        match self.admission {
            Admission::Waiting(why) => Some(Hold::Queued(why)),
            Admission::NotQueued | Admission::Admitted => None,
        }
    }

    /// Whether the run is held in its status (suspended or queued) while nothing holds it any more: it
    /// resumes now.
    pub(super) fn resuming(&self) -> bool {
        self.hold().is_none()
            && (self.status.task.reason_is(RunReason::Suspended) || self.status.task.reason_is(RunReason::Queued))
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
