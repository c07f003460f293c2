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

#[test]
fn spec_is_immutable() {
    let old = merged(json!({"launchType": "FARGATE"}));
    assert!(EcsTaskRunSpec::validate_cel(&old, Some(&old)).is_ok());
    let new = merged(json!({"launchType": "EC2"}));
    let message = format!("{:?}", EcsTaskRunSpec::validate_cel(&new, Some(&old)).unwrap_err());
    assert!(message.contains("spec is immutable"), "{message}");
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
