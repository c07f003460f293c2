//! EcsTaskSchedule against the real API server and moto, with once-a-minute schedules: one run per slot,
//! named by it and owned by the schedule; history limits; Forbid and Replace; missed slots after a
//! suspension, with and without a deadline; and a controller SIGKILLed around slot boundaries that never
//! creates two runs (or two tasks) for one slot. The time arithmetic (zones, DST) is unit-tested in
//! api/src/cron/tests.rs and the decision in controller/src/schedule/decide/tests.rs.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use ecsrun::api::{EcsTaskRun, EcsTaskSchedule, Phase, SCHEDULE_LABEL, SCHEDULED_AT_ANNOTATION};
use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};

use crate::{Case, Env, case};

pub const NAMESPACE: &str = "e2e-schedules";
pub const KILL_NAMESPACE: &str = "e2e-schedules-kill";

pub fn cases() -> Vec<Case> {
    vec![
        case("schedules::each_slot_creates_one_run_named_by_it_and_history_is_pruned", one_run_per_slot),
        case("schedules::forbid_passes_over_slots_while_a_run_is_active", forbid),
        case("schedules::replace_deletes_the_active_run_for_the_next_slot", replace),
        case("schedules::after_a_suspension_at_most_the_latest_slot_runs_within_the_deadline", missed_after_suspension),
        case("schedules::a_controller_killed_around_slots_never_creates_two_runs_for_one", killed_around_slots),
    ]
}

/// A schedule of `transform` runs on moto's network; `fields` adds spec fields (two spaces deep) and
/// `run_extra` run spec fields (as for `fargate_run`, two spaces deep: they are indented here).
pub fn schedule_yaml(name: &str, fields: &str, run_extra: &str) -> String {
    let run_extra: String = run_extra.lines().map(|line| format!("    {line}\n")).collect();
    format!(
        r#"
apiVersion: ecsrun.dev/v1alpha1
kind: EcsTaskSchedule
metadata:
  name: {name}
spec:
  schedule: "* * * * *"
{fields}  runTemplate:
    metadata:
      labels:
        team: data
    spec:
      cluster: batch
      taskDefinition: transform
      launchType: FARGATE
      networkConfiguration:
        awsvpcConfiguration:
          subnets: [subnet-0123456789abcdef0]
          securityGroups: [sg-0123456789abcdef0]
{run_extra}"#
    )
}

pub async fn apply(env: &Env, namespace: &str, yaml: &str) -> anyhow::Result<EcsTaskSchedule> {
    let mut schedule: EcsTaskSchedule = env.parse(yaml)?;
    schedule.metadata.namespace = Some(namespace.to_owned());
    let name = schedule.name_any();
    let api: Api<EcsTaskSchedule> = Api::namespaced(env.client.clone(), namespace);
    Ok(api.patch(&name, &PatchParams::apply("ecsrun-testbed"), &Patch::Apply(&schedule)).await?)
}

pub async fn runs_of(env: &Env, namespace: &str, schedule: &str) -> anyhow::Result<Vec<EcsTaskRun>> {
    let selector = format!("{SCHEDULE_LABEL}={schedule}");
    Ok(env.runs(namespace).list(&ListParams::default().labels(&selector)).await?.items)
}

pub async fn schedule_of(env: &Env, namespace: &str, name: &str) -> anyhow::Result<EcsTaskSchedule> {
    Ok(Api::<EcsTaskSchedule>::namespaced(env.client.clone(), namespace).get(name).await?)
}

fn slot_of(run: &EcsTaskRun) -> anyhow::Result<Timestamp> {
    let at = run.annotations().get(SCHEDULED_AT_ANNOTATION).context("a run without its slot")?;
    Ok(at.parse()?)
}

fn phase(run: &EcsTaskRun) -> Option<Phase> {
    run.status.as_ref().and_then(|status| status.task.phase)
}

/// Event reasons published about the schedule `name`.
async fn event_reasons(env: &Env, namespace: &str, name: &str) -> anyhow::Result<Vec<(String, String)>> {
    let events: Api<Event> = Api::namespaced(env.client.clone(), namespace);
    let selector = format!("regarding.name={name},regarding.kind=EcsTaskSchedule");
    Ok(events
        .list(&ListParams::default().fields(&selector))
        .await?
        .items
        .into_iter()
        .map(|event| (event.reason.unwrap_or_default(), event.note.unwrap_or_default()))
        .collect())
}

/// Deletes the schedule and waits until its runs are gone too (garbage collection, then each run's
/// finalizer stopping its task).
pub async fn delete_schedule(env: &Env, namespace: &str, name: &str) -> anyhow::Result<()> {
    let api: Api<EcsTaskSchedule> = Api::namespaced(env.client.clone(), namespace);
    api.delete(name, &DeleteParams::foreground()).await?;
    let started = Instant::now();
    while !runs_of(env, namespace, name).await?.is_empty() || api.get_opt(name).await?.is_some() {
        ensure!(started.elapsed() < Duration::from_secs(60), "{name}: its runs not deleted within 60 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Sleeps until `second` past the next minute that starts at least `margin` from now.
/// Sleeps until `second` seconds past the minute that starts `minutes` whole minutes after `since`'s
/// minute: at least `minutes` slot boundaries of an every-minute schedule lie between the two.
async fn until_second_of_minute_after(since: Timestamp, minutes: u64, second: u64) {
    let since = since.as_millisecond() as u64;
    let target = (since - since % 60_000) + minutes * 60_000 + second * 1000;
    let now = Timestamp::now().as_millisecond() as u64;
    tokio::time::sleep(Duration::from_millis(target.saturating_sub(now))).await;
}

async fn one_run_per_slot(env: Arc<Env>) -> anyhow::Result<()> {
    let name = "every-minute";
    let created = apply(&env, NAMESPACE, &schedule_yaml(name, "  successfulRunsHistoryLimit: 1\n", "")).await?;
    let uid = created.uid().context("uid")?;
    let mut seen: BTreeSet<(String, Timestamp)> = BTreeSet::new();
    let started = Instant::now();
    // Two slots have runs, the second succeeded and the first deleted by the history limit.
    loop {
        let runs = runs_of(&env, NAMESPACE, name).await?;
        for run in &runs {
            let slot = slot_of(run)?;
            ensure!(
                run.name_any() == format!("{name}-{}", slot.as_second() / 60),
                "{} is not named by its slot",
                run.name_any()
            );
            let owner = run.owner_references().first().context("a run without its owner")?;
            ensure!(
                owner.uid == uid && owner.controller == Some(true),
                "{} is not owned by the schedule",
                run.name_any()
            );
            ensure!(run.labels().get("team").map(String::as_str) == Some("data"), "runTemplate labels missing");
            let lag = run.creation_timestamp().context("creationTimestamp")?.0.duration_since(slot).as_secs_f64();
            ensure!((0.0..10.0).contains(&lag), "{} created {lag:.1} s after its slot", run.name_any());
            seen.insert((run.name_any(), slot));
        }
        if seen.len() >= 2 && runs.len() == 1 && phase(&runs[0]) == Some(Phase::Succeeded) {
            break;
        }
        ensure!(started.elapsed() < Duration::from_secs(160), "after 160 s: runs seen {seen:?}, now {}", runs.len());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let slots: BTreeSet<Timestamp> = seen.iter().map(|(_, slot)| *slot).collect();
    ensure!(slots.len() == seen.len(), "two runs for one slot: {seen:?}");
    let schedule = schedule_of(&env, NAMESPACE, name).await?;
    let status = schedule.status.context("status")?;
    let last = status.last_schedule_time.context("lastScheduleTime")?.0;
    let next = status.next_schedule_time.context("nextScheduleTime")?.0;
    ensure!(slots.last().is_some_and(|latest| last >= *latest), "lastScheduleTime {last}, slots {slots:?}");
    ensure!(
        next.as_second() - last.as_second() >= 60 && next > Timestamp::now() - jiff::SignedDuration::from_secs(2),
        "next {next}, last {last}"
    );
    ensure!(status.last_successful_time.is_some(), "lastSuccessfulTime missing");
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").context("Ready")?;
    ensure!(ready.status == "True" && ready.message.starts_with("next run at"), "{ready:?}");
    let reasons = event_reasons(&env, NAMESPACE, name).await?;
    ensure!(reasons.iter().any(|(reason, _)| reason == "RunCreated"), "{reasons:?}");
    delete_schedule(&env, NAMESPACE, name).await
}

/// Runs that never stop on their own (the launcher holds them RUNNING).
fn held() -> String {
    crate::app_env(&[("ECSRUN_E2E_HOLD", "running")])
}

async fn forbid(env: Arc<Env>) -> anyhow::Result<()> {
    let name = "forbid";
    apply(&env, NAMESPACE, &schedule_yaml(name, "  concurrencyPolicy: Forbid\n", &held())).await?;
    let started = Instant::now();
    let first = loop {
        if let Some(run) = runs_of(&env, NAMESPACE, name).await?.into_iter().next() {
            break run;
        }
        ensure!(started.elapsed() < Duration::from_secs(75), "no run within 75 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let first_slot = slot_of(&first)?;
    // The next slot comes and goes while the first run is active: passed over.
    let after_next = first_slot + jiff::SignedDuration::from_secs(65);
    tokio::time::sleep(Duration::from_secs_f64(after_next.duration_since(Timestamp::now()).as_secs_f64().max(0.0)))
        .await;
    let runs = runs_of(&env, NAMESPACE, name).await?;
    ensure!(
        runs.len() == 1,
        "Forbid: {} runs: {:?}",
        runs.len(),
        runs.iter().map(|r| r.name_any()).collect::<Vec<_>>()
    );
    let reasons = event_reasons(&env, NAMESPACE, name).await?;
    ensure!(reasons.iter().any(|(reason, _)| reason == "RunStillActive"), "{reasons:?}");
    let status = schedule_of(&env, NAMESPACE, name).await?.status.context("status")?;
    ensure!(status.active.len() == 1 && status.active[0].name == first.name_any(), "active: {:?}", status.active);
    ensure!(status.last_schedule_time.map(|t| t.0) == Some(first_slot), "lastScheduleTime moved");
    delete_schedule(&env, NAMESPACE, name).await
}

async fn replace(env: Arc<Env>) -> anyhow::Result<()> {
    let name = "replace";
    apply(&env, NAMESPACE, &schedule_yaml(name, "  concurrencyPolicy: Replace\n", &held())).await?;
    let started = Instant::now();
    let first = loop {
        let runs = runs_of(&env, NAMESPACE, name).await?;
        if let Some(run) = runs.into_iter().find(|run| phase(run) == Some(Phase::Running)) {
            break run;
        }
        ensure!(started.elapsed() < Duration::from_secs(80), "no running run within 80 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let first_task = first.status.as_ref().and_then(|s| s.task.task_arn.clone()).context("the first run's task")?;
    // At the next slot the first run is deleted (its task stopped) and the next one created.
    loop {
        let runs = runs_of(&env, NAMESPACE, name).await?;
        let names: Vec<String> = runs.iter().map(|run| run.name_any()).collect();
        if !names.contains(&first.name_any()) && runs.len() == 1 {
            ensure!(slot_of(&runs[0])? > slot_of(&first)?, "the run left is not the next slot's: {names:?}");
            break;
        }
        ensure!(started.elapsed() < Duration::from_secs(160), "not replaced within 160 s: {names:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let task = env.task("batch", &first_task).await?;
    ensure!(task.last_status() == Some("STOPPED"), "the replaced run's task is {:?}", task.last_status());
    let reasons = event_reasons(&env, NAMESPACE, name).await?;
    ensure!(reasons.iter().any(|(reason, _)| reason == "RunReplaced"), "{reasons:?}");
    delete_schedule(&env, NAMESPACE, name).await
}

/// Two schedules created suspended; two slots pass; both resumed at second 20 of a minute. Without a
/// deadline the latest slot runs, once, and the Event counts the one before it as missed; with a
/// deadline of 10 s the latest slot is 20 s late and passed over.
async fn missed_after_suspension(env: Arc<Env>) -> anyhow::Result<()> {
    let (plain, strict) = ("resumed", "resumed-strict");
    let created = [
        apply(&env, NAMESPACE, &schedule_yaml(plain, "  suspend: true\n", "")).await?,
        apply(&env, NAMESPACE, &schedule_yaml(strict, "  suspend: true\n  startingDeadlineSeconds: 10\n", "")).await?,
    ];
    // Slots count from the schedules' own creation, which a busy API server can push past a minute's
    // boundary after this test read its clock.
    let created_at = created
        .iter()
        .filter_map(|schedule| schedule.metadata.creation_timestamp.as_ref().map(|time| time.0))
        .max()
        .context("a schedule without its creationTimestamp")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in [plain, strict] {
        let status = schedule_of(&env, NAMESPACE, name).await?.status.context("status")?;
        let suspended = status.conditions.iter().find(|c| c.type_ == "Suspended").context("Suspended")?;
        ensure!(suspended.status == "True" && status.next_schedule_time.is_none(), "{name}: {status:?}");
    }
    // Two slots pass while suspended (one alone would not be a missed slot), and the resume comes 20 s
    // after the second: later than the strict schedule's 10 s deadline.
    until_second_of_minute_after(created_at, 2, 20).await;
    ensure!(runs_of(&env, NAMESPACE, plain).await?.is_empty(), "a suspended schedule created a run");
    let resumed_at = Timestamp::now();
    apply(&env, NAMESPACE, &schedule_yaml(plain, "  suspend: false\n", "")).await?;
    apply(&env, NAMESPACE, &schedule_yaml(strict, "  suspend: false\n  startingDeadlineSeconds: 10\n", "")).await?;
    let started = Instant::now();
    let runs = loop {
        let runs = runs_of(&env, NAMESPACE, plain).await?;
        if !runs.is_empty() {
            break runs;
        }
        ensure!(started.elapsed() < Duration::from_secs(20), "no run within 20 s of resuming");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    ensure!(runs.len() == 1, "{} runs after resuming", runs.len());
    let slot = slot_of(&runs[0])?;
    ensure!(
        slot < resumed_at && resumed_at.duration_since(slot).as_secs_f64() < 60.0,
        "slot {slot}, resumed {resumed_at}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reasons = event_reasons(&env, NAMESPACE, plain).await?;
    ensure!(
        reasons.iter().any(|(reason, note)| reason == "MissedSlots" && note.starts_with("missed 1 slot")),
        "{reasons:?}"
    );
    ensure!(runs_of(&env, NAMESPACE, strict).await?.is_empty(), "the strict schedule ran a slot 20 s late");
    let reasons = event_reasons(&env, NAMESPACE, strict).await?;
    ensure!(reasons.iter().any(|(reason, _)| reason == "SlotTooLate"), "{reasons:?}");
    for name in [plain, strict] {
        delete_schedule(&env, NAMESPACE, name).await?;
    }
    Ok(())
}

/// A controller of its own, SIGKILLed and restarted every couple of seconds for three slot boundaries:
/// each slot still gets one run, and each run one task.
async fn killed_around_slots(env: Arc<Env>) -> anyhow::Result<()> {
    let name = "killed";
    let mut controller = env.controller("controller-schedules-kill", &[KILL_NAMESPACE])?;
    controller.ready().await?;
    apply(&env, KILL_NAMESPACE, &schedule_yaml(name, "", "")).await?;
    let started = Instant::now();
    let mut kills = 0;
    while started.elapsed() < Duration::from_secs(150) {
        // Killed at varying points: before, at and after slot boundaries, mid-create and mid-status-write.
        tokio::time::sleep(Duration::from_millis(1500 + (kills % 5) * 500)).await;
        controller.process.kill();
        kills += 1;
        controller = env.controller("controller-schedules-kill", &[KILL_NAMESPACE])?;
    }
    controller.ready().await?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let runs = runs_of(&env, KILL_NAMESPACE, name).await?;
    let mut slots = BTreeSet::new();
    for run in &runs {
        ensure!(slots.insert(slot_of(run)?), "two runs for slot {}", slot_of(run)?);
        let uid = run.uid().context("uid")?;
        let tasks = env.tasks_started_by("batch", &uid).await?;
        ensure!(tasks.len() <= 1, "{} has {} tasks", run.name_any(), tasks.len());
    }
    if runs.len() < 2 {
        bail!("{} runs after {kills} kills over 150 s: {:?}", runs.len(), slots);
    }
    println!("schedules kill test: {kills} SIGKILLs, {} slots, {} runs", slots.len(), runs.len());
    delete_schedule(&env, KILL_NAMESPACE, name).await
}
