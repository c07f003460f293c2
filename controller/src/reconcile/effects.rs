//! The interpreter of a run's effects (`decide::run`): one path for every run, whatever its count. It
//! asks the decision which lanes act, carries out the effects before observing (the launch intents),
//! observes the lanes concurrently under the account's rate ceiling, hands what it saw back, and carries
//! out the effects that come back, in their order. It decides nothing itself.

use std::sync::{Mutex, PoisonError};

use futures::future::join_all;
use jiff::Timestamp;
use kube::Resource;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use tracing::{debug, info, warn};

use super::error::{Staleness, not_found};
use super::observe::{observe, policy_gate};
use super::slots;
use super::{Context, Error, FIELD_MANAGER, RunKey, actor, queue, with_jitter};
use crate::api::MAX_RESULT_LOG_LINES;
use crate::api::{EcsTaskRun, EcsTaskRunStatus, Phase};
use crate::decide::results::{ResultLog, ResultLogs, ResultRead};
use crate::decide::run::{self as decision, ComeBack, Effect, Observation, Opening, Steps};
use crate::decide::{self, Admission, RunView};
use crate::ecs::{Ecs, EcsError, EcsErrorKind, EcsTarget};

/// One reconcile of one run: the object as the cache had it, and where its writes go.
pub(super) struct Shell<'a, E> {
    pub run: &'a EcsTaskRun,
    pub namespace: &'a str,
    pub api: &'a Api<EcsTaskRun>,
    pub ctx: &'a Context<E>,
    pub key: RunKey,
    /// The resourceVersion every status write is conditional on: the copy decided on, then each write's.
    resource_version: Mutex<Option<String>>,
    /// The status this reconcile last wrote.
    last_written: Mutex<Option<EcsTaskRunStatus>>,
}

impl<'a, E: Ecs> Shell<'a, E> {
    pub fn new(run: &'a EcsTaskRun, namespace: &'a str, api: &'a Api<EcsTaskRun>, ctx: &'a Context<E>) -> Self {
        let resource_version = Mutex::new(run.metadata.resource_version.clone());
        let last_written = Mutex::new(None);
        Self { run, namespace, api, ctx, key: crate::cached::run_key(run.meta()), resource_version, last_written }
    }

    /// The run as the decision sees it, with `status` and, queued, Kueue's `admission`.
    pub fn view<'s>(&'s self, status: &'s EcsTaskRunStatus, admission: &'s Admission) -> Result<RunView<'s>, Error> {
        let run = self.run;
        Ok(RunView {
            namespace: self.namespace,
            name: run.metadata.name.as_deref().ok_or(Error::MissingMetadata("name"))?,
            uid: run.metadata.uid.as_deref().ok_or(Error::MissingMetadata("uid"))?,
            generation: run.metadata.generation,
            created_at: run.metadata.creation_timestamp.as_ref().ok_or(Error::MissingMetadata("creationTimestamp"))?.0,
            spec: &run.spec,
            status,
            default_poll_interval: self.ctx.settings.default_poll_interval,
            index: 0,
            max_tail_lines: self.ctx.tenancy.max_tail_lines(self.namespace),
            cluster_id: self.ctx.tenancy.cluster_id(),
            admission,
            results_allowed: self.ctx.tenancy.results_allowed(self.namespace),
            results: &decide::results::NO_RESULT_LOGS,
        })
    }

    /// Reconciles a run that is not being deleted.
    pub async fn apply(&self) -> Result<Action, Error> {
        // `written`: the status as the object has it; `status`: with what Kueue says of a queued run.
        let written = self.run.status.clone().unwrap_or_default();
        let mut status = written.clone();
        let queued = match crate::queue::local_queue(self.run).filter(|_| self.ctx.settings.kueue) {
            Some(local_queue) => {
                Some(queue::admission(self.ctx, self.run, self.namespace, local_queue, &status).await?)
            }
            None => None,
        };
        let admission = queued.as_ref().map_or(Admission::NotQueued, |queued| queued.admission.clone());
        if let Some(queued) = &queued {
            if queued.status.admitted && status.queue.as_ref().is_none_or(|queue| !queue.admitted) {
                self.observe_admission(queued);
            }
            status.queue = Some(queued.status.clone());
        }
        // Admitted in a flavor that stands for a capacity provider: launched (and checked against the
        // policies) on that provider.
        let action = match queued.as_ref().and_then(|queued| queued.capacity_provider.as_deref()) {
            Some(provider) => {
                let on_capacity =
                    EcsTaskRun { spec: crate::queue::on_capacity(&self.run.spec, provider), ..self.run.clone() };
                let shell = Shell::new(&on_capacity, self.namespace, self.api, self.ctx);
                let action = shell.decide_and_act(&written, &status, &admission).await;
                if let Some(latest) = shell.latest_status() {
                    *self.last_written.lock().unwrap_or_else(PoisonError::into_inner) = Some(latest);
                    *self.resource_version.lock().unwrap_or_else(PoisonError::into_inner) =
                        shell.resource_version.lock().unwrap_or_else(PoisonError::into_inner).clone();
                }
                action
            }
            None => self.decide_and_act(&written, &status, &admission).await,
        };
        // Only on what this reconcile decided and wrote: a failed one may have decided on a stale copy.
        if let (Ok(_), Some(workload)) = (&action, queued.as_ref().and_then(|queued| queued.workload.as_ref())) {
            // Once the effects are carried out: an evicted run's quota goes back as soon as its tasks have
            // stopped, a finished run's at once.
            let latest = self.latest_status().unwrap_or(status);
            if let Some(settling) =
                queue::settling(self.ctx, self.namespace, &workload.name_any(), &self.run.spec, &latest).await?
            {
                if settling.releases_quota() {
                    // Conditional on the run's version: had another replica recorded a launch since, this
                    // fails, and no quota goes back under a task about to start.
                    self.write_status(&latest).await?;
                }
                queue::settle(self.ctx, self.namespace, settling, self.ctx.settings.clock.now()).await?;
            }
        }
        action
    }

    /// How long a queued run waited for its admission, from its Workload's creation.
    fn observe_admission(&self, queued: &queue::Queued) {
        let created = queued.workload.as_ref().and_then(|workload| workload.metadata.creation_timestamp.as_ref());
        if let (Some(created), Some(admitted)) = (created, queued.status.admitted_at.as_ref()) {
            let waited = decide::duration_between(created.0, admitted.0);
            self.ctx.metrics.admission_wait.observe(waited.as_secs_f64());
        }
    }

    /// The status this reconcile last wrote, if it wrote one.
    fn latest_status(&self) -> Option<EcsTaskRunStatus> {
        self.last_written.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    async fn decide_and_act(
        &self,
        written: &EcsTaskRunStatus,
        status: &EcsTaskRunStatus,
        admission: &Admission,
    ) -> Result<Action, Error> {
        let view = self.view(status, admission)?;
        let now = self.ctx.settings.clock.now();
        let steps = decision::steps(&view, now);
        if steps.is_idle() {
            return self.perform(decision::idle(&view, now), written, None, None).await;
        }
        // What only the shell can learn: whether the policies allow a launch, and where the calls go.
        let prepared = async {
            let denied = if steps.launches() { policy_gate(self.run, self.namespace, self.ctx).await? } else { None };
            let target = if steps.need_ecs() { Some(self.ctx.target(self.run, self.namespace).await?) } else { None };
            Ok::<_, Error>((denied, target))
        };
        let (denied, target) = match prepared.await {
            Ok(prepared) => prepared,
            Err(error) => {
                self.record_held_up(&view, &steps, &error, now).await;
                return Err(error);
            }
        };
        let region = target.as_ref().map(|target| target.region.as_str());
        let mut written = written.clone();
        let mut observing = Vec::new();
        for effect in decision::begin(&view, &steps, region, denied.is_some(), now) {
            match effect {
                Opening::WriteIntent(intent) => {
                    // Recorded before any RunTask: a restart that finds it looks for the task first.
                    let object = self.write_status(&intent).await?;
                    written = intent;
                    // The cache can be behind the API server (a run deleted a moment ago, a fresh
                    // replica's first list): the answer is the object as it is. A run being deleted
                    // launches nothing; its deletion, which sees the intent, makes sure of it.
                    if object.metadata.deletion_timestamp.is_some() {
                        info!("not launching: the run is being deleted");
                        return Ok(Action::requeue(decision::STOP_RECHECK));
                    }
                }
                Opening::Observe { index, step } => observing.push((index, step)),
            }
        }
        let view = self.view(&written, admission)?;
        let target = target.as_ref();
        let mut seen = join_all(observing.iter().map(|(index, step)| {
            let lane = decision::lane_status(&view, *index);
            let denied = denied.as_deref();
            async move {
                let lane_view = RunView { index: *index, status: &lane, ..view };
                (*index, observe(&lane_view, step, target, self.ctx, denied).await)
            }
        }))
        .await;
        // A replica that may have lost the Lease writes nothing: the status is the new leader's.
        if let Some(at) = seen.iter().position(|(_, seen)| seen.as_ref().is_err_and(is_not_leader))
            && let (_, Err(error)) = seen.swap_remove(at)
        {
            warn!(%error, "not leading: nothing recorded");
            return Err(error);
        }
        let mut first_error = None;
        let observed: Vec<(u32, Observation)> = seen
            .into_iter()
            .map(|(index, observation)| match observation {
                Ok(observation) => (index, observation),
                Err(error) => {
                    warn!(index, %error, label = error.label(), "task held up");
                    let held_up = Observation::HeldUp { reason: error.reason(), cause: error.cause() };
                    first_error.get_or_insert(error);
                    (index, held_up)
                }
            })
            .collect();
        let now = self.ctx.settings.clock.now();
        let result_logs = match target {
            Some(target) => self.read_results(target, &decision::result_reads(&view, &observed, now)).await,
            None => ResultLogs::default(),
        };
        let view = RunView { results: &result_logs, ..view };
        let effects = decision::finish(&view, &steps, observed, now);
        self.perform(effects, &written, target, first_error).await
    }

    /// Carries out `effects` in order. `written`: the status as last written; `target`: where ECS calls go
    /// (None: no lane needed ECS). `first_error` (a lane held up), or a StopTask that fails, is returned
    /// once every effect is carried out, so the reconcile is retried; a failed status write ends it.
    async fn perform(
        &self,
        mut effects: Vec<Effect>,
        written: &EcsTaskRunStatus,
        target: Option<&EcsTarget>,
        mut first_error: Option<Error>,
    ) -> Result<Action, Error> {
        let ctx = self.ctx;
        let name = self.run.name_any();
        let mut action = Action::await_change();
        let mut at = 0;
        while at < effects.len() {
            let effect = effects[at].clone();
            at += 1;
            match effect {
                Effect::ReadLogs(reads) => {
                    let Some(target) = target else { continue };
                    for read in &reads {
                        let result = self.read_log_tail(target, read).await;
                        decision::attach_log_tail(&mut effects[at..], read, result);
                    }
                }
                Effect::Follow(follows) => match (target, follows.is_empty()) {
                    (Some(target), false) => {
                        let arns: Vec<String> = follows.iter().map(|follow| follow.task_arn.clone()).collect();
                        let every = follows.iter().map(|follow| follow.every).min().unwrap_or_default();
                        ctx.tracker.follow(&self.key, target, &arns, every);
                    }
                    _ => ctx.tracker.forget(&self.key),
                },
                Effect::Record(tasks) => {
                    if let Some(target) = target {
                        for task in &tasks {
                            ctx.tracker.record(target, task);
                        }
                    }
                }
                Effect::StopTask(stop) => {
                    let Some(target) = target else { continue };
                    match ctx.ecs.stop_task(target, &stop.task_arn, &stop.reason, &actor(self.run)?).await {
                        Ok(Some(task)) => ctx.tracker.record(target, &task),
                        Ok(None) => {}
                        Err(error) => {
                            first_error.get_or_insert(error.into());
                        }
                    }
                }
                Effect::WriteStatus { status, stop_if_gone } => {
                    let result = self.write_and_count(written, &status).await;
                    if let (Some(target), Err(error)) = (target, &result)
                        && !stop_if_gone.is_empty()
                        && self.run_is_gone(error).await
                    {
                        self.stop_unowned(target, &stop_if_gone).await;
                    }
                    result?;
                }
                Effect::Publish(event) => ctx.publish(self.run, &event).await,
                Effect::ComeBack(come_back) => {
                    action = match come_back {
                        ComeBack::After(after) => Action::requeue(with_jitter(after, self.namespace, &name)),
                        ComeBack::Resync => {
                            Action::requeue(with_jitter(decision::FOLLOW_RESYNC, self.namespace, &name))
                        }
                        ComeBack::OnChange => Action::await_change(),
                    }
                }
                Effect::DeleteRun => {
                    action = if self.delete_expired().await? {
                        Action::await_change()
                    } else {
                        Action::requeue(with_jitter(decision::SLOT_RECHECK, self.namespace, &name))
                    };
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(action),
        }
    }

    /// Deletes the finished run whose `ttlSecondsAfterFinished` passed, only if it is still the run decided
    /// on (its uid a precondition: a run created again under the name is another). Gone already, or
    /// replaced: nothing to do.
    async fn delete_expired(&self) -> Result<bool, Error> {
        // Only an unrecorded slot keeps the run from its deletion; the settle is the finalizer's to wait out.
        let now = self.ctx.settings.clock.now();
        if let Some(slots::SlotHold::Unrecorded(schedule)) =
            slots::slot_hold(&self.ctx.client, self.namespace, self.run, now).await?
        {
            debug!(%schedule, "kept past ttlSecondsAfterFinished: its schedule has not recorded its slot yet");
            return Ok(false);
        }
        let preconditions = Preconditions { uid: self.run.metadata.uid.clone(), resource_version: None };
        let params = DeleteParams { preconditions: Some(preconditions), ..DeleteParams::default() };
        match self.api.delete(&self.run.name_any(), &params).await {
            Ok(_) => {
                info!("deleted: ttlSecondsAfterFinished has passed since the run finished");
                self.ctx.metrics.runs_expired.inc();
                Ok(true)
            }
            Err(kube::Error::Api(answer)) if answer.code == 404 || answer.code == 409 => Ok(true),
            Err(error) => Err(Error::Kube(error)),
        }
    }

    /// The last lines of one failed container, or why they cannot be read. Never an error: the run's
    /// outcome stands whatever CloudWatch Logs says.
    async fn read_log_tail(&self, target: &EcsTarget, read: &decide::LogRead) -> Result<Vec<String>, String> {
        let result = match &read.stream {
            Ok(stream) => self.ctx.ecs.log_tail(target, stream, read.lines).await.map_err(|error| {
                format!(
                    "cannot read log stream {} in {} ({}): {}",
                    stream.stream, stream.group, stream.region, error.message
                )
            }),
            Err(why) => Err(format!("no log tail: {why}")),
        };
        if let Err(why) = &result {
            debug!(container = %read.container, index = read.index, %why, "failed container's logs not read");
        }
        result
    }

    /// The logs of the containers that publish a stopped task's results (their last lines), or why they
    /// cannot be read: what the decision makes of them is its own.
    async fn read_results(&self, target: &EcsTarget, reads: &[ResultRead]) -> ResultLogs {
        let mut logs = ResultLogs::default();
        for read in reads {
            let log = match &read.stream {
                Err(why) => ResultLog::Unnamed(why.clone()),
                Ok(stream) => match self.ctx.ecs.log_tail(target, stream, MAX_RESULT_LOG_LINES).await {
                    Ok(lines) => ResultLog::Lines(lines),
                    Err(error) if error.kind == EcsErrorKind::LogStreamNotFound => ResultLog::NoStream,
                    Err(error) => ResultLog::Unreadable(format!(
                        "cannot read log stream {} in {} ({}): {}",
                        stream.stream, stream.group, stream.region, error.message
                    )),
                },
            };
            let metrics = &self.ctx.metrics;
            metrics.result_logs_read.with_label_values(&[log.label()]).inc();
            match &log {
                ResultLog::Lines(lines) => {
                    let parsed = decide::results::parse(lines, crate::api::results_budget(self.run.spec.count));
                    metrics.results.with_label_values(&["read"]).inc_by(parsed.values.len() as u64);
                    metrics.results.with_label_values(&["refused"]).inc_by(parsed.refused.len() as u64);
                    debug!(container = %read.container, index = read.index, lines = lines.len(), "results read");
                }
                other => debug!(container = %read.container, index = read.index, log = ?other, "no results read"),
            }
            logs.insert(read, log);
        }
        logs
    }

    /// Tasks just launched or adopted for a run that is gone: whatever let it go (a deletion that raced the
    /// launch), no finalizer can stop them now, so they are stopped here rather than left running unowned.
    async fn stop_unowned(&self, target: &EcsTarget, task_arns: &[String]) {
        self.ctx.tracker.forget(&self.key);
        let text = format!(
            "ecsrun: EcsTaskRun {}/{} was deleted while its task was launched",
            self.namespace,
            self.run.name_any()
        );
        let reason = decide::marked_stop_reason(&text, crate::api::StopCause::Deleted);
        let Ok(actor) = actor(self.run) else { return };
        for task_arn in task_arns {
            match self.ctx.ecs.stop_task(target, task_arn, &reason, &actor).await {
                Ok(_) => warn!(task_arn, "the run was gone before its launch was recorded: stopped its task"),
                Err(error) => warn!(task_arn, %error, "the run is gone and its task could not be stopped"),
            }
        }
    }

    /// Writes the status if it differs from `old`, and counts what a change tells: usage newly recorded,
    /// a run that just finished.
    async fn write_and_count(&self, old: &EcsTaskRunStatus, status: &EcsTaskRunStatus) -> Result<(), Error> {
        if status == old {
            return Ok(());
        }
        self.write_status(status).await?;
        let metrics = &self.ctx.metrics;
        for used in decide::usage::added(old, status) {
            let labels = [self.namespace, crate::metrics::capacity_provider_label(used.capacity_provider.as_deref())];
            metrics.task_vcpu_seconds.with_label_values(&labels).inc_by(used.vcpu_seconds);
            metrics.task_gib_seconds.with_label_values(&labels).inc_by(used.gib_seconds);
        }
        if status.task.phase != old.task.phase
            && let Some(phase) = status.task.phase.filter(|phase| phase.is_terminal())
        {
            let outcome = match phase {
                Phase::Succeeded => "succeeded",
                Phase::Unknown => "unknown",
                _ => "failed",
            };
            let reason = status.task.reason_str().unwrap_or("unknown");
            metrics.runs_finished.with_label_values(&[outcome, reason]).inc();
            info!(outcome, reason, message = status.task.message.as_deref().unwrap_or_default(), "run finished");
        }
        Ok(())
    }

    /// Writes the status by server-side apply; returns the object as the API server now has it. The write
    /// is conditional on the resourceVersion decided on: a decision made on a copy the cache had not
    /// brought up to date (our own last write not seen yet, a fresh replica's stale first list, a run
    /// deleted and created again under its name) is refused (`Error::Stale`), never written over a newer
    /// status. (A uid in an apply is no precondition: the API server ignores it.)
    pub async fn write_status(&self, status: &EcsTaskRunStatus) -> Result<EcsTaskRun, Error> {
        let resource_version = self.resource_version.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let body = serde_json::json!({
            "apiVersion": EcsTaskRun::api_version(&()),
            "kind": EcsTaskRun::kind(&()),
            "metadata": { "resourceVersion": resource_version },
            "status": status,
        });
        let written = self
            .api
            .patch_status(&self.run.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body))
            .await
            .map_err(|error| match &error {
                kube::Error::Api(answer) if answer.code == 409 => Error::Stale(Staleness::Changed),
                _ => Error::Kube(error),
            })?;
        *self.resource_version.lock().unwrap_or_else(PoisonError::into_inner) =
            written.metadata.resource_version.clone();
        *self.last_written.lock().unwrap_or_else(PoisonError::into_inner) = Some(status.clone());
        Ok(written)
    }

    /// Whether a failed status write means this run no longer exists: not found by name (a 404 for the
    /// whole resource while its CRD reloads says nothing of the run), or, the copy being stale, the name
    /// now another run's or nobody's.
    async fn run_is_gone(&self, error: &Error) -> bool {
        let name = self.run.name_any();
        match error {
            Error::Kube(error) => not_found(error, &name),
            Error::Stale(_) => match self.api.get(&name).await {
                Ok(now) => now.metadata.uid != self.run.metadata.uid,
                Err(error) => not_found(&error, &name),
            },
            _ => false,
        }
    }

    /// A launch held up before any lane acted (policies or credentials unreadable) says why in the run's
    /// status, not only in an Event; not on a replica that may have lost the Lease: the status is the new
    /// leader's.
    async fn record_held_up(&self, view: &RunView<'_>, steps: &Steps, error: &Error, now: Timestamp) {
        if is_not_leader(error) {
            return;
        }
        if let Some(said) = decision::held_up(view, steps, error.reason(), &error.cause(), now)
            && let Err(write) = self.write_status(&said).await
        {
            warn!(error = %write, "could not record why the run is held up");
        }
    }

    /// A deletion held up by an error says why in the run's status (see `decide::cleanup_held_up`).
    pub async fn record_cleanup_held_up(&self, error: &Error) {
        let Some(status) = self.run.status.as_ref() else { return };
        if error.is_routine() || is_not_leader(error) {
            return;
        }
        let admission = Admission::NotQueued;
        let Ok(view) = self.view(status, &admission) else { return };
        let said = decide::cleanup_held_up(&view, error.reason(), &error.cause(), self.ctx.settings.clock.now());
        if said != *status
            && let Err(write) = self.write_status(&said).await
        {
            warn!(error = %write, "could not record why the deletion is held up");
        }
    }
}

fn is_not_leader(error: &Error) -> bool {
    matches!(error.inner(), Error::Ecs(EcsError { kind: EcsErrorKind::NotLeader, .. }))
}
