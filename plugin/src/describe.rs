//! `describe`: a run for people, as `kubectl describe` shows a pod.

use std::fmt::Write as _;
use std::process::ExitCode;

use ecsrun_api::{Attempt, ContainerStatus, EcsTaskRun, TaskStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::output::{Output, age, render};
use crate::runs::{Runs, event_time};

pub async fn describe(runs: &Runs, name: &str, output: Output) -> anyhow::Result<ExitCode> {
    let run = runs.get(name).await?;
    // -o wide is this description itself: it already shows every column and more.
    if let Some(rendered) = render(&run, output)? {
        print!("{rendered}");
        return Ok(ExitCode::SUCCESS);
    }
    let events = runs.events_of(&run).await.unwrap_or_default();
    let mut text = summary(&run);
    let _ = writeln!(text, "Events:");
    if events.is_empty() {
        let _ = writeln!(text, "  <none>");
    }
    let now = jiff::Timestamp::now();
    for event in events.iter().rev().take(15).rev() {
        let when = event_time(event).map_or("-".into(), |at| age(now, at));
        let _ = writeln!(
            text,
            "  {:<8} {:<14} {:>6}  {}",
            event.type_.as_deref().unwrap_or_default(),
            event.reason.as_deref().unwrap_or_default(),
            when,
            event.message.as_deref().unwrap_or_default().replace('\n', "\n                                  ")
        );
    }
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// Everything but the Events.
pub fn summary(run: &EcsTaskRun) -> String {
    let spec = &run.spec;
    let status = run.status.clone().unwrap_or_default();
    let mut text = String::new();
    let mut field = |label: &str, value: &str| {
        let _ = writeln!(text, "{:<14}{value}", format!("{label}:"));
    };
    field("Name", &run.name_any());
    field("Namespace", &run.namespace().unwrap_or_default());
    let runs = match (&spec.task_arn, &spec.task_definition_template) {
        (Some(task_arn), _) => format!("task {task_arn} (adopted: started elsewhere)"),
        (None, Some(template)) => format!("template of family {}", template.family),
        (None, None) => format!("task definition {}", spec.task_definition_name()),
    };
    field("Runs", &runs);
    let region = status.region.clone().or_else(|| spec.region.clone()).unwrap_or_else(|| "controller default".into());
    field("Cluster", &format!("{} ({region})", spec.cluster));
    if spec.count > 1 {
        field("Tasks", &format!("{} at a time, {}", spec.max_parallel(), status.progress.as_deref().unwrap_or("0")));
    }
    let phase = status.task.phase.map_or("-".into(), |phase| format!("{phase:?}"));
    field("Phase", &format!("{phase} ({})", status.task.reason_str().unwrap_or("-")));
    field("Message", status.task.message.as_deref().unwrap_or("-"));
    if spec.stop {
        field("Stop", "requested (spec.stop)");
    }
    if let Some(queue) = &status.queue {
        let admission = match (&queue.admitted, &queue.cluster_queue, &queue.flavor) {
            (true, Some(cluster_queue), flavor) => format!(
                "admitted by ClusterQueue {cluster_queue}{}",
                flavor.as_ref().map_or(String::new(), |flavor| format!(", flavor {flavor}"))
            ),
            (true, None, _) => "admitted".to_owned(),
            (false, _, _) => "waiting for admission".to_owned(),
        };
        field("Queue", &format!("LocalQueue {} (Workload {}): {admission}", queue.local_queue, queue.workload));
    }
    if let Some(usage) = &status.usage {
        field("Usage", &format!("{} vCPU-seconds, {} GiB-seconds", usage.vcpu_seconds, usage.gib_seconds));
    }
    field("Created", &time(run.metadata.creation_timestamp.as_ref()));
    for (index, lane) in status.lanes() {
        if spec.count > 1 {
            let _ = writeln!(
                text,
                "Task index {index}:  {} ({})",
                lane.phase.map_or("-".into(), |phase| format!("{phase:?}")),
                lane.reason_str().unwrap_or("-")
            );
        }
        attempts(&mut text, &lane.attempts);
        containers(&mut text, &lane.containers);
        task_line(&mut text, lane);
        results(&mut text, lane);
    }
    text
}

fn task_line(text: &mut String, task: &TaskStatus) {
    if let Some(task_id) = &task.task_id {
        let _ = writeln!(
            text,
            "Task:         {task_id} {} (stopCode {}; {})",
            task.last_status.as_ref().map_or("-", |last| last.as_str()),
            task.stop_code.as_ref().map_or("-", |code| code.as_str()),
            task.stopped_reason.as_deref().unwrap_or("no reason given")
        );
    }
}

fn results(text: &mut String, task: &TaskStatus) {
    if task.results.is_empty() {
        return;
    }
    let _ = writeln!(text, "Results:");
    for line in result_lines(task) {
        let _ = writeln!(text, "  {line}");
    }
}

/// A task's results as `name=value` lines, each value on one line (newlines shown as `\n`).
pub fn result_lines(task: &TaskStatus) -> Vec<String> {
    task.results.iter().map(|(name, value)| format!("{name}={}", value.replace('\n', "\\n"))).collect()
}

fn attempts(text: &mut String, attempts: &[Attempt]) {
    if attempts.is_empty() {
        return;
    }
    let _ = writeln!(text, "Attempts:");
    let _ =
        writeln!(text, "  {:<2} {:<36} {:<21} {:<21} {:<17} OUTCOME", "#", "TASK", "LAUNCHED", "STOPPED", "EXIT CODES");
    for attempt in attempts {
        let _ = writeln!(
            text,
            "  {:<2} {:<36} {:<21} {:<21} {:<17} {}",
            attempt.attempt,
            attempt.task_arn.as_deref().map_or("-", ecsrun_api::task_id),
            time(attempt.launched_at.as_ref()),
            time(attempt.stopped_at.as_ref()),
            attempt.exit_codes.as_deref().unwrap_or("-"),
            attempt.outcome.as_ref().map_or("in progress", |outcome| outcome.as_str())
        );
    }
}

fn containers(text: &mut String, containers: &[ContainerStatus]) {
    if containers.is_empty() {
        return;
    }
    let _ = writeln!(text, "Containers:");
    for container in containers {
        let essential = match container.essential {
            Some(true) => ", essential",
            Some(false) => ", sidecar",
            None => "",
        };
        let _ = writeln!(
            text,
            "  {}: {} exit code {}{essential}{}",
            container.name,
            container.last_status.as_deref().unwrap_or("-"),
            container.exit_code.map_or("-".into(), |code| code.to_string()),
            container.reason.as_deref().map(|why| format!(" ({why})")).unwrap_or_default()
        );
        if let Some(tail) = &container.log_tail {
            let _ = writeln!(text, "    Last lines:");
            for line in tail.lines() {
                let _ = writeln!(text, "      {line}");
            }
        }
        if let Some(why) = &container.log_tail_error {
            let _ = writeln!(text, "    Logs: {why}");
        }
    }
}

fn time(time: Option<&Time>) -> String {
    time.map_or("-".into(), |time| time.0.strftime("%Y-%m-%d %H:%M:%SZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn a_queued_run_shows_its_queue_workload_and_admission() {
        let run = |queue: serde_json::Value| -> ecsrun_api::EcsTaskRun {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskRun",
                "metadata": {"name": "etl", "namespace": "team-a"},
                "spec": {"cluster": "batch", "taskDefinition": "etl:7"},
                "status": {"phase": "Pending", "reason": "Queued", "queue": queue},
            }))
            .unwrap()
        };
        let waiting =
            summary(&run(serde_json::json!({"localQueue": "team", "workload": "etl-0a1b2c3d4e", "admitted": false})));
        assert!(
            waiting.contains("Queue:        LocalQueue team (Workload etl-0a1b2c3d4e): waiting for admission"),
            "{waiting}"
        );
        let admitted =
            summary(&run(serde_json::json!({"localQueue": "team", "workload": "etl-0a1b2c3d4e", "admitted": true,
            "clusterQueue": "shared", "flavor": "fargate-spot"})));
        assert!(admitted.contains("admitted by ClusterQueue shared, flavor fargate-spot"), "{admitted}");
    }

    #[test]
    fn results_are_shown_per_task_each_on_one_line() {
        let run: ecsrun_api::EcsTaskRun = serde_json::from_value(serde_json::json!({
            "apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskRun",
            "metadata": {"name": "extract", "namespace": "team-a"},
            "spec": {"cluster": "batch", "taskDefinition": "etl:7"},
            "status": {"phase": "Succeeded", "results": {"rows": "1200", "note": "two\nlines"}},
        }))
        .unwrap();
        let text = summary(&run);
        assert!(text.contains("Results:\n  note=two\\nlines\n  rows=1200\n"), "{text}");
    }
}
