//! What a run's tasks used, for chargeback: vCPU-seconds and GiB-seconds per attempt (task-level CPU and
//! memory times the seconds from startedAt to stoppedAt, as Fargate bills), summed for the run, and the
//! amounts an update adds (the Prometheus counters count each attempt once).
//!
//! Amounts are kept in thousandths: sums of rounded parts print as the decimals people expect.

use crate::api::{Attempt, EcsTaskRunStatus, ResourceUsage, TaskStatus};
use crate::ecs::TaskSnapshot;
use crate::policy::{cpu_units, memory_mib};

/// What a stopped task used; None while it runs, or when ECS did not report its CPU and memory. A task
/// that never started used nothing.
pub fn of_task(task: &TaskSnapshot) -> Option<ResourceUsage> {
    let stopped = task.stopped_at.filter(|_| task.is_stopped())?;
    let cpu = cpu_units(task.cpu.as_deref()?)?;
    let memory = memory_mib(task.memory.as_deref()?)?;
    let millis: i128 = task.started_at.map_or(0, |started| stopped.duration_since(started).as_millis().max(0));
    // units × ms / 1024 = vCPU-ms (GiB-ms for MiB): thousandths of a vCPU-second.
    let thousandths = |amount: i64| ((amount as i128 * millis + 512) / 1024) as i64;
    Some(ResourceUsage {
        vcpu_seconds: from_thousandths(thousandths(cpu)),
        gib_seconds: from_thousandths(thousandths(memory)),
        capacity_provider: task.capacity_provider.clone(),
    })
}

/// The sum over `attempts`; None when none of them has usage yet.
pub fn total<'a>(attempts: impl Iterator<Item = &'a Attempt>) -> Option<ResourceUsage> {
    sum_of(attempts.filter_map(|attempt| attempt.usage.as_ref()))
}

/// What every attempt of `tasks` used, those summed in `earlierAttempts` included; None when none has
/// usage yet.
pub fn of_tasks<'a>(tasks: impl Iterator<Item = &'a TaskStatus>) -> Option<ResourceUsage> {
    sum_of(tasks.flat_map(|task| {
        let earlier = task.earlier_attempts.as_ref().and_then(|earlier| earlier.usage.as_ref());
        earlier.into_iter().chain(task.attempts.iter().filter_map(|attempt| attempt.usage.as_ref()))
    }))
}

/// The sum of `used`; None when it is empty.
pub fn sum_of<'a>(used: impl Iterator<Item = &'a ResourceUsage>) -> Option<ResourceUsage> {
    let used: Vec<&ResourceUsage> = used.collect();
    if used.is_empty() {
        return None;
    }
    let sum = |part: fn(&ResourceUsage) -> f64| from_thousandths(used.iter().map(|u| to_thousandths(part(u))).sum());
    Some(ResourceUsage {
        vcpu_seconds: sum(|u| u.vcpu_seconds),
        gib_seconds: sum(|u| u.gib_seconds),
        capacity_provider: None,
    })
}

/// Usage of attempts that `new` records and `old` did not: what this update adds to the counters.
pub fn added(old: &EcsTaskRunStatus, new: &EcsTaskRunStatus) -> Vec<ResourceUsage> {
    let attempts = |status: &EcsTaskRunStatus| -> Vec<(i32, i32, Option<ResourceUsage>)> {
        status
            .lanes()
            .into_iter()
            .flat_map(|(index, lane)| lane.attempts.iter().map(move |a| (index, a.attempt, a.usage.clone())))
            .collect()
    };
    let before = attempts(old);
    attempts(new)
        .into_iter()
        .filter_map(|(index, attempt, usage)| {
            let counted = before.iter().any(|(i, a, u)| *i == index && *a == attempt && u.is_some());
            usage.filter(|_| !counted)
        })
        .collect()
}

fn to_thousandths(value: f64) -> i64 {
    (value * 1000.0).round() as i64
}

fn from_thousandths(value: i64) -> f64 {
    value as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;

    fn stopped(cpu: &str, memory: &str, seconds: i64) -> TaskSnapshot {
        let started: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        TaskSnapshot {
            task_arn: "arn:aws:ecs:eu-west-1:123456789012:task/c/1".into(),
            last_status: Some("STOPPED".into()),
            started_at: Some(started),
            stopped_at: Some(started.checked_add(jiff::SignedDuration::from_secs(seconds)).unwrap()),
            cpu: Some(cpu.into()),
            memory: Some(memory.into()),
            capacity_provider: Some("FARGATE_SPOT".into()),
            ..TaskSnapshot::default()
        }
    }

    #[test]
    fn cpu_and_memory_times_the_running_time() {
        let used = of_task(&stopped("256", "512", 60)).unwrap();
        assert_eq!((used.vcpu_seconds, used.gib_seconds), (15.0, 30.0));
        assert_eq!(used.capacity_provider.as_deref(), Some("FARGATE_SPOT"));
        let used = of_task(&stopped("1 vCPU", "2 GB", 3)).unwrap();
        assert_eq!((used.vcpu_seconds, used.gib_seconds), (3.0, 6.0));
        // A quarter vCPU for 1.5 s.
        let mut task = stopped("256", "512", 1);
        task.stopped_at = task.stopped_at.map(|t| t.checked_add(jiff::SignedDuration::from_millis(500)).unwrap());
        assert_eq!(of_task(&task).unwrap().vcpu_seconds, 0.375);
    }

    #[test]
    fn nothing_while_running_or_unknown_and_zero_when_never_started() {
        let mut running = stopped("256", "512", 60);
        running.last_status = Some("RUNNING".into());
        assert_eq!(of_task(&running), None);
        let mut unreported = stopped("256", "512", 60);
        unreported.cpu = None;
        assert_eq!(of_task(&unreported), None);
        let mut never_started = stopped("256", "512", 60);
        never_started.started_at = None;
        assert_eq!(of_task(&never_started).map(|u| u.vcpu_seconds), Some(0.0));
    }

    fn attempt(number: i32, vcpu: f64, gib: f64) -> Attempt {
        Attempt {
            attempt: number,
            usage: Some(ResourceUsage { vcpu_seconds: vcpu, gib_seconds: gib, capacity_provider: None }),
            ..Attempt::default()
        }
    }

    #[test]
    fn totals_add_attempts_without_float_noise() {
        let attempts = [attempt(1, 0.1, 0.2), attempt(2, 0.2, 0.4), Attempt { attempt: 3, ..Attempt::default() }];
        let sum = total(attempts.iter()).unwrap();
        assert_eq!((sum.vcpu_seconds, sum.gib_seconds), (0.3, 0.6));
        assert_eq!(total([Attempt::default()].iter()), None);
    }

    #[test]
    fn an_update_adds_only_attempts_it_newly_records() {
        let with =
            |attempts| EcsTaskRunStatus { task: TaskStatus { attempts, ..Default::default() }, ..Default::default() };
        let old = with(vec![attempt(1, 1.0, 2.0)]);
        let new = with(vec![attempt(1, 1.0, 2.0), attempt(2, 3.0, 6.0)]);
        assert_eq!(added(&old, &new).iter().map(|u| u.vcpu_seconds).collect::<Vec<_>>(), vec![3.0]);
        assert!(added(&new, &new).is_empty());
        let indexed = EcsTaskRunStatus {
            tasks: vec![crate::api::IndexedTaskStatus {
                index: 4,
                task: TaskStatus { attempts: vec![attempt(1, 5.0, 10.0)], ..Default::default() },
            }],
            ..Default::default()
        };
        assert_eq!(added(&old, &indexed).len(), 1);
    }
}
