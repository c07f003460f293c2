//! The Kubernetes shell around `decide`: one `finalizer()` call per reconcile with Apply and Cleanup as
//! separate functions, observation (what the tracker last saw; ListTasks only where a launch may have
//! gone unrecorded), effects (RunTask, StopTask, following a task), the status write (server-side apply,
//! one field manager), Events and the error policy. It makes no policy decisions of its own.
//!
//! Runs come back to the queue when their object changes, when the tracker reports a change of their
//! task, or at a time the decision asked for (deadline, retry backoff); never to poll ECS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Client, Resource, ResourceExt};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::api::{EcsTaskRun, EcsTaskRunStatus, FINALIZER, SuccessPolicy};
use crate::decide::{self, LaunchObservation, Plan, RunView, Step, TrackObservation};
use crate::ecs::templates::TemplateRegistry;
use crate::ecs::tracker::{Observation, Tracker};
use crate::ecs::{
    Actor, DesiredStatus, Ecs, EcsError, EcsErrorKind, EcsTarget, Identity, RunTaskOutcome, Session, StaticKeys,
    TaskLookup, TaskSnapshot,
};
use crate::events::Publisher;
use crate::metrics::Metrics;
use crate::tenancy::{Gate, Tenancy};

/// How the tracker knows a run.
pub type RunKey = ObjectRef<EcsTaskRun>;

/// A run following a task comes back at least this often even if the tracker reports nothing: a cheap
/// safety net (it reads the tracker, not ECS).
const FOLLOW_RESYNC: Duration = Duration::from_secs(15 * 60);
/// How soon a run that just sent StopTask reads the task again.
const STOP_RECHECK: Duration = Duration::from_secs(2);

/// The one field manager that owns `.status`.
pub const FIELD_MANAGER: &str = "ecsrun-controller";

/// Errors of the reconcile shell. `label()` is stable: it names the metric series and log field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error(transparent)]
    Ecs(#[from] EcsError),
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("no AWS region: set spec.region, or the controller's --default-region / AWS_REGION")]
    NoRegion,
    #[error("waiting for {0} task(s) to reach STOPPED before releasing the object")]
    WaitingForStop(usize),
    #[error("object has no {0}")]
    MissingMetadata(&'static str),
    #[error("reconcile did not finish within {0:?}")]
    Timeout(Duration),
    #[error("namespace {0} is not in the controller's cache yet; its EcsRunPolicies are checked once it is")]
    NamespaceNotSeen(String),
}

impl Error {
    /// The error itself, without the finalizer helper's wrapping.
    fn inner(&self) -> &Error {
        match self {
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(error)
                | kube::runtime::finalizer::Error::CleanupFailed(error) => error.inner(),
                _ => self,
            },
            _ => self,
        }
    }

    pub fn label(&self) -> &'static str {
        match self.inner() {
            Error::Kube(_) => "kube_api",
            Error::Finalizer(_) => "finalizer",
            Error::Ecs(error) => error.kind.label(),
            Error::Credentials(_) => "credentials",
            Error::NoRegion => "no_region",
            Error::WaitingForStop(_) => "waiting_for_stop",
            Error::MissingMetadata(_) => "invalid_object",
            Error::Timeout(_) => "reconcile_timeout",
            Error::NamespaceNotSeen(_) => "namespace_not_seen",
        }
    }

    /// PascalCase reason for status conditions.
    fn reason(&self) -> &'static str {
        match self.inner() {
            Error::Kube(_) => "KubernetesApiError",
            Error::Finalizer(_) => "FinalizerError",
            Error::Ecs(error) => error.kind.reason(),
            Error::Credentials(_) => "CredentialsError",
            Error::NoRegion => "NoRegion",
            Error::WaitingForStop(_) => "WaitingForStop",
            Error::MissingMetadata(_) => "InvalidObject",
            Error::Timeout(_) => "ReconcileTimeout",
            Error::NamespaceNotSeen(_) => "NamespaceNotSeen",
        }
    }

    /// The error for people to read.
    fn cause(&self) -> String {
        match self.inner() {
            Error::Finalizer(inner) => inner.to_string(),
            other => other.to_string(),
        }
    }

    fn is_throttle(&self) -> bool {
        self.label() == EcsErrorKind::Throttled.label()
    }
}

/// Controller-wide settings the shell needs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub default_region: Option<String>,
    pub default_poll_interval: Duration,
    /// How often deletion checks whether the task reached STOPPED.
    pub stop_poll_interval: Duration,
    /// Deadline of one whole reconcile, Kubernetes calls included (ECS calls have their own).
    pub reconcile_timeout: Duration,
    /// How often the tracker checks which tasks are due to be described.
    pub tracker_tick: Duration,
}

pub struct Context<E> {
    pub client: Client,
    pub ecs: Arc<E>,
    pub tracker: Tracker<RunKey, E>,
    pub events: Publisher,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    /// EcsRunPolicies and the external ID of assumed roles.
    pub tenancy: Arc<Tenancy>,
    /// Revisions registered for task definition templates.
    pub templates: TemplateRegistry,
    /// Consecutive failed reconciles per object, for the error backoff; cleared by a good reconcile.
    failures: Mutex<HashMap<ObjectRef<EcsTaskRun>, u32>>,
    /// The identity last read from each secretRef Secret (namespace, name). Deleting a namespace deletes
    /// its Secrets at once, while its runs wait on their finalizers for their tasks to be stopped: those
    /// StopTasks are signed with the credentials last read.
    secret_identities: Mutex<HashMap<(String, String), Identity>>,
}

impl<E: Ecs> Context<E> {
    /// `describe_batch_size`: ARNs per DescribeTasks call of the tracker (100; 1 polls like per-task pollers).
    pub fn new(
        client: Client,
        ecs: Arc<E>,
        describe_batch_size: usize,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        settings: Settings,
        tenancy: Arc<Tenancy>,
    ) -> Self {
        Self {
            tenancy,
            events: Publisher::new(client.clone(), reporter),
            tracker: Tracker::new(ecs.clone(), describe_batch_size),
            client,
            ecs,
            metrics,
            settings,
            failures: Mutex::default(),
            secret_identities: Mutex::default(),
            templates: TemplateRegistry::default(),
        }
    }

    /// Where the run's ECS calls go, with whose credentials.
    async fn target(&self, run: &EcsTaskRun, namespace: &str) -> Result<EcsTarget, Error> {
        let region = region(run, self.settings.default_region.as_deref()).ok_or(Error::NoRegion)?;
        let identity = match &run.spec.credentials {
            None => Identity::Default,
            Some(credentials) => match (&credentials.assume_role_arn, &credentials.secret_ref) {
                // The external ID is the namespace's own unless the run may choose one (the policy gate
                // checks that before any launch). Reads share the namespace's session.
                (Some(role_arn), _) => Identity::AssumeRole {
                    role_arn: role_arn.clone(),
                    external_id: Some(
                        credentials.external_id.clone().unwrap_or_else(|| self.tenancy.external_id(namespace)),
                    ),
                    session: Session::for_namespace(namespace),
                },
                (None, Some(secret)) => {
                    let key = (namespace.to_owned(), secret.name.clone());
                    match self.secret_identity(namespace, &secret.name).await {
                        Ok(identity) => {
                            self.remembered_identities().insert(key, identity.clone());
                            identity
                        }
                        Err(error) => match self.remembered_identities().get(&key) {
                            Some(identity) if run.metadata.deletion_timestamp.is_some() => {
                                warn!(%error, "stopping the deleted run's tasks with the credentials last read");
                                identity.clone()
                            }
                            _ => return Err(error),
                        },
                    }
                }
                // The CRD requires exactly one of the two.
                (None, None) => Identity::Default,
            },
        };
        Ok(EcsTarget { region, identity, cluster: run.spec.cluster.clone() })
    }

    fn remembered_identities(&self) -> MutexGuard<'_, HashMap<(String, String), Identity>> {
        self.secret_identities.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn secret_identity(&self, namespace: &str, name: &str) -> Result<Identity, Error> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = secrets
            .get_opt(name)
            .await
            .map_err(Error::Kube)?
            .ok_or_else(|| Error::Credentials(format!("Secret {namespace}/{name} not found")))?;
        let data = secret.data.unwrap_or_default();
        let field = |key: &str| {
            data.get(key)
                .map(|bytes| String::from_utf8_lossy(&bytes.0).trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let missing = |key: &str| Error::Credentials(format!("Secret {namespace}/{name} has no {key}"));
        Ok(Identity::Static {
            source: format!("{namespace}/{name}@{}", secret.metadata.resource_version.unwrap_or_default()),
            keys: StaticKeys {
                access_key_id: field("AWS_ACCESS_KEY_ID").ok_or_else(|| missing("AWS_ACCESS_KEY_ID"))?,
                secret_access_key: field("AWS_SECRET_ACCESS_KEY").ok_or_else(|| missing("AWS_SECRET_ACCESS_KEY"))?,
                session_token: field("AWS_SESSION_TOKEN"),
            },
        })
    }

    async fn publish(&self, run: &EcsTaskRun, event: &decide::RunEvent) {
        if let Err(error) = self.events.publish(&run.object_ref(&()), event.warning, event.reason, &event.note).await {
            warn!(%error, reason = %event.reason, "could not publish event");
        }
    }
}

/// The run a StopTask acts for.
fn actor(run: &EcsTaskRun) -> Result<Actor, Error> {
    Ok(Actor {
        namespace: run.namespace().ok_or(Error::MissingMetadata("namespace"))?,
        name: run.metadata.name.clone().ok_or(Error::MissingMetadata("name"))?,
    })
}

/// The run's region: where it launched (pinned in status), else its spec's, else the region of the task
/// it adopts, else the controller's default.
fn region(run: &EcsTaskRun, default: Option<&str>) -> Option<String> {
    let pinned = run.status.as_ref().and_then(|status| status.region.clone());
    let adopted = run.spec.task_arn.as_deref().and_then(crate::api::arn_region).map(str::to_owned);
    pinned.or_else(|| run.spec.region.clone()).or(adopted).or_else(|| default.map(str::to_owned))
}

/// Reconciles one `EcsTaskRun`.
pub async fn reconcile<E: Ecs>(run: Arc<EcsTaskRun>, ctx: Arc<Context<E>>) -> Result<Action, Error> {
    let namespace = run.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let span = info_span!("reconcile", namespace = %namespace, name = %run.name_any());
    let started = Instant::now();
    let api: Api<EcsTaskRun> = Api::namespaced(ctx.client.clone(), &namespace);
    let reconciled = finalizer(&api, FINALIZER, run.clone(), |event| async {
        match event {
            Finalizer::Apply(run) => apply(&run, &namespace, &api, &ctx).await,
            Finalizer::Cleanup(run) => {
                let cleaned = cleanup::cleanup(&run, &namespace, &api, &ctx).await;
                if let (Err(error), Some(status)) = (&cleaned, run.status.as_ref()) {
                    record_blocked(&run, &namespace, &api, &ctx, status, error, decide::cleanup_blocked).await;
                }
                cleaned
            }
        }
    })
    .instrument(span);
    // Abandoning a reconcile midway is safe: a task launched but not yet recorded is adopted next time.
    let result = match tokio::time::timeout(ctx.settings.reconcile_timeout, reconciled).await {
        Ok(result) => result.map_err(|error| Error::Finalizer(Box::new(error))),
        Err(_) => Err(Error::Timeout(ctx.settings.reconcile_timeout)),
    };
    let outcome = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics.reconciles.with_label_values(&[outcome]).inc();
    ctx.metrics.reconcile_duration.with_label_values(&[outcome]).observe(started.elapsed().as_secs_f64());
    match &result {
        Ok(_) => {
            ctx.failures.lock().unwrap_or_else(PoisonError::into_inner).remove(&ObjectRef::from_obj(run.as_ref()));
        }
        // Waiting for a task to stop is progress, not a problem.
        Err(Error::WaitingForStop(_)) => {}
        // Retried errors show on the run itself, not only in the controller's log. Repeats of the same
        // note fold into one Event with a count; another cause is an Event of its own.
        Err(error) => {
            let event = decide::RunEvent {
                warning: true,
                reason: "ReconcileError",
                note: format!("{} ({}); retrying with backoff", error.cause(), error.label()),
            };
            ctx.publish(&run, &event).await;
        }
    }
    result
}

/// Requeues a failed reconcile with a per-object exponential backoff (throttles wait longer).
pub fn error_policy<E: Ecs>(run: Arc<EcsTaskRun>, error: &Error, ctx: Arc<Context<E>>) -> Action {
    let label = error.label();
    if label == "waiting_for_stop" {
        debug!(namespace = ?run.namespace(), name = %run.name_any(), %error, "deletion waits for the task to stop");
        return Action::requeue(ctx.settings.stop_poll_interval);
    }
    ctx.metrics.reconcile_errors.with_label_values(&[label]).inc();
    let failures = {
        let mut failures = ctx.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let count = failures.entry(ObjectRef::from_obj(run.as_ref())).or_insert(0);
        *count = count.saturating_add(1);
        *count
    };
    let base = if error.is_throttle() { Duration::from_secs(20) } else { Duration::from_secs(2) };
    let backoff =
        base.saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(10))).min(Duration::from_secs(300));
    warn!(namespace = ?run.namespace(), name = %run.name_any(), error = %error, label, failures, retry_in_s = backoff.as_secs(), "reconcile failed");
    Action::requeue(with_jitter(backoff))
}

/// Spreads requeues by up to 10% so runs created together do not poll together forever.
fn with_jitter(duration: Duration) -> Duration {
    duration.mul_f64(1.0 + rand::random::<f64>() * 0.1)
}

fn view<'a>(
    run: &'a EcsTaskRun,
    namespace: &'a str,
    status: &'a EcsTaskRunStatus,
    settings: &Settings,
) -> Result<RunView<'a>, Error> {
    Ok(RunView {
        namespace,
        name: run.metadata.name.as_deref().ok_or(Error::MissingMetadata("name"))?,
        uid: run.metadata.uid.as_deref().ok_or(Error::MissingMetadata("uid"))?,
        generation: run.metadata.generation,
        created_at: run.metadata.creation_timestamp.as_ref().ok_or(Error::MissingMetadata("creationTimestamp"))?.0,
        spec: &run.spec,
        status,
        default_poll_interval: settings.default_poll_interval,
        index: 0,
    })
}

async fn apply<E: Ecs>(
    run: &EcsTaskRun,
    namespace: &str,
    api: &Api<EcsTaskRun>,
    ctx: &Context<E>,
) -> Result<Action, Error> {
    if run.spec.count > 1 {
        return batch::apply(run, namespace, api, ctx).await;
    }
    let key = ObjectRef::from_obj(run);
    let status = run.status.clone().unwrap_or_default();
    let view = view(run, namespace, &status, &ctx.settings)?;
    let now = Timestamp::now();
    match decide::next_step(&view, now) {
        Step::Idle => {
            ctx.tracker.forget(&key);
            Ok(Action::await_change())
        }
        Step::Wait(remaining) => Ok(Action::requeue(remaining)),
        Step::Conclude(plan) => execute(run, api, ctx, &status, plan, None, None).await,
        Step::Launch { attempt, may_exist } => {
            let mut current = status.clone();
            let launched = launch_step(run, namespace, api, ctx, attempt, may_exist, &mut current).await;
            if let Err(error) = &launched {
                // Retried with backoff; meanwhile the run says why it has not launched.
                record_blocked(run, namespace, api, ctx, &current, error, decide::launch_blocked).await;
            }
            launched
        }
        Step::Adopt { task_arn } => {
            let adopted = adopt_step(run, namespace, api, ctx, &task_arn, &status).await;
            if let Err(error) = &adopted {
                record_blocked(run, namespace, api, ctx, &status, error, decide::launch_blocked).await;
            }
            adopted
        }
        Step::Find { attempt } => {
            let target = ctx.target(run, namespace).await?;
            let found = find_started(&view, &target, ctx).await?;
            let seen = found.clone();
            let plan = decide::after_find(&view, attempt, found, Timestamp::now());
            execute(run, api, ctx, &status, plan, Some(&target), seen).await
        }
        Step::Track { task_arn, every } => {
            let target = ctx.target(run, namespace).await?;
            let Some(observation) = ctx.tracker.observation(&target, &task_arn) else {
                // Not looked at since this replica started reconciling: the next sweep describes it with
                // the others, and its answer brings the run back.
                ctx.tracker.follow(&key, &target, &[task_arn], every);
                return Ok(Action::requeue(FOLLOW_RESYNC));
            };
            let observation = track(&view, observation, &target, ctx).await?;
            let plan = decide::after_track(&view, observation, Timestamp::now());
            execute(run, api, ctx, &status, plan, Some(&target), None).await
        }
    }
}

/// Records the launch intent (unless an earlier try did), then launches or adopts. `current` is the
/// status as written so far.
async fn launch_step<E: Ecs>(
    run: &EcsTaskRun,
    namespace: &str,
    api: &Api<EcsTaskRun>,
    ctx: &Context<E>,
    attempt: i32,
    may_exist: bool,
    current: &mut EcsTaskRunStatus,
) -> Result<Action, Error> {
    let denied = policy_gate(run, namespace, ctx).await?;
    if let (Some(why), false) = (&denied, may_exist) {
        let view = view(run, namespace, current, &ctx.settings)?;
        let plan = decide::after_launch(&view, attempt, LaunchObservation::Denied(why.clone()), Timestamp::now());
        return execute(run, api, ctx, current, plan, None, None).await;
    }
    let target = ctx.target(run, namespace).await?;
    if !may_exist {
        // Recorded before RunTask: a restart that finds it knows the task may exist.
        let view = view(run, namespace, current, &ctx.settings)?;
        let intent = decide::launch_intent(&view, attempt, &target.region, Timestamp::now());
        let written = write_status(api, run, &intent).await?;
        *current = intent;
        // The cache can be behind the API server (a run deleted a moment ago, a fresh replica's first list):
        // the intent write answers with the object as it is. A run being deleted launches nothing; its
        // deletion, which sees the intent, makes sure of it.
        if written.metadata.deletion_timestamp.is_some() {
            info!(attempt, "not launching: the run is being deleted");
            return Ok(Action::requeue(STOP_RECHECK));
        }
    }
    let view = view(run, namespace, current, &ctx.settings)?;
    let observation = launch(&view, attempt, may_exist, &target, ctx, denied).await?;
    let seen = match &observation {
        LaunchObservation::Started(task) | LaunchObservation::Adopted(task) => Some(task.clone()),
        _ => None,
    };
    let plan = decide::after_launch(&view, attempt, observation, Timestamp::now());
    execute(run, api, ctx, current, plan, Some(&target), seen).await
}

/// Follows a task started elsewhere (`spec.taskArn`): the policies must allow the run's region, cluster
/// and credentials as for a launch, then one DescribeTasks finds it.
async fn adopt_step<E: Ecs>(
    run: &EcsTaskRun,
    namespace: &str,
    api: &Api<EcsTaskRun>,
    ctx: &Context<E>,
    task_arn: &str,
    status: &EcsTaskRunStatus,
) -> Result<Action, Error> {
    let view = view(run, namespace, status, &ctx.settings)?;
    if let Some(why) = policy_gate(run, namespace, ctx).await? {
        let plan = decide::after_launch(&view, 1, LaunchObservation::Denied(why), Timestamp::now());
        return execute(run, api, ctx, status, plan, None, None).await;
    }
    let target = ctx.target(run, namespace).await?;
    let found = match ctx.ecs.describe_tasks(&target, &[task_arn.to_owned()]).await {
        Ok(described) => described.tasks.into_iter().find(|task| task.task_arn == task_arn),
        Err(error) if error.kind.is_permanent() => {
            let plan = decide::after_launch(&view, 1, LaunchObservation::Rejected(error), Timestamp::now());
            return execute(run, api, ctx, status, plan, None, None).await;
        }
        Err(error) => return Err(error.into()),
    };
    info!(task_arn, found = found.is_some(), "adopting a task started elsewhere");
    let seen = found.clone();
    let plan = decide::after_adopt(&view, found, &target.region, Timestamp::now());
    execute(run, api, ctx, status, plan, Some(&target), seen).await
}

/// Why the namespace's EcsRunPolicies refuse the run's launch (None: allowed, or audited and told as an
/// Event). Checked before credentials are read: a run refused for its Secret fails whether or not it exists.
async fn policy_gate<E: Ecs>(run: &EcsTaskRun, namespace: &str, ctx: &Context<E>) -> Result<Option<String>, Error> {
    let region = region(run, ctx.settings.default_region.as_deref()).ok_or(Error::NoRegion)?;
    Ok(match ctx.tenancy.gate(namespace, &region, &run.spec) {
        Gate::Allowed => None,
        Gate::NamespaceNotSeen => return Err(Error::NamespaceNotSeen(namespace.to_owned())),
        Gate::Audited(denial) => {
            count_violations(ctx, &denial, "audit");
            let note =
                format!("launched although the EcsRunPolicies do not allow it (audit mode): {}", denial.message());
            ctx.publish(run, &decide::RunEvent { warning: true, reason: "PolicyViolation", note }).await;
            None
        }
        Gate::Denied(denial) => {
            count_violations(ctx, &denial, "enforce");
            Some(denial.message())
        }
    })
}

fn count_violations<E: Ecs>(ctx: &Context<E>, denial: &crate::policy::Denial, mode: &str) {
    for violation in &denial.violations {
        ctx.metrics.policy_violations.with_label_values(&[violation.rule.label(), mode]).inc();
    }
}

/// Launches the attempt, or adopts the task an earlier try of it started. `denied`: the policies refuse a
/// new launch (why); a task an earlier, allowed try started is still adopted.
async fn launch<E: Ecs>(
    view: &RunView<'_>,
    attempt: i32,
    may_exist: bool,
    target: &EcsTarget,
    ctx: &Context<E>,
    denied: Option<String>,
) -> Result<LaunchObservation, Error> {
    // RunTask may have been sent before a crash or a lost status write, and the clientToken only guards
    // 24 hours: adopt what ECS has for this run.
    if may_exist && let Some(task) = find_started(view, target, ctx).await? {
        info!(task_arn = %task.task_arn, attempt, "adopting a task this run started earlier");
        return Ok(LaunchObservation::Adopted(task));
    }
    if let Some(why) = denied {
        info!(attempt, %why, "launch refused by EcsRunPolicy");
        return Ok(LaunchObservation::Denied(why));
    }

    let task_definition = match (&view.spec.task_definition_template, &view.spec.task_definition) {
        (Some(template), _) => ctx.templates.ensure(&*ctx.ecs, target, template).await,
        (None, Some(reference)) if view.spec.inject_run_identity => {
            ctx.ecs.describe_task_definition(target, reference).await
        }
        _ => Ok(Default::default()),
    };
    let task_definition = match task_definition {
        Ok(info) => info,
        // What only ECS judges (a template it refuses, a task definition it does not have) fails the run
        // with ECS's message.
        Err(error) if error.kind.is_permanent() => return Ok(LaunchObservation::Rejected(error)),
        Err(error) => return Err(error.into()),
    };
    let request = decide::launch_request(view, attempt, &task_definition);
    match ctx.ecs.run_task(target, &request).await {
        Ok(RunTaskOutcome::Started(task)) => {
            info!(task_arn = %task.task_arn, attempt, "launched task");
            Ok(LaunchObservation::Started(task))
        }
        Ok(RunTaskOutcome::Failures(failures)) => Ok(LaunchObservation::Failures(failures)),
        Ok(RunTaskOutcome::Conflict(arns)) => match arns.first() {
            Some(arn) => Ok(LaunchObservation::Adopted(describe_or_bare(ctx, target, arn).await?)),
            None => {
                Err(EcsError::new(EcsErrorKind::Rejected, "RunTask", "ConflictException without the conflicting task")
                    .into())
            }
        },
        Err(error) if error.kind.is_permanent() => Ok(LaunchObservation::Rejected(error)),
        Err(error) => Err(error.into()),
    }
}

/// A task ECS has for this run (by startedBy, RUNNING or STOPPED) that its status does not record yet.
async fn find_started<E: Ecs>(
    view: &RunView<'_>,
    target: &EcsTarget,
    ctx: &Context<E>,
) -> Result<Option<TaskSnapshot>, Error> {
    let started_by = view.started_by();
    // ListTasks returns RUNNING tasks unless asked for STOPPED ones.
    let (running, stopped) = tokio::try_join!(
        ctx.ecs.list_tasks_started_by(target, &started_by, DesiredStatus::Running),
        ctx.ecs.list_tasks_started_by(target, &started_by, DesiredStatus::Stopped),
    )
    .or_else(|error| if error.kind.is_permanent() { Ok((Vec::new(), Vec::new())) } else { Err(error) })?;
    let known: Vec<&str> = view.status.task.attempts.iter().filter_map(|a| a.task_arn.as_deref()).collect();
    match running.iter().chain(&stopped).find(|arn| !known.contains(&arn.as_str())) {
        Some(arn) => Ok(Some(describe_or_bare(ctx, target, arn).await?)),
        None => Ok(None),
    }
}

/// The task as ECS describes it, or just its ARN while DescribeTasks does not know it yet.
async fn describe_or_bare<E: Ecs>(ctx: &Context<E>, target: &EcsTarget, arn: &str) -> Result<TaskSnapshot, Error> {
    let described = ctx.ecs.describe_tasks(target, &[arn.to_owned()]).await?;
    Ok(described
        .tasks
        .into_iter()
        .find(|task| task.task_arn == arn)
        .unwrap_or_else(|| TaskSnapshot { task_arn: arn.to_owned(), ..TaskSnapshot::default() }))
}

/// Turns what the tracker saw into what the decision needs: the task definition's containers once the
/// task stopped (which are essential is only written there).
async fn track<E: Ecs>(
    view: &RunView<'_>,
    observation: Observation,
    target: &EcsTarget,
    ctx: &Context<E>,
) -> Result<TrackObservation, Error> {
    let task = match observation {
        Ok(TaskLookup::Found(task)) => task,
        Ok(TaskLookup::Missing) => return Ok(TrackObservation::Missing),
        Err(error) => return Ok(TrackObservation::Unobservable(error)),
    };
    // Which containers are essential, and where they log (a failed one's last lines are read).
    let wanted = view.spec.success_policy == SuccessPolicy::EssentialContainers || view.spec.logs.tail_lines > 0;
    let containers = match (&task.task_definition_arn, task.is_stopped()) {
        (Some(definition), true) if wanted => match ctx.ecs.describe_task_definition(target, definition).await {
            Ok(info) => Some(info.containers),
            Err(error) if error.kind.is_permanent() => None,
            Err(error) => return Err(error.into()),
        },
        _ => None,
    };
    Ok(TrackObservation::Found { task, containers })
}

/// Carries out a plan. `seen` is the task as RunTask (or adoption) just reported it, so the tracker does
/// not describe it again before an interval has passed.
async fn execute<E: Ecs>(
    run: &EcsTaskRun,
    api: &Api<EcsTaskRun>,
    ctx: &Context<E>,
    old_status: &EcsTaskRunStatus,
    mut plan: Plan,
    target: Option<&EcsTarget>,
    seen: Option<TaskSnapshot>,
) -> Result<Action, Error> {
    let key = ObjectRef::from_obj(run);
    if let Some(target) = target {
        read_logs(ctx, target, &plan.logs, &mut plan.status, &mut plan.events).await;
    }
    match (&plan.follow, target) {
        (Some(follow), Some(target)) => {
            ctx.tracker.follow(&key, target, std::slice::from_ref(&follow.task_arn), follow.every);
            if let Some(task) = &seen {
                ctx.tracker.record(target, task);
            }
        }
        _ => ctx.tracker.forget(&key),
    }
    if let (Some(stop), Some(target)) = (&plan.stop, target)
        && let Some(task) = ctx.ecs.stop_task(target, &stop.task_arn, &stop.reason, &actor(run)?).await?
    {
        ctx.tracker.record(target, &task);
    }
    // StopTask's answer is news the decision has not seen (the task may even be STOPPED already); the
    // tracker takes it without reporting it, so the run looks again shortly, once its status write is
    // back in the cache.
    let requeue = if plan.stop.is_some() { Some(STOP_RECHECK) } else { plan.requeue };
    let written = write_and_tell(run, api, ctx, old_status, &plan.status, &plan.events).await;
    if let (Some(target), Some(task)) = (target, &seen) {
        stop_if_run_is_gone(run, ctx, target, std::slice::from_ref(task), &written).await;
    }
    written?;
    Ok(next_action(requeue, plan.follow.is_some()))
}

/// A run that is gone while the task it just launched (or adopted) was being recorded can never stop that
/// task: its finalizer is gone with it. Whatever let it go (a deletion that raced the launch), the task
/// is stopped here rather than left running unowned.
async fn stop_if_run_is_gone<E: Ecs>(
    run: &EcsTaskRun,
    ctx: &Context<E>,
    target: &EcsTarget,
    tasks: &[TaskSnapshot],
    written: &Result<(), Error>,
) {
    if !matches!(written, Err(Error::Kube(kube::Error::Api(status))) if status.code == 404) {
        return;
    }
    ctx.tracker.forget(&ObjectRef::from_obj(run));
    let reason = format!(
        "ecsrun: EcsTaskRun {}/{} was deleted while its task was launched",
        run.namespace().unwrap_or_default(),
        run.name_any()
    );
    for task in tasks.iter().filter(|task| !task.is_stopped()) {
        let Ok(actor) = actor(run) else { return };
        match ctx.ecs.stop_task(target, &task.task_arn, &reason, &actor).await {
            Ok(_) => {
                warn!(task_arn = %task.task_arn, "the run was gone before its launch was recorded: stopped its task")
            }
            Err(error) => warn!(task_arn = %task.task_arn, %error, "the run is gone and its task could not be stopped"),
        }
    }
}

/// Reads the last lines of the failed containers `reads` names into the status and the Events. Never
/// fails: a stream that cannot be read (no such group, access denied, throttled) says why in the
/// container's status, and the run's outcome stands.
async fn read_logs<E: Ecs>(
    ctx: &Context<E>,
    target: &EcsTarget,
    reads: &[decide::LogRead],
    status: &mut EcsTaskRunStatus,
    events: &mut [decide::RunEvent],
) {
    for read in reads {
        let result = match &read.stream {
            Ok(stream) => ctx.ecs.log_tail(target, stream, read.lines).await.map_err(|error| {
                format!(
                    "cannot read log stream {} in {} ({}): {}",
                    stream.stream, stream.group, stream.region, error.message
                )
            }),
            Err(why) => Err(format!("no log tail: {why}")),
        };
        if let Err(why) = &result {
            debug!(container = %read.container, index = read.index, %why, "failed container's logs not read");
        }
        decide::logs::attach(status, events, read, result);
    }
}

/// Writes the status if it changed, counts a run that just finished, and publishes the Events.
async fn write_and_tell<E: Ecs>(
    run: &EcsTaskRun,
    api: &Api<EcsTaskRun>,
    ctx: &Context<E>,
    old_status: &EcsTaskRunStatus,
    status: &EcsTaskRunStatus,
    events: &[decide::RunEvent],
) -> Result<(), Error> {
    if status != old_status {
        write_status(api, run, status).await?;
        let namespace = run.namespace().unwrap_or_default();
        for used in decide::usage::added(old_status, status) {
            let labels =
                [namespace.as_str(), crate::metrics::capacity_provider_label(used.capacity_provider.as_deref())];
            ctx.metrics.task_vcpu_seconds.with_label_values(&labels).inc_by(used.vcpu_seconds);
            ctx.metrics.task_gib_seconds.with_label_values(&labels).inc_by(used.gib_seconds);
        }
    }
    if status.task.phase != old_status.task.phase
        && let Some(phase) = status.task.phase.filter(|phase| phase.is_terminal())
    {
        let outcome = match phase {
            crate::api::Phase::Succeeded => "succeeded",
            crate::api::Phase::Unknown => "unknown",
            _ => "failed",
        };
        let reason = status.task.reason.as_deref().unwrap_or("unknown");
        ctx.metrics.runs_finished.with_label_values(&[outcome, reason]).inc();
        info!(outcome, reason, message = status.task.message.as_deref().unwrap_or_default(), "run finished");
    }
    for event in events {
        ctx.publish(run, event).await;
    }
    Ok(())
}

/// When the run comes back: as the decision asked, else at the resync while it follows a task.
fn next_action(requeue: Option<Duration>, following: bool) -> Action {
    match (requeue, following) {
        (Some(after), _) => Action::requeue(with_jitter(after)),
        (None, true) => Action::requeue(with_jitter(FOLLOW_RESYNC)),
        (None, false) => Action::await_change(),
    }
}

/// Writes the status by server-side apply; returns the object as the API server now has it.
async fn write_status(api: &Api<EcsTaskRun>, run: &EcsTaskRun, status: &EcsTaskRunStatus) -> Result<EcsTaskRun, Error> {
    let body = serde_json::json!({
        "apiVersion": EcsTaskRun::api_version(&()),
        "kind": EcsTaskRun::kind(&()),
        "status": status,
    });
    api.patch_status(&run.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body))
        .await
        .map_err(Error::Kube)
}

/// A launch or a deletion held up by an error says why in the run's status (`blocked` decides how), not
/// only in an Event. Not for a deletion merely waiting for STOPPED, nor on a replica that may have lost the
/// Lease: the status is the new leader's.
async fn record_blocked<E: Ecs>(
    run: &EcsTaskRun,
    namespace: &str,
    api: &Api<EcsTaskRun>,
    ctx: &Context<E>,
    status: &EcsTaskRunStatus,
    error: &Error,
    blocked: fn(&RunView, &'static str, &str, Timestamp) -> EcsTaskRunStatus,
) {
    if matches!(error.inner(), Error::WaitingForStop(_) | Error::Ecs(EcsError { kind: EcsErrorKind::NotLeader, .. })) {
        return;
    }
    let Ok(view) = view(run, namespace, status, &ctx.settings) else { return };
    let said = blocked(&view, error.reason(), &error.cause(), Timestamp::now());
    if said != *status
        && let Err(write) = write_status(api, run, &said).await
    {
        warn!(error = %write, "could not record why the run is held up");
    }
}

/// Fails fast, with the fix in the message, when the CRD is not installed (or RBAC forbids the watch):
/// lists runs where the controller will watch them.
pub async fn ensure_crd_installed(client: &Client, namespaces: &[String]) -> Result<(), kube::Error> {
    let apis: Vec<Api<EcsTaskRun>> = match namespaces {
        [] => vec![Api::all(client.clone())],
        namespaces => namespaces.iter().map(|namespace| Api::namespaced(client.clone(), namespace)).collect(),
    };
    for api in apis {
        api.list(&ListParams::default().limit(1)).await?;
    }
    Ok(())
}

/// Runs the controller until `stop` turns true: one watch over all namespaces, or one per listed
/// namespace, plus the tracker's sweeps. Stopping takes no new work and waits for in-flight reconciles.
pub async fn run<E: Ecs>(
    ctx: Arc<Context<E>>,
    namespaces: Vec<String>,
    concurrency: u16,
    stop: tokio::sync::watch::Receiver<bool>,
    ready: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut changes = ctx.tracker.restart();
    // Dropped (and so aborted) with this future: a replica that loses the Lease stops sweeping at once.
    let mut background = tokio::task::JoinSet::new();
    background.spawn(ctx.tracker.clone().run(ctx.settings.tracker_tick));
    background.spawn(ctx.tenancy.clone().publish_policy_status(ctx.client.clone(), FIELD_MANAGER));
    let watched: Vec<Option<String>> =
        if namespaces.is_empty() { vec![None] } else { namespaces.into_iter().map(Some).collect() };
    let mut stores = Vec::new();
    let mut controllers = Vec::new();
    let mut routes: HashMap<Option<String>, tokio::sync::mpsc::UnboundedSender<RunKey>> = HashMap::new();
    for namespace in watched {
        let api: Api<EcsTaskRun> = match &namespace {
            None => Api::all(ctx.client.clone()),
            Some(namespace) => Api::namespaced(ctx.client.clone(), namespace),
        };
        let (route, task_changes) = tokio::sync::mpsc::unbounded_channel();
        routes.insert(namespace, route);
        let (reader, writer) = kube::runtime::reflector::store();
        stores.push(reader.clone());
        // Our own status writes change neither generation nor finalizers, so they do not retrigger a
        // reconcile. Deletion bumps the generation. The cache keeps only what reconciles read.
        let runs = watcher(api, watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(slim)
            .reflect(writer)
            .applied_objects()
            .predicate_filter(predicates::generation.combine(predicates::finalizers), Default::default());
        let controller = Controller::for_stream(runs, reader)
            .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
            .reconcile_on(futures::stream::unfold(task_changes, |mut changes| async move {
                changes.recv().await.map(|key| (key, changes))
            }))
            .graceful_shutdown_on({
                let mut stop = stop.clone();
                async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                }
            })
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|result| async move {
                if let Err(error) = result {
                    debug!(%error, "reconcile result");
                }
            });
        controllers.push(controller);
    }
    // The tracker reports runs of every namespace; each goes to the controller that watches it.
    background.spawn(async move {
        while let Some(key) = changes.recv().await {
            if let Some(route) = routes.get(&key.namespace).or_else(|| routes.get(&None)) {
                let _ = route.send(key);
            }
        }
    });
    // Ready once every watch has listed its runs: before that, a reconcile would decide on an empty cache.
    background.spawn({
        let stores = stores.clone();
        async move {
            for store in &stores {
                // kube's readiness signal wakes only its latest waiter (the controller's own applier waits
                // on it too): look again every 200 ms rather than wait for a wake-up that may not come.
                loop {
                    match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
                        Ok(Ok(())) => break,
                        Ok(Err(_)) => return,
                        Err(_) => continue,
                    }
                }
            }
            ready.store(true, std::sync::atomic::Ordering::Relaxed);
            info!("caches synced: ready");
        }
    });
    background.spawn(keep_gauges(stores, ctx.clone()));
    futures::future::join_all(controllers).await;
}

/// Drops what no reconcile reads before an object reaches the cache: managed fields and kubectl's
/// last-applied copy of the whole object can be larger than everything else together.
fn slim(run: &mut EcsTaskRun) {
    run.managed_fields_mut().clear();
    if let Some(annotations) = run.metadata.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

async fn keep_gauges<E: Ecs>(stores: Vec<Store<EcsTaskRun>>, ctx: Arc<Context<E>>) {
    loop {
        let active = stores
            .iter()
            .flat_map(Store::state)
            .filter(|run| {
                !run.status.as_ref().and_then(|status| status.task.phase).is_some_and(|phase| phase.is_terminal())
            })
            .count();
        ctx.metrics.active_runs.set(active as i64);
        ctx.metrics.tracked_tasks.set(ctx.tracker.len() as i64);
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

mod batch;
mod cleanup;

#[cfg(test)]
mod tests {
    use super::*;

    fn run(spec_region: Option<&str>, pinned: Option<&str>) -> EcsTaskRun {
        let mut run = EcsTaskRun::new(
            "r",
            serde_json::from_value(serde_json::json!({"cluster": "c", "taskDefinition": "t", "region": spec_region}))
                .unwrap(),
        );
        run.status = pinned.map(|region| EcsTaskRunStatus { region: Some(region.into()), ..Default::default() });
        run
    }

    #[test]
    fn a_launched_run_keeps_its_region_whatever_the_default_becomes() {
        assert_eq!(region(&run(None, None), Some("us-east-1")).as_deref(), Some("us-east-1"));
        assert_eq!(region(&run(Some("eu-west-1"), None), Some("us-east-1")).as_deref(), Some("eu-west-1"));
        assert_eq!(region(&run(None, Some("eu-west-1")), Some("us-east-1")).as_deref(), Some("eu-west-1"));
        assert_eq!(region(&run(None, None), None), None);
    }
}
