//! Waiting on an `EcsTaskRun` through the API server's watch, with a deadline that reports what was seen.

use std::time::Duration;

use anyhow::Context as _;
use ecsrun::api::{EcsTaskRun, EcsTaskRunStatus};
use kube::api::Api;
use kube::runtime::wait::{Condition, await_condition};

/// True when the run has condition `type_` with status "True".
pub fn has_condition(type_: &'static str) -> impl Condition<EcsTaskRun> {
    move |run: Option<&EcsTaskRun>| {
        run.and_then(|run| run.status.as_ref())
            .is_some_and(|status| status.conditions.iter().any(|c| c.type_ == type_ && c.status == "True"))
    }
}

/// True once the run recorded a task.
pub fn launched() -> impl Condition<EcsTaskRun> {
    |run: Option<&EcsTaskRun>| {
        run.and_then(|run| run.status.as_ref()).is_some_and(|status| status.task.task_arn.is_some())
    }
}

/// True when ECS last reported the run's task in `last_status`.
pub fn has_last_status(last_status: &'static str) -> impl Condition<EcsTaskRun> {
    move |run: Option<&EcsTaskRun>| {
        run.and_then(|run| run.status.as_ref())
            .is_some_and(|status| status.task.last_status.as_ref().is_some_and(|last| last.as_str() == last_status))
    }
}

/// Waits until `condition` holds for the run, and returns its status then.
pub async fn until(
    api: &Api<EcsTaskRun>,
    name: &str,
    within: Duration,
    what: &str,
    condition: impl Condition<EcsTaskRun>,
) -> anyhow::Result<EcsTaskRunStatus> {
    match tokio::time::timeout(within, await_condition(api.clone(), name, condition)).await {
        Ok(result) => result
            .with_context(|| format!("watching {name}"))?
            .and_then(|run| run.status)
            .with_context(|| format!("{name} has no status")),
        Err(_) => {
            let seen =
                api.get_opt(name).await?.map(|run| serde_json::to_string_pretty(&run.status).unwrap_or_default());
            anyhow::bail!(
                "{name}: not {what} within {within:?}; last status: {}",
                seen.unwrap_or("<object gone>".into())
            )
        }
    }
}

/// Waits until the run is gone (its finalizer released).
pub async fn gone(api: &Api<EcsTaskRun>, name: &str, within: Duration) -> anyhow::Result<()> {
    let absent = |run: Option<&EcsTaskRun>| run.is_none();
    if let Ok(result) = tokio::time::timeout(within, await_condition(api.clone(), name, absent)).await {
        result?;
        return Ok(());
    }
    let seen = api.get_opt(name).await?;
    anyhow::bail!(
        "{name} still exists after {within:?}: finalizers {:?}, status {}",
        seen.as_ref().and_then(|run| run.metadata.finalizers.clone()),
        seen.and_then(|run| run.status)
            .map(|status| serde_json::to_string(&status).unwrap_or_default())
            .unwrap_or_default()
    )
}
