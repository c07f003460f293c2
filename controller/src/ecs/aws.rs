//! The ECS port over aws-sdk-ecs (and aws-sdk-cloudwatchlogs for a failed container's last lines):
//! request translation, error classification, one cached client per (region, identity), and a metric
//! plus a log line for every call.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_ecs::Client;
use aws_sdk_ecs::config::Region;
use aws_sdk_ecs::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_ecs::operation::run_task::RunTaskError;
use aws_sdk_ecs::types;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::display::DisplayErrorContext;
use tracing::debug;

use super::{
    Actor, ContainerDefinitionInfo, ContainerSnapshot, Described, DesiredStatus, Ecs, EcsError, EcsErrorKind,
    EcsFailure, EcsTarget, Identity, LaunchRequest, LogConfiguration, LogStream, RunTaskOutcome, TaskDefinitionInfo,
    TaskSnapshot,
};
use crate::api;
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
}

type LogsClient = aws_sdk_cloudwatchlogs::Client;

enum Clients {
    /// Built on demand from aws-config and cached per (region, identity).
    Configured {
        settings: AwsSettings,
        cache: tokio::sync::Mutex<HashMap<(String, Identity), Client>>,
        logs: tokio::sync::Mutex<HashMap<(String, Identity), LogsClient>>,
    },
    /// Given clients for every target (tests with aws-smithy-mocks, embedding).
    Fixed(Client, Option<LogsClient>),
}

/// Rotated Secrets leave old clients behind; past this many the cache starts over.
const MAX_CACHED_CLIENTS: usize = 256;

pub struct AwsEcs {
    clients: Clients,
    task_definitions: TaskDefinitionCache,
    metrics: Arc<Metrics>,
}

/// How long a bare family (no revision) stands for the revision it resolved to; a new revision
/// registered meanwhile is picked up after this.
const BARE_FAMILY_TTL: Duration = Duration::from_secs(60);
/// Bounds the cache; past this many references it starts over.
const MAX_CACHED_TASK_DEFINITIONS: usize = 1024;

/// Task definitions by the reference a run gave (`family`, `family:rev` or an ARN) and by the revision
/// ARN they resolved to, per region and identity. Revisions are immutable and kept; a bare family
/// expires after [`BARE_FAMILY_TTL`], since it follows the latest ACTIVE revision.
#[derive(Default)]
struct TaskDefinitionCache {
    entries: Mutex<HashMap<TaskDefinitionKey, (TaskDefinitionInfo, Option<Instant>)>>,
    /// One lookup per reference at a time: a burst of runs of one family asks ECS once, not once each.
    lookups: Mutex<HashMap<TaskDefinitionKey, Arc<tokio::sync::Mutex<()>>>>,
}

/// (region, identity, reference as given).
type TaskDefinitionKey = (String, Identity, String);

impl TaskDefinitionCache {
    fn get(&self, target: &EcsTarget, reference: &str) -> Option<TaskDefinitionInfo> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (info, expires) = entries.get(&(target.region.clone(), target.identity.clone(), reference.to_owned()))?;
        expires.is_none_or(|expires| Instant::now() < expires).then(|| info.clone())
    }

    /// Held while looking `reference` up; lookups of other references go on.
    async fn lookup(&self, target: &EcsTarget, reference: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let key = (target.region.clone(), target.identity.clone(), reference.to_owned());
        let lock = {
            let mut lookups = self.lookups.lock().unwrap_or_else(PoisonError::into_inner);
            if lookups.len() >= MAX_CACHED_TASK_DEFINITIONS {
                lookups.retain(|_, lock| Arc::strong_count(lock) > 1);
            }
            lookups.entry(key).or_default().clone()
        };
        lock.lock_owned().await
    }

    fn insert(&self, target: &EcsTarget, reference: &str, info: &TaskDefinitionInfo) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_CACHED_TASK_DEFINITIONS {
            entries.clear();
        }
        let key = |reference: &str| (target.region.clone(), target.identity.clone(), reference.to_owned());
        let expires = is_bare_family(reference).then(|| Instant::now() + BARE_FAMILY_TTL);
        entries.insert(key(reference), (info.clone(), expires));
        entries.insert(key(&info.arn), (info.clone(), None));
    }
}

/// `family` or `arn:...:task-definition/family`, as opposed to a pinned revision (`family:3`).
fn is_bare_family(reference: &str) -> bool {
    let name = reference.rsplit_once("task-definition/").map_or(reference, |(_, name)| name);
    !name.contains(':')
}

impl AwsEcs {
    pub fn new(settings: AwsSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            clients: Clients::Configured {
                settings,
                cache: tokio::sync::Mutex::default(),
                logs: tokio::sync::Mutex::default(),
            },
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
        let mut cache = cache.lock().await;
        if let Some(client) = cache.get(&key) {
            return client.clone();
        }
        let client = build_client(settings, &target.region, &target.identity, &self.metrics).await;
        if cache.len() >= MAX_CACHED_CLIENTS {
            cache.clear();
        }
        cache.insert(key, client.clone());
        client
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
        let mut cache = cache.lock().await;
        if let Some(client) = cache.get(&key) {
            return Ok(client.clone());
        }
        let (base, credentials) = aws_base(settings, region, identity).await;
        let mut config = aws_sdk_cloudwatchlogs::config::Builder::from(&base);
        if let Some(url) = &settings.logs_endpoint_url {
            config = config.endpoint_url(url);
        }
        if let Some(credentials) = credentials {
            config = config.credentials_provider(credentials);
        }
        let client = LogsClient::from_conf(config.build());
        if cache.len() >= MAX_CACHED_CLIENTS {
            cache.clear();
        }
        cache.insert(key, client.clone());
        Ok(client)
    }

    /// The client RunTask and StopTask use: with an assumed role, a session of the run's own (named and
    /// tagged after it, so CloudTrail shows which run acted); otherwise the shared client.
    async fn acting_client(&self, target: &EcsTarget, actor: &Actor) -> Client {
        match (&self.clients, &target.identity) {
            (Clients::Configured { settings, .. }, Identity::AssumeRole { role_arn, external_id, .. }) => {
                let identity = Identity::AssumeRole {
                    role_arn: role_arn.clone(),
                    external_id: external_id.clone(),
                    session: actor.session(),
                };
                build_client(settings, &target.region, &identity, &self.metrics).await
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

/// Counts the attempts the SDK retries (`ecsrun_ecs_retries_total`): a call that succeeded on its third
/// attempt is otherwise counted only as `ok`.
struct RetryCounter {
    metrics: Arc<Metrics>,
}

impl Debug for RetryCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RetryCounter")
    }
}

impl Intercept for RetryCounter {
    fn name(&self) -> &'static str {
        "ecsrun-retry-counter"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<RequestAttempts>().is_some_and(|attempts| attempts.attempts() > 1) {
            let operation = cfg.load::<Metadata>().map_or("unknown", |metadata| metadata.name());
            self.metrics.ecs_retries.with_label_values(&[operation]).inc();
        }
        Ok(())
    }
}

async fn build_client(settings: &AwsSettings, region: &str, identity: &Identity, metrics: &Arc<Metrics>) -> Client {
    let (base, credentials) = aws_base(settings, region, identity).await;
    let mut config = aws_sdk_ecs::config::Builder::from(&base).interceptor(RetryCounter { metrics: metrics.clone() });
    if let Some(url) = &settings.ecs_endpoint_url {
        config = config.endpoint_url(url);
    }
    if let Some(credentials) = credentials {
        config = config.credentials_provider(credentials);
    }
    Client::from_conf(config.build())
}

/// What every client of `identity` in `region` shares: aws-config's defaults with the call timeout, and
/// the identity's credentials (None: the default chain).
async fn aws_base(
    settings: &AwsSettings,
    region: &str,
    identity: &Identity,
) -> (aws_config::SdkConfig, Option<SharedCredentialsProvider>) {
    let timeouts = TimeoutConfig::builder().operation_timeout(settings.call_timeout).build();
    let base = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .timeout_config(timeouts)
        .load()
        .await;
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

impl Ecs for AwsEcs {
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

    async fn list_tasks_started_by(
        &self,
        target: &EcsTarget,
        started_by: &str,
        desired_status: DesiredStatus,
    ) -> Result<Vec<String>, EcsError> {
        let client = self.client(target).await;
        let desired_status = match desired_status {
            DesiredStatus::Running => types::DesiredStatus::Running,
            DesiredStatus::Stopped => types::DesiredStatus::Stopped,
        };
        self.call("ListTasks", target, async {
            client
                .list_tasks()
                .cluster(&target.cluster)
                .started_by(started_by)
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
                    .send()
                    .await
                    .map_err(|error| classify("DescribeTaskDefinition", &error))?;
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
                })
            })
            .await?;
        self.task_definitions.insert(target, task_definition, &info);
        Ok(info)
    }

    /// Looks at the newest 100 ACTIVE revisions of the family (one ListTaskDefinitions page), newest first.
    async fn find_task_definition(
        &self,
        target: &EcsTarget,
        family: &str,
        (key, value): (&str, &str),
    ) -> Result<Option<String>, EcsError> {
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
            let tags = self
                .call("DescribeTaskDefinition", target, async {
                    client
                        .describe_task_definition()
                        .task_definition(arn)
                        .include(types::TaskDefinitionField::Tags)
                        .send()
                        .await
                        .map(|output| output.tags().to_vec())
                        .map_err(|error| classify("DescribeTaskDefinition", &error))
                })
                .await?;
            if tags.iter().any(|tag| tag.key() == Some(key) && tag.value() == Some(value)) {
                return Ok(Some(arn.clone()));
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
                .map_err(|error| classify("GetLogEvents", &error))?;
            Ok(output.events().iter().filter_map(|event| event.message().map(str::to_owned)).collect())
        })
        .await
    }

    fn cached_task_definition(&self, target: &EcsTarget, task_definition: &str) -> Option<TaskDefinitionInfo> {
        self.task_definitions.get(target, task_definition)
    }
}

mod template;

fn run_task_call(
    client: &Client,
    target: &EcsTarget,
    request: &LaunchRequest,
) -> Result<aws_sdk_ecs::operation::run_task::builders::RunTaskFluentBuilder, EcsError> {
    let invalid = |error: BuildError| EcsError::new(EcsErrorKind::InvalidParameter, "RunTask", error.to_string());
    let spec = &request.spec;
    let capacity_provider_strategy = spec
        .capacity_provider_strategy
        .as_ref()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    types::CapacityProviderStrategyItem::builder()
                        .capacity_provider(&item.capacity_provider)
                        .set_weight(item.weight)
                        .set_base(item.base)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(invalid)?;
    let network_configuration = spec
        .network_configuration
        .as_ref()
        .map(|network| {
            let vpc = &network.awsvpc_configuration;
            types::AwsVpcConfiguration::builder()
                .set_subnets(Some(vpc.subnets.clone()))
                .set_security_groups((!vpc.security_groups.is_empty()).then(|| vpc.security_groups.clone()))
                .set_assign_public_ip(vpc.assign_public_ip.map(|ip| match ip {
                    api::AssignPublicIp::Enabled => types::AssignPublicIp::Enabled,
                    api::AssignPublicIp::Disabled => types::AssignPublicIp::Disabled,
                }))
                .build()
                .map(|vpc| types::NetworkConfiguration::builder().awsvpc_configuration(vpc).build())
        })
        .transpose()
        .map_err(invalid)?;
    let overrides = request.overrides.as_ref().map(task_override).transpose().map_err(invalid)?;
    let volume_configurations = (!spec.volume_configurations.is_empty())
        .then(|| spec.volume_configurations.iter().map(volume_configuration).collect::<Result<Vec<_>, _>>())
        .transpose()
        .map_err(invalid)?;
    let tags = request.tags.iter().map(|(key, value)| types::Tag::builder().key(key).value(value).build()).collect();

    Ok(client
        .run_task()
        .cluster(&target.cluster)
        .task_definition(&request.task_definition)
        .count(1)
        .client_token(&request.client_token)
        .started_by(&request.started_by)
        .set_launch_type(spec.launch_type.map(|launch_type| match launch_type {
            api::LaunchType::Fargate => types::LaunchType::Fargate,
            api::LaunchType::Ec2 => types::LaunchType::Ec2,
            api::LaunchType::External => types::LaunchType::External,
        }))
        .set_capacity_provider_strategy(capacity_provider_strategy)
        .set_platform_version(spec.platform_version.clone())
        .set_network_configuration(network_configuration)
        .set_overrides(overrides)
        .set_group(spec.group.clone())
        .set_tags(Some(tags))
        .set_propagate_tags(spec.propagate_tags.map(|propagate| match propagate {
            api::PropagateTags::TaskDefinition => types::PropagateTags::TaskDefinition,
            api::PropagateTags::None => types::PropagateTags::None,
        }))
        .set_placement_constraints((!spec.placement_constraints.is_empty()).then(|| {
            spec.placement_constraints
                .iter()
                .map(|constraint| {
                    types::PlacementConstraint::builder()
                        .r#type(match constraint.type_ {
                            api::PlacementConstraintType::DistinctInstance => {
                                types::PlacementConstraintType::DistinctInstance
                            }
                            api::PlacementConstraintType::MemberOf => types::PlacementConstraintType::MemberOf,
                        })
                        .set_expression(constraint.expression.clone())
                        .build()
                })
                .collect()
        }))
        .set_placement_strategy((!spec.placement_strategy.is_empty()).then(|| {
            spec.placement_strategy
                .iter()
                .map(|strategy| {
                    types::PlacementStrategy::builder()
                        .r#type(match strategy.type_ {
                            api::PlacementStrategyType::Random => types::PlacementStrategyType::Random,
                            api::PlacementStrategyType::Spread => types::PlacementStrategyType::Spread,
                            api::PlacementStrategyType::Binpack => types::PlacementStrategyType::Binpack,
                        })
                        .set_field(strategy.field.clone())
                        .build()
                })
                .collect()
        }))
        .enable_execute_command(spec.enable_execute_command)
        .set_enable_ecs_managed_tags(spec.enable_ecs_managed_tags.then_some(true))
        .set_volume_configurations(volume_configurations))
}

fn volume_configuration(volume: &api::TaskVolumeConfiguration) -> Result<types::TaskVolumeConfiguration, BuildError> {
    let ebs = &volume.managed_ebs_volume;
    let managed = types::TaskManagedEbsVolumeConfiguration::builder()
        .role_arn(&ebs.role_arn)
        .set_size_in_gib(ebs.size_in_gib)
        .set_volume_type(ebs.volume_type.clone())
        .set_iops(ebs.iops)
        .set_throughput(ebs.throughput)
        .set_encrypted(ebs.encrypted)
        .set_kms_key_id(ebs.kms_key_id.clone())
        .set_snapshot_id(ebs.snapshot_id.clone())
        .set_filesystem_type(ebs.filesystem_type.as_deref().map(types::TaskFilesystemType::from))
        .build()?;
    types::TaskVolumeConfiguration::builder().name(&volume.name).managed_ebs_volume(managed).build()
}

fn task_override(overrides: &api::TaskOverrides) -> Result<types::TaskOverride, BuildError> {
    let ephemeral_storage = overrides
        .ephemeral_storage
        .as_ref()
        .map(|storage| types::EphemeralStorage::builder().size_in_gib(storage.size_in_gib).build());
    let containers = overrides.container_overrides.iter().map(container_override).collect::<Result<Vec<_>, _>>()?;
    Ok(types::TaskOverride::builder()
        .set_container_overrides(Some(containers))
        .set_cpu(overrides.cpu.clone())
        .set_memory(overrides.memory.clone())
        .set_task_role_arn(overrides.task_role_arn.clone())
        .set_execution_role_arn(overrides.execution_role_arn.clone())
        .set_ephemeral_storage(ephemeral_storage)
        .build())
}

fn container_override(container: &api::ContainerOverride) -> Result<types::ContainerOverride, BuildError> {
    let environment_files = container.environment_files.iter().map(environment_file).collect::<Result<Vec<_>, _>>()?;
    let resource_requirements =
        container.resource_requirements.iter().map(resource_requirement).collect::<Result<Vec<_>, _>>()?;
    Ok(types::ContainerOverride::builder()
        .name(&container.name)
        .set_command(container.command.clone())
        .set_environment(environment(&container.environment))
        .set_cpu(container.cpu)
        .set_memory(container.memory)
        .set_memory_reservation(container.memory_reservation)
        .set_environment_files((!environment_files.is_empty()).then_some(environment_files))
        .set_resource_requirements((!resource_requirements.is_empty()).then_some(resource_requirements))
        .build())
}

fn environment_file(file: &api::EnvironmentFile) -> Result<types::EnvironmentFile, BuildError> {
    let kind = match file.type_ {
        api::EnvironmentFileType::S3 => types::EnvironmentFileType::S3,
    };
    types::EnvironmentFile::builder().value(&file.value).r#type(kind).build()
}

fn resource_requirement(requirement: &api::ResourceRequirement) -> Result<types::ResourceRequirement, BuildError> {
    let kind = match requirement.type_ {
        api::ResourceRequirementType::Gpu => types::ResourceType::Gpu,
        api::ResourceRequirementType::InferenceAccelerator => types::ResourceType::InferenceAccelerator,
    };
    types::ResourceRequirement::builder().value(&requirement.value).r#type(kind).build()
}

/// Environment variables as ECS's name/value pairs; None for none (the parameter is left out).
fn environment(variables: &[api::EnvVar]) -> Option<Vec<types::KeyValuePair>> {
    (!variables.is_empty()).then(|| {
        variables.iter().map(|var| types::KeyValuePair::builder().name(&var.name).value(&var.value).build()).collect()
    })
}

fn timestamp(time: &aws_smithy_types::DateTime) -> Option<jiff::Timestamp> {
    jiff::Timestamp::new(time.secs(), time.subsec_nanos() as i32).ok()
}

fn snapshot(task: &types::Task) -> TaskSnapshot {
    TaskSnapshot {
        task_arn: task.task_arn().unwrap_or_default().to_owned(),
        cluster_arn: task.cluster_arn().map(str::to_owned),
        task_definition_arn: task.task_definition_arn().map(str::to_owned),
        last_status: task.last_status().map(str::to_owned),
        desired_status: task.desired_status().map(str::to_owned),
        // Unknown stop codes arrive as `Unknown` variants; as_str keeps their text.
        stop_code: task.stop_code().map(|code| code.as_str().to_owned()),
        stopped_reason: task.stopped_reason().filter(|reason| !reason.is_empty()).map(str::to_owned),
        created_at: task.created_at().and_then(timestamp),
        started_at: task.started_at().and_then(timestamp),
        stopped_at: task.stopped_at().and_then(timestamp),
        cpu: task.cpu().map(str::to_owned),
        memory: task.memory().map(str::to_owned),
        capacity_provider: task
            .capacity_provider_name()
            .map(str::to_owned)
            .or_else(|| task.launch_type().map(|launch_type| launch_type.as_str().to_owned())),
        containers: task
            .containers()
            .iter()
            .map(|container| ContainerSnapshot {
                name: container.name().unwrap_or_default().to_owned(),
                exit_code: container.exit_code(),
                reason: container.reason().map(str::to_owned),
                last_status: container.last_status().map(str::to_owned),
            })
            .collect(),
    }
}

fn log_configuration(log: &types::LogConfiguration) -> LogConfiguration {
    let option = |key: &str| log.options().and_then(|options| options.get(key)).cloned();
    LogConfiguration {
        driver: log.log_driver().as_str().to_owned(),
        group: option("awslogs-group"),
        region: option("awslogs-region"),
        stream_prefix: option("awslogs-stream-prefix"),
    }
}

fn failure(failure: &types::Failure) -> EcsFailure {
    EcsFailure {
        arn: failure.arn().map(str::to_owned),
        reason: failure.reason().map(str::to_owned),
        detail: failure.detail().map(str::to_owned),
    }
}

/// Classifies an SDK error into what the controller does about it.
fn classify<E>(operation: &'static str, error: &SdkError<E, HttpResponse>) -> EcsError
where
    E: ProvideErrorMetadata + std::error::Error + Debug + 'static,
{
    let kind = match error {
        SdkError::TimeoutError(_) => EcsErrorKind::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_timeout() => EcsErrorKind::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_io() => EcsErrorKind::Network,
        // Credential resolution (STS unreachable, web identity token missing) fails here too, as does a
        // connection closed mid-answer: only the error's own words tell them apart.
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) if mentions_credentials(error) => {
            EcsErrorKind::Credentials
        }
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => EcsErrorKind::Network,
        SdkError::ResponseError(_) => EcsErrorKind::Server,
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            classify_service_error(service.err().code(), service.err().message(), status)
        }
        _ => EcsErrorKind::Network,
    };
    let message = match error {
        SdkError::ServiceError(service) => match (service.err().code(), service.err().message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ => DisplayErrorContext(error).to_string(),
        },
        // The default rendering dumps the whole raw response; the status is what an operator needs.
        SdkError::ResponseError(response) => {
            format!("unreadable response from the ECS endpoint (HTTP {})", response.raw().status().as_u16())
        }
        _ => DisplayErrorContext(error).to_string(),
    };
    EcsError::new(kind, operation, message)
}

fn mentions_credentials(error: &(dyn std::error::Error + 'static)) -> bool {
    let text = DisplayErrorContext(error).to_string().to_lowercase();
    text.contains("credential") || text.contains("identity")
}

fn classify_service_error(code: Option<&str>, message: Option<&str>, http_status: u16) -> EcsErrorKind {
    let message = message.unwrap_or_default().to_lowercase();
    let names_task_definition = message.contains("task definition") || message.contains("taskdefinition");
    match code.unwrap_or_default() {
        "ThrottlingException" | "Throttling" | "TooManyRequestsException" | "RequestLimitExceeded" => {
            EcsErrorKind::Throttled
        }
        // Some throttles come back wrapped in other error types; the message gives them away.
        _ if message.contains("rate exceeded") => EcsErrorKind::Throttled,
        "ClusterNotFoundException" => EcsErrorKind::ClusterNotFound,
        "InvalidParameterException" | "ClientException" if names_task_definition => {
            EcsErrorKind::TaskDefinitionNotFound
        }
        "InvalidParameterException" => EcsErrorKind::InvalidParameter,
        "AccessDeniedException" | "AccessDenied" | "UnrecognizedClientException" | "InvalidSignatureException" => {
            EcsErrorKind::AccessDenied
        }
        "ExpiredTokenException" => EcsErrorKind::Credentials,
        "ServerException" | "ServiceUnavailableException" | "InternalFailure" => EcsErrorKind::Server,
        _ if http_status >= 500 => EcsErrorKind::Server,
        _ => EcsErrorKind::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
    use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
    use aws_sdk_ecs::operation::list_task_definitions::ListTaskDefinitionsOutput;
    use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
    use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput;
    use aws_sdk_ecs::operation::run_task::RunTaskOutput;
    use aws_sdk_ecs::operation::stop_task::StopTaskOutput;
    use aws_sdk_ecs::types::error::ConflictException;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    const ARN: &str = "arn:aws:ecs:eu-west-1:123456789012:task/demo/0123456789abcdef";

    fn target() -> EcsTarget {
        EcsTarget { region: "eu-west-1".into(), identity: Identity::Default, cluster: "demo".into() }
    }

    fn adapter(client: Client) -> (AwsEcs, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new().unwrap());
        (AwsEcs::from_client(client, metrics.clone()), metrics)
    }

    fn request() -> LaunchRequest {
        let spec: api::EcsTaskRunSpec = serde_json::from_value(serde_json::json!({
            "cluster": "demo",
            "taskDefinition": "report:3",
            "launchType": "FARGATE",
            "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1"], "securityGroups": ["sg-1"], "assignPublicIp": "DISABLED"}},
            "tags": {"team": "data"}
        }))
        .unwrap();
        LaunchRequest {
            overrides: Some(api::TaskOverrides {
                container_overrides: vec![api::ContainerOverride {
                    name: "app".into(),
                    environment: vec![api::EnvVar { name: "ECSRUN_ATTEMPT".into(), value: "1".into() }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            spec,
            task_definition: "report:3".into(),
            client_token: "uid-1".into(),
            started_by: "ecsrun/uid".into(),
            tags: vec![("ecsrun.dev/uid".into(), "uid".into()), ("team".into(), "data".into())],
            actor: Actor::default(),
        }
    }

    fn task(last_status: &str) -> types::Task {
        types::Task::builder()
            .task_arn(ARN)
            .last_status(last_status)
            .stop_code(types::TaskStopCode::EssentialContainerExited)
            .containers(types::Container::builder().name("app").exit_code(3).build())
            .build()
    }

    /// An error response as ECS sends it (AWS JSON 1.1), so the SDK's own deserialisation runs.
    fn aws_error(status: u16, type_: &'static str, message: &'static str) -> impl Fn() -> HttpResponse {
        move || {
            HttpResponse::new(
                StatusCode::try_from(status).unwrap(),
                SdkBody::from(format!(r#"{{"__type":"{type_}","message":"{message}"}}"#)),
            )
        }
    }

    fn calls(metrics: &Metrics, operation: &str, outcome: &str) -> u64 {
        metrics.ecs_calls.with_label_values(&[operation, outcome]).get()
    }

    #[tokio::test]
    async fn run_task_sends_identity_and_network_and_returns_the_task() {
        let rule = mock!(Client::run_task)
            .match_requests(|req| {
                req.client_token() == Some("uid-1")
                    && req.started_by() == Some("ecsrun/uid")
                    && req.count() == Some(1)
                    && req.launch_type() == Some(&types::LaunchType::Fargate)
                    && req.tags().iter().any(|t| t.key() == Some("ecsrun.dev/uid"))
                    && req
                        .network_configuration()
                        .and_then(|n| n.awsvpc_configuration())
                        .is_some_and(|v| v.subnets() == ["subnet-1"] && v.security_groups() == ["sg-1"])
                    && req
                        .overrides()
                        .is_some_and(|o| o.container_overrides()[0].environment()[0].name() == Some("ECSRUN_ATTEMPT"))
            })
            .then_output(|| RunTaskOutput::builder().tasks(task("PROVISIONING")).build());
        let (ecs, metrics) = adapter(mock_client!(aws_sdk_ecs, [&rule]));

        let outcome = ecs.run_task(&target(), &request()).await.unwrap();

        let RunTaskOutcome::Started(task) = outcome else { panic!("{outcome:?}") };
        assert_eq!(task.task_arn, ARN);
        assert_eq!(task.last_status.as_deref(), Some("PROVISIONING"));
        assert_eq!(task.containers[0].exit_code, Some(3));
        assert_eq!(task.stop_code.as_deref(), Some("EssentialContainerExited"));
        assert_eq!(rule.num_calls(), 1);
        assert_eq!(calls(&metrics, "RunTask", "ok"), 1);
    }

    #[tokio::test]
    async fn run_task_sends_managed_tags_ebs_volumes_environment_files_and_gpus() {
        let mut request = request();
        request.spec = serde_json::from_value(serde_json::json!({
            "cluster": "demo",
            "taskDefinition": "train:4",
            "enableECSManagedTags": true,
            "volumeConfigurations": [{"name": "scratch", "managedEBSVolume": {
                "roleArn": "arn:aws:iam::123456789012:role/ecsInfrastructureRole", "sizeInGiB": 500,
                "volumeType": "gp3", "iops": 6000, "throughput": 500, "encrypted": true, "filesystemType": "xfs"}}]
        }))
        .unwrap();
        request.overrides = Some(api::TaskOverrides {
            container_overrides: vec![api::ContainerOverride {
                name: "trainer".into(),
                environment_files: vec![api::EnvironmentFile {
                    value: "arn:aws:s3:::jobs/train.env".into(),
                    type_: api::EnvironmentFileType::S3,
                }],
                resource_requirements: vec![api::ResourceRequirement {
                    type_: api::ResourceRequirementType::Gpu,
                    value: "2".into(),
                }],
                ..Default::default()
            }],
            ..Default::default()
        });
        let rule = mock!(Client::run_task)
            .match_requests(|req| {
                let volume = &req.volume_configurations()[0];
                let ebs = volume.managed_ebs_volume();
                let container = &req.overrides().expect("overrides").container_overrides()[0];
                req.enable_ecs_managed_tags() == Some(true)
                    && volume.name() == "scratch"
                    && ebs.is_some_and(|ebs| {
                        ebs.role_arn() == "arn:aws:iam::123456789012:role/ecsInfrastructureRole"
                            && ebs.size_in_gib() == Some(500)
                            && ebs.volume_type() == Some("gp3")
                            && ebs.iops() == Some(6000)
                            && ebs.throughput() == Some(500)
                            && ebs.encrypted() == Some(true)
                            && ebs.filesystem_type() == Some(&types::TaskFilesystemType::Xfs)
                    })
                    && container.environment_files()[0].value() == "arn:aws:s3:::jobs/train.env"
                    && container.environment_files()[0].r#type() == &types::EnvironmentFileType::S3
                    && container.resource_requirements()[0].r#type() == &types::ResourceType::Gpu
                    && container.resource_requirements()[0].value() == "2"
            })
            .then_output(|| RunTaskOutput::builder().tasks(task("PROVISIONING")).build());
        let (ecs, _) = adapter(mock_client!(aws_sdk_ecs, [&rule]));
        let outcome = ecs.run_task(&target(), &request).await.unwrap();
        assert!(matches!(outcome, RunTaskOutcome::Started(_)), "{outcome:?}");
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn run_task_leaves_out_what_the_spec_does_not_ask_for() {
        let rule = mock!(Client::run_task)
            .match_requests(|req| {
                req.enable_ecs_managed_tags().is_none()
                    && req.volume_configurations().is_empty()
                    && req.overrides().is_some_and(|o| {
                        o.container_overrides()[0].environment_files().is_empty()
                            && o.container_overrides()[0].resource_requirements().is_empty()
                    })
            })
            .then_output(|| RunTaskOutput::builder().tasks(task("PROVISIONING")).build());
        let (ecs, _) = adapter(mock_client!(aws_sdk_ecs, [&rule]));
        ecs.run_task(&target(), &request()).await.unwrap();
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn run_task_failures_without_a_task_are_reported() {
        let rule = mock!(Client::run_task).then_output(|| {
            RunTaskOutput::builder()
                .failures(types::Failure::builder().reason("RESOURCE:MEMORY").arn("arn:ci").build())
                .build()
        });
        let (ecs, _) = adapter(mock_client!(aws_sdk_ecs, [&rule]));
        let outcome = ecs.run_task(&target(), &request()).await.unwrap();
        assert_eq!(
            outcome,
            RunTaskOutcome::Failures(vec![EcsFailure {
                arn: Some("arn:ci".into()),
                reason: Some("RESOURCE:MEMORY".into()),
                detail: None
            }])
        );
    }

    #[tokio::test]
    async fn run_task_conflict_returns_the_tasks_already_started_with_the_token() {
        let rule = mock!(Client::run_task).then_error(|| {
            RunTaskError::ConflictException(
                ConflictException::builder()
                    .message("clientToken was used with different parameters")
                    .resource_ids(ARN)
                    .build(),
            )
        });
        let (ecs, _) = adapter(mock_client!(aws_sdk_ecs, [&rule]));
        assert_eq!(ecs.run_task(&target(), &request()).await.unwrap(), RunTaskOutcome::Conflict(vec![ARN.into()]));
    }

    #[tokio::test]
    async fn permanent_errors_are_classified_with_the_aws_message() {
        let cluster = mock!(Client::run_task).then_http_response(aws_error(
            400,
            "ClusterNotFoundException",
            "Cluster not found.",
        ));
        let task_definition = mock!(Client::run_task).then_http_response(aws_error(
            400,
            "InvalidParameterException",
            "TaskDefinition not found.",
        ));
        let denied = mock!(Client::run_task).then_http_response(aws_error(
            400,
            "AccessDeniedException",
            "User: arn:aws:sts::123456789012:assumed-role/ecsrun/x is not authorized to perform: ecs:RunTask",
        ));
        let (ecs, metrics) =
            adapter(mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&cluster, &task_definition, &denied]));

        let error = ecs.run_task(&target(), &request()).await.unwrap_err();
        assert_eq!(error.kind, EcsErrorKind::ClusterNotFound);
        assert!(error.message.contains("Cluster not found."), "{error}");
        assert!(error.kind.is_permanent());

        let error = ecs.run_task(&target(), &request()).await.unwrap_err();
        assert_eq!(error.kind, EcsErrorKind::TaskDefinitionNotFound);
        assert_eq!(calls(&metrics, "RunTask", "cluster_not_found"), 1);
        assert_eq!(calls(&metrics, "RunTask", "task_definition_not_found"), 1);

        // Missing IAM permissions do not fix themselves: the run fails with the policy's own words.
        let error = ecs.run_task(&target(), &request()).await.unwrap_err();
        assert_eq!(error.kind, EcsErrorKind::AccessDenied);
        assert!(error.kind.is_permanent());
        assert!(error.message.contains("not authorized to perform: ecs:RunTask"), "{error}");
    }

    #[tokio::test]
    async fn throttling_is_transient_and_counted() {
        let rule =
            mock!(Client::describe_tasks).then_http_response(aws_error(400, "ThrottlingException", "Rate exceeded"));
        let (ecs, metrics) = adapter(mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], |config| config
            .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled())));

        let error = ecs.describe_tasks(&target(), &[ARN.into()]).await.unwrap_err();
        assert_eq!(error.kind, EcsErrorKind::Throttled, "{error}");
        assert!(!error.kind.is_permanent());
        assert_eq!(calls(&metrics, "DescribeTasks", "throttled"), 1);
    }

    #[tokio::test]
    async fn a_log_tail_is_the_streams_newest_events_oldest_first() {
        use aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsOutput;
        use aws_sdk_cloudwatchlogs::types::OutputLogEvent;
        let tail = mock!(aws_sdk_cloudwatchlogs::Client::get_log_events)
            .match_requests(|request| {
                request.log_group_name() == Some("/ecs/report")
                    && request.log_stream_name() == Some("ecs/app/0123456789abcdef")
                    && request.start_from_head() == Some(false)
                    && request.limit() == Some(20)
            })
            .then_output(|| {
                GetLogEventsOutput::builder()
                    .events(OutputLogEvent::builder().message("line 49").build())
                    .events(OutputLogEvent::builder().message("line 50").build())
                    .build()
            });
        let missing = mock!(aws_sdk_cloudwatchlogs::Client::get_log_events).then_http_response(aws_error(
            400,
            "ResourceNotFoundException",
            "The specified log group does not exist.",
        ));
        let logs = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::Sequential, [&tail, &missing], |config| config
            .retry_config(aws_sdk_cloudwatchlogs::config::retry::RetryConfig::disabled()));
        let metrics = Arc::new(Metrics::new().unwrap());
        let ecs = AwsEcs::from_clients(mock_client!(aws_sdk_ecs, []), logs, metrics.clone());
        let stream = LogStream {
            region: "eu-west-1".into(),
            group: "/ecs/report".into(),
            stream: "ecs/app/0123456789abcdef".into(),
        };

        assert_eq!(ecs.log_tail(&target(), &stream, 20).await.unwrap(), vec!["line 49", "line 50"]);
        let error = ecs.log_tail(&target(), &stream, 20).await.unwrap_err();
        assert!(error.message.contains("ResourceNotFoundException"), "{error}");
        assert_eq!(calls(&metrics, "GetLogEvents", "ok"), 1);
        assert_eq!(calls(&metrics, "GetLogEvents", "rejected"), 1);
    }

    #[tokio::test]
    async fn server_errors_are_transient() {
        let rule = mock!(Client::stop_task).then_http_response(aws_error(500, "ServerException", "internal"));
        let (ecs, _) = adapter(mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], |config| config
            .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled())));
        let error = ecs.stop_task(&target(), ARN, "bye", &Actor::default()).await.unwrap_err();
        assert_eq!(error.kind, EcsErrorKind::Server);
    }

    #[tokio::test]
    async fn describe_reports_missing_tasks_whether_or_not_ecs_lists_a_failure() {
        let other = "arn:aws:ecs:eu-west-1:123456789012:task/demo/unknown";
        let quiet = "arn:aws:ecs:eu-west-1:123456789012:task/demo/quiet";
        let rule = mock!(Client::describe_tasks).then_output(move || {
            DescribeTasksOutput::builder()
                .tasks(task("RUNNING"))
                .failures(types::Failure::builder().arn(other).reason("MISSING").build())
                .build()
        });
        let (ecs, _) = adapter(mock_client!(aws_sdk_ecs, [&rule]));
        let described = ecs.describe_tasks(&target(), &[ARN.into(), other.into(), quiet.into()]).await.unwrap();
        assert_eq!(described.tasks.len(), 1);
        assert_eq!(described.missing, vec![other.to_string(), quiet.to_string()]);
    }

    #[tokio::test]
    async fn stopping_a_task_ecs_forgot_is_not_an_error() {
        let rule = mock!(Client::stop_task).then_http_response(aws_error(
            400,
            "InvalidParameterException",
            "The referenced task was not found.",
        ));
        let ok = mock!(Client::stop_task).then_output(|| StopTaskOutput::builder().task(task("STOPPED")).build());
        let (ecs, _) = adapter(mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule, &ok]));
        assert_eq!(ecs.stop_task(&target(), ARN, "bye", &Actor::default()).await.unwrap(), None);
        let stopped =
            ecs.stop_task(&target(), ARN, "bye", &Actor::default()).await.unwrap().expect("StopTask returns the task");
        assert_eq!(stopped.last_status.as_deref(), Some("STOPPED"));
        assert_eq!(ok.num_calls(), 1);
    }

    #[tokio::test]
    async fn list_tasks_follows_pages_and_filters_by_started_by() {
        let first = mock!(Client::list_tasks)
            .match_requests(|req| {
                req.started_by() == Some("ecsrun/uid") && req.desired_status() == Some(&types::DesiredStatus::Stopped)
            })
            .then_output(|| ListTasksOutput::builder().task_arns("a").next_token("more").build());
        let second = mock!(Client::list_tasks)
            .match_requests(|req| req.next_token() == Some("more"))
            .then_output(|| ListTasksOutput::builder().task_arns("b").build());
        let (ecs, _) = adapter(mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&first, &second]));
        let arns = ecs.list_tasks_started_by(&target(), "ecsrun/uid", DesiredStatus::Stopped).await.unwrap();
        assert_eq!(arns, vec!["a".to_string(), "b".to_string()]);
    }

    #[tokio::test]
    async fn a_template_is_registered_in_ecs_shape_with_its_hash_tag() {
        let template: api::TaskDefinitionTemplate = serde_json::from_value(serde_json::json!({
            "family": "etl", "cpu": "256", "memory": "512", "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "executionRoleArn": "arn:aws:iam::123456789012:role/exec",
            "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
            "volumes": [{"name": "scratch", "configuredAtLaunch": true}],
            "containerDefinitions": [{
                "name": "app", "image": "etl:1", "command": ["run"],
                "secrets": [{"name": "DB", "valueFrom": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db"}],
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/etl"}},
                "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/scratch"}],
                "dependsOn": [{"containerName": "app", "condition": "START"}]
            }]
        }))
        .unwrap();
        let rule = mock!(Client::register_task_definition)
            .match_requests(|req| {
                let app = &req.container_definitions()[0];
                req.family() == Some("etl")
                    && req.network_mode() == Some(&types::NetworkMode::Awsvpc)
                    && req.requires_compatibilities() == [types::Compatibility::Fargate]
                    && req.runtime_platform().and_then(|p| p.cpu_architecture()) == Some(&types::CpuArchitecture::Arm64)
                    && req.volumes()[0].configured_at_launch() == Some(true)
                    && app.command() == ["run"]
                    && app.secrets()[0].value_from().contains("secret:db")
                    && app.log_configuration().is_some_and(|log| log.log_driver() == &types::LogDriver::Awslogs)
                    && app.mount_points()[0].container_path() == Some("/scratch")
                    && app.depends_on()[0].condition() == &types::ContainerCondition::Start
                    && req.tags().iter().any(|t| t.key() == Some("ecsrun.dev/template-hash") && t.value() == Some("h"))
            })
            .then_output(|| {
                RegisterTaskDefinitionOutput::builder()
                    .task_definition(types::TaskDefinition::builder().task_definition_arn("arn:td/etl:1").build())
                    .build()
            });
        let (ecs, _) = adapter(mock_client!(aws_sdk_ecs, [&rule]));
        let tags = vec![("ecsrun.dev/template-hash".to_owned(), "h".to_owned())];
        assert_eq!(ecs.register_task_definition(&target(), &template, &tags).await.unwrap(), "arn:td/etl:1");
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_registered_template_is_found_by_its_tag_in_its_own_family() {
        let td = |name: &str| format!("arn:aws:ecs:eu-west-1:123456789012:task-definition/{name}");
        let (newest, older, other_family) = (td("etl:3"), td("etl:2"), td("etl-nightly:9"));
        let list = mock!(Client::list_task_definitions)
            .match_requests(|req| req.family_prefix() == Some("etl") && req.sort() == Some(&types::SortOrder::Desc))
            .sequence()
            .output({
                let arns = vec![other_family.clone(), newest.clone(), older.clone()];
                move || ListTaskDefinitionsOutput::builder().set_task_definition_arns(Some(arns.clone())).build()
            })
            .repeatedly()
            .build();
        let tagged = |hash: &'static str| {
            move || {
                DescribeTaskDefinitionOutput::builder()
                    .tags(types::Tag::builder().key("ecsrun.dev/template-hash").value(hash).build())
                    .build()
            }
        };
        let describe_newest = mock!(Client::describe_task_definition)
            .match_requests({
                let newest = newest.clone();
                move |req| req.task_definition() == Some(newest.as_str())
            })
            .sequence()
            .output(tagged("other"))
            .repeatedly()
            .build();
        let describe_older = mock!(Client::describe_task_definition)
            .match_requests({
                let older = older.clone();
                move |req| {
                    req.task_definition() == Some(older.as_str()) && req.include() == [types::TaskDefinitionField::Tags]
                }
            })
            .sequence()
            .output(tagged("h"))
            .repeatedly()
            .build();
        let (ecs, _) =
            adapter(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&list, &describe_newest, &describe_older]));
        let found = ecs.find_task_definition(&target(), "etl", ("ecsrun.dev/template-hash", "h")).await.unwrap();
        assert_eq!(found, Some(older.clone()));
        assert_eq!((describe_newest.num_calls(), describe_older.num_calls()), (1, 1), "etl-nightly is not looked at");
        let missing = ecs.find_task_definition(&target(), "etl", ("ecsrun.dev/template-hash", "none")).await.unwrap();
        assert_eq!(missing, None);
    }

    #[test]
    fn bare_families_are_told_from_pinned_revisions() {
        assert!(is_bare_family("report"));
        assert!(is_bare_family("arn:aws:ecs:eu-west-1:123456789012:task-definition/report"));
        assert!(!is_bare_family("report:3"));
        assert!(!is_bare_family("arn:aws:ecs:eu-west-1:123456789012:task-definition/report:3"));
    }

    const REPORT_3: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/report:3";

    /// DescribeTaskDefinition's answer for report:3 with these containers (name, essential).
    fn report_3(containers: &[(&str, Option<bool>)]) -> DescribeTaskDefinitionOutput {
        let definition = containers.iter().fold(
            types::TaskDefinition::builder().task_definition_arn(REPORT_3),
            |definition, (name, essential)| {
                definition.container_definitions(
                    types::ContainerDefinition::builder().name(*name).set_essential(*essential).build(),
                )
            },
        );
        DescribeTaskDefinitionOutput::builder().task_definition(definition.build()).build()
    }

    #[tokio::test]
    async fn a_family_lookup_also_serves_its_revision_arn_and_other_regions_ask_again() {
        let td = REPORT_3;
        let rule = mock!(Client::describe_task_definition).then_output(|| report_3(&[("app", None)]));
        let (ecs, _) = adapter(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&rule]));
        let by_family = ecs.describe_task_definition(&target(), "report").await.unwrap();
        assert_eq!(ecs.cached_task_definition(&target(), "report"), Some(by_family.clone()));
        assert_eq!(ecs.describe_task_definition(&target(), "report").await.unwrap(), by_family);
        assert_eq!(ecs.describe_task_definition(&target(), td).await.unwrap(), by_family);
        assert_eq!(rule.num_calls(), 1, "the family and its revision ARN are both served from the cache");
        let elsewhere = EcsTarget { region: "us-east-1".into(), ..target() };
        ecs.describe_task_definition(&elsewhere, "report").await.unwrap();
        assert_eq!(rule.num_calls(), 2, "the same family name in another region is another task definition");
    }

    #[tokio::test]
    async fn concurrent_first_lookups_of_a_family_ask_ecs_once() {
        let rule = mock!(Client::describe_task_definition).then_output(|| report_3(&[]));
        let (ecs, _) = adapter(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&rule]));
        let here = target();
        let lookups = futures::future::join_all((0..16).map(|_| ecs.describe_task_definition(&here, "report"))).await;
        assert!(lookups.iter().all(Result::is_ok));
        assert_eq!(rule.num_calls(), 1, "a burst of runs of one family asks once");
    }

    #[tokio::test]
    async fn task_definitions_are_cached_by_revision_arn() {
        let td = REPORT_3;
        let rule = mock!(Client::describe_task_definition)
            .then_output(|| report_3(&[("app", None), ("log-router", Some(false))]));
        let (ecs, _) = adapter(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&rule]));
        let first = ecs.describe_task_definition(&target(), td).await.unwrap();
        let second = ecs.describe_task_definition(&target(), td).await.unwrap();
        assert_eq!(first, second);
        assert_eq!(
            first.containers,
            vec![
                ContainerDefinitionInfo { name: "app".into(), essential: true, log: None },
                ContainerDefinitionInfo { name: "log-router".into(), essential: false, log: None },
            ]
        );
        assert_eq!(rule.num_calls(), 1, "the second lookup is served from the cache");
    }

    #[test]
    fn a_connection_closed_mid_answer_is_a_network_error_and_a_credentials_failure_is_not() {
        use aws_sdk_ecs::operation::describe_tasks::DescribeTasksError;
        use aws_smithy_runtime_api::client::result::ConnectorError;
        let failure = |text: &str| -> SdkError<DescribeTasksError, HttpResponse> {
            SdkError::dispatch_failure(ConnectorError::other(text.to_owned().into(), None))
        };
        let closed = failure("client error (SendRequest): connection closed before message completed");
        assert_eq!(classify("DescribeTasks", &closed).kind, EcsErrorKind::Network);
        let credentials = failure("failed to load credentials: an error occurred while loading credentials");
        assert_eq!(classify("DescribeTasks", &credentials).kind, EcsErrorKind::Credentials);
    }

    #[test]
    fn classification_table() {
        use EcsErrorKind::*;
        let cases: &[(Option<&str>, Option<&str>, u16, EcsErrorKind)] = &[
            (Some("ThrottlingException"), Some("Rate exceeded"), 400, Throttled),
            (Some("ClientException"), Some("Rate exceeded"), 400, Throttled),
            (Some("ClusterNotFoundException"), Some("Cluster not found."), 400, ClusterNotFound),
            (Some("ClientException"), Some("Unable to describe task definition."), 400, TaskDefinitionNotFound),
            (Some("InvalidParameterException"), Some("TaskDefinition not found."), 400, TaskDefinitionNotFound),
            (Some("InvalidParameterException"), Some("subnets can have at most 16 items."), 400, InvalidParameter),
            (Some("AccessDeniedException"), None, 400, AccessDenied),
            (Some("ExpiredTokenException"), None, 400, Credentials),
            (Some("ServerException"), None, 500, Server),
            (None, None, 503, Server),
            (Some("PlatformUnknownException"), None, 400, Rejected),
        ];
        for (code, message, status, expected) in cases {
            assert_eq!(classify_service_error(*code, *message, *status), *expected, "{code:?} {message:?}");
        }
    }
}
