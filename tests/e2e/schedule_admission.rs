//! The API server refuses bad EcsTaskSchedules, naming the field, before any controller sees them: the
//! schedule's own fields, and the run template, which carries every rule of an EcsTaskRun's spec.

use std::sync::Arc;

use anyhow::{bail, ensure};
use ecsrun::api::EcsTaskSchedule;
use kube::api::{ApiResource, PostParams};
use serde_json::{Value, json};

use crate::admission::{NAMESPACE, rejected, valid};
use crate::{Case, Env, case};

fn valid_schedule() -> Value {
    json!({
        "apiVersion": "ecsrun.dev/v1alpha1",
        "kind": "EcsTaskSchedule",
        "metadata": {"name": "nightly"},
        "spec": {
            "schedule": "0 2 * * *",
            "timeZone": "Europe/Berlin",
            "runTemplate": {"spec": valid()["spec"].clone()}
        }
    })
}

/// The valid schedule with `value` at the slash-separated `path` under spec.
fn with(path: &str, value: Value) -> Value {
    let mut manifest = valid_schedule();
    let pointer = format!("/spec/{path}");
    let (parent, last) = pointer.rsplit_once('/').unwrap_or_default();
    if let Some(Value::Object(object)) = manifest.pointer_mut(parent) {
        object.insert(last.to_owned(), value);
    }
    manifest
}

fn bad_schedules() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "tz_inside_the_schedule",
            with("schedule", json!("TZ=Europe/Berlin 0 2 * * *")),
            "set timeZone instead of TZ=",
        ),
        ("six_fields", with("schedule", json!("0 0 2 * * *")), "spec.schedule in body should match"),
        ("four_fields", with("schedule", json!("0 2 * *")), "spec.schedule in body should match"),
        ("unknown_nickname", with("schedule", json!("@every 5m")), "spec.schedule in body should match"),
        ("empty_schedule", with("schedule", json!("")), "spec.schedule"),
        ("time_zone_with_spaces", with("timeZone", json!("Europe/ Berlin")), "spec.timeZone in body should match"),
        (
            "unknown_concurrency_policy",
            with("concurrencyPolicy", json!("Sometimes")),
            "spec.concurrencyPolicy: Unsupported value",
        ),
        (
            "starting_deadline_under_10s",
            with("startingDeadlineSeconds", json!(5)),
            "spec.startingDeadlineSeconds in body should be greater than or equal to 10",
        ),
        (
            "negative_successful_history",
            with("successfulRunsHistoryLimit", json!(-1)),
            "spec.successfulRunsHistoryLimit",
        ),
        ("failed_history_over_100", with("failedRunsHistoryLimit", json!(101)), "spec.failedRunsHistoryLimit"),
        (
            "no_run_template",
            {
                let mut m = valid_schedule();
                m["spec"].as_object_mut().map(|s| s.remove("runTemplate"));
                m
            },
            "spec.runTemplate: Required value",
        ),
        (
            "template_following_a_task",
            with("runTemplate/spec/taskArn", json!("arn:aws:ecs:eu-west-1:123456789012:task/batch/abc")),
            "runTemplate.spec.taskArn follows a task started elsewhere",
        ),
        ("template_stopped", with("runTemplate/spec/stop", json!(true)), "suspend the schedule instead"),
        ("template_with_count_0", with("runTemplate/spec/count", json!(0)), "spec.runTemplate.spec.count"),
        (
            "template_with_launch_type_and_strategy",
            with("runTemplate/spec/capacityProviderStrategy", json!([{"capacityProvider": "FARGATE_SPOT"}])),
            "launchType and capacityProviderStrategy are mutually exclusive",
        ),
    ]
}

pub fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = bad_schedules()
        .into_iter()
        .map(|(name, manifest, expected)| {
            case(format!("admission::schedule_rejects_{name}"), move |env| {
                rejected(env, manifest, expected, ApiResource::erase::<EcsTaskSchedule>(&()))
            })
        })
        .collect();
    cases.push(case("admission::schedule_names_leave_room_for_the_slot", long_name));
    cases.push(case("admission::schedule_accepts_nicknames_and_fills_defaults", accepts_valid));
    cases
}

async fn long_name(env: Arc<Env>) -> anyhow::Result<()> {
    let mut manifest = valid_schedule();
    manifest["metadata"]["name"] = json!("n".repeat(53));
    let schedule: EcsTaskSchedule = serde_json::from_value(manifest)?;
    let api = kube::Api::<EcsTaskSchedule>::namespaced(env.client.clone(), NAMESPACE);
    match api.create(&PostParams::default(), &schedule).await {
        Ok(_) => bail!("a 53-character schedule name was accepted"),
        Err(kube::Error::Api(status)) => {
            ensure!(status.code == 422 && status.message.contains("at most 52 characters"), "{}", status.message);
            Ok(())
        }
        Err(other) => Err(other.into()),
    }
}

async fn accepts_valid(env: Arc<Env>) -> anyhow::Result<()> {
    let api = kube::Api::<EcsTaskSchedule>::namespaced(env.client.clone(), NAMESPACE);
    for (name, schedule) in
        [("hourly", "@hourly"), ("weekly", "@WEEKLY"), ("weekdays", "30 6 * * MON-FRI"), ("last-day", "0 3 L * *")]
    {
        let mut manifest = valid_schedule();
        manifest["metadata"]["name"] = json!(name);
        manifest["spec"]["schedule"] = json!(schedule);
        let schedule: EcsTaskSchedule = serde_json::from_value(manifest)?;
        let created = api.create(&PostParams::default(), &schedule).await?;
        ensure!(created.spec.successful_runs_history_limit == 3, "successfulRunsHistoryLimit default");
        ensure!(created.spec.failed_runs_history_limit == 1, "failedRunsHistoryLimit default");
        ensure!(created.spec.concurrency_policy == ecsrun::api::ConcurrencyPolicy::Allow, "concurrencyPolicy default");
    }
    Ok(())
}
