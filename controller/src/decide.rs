//! The whole run policy as pure functions of plain data: what to look at next, and what an observation
//! means for the run (launching, adopting, waiting, judging exit codes, retrying, deadlines, stopping on
//! delete). No I/O and no clock: `now` is an argument, so a table of cases tests every branch.
//!
//! The flow per reconcile: `next_step` says what the shell must observe or do; the shell does it and hands
//! the result to `after_launch` or `after_track`, which return a `Plan` (the new status, a StopTask to send,
//! events, which task to keep following and how often, when to look again regardless of ECS). Deletion goes
//! through `cleanup_step` and `cleanup`.
//!
//! Launching records its intent first (`launch_intent`): only an attempt whose RunTask may already have
//! been sent needs the adoption lookup (ListTasks by startedBy); RunTask's clientToken covers the rest.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{
    Attempt, ContainerOverride, ContainerStatus, EcsTaskRunSpec, EcsTaskRunStatus, EnvVar, LaunchFailure, Phase,
    TaskOverrides, TaskStatus, WaitFor,
};
use crate::ecs::{
    Actor, ContainerDefinitionInfo, EcsError, EcsFailure, LaunchRequest, TaskDefinitionInfo, TaskSnapshot,
};

/// How long a freshly launched task may be unknown to DescribeTasks (ECS is eventually consistent).
pub const MISSING_GRACE: Duration = Duration::from_secs(120);
/// ECS keeps a stopped task describable for at least this long. A task launched longer ago than this
/// that ECS no longer knows may have run to its end: it is not a lost launch.
pub const ECS_REMEMBERS_STOPPED: Duration = Duration::from_secs(3600);
/// The longest poll interval (the CRD allows no more): a task is seen several times within ECS's memory.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(600);
/// Retries that do not count against `backoffLimit` (capacity, interruptions) are still bounded.
pub const MAX_FREE_RETRIES: usize = 10;
const RETRY_BASE: Duration = Duration::from_secs(10);
const RETRY_CAP: Duration = Duration::from_secs(300);
/// While a stop is in progress (deadline), the task is looked at this often at most.
const STOPPING_POLL: Duration = Duration::from_secs(10);

/// Condition types. Ready/Reconciling/Stalled follow kstatus (Flux, Argo CD); Succeeded/Failed serve
/// `kubectl wait --for=condition=...`.
pub mod condition {
    pub const READY: &str = "Ready";
    pub const RECONCILING: &str = "Reconciling";
    pub const STALLED: &str = "Stalled";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const FAILED: &str = "Failed";
}

/// Reasons of attempts and of the run's conditions.
pub mod reason {
    pub const LAUNCHING: &str = "Launching";
    pub const WAITING_TO_RETRY: &str = "WaitingToRetry";
    pub const TASK_STARTING: &str = "TaskStarting";
    pub const TASK_RUNNING: &str = "TaskRunning";
    pub const TASK_STOPPING: &str = "TaskStopping";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
    pub const INSUFFICIENT_CAPACITY: &str = "InsufficientCapacity";
    pub const INTERRUPTED: &str = "Interrupted";
    pub const LAUNCH_FAILED: &str = "LaunchFailed";
    pub const TASK_FAILED_TO_START: &str = "TaskFailedToStart";
    pub const CONTAINER_FAILED: &str = "ContainerFailed";
    pub const CONTAINER_NEVER_RAN: &str = "ContainerNeverRan";
    pub const TASK_LOST: &str = "TaskLost";
    pub const OUTCOME_UNKNOWN: &str = "OutcomeUnknown";
    pub const BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const POLICY_DENIED: &str = "PolicyDenied";
    /// A `retryPolicy.rules` FailRun rule matched the exit codes.
    pub const FAILED_BY_RULE: &str = "FailedByRule";
    /// A `retryPolicy.rules` Ignore rule matched: retried without counting.
    pub const IGNORED_BY_RULE: &str = "IgnoredByRule";
    /// With `count` > 1 and failFast: another task index failed, so this one was stopped or not retried.
    pub const FAIL_FAST: &str = "FailFast";
    /// `spec.stop` was set: the run's tasks were stopped and nothing more launched.
    pub const STOPPED: &str = "Stopped";
    /// ECS does not know the task a run was asked to follow (`spec.taskArn`).
    pub const TASK_NOT_FOUND: &str = "TaskNotFound";
}

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
}

/// What the shell must do before the run can be decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Succeeded or Failed: nothing more to do until the object changes.
    Idle,
    /// Waiting out a retry backoff.
    Wait(Duration),
    /// Launch attempt `attempt`. `may_exist`: its intent was recorded earlier, so RunTask may already
    /// have been sent: look for a task this run started (ListTasks by startedBy) before launching.
    /// Otherwise the shell records the intent (`launch_intent`) before sending RunTask.
    Launch { attempt: i32, may_exist: bool },
    /// Look at the current task as last seen, and keep following it every `every`.
    Track { task_arn: String, every: Duration },
    /// The deadline passed while attempt `attempt`'s RunTask may have gone out unrecorded: look for its
    /// task (ListTasks by startedBy) and hand what was found to `after_find`. Never launch.
    Find { attempt: i32 },
    /// Decided without observing anything (e.g. the deadline passed while no task runs).
    Conclude(Plan),
    /// Describe the task the run follows without having started it (`spec.taskArn`) and hand what was
    /// found to `after_adopt`.
    Adopt { task_arn: String },
}

/// What launching produced.
#[derive(Clone, Debug, PartialEq)]
pub enum LaunchObservation {
    /// A task this run started earlier (found by startedBy, or returned by a clientToken conflict).
    Adopted(TaskSnapshot),
    /// RunTask started a task.
    Started(TaskSnapshot),
    /// RunTask started nothing and said why.
    Failures(Vec<EcsFailure>),
    /// ECS rejected the request for good (unknown cluster or task definition, invalid parameter, access denied).
    Rejected(EcsError),
    /// No EcsRunPolicy of the namespace allows the launch (the message says which rule); nothing was sent.
    Denied(String),
}

/// What following the task produced.
#[derive(Clone, Debug, PartialEq)]
pub enum TrackObservation {
    /// The task as ECS reports it, with the task definition's containers once it has stopped (to tell
    /// essential containers from sidecars).
    Found { task: TaskSnapshot, containers: Option<Vec<ContainerDefinitionInfo>> },
    /// DescribeTasks does not know the task.
    Missing,
    /// The task could not be described (ECS unreachable, throttled, access denied after an IAM change, ...).
    /// The task may well be alive: the run goes on following it and says why it cannot.
    Unobservable(EcsError),
}

/// The decision: the status to write and the effects to carry out.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub status: EcsTaskRunStatus,
    pub stop: Option<StopTask>,
    pub events: Vec<RunEvent>,
    /// The task to keep following; a change ECS reports about it brings the run back. None: follow nothing.
    pub follow: Option<Follow>,
    /// When to look at the run again whatever ECS reports (a deadline, a retry backoff); None: only on
    /// a change.
    pub requeue: Option<Duration>,
    /// Failed containers whose last lines go into the status and the Event (`logs::attach`) before the
    /// status is written.
    pub logs: Vec<LogRead>,
}

/// Follow `task_arn`, describing it every `every`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Follow {
    pub task_arn: String,
    pub every: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopTask {
    pub task_arn: String,
    pub reason: String,
}

/// A Kubernetes Event to publish about the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// ECS identity of a run of one task: startedBy (for ListTasks), the per-attempt clientToken (RunTask
/// idempotency). A run of several tasks gives each index its own (`RunView::started_by`).
pub fn started_by(uid: &str) -> String {
    format!("ecsrun/{uid}")
}

pub fn client_token(uid: &str, attempt: i32) -> String {
    format!("{uid}-{attempt}")
}

/// startedBy of task index `index` of a run of several tasks: ListTasks finds one index's tasks.
pub fn indexed_started_by(uid: &str, index: u32) -> String {
    format!("ecsrun/{uid}/{index}")
}

/// Parses the spec's Go-style durations (`30s`, `2h15m30s`); the CRD's pattern guarantees the shape.
pub fn parse_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text).ok()
}

impl RunView<'_> {
    /// Whether the run has several tasks (its status keeps them in `tasks`).
    fn indexed(&self) -> bool {
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

    pub fn poll_interval(&self) -> Duration {
        let every =
            self.spec.wait.poll_interval.as_deref().and_then(parse_duration).unwrap_or(self.default_poll_interval);
        every.min(MAX_POLL_INTERVAL)
    }

    fn deadline(&self) -> Option<Timestamp> {
        let timeout = parse_duration(self.spec.wait.timeout.as_deref()?)?;
        self.created_at.checked_add(timeout).ok()
    }

    fn deadline_passed(&self, now: Timestamp) -> bool {
        self.deadline().is_some_and(|deadline| now >= deadline)
    }

    /// Time left until the deadline, if there is one.
    fn until_deadline(&self, now: Timestamp) -> Option<Duration> {
        self.deadline().map(|deadline| duration_between(now, deadline))
    }

    /// A run that follows a task started elsewhere (`spec.taskArn`): it never launches one.
    pub fn adopts(&self) -> bool {
        self.spec.task_arn.is_some()
    }

    fn stop_reason(&self, why: &str) -> String {
        self.spec.stop_reason.clone().unwrap_or_else(|| format!("ecsrun: {why} ({}/{})", self.namespace, self.name))
    }
}

/// The attempt in progress: launched or being launched, not yet concluded.
fn current_attempt(status: &TaskStatus) -> Option<&Attempt> {
    status.attempts.last().filter(|attempt| attempt.outcome.is_none())
}

pub fn next_step(view: &RunView, now: Timestamp) -> Step {
    let status = view.status;
    if status.task.phase.is_some_and(Phase::is_terminal) {
        return Step::Idle;
    }
    let current = current_attempt(&status.task);
    if let Some(task_arn) = current.and_then(|attempt| attempt.task_arn.clone()) {
        // A running task is followed even past the deadline: `after_track` stops it and waits for STOPPED.
        let every = if status.task.phase == Some(Phase::Stopping) {
            view.poll_interval().min(STOPPING_POLL)
        } else {
            view.poll_interval()
        };
        return Step::Track { task_arn, every };
    }
    if let Some(task_arn) = view.spec.task_arn.as_ref().filter(|_| status.task.attempts.is_empty()) {
        // Adopted first, even to stop it (the Stop Task action): the stop follows at its first look.
        return Step::Adopt { task_arn: task_arn.clone() };
    }
    if view.spec.stop {
        if let Some(attempt) = current {
            // RunTask may have gone out unrecorded: its task is found (and stopped) before the run ends.
            return Step::Find { attempt: attempt.attempt };
        }
        let message = "no task was running".to_owned();
        return Step::Conclude(conclude(view, status.clone(), Verdict::Fail { reason: reason::STOPPED }, message, now));
    }
    if view.deadline_passed(now) {
        if let Some(attempt) = current {
            // A task may run that only ECS knows of: it is found (and stopped) before the run ends.
            return Step::Find { attempt: attempt.attempt };
        }
        return Step::Conclude(deadline_exceeded(view, now));
    }
    if let Some(next) = &status.task.next_attempt_at
        && now < next.0
    {
        return Step::Wait(duration_between(now, next.0));
    }
    if view.adopts() {
        // Never relaunched (conclude fails its every retry): nothing left to do.
        return Step::Idle;
    }
    match current {
        Some(attempt) => Step::Launch { attempt: attempt.attempt, may_exist: true },
        None => Step::Launch { attempt: bound::attempts_made(&status.task) + 1, may_exist: false },
    }
}

/// After `Step::Adopt`: the task found is followed as attempt 1, as if this run had launched it into
/// `region`; a task ECS does not know fails the run.
pub fn after_adopt(view: &RunView, found: Option<TaskSnapshot>, region: &str, now: Timestamp) -> Plan {
    let mut status = view.status.clone();
    status.region.get_or_insert_with(|| region.to_owned());
    let view = RunView { status: &status, ..*view };
    match found {
        Some(task) => after_launch(&view, 1, LaunchObservation::Adopted(task), now),
        None => {
            let mut status = status.clone();
            push_unlaunched_attempt(&mut status, 1);
            let message = format!(
                "ECS does not know task {} in cluster {} ({region}): check spec.taskArn, spec.cluster and \
                 spec.region (ECS forgets a task about an hour after it stops)",
                view.spec.task_arn.as_deref().unwrap_or_default(),
                view.spec.cluster,
            );
            conclude(&view, status, Verdict::Fail { reason: reason::TASK_NOT_FOUND }, message, now)
        }
    }
}

/// A launch that cannot get through yet (ECS unreachable or throttled, credentials not readable): the
/// run stays Pending and says why, in `reason` and the message, until a retry gets through.
pub fn launch_blocked(view: &RunView, reason: &'static str, why: &str, now: Timestamp) -> EcsTaskRunStatus {
    let mut status = view.status.clone();
    set_phase(view, &mut status, Phase::Pending, reason, format!("cannot launch yet: {why}; retrying"), now);
    status
}

/// The run ends DeadlineExceeded with no task running.
fn deadline_exceeded(view: &RunView, now: Timestamp) -> Plan {
    let message = format!(
        "the run did not finish within its timeout of {}",
        view.spec.wait.timeout.as_deref().unwrap_or_default()
    );
    conclude(view, view.status.clone(), Verdict::Fail { reason: reason::DEADLINE_EXCEEDED }, message, now)
}

/// After `Step::Find`: a task found is adopted (and, the deadline having passed, stopped at the next
/// look); none found ends the run DeadlineExceeded.
pub fn after_find(view: &RunView, attempt: i32, found: Option<TaskSnapshot>, now: Timestamp) -> Plan {
    match found {
        Some(task) => after_launch(view, attempt, LaunchObservation::Adopted(task), now),
        None if view.spec.stop => {
            let message = "no task was running".to_owned();
            conclude(view, view.status.clone(), Verdict::Fail { reason: reason::STOPPED }, message, now)
        }
        None if view.deadline_passed(now) => deadline_exceeded(view, now),
        // A task index looked for because another failed (failFast): it never started.
        None => {
            let message = "no task was started: another task index failed (failFast)".to_owned();
            conclude(view, view.status.clone(), Verdict::Fail { reason: reason::FAIL_FAST }, message, now)
        }
    }
}

/// The status that records, before RunTask is sent, that attempt `attempt` is being launched into
/// `region`: a restart that finds it looks for the task before launching again, and every later call
/// of the run goes to that region.
pub fn launch_intent(view: &RunView, attempt: i32, region: &str, now: Timestamp) -> EcsTaskRunStatus {
    let mut status = view.status.clone();
    status.region.get_or_insert_with(|| region.to_owned());
    push_unlaunched_attempt(&mut status, attempt);
    bound::keep_latest_attempts(&mut status.task, bound::KEPT_ATTEMPTS);
    status.task.next_attempt_at = None;
    let message = format!("launching a task of {} (attempt {attempt})", view.spec.task_definition_name());
    set_phase(view, &mut status, Phase::Pending, reason::LAUNCHING, message, now);
    status
}

/// The RunTask request for `attempt`: the spec, ecsrun's identity, and the run identity injected into
/// every container of the task definition (`task_definition`: its containers, and for a template the
/// revision registered for it).
pub fn launch_request(view: &RunView, attempt: i32, task_definition: &TaskDefinitionInfo) -> LaunchRequest {
    let mut tags: Vec<(String, String)> = view.spec.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    tags.push(("ecsrun.dev/namespace".into(), view.namespace.into()));
    tags.push(("ecsrun.dev/name".into(), view.name.into()));
    tags.push(("ecsrun.dev/uid".into(), view.uid.into()));
    // Which attempt a task belongs to, for people and for checks that every attempt ran exactly once.
    tags.push(("ecsrun.dev/attempt".into(), attempt.to_string()));
    if view.indexed() {
        tags.push(("ecsrun.dev/index".into(), view.index.to_string()));
    }

    let mut overrides = view.spec.overrides.clone().unwrap_or_default();
    if view.spec.inject_run_identity {
        let identity = [
            ("ECSRUN_NAME", view.name.to_owned()),
            ("ECSRUN_NAMESPACE", view.namespace.to_owned()),
            ("ECSRUN_UID", view.uid.to_owned()),
            ("ECSRUN_ATTEMPT", attempt.to_string()),
            ("ECSRUN_TASK_INDEX", view.index.to_string()),
            ("ECSRUN_TASK_COUNT", view.spec.count.to_string()),
        ];
        for container in &task_definition.containers {
            let index = match overrides.container_overrides.iter().position(|o| o.name == container.name) {
                Some(index) => index,
                None => {
                    overrides
                        .container_overrides
                        .push(ContainerOverride { name: container.name.clone(), ..ContainerOverride::default() });
                    overrides.container_overrides.len() - 1
                }
            };
            let environment = &mut overrides.container_overrides[index].environment;
            for (name, value) in &identity {
                // A value the user set explicitly wins.
                if !environment.iter().any(|var| var.name == *name) {
                    environment.push(EnvVar { name: (*name).to_owned(), value: value.clone() });
                }
            }
        }
    }
    LaunchRequest {
        spec: view.spec.clone(),
        // A reference runs as written (a bare family: its latest ACTIVE revision, as ECS resolves it); a
        // template runs the revision registered for it.
        task_definition: view.spec.task_definition.clone().unwrap_or_else(|| task_definition.arn.clone()),
        overrides: (overrides != TaskOverrides::default()).then_some(overrides),
        client_token: view.client_token(attempt),
        started_by: view.started_by(),
        tags,
        actor: Actor { namespace: view.namespace.into(), name: view.name.into() },
    }
}

pub fn after_launch(view: &RunView, attempt: i32, observation: LaunchObservation, now: Timestamp) -> Plan {
    let mut status = view.status.clone();
    match observation {
        LaunchObservation::Started(task) | LaunchObservation::Adopted(task) => {
            status.task.attempts.retain(|a| a.attempt != attempt);
            status.task.attempts.push(Attempt {
                attempt,
                task_arn: Some(task.task_arn.clone()),
                launched_at: Some(Time(task.created_at.unwrap_or(now))),
                ..Attempt::default()
            });
            status.attempt_count = Some(bound::attempts_made(&status.task));
            status.task.next_attempt_at = None;
            status.task.failures.clear();
            record_task(&mut status, &task, None);
            let id = task_id(&task.task_arn);
            let follow = Follow { task_arn: task.task_arn.clone(), every: view.poll_interval() };
            if view.spec.stop && !task.is_stopped() {
                // Adopted to be stopped (or found after the stop was asked), whatever `wait.for` says: the
                // next look stops it, once the cache holds the status written now.
                let message = format!("task {id} (attempt {attempt}) is to be stopped: spec.stop is set");
                set_phase(view, &mut status, Phase::Stopping, reason::STOPPED, message, now);
                return plan(view, status, None, Some(follow), Some(Duration::from_secs(1)));
            }
            if view.spec.wait.for_ == WaitFor::Launched {
                let message = format!("launched task {id} (attempt {attempt})");
                return conclude(view, status, Verdict::Succeeded, message, now);
            }
            if task.is_stopped() {
                // An adopted task that already stopped: judged at once by the next look, which fetches the
                // task definition's containers (which of them are essential).
                let message = format!("adopted task {id} (attempt {attempt}), already STOPPED");
                set_phase(view, &mut status, Phase::Running, reason::TASK_STOPPING, message, now);
                return plan(view, status, None, Some(follow), Some(Duration::ZERO));
            }
            // Judged as any later look would judge it: the tracker reports only changes from here on.
            let last_status = task.last_status.as_deref().unwrap_or("UNKNOWN");
            if view.spec.wait.for_ == WaitFor::Running && (last_status == "RUNNING" || task.started_at.is_some()) {
                let message = format!("task {id} is {last_status} (attempt {attempt})");
                return conclude(view, status, Verdict::Succeeded, message, now);
            }
            let message = format!("task {id} is {last_status} (attempt {attempt})");
            set_phase(view, &mut status, Phase::Running, running_reason(last_status), message, now);
            plan(view, status, None, Some(follow), view.until_deadline(now))
        }
        LaunchObservation::Failures(failures) => {
            let capacity = !failures.is_empty()
                && failures
                    .iter()
                    .all(|f| f.reason.as_deref().is_some_and(|r| r.starts_with("RESOURCE:") || r == "AGENT"));
            let described: Vec<String> = failures
                .iter()
                .map(|f| {
                    let mut text = f.reason.clone().unwrap_or_else(|| "unknown".into());
                    if let Some(detail) = &f.detail {
                        text.push_str(&format!(" ({detail})"));
                    }
                    text
                })
                .collect();
            status.task.failures = failures
                .into_iter()
                .map(|f| LaunchFailure { arn: f.arn, reason: f.reason, detail: f.detail })
                .collect();
            push_unlaunched_attempt(&mut status, attempt);
            let (reason, counted) =
                if capacity { (reason::INSUFFICIENT_CAPACITY, false) } else { (reason::LAUNCH_FAILED, true) };
            let message = format!("RunTask started no task: {}", described.join(", "));
            conclude(view, status, Verdict::Retry { reason, counted }, message, now)
        }
        LaunchObservation::Rejected(error) => {
            push_unlaunched_attempt(&mut status, attempt);
            // AWS's messages do not always say what they refer to ("Unable to describe task definition.").
            let subject = match &view.spec.task_arn {
                Some(task_arn) => format!("task {task_arn}"),
                None => format!("task definition {}", view.spec.task_definition_name()),
            };
            let message = format!(
                "ECS rejected {} of {subject} in cluster {}: {}",
                error.operation, view.spec.cluster, error.message
            );
            conclude(view, status, Verdict::Fail { reason: error.kind.reason() }, message, now)
        }
        LaunchObservation::Denied(message) => {
            push_unlaunched_attempt(&mut status, attempt);
            conclude(view, status, Verdict::Fail { reason: reason::POLICY_DENIED }, message, now)
        }
    }
}

fn push_unlaunched_attempt(status: &mut EcsTaskRunStatus, attempt: i32) {
    status.task.attempts.retain(|a| a.attempt != attempt);
    status.task.attempts.push(Attempt { attempt, ..Attempt::default() });
    status.attempt_count = Some(bound::attempts_made(&status.task));
}

pub fn after_track(view: &RunView, observation: TrackObservation, now: Timestamp) -> Plan {
    let mut status = view.status.clone();
    match observation {
        TrackObservation::Unobservable(error) => {
            // Nothing here can act on the error, and ending the run would abandon a task that may run on:
            // say so, keep following, and carry on as soon as the task can be described again.
            let task_arn =
                current_attempt(&status.task).and_then(|attempt| attempt.task_arn.clone()).unwrap_or_default();
            let every = view.poll_interval();
            let message = format!(
                "cannot describe task {}: {error}; trying again every {}s",
                task_id(&task_arn),
                every.as_secs()
            );
            let phase = status.task.phase.filter(|phase| *phase == Phase::Stopping).unwrap_or(Phase::Running);
            set_phase(view, &mut status, phase, error.kind.reason(), message, now);
            plan(view, status, None, Some(Follow { task_arn, every }), view.until_deadline(now))
        }
        TrackObservation::Missing => {
            let launched_at = current_attempt(&status.task).and_then(|a| a.launched_at.as_ref()).map_or(now, |t| t.0);
            let unknown_for = duration_between(launched_at, now);
            if unknown_for < MISSING_GRACE {
                // Eventual consistency: look again soon, a little later each time.
                let again = (unknown_for / 2).clamp(Duration::from_secs(2), Duration::from_secs(30));
                let every = again.min(view.poll_interval());
                let follow = current_attempt(&status.task)
                    .and_then(|attempt| attempt.task_arn.clone())
                    .map(|task_arn| Follow { task_arn, every });
                return plan(view, status, None, follow, Some(again));
            }
            let id = status.task.task_id.clone().unwrap_or_default();
            if view.spec.stop {
                let message = format!("ECS no longer describes task {id}");
                return conclude(view, status, Verdict::Fail { reason: reason::STOPPED }, message, now);
            }
            if status.task.phase == Some(Phase::Stopping)
                && status.task.reason.as_deref() == Some(reason::DEADLINE_EXCEEDED)
            {
                // The timeout's StopTask went out, and ECS has since forgotten the task.
                let message = format!("timeout exceeded; task {id} was stopped and ECS no longer describes it");
                return conclude(view, status, Verdict::Fail { reason: reason::DEADLINE_EXCEEDED }, message, now);
            }
            if unknown_for >= ECS_REMEMBERS_STOPPED || seen_past_launch(&status) {
                // It may have run to its end and been forgotten (a long outage): relaunching could run the
                // job twice, and failing it could report a success as a failure.
                let last = status.task.last_status.as_deref().unwrap_or("PROVISIONING");
                let message = format!(
                    "ECS no longer describes task {id}, last seen {last}: it may have finished more than an \
                     hour before it was looked at; its outcome is unknown and it is not launched again"
                );
                return conclude(view, status, Verdict::Unknown, message, now);
            }
            let message = format!("ECS no longer describes task {id} (unknown for {}s)", unknown_for.as_secs());
            let verdict = Verdict::Retry { reason: reason::TASK_LOST, counted: true };
            conclude(view, status, verdict, message, now)
        }
        TrackObservation::Found { task, containers } => {
            record_task(&mut status, &task, containers.as_deref());
            let id = task_id(&task.task_arn);
            if task.is_stopped() {
                let (verdict, message) = judge_stopped(view, &task, containers.as_deref(), now);
                let failed = !matches!(verdict, Verdict::Succeeded | Verdict::Unknown);
                let mut plan = conclude(view, status, verdict, message, now);
                if failed && !view.spec.stop {
                    plan.logs = log_reads(view, &task, containers.as_deref());
                }
                return plan;
            }
            if view.spec.stop {
                let stop = (task.desired_status.as_deref() != Some("STOPPED"))
                    .then(|| StopTask { task_arn: task.task_arn.clone(), reason: view.stop_reason("stop requested") });
                let message = format!("stopping task {id}: spec.stop is set");
                set_phase(view, &mut status, Phase::Stopping, reason::STOPPED, message, now);
                let follow = Follow { task_arn: task.task_arn.clone(), every: view.poll_interval().min(STOPPING_POLL) };
                return plan(view, status, stop, Some(follow), None);
            }
            if view.deadline_passed(now) {
                let stop = (task.desired_status.as_deref() != Some("STOPPED")).then(|| StopTask {
                    task_arn: task.task_arn.clone(),
                    reason: view.stop_reason("timeout exceeded"),
                });
                let message = format!(
                    "timeout of {} exceeded; stopping task {id}",
                    view.spec.wait.timeout.as_deref().unwrap_or_default()
                );
                set_phase(view, &mut status, Phase::Stopping, reason::DEADLINE_EXCEEDED, message, now);
                let follow = Follow { task_arn: task.task_arn.clone(), every: view.poll_interval().min(STOPPING_POLL) };
                return plan(view, status, stop, Some(follow), None);
            }
            let last_status = task.last_status.as_deref().unwrap_or("UNKNOWN");
            let attempt = current_attempt(&status.task).map_or(1, |a| a.attempt);
            if view.spec.wait.for_ == WaitFor::Running && (last_status == "RUNNING" || task.started_at.is_some()) {
                let message = format!("task {id} is {last_status} (attempt {attempt})");
                return conclude(view, status, Verdict::Succeeded, message, now);
            }
            let message = format!("task {id} is {last_status} (attempt {attempt})");
            set_phase(view, &mut status, Phase::Running, running_reason(last_status), message, now);
            let follow = Follow { task_arn: task.task_arn.clone(), every: view.poll_interval() };
            plan(view, status, None, Some(follow), view.until_deadline(now))
        }
    }
}

/// The reason of a run whose task has not stopped, by the task's lastStatus.
fn running_reason(last_status: &str) -> &'static str {
    match last_status {
        "RUNNING" => reason::TASK_RUNNING,
        "DEACTIVATING" | "STOPPING" | "DEPROVISIONING" => reason::TASK_STOPPING,
        _ => reason::TASK_STARTING,
    }
}

/// Whether ECS described the task after RunTask answered: it then certainly existed, and MISSING means
/// forgotten, not lost.
fn seen_past_launch(status: &EcsTaskRunStatus) -> bool {
    status.task.started_at.is_some()
        || !matches!(status.task.last_status.as_deref(), None | Some("PROVISIONING" | "PENDING"))
}

/// Ends the current attempt with `verdict` and decides the run: succeeded, failed, or retry after a backoff.
fn conclude(view: &RunView, mut status: EcsTaskRunStatus, verdict: Verdict, message: String, now: Timestamp) -> Plan {
    // A stopped run fails as stopped, whatever its task's exit codes say (143: the SIGTERM it was sent);
    // a task that succeeded before the stop reached it keeps its success. An adopted task is never
    // relaunched: ecsrun did not start it.
    let (verdict, message) = match verdict {
        Verdict::Retry { .. } | Verdict::Fail { .. } if view.spec.stop => {
            (Verdict::Fail { reason: reason::STOPPED }, format!("stopped (spec.stop): {message}"))
        }
        Verdict::Retry { reason, .. } if view.adopts() => {
            (Verdict::Fail { reason }, format!("{message}; not relaunched: ecsrun did not start this task"))
        }
        verdict => (verdict, message),
    };
    let outcome = match verdict {
        Verdict::Succeeded => reason::SUCCEEDED,
        Verdict::Unknown => reason::OUTCOME_UNKNOWN,
        Verdict::Retry { reason, .. } | Verdict::Fail { reason } => reason,
    };
    if let Some(attempt) = status.task.attempts.last_mut()
        && attempt.outcome.is_none()
    {
        attempt.outcome = Some(outcome.to_owned());
        attempt.message = Some(bound::capped(&message, bound::MAX_MESSAGE_BYTES).to_owned());
    }
    status.task.next_attempt_at = None;
    match verdict {
        Verdict::Succeeded => {
            set_phase(view, &mut status, Phase::Succeeded, reason::SUCCEEDED, message, now);
            plan(view, status, None, None, None)
        }
        Verdict::Fail { reason } => {
            set_phase(view, &mut status, Phase::Failed, reason, message, now);
            plan(view, status, None, None, None)
        }
        Verdict::Unknown => {
            set_phase(view, &mut status, Phase::Unknown, reason::OUTCOME_UNKNOWN, message, now);
            plan(view, status, None, None, None)
        }
        Verdict::Retry { reason, counted } => {
            let tally = bound::failures(&status.task);
            let limit = view.spec.retry_policy.backoff_limit.max(0) as usize;
            if counted && tally.counted() > limit {
                let message = format!(
                    "{message}; giving up after {} attempt(s) (backoffLimit {limit})",
                    bound::attempts_made(&status.task)
                );
                let final_reason = if limit == 0 { reason } else { reason::BACKOFF_LIMIT_EXCEEDED };
                set_phase(view, &mut status, Phase::Failed, final_reason, message, now);
                return plan(view, status, None, None, None);
            }
            if !counted && tally.uncounted > MAX_FREE_RETRIES {
                let message = format!("{message}; giving up after {} retries of this kind", tally.uncounted);
                set_phase(view, &mut status, Phase::Failed, reason, message, now);
                return plan(view, status, None, None, None);
            }
            let backoff = retry_backoff(tally.failed);
            let next = now.checked_add(backoff).unwrap_or(now);
            status.task.next_attempt_at = Some(Time(next));
            let message =
                format!("{message}; attempt {} in {}s", bound::attempts_made(&status.task) + 1, backoff.as_secs());
            set_phase(view, &mut status, Phase::Pending, reason::WAITING_TO_RETRY, message, now);
            plan(view, status, None, None, Some(backoff))
        }
    }
}

/// 10s, 20s, 40s, ... capped at 5 minutes, by the number of failed attempts so far.
pub fn retry_backoff(failed_attempts: usize) -> Duration {
    let exponent = failed_attempts.saturating_sub(1).min(16) as u32;
    RETRY_BASE.saturating_mul(2u32.saturating_pow(exponent)).min(RETRY_CAP)
}

/// Mirrors what ECS reports about the task into the status and the current attempt.
fn record_task(status: &mut EcsTaskRunStatus, task: &TaskSnapshot, definition: Option<&[ContainerDefinitionInfo]>) {
    let containers: Vec<ContainerStatus> = task
        .containers
        .iter()
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            exit_code: c.exit_code,
            reason: c.reason.clone(),
            last_status: c.last_status.clone(),
            essential: definition.map(|_| is_essential(definition, &c.name)),
            log_tail: None,
            log_tail_error: None,
        })
        .collect();
    let exit_codes = task.containers.iter().any(|c| c.exit_code.is_some()).then(|| {
        task.containers
            .iter()
            .map(|c| format!("{}={}", c.name, c.exit_code.map_or("-".into(), |code| code.to_string())))
            .collect::<Vec<_>>()
            .join(",")
    });
    status.task.task_arn = Some(task.task_arn.clone());
    status.task.task_id = Some(task_id(&task.task_arn).to_owned());
    status.cluster_arn = task.cluster_arn.clone().or(status.cluster_arn.take());
    status.task.task_definition_arn = task.task_definition_arn.clone().or(status.task.task_definition_arn.take());
    status.task.last_status = task.last_status.clone();
    status.task.desired_status = task.desired_status.clone();
    status.task.stop_code = task.stop_code.clone();
    status.task.stopped_reason = task.stopped_reason.clone();
    status.task.containers = containers;
    status.task.exit_codes = exit_codes.clone();
    status.task.created_at = task.created_at.map(Time);
    status.task.started_at = task.started_at.map(Time);
    status.task.stopped_at = task.stopped_at.map(Time);
    if let Some(attempt) = status.task.attempts.last_mut()
        && attempt.task_arn.as_deref() == Some(task.task_arn.as_str())
    {
        attempt.stopped_at = task.stopped_at.map(Time);
        attempt.stop_code = task.stop_code.clone();
        attempt.exit_codes = exit_codes;
        attempt.usage = usage::of_task(task);
    }
    status.usage = usage::of_tasks(std::iter::once(&status.task));
}

pub use crate::api::task_id;

/// Sets phase, reason, message and the conditions that go with them. A condition keeps its
/// lastTransitionTime unless its status flips, so repeating a decision writes an identical status.
fn set_phase(
    view: &RunView,
    status: &mut EcsTaskRunStatus,
    phase: Phase,
    reason: &str,
    message: String,
    now: Timestamp,
) {
    use condition::*;
    let message = bound::capped(&message, bound::MAX_MESSAGE_BYTES).to_owned();
    status.task.phase = Some(phase);
    status.task.reason = Some(reason.to_owned());
    status.observed_generation = view.generation;
    // Unknown is metav1.Condition's third status: `kubectl wait --for=condition=Succeeded` (or Failed)
    // does not return for a run whose outcome nobody knows.
    let wanted: Vec<(&str, &str)> = match phase {
        Phase::Succeeded => vec![(READY, "True"), (SUCCEEDED, "True")],
        Phase::Failed => vec![(READY, "False"), (STALLED, "True"), (FAILED, "True")],
        Phase::Unknown => vec![(READY, "False"), (STALLED, "True"), (SUCCEEDED, "Unknown"), (FAILED, "Unknown")],
        Phase::Pending | Phase::Running | Phase::Stopping => {
            vec![(READY, "False"), (RECONCILING, "True")]
        }
    };
    let previous = std::mem::take(&mut status.conditions);
    status.conditions = wanted
        .into_iter()
        .map(|(type_, value)| {
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == type_ && c.status == value)
                .map_or(Time(now), |c| c.last_transition_time.clone());
            Condition {
                type_: type_.to_owned(),
                status: value.to_owned(),
                reason: reason.to_owned(),
                message: message.clone(),
                observed_generation: view.generation,
                last_transition_time,
            }
        })
        .collect();
    status.task.message = Some(message);
}

/// Builds the plan, with one Event per transition between the old and the new status. Every Event is a
/// write to the API server, so a transition that another Event already tells (a launch seen RUNNING, a
/// stop that decides the run) is folded into it.
fn plan(
    view: &RunView,
    mut status: EcsTaskRunStatus,
    stop: Option<StopTask>,
    follow: Option<Follow>,
    requeue: Option<Duration>,
) -> Plan {
    bound::keep_latest_attempts(&mut status.task, bound::KEPT_ATTEMPTS);
    let old = view.status;
    let mut events = Vec::new();
    let normal = |reason, note: String| RunEvent { warning: false, reason, note };
    let launched = status.task.task_arn.is_some() && status.task.task_arn != old.task.task_arn;
    let phase_event = (status.task.phase != old.task.phase || status.task.next_attempt_at != old.task.next_attempt_at)
        && (status.task.phase.is_some_and(Phase::is_terminal)
            || (status.task.phase == Some(Phase::Pending) && status.task.next_attempt_at.is_some()));
    if launched {
        let attempt = status.task.attempts.last().map_or(1, |a| a.attempt);
        let mut note = format!("task {} (attempt {attempt})", status.task.task_id.as_deref().unwrap_or_default());
        if let Some(last_status) = &status.task.last_status {
            note.push_str(&format!(", {last_status}"));
        }
        events.push(normal(if view.adopts() { "Adopted" } else { "Launched" }, note));
    }
    if status.task.last_status != old.task.last_status || launched {
        match status.task.last_status.as_deref() {
            Some("RUNNING") if !launched => events.push(normal(
                "Running",
                format!("task {} is RUNNING", status.task.task_id.as_deref().unwrap_or_default()),
            )),
            Some("STOPPED") if !phase_event => events.push(normal(
                "Stopped",
                format!(
                    "task {} STOPPED: stopCode {} ({}); exit codes {}",
                    status.task.task_id.as_deref().unwrap_or_default(),
                    status.task.stop_code.as_deref().unwrap_or("none"),
                    status
                        .task
                        .stopped_reason
                        .as_deref()
                        .filter(|reason| !reason.is_empty())
                        .unwrap_or("no reason given"),
                    status.task.exit_codes.as_deref().unwrap_or("none"),
                ),
            )),
            _ => {}
        }
    }
    if let Some(stop) = &stop {
        events.push(normal("Stopping", format!("StopTask {}: {}", task_id(&stop.task_arn), stop.reason)));
    }
    if phase_event {
        let message = status.task.message.clone().unwrap_or_default();
        match status.task.phase {
            Some(Phase::Succeeded) => events.push(normal("Succeeded", message)),
            Some(Phase::Failed) => events.push(RunEvent { warning: true, reason: "Failed", note: message }),
            Some(Phase::Unknown) => events.push(RunEvent { warning: true, reason: "OutcomeUnknown", note: message }),
            Some(Phase::Pending) if status.task.next_attempt_at.is_some() => {
                events.push(RunEvent { warning: true, reason: "Retrying", note: message })
            }
            _ => {}
        }
    }
    Plan { status, stop, events, follow, requeue, logs: Vec::new() }
}

fn duration_between(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

pub mod batch;
pub mod bound;
mod cleanup;
mod judge;
pub mod logs;

use judge::{Verdict, is_essential, judge_stopped, log_reads};
pub use logs::LogRead;
pub mod usage;

pub use cleanup::{CleanupPlan, CleanupStep, UNRECORDED_LAUNCH_GRACE, cleanup, cleanup_blocked, cleanup_step};

#[cfg(test)]
mod tests;
