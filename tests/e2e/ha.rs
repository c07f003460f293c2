//! Two replicas with leader election: one reconciles; a SIGKILLed leader is replaced within the Lease
//! duration, a SIGTERMed one hands over at once; every run still launches exactly one task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use ecsrun_e2e::{Controller, wait};
use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::api::Api;

use crate::{Case, Env, case, fargate_run};

pub const KILL_NAMESPACE: &str = "e2e-ha-kill";
pub const TERM_NAMESPACE: &str = "e2e-ha-term";
const LEASE_DURATION: Duration = Duration::from_secs(6);
const RUNS: usize = 4;

pub fn cases() -> Vec<Case> {
    vec![
        case("ha::sigkilled_leader_is_replaced_within_the_lease_duration", sigkilled_leader_is_replaced),
        case("ha::sigtermed_leader_exits_cleanly_and_hands_over", sigtermed_leader_hands_over),
    ]
}

fn replica(env: &Env, name: &str, namespace: &str) -> anyhow::Result<Controller> {
    let duration = format!("{}s", LEASE_DURATION.as_secs());
    Controller::start(
        name,
        &env.work,
        &env.kubeconfig,
        &env.moto,
        &[namespace],
        &["--leader-elect", "--leader-elect-namespace", namespace, "--leader-elect-duration", &duration],
    )
}

async fn until_leader(controller: &mut Controller, within: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        controller.process.ensure_alive()?;
        if controller.metric("ecsrun_leader").await.unwrap_or(0.0) == 1.0 {
            return Ok(started.elapsed());
        }
        ensure!(started.elapsed() < within, "{} did not become leader within {within:?}", controller.process.name);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs whose task takes 12s, so they are in flight when the leader goes away.
async fn create_runs(env: &Env, namespace: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut runs = Vec::new();
    for index in 0..RUNS {
        let slow = "  overrides:\n    containerOverrides:\n      - name: app\n        environment:\n          \
                    - name: ECSRUN_E2E_RUN_SECONDS\n            value: \"12\"\n";
        let yaml = fargate_run(&format!("ha-{index}"), "batch", "transform", slow);
        let run = env.create(namespace, &env.manifest(&yaml)?).await?;
        runs.push((run.name_any(), run.uid().context("uid")?));
    }
    let api = env.runs(namespace);
    for (name, _) in &runs {
        let launched = |run: Option<&ecsrun::api::EcsTaskRun>| {
            run.and_then(|run| run.status.as_ref()).is_some_and(|status| status.task_arn.is_some())
        };
        wait::until(&api, name, Duration::from_secs(30), "launched", launched).await?;
    }
    Ok(runs)
}

async fn all_succeed_with_one_task_each(env: &Env, namespace: &str, runs: &[(String, String)]) -> anyhow::Result<()> {
    let api = env.runs(namespace);
    for (name, uid) in runs {
        wait::until(&api, name, Duration::from_secs(90), "Succeeded", wait::has_condition("Succeeded")).await?;
        let tasks = env.tasks_started_by("batch", uid).await?;
        ensure!(tasks.len() == 1, "{name}: ECS has {} tasks for one run: {tasks:?}", tasks.len());
    }
    Ok(())
}

async fn sigkilled_leader_is_replaced(env: Arc<Env>) -> anyhow::Result<()> {
    let mut first = replica(&env, "replica-kill-a", KILL_NAMESPACE)?;
    until_leader(&mut first, Duration::from_secs(30)).await?;
    let mut second = replica(&env, "replica-kill-b", KILL_NAMESPACE)?;
    second.ready().await?;
    ensure!(second.metric("ecsrun_leader").await? == 0.0, "two leaders at once");

    let runs = create_runs(&env, KILL_NAMESPACE).await?;
    first.process.kill();
    let failover = until_leader(&mut second, LEASE_DURATION * 3).await?;
    eprintln!(
        "e2e: failover after SIGKILL of the leader: {:.1}s (Lease duration {LEASE_DURATION:?})",
        failover.as_secs_f64()
    );
    all_succeed_with_one_task_each(&env, KILL_NAMESPACE, &runs).await
}

async fn sigtermed_leader_hands_over(env: Arc<Env>) -> anyhow::Result<()> {
    let mut first = replica(&env, "replica-term-a", TERM_NAMESPACE)?;
    until_leader(&mut first, Duration::from_secs(30)).await?;
    let mut second = replica(&env, "replica-term-b", TERM_NAMESPACE)?;
    second.ready().await?;

    let runs = create_runs(&env, TERM_NAMESPACE).await?;
    let terminated = Instant::now();
    first.process.terminate()?;
    let status = first.process.exited(Duration::from_secs(25)).await?;
    let exit = terminated.elapsed();
    ensure!(status.success(), "the leader exited with {status} on SIGTERM");
    // It released the Lease on the way out instead of leaving it to expire.
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), TERM_NAMESPACE);
    let lease = leases.get("ecsrun-controller").await?;
    let holder = lease.spec.and_then(|spec| spec.holder_identity).unwrap_or_default();
    ensure!(holder != "replica-term-a", "the Lease is still held by the terminated leader");
    let handover = until_leader(&mut second, LEASE_DURATION * 3).await?;
    eprintln!(
        "e2e: SIGTERM: leader exited after {:.1}s, follower led {:.1}s later",
        exit.as_secs_f64(),
        handover.as_secs_f64()
    );
    // The follower notices a released Lease at its next check, at the latest when it would have expired.
    ensure!(handover <= LEASE_DURATION + Duration::from_secs(2), "hand-over took {handover:?}");
    all_succeed_with_one_task_each(&env, TERM_NAMESPACE, &runs).await
}
