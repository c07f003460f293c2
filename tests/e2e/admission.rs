//! The API server itself rejects bad manifests, naming the field, before any controller sees them
//! (OpenAPI schema + CEL rules of the committed CRD). No controller watches this namespace.

use std::process::Command;
use std::sync::Arc;

use anyhow::{Context as _, bail, ensure};
use ecsrun::api::EcsTaskRun;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::{Case, Env, case};

pub const NAMESPACE: &str = "e2e-admission";
const ROLE: &str = "arn:aws:iam::123456789012:role/ecsInfrastructureRole";

pub fn valid() -> Value {
    json!({
        "apiVersion": "ecsrun.dev/v1alpha1",
        "kind": "EcsTaskRun",
        "metadata": {"name": "valid"},
        "spec": {
            "cluster": "batch",
            "taskDefinition": "transform:3",
            "launchType": "FARGATE",
            "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1"], "securityGroups": ["sg-1"]}}
        }
    })
}

/// Sets `value` at the slash-separated `path` under spec (null removes it).
fn with(path: &str, value: Value) -> Value {
    let mut manifest = valid();
    let mut target = &mut manifest["spec"];
    let keys: Vec<&str> = path.split('/').collect();
    for key in &keys[..keys.len() - 1] {
        target = &mut target[*key];
    }
    let last = keys[keys.len() - 1];
    match (target.as_object_mut(), value) {
        (Some(object), Value::Null) => {
            object.remove(last);
        }
        (Some(object), value) => {
            object.insert(last.to_owned(), value);
        }
        (None, _) => unreachable!("test table paths name objects"),
    }
    manifest
}

/// A valid Fargate template with `edits` applied (keys replaced at the top level; null removes one).
fn template(edits: Value) -> Value {
    let mut template = json!({
        "family": "etl", "cpu": "256", "memory": "512", "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "containerDefinitions": [{"name": "app", "image": "busybox"}]
    });
    if let (Some(template), Some(edits)) = (template.as_object_mut(), edits.as_object()) {
        for (key, value) in edits {
            match value {
                Value::Null => template.remove(key),
                value => template.insert(key.clone(), value.clone()),
            };
        }
    }
    template
}

/// A run of a template (no taskDefinition) with `edits` applied to the template.
fn only_template(edits: Value) -> Value {
    set(with("taskDefinition", Value::Null), "taskDefinitionTemplate", template(edits))
}

fn many(prefix: &str, count: usize) -> Value {
    Value::Array((0..count).map(|i| json!(format!("{prefix}-{i}"))).collect())
}

/// (case, manifest, text the rejection must contain: the field path or the rule's message)
fn bad_manifests() -> Vec<(&'static str, Value, &'static str)> {
    let tags: serde_json::Map<String, Value> = (0..48).map(|i| (format!("k{i}"), json!("v"))).collect();
    vec![
        ("missing_cluster", with("cluster", Value::Null), "spec.cluster: Required value"),
        (
            "missing_task_definition",
            with("taskDefinition", Value::Null),
            "set exactly one of taskDefinition, taskDefinitionTemplate or taskArn",
        ),
        (
            "task_definition_and_task_arn",
            with("taskArn", json!("arn:aws:ecs:eu-west-1:123456789012:task/batch/0123456789abcdef")),
            "set exactly one of taskDefinition, taskDefinitionTemplate or taskArn",
        ),
        (
            "task_arn_that_is_not_a_task_arn",
            set(
                with("taskDefinition", Value::Null),
                "taskArn",
                json!("arn:aws:ecs:eu-west-1:123456789012:cluster/batch"),
            ),
            "spec.taskArn",
        ),
        (
            "task_arn_with_count",
            set(
                set(
                    with("taskDefinition", Value::Null),
                    "taskArn",
                    json!("arn:aws:ecs:eu-west-1:123456789012:task/b/1"),
                ),
                "count",
                json!(2),
            ),
            "taskArn follows one task: count must be 1",
        ),
        ("tail_lines_over_200", with("logs", json!({"tailLines": 201})), "spec.logs.tailLines"),
        ("empty_cluster", with("cluster", json!("")), "spec.cluster"),
        (
            "launch_type_and_capacity_provider_strategy",
            with("capacityProviderStrategy", json!([{"capacityProvider": "FARGATE_SPOT"}])),
            "launchType and capacityProviderStrategy are mutually exclusive",
        ),
        ("unknown_launch_type", with("launchType", json!("LAMBDA")), "spec.launchType: Unsupported value"),
        (
            "seventeen_subnets",
            with("networkConfiguration/awsvpcConfiguration/subnets", many("subnet", 17)),
            "spec.networkConfiguration.awsvpcConfiguration.subnets: Too many",
        ),
        (
            "no_subnets",
            with("networkConfiguration/awsvpcConfiguration/subnets", json!([])),
            "spec.networkConfiguration.awsvpcConfiguration.subnets",
        ),
        (
            "six_security_groups",
            with("networkConfiguration/awsvpcConfiguration/securityGroups", many("sg", 6)),
            "spec.networkConfiguration.awsvpcConfiguration.securityGroups: Too many",
        ),
        (
            "bad_assign_public_ip",
            with("networkConfiguration/awsvpcConfiguration/assignPublicIp", json!("YES")),
            "spec.networkConfiguration.awsvpcConfiguration.assignPublicIp: Unsupported value",
        ),
        ("poll_interval_abc", with("wait", json!({"pollInterval": "abc"})), "spec.wait.pollInterval"),
        ("poll_interval_1s", with("wait", json!({"pollInterval": "1s"})), "pollInterval must be between 5s and 10m"),
        ("poll_interval_2h", with("wait", json!({"pollInterval": "2h"})), "pollInterval must be between 5s and 10m"),
        ("bad_timeout", with("wait", json!({"timeout": "soon"})), "spec.wait.timeout"),
        ("bad_start_timeout", with("wait", json!({"startTimeout": "ten minutes"})), "spec.wait.startTimeout"),
        ("start_timeout_under_10s", with("wait", json!({"startTimeout": "5s"})), "startTimeout must be at least 10s"),
        ("unknown_wait_for", with("wait", json!({"for": "Done"})), "spec.wait.for: Unsupported value"),
        ("unknown_success_policy", with("successPolicy", json!("Whatever")), "spec.successPolicy: Unsupported value"),
        ("unknown_deletion_policy", with("deletionPolicy", json!("Keep")), "spec.deletionPolicy: Unsupported value"),
        ("negative_backoff_limit", with("retryPolicy", json!({"backoffLimit": -1})), "spec.retryPolicy.backoffLimit"),
        ("too_many_tags", with("tags", Value::Object(tags)), "spec.tags: Too many"),
        (
            "reserved_tag_key",
            with("tags", json!({"ecsrun.dev/uid": "x"})),
            "tag keys starting with ecsrun.dev/ or aws: are reserved",
        ),
        (
            "two_credential_sources",
            with(
                "credentials",
                json!({"assumeRoleArn": "arn:aws:iam::123456789012:role/x", "secretRef": {"name": "aws"}}),
            ),
            "set exactly one of assumeRoleArn or secretRef",
        ),
        ("no_credential_source", with("credentials", json!({})), "set exactly one of assumeRoleArn or secretRef"),
        ("bad_role_arn", with("credentials", json!({"assumeRoleArn": "my-role"})), "spec.credentials.assumeRoleArn"),
        ("unknown_propagate_tags", with("propagateTags", json!("SERVICE")), "spec.propagateTags: Unsupported value"),
        (
            "capacity_weight_over_1000",
            set(
                with("launchType", Value::Null),
                "capacityProviderStrategy",
                json!([{"capacityProvider": "FARGATE", "weight": 1001}]),
            ),
            "spec.capacityProviderStrategy[0].weight",
        ),
        (
            "ephemeral_storage_below_21",
            with("overrides", json!({"ephemeralStorage": {"sizeInGiB": 10}})),
            "spec.overrides.ephemeralStorage.sizeInGiB",
        ),
        (
            "container_override_without_name",
            with("overrides", json!({"containerOverrides": [{"command": ["x"]}]})),
            "spec.overrides.containerOverrides[0].name: Required value",
        ),
        (
            "unknown_placement_constraint",
            with("placementConstraints", json!([{"type": "random"}])),
            "spec.placementConstraints[0].type: Unsupported value",
        ),
        ("bad_region", with("region", json!("Ireland")), "spec.region"),
        (
            "unknown_rule_operator",
            with(
                "retryPolicy",
                json!({"rules": [{"action": "FailRun", "onExitCodes": {"operator": "Between", "values": [3]}}]}),
            ),
            "spec.retryPolicy.rules[0].onExitCodes.operator: Unsupported value",
        ),
        (
            "unknown_rule_action",
            with(
                "retryPolicy",
                json!({"rules": [{"action": "Skip", "onExitCodes": {"operator": "In", "values": [3]}}]}),
            ),
            "spec.retryPolicy.rules[0].action: Unsupported value",
        ),
        (
            "exit_code_zero_in_a_rule",
            with(
                "retryPolicy",
                json!({"rules": [{"action": "FailRun", "onExitCodes": {"operator": "In", "values": [0, 3]}}]}),
            ),
            "exit code 0 is a success",
        ),
        (
            "repeated_exit_codes",
            with(
                "retryPolicy",
                json!({"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3, 3]}}]}),
            ),
            "values must not repeat",
        ),
        (
            "rule_without_exit_codes",
            with(
                "retryPolicy",
                json!({"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": []}}]}),
            ),
            "spec.retryPolicy.rules[0].onExitCodes.values",
        ),
        (
            "rule_with_no_condition",
            with("retryPolicy", json!({"rules": [{"action": "Ignore"}]})),
            "a rule needs onExitCodes, onStopCodes or onStoppedReason",
        ),
        (
            "unknown_stop_code",
            with("retryPolicy", json!({"rules": [{"action": "Ignore", "onStopCodes": ["SpotReclaimed"]}]})),
            "spec.retryPolicy.rules[0].onStopCodes[0]: Unsupported value",
        ),
        (
            "repeated_stop_codes",
            with(
                "retryPolicy",
                json!({"rules": [{"action": "Ignore", "onStopCodes": ["SpotInterruption", "SpotInterruption"]}]}),
            ),
            "onStopCodes must not repeat",
        ),
        (
            "empty_stopped_reason_pattern",
            with("retryPolicy", json!({"rules": [{"action": "FailRun", "onStoppedReason": ""}]})),
            "spec.retryPolicy.rules[0].onStoppedReason",
        ),
        (
            "ebs_volume_of_70000_gib",
            with(
                "volumeConfigurations",
                json!([{"name": "scratch", "managedEBSVolume": {"roleArn": ROLE, "sizeInGiB": 70000}}]),
            ),
            "spec.volumeConfigurations[0].managedEBSVolume.sizeInGiB",
        ),
        (
            "ebs_volume_without_size_or_snapshot",
            with("volumeConfigurations", json!([{"name": "scratch", "managedEBSVolume": {"roleArn": ROLE}}])),
            "set sizeInGiB, snapshotId, or both",
        ),
        (
            "throughput_on_a_gp2_volume",
            with(
                "volumeConfigurations",
                json!([{"name": "s", "managedEBSVolume": {"roleArn": ROLE, "sizeInGiB": 10, "volumeType": "gp2", "throughput": 250}}]),
            ),
            "throughput is for gp3 volumes",
        ),
        (
            "two_launch_time_volumes",
            with(
                "volumeConfigurations",
                json!([
                {"name": "a", "managedEBSVolume": {"roleArn": ROLE, "sizeInGiB": 10}},
                {"name": "b", "managedEBSVolume": {"roleArn": ROLE, "sizeInGiB": 10}}]),
            ),
            "spec.volumeConfigurations: Too many",
        ),
        (
            "environment_file_outside_s3",
            with(
                "overrides",
                json!({"containerOverrides": [{"name": "app", "environmentFiles": [{"value": "https://example.com/x.env", "type": "s3"}]}]}),
            ),
            "spec.overrides.containerOverrides[0].environmentFiles[0].value",
        ),
        (
            "gpu_count_that_is_not_a_number",
            with(
                "overrides",
                json!({"containerOverrides": [{"name": "app", "resourceRequirements": [{"type": "GPU", "value": "two"}]}]}),
            ),
            "a GPU requirement's value is a number of GPUs",
        ),
        (
            "exit_code_above_255",
            with(
                "retryPolicy",
                json!({"rules": [{"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [256]}}]}),
            ),
            "spec.retryPolicy.rules[0].onExitCodes.values[0]",
        ),
        ("count_0", with("count", json!(0)), "spec.count: Invalid value: 0"),
        ("count_101", with("count", json!(101)), "spec.count: Invalid value: 101"),
        ("count_as_a_string", with("count", json!("5")), "spec.count: Invalid value: \"string\""),
        (
            "parallelism_above_count",
            set(with("count", json!(3)), "parallelism", json!(4)),
            "parallelism cannot exceed count",
        ),
        ("parallelism_without_count", with("parallelism", json!(2)), "parallelism cannot exceed count"),
        ("parallelism_0", set(with("count", json!(3)), "parallelism", json!(0)), "spec.parallelism: Invalid value: 0"),
        ("fail_fast_not_a_bool", with("retryPolicy", json!({"failFast": "yes"})), "spec.retryPolicy.failFast"),
        (
            "both_task_definition_and_template",
            with("taskDefinitionTemplate", template(json!({}))),
            "set exactly one of",
        ),
        (
            "template_without_container_definitions",
            only_template(json!({"containerDefinitions": null})),
            "spec.taskDefinitionTemplate.containerDefinitions: Required value",
        ),
        (
            "template_container_without_image",
            only_template(json!({"containerDefinitions": [{"name": "app"}]})),
            "spec.taskDefinitionTemplate.containerDefinitions[0].image: Required value",
        ),
        (
            "template_with_two_containers_of_one_name",
            only_template(
                json!({"containerDefinitions": [{"name": "app", "image": "a"}, {"name": "app", "image": "b"}]}),
            ),
            "spec.taskDefinitionTemplate.containerDefinitions[1]: Duplicate value",
        ),
        (
            "template_without_an_essential_container",
            only_template(json!({"containerDefinitions": [{"name": "app", "image": "a", "essential": false}]})),
            "at least one container must be essential",
        ),
        (
            "fargate_template_without_awsvpc",
            only_template(json!({"networkMode": "bridge"})),
            "a FARGATE task definition needs networkMode awsvpc, cpu and memory",
        ),
        (
            "template_mounting_an_unknown_volume",
            only_template(json!({"containerDefinitions": [{"name": "app", "image": "a",
                "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/scratch"}]}]})),
            "every mountPoints[].sourceVolume must name one of volumes",
        ),
        (
            "template_depending_on_an_unknown_container",
            only_template(json!({"containerDefinitions": [{"name": "app", "image": "a",
                "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}]}]})),
            "every dependsOn[].containerName must name one of containerDefinitions",
        ),
        (
            "template_family_with_a_slash",
            only_template(json!({"family": "team/etl"})),
            "spec.taskDefinitionTemplate.family",
        ),
        (
            "template_with_eleven_containers",
            only_template(
                json!({"containerDefinitions": (0..11).map(|i| json!({"name": format!("c{i}"), "image": "a"})).collect::<Vec<_>>()}),
            ),
            "spec.taskDefinitionTemplate.containerDefinitions: Too many",
        ),
        (
            "45_tags_with_count_2",
            set(
                with("count", json!(2)),
                "tags",
                Value::Object((0..45).map(|i| (format!("k{i}"), json!("v"))).collect()),
            ),
            "at most 45 tags, 44 or 43 with those",
        ),
        (
            "44_tags_with_count_2_and_deletion_policy_orphan",
            set(
                set(
                    with("count", json!(2)),
                    "tags",
                    Value::Object((0..44).map(|i| (format!("k{i}"), json!("v"))).collect()),
                ),
                "deletionPolicy",
                json!("Orphan"),
            ),
            "at most 45 tags, 44 or 43 with those",
        ),
        (
            "negative_ttl_seconds_after_finished",
            with("ttlSecondsAfterFinished", json!(-1)),
            "spec.ttlSecondsAfterFinished: Invalid value: -1: spec.ttlSecondsAfterFinished in body should be greater than or equal to 0",
        ),
        (
            "max_failed_indexes_with_fail_fast",
            with("retryPolicy", json!({"maxFailedIndexes": 2})),
            "maxFailedIndexes needs failFast: false",
        ),
        (
            "tasks_to_succeed_above_count",
            set(set(valid(), "count", json!(3)), "tasksToSucceed", json!(4)),
            "tasksToSucceed cannot exceed count",
        ),
        (
            "suspended_run_following_a_task_started_elsewhere",
            set(
                set(
                    with("taskDefinition", Value::Null),
                    "taskArn",
                    json!("arn:aws:ecs:eu-west-1:123456789012:task/batch/abc"),
                ),
                "suspend",
                json!(true),
            ),
            "cannot be suspended; use stop",
        ),
        (
            "ttl_seconds_after_finished_over_a_year",
            with("ttlSecondsAfterFinished", json!(31_536_001)),
            "spec.ttlSecondsAfterFinished in body should be less than or equal to 31536000",
        ),
    ]
}

fn set(mut manifest: Value, key: &str, value: Value) -> Value {
    manifest["spec"][key] = value;
    manifest
}

pub fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = bad_manifests()
        .into_iter()
        .map(|(name, manifest, expected)| {
            case(format!("admission::rejects_{name}"), move |env| rejected(env, manifest, expected, api_resource()))
        })
        .collect();
    cases.push(case("admission::accepts_a_minimal_run_and_fills_defaults", accepts_minimal));
    cases.push(case("admission::rejects_spec_edits_but_not_label_edits", spec_is_immutable));
    cases.push(case("admission::kubectl_explain_describes_fields", kubectl_explain));
    cases
}

/// Creating `manifest` (of `resource`) is refused with 422 and a message containing `expected`.
pub async fn rejected(
    env: Arc<Env>,
    manifest: Value,
    expected: &'static str,
    resource: kube::api::ApiResource,
) -> anyhow::Result<()> {
    let mut manifest = manifest;
    manifest["metadata"]["name"] = json!(format!("bad-{}", uid_suffix()));
    // Sent as untyped JSON: most bad manifests do not even fit the Rust types.
    let api = kube::Api::<kube::api::DynamicObject>::namespaced_with(env.client.clone(), NAMESPACE, &resource);
    let object: kube::api::DynamicObject = serde_json::from_value(manifest)?;
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => bail!("the API server accepted it"),
        Err(kube::Error::Api(status)) => {
            ensure!(status.code == 422, "expected 422 Invalid, got {} {}", status.code, status.message);
            ensure!(status.message.contains(expected), "message does not contain {expected:?}: {}", status.message);
            Ok(())
        }
        Err(other) => Err(other.into()),
    }
}

fn api_resource() -> kube::api::ApiResource {
    kube::api::ApiResource::erase::<EcsTaskRun>(&())
}

fn uid_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

async fn accepts_minimal(env: Arc<Env>) -> anyhow::Result<()> {
    let mut manifest = valid();
    manifest["metadata"]["name"] = json!("minimal");
    let run: EcsTaskRun = serde_json::from_value(manifest)?;
    let api = env.runs(NAMESPACE);
    let created = api.create(&PostParams::default(), &run).await.context("a valid run was rejected")?;
    let stored: Value = serde_json::to_value(&created)?;
    ensure!(stored["spec"]["wait"]["for"] == "Stopped", "wait.for default: {}", stored["spec"]["wait"]);
    // Absent: Stop for a task ecsrun launches, Orphan for one it adopts (spec.taskArn).
    ensure!(stored["spec"].get("deletionPolicy").is_none(), "deletionPolicy defaulted: {}", stored["spec"]);
    ensure!(stored["spec"]["logs"]["tailLines"] == 20, "logs.tailLines default: {}", stored["spec"]);
    ensure!(stored["spec"]["successPolicy"] == "EssentialContainers", "successPolicy default: {}", stored["spec"]);
    ensure!(stored["spec"]["injectRunIdentity"] == true, "injectRunIdentity default: {}", stored["spec"]);
    Ok(())
}

async fn spec_is_immutable(env: Arc<Env>) -> anyhow::Result<()> {
    let mut manifest = valid();
    manifest["metadata"]["name"] = json!("immutable");
    let run: EcsTaskRun = serde_json::from_value(manifest)?;
    let api = env.runs(NAMESPACE);
    api.create(&PostParams::default(), &run).await?;
    let refused = |patch: Value, says: &'static str| {
        let api = api.clone();
        async move {
            match api.patch("immutable", &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => bail!("{patch} was accepted"),
                Err(kube::Error::Api(status)) => ensure!(
                    status.code == 422 && status.message.contains(says),
                    "{patch}: {} {}",
                    status.code,
                    status.message
                ),
                Err(other) => return Err(other.into()),
            }
            Ok(())
        }
    };
    for (field, value) in [
        ("cluster", json!("other")),
        ("taskDefinition", json!("transform:4")),
        ("wait", json!({"for": "Running"})),
        // Absent before: setting it is a change too.
        ("region", json!("eu-central-1")),
        ("stopReason", json!("changed my mind")),
    ] {
        refused(json!({"spec": {field: value}}), ecsrun::api::IMMUTABLE_SPEC).await?;
    }
    // Suspend may change either way (a queue such as Kueue toggles it).
    for suspend in [true, false] {
        api.patch("immutable", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"suspend": suspend}})))
            .await
            .with_context(|| format!("setting spec.suspend to {suspend} must be allowed"))?;
    }
    // Stopping is the one change, with its reason in the same update; it cannot be undone.
    api.patch(
        "immutable",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"stop": true, "stopReason": "e2e: no longer needed"}})),
    )
    .await
    .context("setting spec.stop must be allowed")?;
    refused(json!({"spec": {"stop": false}}), "stop cannot be undone").await?;
    refused(json!({"spec": {"stopReason": "again"}}), ecsrun::api::IMMUTABLE_SPEC).await?;
    let labels = json!({"metadata": {"labels": {"team": "data"}}});
    api.patch("immutable", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .context("label edits must be allowed")?;
    Ok(())
}

async fn kubectl_explain(env: Arc<Env>) -> anyhow::Result<()> {
    let kubeconfig = env.kubeconfig.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("kubectl")
            .env("KUBECONFIG", kubeconfig)
            .args(["explain", "etr.spec.networkConfiguration.awsvpcConfiguration.subnets"])
            .output()
    })
    .await?
    .context("running kubectl")?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "kubectl explain failed: {}", String::from_utf8_lossy(&output.stderr));
    ensure!(text.contains("DESCRIPTION") && text.to_lowercase().contains("subnet"), "no description: {text}");
    Ok(())
}
