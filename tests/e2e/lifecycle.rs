//! A run's life against the real API server and moto: `kubectl wait`, a task definition with task-level
//! memory only, runs deleted right after creation. (Deletion, retries and the timeout are the
//! controller's logic: tests/middle.)

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use ecsrun_testbed::wait;
use kube::ResourceExt;
use kube::api::DeleteParams;

use crate::{Case, Env, case, fargate_run};

pub const NAMESPACE: &str = "e2e-lifecycle";

pub fn cases() -> Vec<Case> {
    vec![
        case("lifecycle::kubectl_wait_for_condition_succeeded", kubectl_wait_for_succeeded),
        case("lifecycle::a_task_definition_with_task_level_memory_only_runs", task_level_memory_only),
        case("lifecycle::fifty_runs_deleted_right_after_creation_leave_no_task_running", fast_create_then_delete),
        case("lifecycle::ttl_seconds_after_finished_deletes_finished_runs", ttl_after_finished),
        case("lifecycle::a_run_is_created_with_the_finalizer_already_on", born_with_finalizer),
        case("lifecycle::a_task_stuck_before_running_is_stopped_at_its_start_timeout", start_timeout),
        case("lifecycle::rules_on_a_spot_interruption_decide_its_retry", spot_interruption_rules),
        case("lifecycle::suspend_stops_a_running_run_without_a_failure_and_resume_finishes_it", suspend_and_resume),
        case("lifecycle::a_run_created_suspended_launches_nothing_until_resumed", created_suspended),
    ]
}

/// `wait.startTimeout`: tasks that never leave PROVISIONING (the launcher holds them there) are stopped
/// once it passes, each attempt failing with StartTimeout, retried under `retryPolicy`.
async fn start_timeout(env: Arc<Env>) -> anyhow::Result<()> {
    let extra = format!(
        "{}  wait:\n    startTimeout: 10s\n  retryPolicy:\n    backoffLimit: 1\n",
        crate::app_env(&[("ECSRUN_E2E_HOLD", "provisioning")])
    );
    env.create(NAMESPACE, &env.manifest(&fargate_run("stuck-starting", "batch", "transform", &extra))?).await?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "stuck-starting", Duration::from_secs(90), "Failed", wait::has_condition("Failed")).await?;
    let outcomes: Vec<Option<&str>> = status.task.attempts.iter().map(|a| a.outcome_str()).collect();
    ensure!(outcomes == [Some("StartTimeout"), Some("StartTimeout")], "attempts: {outcomes:?}");
    for attempt in &status.task.attempts {
        let arn = attempt.task_arn.as_deref().context("an attempt without its task")?;
        let task = env.task("batch", arn).await?;
        ensure!(
            task.last_status() == Some("STOPPED")
                && task.stopped_reason().is_some_and(|why| why.contains("start timeout exceeded")),
            "{arn}: {:?}, {:?}",
            task.last_status(),
            task.stopped_reason()
        );
        let launched = attempt.launched_at.as_ref().context("launchedAt")?.0;
        let stopped = attempt.stopped_at.as_ref().context("stoppedAt")?.0;
        let waited = stopped.duration_since(launched).as_secs_f64();
        ensure!(waited >= 10.0, "attempt {} was stopped {waited:.1} s after its launch", attempt.attempt);
    }
    Ok(())
}

/// `retryPolicy.rules` on stop codes and reasons: each run's first task is interrupted by Spot (the
/// launcher stops attempt 1 with stopCode SpotInterruption). Without a rule it is retried free and the
/// run succeeds; a Count rule on the stop code uses up `backoffLimit: 0`; a FailRun rule on the stopped
/// reason fails the run despite `backoffLimit: 3`.
async fn spot_interruption_rules(env: Arc<Env>) -> anyhow::Result<()> {
    let interrupted = crate::app_env(&[
        ("ECSRUN_E2E_ATTEMPT_1_STOP_CODE", "SpotInterruption"),
        ("ECSRUN_E2E_ATTEMPT_1_STOPPED_REASON", "Your Spot Task was interrupted."),
        ("ECSRUN_E2E_ATTEMPT_1_EXIT_CODE", "143"),
    ]);
    let runs = [
        ("spot-no-rule", "", "Succeeded", vec!["Interrupted", "Succeeded"]),
        (
            "spot-counted",
            "  retryPolicy:\n    rules:\n      - action: Count\n        onStopCodes: [SpotInterruption]\n",
            "Failed",
            vec!["CountedByRule"],
        ),
        (
            "spot-fails-run",
            "  retryPolicy:\n    backoffLimit: 3\n    rules:\n      - action: FailRun\n        onStoppedReason: \"*spot task was interrupted*\"\n",
            "Failed",
            vec!["FailedByRule"],
        ),
    ];
    for (name, rules, _, _) in &runs {
        let extra = format!("{interrupted}{rules}");
        env.create(NAMESPACE, &env.manifest(&fargate_run(name, "batch", "transform", &extra))?).await?;
    }
    let api = env.runs(NAMESPACE);
    for (name, _, phase, outcomes) in runs {
        let status = wait::until(&api, name, Duration::from_secs(90), phase, wait::has_condition(phase)).await?;
        let seen: Vec<&str> = status.task.attempts.iter().filter_map(|a| a.outcome_str()).collect();
        ensure!(seen == outcomes, "{name}: attempts {seen:?}, expected {outcomes:?} ({:?})", status.task.message);
    }
    Ok(())
}

/// The chart's MutatingAdmissionPolicy (installed in this environment as a chart install gets it): the
/// create's own answer carries the finalizer, so a deletion racing the controller's finalizer patch
/// cannot remove the run past it (docs/reliability.md, "The fault suite's leak").
async fn born_with_finalizer(env: Arc<Env>) -> anyhow::Result<()> {
    let api = env.runs(NAMESPACE);
    let run = env.manifest(&fargate_run("born-with-finalizer", "batch", "sleeper", ""))?;
    let created = api.create(&kube::api::PostParams::default(), &run).await?;
    let finalizers = created.metadata.finalizers.clone().unwrap_or_default();
    ensure!(finalizers == [ecsrun::api::FINALIZER], "created with finalizers {finalizers:?}");
    // Deleted at once: the finalizer holds it until the controller has seen to its task.
    api.delete("born-with-finalizer", &DeleteParams::default()).await?;
    wait::gone(&api, "born-with-finalizer", Duration::from_secs(60)).await?;
    let tasks = env.tasks_started_by("batch", created.metadata.uid.as_deref().unwrap_or_default()).await?;
    for arn in &tasks {
        let task = env.task("batch", arn).await?;
        ensure!(task.last_status() == Some("STOPPED"), "{arn} of the deleted run is {:?}", task.last_status());
    }
    Ok(())
}

/// `ttlSecondsAfterFinished`: a run set to 3 s is deleted that long after it succeeded; one without is
/// kept, until the field, which may change after creation, is set on the finished run.
async fn ttl_after_finished(env: Arc<Env>) -> anyhow::Result<()> {
    let api = env.runs(NAMESPACE);
    env.create(
        NAMESPACE,
        &env.manifest(&fargate_run("ttl-3s", "batch", "transform", "  ttlSecondsAfterFinished: 3\n"))?,
    )
    .await?;
    env.create(NAMESPACE, &env.manifest(&fargate_run("ttl-later", "batch", "transform", ""))?).await?;
    let status =
        wait::until(&api, "ttl-3s", Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded")).await?;
    let finished = ecsrun::decide::run::finished_at(&status).context("a finished run has a finish time")?;
    wait::gone(&api, "ttl-3s", Duration::from_secs(30)).await?;
    let lived = jiff::Timestamp::now().duration_since(finished).as_secs_f64();
    ensure!(lived >= 3.0, "deleted {lived:.1} s after it finished, before its TTL of 3 s");

    wait::until(&api, "ttl-later", Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded")).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(api.get_opt("ttl-later").await?.is_some(), "a run without ttlSecondsAfterFinished was deleted");
    let patch = serde_json::json!({"spec": {"ttlSecondsAfterFinished": 0}});
    api.patch("ttl-later", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await?;
    wait::gone(&api, "ttl-later", Duration::from_secs(30)).await?;
    Ok(())
}

async fn kubectl_wait_for_succeeded(env: Arc<Env>) -> anyhow::Result<()> {
    env.create(NAMESPACE, &env.manifest(&fargate_run("kubectl-wait", "batch", "transform", ""))?).await?;
    let kubeconfig = env.kubeconfig.clone();
    let wait = move || {
        Command::new("kubectl")
            .env("KUBECONFIG", &kubeconfig)
            .args(["wait", "--for=condition=Succeeded", "etr/kubectl-wait", "-n", NAMESPACE, "--timeout=90s"])
            .output()
    };
    let mut output = tokio::task::spawn_blocking(wait.clone())
        .await?
        .context("running kubectl (it is on the machine image; install it if this fails)")?;
    // Under load kubectl wait once answered NotFound for a run the controller was already following (its
    // first read went to a watch cache behind the create): a user would run it again, and so does this.
    for _ in 0..3 {
        if output.status.success() || !String::from_utf8_lossy(&output.stderr).contains("NotFound") {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        output = tokio::task::spawn_blocking(wait.clone()).await??;
    }
    ensure!(
        output.status.success(),
        "kubectl wait failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(String::from_utf8_lossy(&output.stdout).contains("condition met"), "kubectl wait printed {output:?}");
    Ok(())
}

/// ECS accepts a Fargate task definition whose containers have no memory of their own (the task's is
/// what Fargate reserves), so the e2e endpoint must too.
async fn task_level_memory_only(env: Arc<Env>) -> anyhow::Result<()> {
    env.create(NAMESPACE, &env.manifest(&fargate_run("memory-only", "batch", "task-memory-only", ""))?).await?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "memory-only", Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded"))
            .await?;
    ensure!(status.task.last_status == Some("STOPPED".into()), "lastStatus {:?}", status.task.last_status);
    Ok(())
}

/// Created and deleted within a moment, while their launches are in flight: none may leave a task running.
async fn fast_create_then_delete(env: Arc<Env>) -> anyhow::Result<()> {
    let api = env.runs(NAMESPACE);
    let runs = futures::future::try_join_all((0..50).map(|i: usize| {
        let env = env.clone();
        let api = api.clone();
        async move {
            let name = format!("blink-{i:02}");
            let run = env.create(NAMESPACE, &env.manifest(&fargate_run(&name, "batch", "sleeper", ""))?).await?;
            // Deleted the moment its launch is under way: the intent is recorded, RunTask may be in flight.
            let launching = |run: Option<&ecsrun::api::EcsTaskRun>| {
                run.and_then(|run| run.status.as_ref()).is_some_and(|s| s.task.phase.is_some())
            };
            wait::until(&api, &name, Duration::from_secs(60), "launching", launching).await?;
            api.delete(&name, &DeleteParams::default()).await?;
            anyhow::Ok((name, run.uid().context("uid")?))
        }
    }))
    .await?;
    for (name, _) in &runs {
        wait::gone(&api, name, Duration::from_secs(120)).await?;
    }
    for (name, uid) in &runs {
        let running = env
            .ecs
            .list_tasks()
            .cluster("batch")
            .started_by(ecsrun::decide::started_by(uid))
            .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
            .send()
            .await?;
        ensure!(running.task_arns().is_empty(), "{name} is gone but left {:?} running", running.task_arns());
    }
    Ok(())
}

async fn set_suspend(env: &Env, name: &str, suspend: bool) -> anyhow::Result<()> {
    let patch = serde_json::json!({"spec": {"suspend": suspend}});
    env.runs(NAMESPACE).patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await?;
    Ok(())
}

fn is_suspended(run: Option<&ecsrun::api::EcsTaskRun>) -> bool {
    run.and_then(|run| run.status.as_ref()).is_some_and(|status| {
        status.task.phase == Some(ecsrun::api::Phase::Pending) && status.task.reason_str() == Some("Suspended")
    })
}

/// `spec.suspend` set on a running run: its task is stopped, the attempt ends Suspended (no failure, with
/// `backoffLimit: 0`), Argo CD shows the run Suspended and kstatus InProgress; cleared, attempt 2 runs and
/// the run succeeds.
async fn suspend_and_resume(env: Arc<Env>) -> anyhow::Result<()> {
    let name = "suspend-resume";
    let extra = crate::app_env(&[("ECSRUN_E2E_ATTEMPT_1_HOLD", "running")]);
    env.create(NAMESPACE, &env.manifest(&fargate_run(name, "batch", "transform", &extra))?).await?;
    let api = env.runs(NAMESPACE);
    wait::until(&api, name, Duration::from_secs(60), "RUNNING", wait::has_last_status("RUNNING")).await?;
    set_suspend(&env, name, true).await?;
    let status = wait::until(&api, name, Duration::from_secs(60), "suspended", is_suspended).await?;
    let first = status.task.attempts.first().context("attempt 1")?;
    ensure!(first.outcome_str() == Some("Suspended"), "attempt 1: {first:?}");
    let task = env.task("batch", first.task_arn.as_deref().context("attempt 1's task")?).await?;
    ensure!(task.last_status() == Some("STOPPED"), "attempt 1's task is {:?}", task.last_status());
    let suspended = status.conditions.iter().find(|c| c.type_ == "Suspended").context("Suspended condition")?;
    ensure!(suspended.status == "True", "{suspended:?}");
    let object = serde_json::to_value(api.get(name).await?)?;
    let argo = crate::gitops::judge(
        &["argo", &ecsrun_testbed::repo_root().join(crate::gitops::ARGOCD_HEALTH).to_string_lossy()],
        std::slice::from_ref(&object),
    )
    .await?;
    ensure!(argo[0].1 == "Suspended", "Argo CD health of a suspended run: {:?}", argo[0]);
    let kstatus = crate::gitops::judge(&["kstatus"], std::slice::from_ref(&object)).await?;
    // Not finished, only held: Flux's wait goes on waiting for it (Ready is False, nothing Reconciling).
    ensure!(kstatus[0].1 == "InProgress", "kstatus of a suspended run: {:?}; {}", kstatus[0], object["status"]);

    set_suspend(&env, name, false).await?;
    let status =
        wait::until(&api, name, Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded")).await?;
    let outcomes: Vec<Option<&str>> = status.task.attempts.iter().map(|a| a.outcome_str()).collect();
    ensure!(outcomes == [Some("Suspended"), Some("Succeeded")], "attempts: {outcomes:?}");
    ensure!(status.resumed_at.is_some(), "resumedAt not recorded");
    Ok(())
}

/// Created with `suspend: true`: Pending and Suspended, no task in ECS; resumed, it runs to Succeeded.
async fn created_suspended(env: Arc<Env>) -> anyhow::Result<()> {
    let name = "created-suspended";
    let created =
        env.create(NAMESPACE, &env.manifest(&fargate_run(name, "batch", "transform", "  suspend: true\n"))?).await?;
    let api = env.runs(NAMESPACE);
    wait::until(&api, name, Duration::from_secs(30), "suspended", is_suspended).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let uid = created.metadata.uid.clone().context("uid")?;
    let tasks = env.tasks_started_by("batch", &uid).await?;
    ensure!(tasks.is_empty(), "a suspended run launched {tasks:?}");
    set_suspend(&env, name, false).await?;
    wait::until(&api, name, Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded")).await?;
    ensure!(env.tasks_started_by("batch", &uid).await?.len() == 1, "one task once resumed");
    Ok(())
}
