//! A CustomRun's EcsTaskRun (params, retries, timeout, ownership) and its status (Tekton's reasons), as
//! tables.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::json;

use super::decide::{self, Template, TemplateRun, reason};
use super::*;
use crate::api::{EcsTaskRun, EcsTaskRunSpec};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap()
}

fn custom_run(spec: serde_json::Value) -> CustomRun {
    serde_json::from_value(json!({
        "apiVersion": "tekton.dev/v1beta1", "kind": "CustomRun",
        "metadata": {
            "name": "etl-1-transform", "namespace": "data", "uid": "c0ffee00-0000-4000-8000-000000000001",
            "generation": 1, "labels": {"tekton.dev/pipelineRun": "etl-1", "tekton.dev/pipelineTask": "transform"},
        },
        "spec": spec,
    }))
    .unwrap()
}

fn reference(name: &str) -> serde_json::Value {
    json!({"customRef": {"apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskRun", "name": name}})
}

fn template_run(spec: serde_json::Value) -> TemplateRun {
    TemplateRun { spec: serde_json::from_value(spec).unwrap(), labels: BTreeMap::new(), annotations: BTreeMap::new() }
}

fn base() -> serde_json::Value {
    json!({"cluster": "batch", "taskDefinition": "transform:3"})
}

fn with(mut value: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    value.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    value
}

#[test]
fn a_custom_run_is_ecsruns_when_its_ref_or_spec_names_ecs_task_run() {
    let named = custom_run(reference("transform-template"));
    assert_eq!(decide::template(&named), Some(Ok(Template::Named("transform-template"))));
    let spec = base();
    let embedded =
        custom_run(json!({"customSpec": {"apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskRun", "spec": spec}}));
    assert!(matches!(decide::template(&embedded), Some(Ok(Template::Embedded { .. }))));
    let others = custom_run(json!({"customRef": {"apiVersion": "example.dev/v1", "kind": "Wait", "name": "x"}}));
    assert_eq!(decide::template(&others), None, "another custom task's");
    let nameless = custom_run(json!({"customRef": {"apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskRun"}}));
    assert!(decide::template(&nameless).is_some_and(|t| t.is_err()));
    let specless = custom_run(json!({"customSpec": {"apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskRun"}}));
    assert!(decide::template(&specless).is_some_and(|t| t.is_err()));
}

fn environment(run: &EcsTaskRun, container: &str) -> Vec<(String, String)> {
    run.spec
        .overrides
        .iter()
        .flat_map(|o| &o.container_overrides)
        .filter(|c| c.name == container)
        .flat_map(|c| &c.environment)
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect()
}

#[test]
fn params_go_to_one_containers_environment_and_args_to_its_command() {
    struct Row {
        name: &'static str,
        template: serde_json::Value,
        annotations: &'static [(&'static str, &'static str)],
        container: Option<&'static str>,
    }
    let rows = [
        Row {
            name: "the template's annotation names the container",
            template: with(base(), json!({"overrides": {"containerOverrides": [{"name": "sidecar"}]}})),
            annotations: &[(PARAMS_CONTAINER_ANNOTATION, "app")],
            container: Some("app"),
        },
        Row {
            name: "else its first container override",
            template: with(
                base(),
                json!({"overrides": {"containerOverrides": [{"name": "app", "environment": [{"name": "ROWS", "value": "old"}, {"name": "KEEP", "value": "1"}]}]}}),
            ),
            annotations: &[],
            container: Some("app"),
        },
        Row {
            name: "else the container it reads results from",
            template: with(base(), json!({"results": {"containers": ["worker"]}})),
            annotations: &[],
            container: Some("worker"),
        },
        Row { name: "else none: the CustomRun is refused", template: base(), annotations: &[], container: None },
    ];
    let params = json!({"params": [
        {"name": "ROWS", "value": "1200"},
        {"name": "TABLES", "value": ["a", "b"]},
        {"name": "args", "value": ["transform", "--since", "2026-12-01"]},
    ]});
    for row in rows {
        let annotations = row.annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let template = TemplateRun { annotations, ..template_run(row.template) };
        let result = decide::desired_run(&custom_run(with(reference("t"), params.clone())), template);
        let Some(container) = row.container else {
            let why = result.expect_err(row.name);
            assert!(why.contains("ROWS, TABLES, args") && why.contains(PARAMS_CONTAINER_ANNOTATION), "{why}");
            continue;
        };
        let run = result.expect(row.name);
        let env = environment(&run, container);
        assert!(env.contains(&("ROWS".into(), "1200".into())), "{}: {env:?}", row.name);
        assert!(env.contains(&("TABLES".into(), r#"["a","b"]"#.into())), "{}: an array as JSON", row.name);
        assert_eq!(env.iter().filter(|(name, _)| name == "ROWS").count(), 1, "{}: replaced, not doubled", row.name);
        let command = run.spec.overrides.iter().flat_map(|o| &o.container_overrides).find(|c| c.name == container);
        assert_eq!(
            command.and_then(|c| c.command.clone()),
            Some(vec!["transform".to_owned(), "--since".into(), "2026-12-01".into()]),
            "{}",
            row.name
        );
    }
    let kept = decide::desired_run(
        &custom_run(with(reference("t"), params)),
        template_run(with(
            base(),
            json!({"overrides": {"containerOverrides": [{"name": "app", "environment": [{"name": "KEEP", "value": "1"}]}]}}),
        )),
    )
    .unwrap();
    assert!(environment(&kept, "app").contains(&("KEEP".into(), "1".into())), "the template's own variables stay");
}

#[test]
fn the_run_is_named_owned_and_labelled_as_its_custom_run_and_never_suspended() {
    let mut template = template_run(with(base(), json!({"suspend": true})));
    template.labels = BTreeMap::from([
        ("kueue.x-k8s.io/queue-name".to_owned(), "team".to_owned()),
        ("ecsrun.dev/schedule".to_owned(), "nightly".to_owned()),
    ]);
    let run = decide::desired_run(&custom_run(reference("t")), template).unwrap();
    assert_eq!(run.metadata.name.as_deref(), Some("etl-1-transform"));
    assert_eq!(run.metadata.namespace.as_deref(), Some("data"));
    let owner = &run.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("CustomRun", "c0ffee00-0000-4000-8000-000000000001", Some(true))
    );
    let labels = run.metadata.labels.clone().unwrap();
    assert_eq!(labels.get(CUSTOM_RUN_LABEL).map(String::as_str), Some("etl-1-transform"));
    assert_eq!(labels.get("kueue.x-k8s.io/queue-name").map(String::as_str), Some("team"), "queues as its template");
    assert_eq!(labels.get("tekton.dev/pipelineRun").map(String::as_str), Some("etl-1"));
    assert!(!labels.contains_key("ecsrun.dev/schedule"), "ecsrun's own labels are not copied");
    assert!(!run.spec.suspend && !run.spec.stop);

    let adopting =
        template_run(with(json!({"cluster": "batch"}), json!({"taskArn": "arn:aws:ecs:eu-west-1:1:task/b/1"})));
    assert!(decide::desired_run(&custom_run(reference("t")), adopting).is_err());
}

#[test]
fn retries_and_timeout_reach_the_run() {
    let timeout = |spec: &EcsTaskRunSpec| spec.wait.timeout.as_ref().map(|t| t.as_str().to_owned());
    let asked = |extra: serde_json::Value, template: serde_json::Value| {
        decide::desired_run(&custom_run(with(reference("t"), extra)), template_run(template)).map(|run| run.spec)
    };
    let spec = asked(json!({"retries": 2, "timeout": "1h0m0s"}), base()).unwrap();
    assert_eq!(spec.retry_policy.backoff_limit, 2);
    assert_eq!(timeout(&spec).as_deref(), Some("3600s"));
    let shorter_own = asked(json!({"timeout": "1h0m0s"}), with(base(), json!({"wait": {"timeout": "10m"}}))).unwrap();
    assert_eq!(timeout(&shorter_own).as_deref(), Some("10m"), "the template's shorter timeout stands");
    let longer_own = asked(json!({"timeout": "30s"}), with(base(), json!({"wait": {"timeout": "10m"}}))).unwrap();
    assert_eq!(timeout(&longer_own).as_deref(), Some("30s"));
    let none = asked(json!({"timeout": "0s", "retries": 0}), with(base(), json!({"retryPolicy": {"backoffLimit": 3}})))
        .unwrap();
    assert_eq!(
        (timeout(&none), none.retry_policy.backoff_limit),
        (None, 3),
        "0s: no timeout; 0 retries: the template's"
    );
    assert!(asked(json!({"timeout": "soon"}), base()).is_err());
}

fn run_with(status: serde_json::Value) -> EcsTaskRun {
    serde_json::from_value(json!({
        "apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskRun",
        "metadata": {"name": "etl-1-transform", "namespace": "data", "creationTimestamp": "2027-01-15T08:00:01Z"},
        "spec": base(),
        "status": status,
    }))
    .unwrap()
}

fn condition(status: &CustomRunStatus) -> (&str, &str) {
    let c = &status.conditions[0];
    (c.status.as_str(), c.reason.as_deref().unwrap_or_default())
}

/// A row: its name, the CustomRun's spec, its run, a refusal, the condition's status and reason.
type StatusRow =
    (&'static str, serde_json::Value, Option<EcsTaskRun>, Option<&'static str>, (&'static str, &'static str));

#[test]
fn status_table() {
    let cancelled = json!({"status": "RunCancelled", "statusMessage": "CustomRun cancelled as the PipelineRun it belongs to has been cancelled."});
    let finished = |reason: &str, phase: &str, condition: &str| {
        json!({"phase": phase, "reason": reason, "message": format!("{reason} message"),
               "conditions": [{"type": condition, "status": "True", "reason": reason, "message": "",
                               "lastTransitionTime": "2027-01-15T08:05:00Z"}]})
    };
    let rows: Vec<StatusRow> = vec![
        ("nothing made yet", json!({}), None, None, ("Unknown", reason::STARTED)),
        ("an invalid template", json!({}), None, Some("no such template"), ("False", reason::INVALID)),
        ("cancelled before its run", cancelled.clone(), None, None, ("False", reason::CANCELLED)),
        (
            "running",
            json!({}),
            Some(run_with(json!({"phase": "Running", "reason": "TaskRunning"}))),
            None,
            ("Unknown", reason::RUNNING),
        ),
        (
            "cancelled, its task still stopping",
            cancelled.clone(),
            Some(run_with(json!({"phase": "Stopping", "reason": "Stopped"}))),
            None,
            ("Unknown", reason::RUNNING),
        ),
        (
            "cancelled and stopped",
            cancelled.clone(),
            Some(run_with(finished("Stopped", "Failed", "Stalled"))),
            None,
            ("False", reason::CANCELLED),
        ),
        (
            "succeeded",
            json!({}),
            Some(run_with(finished("Succeeded", "Succeeded", "Succeeded"))),
            None,
            ("True", reason::SUCCEEDED),
        ),
        (
            "failed: the run's reason",
            json!({}),
            Some(run_with(finished("ContainerFailed", "Failed", "Stalled"))),
            None,
            ("False", "ContainerFailed"),
        ),
        (
            "a required result missing",
            json!({}),
            Some(run_with(finished("ResultMissing", "Failed", "Stalled"))),
            None,
            ("False", "ResultMissing"),
        ),
        (
            "the timeout",
            json!({}),
            Some(run_with(finished("DeadlineExceeded", "Failed", "Stalled"))),
            None,
            ("False", reason::TIMED_OUT),
        ),
        (
            "outcome unknown",
            json!({}),
            Some(run_with(finished("OutcomeUnknown", "Unknown", "Stalled"))),
            None,
            ("False", "OutcomeUnknown"),
        ),
    ];
    for (name, spec, run, refusal, expected) in rows {
        let status = decide::status(&custom_run(with(reference("t"), spec)), run.as_ref(), refusal, at(0));
        assert_eq!(condition(&status), expected, "{name}");
        assert_eq!(status.completion_time.is_some(), expected.0 != "Unknown", "{name}: completionTime only when done");
        assert_eq!(status.observed_generation, Some(1), "{name}");
        assert!(status.start_time.is_some(), "{name}");
    }
}

#[test]
fn a_succeeded_runs_results_and_end_are_the_custom_runs_and_transitions_keep_their_time() {
    let run = run_with(json!({
        "phase": "Succeeded", "reason": "Succeeded", "message": "done", "results": {"rows": "1200", "key": "s3://b/k"},
        "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded", "message": "",
                        "lastTransitionTime": "2027-01-15T08:05:00Z"}],
    }));
    let status = decide::status(&custom_run(reference("t")), Some(&run), None, at(900));
    assert_eq!(
        status.results,
        [
            CustomRunResult { name: "key".into(), value: "s3://b/k".into() },
            CustomRunResult { name: "rows".into(), value: "1200".into() }
        ]
    );
    assert_eq!(status.completion_time.map(|t| t.0.to_string()).as_deref(), Some("2027-01-15T08:05:00Z"));
    assert_eq!(
        status.start_time.map(|t| t.0.to_string()).as_deref(),
        Some("2027-01-15T08:00:01Z"),
        "the run's creation"
    );

    // Running, looked at twice: the condition's time is the first look's.
    let running = run_with(json!({"phase": "Running", "reason": "TaskRunning", "message": "RUNNING"}));
    let mut custom = custom_run(reference("t"));
    custom.status = Some(decide::status(&custom, Some(&running), None, at(10)));
    let again = decide::status(&custom, Some(&running), None, at(20));
    assert_eq!(again, custom.status.clone().unwrap(), "nothing changed: nothing to write");
    let failed = run_with(json!({"phase": "Failed", "reason": "ContainerFailed", "message": "exited 3"}));
    let flipped = decide::status(&custom, Some(&failed), None, at(30));
    assert_eq!(flipped.conditions[0].last_transition_time.as_ref().map(|t| t.0), Some(at(30)));
    assert!(flipped.results.is_empty(), "a failed run publishes no results to the pipeline");
}

#[test]
fn a_cancelled_custom_run_asks_its_unfinished_run_to_stop_once() {
    let cancelled =
        custom_run(with(reference("t"), json!({"status": "RunCancelled", "statusMessage": "by the pipeline"})));
    let running = run_with(json!({"phase": "Running"}));
    assert_eq!(decide::stop_wanted(&cancelled, &running).as_deref(), Some("ecsrun: Tekton: by the pipeline"));
    let mut told = running.clone();
    told.spec.stop = true;
    assert_eq!(decide::stop_wanted(&cancelled, &told), None, "already told");
    assert_eq!(decide::stop_wanted(&cancelled, &run_with(json!({"phase": "Succeeded"}))), None, "finished");
    assert_eq!(decide::stop_wanted(&custom_run(reference("t")), &running), None, "not cancelled");
}
