//! The ECS port: the few ECS operations the controller needs, as a small trait over plain data, so the
//! reconcile shell and the decision never see an SDK type. `aws` implements it over aws-sdk-ecs;
//! `limit` keeps any implementation under an account-wide rate ceiling; `fence` refuses to start or stop
//! tasks once this replica may no longer hold the leader Lease; `tracker` follows tasks with batched
//! DescribeTasks sweeps and reports only changes.

pub mod aws;
pub mod fence;
pub mod limit;
mod reasons;
pub mod task_events;
pub mod templates;
#[cfg(test)]
pub mod testing;
pub mod tracker;

use std::fmt;
use std::future::Future;

use jiff::Timestamp;

pub use crate::api::{DesiredStatus, LastStatus, Reported};
use crate::api::{RunReason, Spelled, StopCode};

/// Where a call goes: region, whose credentials, which cluster. Also the DescribeTasks batching key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EcsTarget {
    pub region: String,
    pub identity: Identity,
    pub cluster: String,
}

/// Whose credentials sign the call.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    /// The controller's own identity through aws-config's default chain (env, IRSA, EKS Pod Identity, ...).
    Default,
    /// A role assumed with the controller's own identity; `session` names and tags the STS session that
    /// reads (one per namespace, so runs share clients and DescribeTasks batches).
    AssumeRole { role_arn: String, external_id: Option<String>, session: Session },
    /// Keys read from a Secret (`source`: its namespace/name); the keys are part of the client cache's
    /// key, so a rotated Secret gets a new client and a relabelled one keeps its own.
    Static { source: String, keys: StaticKeys },
}

/// An STS session's name and tags: whom the calls are made for, as CloudTrail shows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Session {
    pub name: String,
    pub tags: Vec<(String, String)>,
}

/// STS session names: at most 64 of `[\w+=,.@-]` (namespace and object names fit the alphabet).
const MAX_SESSION_NAME: usize = 64;

impl Session {
    /// The session a namespace's runs read with: `ecsrun.<namespace>`, tagged with the namespace.
    pub fn for_namespace(namespace: &str) -> Self {
        Self {
            name: truncated(format!("ecsrun.{namespace}")),
            tags: vec![("ecsrun.dev/namespace".into(), namespace.into())],
        }
    }
}

fn truncated(mut name: String) -> String {
    name.truncate(MAX_SESSION_NAME);
    name
}

/// The run a launch or a stop acts for. With an assumed role, RunTask and StopTask get a session of
/// their own, `<namespace>.<name>`, tagged with both, so CloudTrail shows which run acted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Actor {
    pub namespace: String,
    pub name: String,
}

impl Actor {
    pub fn session(&self) -> Session {
        Session {
            name: truncated(format!("{}.{}", self.namespace, self.name)),
            tags: vec![
                ("ecsrun.dev/namespace".into(), self.namespace.clone()),
                ("ecsrun.dev/name".into(), self.name.clone()),
            ],
        }
    }
}

/// Static AWS keys. Debug never prints them.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StaticKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeys").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// The tag of every task ecsrun starts that names its run's namespace.
pub const NAMESPACE_TAG: &str = "ecsrun.dev/namespace";
/// The tag of a task whose run leaves it running when deleted (`deletionPolicy` is immutable, so the
/// launch tells it for good): its value is `Orphan`.
pub const DELETION_POLICY_TAG: &str = "ecsrun.dev/deletion-policy";
/// The tag naming the install (`--cluster-id`) that launched a task: an orphan sweep stops only its own.
pub const CLUSTER_ID_TAG: &str = "ecsrun.dev/cluster-id";

/// A task as DescribeTasks / RunTask reported it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskSnapshot {
    pub task_arn: String,
    pub cluster_arn: Option<String>,
    pub task_definition_arn: Option<String>,
    pub last_status: Option<Reported<LastStatus>>,
    pub desired_status: Option<Reported<DesiredStatus>>,
    pub stop_code: Option<Reported<StopCode>>,
    pub stopped_reason: Option<String>,
    pub created_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub stopped_at: Option<Timestamp>,
    pub containers: Vec<ContainerSnapshot>,
    /// Task-level CPU units and memory (MiB) as ECS reports them, e.g. `256` and `512`.
    pub cpu: Option<String>,
    pub memory: Option<String>,
    /// The capacity provider the task runs on, else its launch type.
    pub capacity_provider: Option<String>,
    /// For a task ecsrun started, the namespace of its run (its `ecsrun.dev/namespace` tag).
    pub started_for_namespace: Option<String>,
    /// ecsrun started it for a run whose deletion leaves it running (`deletionPolicy: Orphan`, its
    /// `ecsrun.dev/deletion-policy` tag): the orphan sweep never stops it.
    pub kept_on_delete: bool,
    /// The install that launched it (its `ecsrun.dev/cluster-id` tag).
    pub started_by_install: Option<String>,
    /// Who started it (`ecsrun/<run uid>[/<index>]` for ecsrun).
    pub started_by: Option<String>,
    /// ECS's version of the task: it rises with every change, in DescribeTasks answers and in task state
    /// change events alike, so the later of two looks is the one with the higher version.
    pub version: Option<i64>,
}

impl TaskSnapshot {
    pub fn is_stopped(&self) -> bool {
        self.last_is(LastStatus::Stopped)
    }

    pub fn last_is(&self, status: LastStatus) -> bool {
        self.last_status.as_ref().is_some_and(|last| last.is(status))
    }

    /// Someone asked ECS to stop it (its desiredStatus is STOPPED), whether or not it has stopped yet.
    pub fn stop_requested(&self) -> bool {
        self.desired_status.as_ref().is_some_and(|desired| desired.is(DesiredStatus::Stopped))
    }

    pub fn stop_code_is(&self, code: StopCode) -> bool {
        self.stop_code.as_ref().is_some_and(|reported| reported.is(code))
    }

    /// Its lastStatus as ECS spelled it, for messages and the run's status.
    pub fn last_status_str(&self) -> Option<&str> {
        self.last_status.as_ref().map(Reported::as_str)
    }
}

/// A container of a task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerSnapshot {
    pub name: String,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub last_status: Option<String>,
}

/// A RunTask / DescribeTasks `failures` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EcsFailure {
    pub arn: Option<String>,
    pub reason: Option<String>,
    pub detail: Option<String>,
}

/// Containers of a task definition revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskDefinitionInfo {
    pub arn: String,
    pub containers: Vec<ContainerDefinitionInfo>,
    /// The namespace whose `taskDefinitionTemplate` registered this revision (its `ecsrun.dev/namespace`
    /// tag beside the template hash), if ecsrun registered it from a template.
    pub registered_by: Option<String>,
    /// The task's size as the task definition gives it (a queued run's Workload asks for it).
    pub size: TaskDefinitionSize,
}

/// A task definition's task-level CPU units and memory (MiB), and each container's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskDefinitionSize {
    pub cpu_units: Option<i64>,
    pub memory_mib: Option<i64>,
    pub containers: Vec<ContainerSize>,
}

/// A container definition's CPU units and memory (its hard limit, else its reservation), in MiB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerSize {
    pub name: String,
    pub cpu_units: Option<i64>,
    pub memory_mib: Option<i64>,
}

/// `family` or `arn:...:task-definition/family`: a reference ECS resolves to the family's latest ACTIVE
/// revision when the task starts, as opposed to a pinned revision (`family:3`).
pub fn is_bare_family(reference: &str) -> bool {
    !task_definition_name(reference).contains(':')
}

/// `family` or `family:revision`, from a task definition reference or ARN.
pub fn task_definition_name(reference: &str) -> &str {
    reference.rsplit_once("task-definition/").map_or(reference, |(_, name)| name)
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerDefinitionInfo {
    pub name: String,
    pub essential: bool,
    /// The container's log configuration, if it has one.
    pub log: Option<LogConfiguration>,
}

/// A container definition's logConfiguration: the driver and, for awslogs, where it writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogConfiguration {
    pub driver: String,
    /// `awslogs-group`.
    pub group: Option<String>,
    /// `awslogs-region`; absent: the task's own region.
    pub region: Option<String>,
    /// `awslogs-stream-prefix`: streams are then named `prefix/container/task-id`.
    pub stream_prefix: Option<String>,
}

/// One CloudWatch Logs stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogStream {
    pub region: String,
    pub group: String,
    pub stream: String,
}

/// Everything RunTask is asked, decided by `decide::launch_request` from the spec.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchRequest {
    /// The run's spec; every RunTask parameter but the task definition and the overrides comes from it
    /// as written.
    pub spec: crate::api::EcsTaskRunSpec,
    /// The task definition to run: the spec's reference, or the revision registered for its template.
    pub task_definition: String,
    /// The overrides to send: the spec's own, plus the injected run identity.
    pub overrides: Option<crate::api::TaskOverrides>,
    pub client_token: String,
    pub started_by: String,
    pub tags: Vec<(String, String)>,
    /// The run launching (names the STS session of an assumed role).
    pub actor: Actor,
    /// How much longer the RunTask may wait (at the rate ceiling) before it is sent: the graces that look
    /// for an unrecorded launch are anchored at its intent, so a RunTask held past this is not sent at all
    /// (`HeldUp`). None: no bound.
    pub send_within: Option<std::time::Duration>,
}

/// What RunTask did.
#[derive(Clone, Debug, PartialEq)]
pub enum RunTaskOutcome {
    /// A task was started (or, with the same clientToken, the one started earlier was returned).
    Started(TaskSnapshot),
    /// No task started; ECS said why (capacity, agent, ...).
    Failures(Vec<EcsFailure>),
    /// The clientToken was used before with different parameters; these tasks were started with it.
    Conflict(Vec<String>),
}

/// Result of DescribeTasks for a set of ARNs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Described {
    pub tasks: Vec<TaskSnapshot>,
    /// ARNs ECS reported as failures (MISSING), or did not mention at all.
    pub missing: Vec<String>,
}

/// What one task lookup found.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskLookup {
    Found(TaskSnapshot),
    Missing,
}

/// One ECS operation and its parameters. Every layer of the port (rate ceiling, fence, adapter, test
/// doubles) handles this one type, so a new operation is a variant here and an arm in the adapter.
#[derive(Clone, Copy, Debug)]
pub enum Request<'a> {
    RunTask(&'a LaunchRequest),
    DescribeTasks(&'a [String]),
    /// Stops a task for `actor`.
    StopTask {
        task_arn: &'a str,
        reason: &'a str,
        actor: &'a Actor,
    },
    /// The tasks `started_by` started, or (None) every task of the cluster (ListTasks, every page).
    ListTasks {
        started_by: Option<&'a str>,
        desired_status: DesiredStatus,
    },
    DescribeTaskDefinition(&'a str),
    /// The newest ACTIVE revision of the template's family tagged `tag` (key, value) whose content is the
    /// template's, if any (ListTaskDefinitions, then DescribeTaskDefinition with its tags, newest first).
    /// A tagged revision that differs from the template is passed over: a tag is no proof.
    FindTaskDefinition {
        template: &'a crate::api::TaskDefinitionTemplate,
        tag: (&'a str, &'a str),
    },
    /// Registers `template` as a new revision with `tags`.
    RegisterTaskDefinition {
        template: &'a crate::api::TaskDefinitionTemplate,
        tags: &'a [(String, String)],
    },
    /// The last `lines` lines of a CloudWatch Logs stream, oldest first (GetLogEvents), read with the
    /// target's identity in the stream's region.
    LogTail {
        stream: &'a LogStream,
        lines: u32,
    },
}

impl Request<'_> {
    /// The AWS operation, for errors and logs.
    pub fn operation(&self) -> &'static str {
        match self {
            Request::RunTask(_) => "RunTask",
            Request::DescribeTasks(_) => "DescribeTasks",
            Request::StopTask { .. } => "StopTask",
            Request::ListTasks { .. } => "ListTasks",
            Request::DescribeTaskDefinition(_) => "DescribeTaskDefinition",
            Request::FindTaskDefinition { .. } => "ListTaskDefinitions",
            Request::RegisterTaskDefinition { .. } => "RegisterTaskDefinition",
            Request::LogTail { .. } => "GetLogEvents",
        }
    }

    /// Whether the request changes what runs in ECS: only a replica holding the leader Lease sends it.
    pub fn acts(&self) -> bool {
        matches!(self, Request::RunTask(_) | Request::StopTask { .. } | Request::RegisterTaskDefinition { .. })
    }
}

/// What a request returned, variant for variant.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    RunTask(RunTaskOutcome),
    DescribeTasks(Described),
    /// The task as ECS reported it; None when ECS no longer knows it.
    StopTask(Option<TaskSnapshot>),
    ListTasks(Vec<String>),
    DescribeTaskDefinition(TaskDefinitionInfo),
    FindTaskDefinition(Option<String>),
    /// The new revision's ARN.
    RegisterTaskDefinition(String),
    LogTail(Vec<String>),
}

/// Unwraps the response variant a typed call expects; any other is a broken port, said as an error
/// rather than a panic.
macro_rules! expect_response {
    ($response:expr, $variant:ident) => {
        match $response? {
            Response::$variant(value) => Ok(value),
            other => Err(EcsError::new(
                EcsErrorKind::Rejected,
                stringify!($variant),
                format!("the ECS port answered {} with {other:?}", stringify!($variant)),
            )),
        }
    };
}

/// The ECS port. Implementations send a `Request` (adding timeouts, metrics and logging per call, or
/// waiting for a ceiling, or refusing); callers use the typed helpers, which send one request each.
pub trait Ecs: Send + Sync + 'static {
    fn send(&self, target: &EcsTarget, request: Request<'_>)
    -> impl Future<Output = Result<Response, EcsError>> + Send;

    /// A task definition already known without a call, if the implementation caches them.
    fn cached_task_definition(&self, _target: &EcsTarget, _task_definition: &str) -> Option<TaskDefinitionInfo> {
        None
    }

    fn run_task(
        &self,
        target: &EcsTarget,
        request: &LaunchRequest,
    ) -> impl Future<Output = Result<RunTaskOutcome, EcsError>> + Send {
        async move { expect_response!(self.send(target, Request::RunTask(request)).await, RunTask) }
    }

    fn describe_tasks(
        &self,
        target: &EcsTarget,
        task_arns: &[String],
    ) -> impl Future<Output = Result<Described, EcsError>> + Send {
        async move { expect_response!(self.send(target, Request::DescribeTasks(task_arns)).await, DescribeTasks) }
    }

    /// Stops a task for `actor`; returns it as ECS reported it (None when ECS no longer knows it).
    fn stop_task(
        &self,
        target: &EcsTarget,
        task_arn: &str,
        reason: &str,
        actor: &Actor,
    ) -> impl Future<Output = Result<Option<TaskSnapshot>, EcsError>> + Send {
        async move { expect_response!(self.send(target, Request::StopTask { task_arn, reason, actor }).await, StopTask) }
    }

    fn list_tasks_started_by(
        &self,
        target: &EcsTarget,
        started_by: &str,
        desired_status: DesiredStatus,
    ) -> impl Future<Output = Result<Vec<String>, EcsError>> + Send {
        async move {
            let request = Request::ListTasks { started_by: Some(started_by), desired_status };
            expect_response!(self.send(target, request).await, ListTasks)
        }
    }

    /// Every task of the target's cluster with `desired_status`, whoever started it.
    fn list_cluster_tasks(
        &self,
        target: &EcsTarget,
        desired_status: DesiredStatus,
    ) -> impl Future<Output = Result<Vec<String>, EcsError>> + Send {
        async move {
            let request = Request::ListTasks { started_by: None, desired_status };
            expect_response!(self.send(target, request).await, ListTasks)
        }
    }

    fn describe_task_definition(
        &self,
        target: &EcsTarget,
        task_definition: &str,
    ) -> impl Future<Output = Result<TaskDefinitionInfo, EcsError>> + Send {
        async move {
            expect_response!(
                self.send(target, Request::DescribeTaskDefinition(task_definition)).await,
                DescribeTaskDefinition
            )
        }
    }

    fn find_task_definition(
        &self,
        target: &EcsTarget,
        template: &crate::api::TaskDefinitionTemplate,
        tag: (&str, &str),
    ) -> impl Future<Output = Result<Option<String>, EcsError>> + Send {
        async move {
            expect_response!(self.send(target, Request::FindTaskDefinition { template, tag }).await, FindTaskDefinition)
        }
    }

    fn register_task_definition(
        &self,
        target: &EcsTarget,
        template: &crate::api::TaskDefinitionTemplate,
        tags: &[(String, String)],
    ) -> impl Future<Output = Result<String, EcsError>> + Send {
        async move {
            expect_response!(
                self.send(target, Request::RegisterTaskDefinition { template, tags }).await,
                RegisterTaskDefinition
            )
        }
    }

    fn log_tail(
        &self,
        target: &EcsTarget,
        stream: &LogStream,
        lines: u32,
    ) -> impl Future<Output = Result<Vec<String>, EcsError>> + Send {
        async move { expect_response!(self.send(target, Request::LogTail { stream, lines }).await, LogTail) }
    }
}

/// Why an ECS call failed, classified for retry policy, conditions and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EcsErrorKind {
    Throttled,
    Server,
    Network,
    Timeout,
    Credentials,
    ClusterNotFound,
    TaskDefinitionNotFound,
    InvalidParameter,
    AccessDenied,
    Rejected,
    /// CloudWatch Logs has no such log group or stream (the container printed nothing).
    LogStreamNotFound,
    /// Not sent: this replica may have lost the leader Lease (see `fence`).
    NotLeader,
    /// Not sent: the rate ceiling held the RunTask past its launch intent's bound (`send_within`).
    HeldUp,
}

impl EcsErrorKind {
    /// Stable label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Throttled => "throttled",
            Self::Server => "server_error",
            Self::Network => "network_error",
            Self::Timeout => "timeout",
            Self::Credentials => "credentials",
            Self::ClusterNotFound => "cluster_not_found",
            Self::TaskDefinitionNotFound => "task_definition_not_found",
            Self::InvalidParameter => "invalid_parameter",
            Self::AccessDenied => "access_denied",
            Self::Rejected => "rejected",
            Self::LogStreamNotFound => "log_stream_not_found",
            Self::NotLeader => "not_leader",
            Self::HeldUp => "held_up",
        }
    }

    /// PascalCase reason for conditions and events.
    pub fn reason(self) -> &'static str {
        if let Some(reason) = self.rejection() {
            return reason.spelling();
        }
        match self {
            Self::Throttled => "Throttled",
            Self::Server => "EcsServerError",
            Self::Network => "NetworkError",
            Self::Timeout => "Timeout",
            Self::Credentials => "CredentialsError",
            Self::NotLeader => "NotLeader",
            Self::HeldUp => "LaunchHeldUp",
            Self::LogStreamNotFound => "LogStreamNotFound",
            Self::ClusterNotFound
            | Self::TaskDefinitionNotFound
            | Self::InvalidParameter
            | Self::AccessDenied
            | Self::Rejected => "RejectedByEcs",
        }
    }

    /// A permanent error will not go away by retrying the same request: the run fails with this reason
    /// instead of looping.
    pub fn rejection(self) -> Option<RunReason> {
        match self {
            Self::ClusterNotFound => Some(RunReason::ClusterNotFound),
            Self::TaskDefinitionNotFound => Some(RunReason::TaskDefinitionNotFound),
            Self::InvalidParameter => Some(RunReason::InvalidParameter),
            Self::AccessDenied => Some(RunReason::AccessDenied),
            Self::Rejected => Some(RunReason::RejectedByEcs),
            _ => None,
        }
    }

    pub fn is_permanent(self) -> bool {
        self.rejection().is_some()
    }
}

/// An ECS call that failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ECS {operation} failed ({}): {message}", kind.label())]
pub struct EcsError {
    pub kind: EcsErrorKind,
    pub operation: &'static str,
    pub message: String,
}

impl EcsError {
    pub fn new(kind: EcsErrorKind, operation: &'static str, message: impl Into<String>) -> Self {
        Self { kind, operation, message: message.into() }
    }
}
