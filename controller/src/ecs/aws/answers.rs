//! ECS's answers as the port's plain data (snapshots, failures, log configurations), and its errors
//! classified for retry policy, conditions and metrics.
use std::fmt::Debug;

use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecs::types;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::ecs::{
    CLUSTER_ID_TAG, ContainerSnapshot, DELETION_POLICY_TAG, EcsError, EcsErrorKind, EcsFailure, LogConfiguration,
    NAMESPACE_TAG, Reported, TaskSnapshot,
};

pub(super) fn timestamp(time: &aws_smithy_types::DateTime) -> Option<jiff::Timestamp> {
    jiff::Timestamp::new(time.secs(), time.subsec_nanos() as i32).ok()
}

pub(super) fn snapshot(task: &types::Task) -> TaskSnapshot {
    TaskSnapshot {
        task_arn: task.task_arn().unwrap_or_default().to_owned(),
        cluster_arn: task.cluster_arn().map(str::to_owned),
        task_definition_arn: task.task_definition_arn().map(str::to_owned),
        last_status: task.last_status().map(Reported::parse),
        desired_status: task.desired_status().map(Reported::parse),
        // Unknown stop codes arrive as `Unknown` variants; as_str keeps their text.
        stop_code: task.stop_code().map(|code| Reported::parse(code.as_str())),
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
        started_by: task.started_by().map(str::to_owned),
        // 0 is the SDK's default for an answer without one (emulators): no order known.
        version: Some(task.version()).filter(|version| *version > 0),
        started_for_namespace: tag(task, NAMESPACE_TAG).map(str::to_owned),
        kept_on_delete: tag(task, DELETION_POLICY_TAG) == Some("Orphan"),
        started_by_install: tag(task, CLUSTER_ID_TAG).map(str::to_owned),
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

/// The value of the task's tag `key` (DescribeTasks with `include=TAGS`).
fn tag<'a>(task: &'a types::Task, key: &str) -> Option<&'a str> {
    task.tags().iter().find(|tag| tag.key() == Some(key)).and_then(|tag| tag.value())
}

pub(super) fn log_configuration(log: &types::LogConfiguration) -> LogConfiguration {
    let option = |key: &str| log.options().and_then(|options| options.get(key)).cloned();
    LogConfiguration {
        driver: log.log_driver().as_str().to_owned(),
        group: option("awslogs-group"),
        region: option("awslogs-region"),
        stream_prefix: option("awslogs-stream-prefix"),
    }
}

pub(super) fn failure(failure: &types::Failure) -> EcsFailure {
    EcsFailure {
        arn: failure.arn().map(str::to_owned),
        reason: failure.reason().map(str::to_owned),
        detail: failure.detail().map(str::to_owned),
    }
}

/// Classifies an SDK error into what the controller does about it.
pub(super) fn classify<E>(operation: &'static str, error: &SdkError<E, HttpResponse>) -> EcsError
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

pub(super) fn classify_service_error(code: Option<&str>, message: Option<&str>, http_status: u16) -> EcsErrorKind {
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
