//! The committed CRDs are what the Rust types generate, and its CEL rules hold on their own.

use ecsrun::api::{Credentials, EcsTaskRunSpec};
use serde_json::json;

#[test]
fn committed_crds_match_the_rust_types() {
    for (file, generated) in ecsrun::api::crds().expect("CRDs serialise") {
        let committed = std::fs::read_to_string(format!("{}/../crds/{file}", env!("CARGO_MANIFEST_DIR")))
            .unwrap_or_else(|error| panic!("crds/{file}: {error}; generate it with hack/crdgen"));
        assert!(generated == committed, "crds/{file} is stale: regenerate it with\n  hack/crdgen");
        let in_chart = std::fs::read_to_string(format!("{}/../charts/ecsrun/crds/{file}", env!("CARGO_MANIFEST_DIR")))
            .unwrap_or_else(|error| panic!("charts/ecsrun/crds/{file}: {error}; generate it with hack/crdgen"));
        assert!(
            in_chart == committed,
            "charts/ecsrun/crds/{file} differs from crds/: regenerate both with hack/crdgen"
        );
    }
}

fn base() -> serde_json::Value {
    json!({"cluster": "demo", "taskDefinition": "report:3"})
}

fn merged(extra: serde_json::Value) -> serde_json::Value {
    let mut spec = base();
    for (key, value) in extra.as_object().unwrap() {
        spec[key] = value.clone();
    }
    spec
}

/// Spec-level CEL rules, evaluated locally with kube's CEL support; the end-to-end tests check the
/// same manifests (and the OpenAPI limits) at admission on a real API server.
#[test]
fn spec_rules() {
    let cases = [
        ("minimal", merged(json!({})), None),
        ("launchType alone", merged(json!({"launchType": "FARGATE"})), None),
        (
            "capacity providers alone",
            merged(json!({"capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT"}]})),
            None,
        ),
        (
            "both launchType and capacity providers",
            merged(json!({"launchType": "FARGATE", "capacityProviderStrategy": [{"capacityProvider": "FARGATE"}]})),
            Some("mutually exclusive"),
        ),
    ];
    for (case, spec, error) in cases {
        let result = EcsTaskRunSpec::validate_cel(&spec, None);
        match error {
            None => assert!(result.is_ok(), "{case}: {result:?}"),
            Some(expected) => {
                let message = format!("{:?}", result.expect_err(case));
                assert!(message.contains(expected), "{case}: {message}");
            }
        }
    }
}

/// The immutability rules are generated from the schema's field list (the API server evaluates them: the
/// end-to-end admission tests edit fields): every field but `stop`, `stopReason`, `suspend` and
/// `ttlSecondsAfterFinished` is held unchanged.
#[test]
fn every_spec_field_but_stop_suspend_and_the_ttl_is_immutable() {
    let (_, yaml) = ecsrun::api::crds().expect("CRDs serialise").into_iter().next().expect("EcsTaskRun's CRD");
    let crd: serde_json::Value = serde_yaml_ng::from_str(&yaml).expect("CRD YAML");
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let immutable: Vec<&str> = spec["x-kubernetes-validations"]
        .as_array()
        .expect("spec rules")
        .iter()
        .filter(|rule| rule["message"] == ecsrun::api::IMMUTABLE_SPEC)
        .filter_map(|rule| rule["rule"].as_str())
        .collect();
    assert_eq!(immutable.len(), 2, "{immutable:?}");
    let fields = spec["properties"].as_object().expect("spec properties");
    assert!(fields.len() > 25, "{} fields", fields.len());
    for field in fields.keys() {
        let held = format!("self.{field} == oldSelf.{field}");
        match field.as_str() {
            "stop" | "suspend" | "ttlSecondsAfterFinished" => {
                assert!(!immutable[0].contains(&held), "spec.{field} is held")
            }
            // Changes only in the update that sets stop.
            "stopReason" => assert!(immutable[1].contains(&held) && immutable[1].contains("self.stop")),
            _ => assert!(immutable[0].contains(&held), "spec.{field} is not held"),
        }
    }
    // Stopping cannot be undone (a rule of the type itself).
    let (stopped, running) = (merged(json!({"stop": true})), base());
    let message = format!("{:?}", EcsTaskRunSpec::validate_cel(&running, Some(&stopped)).unwrap_err());
    assert!(message.contains("stop cannot be undone"), "{message}");
    assert!(EcsTaskRunSpec::validate_cel(&stopped, Some(&running)).is_ok());
}

#[test]
fn credentials_need_exactly_one_source() {
    let role = json!({"assumeRoleArn": "arn:aws:iam::123456789012:role/runner"});
    let secret = json!({"secretRef": {"name": "aws"}});
    let both = json!({"assumeRoleArn": "arn:aws:iam::123456789012:role/runner", "secretRef": {"name": "aws"}});
    assert!(Credentials::validate_cel(&role, None).is_ok());
    assert!(Credentials::validate_cel(&secret, None).is_ok());
    assert!(Credentials::validate_cel(&both, None).is_err());
    assert!(Credentials::validate_cel(&json!({}), None).is_err());
}

/// `kubectl explain` shows each field's description: every field of every CRD has one, array items and
/// map values included, and the kinds open with what they are rather than kube-derive's placeholder.
#[test]
fn every_crd_field_has_a_description() {
    fn walk(schema: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        let described = schema["description"].as_str().is_some_and(|text| !text.trim().is_empty());
        if !described {
            missing.push(path.to_owned());
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, property) in properties {
                walk(property, &format!("{path}.{name}"), missing);
            }
        }
        if schema["items"].is_object() {
            walk(&schema["items"], &format!("{path}[]"), missing);
        }
        if schema["additionalProperties"].is_object() {
            walk(&schema["additionalProperties"], &format!("{path}{{*}}"), missing);
        }
    }
    for (file, yaml) in ecsrun::api::crds().expect("CRDs serialise") {
        let crd: serde_json::Value = serde_yaml_ng::from_str(&yaml).expect("CRD YAML");
        let kind = crd["spec"]["names"]["kind"].as_str().expect("kind").to_owned();
        for version in crd["spec"]["versions"].as_array().expect("versions") {
            let root = &version["schema"]["openAPIV3Schema"];
            let mut missing = Vec::new();
            walk(root, &kind, &mut missing);
            // metadata is Kubernetes' own; the API server describes it.
            missing.retain(|path| path != &format!("{kind}.metadata"));
            assert!(
                missing.is_empty(),
                "{file}: {} fields without a description:\n  {}",
                missing.len(),
                missing.join("\n  ")
            );
            let opening = root["description"].as_str().unwrap_or_default();
            assert!(!opening.contains("Auto-generated derived type"), "{file}: kube-derive's placeholder: {opening}");
        }
    }
}
