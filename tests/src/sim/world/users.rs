//! What the simulator's users do to runs: create them (now and then asking for a stop or a deletion a few
//! steps later), delete them (and create them again, as GitOps' `Replace` does), stop, suspend and resume
//! them. Each edit reaches the leader's watch at once, most of the time.

use std::collections::BTreeSet;

use ecsrun::api::{DeletionPolicy, EcsTaskRun, EcsTaskRunSpec};
use rand::RngExt;

use super::super::tenants::{self, NAMESPACES};
use super::{MAX_RUNS, World, key};

impl World {
    /// The stops and deletions users asked for a few steps after creating a run.
    pub(super) async fn act_soon(&mut self) {
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.soon).into_iter().partition(|(at, ..)| *at <= self.step);
        self.soon = later;
        for (_, namespace, name, delete) in due {
            if self.api.run(&namespace, &name).is_none() {
                continue;
            }
            if delete {
                self.say(format!("user deletes {namespace}/{name} soon after creating it"));
                self.api.delete_run(&namespace, &name, self.now());
            } else {
                self.say(format!("user sets stop on {namespace}/{name} soon after creating it"));
                self.api.edit_spec(&namespace, &name, |spec| spec.stop = true);
            }
            self.react(namespace, name).await;
        }
    }

    pub(super) fn create(&mut self) {
        if self.created >= MAX_RUNS {
            return;
        }
        self.created += 1;
        let namespace = NAMESPACES[self.rng.random_range(0..NAMESPACES.len())];
        let shared: Vec<String> = self
            .ecs
            .live()
            .into_iter()
            .filter(|arn| self.ecs.task(arn).is_some_and(|t| t.cluster == "shared"))
            .collect();
        let (name, spec) = tenants::new_run(&mut self.rng, namespace, self.created, &shared);
        self.say(format!("user creates {namespace}/{name}"));
        self.stats.runs += 1;
        match self.rng.random_range(0..10) {
            0..2 => self.soon.push((self.step + self.rng.random_range(2..12), namespace.into(), name.clone(), false)),
            2..4 => self.soon.push((self.step + self.rng.random_range(2..12), namespace.into(), name.clone(), true)),
            _ => {}
        }
        // A third of the runs wait in Kueue's queue.
        let queued = self.rng.random_range(0..3) == 0 && spec.task_arn.is_none();
        self.create_run(namespace, &name, spec, queued);
    }

    pub(super) fn create_run(&mut self, namespace: &str, name: &str, spec: EcsTaskRunSpec, queued: bool) {
        if self.api.terminating(namespace) {
            self.say(format!("  refused: namespace {namespace} is being deleted"));
            return;
        }
        let mut run = EcsTaskRun::new(name, spec.clone());
        if queued {
            self.say("  queued in LocalQueue team".to_owned());
            run.metadata.labels = Some([(ecsrun::api::QUEUE_NAME_LABEL.to_owned(), "team".to_owned())].into());
        }
        let created = self.api.create_run(namespace, &run, self.now());
        if let Some(uid) = created.metadata.uid {
            self.specs.insert(uid, (namespace.to_owned(), spec));
        }
    }

    pub(super) fn pick_run(&mut self) -> Option<EcsTaskRun> {
        let runs = self.api.runs();
        (!runs.is_empty()).then(|| runs[self.rng.random_range(0..runs.len())].clone())
    }

    pub(super) async fn delete(&mut self, recreate: bool) {
        // Half the runs created again kept their task on deletion (`deletionPolicy: Orphan`): a stale copy
        // of such a run releases its name without asking ECS or the API server, the one path where a
        // finalizer write addressed by name alone reaches the new run.
        let kept: Vec<EcsTaskRun> =
            self.api.runs().into_iter().filter(|run| run.spec.deletion_policy() == DeletionPolicy::Orphan).collect();
        let picked = if recreate && !kept.is_empty() && self.rng.random_range(0..2) == 0 {
            Some(kept[self.rng.random_range(0..kept.len())].clone())
        } else {
            self.pick_run()
        };
        let Some(run) = picked else { return };
        let (namespace, name) = key(&run);
        if recreate {
            self.say(format!("user deletes {namespace}/{name} to create it again (Replace)"));
            self.recreate.push((namespace.clone(), name.clone(), run.spec.clone()));
        } else {
            self.say(format!("user deletes {namespace}/{name}"));
        }
        self.api.delete_run(&namespace, &name, self.now());
        self.react(namespace, name).await;
    }

    /// A user's edit reaches the leader's watch at once, most of the time, and the leader reconciles the
    /// run right away, as kube-runtime does on a watch event: edits meet launches still in flight.
    pub(super) async fn react(&mut self, namespace: String, name: String) {
        if self.rng.random_range(0..2) == 0 {
            return;
        }
        let leader = self.leader;
        match self.api.run(&namespace, &name) {
            Some(run) => self.replicas[leader].cache.insert((namespace.clone(), name.clone()), run),
            None => self.replicas[leader].cache.remove(&(namespace.clone(), name.clone())),
        };
        self.reconcile(leader, (namespace, name));
    }

    pub(super) fn recreate_gone(&mut self) {
        let (waiting, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.recreate)
            .into_iter()
            .partition(|(namespace, name, _)| self.api.run(namespace, name).is_some());
        self.recreate = waiting;
        for (namespace, name, spec) in gone {
            self.say(format!("user creates {namespace}/{name} again"));
            self.stats.runs += 1;
            self.create_run(&namespace, &name, spec, false);
        }
    }

    /// A user (or a queue such as Kueue) suspends a run, or resumes a suspended one.
    pub(super) async fn toggle_suspend(&mut self) {
        // A queue preempts what runs: two times in three, a run with a live task if there is one.
        let live: BTreeSet<String> = self
            .ecs
            .live()
            .iter()
            .filter_map(|arn| self.ecs.task(arn)?.tag("ecsrun.dev/uid").map(str::to_owned))
            .collect();
        let running: Vec<EcsTaskRun> = self
            .api
            .runs()
            .into_iter()
            .filter(|run| run.metadata.uid.as_ref().is_some_and(|uid| live.contains(uid)))
            .collect();
        let picked = if !running.is_empty() && self.rng.random_range(0..3) < 2 {
            Some(running[self.rng.random_range(0..running.len())].clone())
        } else {
            self.pick_run()
        };
        let Some(run) = picked else { return };
        let (namespace, name) = key(&run);
        let suspend = !run.spec.suspend;
        self.say(format!("user sets suspend {suspend} on {namespace}/{name}"));
        self.api.edit_spec(&namespace, &name, |spec| spec.suspend = suspend);
        self.react(namespace, name).await;
    }

    pub(super) async fn stop(&mut self) {
        let Some(run) = self.pick_run() else { return };
        let (namespace, name) = key(&run);
        self.say(format!("user sets stop on {namespace}/{name}"));
        self.api.edit_spec(&namespace, &name, |spec| spec.stop = true);
        self.react(namespace, name).await;
    }
}
