//! The chart's dashboard and alerts name only metrics the controller exports, and cover what an operator
//! watches. promtool checks and tests the alerts in the e2e tier (monitoring::...).

use std::collections::BTreeSet;

fn chart_file(name: &str) -> String {
    let path = format!("{}/../charts/ecsrun/files/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// Every `ecsrun_*` and `process_*` metric name in a text of PromQL.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in ["ecsrun_", "process_"] {
        for (start, _) in text.match_indices(prefix) {
            let preceded = text[..start].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            let name: String = text[start..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !preceded {
                names.insert(name);
            }
        }
    }
    names
}

fn exported(name: &str, families: &[String]) -> bool {
    let base = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| name.strip_suffix(suffix)).unwrap_or(name);
    families.iter().any(|family| family == name || family == base)
}

fn expressions_of_dashboard(dashboard: &serde_json::Value) -> Vec<String> {
    dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| target["expr"].as_str().expect("an expr").to_owned())
        .collect()
}

#[test]
fn the_dashboard_and_alerts_name_only_exported_metrics() {
    let metrics = ecsrun::metrics::Metrics::new().unwrap();
    let families = metrics.family_names();
    let dashboard: serde_json::Value = serde_json::from_str(&chart_file("dashboard.json")).unwrap();
    let alerts: serde_yaml_ng::Value = serde_yaml_ng::from_str(&chart_file("alerts.yaml")).unwrap();
    let rules = alerts["groups"][0]["rules"].as_sequence().expect("rules").clone();
    let mut named = BTreeSet::new();
    for expr in expressions_of_dashboard(&dashboard)
        .into_iter()
        .chain(rules.iter().map(|rule| rule["expr"].as_str().expect("an expr").to_owned()))
    {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{expr} names no ecsrun metric");
        named.extend(names);
    }
    let missing: Vec<&String> = named.iter().filter(|name| !exported(name, families)).collect();
    assert!(missing.is_empty(), "named but not exported: {missing:?}; exported: {families:?}");
    // The check itself can fail: a name the controller does not export is caught.
    assert!(!exported("ecsrun_no_such_metric_total", families));
    assert!(exported("ecsrun_reconcile_duration_seconds_bucket", families));
}

#[test]
fn the_dashboard_shows_what_an_operator_watches() {
    let dashboard: serde_json::Value = serde_json::from_str(&chart_file("dashboard.json")).unwrap();
    let exprs = expressions_of_dashboard(&dashboard).join("\n");
    for (what, needle) in [
        ("runs by phase", "sum by (phase) (ecsrun_runs{"),
        ("launches", "operation=\"RunTask\",outcome=\"ok\""),
        ("finishes", "ecsrun_runs_finished_total"),
        ("throttles", "outcome=\"throttled\""),
        ("rate-ceiling waits by class", "sum by (class) (rate(ecsrun_ecs_rate_limited_total"),
        ("tracker size", "ecsrun_tracked_tasks"),
        ("reconcile errors", "sum by (error) (rate(ecsrun_reconcile_errors_total"),
        ("leader", "ecsrun_leader"),
        ("per-namespace usage", "sum by (namespace) (rate(ecsrun_task_vcpu_seconds_total"),
    ] {
        assert!(exprs.contains(needle), "the dashboard does not show {what}");
    }
}

#[test]
fn alerts_cover_stuck_runs_throttling_errors_leadership_and_orphans() {
    let alerts: serde_yaml_ng::Value = serde_yaml_ng::from_str(&chart_file("alerts.yaml")).unwrap();
    let names: BTreeSet<&str> =
        alerts["groups"][0]["rules"].as_sequence().unwrap().iter().filter_map(|rule| rule["alert"].as_str()).collect();
    for alert in [
        "EcsRunNoLeader",
        "EcsRunRunsStuckPending",
        "EcsRunRunsStuckDeleting",
        "EcsRunThrottled",
        "EcsRunReconcileErrors",
        "EcsRunOrphansStopped",
    ] {
        assert!(names.contains(alert), "no {alert}");
    }
}
