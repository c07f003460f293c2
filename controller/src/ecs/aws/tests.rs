//! The adapter against aws-smithy-mocks: what each call sends, how answers and errors come back.

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

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::answers::classify_service_error;
use super::*;
use crate::ecs::templates::TEMPLATE_HASH_TAG;
use crate::ecs::{EcsFailure, NAMESPACE_TAG, is_bare_family};

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
        send_within: None,
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
    assert_eq!(task.last_status, Some("PROVISIONING".into()));
    assert_eq!(task.containers[0].exit_code, Some(3));
    assert_eq!(task.stop_code, Some("EssentialContainerExited".into()));
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
    let cluster =
        mock!(Client::run_task).then_http_response(aws_error(400, "ClusterNotFoundException", "Cluster not found."));
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
    let rule = mock!(Client::describe_tasks).then_http_response(aws_error(400, "ThrottlingException", "Rate exceeded"));
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
    // Told apart from other refusals: a stream that does not exist is a container that printed nothing.
    assert_eq!(error.kind, crate::ecs::EcsErrorKind::LogStreamNotFound);
    assert_eq!(calls(&metrics, "GetLogEvents", "ok"), 1);
    assert_eq!(calls(&metrics, "GetLogEvents", "log_stream_not_found"), 1);
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
    assert_eq!(stopped.last_status, Some("STOPPED".into()));
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

/// The template the lookup tests look for: family `etl`, one container, a task role.
fn etl_template() -> api::TaskDefinitionTemplate {
    serde_json::from_value(serde_json::json!({
        "family": "etl",
        "cpu": "1 vCPU",
        "memory": "2 GB",
        "networkMode": "awsvpc",
        "taskRoleArn": "arn:aws:iam::123456789012:role/etl-task",
        "containerDefinitions": [{
            "name": "app", "image": "etl:1", "command": ["run"],
            "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]
        }]
    }))
    .unwrap()
}

/// The template as ECS describes it once registered: its own spellings and defaults filled in.
fn described_etl(
    change: impl FnOnce(types::builders::ContainerDefinitionBuilder) -> types::builders::ContainerDefinitionBuilder,
) -> types::TaskDefinition {
    let container = types::ContainerDefinition::builder()
        .name("app")
        .image("etl:1")
        .command("run")
        // Another order, and ECS's defaults made explicit.
        .environment(types::KeyValuePair::builder().name("A").value("1").build())
        .environment(types::KeyValuePair::builder().name("B").value("2").build())
        .essential(true)
        .cpu(0)
        .set_mount_points(Some(vec![]))
        .set_volumes_from(Some(vec![]));
    types::TaskDefinition::builder()
        .family("etl")
        .cpu("1024")
        .memory("2048")
        .network_mode(types::NetworkMode::Awsvpc)
        .task_role_arn("arn:aws:iam::123456789012:role/etl-task")
        .container_definitions(change(container).build())
        .build()
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
                .task_definition(described_etl(|c| c))
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
    let (ecs, _) = adapter(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&list, &describe_newest, &describe_older]));
    let template = etl_template();
    let found = ecs.find_task_definition(&target(), &template, ("ecsrun.dev/template-hash", "h")).await.unwrap();
    assert_eq!(found, Some(older.clone()), "ECS's own spellings and defaults are no difference");
    assert_eq!((describe_newest.num_calls(), describe_older.num_calls()), (1, 1), "etl-nightly is not looked at");
    let missing = ecs.find_task_definition(&target(), &template, ("ecsrun.dev/template-hash", "none")).await.unwrap();
    assert_eq!(missing, None);
}

/// Issue 23, finding 5: a revision planted under the template's hash tag (by anyone who may register and
/// tag task definitions) is passed over; the genuine older one, or a new registration, serves the run.
#[tokio::test]
async fn a_revision_planted_under_a_templates_hash_is_not_used() {
    let td = |name: &str| format!("arn:aws:ecs:eu-west-1:123456789012:task-definition/{name}");
    fn with_container(
        change: fn(types::builders::ContainerDefinitionBuilder) -> types::builders::ContainerDefinitionBuilder,
    ) -> types::TaskDefinition {
        described_etl(change)
    }
    let plants: Vec<(&str, types::TaskDefinition)> = vec![
        ("another task role", {
            let mut planted = described_etl(|c| c);
            planted.task_role_arn = Some("arn:aws:iam::123456789012:role/admin".into());
            planted
        }),
        ("an execution role the template has not", {
            let mut planted = described_etl(|c| c);
            planted.execution_role_arn = Some("arn:aws:iam::123456789012:role/admin".into());
            planted
        }),
        ("another image", with_container(|c| c.image("attacker/etl:1"))),
        ("a privileged container", with_container(|c| c.privileged(true))),
        ("another command", with_container(|c| c.set_command(Some(vec!["sh".into(), "-c".into(), "curl x".into()])))),
        (
            "an extra secret",
            with_container(|c| {
                c.secrets(types::Secret::builder().name("K").value_from("arn:aws:ssm:x").build().unwrap())
            }),
        ),
        ("linux capabilities", with_container(|c| c.linux_parameters(types::LinuxParameters::builder().build()))),
        ("an extra container", {
            let mut planted = described_etl(|c| c);
            let sidecar = types::ContainerDefinition::builder().name("sidecar").image("miner").build();
            planted.container_definitions.get_or_insert_with(Vec::new).push(sidecar);
            planted
        }),
        ("a host pid namespace", {
            let mut planted = described_etl(|c| c);
            planted.pid_mode = Some(types::PidMode::Host);
            planted
        }),
        ("16 vCPU", {
            let mut planted = described_etl(|c| c);
            planted.cpu = Some("16384".into());
            planted
        }),
    ];
    for (what, planted) in plants {
        let (newest, older) = (td("etl:9"), td("etl:2"));
        let list = mock!(Client::list_task_definitions).then_output({
            let arns = vec![newest.clone(), older.clone()];
            move || ListTaskDefinitionsOutput::builder().set_task_definition_arns(Some(arns.clone())).build()
        });
        let tagged = |definition: types::TaskDefinition| {
            move || {
                DescribeTaskDefinitionOutput::builder()
                    .task_definition(definition.clone())
                    .tags(types::Tag::builder().key("ecsrun.dev/template-hash").value("h").build())
                    .build()
            }
        };
        let describe_planted = mock!(Client::describe_task_definition)
            .match_requests({
                let newest = newest.clone();
                move |req| req.task_definition() == Some(newest.as_str())
            })
            .then_output(tagged(planted));
        let describe_genuine = mock!(Client::describe_task_definition)
            .match_requests({
                let older = older.clone();
                move |req| req.task_definition() == Some(older.as_str())
            })
            .then_output(tagged(described_etl(|c| c)));
        let (ecs, _) =
            adapter(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&list, &describe_planted, &describe_genuine]));
        let found = ecs.find_task_definition(&target(), &etl_template(), ("ecsrun.dev/template-hash", "h")).await;
        assert_eq!(found.unwrap(), Some(older), "{what}: the planted revision is passed over");
        assert_eq!(describe_planted.num_calls(), 1, "{what}");
    }
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
    let rule =
        mock!(Client::describe_task_definition).then_output(|| report_3(&[("app", None), ("log-router", Some(false))]));
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

/// Issue 35, finding 6: the lookup asks for the revision's tags, and a revision registered from a
/// template says whose (its namespace tag beside the template hash); a tag of the namespace alone, as a
/// user may put on any revision, says nothing.
#[tokio::test]
async fn a_revision_registered_from_a_template_says_which_namespace_registered_it() {
    let tag = |key: &str, value: &str| types::Tag::builder().key(key).value(value).build();
    let rows = [
        ("from team-b's template", vec![tag(TEMPLATE_HASH_TAG, "abc"), tag(NAMESPACE_TAG, "team-b")], Some("team-b")),
        ("a namespace tag alone", vec![tag(NAMESPACE_TAG, "team-b")], None),
        ("no tags", vec![], None),
    ];
    for (row, tags, expected) in rows {
        let rule = mock!(Client::describe_task_definition)
            .match_requests(|request| request.include() == [types::TaskDefinitionField::Tags])
            .then_output(move || {
                let definition = report_3(&[("app", None)]).task_definition().cloned().expect("a definition");
                DescribeTaskDefinitionOutput::builder().task_definition(definition).set_tags(Some(tags.clone())).build()
            });
        let (ecs, _) = adapter(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&rule]));
        let described = ecs.describe_task_definition(&target(), "report").await.expect(row);
        assert_eq!(described.registered_by.as_deref(), expected, "{row}");
        assert_eq!(rule.num_calls(), 1, "{row}: asked with include=TAGS");
    }
}
