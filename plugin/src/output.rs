//! `-o`: how a verb prints the object it made or read, with kubectl's own formats.

use std::fmt::Write as _;

use clap::ValueEnum;
use ecsrun_api::EcsTaskRun;
use kube::{Resource, ResourceExt};
use serde::Serialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    #[default]
    Text,
    /// For people: a table with `kubectl get ecstaskruns -o wide`'s columns.
    Wide,
    /// The object as JSON.
    Json,
    /// The object as YAML.
    Yaml,
    /// `ecstaskrun.ecsrun.dev/<name>`, for piping into kubectl.
    Name,
}

/// The object in a machine format (json, yaml, name); `None` for text and wide, which each verb words
/// itself.
pub fn render<K>(object: &K, output: Output) -> anyhow::Result<Option<String>>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    Ok(match output {
        Output::Json => Some(serde_json::to_string_pretty(object)? + "\n"),
        Output::Yaml => Some(serde_yaml_ng::to_string(object)?),
        Output::Name => Some(format!("{}.{}/{}\n", K::kind(&()).to_lowercase(), K::group(&()), object.name_any())),
        Output::Text | Output::Wide => None,
    })
}

/// Prints a run as `output` asks; false for text, which each verb words itself.
pub fn print_run(run: &EcsTaskRun, output: Output) -> anyhow::Result<bool> {
    if let Some(rendered) = render(run, output)? {
        print!("{rendered}");
        return Ok(true);
    }
    if output == Output::Wide {
        print!("{}", wide_table(&[run], jiff::Timestamp::now()));
        return Ok(true);
    }
    Ok(false)
}

/// The wide table of runs, as `kubectl get ecstaskruns -o wide` prints it (the CRD's printer columns).
pub fn wide_table(runs: &[&EcsTaskRun], now: jiff::Timestamp) -> String {
    const HEADER: [&str; 9] =
        ["NAME", "STATUS", "TASKS", "TASK", "LAST-STATUS", "EXIT-CODES", "ATTEMPTS", "REASON", "AGE"];
    let rows: Vec<[String; 9]> = runs
        .iter()
        .map(|run| {
            let status = run.status.clone().unwrap_or_default();
            let cell =
                |value: Option<String>| value.filter(|value| !value.is_empty()).unwrap_or_else(|| "<none>".into());
            [
                run.name_any(),
                cell(status.task.phase.map(|phase| format!("{phase:?}"))),
                cell(status.progress),
                cell(status.task.task_id),
                cell(status.task.last_status.map(|last| last.to_string())),
                cell(status.task.exit_codes),
                cell(status.attempt_count.map(|count| count.to_string())),
                cell(status.task.reason.map(|reason| reason.to_string())),
                cell(run.metadata.creation_timestamp.as_ref().map(|created| age(now, created.0))),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|column| rows.iter().map(|row| row[column].len()).chain([HEADER[column].len()]).max().unwrap_or(0))
        .collect();
    let mut table = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells.zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        let _ = writeln!(table, "{}", padded.join("   ").trim_end());
    };
    line(&mut HEADER.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    table
}

/// An age as kubectl prints one: 45s, 12m, 5h, 3d.
pub fn age(now: jiff::Timestamp, then: jiff::Timestamp) -> String {
    let seconds = now.duration_since(then).as_secs().max(0);
    match seconds {
        0..120 => format!("{seconds}s"),
        120..7200 => format!("{}m", seconds / 60),
        7200..172_800 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> EcsTaskRun {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsTaskRun",
            "metadata": {"name": "nightly", "namespace": "jobs", "creationTimestamp": "2026-12-01T10:00:00Z"},
            "spec": {"cluster": "etl", "taskDefinition": "report"},
            "status": {"phase": "Succeeded", "taskId": "0123abcd", "lastStatus": "STOPPED", "exitCodes": "app=0",
                "attemptCount": 2, "reason": "Succeeded"},
        }))
        .unwrap()
    }

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn machine_formats_print_the_object_and_its_name() {
        let run = run();
        let json: serde_json::Value = serde_json::from_str(&render(&run, Output::Json).unwrap().unwrap()).unwrap();
        assert_eq!(json["status"]["exitCodes"], "app=0");
        let yaml: serde_json::Value = serde_yaml_ng::from_str(&render(&run, Output::Yaml).unwrap().unwrap()).unwrap();
        assert_eq!(yaml, json);
        assert_eq!(render(&run, Output::Name).unwrap().unwrap(), "ecstaskrun.ecsrun.dev/nightly\n");
        assert_eq!(render(&run, Output::Text).unwrap(), None);
        assert_eq!(render(&run, Output::Wide).unwrap(), None);
    }

    #[test]
    fn the_wide_table_has_the_printer_columns_aligned() {
        let (finished, mut fresh) = (run(), run());
        fresh.metadata.name = Some("a-much-longer-run-name".into());
        fresh.status = None;
        let table = wide_table(&[&finished, &fresh], at("2026-12-01T10:05:00Z"));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("NAME                     STATUS"), "{table}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(cells, ["nightly", "Succeeded", "<none>", "0123abcd", "STOPPED", "app=0", "2", "Succeeded", "5m"]);
        // Columns line up: every row's STATUS starts where the header's does.
        let column = lines[0].find("STATUS").unwrap();
        assert_eq!(&lines[2][column..column + 6], "<none>", "{table}");
    }

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        let now = at("2026-12-03T00:00:00Z");
        assert_eq!(age(now, at("2026-12-02T23:59:15Z")), "45s");
        assert_eq!(age(now, at("2026-12-02T23:48:00Z")), "12m");
        assert_eq!(age(now, at("2026-12-02T19:00:00Z")), "5h");
        assert_eq!(age(now, at("2026-11-30T00:00:00Z")), "3d");
        assert_eq!(age(now, at("2026-12-03T00:01:00Z")), "0s");
    }
}
