//! The middle tier: the controller's real shell (finalizer, effect interpreter, tracker, Events, status
//! writes) against in-memory fakes of the Kubernetes API and ECS (`ecsrun_testbed::fakes`), in milliseconds.
//! Cases whose point is the controller's logic live here; what needs kube-apiserver, moto, helm or the
//! network stays in the e2e tier.

mod batch;
mod lifecycle;
mod operating;
mod orphans;
mod queueing;
mod results;

use std::time::Duration;

use ecsrun::api::{EcsTaskRunStatus, Phase};
use ecsrun_testbed::fakes::Harness;

const NS: &str = "jobs";
/// The controller's default poll interval in these cases.
const POLL: Duration = Duration::from_secs(30);

/// A Fargate run of `task_definition` in cluster `demo`, with `extra` spec fields (YAML, two-space indent).
fn spec(extra: &str) -> String {
    format!(
        "cluster: demo\ntaskDefinition: job\nlaunchType: FARGATE\nnetworkConfiguration:\n  awsvpcConfiguration:\n    \
         subnets: [subnet-1]\n{extra}"
    )
}

fn phase(status: &EcsTaskRunStatus) -> (Option<Phase>, Option<&str>) {
    (status.task.phase, status.task.reason_str())
}

/// Creates a run and reconciles it once: launched (its task PROVISIONING in the fake ECS). Returns the
/// task's ARN.
async fn launched(harness: &Harness, name: &str, extra: &str) -> anyhow::Result<String> {
    harness.create(NS, name, &spec(extra))?;
    harness.reconcile(NS, name).await?; // adds the finalizer
    harness.reconcile(NS, name).await?; // intent, RunTask, status
    let status = harness.status(NS, name);
    status.task.task_arn.clone().ok_or_else(|| anyhow::anyhow!("not launched: {:?}", status.task.message))
}
