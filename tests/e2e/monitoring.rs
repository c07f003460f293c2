//! The chart's alerts under promtool (built from its Go module by hack/setup): the rule file and the
//! PrometheusRule the chart renders from it pass `promtool check rules`, and `promtool test rules` has a
//! test for every alert, each of which fires and stays quiet as it should.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context as _, ensure};
use ecsrun_testbed::repo_root;

use crate::chart::{IMAGE, helm, run};
use crate::{Case, Env, case};

pub fn cases() -> Vec<Case> {
    vec![case("monitoring::promtool_checks_the_rules_and_tests_every_alert", promtool_rules)]
}

fn promtool() -> anyhow::Result<Command> {
    let binary = std::env::var("ECSRUN_PROMTOOL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".cache/bin/promtool"));
    ensure!(binary.exists(), "{} does not exist: hack/setup builds promtool from its Go module", binary.display());
    Ok(Command::new(binary))
}

async fn promtool_rules(env: Arc<Env>) -> anyhow::Result<()> {
    let rules = repo_root().join("charts/ecsrun/files/alerts.yaml");
    let tests = repo_root().join("hack/prometheus/alerts_test.yaml");
    let mut check = promtool()?;
    check.args(["check", "rules"]).arg(&rules);
    let checked = run(check).await?;
    ensure!(checked.contains("SUCCESS"), "promtool check rules: {checked}");

    // What the chart installs is the same rule file, still valid once Helm has rendered it.
    let mut template = Command::new(helm()?);
    template.args(["template", "ecsrun"]).arg(repo_root().join("charts/ecsrun"));
    template.args(["--set", IMAGE, "--set", "metrics.prometheusRule.enabled=true"]);
    template.args(["--show-only", "templates/prometheusrule.yaml"]);
    let rendered: serde_yaml_ng::Value = serde_yaml_ng::from_str(&run(template).await?)?;
    let rendered_rules = env.work.join("rendered-alerts.yaml");
    std::fs::write(&rendered_rules, serde_yaml_ng::to_string(&rendered["spec"])?)?;
    let mut check = promtool()?;
    check.args(["check", "rules"]).arg(&rendered_rules);
    run(check).await.context("the chart's rendered PrometheusRule")?;
    let source: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&rules)?)?;
    ensure!(
        rendered["spec"]["groups"] == source["groups"],
        "the chart's PrometheusRule differs from files/alerts.yaml"
    );

    let mut test = promtool()?;
    test.args(["test", "rules"]).arg(&tests).current_dir(tests.parent().context("the tests' directory")?);
    let tested = run(test).await?;
    ensure!(tested.contains("SUCCESS"), "promtool test rules: {tested}");

    let alerts: BTreeSet<String> = source["groups"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|group| group["rules"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|rule| rule["alert"].as_str().map(str::to_owned))
        .collect();
    let test_file: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&tests)?)?;
    let firing: BTreeSet<String> = test_file["tests"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|test| test["alert_rule_test"].as_sequence().cloned().unwrap_or_default())
        .filter(|check| check["exp_alerts"].as_sequence().is_some_and(|alerts| !alerts.is_empty()))
        .filter_map(|check| check["alertname"].as_str().map(str::to_owned))
        .collect();
    let untested: Vec<&String> = alerts.difference(&firing).collect();
    ensure!(untested.is_empty(), "alerts no promtool test sees firing: {untested:?}");
    ensure!(alerts.len() >= 6, "only {} alerts in files/alerts.yaml", alerts.len());
    Ok(())
}
