//! The result protocol's edges: what a log's lines publish, within its bounds, and what a stopped task's
//! results come to over its containers, the policies and CloudWatch's delay.

use super::*;
use crate::api::{EcsTaskRunSpec, EcsTaskRunStatus, MAX_RESULTS_BYTES};
use crate::decide::testing::{at, view};

fn lines(text: &[&str]) -> Vec<String> {
    text.iter().map(|line| (*line).to_owned()).collect()
}

fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
}

#[test]
fn parse_table() {
    struct Row {
        name: &'static str,
        lines: Vec<String>,
        values: BTreeMap<String, String>,
        refused: Vec<&'static str>,
    }
    let big = "x".repeat(4000);
    let rows = vec![
        Row {
            name: "result lines among others; values may hold '=' and spaces",
            lines: lines(&["starting", "::ecsrun-result rows=42", "done", "::ecsrun-result query=a = b c"]),
            values: values(&[("rows", "42"), ("query", "a = b c")]),
            refused: vec![],
        },
        Row {
            name: "the last value of a name wins",
            lines: lines(&["::ecsrun-result rows=1", "::ecsrun-result rows=2", "::ecsrun-result rows=3"]),
            values: values(&[("rows", "3")]),
            refused: vec![],
        },
        Row {
            name: "an empty value is a value",
            lines: lines(&["::ecsrun-result marker="]),
            values: values(&[("marker", "")]),
            refused: vec![],
        },
        Row {
            name: "only at the start of a line, with the space",
            lines: lines(&["log: ::ecsrun-result rows=1", "::ecsrun-resultrows=1", " ::ecsrun-result rows=1"]),
            values: values(&[]),
            refused: vec![],
        },
        Row {
            name: "a carriage return ends the line",
            lines: lines(&["::ecsrun-result rows=7\r"]),
            values: values(&[("rows", "7")]),
            refused: vec![],
        },
        Row {
            name: "malformed: no '=', or a name that is not one",
            lines: lines(&["::ecsrun-result rows", "::ecsrun-result -rows=1", "::ecsrun-result ok=1"]),
            values: values(&[("ok", "1")]),
            refused: vec!["without '='", "result name \"-rows\""],
        },
        Row {
            name: "oversized: a value past 4 KiB is refused, smaller ones stay",
            lines: vec!["::ecsrun-result small=1".into(), format!("::ecsrun-result huge={big}{big}")],
            values: values(&[("small", "1")]),
            refused: vec!["result huge (8004 bytes)"],
        },
        Row {
            name: "4 KiB in all: the names printed last keep their room",
            lines: vec![format!("::ecsrun-result first={big}"), format!("::ecsrun-result second={big}")],
            values: values(&[("second", &big)]),
            refused: vec!["result first (4005 bytes)"],
        },
    ];
    for row in rows {
        let parsed = parse(&row.lines, MAX_RESULTS_BYTES);
        assert_eq!(parsed.values, row.values, "{}", row.name);
        assert_eq!(parsed.refused.len(), row.refused.len(), "{}: {:?}", row.name, parsed.refused);
        for (why, expected) in parsed.refused.iter().zip(&row.refused) {
            assert!(why.contains(expected), "{}: {why:?} should say {expected:?}", row.name);
        }
    }
}

#[test]
fn at_most_sixteen_results_those_printed_last() {
    let printed: Vec<String> = (1..=20).map(|i| format!("::ecsrun-result r{i}={i}")).collect();
    let parsed = parse(&printed, MAX_RESULTS_BYTES);
    assert_eq!(parsed.values.len(), MAX_RESULTS);
    assert!(parsed.values.contains_key("r20") && parsed.values.contains_key("r5"));
    assert!(!parsed.values.contains_key("r4"), "the oldest four are refused");
    assert_eq!(parsed.refused.len(), 4);
    assert!(parsed.refused[0].contains("r1 is past the 16"), "told in printed order: {:?}", parsed.refused);
}

#[test]
fn only_the_last_thousand_lines_and_the_last_mib_count() {
    let mut printed = vec!["::ecsrun-result early=1".to_owned()];
    printed.extend((0..1000).map(|i| format!("line {i}")));
    assert!(parse(&printed, MAX_RESULTS_BYTES).values.is_empty(), "1,001 lines back is too far");
    printed.remove(1);
    assert_eq!(parse(&printed, MAX_RESULTS_BYTES).values, values(&[("early", "1")]), "1,000 lines back is within");

    let mut wide = vec!["::ecsrun-result early=1".to_owned()];
    wide.extend((0..3).map(|_| "y".repeat(400 * 1024)));
    assert!(parse(&wide, MAX_RESULTS_BYTES).values.is_empty(), "1.2 MiB back is too far");
    wide.remove(1);
    assert_eq!(parse(&wide, MAX_RESULTS_BYTES).values, values(&[("early", "1")]), "800 KiB back is within");
}

const TASK: &str = "arn:aws:ecs:eu-west-1:123456789012:task/demo/abc123";

fn spec_with(results: serde_json::Value) -> EcsTaskRunSpec {
    serde_json::from_value(serde_json::json!({"cluster": "demo", "taskDefinition": "report:3", "results": results}))
        .unwrap()
}

fn stopped_at(seconds: i64) -> TaskSnapshot {
    crate::testing::task(TASK).containers(&["app", "sidecar"]).running(at(1)).stopped(
        "EssentialContainerExited",
        "done",
        at(seconds),
    )
}

fn read(container: &str) -> ResultRead {
    ResultRead { index: 0, task_arn: TASK.into(), container: container.into(), stream: Err(String::new()) }
}

fn logs(entries: Vec<(&str, ResultLog)>) -> ResultLogs {
    let mut logs = ResultLogs::default();
    for (container, log) in entries {
        logs.insert(&read(container), log);
    }
    logs
}

#[test]
fn collect_table() {
    struct Row {
        name: &'static str,
        results: serde_json::Value,
        allowed: bool,
        logs: ResultLogs,
        /// Seconds since the task stopped.
        since_stop: i64,
        expected: Collected,
    }
    let done = |pairs: &[(&str, &str)], missing: &[&str]| Collected::Done {
        values: values(pairs),
        refused: Vec::new(),
        missing: missing.iter().map(|name| (*name).to_owned()).collect(),
        why_missing: Vec::new(),
    };
    let printed = |text: &[&str]| ResultLog::Lines(lines(text));
    let rows = vec![
        Row {
            name: "several containers: a later container's value wins",
            results: serde_json::json!({"containers": ["app", "sidecar"], "required": ["rows"]}),
            allowed: true,
            logs: logs(vec![
                ("app", printed(&["::ecsrun-result rows=1", "::ecsrun-result key=a"])),
                ("sidecar", printed(&["::ecsrun-result rows=2"])),
            ]),
            since_stop: 1,
            expected: done(&[("rows", "2"), ("key", "a")], &[]),
        },
        Row {
            name: "a container not listed is not read, whatever it printed",
            results: serde_json::json!({"containers": ["app"], "required": ["rows"]}),
            allowed: true,
            logs: logs(vec![
                ("app", printed(&["::ecsrun-result key=a"])),
                ("sidecar", printed(&["::ecsrun-result rows=2"])),
            ]),
            since_stop: 30,
            expected: done(&[("key", "a")], &["rows"]),
        },
        Row {
            name: "a required result missing right after the stop: look once more when the grace ends",
            results: serde_json::json!({"containers": ["app"], "required": ["rows"]}),
            allowed: true,
            logs: logs(vec![("app", printed(&["working"]))]),
            since_stop: 2,
            expected: Collected::Wait {
                after: Duration::from_secs(3),
                why: "rows not in the log yet; CloudWatch Logs may still be taking it".into(),
            },
        },
        Row {
            name: "missing after the grace: concluded",
            results: serde_json::json!({"containers": ["app"], "required": ["rows"]}),
            allowed: true,
            logs: logs(vec![("app", ResultLog::NoStream)]),
            since_stop: 5,
            expected: done(&[], &["rows"]),
        },
        Row {
            name: "nothing required: no wait for what may not come",
            results: serde_json::json!({"containers": ["app"]}),
            allowed: true,
            logs: logs(vec![("app", ResultLog::NoStream)]),
            since_stop: 0,
            expected: done(&[], &[]),
        },
        Row {
            name: "a log that cannot be read is tried again",
            results: serde_json::json!({"containers": ["app"]}),
            allowed: true,
            logs: logs(vec![("app", ResultLog::Unreadable("Throttled".into()))]),
            since_stop: 60,
            expected: Collected::Wait {
                after: Duration::from_secs(10),
                why: "cannot read app's log yet: Throttled".into(),
            },
        },
        Row {
            name: "...until two minutes after the stop",
            results: serde_json::json!({"containers": ["app"], "required": ["rows"]}),
            allowed: true,
            logs: logs(vec![("app", ResultLog::Unreadable("AccessDenied".into()))]),
            since_stop: 120,
            expected: Collected::Done {
                values: values(&[]),
                refused: Vec::new(),
                missing: vec!["rows".into()],
                why_missing: vec!["app's log: AccessDenied".into()],
            },
        },
        Row {
            name: "a stream that cannot be named says why at once",
            results: serde_json::json!({"containers": ["app"], "required": ["rows"]}),
            allowed: true,
            logs: logs(vec![("app", ResultLog::Unnamed("container app has no logConfiguration".into()))]),
            since_stop: 0,
            expected: Collected::Done {
                values: values(&[]),
                refused: Vec::new(),
                missing: vec!["rows".into()],
                why_missing: vec!["container app has no logConfiguration".into()],
            },
        },
        Row {
            name: "turned off by the namespace's policies: nothing is read, nothing waited for",
            results: serde_json::json!({"containers": ["app"], "required": ["rows"]}),
            allowed: false,
            logs: logs(vec![("app", printed(&["::ecsrun-result rows=1"]))]),
            since_stop: 0,
            expected: Collected::Done {
                values: values(&[]),
                refused: Vec::new(),
                missing: vec!["rows".into()],
                why_missing: vec!["results are turned off for this namespace by its EcsRunPolicies".into()],
            },
        },
        Row {
            name: "refusals are told with the container",
            results: serde_json::json!({"containers": ["app"]}),
            allowed: true,
            logs: logs(vec![("app", printed(&["::ecsrun-result bad"]))]),
            since_stop: 9,
            expected: Collected::Done {
                values: values(&[]),
                refused: vec!["app: a result line without '=' (bad)".into()],
                missing: Vec::new(),
                why_missing: Vec::new(),
            },
        },
    ];
    let status = EcsTaskRunStatus::default();
    for row in rows {
        let spec = spec_with(row.results);
        let view = RunView { results_allowed: row.allowed, results: &row.logs, ..view("nightly", &spec, &status) };
        assert_eq!(collect(&view, &stopped_at(100), at(100 + row.since_stop)), row.expected, "{}", row.name);
    }
}

#[test]
fn another_attempts_lines_are_never_used() {
    let spec = spec_with(serde_json::json!({"containers": ["app"], "required": ["rows"]}));
    let status = EcsTaskRunStatus::default();
    // The logs read are the first attempt's task's; the second attempt's task is judged.
    let logs = logs(vec![("app", ResultLog::Lines(lines(&["::ecsrun-result rows=1"])))]);
    let view = RunView { results: &logs, ..view("nightly", &spec, &status) };
    let mut second = stopped_at(100);
    second.task_arn = format!("{TASK}-attempt-2");
    assert!(matches!(collect(&view, &second, at(200)), Collected::Wait { .. }), "not read for this task yet");
}

#[test]
fn reads_name_each_listed_containers_stream_of_this_task_only_when_allowed() {
    let spec = spec_with(serde_json::json!({"containers": ["app", "sidecar"]}));
    let status = EcsTaskRunStatus::default();
    let definition = vec![crate::decide::testing::awslogs_container("app")];
    let reads = reads(&view("nightly", &spec, &status), &stopped_at(100), Some(&definition));
    assert_eq!(reads.len(), 2);
    assert_eq!(reads[0].stream.as_ref().map(|s| s.stream.as_str()), Ok("ecs/app/abc123"));
    assert!(reads[1].stream.as_ref().is_err_and(|why| why.contains("sidecar has no logConfiguration")));
    let off = RunView { results_allowed: false, ..view("nightly", &spec, &status) };
    assert!(super::reads(&off, &stopped_at(100), Some(&definition)).is_empty());
}

#[test]
fn the_indexes_of_a_run_of_several_tasks_share_32_kib() {
    assert_eq!(results_budget(1), 4096);
    assert_eq!(results_budget(8), 4096);
    assert_eq!(results_budget(100), 327);
    let printed = vec![format!("::ecsrun-result small=1"), format!("::ecsrun-result wide={}", "x".repeat(400))];
    let parsed = parse(&printed, results_budget(100));
    assert_eq!(parsed.values.keys().collect::<Vec<_>>(), ["small"]);
    assert!(parsed.refused[0].contains("past the 327 bytes"), "{:?}", parsed.refused);
}
