//! An in-memory ECS for the controller's shell, behind the same port (`ecsrun::ecs::Ecs`) the AWS adapter
//! implements: RunTask with clientToken semantics (the same token and parameters give the same task;
//! others a ConflictException naming it), DescribeTasks (unknown ARNs missing), StopTask, ListTasks by
//! startedBy, task definitions with essential and sidecar containers, CloudWatch Logs lines, StopTask's
//! 255-character reason limit, and faults to inject. Tasks move only when a test moves them (`run`,
//! `exit`, `forget`...), so every step is the test's to choose. With `Chaos` (the simulator) calls fail,
//! lose their answers or crash their caller as the seed says, and ECS is eventually consistent as it is:
//! ListTasks lists a new task up to 20 s late and DescribeTasks may not know it for up to 4 s. What ECS
//! itself does on the wire is the e2e tier's business (moto, the proxy).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ecsrun::api::StopCode;
use ecsrun::ecs::task_events::STARTED_BY_PREFIX;
use ecsrun::ecs::{
    CLUSTER_ID_TAG, ContainerDefinitionInfo, DELETION_POLICY_TAG, Described, DesiredStatus, Ecs, EcsError,
    EcsErrorKind, EcsFailure, EcsTarget, LastStatus, LaunchRequest, LogConfiguration, NAMESPACE_TAG, Request, Response,
    RunTaskOutcome, TaskDefinitionInfo, TaskSnapshot,
};
use ecsrun::testing::task;
use jiff::Timestamp;

use super::chaos::{Chaos, Fault};

/// How far ListTasks lags behind a new task, at most (the simulator's ECS).
pub const LIST_LAG: Duration = Duration::from_secs(20);
/// How long DescribeTasks may not know a new task (the simulator's ECS).
pub const DESCRIBE_LAG: Duration = Duration::from_secs(4);
/// The ECS adapter's operation timeout (`--ecs-call-timeout`'s default), as the simulator's calls keep it.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// A task as the fake keeps it.
#[derive(Clone, Debug)]
pub struct FakeTask {
    pub snapshot: TaskSnapshot,
    pub cluster: String,
    pub started_by: String,
    pub client_token: Option<String>,
    pub tags: Vec<(String, String)>,
    /// The environment each container was given (overrides), for checks of what a task was told.
    pub environment: Vec<(String, String, String)>,
    /// From when ListTasks lists it and DescribeTasks knows it (eventual consistency).
    pub listed_from: Timestamp,
    pub described_from: Timestamp,
    /// The namespace whose template registered the revision the task runs (as ECS resolved RunTask's
    /// task definition), if a template did.
    pub registered_by: Option<String>,
}

impl FakeTask {
    /// The value of the task's tag `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    tasks: BTreeMap<String, FakeTask>,
    /// Tasks ECS no longer knows (stopped over an hour ago), for what a test checks afterwards.
    forgotten: BTreeMap<String, FakeTask>,
    /// clientToken → (task ARN, what RunTask was asked).
    tokens: BTreeMap<String, (String, String)>,
    next: u64,
    calls: Vec<&'static str>,
    /// Errors to answer the next calls of an operation with.
    faults: Vec<(&'static str, EcsErrorKind)>,
    /// RunTask answers of `failures` instead of a task (capacity), consumed one per launch.
    capacity_failures: usize,
    clusters: Vec<String>,
    log_lines: BTreeMap<String, Vec<String>>,
    now: Option<Timestamp>,
    /// Task state change events of ecsrun's tasks not taken yet (`take_events`), oldest first.
    events: Vec<TaskSnapshot>,
    /// Revisions registered from templates, by family: the tags of revisions 2, 3...
    registered: BTreeMap<String, Vec<Vec<(String, String)>>>,
    /// Calls that take long: the next call of the operation moves the clock on by the duration first.
    stalls: Vec<(&'static str, Duration, Arc<Mutex<Timestamp>>)>,
}

/// The fake ECS. Clusters `demo`, `batch` and `shared` exist; task definitions have an essential `app` and a
/// non-essential `log-router` (awslogs, group `/ecs/jobs`, prefix `ecs`).
pub struct FakeEcs {
    state: Mutex<State>,
    chaos: Option<Arc<Chaos>>,
}

impl Default for FakeEcs {
    fn default() -> Self {
        let state = State { clusters: vec!["demo".into(), "batch".into(), "shared".into()], ..State::default() };
        Self { state: Mutex::new(state), chaos: None }
    }
}

fn revision_arn(family: &str, revision: u32) -> String {
    format!("arn:aws:ecs:eu-west-1:123456789012:task-definition/{family}:{revision}")
}

impl State {
    /// A revision registered from a template (a bare family: the latest), with the namespace it was
    /// registered for; any other reference is revision 1 of a job's definition.
    fn describe(&self, reference: &str) -> TaskDefinitionInfo {
        let described = definition(reference);
        let name = reference.rsplit('/').next().unwrap_or(reference);
        let (family, revision) = name.split_once(':').map_or((name, None), |(family, rev)| (family, rev.parse().ok()));
        let registered = self.registered.get(family).and_then(|revisions| match revision {
            None => revisions.last().map(|tags| (revisions.len() as u32 + 1, tags)),
            Some(revision) => {
                let at = usize::try_from(revision).ok()?.checked_sub(2)?;
                revisions.get(at).map(|tags| (revision, tags))
            }
        });
        match registered {
            Some((revision, tags)) => {
                let tag = |key: &str| tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
                TaskDefinitionInfo {
                    arn: revision_arn(family, revision),
                    registered_by: tag(ecsrun::ecs::templates::TEMPLATE_HASH_TAG).and(tag(NAMESPACE_TAG)),
                    ..described
                }
            }
            None => described,
        }
    }
}

fn definition(reference: &str) -> TaskDefinitionInfo {
    let log = |prefix: &str| LogConfiguration {
        driver: "awslogs".into(),
        group: Some("/ecs/jobs".into()),
        region: None,
        stream_prefix: Some(prefix.into()),
    };
    let family = reference.rsplit('/').next().unwrap_or(reference).split(':').next().unwrap_or(reference);
    TaskDefinitionInfo {
        arn: format!("arn:aws:ecs:eu-west-1:123456789012:task-definition/{family}:1"),
        containers: vec![
            ContainerDefinitionInfo { name: "app".into(), essential: true, log: Some(log("ecs")) },
            ContainerDefinitionInfo { name: "log-router".into(), essential: false, log: None },
        ],
        registered_by: None,
        // Half a vCPU and 1 GiB, as a Fargate task definition gives them at task level.
        size: ecsrun::ecs::TaskDefinitionSize { cpu_units: Some(512), memory_mib: Some(1024), containers: Vec::new() },
    }
}

impl FakeEcs {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An ECS whose calls `chaos` disturbs, and whose lists and descriptions lag as the real one's do.
    pub fn with_chaos(chaos: Arc<Chaos>) -> Self {
        Self { chaos: Some(chaos), ..Self::default() }
    }

    /// The time tasks are stamped with (the test's clock).
    pub fn set_now(&self, now: Timestamp) {
        self.state().now = Some(now);
    }

    /// Every operation called so far, in order.
    pub fn calls(&self) -> Vec<&'static str> {
        self.state().calls.clone()
    }

    pub fn count(&self, operation: &str) -> usize {
        self.state().calls.iter().filter(|called| **called == operation).count()
    }

    /// Every task, oldest first.
    pub fn tasks(&self) -> Vec<FakeTask> {
        self.state().tasks.values().cloned().collect()
    }

    /// Tasks whose startedBy begins with `prefix`.
    pub fn tasks_started_by(&self, prefix: &str) -> Vec<FakeTask> {
        self.tasks().into_iter().filter(|task| task.started_by.starts_with(prefix)).collect()
    }

    pub fn task(&self, arn: &str) -> Option<FakeTask> {
        self.state().tasks.get(arn).cloned()
    }

    /// Every task ever started, forgotten ones too.
    pub fn every_task(&self) -> Vec<FakeTask> {
        let state = self.state();
        state.tasks.values().chain(state.forgotten.values()).cloned().collect()
    }

    /// The task, even if ECS forgot it.
    pub fn task_ever(&self, arn: &str) -> Option<FakeTask> {
        let state = self.state();
        state.tasks.get(arn).or_else(|| state.forgotten.get(arn)).cloned()
    }

    /// The next call of `operation` takes `by` of `clock`'s time (a slow call, the SDK retrying).
    pub fn stall_next(&self, operation: &'static str, by: Duration, clock: Arc<Mutex<Timestamp>>) {
        self.state().stalls.push((operation, by, clock));
    }

    /// Answers the next call of `operation` with an error of `kind`.
    pub fn fail_next(&self, operation: &'static str, kind: EcsErrorKind) {
        self.state().faults.push((operation, kind));
    }

    /// The next `count` launches find no capacity.
    pub fn no_capacity_for(&self, count: usize) {
        self.state().capacity_failures = count;
    }

    /// Lines a container's awslogs stream holds.
    pub fn print(&self, stream: &str, lines: &[&str]) {
        self.state().log_lines.insert(stream.to_owned(), lines.iter().map(|l| (*l).to_owned()).collect());
    }

    /// Starts a task outside ecsrun (as boto3 or the console would) and returns its ARN.
    pub fn start_elsewhere(&self, cluster: &str) -> String {
        let mut state = self.state();
        let arn = state.new_task(None, cluster, "someone-else", None, Vec::new(), Vec::new());
        state.set_status(&arn, "RUNNING");
        arn
    }

    /// The task reaches RUNNING.
    pub fn run(&self, arn: &str) {
        self.state().set_status(arn, "RUNNING");
    }

    /// The task stops with `app` exiting `app` and the log router 0 (EssentialContainerExited).
    pub fn exit(&self, arn: &str, app: i32) {
        self.state().exit(arn, app);
    }

    /// ECS no longer knows the task (it forgets stopped tasks after about an hour).
    pub fn forget(&self, arn: &str) {
        let mut state = self.state();
        if let Some(task) = state.tasks.remove(arn) {
            state.forgotten.insert(arn.to_owned(), task);
        }
    }

    /// Forgets every task that stopped before `cutoff`.
    pub fn forget_stopped_before(&self, cutoff: Timestamp) {
        let old: Vec<String> = self
            .tasks()
            .into_iter()
            .filter(|task| task.snapshot.stopped_at.is_some_and(|at| at < cutoff))
            .map(|task| task.snapshot.task_arn)
            .collect();
        for arn in old {
            self.forget(&arn);
        }
    }

    /// The task stops without starting (an image that cannot be pulled): no exit codes.
    pub fn fail_to_start(&self, arn: &str) {
        self.stop_on_its_own(arn, StopCode::TaskFailedToStart, "CannotPullContainerError: pull access denied", None);
    }

    /// Fargate Spot takes the capacity back: the containers are killed (SIGTERM, then 137).
    pub fn interrupt(&self, arn: &str) {
        self.stop_on_its_own(arn, StopCode::SpotInterruption, "Your Spot Task was interrupted.", Some(137));
    }

    fn stop_on_its_own(&self, arn: &str, code: StopCode, reason: &str, exit_code: Option<i32>) {
        self.state().stop_on_its_own(arn, code, reason, exit_code);
    }

    /// The ARNs of tasks not STOPPED.
    pub fn live(&self) -> Vec<String> {
        self.tasks().into_iter().filter(|task| !task.snapshot.is_stopped()).map(|task| task.snapshot.task_arn).collect()
    }

    /// The task state change events ECS sent since the last call, oldest first: one per change of a task
    /// ecsrun started (what the EventBridge rule matches), as the consumer reads them (no tags).
    pub fn take_events(&self) -> Vec<TaskSnapshot> {
        std::mem::take(&mut self.state().events)
    }
}

impl State {
    fn now(&self) -> Timestamp {
        self.now.unwrap_or_else(Timestamp::now)
    }

    #[allow(clippy::too_many_arguments)]
    fn new_task(
        &mut self,
        chaos: Option<&Chaos>,
        cluster: &str,
        started_by: &str,
        client_token: Option<String>,
        tags: Vec<(String, String)>,
        environment: Vec<(String, String, String)>,
    ) -> String {
        self.next += 1;
        let arn = format!("arn:aws:ecs:eu-west-1:123456789012:task/{cluster}/{:032x}", self.next);
        let (list_lag, describe_lag) = match chaos {
            Some(chaos) => (
                LIST_LAG.mul_f64(chaos.constant(("list-lag", &arn)) as f64 / 1000.0),
                DESCRIBE_LAG.mul_f64(chaos.constant(("describe-lag", &arn)) as f64 / 1000.0),
            ),
            None => (Duration::ZERO, Duration::ZERO),
        };
        let now = self.now();
        let later = |lag: Duration| now.checked_add(lag).unwrap_or(now);
        let snapshot = TaskSnapshot {
            cluster_arn: Some(format!("arn:aws:ecs:eu-west-1:123456789012:cluster/{cluster}")),
            task_definition_arn: Some(definition("job").arn),
            cpu: Some("1024".into()),
            memory: Some("2048".into()),
            capacity_provider: Some("FARGATE".into()),
            started_by: Some(started_by.to_owned()),
            version: Some(0),
            started_for_namespace: tags.iter().find(|(key, _)| key == NAMESPACE_TAG).map(|(_, value)| value.clone()),
            kept_on_delete: tags.iter().any(|(key, value)| key == DELETION_POLICY_TAG && value == "Orphan"),
            started_by_install: tags.iter().find(|(key, _)| key == CLUSTER_ID_TAG).map(|(_, value)| value.clone()),
            ..task(arn.clone()).containers(&["app", "log-router"]).created(now)
        };
        self.tasks.insert(
            arn.clone(),
            FakeTask {
                snapshot,
                cluster: cluster.into(),
                started_by: started_by.into(),
                client_token,
                tags,
                environment,
                listed_from: later(list_lag),
                described_from: later(describe_lag),
                registered_by: None,
            },
        );
        self.changed(&arn);
        arn
    }

    fn set_status(&mut self, arn: &str, last_status: &str) {
        let now = self.now();
        if let Some(task) = self.tasks.get_mut(arn).filter(|task| task.snapshot.last_status_str() != Some(last_status))
        {
            task.snapshot.last_status = Some(last_status.into());
            if last_status == "RUNNING" {
                task.snapshot.started_at = task.snapshot.started_at.or(Some(now));
            }
            self.changed(arn);
        }
    }

    /// The task changed: ECS raises its version and, for a task ecsrun started, sends a task state change
    /// event. Events carry no tags; one of a task that failed to start may come without its containers.
    fn changed(&mut self, arn: &str) {
        let Some(task) = self.tasks.get_mut(arn) else { return };
        task.snapshot.version = Some(task.snapshot.version.unwrap_or(0) + 1);
        if !task.started_by.starts_with(STARTED_BY_PREFIX) {
            return;
        }
        let mut event = TaskSnapshot { started_for_namespace: None, ..task.snapshot.clone() };
        if event.stop_code_is(StopCode::TaskFailedToStart) {
            event.containers.clear();
        }
        self.events.push(event);
    }

    fn run_task(
        &mut self,
        chaos: Option<&Chaos>,
        target: &EcsTarget,
        request: &LaunchRequest,
    ) -> Result<RunTaskOutcome, EcsError> {
        if !self.clusters.contains(&target.cluster) {
            return Err(EcsError::new(
                EcsErrorKind::ClusterNotFound,
                "RunTask",
                "ClusterNotFoundException: Cluster not found.",
            ));
        }
        let asked = format!("{}|{:?}|{:?}", request.task_definition, request.overrides, request.tags);
        if let Some((arn, earlier)) = self.tokens.get(&request.client_token) {
            return Ok(if *earlier == asked {
                RunTaskOutcome::Started(self.tasks.get(arn).map(|t| t.snapshot.clone()).unwrap_or_default())
            } else {
                RunTaskOutcome::Conflict(vec![arn.clone()])
            });
        }
        if self.capacity_failures > 0 {
            self.capacity_failures -= 1;
            return Ok(RunTaskOutcome::Failures(vec![EcsFailure {
                arn: None,
                reason: Some("RESOURCE:MEMORY".into()),
                detail: None,
            }]));
        }
        let environment = request
            .overrides
            .iter()
            .flat_map(|overrides| &overrides.container_overrides)
            .flat_map(|o| o.environment.iter().map(|var| (o.name.clone(), var.name.clone(), var.value.clone())))
            .collect();
        let arn = self.new_task(
            chaos,
            &target.cluster,
            &request.started_by,
            Some(request.client_token.clone()),
            request.tags.clone(),
            environment,
        );
        self.tokens.insert(request.client_token.clone(), (arn.clone(), asked));
        // ECS resolves the task definition when the task starts: a bare family to its latest revision.
        let revision = self.describe(&request.task_definition);
        if let Some(task) = self.tasks.get_mut(&arn) {
            task.snapshot.task_definition_arn = Some(revision.arn);
            task.registered_by = revision.registered_by;
        }
        Ok(RunTaskOutcome::Started(self.tasks[&arn].snapshot.clone()))
    }

    /// The task stops with `app` exiting `app` and the log router 0 (EssentialContainerExited).
    fn exit(&mut self, arn: &str, app: i32) {
        let now = self.now();
        if let Some(task) = self.tasks.get_mut(arn) {
            task.snapshot = std::mem::take(&mut task.snapshot)
                .running(now)
                .stopped(StopCode::EssentialContainerExited, "Essential container in task exited", now)
                .all_exit(0)
                .exit("app", app);
            self.changed(arn);
        }
    }

    fn stop_on_its_own(&mut self, arn: &str, code: StopCode, reason: &str, exit_code: Option<i32>) {
        let now = self.now();
        if let Some(task) = self.tasks.get_mut(arn).filter(|task| !task.snapshot.is_stopped()) {
            let started = task.snapshot.started_at.is_some();
            let stopped = std::mem::take(&mut task.snapshot).stopped(code, reason, now);
            // A task that never started has no exit codes.
            task.snapshot = match exit_code.filter(|_| started) {
                Some(code) => stopped.all_exit(code),
                None => stopped,
            };
            self.changed(arn);
        }
    }

    fn stop_task(&mut self, task_arn: &str, reason: &str, exits_first: bool) -> Result<Option<TaskSnapshot>, EcsError> {
        if reason.chars().count() > 255 {
            return Err(EcsError::new(
                EcsErrorKind::InvalidParameter,
                "StopTask",
                "InvalidParameterException: Reason must be 255 characters or less.",
            ));
        }
        let now = self.now();
        let Some(task) = self.tasks.get_mut(task_arn) else { return Ok(None) };
        if exits_first && !task.snapshot.is_stopped() {
            if task.snapshot.last_is(LastStatus::Running) {
                self.exit(task_arn, 1);
            } else {
                self.stop_on_its_own(
                    task_arn,
                    StopCode::TaskFailedToStart,
                    "CannotPullContainerError: pull access denied",
                    None,
                );
            }
        }
        let Some(task) = self.tasks.get_mut(task_arn) else { return Ok(None) };
        if !task.snapshot.is_stopped() {
            task.snapshot =
                std::mem::take(&mut task.snapshot).stopped(StopCode::UserInitiated, reason, now).all_exit(143);
            self.changed(task_arn);
        }
        let Some(task) = self.tasks.get(task_arn) else { return Ok(None) };
        Ok(Some(task.snapshot.clone()))
    }
}

impl Ecs for FakeEcs {
    async fn send(&self, target: &EcsTarget, request: Request<'_>) -> Result<Response, EcsError> {
        let operation = request.operation();
        let stall = {
            let mut state = self.state();
            let at = state.stalls.iter().position(|(stalled, ..)| *stalled == operation);
            at.map(|at| state.stalls.remove(at))
        };
        if let Some((_, by, clock)) = stall {
            let mut now = clock.lock().unwrap_or_else(PoisonError::into_inner);
            *now = now.checked_add(by).unwrap_or(*now);
            self.set_now(*now);
        }
        let what = fingerprint(target, &request);
        // The adapter bounds every operation, its retries included, by the call timeout: a request that
        // has not reached ECS by then never does (the connection is gone), an answer later than that is
        // never heard.
        let deadline =
            self.chaos.as_ref().and_then(|chaos| chaos.now()).and_then(|now| now.checked_add(CALL_TIMEOUT).ok());
        let timed_out = || EcsError::new(EcsErrorKind::Timeout, operation, "operation timed out (simulator)");
        if let Some(chaos) = &self.chaos
            && !chaos.delay("ecs", operation, "request", &what, deadline).await
        {
            return Err(timed_out());
        }
        let fault = match &self.chaos {
            Some(chaos) => chaos.fault("ecs", operation, request.acts(), &what),
            None => Fault::None,
        };
        match (&self.chaos, fault) {
            (Some(chaos), Fault::CrashBefore) => chaos.crash_here().await,
            (_, Fault::Fail) => {
                let kind = if operation == "RunTask" { EcsErrorKind::Server } else { EcsErrorKind::Throttled };
                return Err(EcsError::new(kind, operation, "injected by the simulator"));
            }
            _ => {}
        }
        let answer = self.serve(target, request);
        if let Some(chaos) = &self.chaos
            && !chaos.delay("ecs", operation, "answer", &what, deadline).await
        {
            return Err(timed_out());
        }
        match (&self.chaos, fault) {
            (Some(chaos), Fault::CrashAfter) => chaos.crash_here().await,
            (_, Fault::LoseAnswer) => Err(EcsError::new(EcsErrorKind::Timeout, operation, "answer lost (simulator)")),
            _ => answer,
        }
    }
}

/// What tells a call apart from others, whatever order concurrent calls come in.
fn fingerprint(target: &EcsTarget, request: &Request<'_>) -> String {
    match request {
        Request::DescribeTasks(arns) => {
            let mut arns = arns.to_vec();
            arns.sort();
            format!("{target:?} DescribeTasks {arns:?}")
        }
        other => format!("{target:?} {other:?}"),
    }
}

impl FakeEcs {
    fn serve(&self, target: &EcsTarget, request: Request<'_>) -> Result<Response, EcsError> {
        let mut state = self.state();
        let operation = request.operation();
        state.calls.push(operation);
        if let Some(at) = state.faults.iter().position(|(op, _)| *op == operation) {
            let (_, kind) = state.faults.remove(at);
            return Err(EcsError::new(kind, operation, "injected by the fake ECS"));
        }
        let now = state.now();
        Ok(match request {
            Request::RunTask(launch) => Response::RunTask(state.run_task(self.chaos.as_deref(), target, launch)?),
            Request::DescribeTasks(arns) => {
                let known = |arn: &String| state.tasks.get(arn).filter(|task| task.described_from <= now);
                let tasks: Vec<TaskSnapshot> =
                    arns.iter().filter_map(known).map(|task| task.snapshot.clone()).collect();
                let missing = arns.iter().filter(|arn| known(arn).is_none()).cloned().collect();
                Response::DescribeTasks(Described { tasks, missing })
            }
            Request::StopTask { task_arn, reason, .. } => {
                // In the simulator one task in five fails by itself (its app exits 1, or it fails to start)
                // just before a StopTask reaches it: the StopTask finds it stopped, and the run must judge
                // it by how it ended, not by why it was being stopped.
                let exits_first = self
                    .chaos
                    .as_deref()
                    .is_some_and(|chaos| chaos.constant(("exits before StopTask", task_arn)) < 200);
                Response::StopTask(state.stop_task(task_arn, reason, exits_first)?)
            }
            Request::ListTasks { started_by, desired_status } => Response::ListTasks(
                state
                    .tasks
                    .values()
                    .filter(|task| task.cluster == target.cluster)
                    .filter(|task| started_by.is_none_or(|started_by| task.started_by == started_by))
                    .filter(|task| task.listed_from <= now)
                    .filter(|task| task.snapshot.is_stopped() == (desired_status == DesiredStatus::Stopped))
                    .map(|task| task.snapshot.task_arn.clone())
                    .collect(),
            ),
            Request::DescribeTaskDefinition(reference) => Response::DescribeTaskDefinition(state.describe(reference)),
            Request::FindTaskDefinition { .. } => Response::FindTaskDefinition(None),
            Request::RegisterTaskDefinition { template, tags } => {
                let revisions = state.registered.entry(template.family.clone()).or_default();
                revisions.push(tags.to_vec());
                Response::RegisterTaskDefinition(revision_arn(&template.family, revisions.len() as u32 + 1))
            }
            Request::LogTail { stream, lines } => match state.log_lines.get(&stream.stream) {
                Some(printed) => {
                    let from = printed.len().saturating_sub(lines as usize);
                    Response::LogTail(printed[from..].to_vec())
                }
                // Under chaos (the simulator), every task's app prints `::ecsrun-result task=<its id>` as it
                // stops: a run's results then say which task they came from.
                None if self.chaos.is_some() && stream.stream.starts_with("ecs/app/") => {
                    let id = stream.stream.trim_start_matches("ecs/app/");
                    let stopped = state
                        .tasks
                        .values()
                        .any(|task| ecsrun::api::task_id(&task.snapshot.task_arn) == id && task.snapshot.is_stopped());
                    Response::LogTail(if stopped { vec![format!("::ecsrun-result task={id}")] } else { Vec::new() })
                }
                None => {
                    return Err(EcsError::new(
                        EcsErrorKind::LogStreamNotFound,
                        "GetLogEvents",
                        "ResourceNotFoundException: The specified log stream does not exist.",
                    ));
                }
            },
        })
    }
}
