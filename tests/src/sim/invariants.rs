//! What must hold after every step, whatever happened; each named in the output when broken.

use std::collections::BTreeMap;
use std::time::Duration;

use ecsrun::api::{EcsTaskRun, EcsTaskRunSpec, EcsTaskRunStatus, FINALIZER, LastStatus, Phase, RunReason, StopCode};
use ecsrun::decide::bound::STATUS_BUDGET_BYTES;
use ecsrun::ecs::NAMESPACE_TAG;
use ecsrun::policy;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::tenants::{self, Act};
use crate::fakes::ecs::FakeTask;

/// A broken invariant: which, at which step, and what showed it.
#[derive(Clone, Debug)]
pub struct Violation {
    pub invariant: &'static str,
    pub step: u64,
    pub detail: String,
}

impl Violation {
    pub fn new(invariant: &'static str, step: u64, detail: String) -> Self {
        Self { invariant, step, detail }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` broken at step {}: {}", self.invariant, self.step, self.detail)
    }
}

/// How long a task may run on once no run has its uid: the deletion's ListTasks grace, a few polls, and
/// the orphan sweep's own grace.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(10 * 60);

/// At most one run is ever created for one slot of a schedule: creations counted, not survivors (a run
/// gone by its TTL or the history limit must not be created again). Runs triggered by hand have no slot.
pub fn slots(step: u64, created: &[EcsTaskRun]) -> Result<(), Violation> {
    let mut first: BTreeMap<(String, jiff::Timestamp), String> = BTreeMap::new();
    for run in created {
        let Some((owner, slot)) = slot_of(run) else { continue };
        let uid = run.metadata.uid.clone().unwrap_or_default();
        if let Some(earlier) = first.insert((owner.uid.clone(), slot), uid.clone()) {
            return Err(Violation::new(
                "at most one run is ever created for one schedule slot",
                step,
                format!(
                    "slot {slot} of schedule {}: runs {earlier} and {uid} ({})",
                    owner.name,
                    run.metadata.name.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

/// The schedule that created a slot's run (its controller owner) and the slot; None for other runs.
fn slot_of(run: &EcsTaskRun) -> Option<(&OwnerReference, jiff::Timestamp)> {
    let slot = run.schedule_origin()?.slot()?;
    let owner = run.metadata.owner_references.iter().flatten().find(|owner| owner.controller == Some(true))?;
    Some((owner, slot))
}

/// A schedule's run keeps its slot's name for as long as a schedule reconcile that found the name free
/// may still create it (the reconcile's bound): gone sooner, a second run of the slot could be created.
/// Runs of a schedule that is gone may go at any time (nothing creates them any more).
pub fn slot_names(step: u64, removed: &[(EcsTaskRun, Timestamp)], schedule_uid: Option<&str>) -> Result<(), Violation> {
    let bound = jiff::SignedDuration::try_from(ecsrun::schedule::shell::RECONCILE_TIMEOUT).unwrap_or_default();
    for (run, at) in removed {
        if slot_of(run).is_none_or(|(owner, _)| Some(owner.uid.as_str()) != schedule_uid) {
            continue;
        }
        let Some(created) = run.metadata.creation_timestamp.as_ref() else { continue };
        let lived = created.0.duration_until(*at);
        if lived < bound {
            return Err(Violation::new(
                "a slot's run keeps its name while its creation may still land",
                step,
                format!(
                    "{} went {}s after its creation (a schedule reconcile may create it for {}s)",
                    run.metadata.name.as_deref().unwrap_or_default(),
                    lived.as_secs(),
                    bound.as_secs()
                ),
            ));
        }
    }
    Ok(())
}

/// Whether Kueue counts a Workload's quota as in use: reserved and not finished.
pub fn holds_quota(workload: &serde_json::Value) -> bool {
    let is = |type_: &str, status: &str| {
        workload["status"]["conditions"]
            .as_array()
            .is_some_and(|conditions| conditions.iter().any(|c| c["type"] == type_ && c["status"] == status))
    };
    is("QuotaReserved", "True") && !is("Finished", "True")
}

/// The name of a queued run's Workload, if the run with `uid` (as created) was queued.
fn workload_of<'a>(created: impl IntoIterator<Item = &'a EcsTaskRun>, uid: &str) -> Option<(String, String)> {
    let run = created.into_iter().find(|run| run.metadata.uid.as_deref() == Some(uid))?;
    run.metadata.labels.as_ref()?.get(ecsrun::api::QUEUE_NAME_LABEL)?;
    let name = ecsrun::queue::name_for(run.metadata.name.as_deref()?, uid);
    Some((run.metadata.namespace.clone()?, name))
}

/// At the moment a queued run's RunTask goes out, its Workload holds quota (Kueue admitted it, and nobody
/// has released it): what it describes, if not.
pub fn launch_without_quota(api: &crate::fakes::FakeApi, act: &Act) -> Option<String> {
    let Act::Launch { uid: Some(uid), .. } = act else { return None };
    let (namespace, name) = workload_of(&api.created_runs(), uid)?;
    let workload = api.object("workloads", &namespace, &name);
    (!workload.as_ref().is_some_and(holds_quota)).then(|| {
        format!(
            "RunTask of run {uid}: its Workload {namespace}/{name} is {}",
            match &workload {
                Some(workload) => format!("{}", workload["status"]),
                None => "missing".to_owned(),
            }
        )
    })
}

/// Every task of a queued run that ECS has not stopped is covered by its Workload's quota: ecsrun gives
/// quota back (an eviction, a Workload deleted by hand, a run finished or deleted) only once the run's
/// tasks have stopped. Tasks kept past their run's deletion (`deletionPolicy: Orphan`) are no run's.
pub fn queued_tasks_hold_quota(
    step: u64,
    created: &[EcsTaskRun],
    workloads: &[serde_json::Value],
    tasks: &[FakeTask],
) -> Result<(), Violation> {
    for task in tasks.iter().filter(|task| !task.snapshot.is_stopped() && !task.snapshot.kept_on_delete) {
        let Some(uid) = task.tags.iter().find(|(key, _)| key == "ecsrun.dev/uid").map(|(_, uid)| uid) else {
            continue;
        };
        let Some((namespace, name)) = workload_of(created, uid) else { continue };
        let holding = workloads.iter().any(|workload| {
            workload["metadata"]["namespace"] == namespace.as_str()
                && workload["metadata"]["name"] == name.as_str()
                && holds_quota(workload)
        });
        if !holding {
            return Err(Violation::new(
                "every unstopped task of a queued run is covered by its Workload's quota",
                step,
                format!(
                    "task {} of run {uid} runs; Workload {namespace}/{name} holds no quota",
                    task.snapshot.task_arn
                ),
            ));
        }
    }
    Ok(())
}

/// Templates never change what other namespaces run: no task of a run of one namespace runs a revision
/// that another namespace's `taskDefinitionTemplate` registered (a run naming the family bare would
/// launch it as the family's latest).
pub fn revisions(step: u64, tasks: &[FakeTask]) -> Result<(), Violation> {
    for task in tasks {
        let (Some(owner), Some(namespace)) = (&task.registered_by, task.tag(NAMESPACE_TAG)) else { continue };
        if owner != namespace {
            return Err(Violation::new(
                "no run launches a revision another namespace's template registered",
                step,
                format!(
                    "task {} of a run of {namespace} runs {} (registered from a template of {owner})",
                    task.snapshot.task_arn,
                    task.snapshot.task_definition_arn.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

/// What the checks remember from step to step.
#[derive(Default)]
pub struct Memory {
    /// Live tasks no run owns, since when.
    orphaned_since: BTreeMap<String, Timestamp>,
    /// The first final phase each run (uid) reached.
    finished: BTreeMap<String, Phase>,
    /// How far along each (run uid, task ARN) its status has recorded the task.
    recorded: BTreeMap<(String, String), LastStatus>,
    /// Runs (uids) that have carried ecsrun's finalizer.
    finalized: std::collections::BTreeSet<String>,
    /// Every launch intent (`sentAt`) written for each (run uid, index, attempt).
    intents: BTreeMap<(String, String, String), std::collections::BTreeSet<Timestamp>>,
    /// Tasks whose RunTask has been held to its intent's bound.
    launches_checked: std::collections::BTreeSet<String>,
}

/// How long after its intent a RunTask can reach ECS: sent within `LAUNCH_INTENT_MAX_AGE` of it, and
/// arriving within the ECS call timeout or never. The deletion's and Find's graces, anchored at the
/// intent, rely on it.
pub const LAUNCH_BOUND: Duration =
    Duration::from_secs(ecsrun::decide::LAUNCH_INTENT_MAX_AGE.as_secs() + crate::fakes::ecs::CALL_TIMEOUT.as_secs());

/// Every RunTask reaches ECS within `LAUNCH_BOUND` of the intent its run recorded for it: a launch held up
/// longer (a slow write of the intent, a slow DescribeTaskDefinition, the rate ceiling) could start a task
/// after a deletion has stopped looking for one.
pub fn launches(
    memory: &mut Memory,
    step: u64,
    statuses: &[(String, EcsTaskRunStatus)],
    tasks: &[FakeTask],
) -> Result<(), Violation> {
    // Every intent written, not only what a step ends with: a launch clears its intent once it records
    // the task, often in the same step.
    for (uid, status) in statuses {
        for (index, lane) in status.lanes() {
            for attempt in &lane.attempts {
                let Some(sent_at) = attempt.sent_at.as_ref() else { continue };
                let key = (uid.clone(), index.to_string(), attempt.attempt.to_string());
                memory.intents.entry(key).or_default().insert(sent_at.0);
            }
        }
    }
    for task in tasks {
        let arn = &task.snapshot.task_arn;
        if memory.launches_checked.contains(arn) {
            continue;
        }
        let (Some(uid), Some(attempt), Some(created)) =
            (task.tag("ecsrun.dev/uid"), task.tag("ecsrun.dev/attempt"), task.snapshot.created_at)
        else {
            continue;
        };
        memory.launches_checked.insert(arn.clone());
        let index = task.tag("ecsrun.dev/index").unwrap_or("0");
        // The latest intent written for it before it started.
        let intents = memory.intents.get(&(uid.to_owned(), index.to_owned(), attempt.to_owned()));
        let Some(intent) = intents.and_then(|intents| intents.range(..=created).next_back()) else { continue };
        let late = intent.duration_until(created);
        if late > jiff::SignedDuration::try_from(LAUNCH_BOUND).unwrap_or_default() {
            return Err(Violation::new(
                "a RunTask reaches ECS within its intent's bound",
                step,
                format!(
                    "{arn} (run {uid} index {index} attempt {attempt}) started {}s after its intent (bound {}s)",
                    late.as_secs(),
                    LAUNCH_BOUND.as_secs()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks every invariant on the world as it is now.
pub fn check(
    memory: &mut Memory,
    step: u64,
    now: Timestamp,
    runs: &[EcsTaskRun],
    tasks: &[FakeTask],
) -> Result<(), Violation> {
    let broken = |(invariant, detail): (&'static str, String)| Violation::new(invariant, step, detail);
    a_live_run_keeps_its_finalizer(memory, runs).map_err(broken)?;
    one_task_per_attempt(tasks).map_err(broken)?;
    no_task_outlives_its_run(memory, now, runs, tasks).map_err(broken)?;
    let by_arn: BTreeMap<&str, &FakeTask> = tasks.iter().map(|task| (task.snapshot.task_arn.as_str(), task)).collect();
    for run in runs {
        let Some(status) = &run.status else { continue };
        let name = format!(
            "{}/{}",
            run.metadata.namespace.as_deref().unwrap_or("?"),
            run.metadata.name.as_deref().unwrap_or("?")
        );
        status_under_its_bound(&name, status).map_err(broken)?;
        succeeded_only_on_ecs_word(&name, status, &by_arn).map_err(broken)?;
        suspended_only_when_the_suspension_stopped_it(&name, status, &by_arn).map_err(broken)?;
        results_are_the_current_tasks(&name, run, status).map_err(broken)?;
        if let Some(uid) = run.metadata.uid.as_deref() {
            last_status_never_goes_back(memory, &name, uid, status).map_err(broken)?;
            a_final_phase_stands(memory, &name, uid, status).map_err(broken)?;
        }
    }
    Ok(())
}

/// A task's results are its own: every simulated task publishes its id (`task`), so a lane's results name
/// the lane's current task, never an earlier attempt's or another index's; and a lane that succeeded with
/// results asked for has them.
fn results_are_the_current_tasks(name: &str, run: &EcsTaskRun, status: &EcsTaskRunStatus) -> Result<(), Broken> {
    for (index, lane) in status.lanes() {
        let published = lane.results.get("task");
        if let Some(published) = published
            && lane.task_id.as_ref() != Some(published)
        {
            let detail = format!("{name} index {index}: results of task {published}, its task is {:?}", lane.task_id);
            return Err(("results_are_the_current_tasks", detail));
        }
        if run.spec.results.is_some()
            && lane.phase == Some(Phase::Succeeded)
            && run.spec.task_arn.is_none()
            && published.is_none()
        {
            let detail = format!("{name} index {index} succeeded without its results: {:?}", lane.message);
            return Err(("results_are_the_current_tasks", detail));
        }
    }
    Ok(())
}

/// What an invariant found broken: its name and what showed it.
type Broken = (&'static str, String);

/// A run keeps ecsrun's finalizer until it is being deleted: the finalizer is what makes its deletion wait
/// for its tasks to stop (a write addressed by name alone removed a re-created run's, seed 916).
fn a_live_run_keeps_its_finalizer(memory: &mut Memory, runs: &[EcsTaskRun]) -> Result<(), Broken> {
    for run in runs {
        let Some(uid) = run.metadata.uid.as_deref() else { continue };
        let finalized = run.metadata.finalizers.iter().flatten().any(|finalizer| finalizer == FINALIZER);
        if finalized {
            memory.finalized.insert(uid.to_owned());
        } else if run.metadata.deletion_timestamp.is_none() && memory.finalized.contains(uid) {
            return Err((
                "a live run keeps ecsrun's finalizer",
                format!("{} ({uid}) lost its finalizer", run.metadata.name.as_deref().unwrap_or_default()),
            ));
        }
    }
    Ok(())
}

/// At most one task per (run uid, index, attempt).
fn one_task_per_attempt(tasks: &[FakeTask]) -> Result<(), Broken> {
    let mut seen = BTreeMap::new();
    for task in tasks {
        let Some(uid) = task.tag("ecsrun.dev/uid") else { continue };
        let key = (uid, task.tag("ecsrun.dev/index").unwrap_or("0"), task.tag("ecsrun.dev/attempt").unwrap_or("?"));
        if let Some(earlier) = seen.insert(key, &task.snapshot.task_arn) {
            return Err((
                "at most one task per (run, index, attempt)",
                format!("run {uid} index {} attempt {}: {earlier} and {}", key.1, key.2, task.snapshot.task_arn),
            ));
        }
    }
    Ok(())
}

/// No task left running for a run that no longer exists, or that finished (the simulator's runs wait for
/// their tasks to stop), once the grace has passed; a task its run was deleted with `deletionPolicy:
/// Orphan` runs on by the user's choice.
fn no_task_outlives_its_run(
    memory: &mut Memory,
    now: Timestamp,
    runs: &[EcsTaskRun],
    tasks: &[FakeTask],
) -> Result<(), Broken> {
    let finished: BTreeMap<&str, bool> = runs
        .iter()
        .filter_map(|run| {
            let done = run.status.as_ref().and_then(|s| s.task.phase).is_some_and(Phase::is_terminal);
            Some((run.metadata.uid.as_deref()?, done))
        })
        .collect();
    let mut still = BTreeMap::new();
    for task in tasks.iter().filter(|task| !task.snapshot.is_stopped() && !task.snapshot.kept_on_delete) {
        let Some(uid) = task.tag("ecsrun.dev/uid") else { continue };
        let whose = match finished.get(uid) {
            Some(false) => continue,
            Some(true) => "finished",
            None => "was gone",
        };
        let arn = &task.snapshot.task_arn;
        let since = memory.orphaned_since.get(arn).copied().unwrap_or(now);
        if now.duration_since(since) > jiff::SignedDuration::try_from(ORPHAN_GRACE).unwrap_or_default() {
            return Err((
                "no task left running without its run",
                format!(
                    "{arn} of run {}/{} (uid {uid}) runs {}s after its run {whose}",
                    task.tag("ecsrun.dev/namespace").unwrap_or("?"),
                    task.tag("ecsrun.dev/name").unwrap_or("?"),
                    now.duration_since(since).as_secs()
                ),
            ));
        }
        still.insert(arn.clone(), since);
    }
    memory.orphaned_since = still;
    Ok(())
}

/// Every status under the size bound (an object must fit in one etcd request).
fn status_under_its_bound(name: &str, status: &EcsTaskRunStatus) -> Result<(), Broken> {
    let size = serde_json::to_vec(status).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
    if size > STATUS_BUDGET_BYTES {
        return Err(("status under its size bound", format!("{name}: {size} bytes")));
    }
    Ok(())
}

/// Succeeded only when ECS reported every judged container exiting 0.
fn succeeded_only_on_ecs_word(
    name: &str,
    status: &EcsTaskRunStatus,
    by_arn: &BTreeMap<&str, &FakeTask>,
) -> Result<(), Broken> {
    if status.task.phase != Some(Phase::Succeeded) {
        return Ok(());
    }
    const INVARIANT: &str = "Succeeded only on ECS's word";
    for (index, lane) in status.lanes() {
        let Some(arn) = lane.task_arn.as_deref() else {
            return Err((INVARIANT, format!("{name} index {index}: no task")));
        };
        let Some(task) = by_arn.get(arn) else {
            return Err((INVARIANT, format!("{name}: ECS never ran {arn}")));
        };
        let app = task.snapshot.containers.iter().find(|c| c.name == "app").and_then(|c| c.exit_code);
        if !task.snapshot.is_stopped() || app != Some(0) {
            return Err((
                INVARIANT,
                format!(
                    "{name} index {index}: ECS says {arn} is {:?} with app exiting {app:?}",
                    task.snapshot.last_status
                ),
            ));
        }
    }
    Ok(())
}

/// An attempt ends Suspended only when the suspension stopped its task (or it had none): a task that ended
/// by itself meanwhile is judged as it ended, so a failure is never hidden.
fn suspended_only_when_the_suspension_stopped_it(
    name: &str,
    status: &EcsTaskRunStatus,
    by_arn: &BTreeMap<&str, &FakeTask>,
) -> Result<(), Broken> {
    for (index, lane) in status.lanes() {
        for attempt in lane.attempts.iter().filter(|a| a.known_outcome() == Some(RunReason::Suspended)) {
            let Some(task) = attempt.task_arn.as_deref().and_then(|arn| by_arn.get(arn)) else { continue };
            if !task.snapshot.stop_code_is(StopCode::UserInitiated) {
                return Err((
                    "only a task the suspension stopped ends its attempt Suspended",
                    format!(
                        "{name} index {index} attempt {}: {} stopped with {:?}",
                        attempt.attempt, task.snapshot.task_arn, task.snapshot.stop_code
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A task's recorded lastStatus never goes back: an older look (a late answer, an event delivered again or
/// out of order) never overwrites a newer one.
fn last_status_never_goes_back(
    memory: &mut Memory,
    name: &str,
    uid: &str,
    status: &EcsTaskRunStatus,
) -> Result<(), Broken> {
    for (index, lane) in status.lanes() {
        let known = lane.last_status.as_ref().and_then(|last| last.known());
        let (Some(arn), Some(last_status)) = (lane.task_arn.as_deref(), known) else { continue };
        let before = memory.recorded.insert((uid.to_owned(), arn.to_owned()), last_status);
        if let Some(before) = before.filter(|before| last_status < *before) {
            return Err((
                "a task's recorded lastStatus never goes back",
                format!("{name} index {index}: {arn} was {before:?}, now {last_status:?}"),
            ));
        }
    }
    Ok(())
}

/// A final phase stands.
fn a_final_phase_stands(memory: &mut Memory, name: &str, uid: &str, status: &EcsTaskRunStatus) -> Result<(), Broken> {
    match (memory.finished.get(uid), status.task.phase) {
        (Some(first), phase) if phase != Some(*first) => {
            Err(("a final phase stands", format!("{name}: was {first:?}, now {phase:?}")))
        }
        (None, Some(phase)) if phase.is_terminal() => {
            memory.finished.insert(uid.to_owned(), phase);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// No ECS call a policy forbids, and no tenant acting on or reading another's task: every RunTask is of
/// a run (and spec) its namespace's EcsRunPolicies allow; no StopTask on behalf of one namespace touches
/// a task ecsrun started for another; no run's status names another namespace's task.
pub fn tenancy(
    step: u64,
    acts: &[Act],
    specs: &BTreeMap<String, (String, EcsTaskRunSpec)>,
    runs: &[EcsTaskRun],
    tasks: &[FakeTask],
) -> Result<(), Violation> {
    const FORBIDDEN: &str = "no ECS call a policy forbids";
    let broken = |invariant: &'static str, detail: String| Err(Violation::new(invariant, step, detail));
    let policies = tenants::policies();
    let labels: BTreeMap<&str, BTreeMap<String, String>> = tenants::namespaces().into_iter().collect();
    let namespace_of = |arn: &str| tasks.iter().find(|t| t.snapshot.task_arn == arn).and_then(|t| t.tag(NAMESPACE_TAG));
    for act in acts {
        match act {
            Act::Launch { namespace, uid, spec } => {
                // The user's spec, as created, is what the policies judge; the shell's copy must be it.
                let (created_in, created) = match uid.as_deref().and_then(|uid| specs.get(uid)) {
                    Some((created_in, created)) => (created_in.as_str(), created),
                    None => {
                        return broken(FORBIDDEN, format!("RunTask for a run nobody created: {uid:?} in {namespace}"));
                    }
                };
                if spec.suspend {
                    return broken("no launch for a suspended run", format!("RunTask in {namespace} for run {uid:?}"));
                }
                // Suspending and resuming is the one change a launched spec may carry.
                let launched = EcsTaskRunSpec { suspend: created.suspend, ..spec.as_ref().clone() };
                if created_in != namespace || *created != launched {
                    return broken(
                        FORBIDDEN,
                        format!("RunTask in {namespace} of a spec not the run's (created in {created_in})"),
                    );
                }
                let selected = policy::selecting(&policies, labels.get(namespace.as_str()).unwrap_or(&BTreeMap::new()));
                if let Err(denial) = policy::check(namespace, tenants::REGION, spec, &selected) {
                    return broken(
                        FORBIDDEN,
                        format!("RunTask in {namespace} on {}: {}", spec.cluster, denial.message()),
                    );
                }
            }
            // The orphan sweep acts for no run (`stops` judges it).
            Act::Stop { namespace, .. } if namespace.is_empty() => {}
            Act::Stop { namespace, task_arn } => {
                if let Some(owner) = namespace_of(task_arn).filter(|owner| owner != namespace) {
                    return broken(FORBIDDEN, format!("StopTask for {namespace} of {task_arn}, a task of {owner}"));
                }
            }
        }
    }
    for run in runs {
        let namespace = run.metadata.namespace.as_deref().unwrap_or_default();
        for (index, lane) in run.status.iter().flat_map(|status| status.lanes()) {
            if let Some(owner) = lane.task_arn.as_deref().and_then(namespace_of).filter(|owner| *owner != namespace) {
                return broken(
                    "no run reads another namespace's task",
                    format!(
                        "{namespace}/{} index {index} records {:?}, a task of {owner}",
                        run.metadata.name.as_deref().unwrap_or_default(),
                        lane.task_arn
                    ),
                );
            }
        }
    }
    Ok(())
}

/// The orphan sweep (StopTask on behalf of no run) stops only tasks meant to stop: never a task of a live
/// run, of a run deleted with `deletionPolicy: Orphan`, or one a live run adopted (`spec.taskArn`).
pub fn stops(
    step: u64,
    acts: &[Act],
    specs: &BTreeMap<String, (String, EcsTaskRunSpec)>,
    runs: &[EcsTaskRun],
    tasks: &[FakeTask],
) -> Result<(), Violation> {
    const INVARIANT: &str = "no task of a live, orphaned-by-choice or adopting run is stopped by anyone but its run";
    let broken = |detail: String| Err(Violation::new(INVARIANT, step, detail));
    let live = |run: &&EcsTaskRun| run.metadata.deletion_timestamp.is_none();
    for act in acts {
        let Act::Stop { namespace, task_arn } = act else { continue };
        if !namespace.is_empty() {
            continue;
        }
        if let Some(adopter) = runs.iter().filter(live).find(|run| run.spec.task_arn.as_deref() == Some(task_arn)) {
            return broken(format!(
                "the orphan sweep stopped {task_arn}, which {}/{} adopted",
                adopter.metadata.namespace.as_deref().unwrap_or("?"),
                adopter.metadata.name.as_deref().unwrap_or("?")
            ));
        }
        let Some(uid) = tasks.iter().find(|t| t.snapshot.task_arn == *task_arn).and_then(|t| t.tag("ecsrun.dev/uid"))
        else {
            continue;
        };
        if let Some(owner) = runs.iter().filter(live).find(|run| run.metadata.uid.as_deref() == Some(uid)) {
            return broken(format!(
                "the orphan sweep stopped {task_arn} of the live run {}/{}",
                owner.metadata.namespace.as_deref().unwrap_or("?"),
                owner.metadata.name.as_deref().unwrap_or("?")
            ));
        }
        if specs.get(uid).is_some_and(|(_, spec)| spec.deletion_policy() == ecsrun::api::DeletionPolicy::Orphan) {
            return broken(format!("the orphan sweep stopped {task_arn}, left running by deletionPolicy: Orphan"));
        }
    }
    Ok(())
}
