//! The ECS port over aws-sdk-ecs (and aws-sdk-cloudwatchlogs for a failed container's last lines): one
//! cached client per (region, identity), a metric plus a log line for every call, answers as snapshots and
//! errors classified. Requests are translated in `launch` (RunTask) and `template` (RegisterTaskDefinition).

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_ecs::Client;
use aws_sdk_ecs::config::Region;
use aws_sdk_ecs::error::SdkError;
use aws_sdk_ecs::operation::run_task::RunTaskError;
use aws_sdk_ecs::types;
use tracing::debug;

use super::{
    Actor, ContainerDefinitionInfo, ContainerSize, Described, DesiredStatus, Ecs, EcsError, EcsErrorKind, EcsTarget,
    Identity, LaunchRequest, LogStream, Request, Response, RunTaskOutcome, TaskDefinitionInfo, TaskDefinitionSize,
    TaskSnapshot,
};
use crate::api;
use crate::ecs::fence::Fence;
use crate::metrics::Metrics;

/// How the adapter reaches AWS.
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    /// ECS endpoint override (emulators, VPC endpoints).
    pub ecs_endpoint_url: Option<String>,
    /// STS endpoint override, for assumed roles.
    pub sts_endpoint_url: Option<String>,
    /// CloudWatch Logs endpoint override (emulators, VPC interface endpoints).
    pub logs_endpoint_url: Option<String>,
    /// Deadline for one operation, SDK retries included.
    pub call_timeout: Duration,
    /// Tag assumed-role sessions with the run's namespace and name (the role's trust policy must allow
    /// sts:TagSession).
    pub session_tags: bool,
    /// The leader fence, checked again at every retry attempt of RunTask and StopTask.
    pub fence: Fence,
}

type LogsClient = aws_sdk_cloudwatchlogs::Client;

enum Clients {
    /// Built on demand from aws-config and cached per (region, identity): an assumed role's client keeps
    /// its STS credentials and refreshes them itself, so a cached client costs no AssumeRole per call.
    Configured { settings: AwsSettings, cache: ClientCache<Client>, logs: ClientCache<LogsClient> },
    /// Given clients for every target (tests with aws-smithy-mocks, embedding).
    Fixed(Client, Option<LogsClient>),
}

/// Clients kept at most (reading identities per namespace, acting sessions per run); the least used go
/// first, never the whole cache at once.
const MAX_CACHED_CLIENTS: u64 = 4096;
/// A client unused this long is dropped (a run's acting session after its run, a rotated Secret's keys).
const CLIENT_IDLE: Duration = Duration::from_secs(30 * 60);

/// Clients by (region, identity); a client being built is built once, whoever else asks meanwhile waits
/// for it (moka's single-flight `get_with`).
type ClientCache<C> = moka::future::Cache<(String, Identity), C>;

fn client_cache<C: Clone + Send + Sync + 'static>() -> ClientCache<C> {
    moka::future::Cache::builder().max_capacity(MAX_CACHED_CLIENTS).time_to_idle(CLIENT_IDLE).build()
}

pub struct AwsEcs {
    clients: Clients,
    task_definitions: TaskDefinitionCache,
    metrics: Arc<Metrics>,
}

impl AwsEcs {
    pub fn new(settings: AwsSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            clients: Clients::Configured { settings, cache: client_cache(), logs: client_cache() },
            task_definitions: TaskDefinitionCache::default(),
            metrics,
        }
    }

    /// Uses `client` for every target, whatever its region or identity.
    pub fn from_client(client: Client, metrics: Arc<Metrics>) -> Self {
        Self { clients: Clients::Fixed(client, None), task_definitions: TaskDefinitionCache::default(), metrics }
    }

    /// Uses `client` for every ECS call and `logs` for every CloudWatch Logs call.
    pub fn from_clients(client: Client, logs: LogsClient, metrics: Arc<Metrics>) -> Self {
        Self { clients: Clients::Fixed(client, Some(logs)), task_definitions: TaskDefinitionCache::default(), metrics }
    }

    async fn client(&self, target: &EcsTarget) -> Client {
        let (settings, cache) = match &self.clients {
            Clients::Fixed(client, _) => return client.clone(),
            Clients::Configured { settings, cache, .. } => (settings, cache),
        };
        let key = (target.region.clone(), target.identity.clone());
        cache.get_with(key, build_client(settings, &target.region, &target.identity, &self.metrics)).await
    }

    /// The CloudWatch Logs client of the target's identity in `region`.
    async fn logs_client(&self, region: &str, identity: &Identity) -> Result<LogsClient, EcsError> {
        let (settings, cache) = match &self.clients {
            Clients::Fixed(_, Some(logs)) => return Ok(logs.clone()),
            Clients::Fixed(_, None) => {
                return Err(EcsError::new(EcsErrorKind::Rejected, "GetLogEvents", "no CloudWatch Logs client given"));
            }
            Clients::Configured { settings, logs, .. } => (settings, logs),
        };
        let key = (region.to_owned(), identity.clone());
        let build = async {
            let (base, credentials) = aws_base(settings, region, identity).await;
            let mut config = aws_sdk_cloudwatchlogs::config::Builder::from(&base);
            if let Some(url) = &settings.logs_endpoint_url {
                config = config.endpoint_url(url);
            }
            if let Some(credentials) = credentials {
                config = config.credentials_provider(credentials);
            }
            LogsClient::from_conf(config.build())
        };
        Ok(cache.get_with(key, build).await)
    }

    /// The client RunTask and StopTask use: with an assumed role, a session of the run's own (named and
    /// tagged after it, so CloudTrail shows which run acted), cached like any client, so a run's launch,
    /// retries and stop share one AssumeRole; otherwise the shared client.
    async fn acting_client(&self, target: &EcsTarget, actor: &Actor) -> Client {
        match &target.identity {
            Identity::AssumeRole { role_arn, external_id, .. } => {
                let identity = Identity::AssumeRole {
                    role_arn: role_arn.clone(),
                    external_id: external_id.clone(),
                    session: actor.session(),
                };
                self.client(&EcsTarget { identity, ..target.clone() }).await
            }
            _ => self.client(target).await,
        }
    }

    /// Times, counts and logs one call. Spans of the caller (namespace/name of the run) carry over.
    async fn call<T>(
        &self,
        operation: &'static str,
        target: &EcsTarget,
        call: impl Future<Output = Result<T, EcsError>>,
    ) -> Result<T, EcsError> {
        let started = Instant::now();
        let result = call.await;
        let elapsed = started.elapsed();
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.kind.label(),
        };
        self.metrics.ecs_calls.with_label_values(&[operation, outcome]).inc();
        self.metrics.ecs_call_duration.with_label_values(&[operation]).observe(elapsed.as_secs_f64());
        match &result {
            Ok(_) => {
                debug!(operation, cluster = %target.cluster, region = %target.region, elapsed_ms = elapsed.as_millis() as u64, "ECS call")
            }
            Err(error) => {
                tracing::warn!(operation, cluster = %target.cluster, region = %target.region, outcome, elapsed_ms = elapsed.as_millis() as u64, %error, "ECS call failed")
            }
        }
        result
    }
}

async fn build_client(settings: &AwsSettings, region: &str, identity: &Identity, metrics: &Arc<Metrics>) -> Client {
    let (base, credentials) = aws_base(settings, region, identity).await;
    let mut config = aws_sdk_ecs::config::Builder::from(&base)
        .interceptor(EveryAttempt { metrics: metrics.clone(), fence: settings.fence.clone() });
    if let Some(url) = &settings.ecs_endpoint_url {
        config = config.endpoint_url(url);
    }
    if let Some(credentials) = credentials {
        config = config.credentials_provider(credentials);
    }
    Client::from_conf(config.build())
}

/// The SDK's default chain (credentials, retries) for a region, every operation bounded by `timeout`:
/// the base of every AWS client ecsrun makes (ECS, CloudWatch Logs, STS, SQS).
pub(crate) async fn sdk_defaults(region: &str, timeout: Duration) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .timeout_config(TimeoutConfig::builder().operation_timeout(timeout).build())
        .load()
        .await
}

/// What every client of `identity` in `region` shares: aws-config's defaults with the call timeout, and
/// the identity's credentials (None: the default chain).
async fn aws_base(
    settings: &AwsSettings,
    region: &str,
    identity: &Identity,
) -> (aws_config::SdkConfig, Option<SharedCredentialsProvider>) {
    let base = sdk_defaults(region, settings.call_timeout).await;
    let credentials = match identity {
        Identity::Default => None,
        Identity::AssumeRole { role_arn, external_id, session } => {
            let mut sts = base.to_builder();
            if let Some(url) = &settings.sts_endpoint_url {
                sts = sts.endpoint_url(url);
            }
            let mut provider = AssumeRoleProvider::builder(role_arn)
                .session_name(&session.name)
                .region(Region::new(region.to_owned()))
                .configure(&sts.build());
            if let Some(external_id) = external_id {
                provider = provider.external_id(external_id);
            }
            if settings.session_tags {
                provider = provider.tags(session.tags.iter().map(|(key, value)| (key.as_str(), value.as_str())));
            }
            Some(SharedCredentialsProvider::new(provider.build().await))
        }
        Identity::Static { keys, .. } => Some(SharedCredentialsProvider::new(Credentials::new(
            &keys.access_key_id,
            &keys.secret_access_key,
            keys.session_token.clone(),
            None,
            "ecsrun-secret",
        ))),
    };
    (base, credentials)
}

type Answer<'a> = std::pin::Pin<Box<dyn Future<Output = Result<Response, EcsError>> + Send + 'a>>;

/// The adapter's arms: one per request.
impl AwsEcs {
    fn dispatch<'a>(&'a self, target: &'a EcsTarget, request: Request<'a>) -> Answer<'a> {
        match request {
            Request::RunTask(launch) => {
                Box::pin(async move { Ok(Response::RunTask(self.run_task(target, launch).await?)) })
            }
            Request::DescribeTasks(task_arns) => {
                Box::pin(async move { Ok(Response::DescribeTasks(self.describe_tasks(target, task_arns).await?)) })
            }
            Request::StopTask { task_arn, reason, actor } => {
                Box::pin(async move { Ok(Response::StopTask(self.stop_task(target, task_arn, reason, actor).await?)) })
            }
            Request::ListTasks { started_by, desired_status } => {
                Box::pin(
                    async move { Ok(Response::ListTasks(self.list_tasks(target, started_by, desired_status).await?)) },
                )
            }
            Request::DescribeTaskDefinition(task_definition) => Box::pin(async move {
                Ok(Response::DescribeTaskDefinition(self.describe_task_definition(target, task_definition).await?))
            }),
            Request::FindTaskDefinition { template, tag } => Box::pin(async move {
                Ok(Response::FindTaskDefinition(self.find_task_definition(target, template, tag).await?))
            }),
            Request::RegisterTaskDefinition { template, tags } => Box::pin(async move {
                Ok(Response::RegisterTaskDefinition(self.register_task_definition(target, template, tags).await?))
            }),
            Request::LogTail { stream, lines } => {
                Box::pin(async move { Ok(Response::LogTail(self.log_tail(target, stream, lines).await?)) })
            }
        }
    }

    async fn run_task(&self, target: &EcsTarget, request: &LaunchRequest) -> Result<RunTaskOutcome, EcsError> {
        let client = self.acting_client(target, &request.actor).await;
        self.call("RunTask", target, async {
            let sent = run_task_call(&client, target, request)?.send().await;
            let output = match sent {
                Ok(output) => output,
                Err(SdkError::ServiceError(service)) if matches!(service.err(), RunTaskError::ConflictException(_)) => {
                    if let RunTaskError::ConflictException(conflict) = service.err() {
                        return Ok(RunTaskOutcome::Conflict(conflict.resource_ids().to_vec()));
                    }
                    unreachable!("matched ConflictException above")
                }
                Err(error) => return Err(classify("RunTask", &error)),
            };
            match output.tasks().first() {
                Some(task) => Ok(RunTaskOutcome::Started(snapshot(task))),
                None => Ok(RunTaskOutcome::Failures(output.failures().iter().map(failure).collect())),
            }
        })
        .await
    }

    async fn describe_tasks(&self, target: &EcsTarget, task_arns: &[String]) -> Result<Described, EcsError> {
        let client = self.client(target).await;
        self.metrics.describe_batch_size.observe(task_arns.len() as f64);
        self.call("DescribeTasks", target, async {
            let output = client
                .describe_tasks()
                .cluster(&target.cluster)
                .set_tasks(Some(task_arns.to_vec()))
                // The namespace tag tells whose a task is (adoption).
                .include(aws_sdk_ecs::types::TaskField::Tags)
                .send()
                .await
                .map_err(|error| classify("DescribeTasks", &error))?;
            let tasks: Vec<TaskSnapshot> = output.tasks().iter().map(snapshot).collect();
            // ECS lists unknown ARNs as MISSING failures; some endpoints just leave them out. Both are missing.
            let missing =
                task_arns.iter().filter(|arn| !tasks.iter().any(|task| &task.task_arn == *arn)).cloned().collect();
            Ok(Described { tasks, missing })
        })
        .await
    }

    async fn stop_task(
        &self,
        target: &EcsTarget,
        task_arn: &str,
        reason: &str,
        actor: &Actor,
    ) -> Result<Option<TaskSnapshot>, EcsError> {
        let client = self.acting_client(target, actor).await;
        self.call("StopTask", target, async {
            match client.stop_task().cluster(&target.cluster).task(task_arn).reason(reason).send().await {
                Ok(output) => Ok(output.task().map(snapshot)),
                Err(error) => {
                    let error = classify("StopTask", &error);
                    // A task ECS no longer knows has nothing left to stop.
                    if error.kind == EcsErrorKind::InvalidParameter
                        && error.message.to_lowercase().contains("not found")
                    {
                        Ok(None)
                    } else {
                        Err(error)
                    }
                }
            }
        })
        .await
    }

    async fn list_tasks(
        &self,
        target: &EcsTarget,
        started_by: Option<&str>,
        desired_status: DesiredStatus,
    ) -> Result<Vec<String>, EcsError> {
        let client = self.client(target).await;
        let desired_status = match desired_status {
            DesiredStatus::Running => types::DesiredStatus::Running,
            DesiredStatus::Pending => types::DesiredStatus::Pending,
            DesiredStatus::Stopped => types::DesiredStatus::Stopped,
        };
        self.call("ListTasks", target, async {
            client
                .list_tasks()
                .cluster(&target.cluster)
                .set_started_by(started_by.map(str::to_owned))
                .desired_status(desired_status)
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<String>, _>>()
                .await
                .map_err(|error| classify("ListTasks", &error))
        })
        .await
    }

    async fn describe_task_definition(
        &self,
        target: &EcsTarget,
        task_definition: &str,
    ) -> Result<TaskDefinitionInfo, EcsError> {
        if let Some(info) = self.task_definitions.get(target, task_definition) {
            return Ok(info);
        }
        let _lookup = self.task_definitions.lookup(target, task_definition).await;
        // Whoever held the lookup before may have filled the cache.
        if let Some(info) = self.task_definitions.get(target, task_definition) {
            return Ok(info);
        }
        let client = self.client(target).await;
        let info = self
            .call("DescribeTaskDefinition", target, async {
                let output = client
                    .describe_task_definition()
                    .task_definition(task_definition)
                    .include(types::TaskDefinitionField::Tags)
                    .send()
                    .await
                    .map_err(|error| classify("DescribeTaskDefinition", &error))?;
                let tag = |key: &str| {
                    output
                        .tags()
                        .iter()
                        .find(|tag| tag.key() == Some(key))
                        .and_then(|tag| tag.value())
                        .map(str::to_owned)
                };
                let registered_by = tag(super::templates::TEMPLATE_HASH_TAG).and(tag(super::NAMESPACE_TAG));
                let definition = output.task_definition().ok_or_else(|| {
                    EcsError::new(
                        EcsErrorKind::TaskDefinitionNotFound,
                        "DescribeTaskDefinition",
                        format!("no task definition returned for {task_definition}"),
                    )
                })?;
                Ok(TaskDefinitionInfo {
                    arn: definition.task_definition_arn().unwrap_or(task_definition).to_owned(),
                    containers: definition
                        .container_definitions()
                        .iter()
                        .map(|container| ContainerDefinitionInfo {
                            name: container.name().unwrap_or_default().to_owned(),
                            // ECS's default: a container is essential unless marked otherwise.
                            essential: container.essential().unwrap_or(true),
                            log: container.log_configuration().map(log_configuration),
                        })
                        .collect(),
                    registered_by,
                    size: TaskDefinitionSize {
                        cpu_units: definition.cpu().and_then(crate::policy::cpu_units),
                        memory_mib: definition.memory().and_then(crate::policy::memory_mib),
                        containers: definition
                            .container_definitions()
                            .iter()
                            .map(|container| ContainerSize {
                                name: container.name().unwrap_or_default().to_owned(),
                                cpu_units: Some(i64::from(container.cpu())),
                                memory_mib: container.memory().or(container.memory_reservation()).map(i64::from),
                            })
                            .collect(),
                    },
                })
            })
            .await?;
        self.task_definitions.insert(target, task_definition, &info);
        Ok(info)
    }

    /// Looks at the newest 100 ACTIVE revisions of the family (one ListTaskDefinitions page), newest first,
    /// for one tagged `(key, value)` whose content is the template's.
    async fn find_task_definition(
        &self,
        target: &EcsTarget,
        template: &api::TaskDefinitionTemplate,
        (key, value): (&str, &str),
    ) -> Result<Option<String>, EcsError> {
        let family = template.family.as_str();
        let client = self.client(target).await;
        let arns = self
            .call("ListTaskDefinitions", target, async {
                client
                    .list_task_definitions()
                    .family_prefix(family)
                    .status(types::TaskDefinitionStatus::Active)
                    .sort(types::SortOrder::Desc)
                    .max_results(100)
                    .send()
                    .await
                    .map(|output| output.task_definition_arns().to_vec())
                    .map_err(|error| classify("ListTaskDefinitions", &error))
            })
            .await?;
        // familyPrefix matches by prefix: `etl` lists `etl-nightly` too.
        let of_family = |arn: &&String| {
            arn.rsplit('/').next().and_then(|name| name.rsplit_once(':')).map(|(f, _)| f) == Some(family)
        };
        for arn in arns.iter().filter(of_family) {
            let described = self
                .call("DescribeTaskDefinition", target, async {
                    client
                        .describe_task_definition()
                        .task_definition(arn)
                        .include(types::TaskDefinitionField::Tags)
                        .send()
                        .await
                        .map_err(|error| classify("DescribeTaskDefinition", &error))
                })
                .await?;
            if !described.tags().iter().any(|tag| tag.key() == Some(key) && tag.value() == Some(value)) {
                continue;
            }
            let why = match described.task_definition() {
                Some(found) => template_check::difference(template, found),
                None => Some("DescribeTaskDefinition returned no task definition".into()),
            };
            match why {
                None => return Ok(Some(arn.clone())),
                Some(why) => tracing::warn!(
                    %arn, family, hash = value, %why,
                    "a revision carries this template's hash but is not what the template says: not used"
                ),
            }
        }
        Ok(None)
    }

    async fn register_task_definition(
        &self,
        target: &EcsTarget,
        template: &api::TaskDefinitionTemplate,
        tags: &[(String, String)],
    ) -> Result<String, EcsError> {
        const OPERATION: &str = "RegisterTaskDefinition";
        let client = self.client(target).await;
        let call = template::register_call(&client, template, tags)
            .map_err(|error| EcsError::new(EcsErrorKind::InvalidParameter, OPERATION, error.to_string()))?;
        self.call(OPERATION, target, async {
            let output = call.send().await.map_err(|error| {
                let mut error = classify(OPERATION, &error);
                // ECS refusing the template names the task definition; nothing is missing.
                if error.kind == EcsErrorKind::TaskDefinitionNotFound {
                    error.kind = EcsErrorKind::InvalidParameter;
                }
                error
            })?;
            output
                .task_definition()
                .and_then(|definition| definition.task_definition_arn())
                .map(str::to_owned)
                .ok_or_else(|| EcsError::new(EcsErrorKind::Rejected, OPERATION, "no task definition returned"))
        })
        .await
    }

    async fn log_tail(&self, target: &EcsTarget, stream: &LogStream, lines: u32) -> Result<Vec<String>, EcsError> {
        let client = self.logs_client(&stream.region, &target.identity).await?;
        self.call("GetLogEvents", target, async {
            // The newest `lines` events: GetLogEvents reads backwards from the end unless told otherwise.
            let output = client
                .get_log_events()
                .log_group_name(&stream.group)
                .log_stream_name(&stream.stream)
                .start_from_head(false)
                .limit(lines.clamp(1, 10_000) as i32)
                .send()
                .await
                .map_err(|error| {
                    let not_found = error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception());
                    let mut error = classify("GetLogEvents", &error);
                    if not_found {
                        error.kind = EcsErrorKind::LogStreamNotFound;
                    }
                    error
                })?;
            Ok(output.events().iter().filter_map(|event| event.message().map(str::to_owned)).collect())
        })
        .await
    }
}

impl Ecs for AwsEcs {
    async fn send(&self, target: &EcsTarget, request: Request<'_>) -> Result<Response, EcsError> {
        // Each arm's future is built in a function of its own and boxed: built here, every arm's SDK
        // future (about 16 KiB each in a debug build) would take a stack slot of this frame, and the AWS
        // SDK's own polling is deep enough to overflow a worker thread's stack on top of that.
        self.dispatch(target, request).await
    }

    fn cached_task_definition(&self, target: &EcsTarget, task_definition: &str) -> Option<TaskDefinitionInfo> {
        self.task_definitions.get(target, task_definition)
    }
}

mod answers;
mod interceptors;
mod launch;
mod task_definitions;
mod template;
mod template_check;

use answers::{classify, failure, log_configuration, snapshot};
use interceptors::EveryAttempt;
use launch::run_task_call;
use task_definitions::TaskDefinitionCache;

#[cfg(test)]
mod tests;
