//! Schedules in the simulator: half the seeds have one, a slot every minute or five, with a concurrency policy, history
//! limits and (now and then) runs that delete themselves once finished. The acting replicas reconcile it
//! from their lagging caches of its runs; its writes fail, lose their answers and take their time like
//! every call; users trigger it by hand. Before the world settles, its user suspends it. In some seeds its
//! runs are refused (they fail, and may go, at once) and its status writes are refused for minutes.
//!
//! Namespace deletion too: now and then a namespace goes, its runs (and schedule) with it.

use std::time::Duration;

use ecsrun::api::{EcsTaskRun, EcsTaskSchedule};
use rand::RngExt;

use super::super::tenants::{self, NAMESPACES};
use super::World;

/// The schedule's name, in the first namespace.
pub(super) const SCHEDULE: &str = "minutely";

impl World {
    /// The seed's schedule, if it has one.
    pub(super) fn add_schedule(&mut self) -> anyhow::Result<()> {
        if self.rng.random_range(0..2) == 0 {
            return Ok(());
        }
        let namespace = NAMESPACES[0];
        let policy = match self.rng.random_range(0..3) {
            0 => "Allow",
            1 => "Forbid",
            _ => "Replace",
        };
        // Every minute, or every five: a slot stays the latest for minutes, as an hourly one does for an
        // hour, and a slot whose run went before it was recorded is due again all that time.
        let cron = if self.rng.random_range(0..2) == 0 { "* * * * *" } else { "*/5 * * * *" };
        let extra = if self.rng.random_range(0..2) == 0 { "ttlSecondsAfterFinished: 0\n" } else { "" };
        // In a third of the seeds the template names a cluster the policies refuse: every run fails at once
        // (and, with the TTL, goes at once), the quickest a slot's run can be gone.
        let (own, other) = tenants::home(namespace);
        let refused = self.rng.random_range(0..3) == 0;
        let spec = tenants::spec(if refused { other } else { own }, extra);
        let schedule: EcsTaskSchedule = serde_json::from_value(serde_json::json!({
            "apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskSchedule",
            "metadata": {"name": SCHEDULE, "namespace": namespace, "generation": 1,
                         "creationTimestamp": self.now().to_string()},
            "spec": {
                "schedule": cron,
                "concurrencyPolicy": policy,
                "successfulRunsHistoryLimit": self.rng.random_range(0..3),
                "failedRunsHistoryLimit": self.rng.random_range(0..3),
                "runTemplate": {"spec": spec},
            },
        }))?;
        let refused = if refused { ", runs refused" } else { "" };
        let ttl = if extra.is_empty() { "" } else { ", TTL 0" };
        self.say(format!("user creates schedule {namespace}/{SCHEDULE} ({cron:?}, {policy}{ttl}{refused})"));
        self.api.put_schedule(namespace, &schedule);
        // In half the seeds the schedule's status cannot be written for three to ten minutes (a webhook on
        // it is down): its slots stay unrecorded while their runs run, finish and go.
        if self.rng.random_range(0..2) == 0 {
            let from = self.now() + Duration::from_secs(self.rng.random_range(0..300));
            let until = from + Duration::from_secs(self.rng.random_range(180..600));
            self.say(format!("the schedule's status writes will be refused from {from} until {until}"));
            self.api.refuse_writes(&format!("ecstaskschedules/{SCHEDULE}/status"), from, until);
        }
        Ok(())
    }

    /// An acting replica reconciles the schedule.
    pub(super) fn schedule_one(&mut self, id: usize) {
        if self.api.schedule(NAMESPACES[0], SCHEDULE).is_some() {
            self.launch(id, super::Job::Schedule);
        }
    }

    /// The runs a schedule reconcile created reach the leader's watch at once, half the time, and the
    /// leader reconciles each, as kube-runtime does on a watch event.
    pub(super) fn runs_created_reach_the_leader(&mut self) {
        let leader = self.leader;
        let prefix = format!("{SCHEDULE}-");
        let new: Vec<EcsTaskRun> = self
            .api
            .runs()
            .into_iter()
            .filter(|run| run.metadata.name.as_deref().is_some_and(|name| name.starts_with(&prefix)))
            .filter(|run| !self.replicas[leader].cache.contains_key(&super::key(run)))
            .collect();
        for run in new {
            if self.rng.random_range(0..2) == 0 {
                continue;
            }
            let key = super::key(&run);
            self.replicas[leader].cache.insert(key.clone(), run);
            self.reconcile(leader, key);
        }
    }

    /// A user triggers the schedule by hand, or deletes a namespace.
    pub(super) fn user_elsewhere(&mut self) {
        match self.rng.random_range(0..10) {
            0 if !NAMESPACES.iter().any(|namespace| self.api.terminating(namespace)) => {
                let namespace = NAMESPACES[self.rng.random_range(0..NAMESPACES.len())];
                self.say(format!("user deletes namespace {namespace}"));
                self.api.terminate_namespace(namespace, self.now());
            }
            _ => {
                let Some(schedule) = self.api.schedule(NAMESPACES[0], SCHEDULE) else { return };
                if self.api.terminating(NAMESPACES[0]) {
                    return;
                }
                let now = self.now();
                let name = format!("{SCHEDULE}-manual-{}", now.as_second());
                if self.api.run(NAMESPACES[0], &name).is_some() {
                    return;
                }
                self.say(format!("user triggers {}/{SCHEDULE} by hand: {name}", NAMESPACES[0]));
                self.stats.runs += 1;
                let run = schedule.run(name.clone(), now, true);
                self.api.create_run(NAMESPACES[0], &run, now);
            }
        }
    }

    /// No more slots: the world settles with the runs it has.
    pub(super) fn suspend_schedule(&mut self) {
        if self.api.schedule(NAMESPACES[0], SCHEDULE).is_some() {
            self.say(format!("user suspends schedule {}/{SCHEDULE}", NAMESPACES[0]));
            self.api.edit_schedule(NAMESPACES[0], SCHEDULE, |spec| spec.suspend = true);
        }
    }
}
