//! What a failed container said: which CloudWatch Logs stream holds its output (the awslogs driver names
//! it `prefix/container/task-id`), and how its last lines go into the status (bounded) and the Event
//! that tells the failure (which the API server bounds at 1 KiB). Reading is the shell's; a stream that
//! cannot be read never changes the run's outcome, only says why in the container's status.

use super::Event;
use crate::api::EcsTaskRunStatus;
use crate::ecs::{ContainerDefinitionInfo, LogStream};

/// The most of a container's output kept in `status.containers[].logTail`.
pub const MAX_LOG_TAIL_BYTES: usize = 4096;
/// What publishing keeps of an Event's note (events.k8s.io allows 1 KiB).
pub const MAX_EVENT_NOTE_BYTES: usize = 1024;

/// The last `lines` lines of one failed container, to read before the status is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRead {
    /// The task index (0 for a run of one task).
    pub index: u32,
    pub container: String,
    pub lines: u32,
    /// Where its output is, or why that is not known.
    pub stream: Result<LogStream, String>,
}

/// The stream the awslogs driver writes `container`'s output of `task_arn` to, per its task definition.
pub fn stream_of(
    definition: Option<&[ContainerDefinitionInfo]>,
    container: &str,
    task_arn: &str,
) -> Result<LogStream, String> {
    let definition = definition.ok_or("the task definition could not be read")?;
    let log = definition
        .iter()
        .find(|c| c.name == container)
        .and_then(|c| c.log.as_ref())
        .ok_or_else(|| format!("container {container} has no logConfiguration"))?;
    if log.driver != "awslogs" {
        return Err(format!("container {container} logs with {}, not awslogs", log.driver));
    }
    let group = log.group.clone().ok_or_else(|| format!("container {container} sets no awslogs-group"))?;
    // Without a prefix the stream is named after the Docker container ID, which ECS does not report.
    let prefix = log
        .stream_prefix
        .as_deref()
        .ok_or_else(|| format!("container {container} sets no awslogs-stream-prefix, so its stream cannot be named"))?;
    let task_region = crate::api::arn_region(task_arn).unwrap_or_default();
    Ok(LogStream {
        region: log.region.clone().unwrap_or_else(|| task_region.to_owned()),
        group,
        stream: crate::api::awslogs_stream(prefix, container, task_arn),
    })
}

/// The end of `text` that fits in `max` bytes, cut at a line start where one is inside the budget.
pub fn tail_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = &text[start..];
    match cut.find('\n') {
        Some(newline) if newline + 1 < cut.len() => &cut[newline + 1..],
        _ => cut,
    }
}

/// Puts what reading `read` gave into the status (the container's logTail, or why there is none) and
/// under the Event that tells the container's failure.
pub fn attach(
    status: &mut EcsTaskRunStatus,
    events: &mut [Event],
    read: &LogRead,
    result: Result<Vec<String>, String>,
) {
    let Some(lane) = status.lane_mut(read.index as i32) else { return };
    let Some(container) = lane.containers.iter_mut().find(|c| c.name == read.container) else { return };
    let lines = match result {
        Ok(lines) => lines,
        Err(why) => {
            container.log_tail_error = Some(why.lines().next().unwrap_or_default().to_owned());
            return;
        }
    };
    let text = lines.join("\n");
    container.log_tail = Some(tail_bytes(&text, MAX_LOG_TAIL_BYTES).to_owned());
    container.log_tail_error = None;
    // A run of several tasks tells which index failed it ("task index 3: ..."): only that index's lines.
    let indexed = format!("task index {}: ", read.index);
    let telling = events.iter_mut().find(|event| {
        matches!(event.reason, "Failed" | "Retrying")
            && (!event.note.starts_with("task index ") || event.note.starts_with(&indexed))
    });
    if let Some(event) = telling {
        let heading = format!("\nlast lines of {}:\n", read.container);
        let room = MAX_EVENT_NOTE_BYTES.saturating_sub(event.note.len() + heading.len());
        if room > 0 {
            let tail = tail_bytes(&text, room);
            event.note.push_str(&heading);
            event.note.push_str(tail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ContainerStatus, TaskStatus};
    use crate::ecs::LogConfiguration;

    const TASK: &str = "arn:aws:ecs:eu-west-1:123456789012:task/batch/0f1e2d3c";

    fn awslogs(prefix: Option<&str>, region: Option<&str>) -> Vec<ContainerDefinitionInfo> {
        vec![ContainerDefinitionInfo {
            name: "app".into(),
            essential: true,
            log: Some(LogConfiguration {
                driver: "awslogs".into(),
                group: Some("/ecs/report".into()),
                region: region.map(str::to_owned),
                stream_prefix: prefix.map(str::to_owned),
            }),
        }]
    }

    #[test]
    fn awslogs_streams_are_prefix_container_task_id_in_the_drivers_region() {
        let stream = stream_of(Some(&awslogs(Some("ecs"), None)), "app", TASK).unwrap();
        assert_eq!(
            stream,
            LogStream { region: "eu-west-1".into(), group: "/ecs/report".into(), stream: "ecs/app/0f1e2d3c".into() }
        );
        let elsewhere = stream_of(Some(&awslogs(Some("ecs"), Some("us-east-1"))), "app", TASK).unwrap();
        assert_eq!(elsewhere.region, "us-east-1");
    }

    #[test]
    fn streams_that_cannot_be_named_say_why() {
        let no_prefix = stream_of(Some(&awslogs(None, None)), "app", TASK).unwrap_err();
        assert!(no_prefix.contains("awslogs-stream-prefix"), "{no_prefix}");
        assert!(
            stream_of(Some(&awslogs(Some("ecs"), None)), "sidecar", TASK).unwrap_err().contains("no logConfiguration")
        );
        let mut firelens = awslogs(Some("ecs"), None);
        firelens[0].log.as_mut().unwrap().driver = "awsfirelens".into();
        assert!(stream_of(Some(&firelens), "app", TASK).unwrap_err().contains("awsfirelens, not awslogs"));
        assert!(stream_of(None, "app", TASK).is_err());
    }

    #[test]
    fn tails_are_cut_at_a_line_start_within_the_budget() {
        let text = (1..=50).map(|i| format!("line {i}")).collect::<Vec<_>>().join("\n");
        assert_eq!(tail_bytes(&text, 4096), text);
        let cut = tail_bytes(&text, 20);
        assert_eq!(cut, "line 49\nline 50");
        // Never inside a character.
        let wide = "é".repeat(10);
        assert_eq!(tail_bytes(&wide, 5), "éé");
        // One long line: its end.
        assert_eq!(tail_bytes("abcdefgh", 3), "fgh");
    }

    fn failed_status() -> EcsTaskRunStatus {
        let task = TaskStatus {
            containers: vec![ContainerStatus {
                name: "app".into(),
                exit_code: Some(3),
                reason: None,
                last_status: None,
                essential: Some(true),
                log_tail: None,
                log_tail_error: None,
            }],
            ..Default::default()
        };
        EcsTaskRunStatus { task, ..Default::default() }
    }

    fn read() -> LogRead {
        LogRead {
            index: 0,
            container: "app".into(),
            lines: 20,
            stream: stream_of(Some(&awslogs(Some("ecs"), None)), "app", TASK),
        }
    }

    #[test]
    fn the_tail_goes_into_the_container_and_the_failed_event_within_their_bounds() {
        let mut status = failed_status();
        let mut events = vec![Event { warning: true, reason: "Failed", note: "task stopped: app exited 3".into() }];
        let lines: Vec<String> = (31..=50).map(|i| format!("line {i} {}", "x".repeat(300))).collect();
        attach(&mut status, &mut events, &read(), Ok(lines));
        let tail = status.task.containers[0].log_tail.as_deref().unwrap();
        assert!(tail.len() <= MAX_LOG_TAIL_BYTES && tail.ends_with(&format!("line 50 {}", "x".repeat(300))));
        assert!(tail.starts_with("line "), "cut at a line start: {}", &tail[..20]);
        assert!(events[0].note.starts_with("task stopped: app exited 3\nlast lines of app:\n"));
        assert!(events[0].note.len() <= MAX_EVENT_NOTE_BYTES);
        assert!(events[0].note.ends_with("x"), "the newest line is kept");
    }

    #[test]
    fn an_unreadable_stream_says_why_in_one_line_and_changes_nothing_else() {
        let mut status = failed_status();
        let before = status.clone();
        let mut events = vec![Event { warning: true, reason: "Failed", note: "failed".into() }];
        attach(&mut status, &mut events, &read(), Err("ResourceNotFoundException: no such group\ndetails".into()));
        assert_eq!(
            status.task.containers[0].log_tail_error.as_deref(),
            Some("ResourceNotFoundException: no such group")
        );
        assert_eq!(status.task.containers[0].log_tail, None);
        let mut unchanged = status.clone();
        unchanged.task.containers = before.task.containers.clone();
        assert_eq!(unchanged, before);
        assert_eq!(events[0].note, "failed");
    }
}
