use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::api::{EcsRunPolicySpec, EcsTaskRunSpec};

fn policy(name: &str, spec: serde_json::Value) -> EcsRunPolicy {
    let spec: EcsRunPolicySpec = serde_json::from_value(spec).expect("policy spec");
    EcsRunPolicy::new(name, spec)
}

/// Team A: its clusters, families and roles in eu-west-1.
fn team_a() -> EcsRunPolicy {
    policy(
        "team-a",
        json!({
            "namespaceSelector": {"matchLabels": {"team": "a"}},
            "regions": ["eu-west-1"],
            "clusters": ["team-a-*", "arn:aws:ecs:eu-west-1:111122223333:cluster/team-a-*"],
            "taskDefinitionFamilies": ["team-a-*"],
            "credentials": {"assumeRoleArns": ["arn:aws:iam::111122223333:role/team-a-*"]},
            "roleOverrides": {"taskRoleArns": ["arn:aws:iam::111122223333:role/team-a-task-*"]},
            "launchTypes": ["FARGATE"],
            "ebsVolumes": {"roleArns": ["arn:aws:iam::111122223333:role/team-a-ebs"], "snapshotIds": ["snap-0a*"]},
            "limits": {"cpu": 2048, "memory": 4096, "tasks": 10, "timeout": "2h"}
        }),
    )
}

/// A run with one EBS volume made as `role` (from `snapshot`, if any).
fn with_volume(role: &str, snapshot: Option<&str>) -> EcsTaskRunSpec {
    let mut volume = json!({"roleArn": role, "sizeInGiB": 100});
    if let Some(snapshot) = snapshot {
        volume["snapshotId"] = json!(snapshot);
    }
    run(json!({"volumeConfigurations": [{"name": "scratch", "managedEBSVolume": volume}]}))
}

fn run(extra: serde_json::Value) -> EcsTaskRunSpec {
    let mut spec = json!({
        "cluster": "team-a-batch",
        "taskDefinition": "team-a-report:3",
        "credentials": {"assumeRoleArn": "arn:aws:iam::111122223333:role/team-a-runner"},
        "launchType": "FARGATE",
        "wait": {"timeout": "1h"}
    });
    for (key, value) in extra.as_object().expect("object") {
        spec[key] = value.clone();
    }
    serde_json::from_value(spec).expect("run spec")
}

fn rules(result: Result<(), Denial>) -> Vec<Rule> {
    match result {
        Ok(()) => vec![],
        Err(denial) => denial.violations.iter().map(|violation| violation.rule).collect(),
    }
}

#[test]
fn glob_patterns() {
    let cases = [
        ("team-a-*", "team-a-batch", true),
        ("team-a-*", "team-a-", true),
        ("team-a-*", "team-b-batch", false),
        ("team-a-*", "xteam-a-batch", false),
        ("eu-*", "eu-west-1", true),
        ("eu-west-?", "eu-west-1", true),
        ("eu-west-?", "eu-west-10", false),
        ("*", "anything:at/all", true),
        ("arn:aws:iam::111122223333:role/team-a-*", "arn:aws:iam::111122223333:role/team-a-runner", true),
        ("arn:aws:iam::111122223333:role/team-a-*", "arn:aws:iam::444455556666:role/team-a-runner", false),
        // A dot is a dot, a plus a plus: nothing but * and ? is special.
        ("role/a.b", "role/aXb", false),
        ("role/a+b", "role/a+b", true),
        ("batch", "Batch", false),
    ];
    for (pattern, value, expected) in cases {
        assert_eq!(matches(pattern, value), expected, "{pattern} ~ {value}");
    }
}

#[test]
fn task_definition_families() {
    let cases = [
        ("report", "report"),
        ("report:3", "report"),
        ("arn:aws:ecs:eu-west-1:111122223333:task-definition/report:3", "report"),
        ("arn:aws:ecs:eu-west-1:111122223333:task-definition/report", "report"),
    ];
    for (reference, expected) in cases {
        assert_eq!(family(reference), expected, "{reference}");
    }
}

#[test]
fn namespace_selection() {
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let by_expression = policy(
        "prod",
        json!({"namespaceSelector": {"matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["prod", "staging"]},
            {"key": "sandbox", "operator": "DoesNotExist"}
        ]}}),
    );
    let everyone = policy("everyone", json!({"namespaceSelector": {}}));
    let cases = [
        (&team_a(), labels(&[("team", "a")]), true),
        (&team_a(), labels(&[("team", "b")]), false),
        (&team_a(), labels(&[]), false),
        (&by_expression, labels(&[("tier", "prod")]), true),
        (&by_expression, labels(&[("tier", "prod"), ("sandbox", "yes")]), false),
        (&by_expression, labels(&[("tier", "dev")]), false),
        (&everyone, labels(&[]), true),
    ];
    for (policy, labels, expected) in cases {
        assert_eq!(selects(policy, &labels), expected, "{} {labels:?}", policy.name_any());
    }
    let policies = [everyone.clone(), team_a(), by_expression.clone()];
    let names: Vec<String> =
        selecting(&policies, &labels(&[("team", "a")])).iter().map(|policy| policy.name_any()).collect();
    assert_eq!(names, ["everyone", "team-a"]);
}

#[test]
fn what_one_policy_allows_and_refuses() {
    let a = team_a();
    let cases: Vec<(&str, EcsTaskRunSpec, Vec<Rule>)> = vec![
        ("within the policy", run(json!({})), vec![]),
        ("cluster by ARN", run(json!({"cluster": "arn:aws:ecs:eu-west-1:111122223333:cluster/team-a-x"})), vec![]),
        ("family by ARN", run(json!({"taskDefinition": "arn:aws:ecs:eu-west-1:1:task-definition/team-a-x:1"})), vec![]),
        ("another team's cluster", run(json!({"cluster": "team-b-batch"})), vec![Rule::Cluster]),
        ("another team's family", run(json!({"taskDefinition": "team-b-report"})), vec![Rule::TaskDefinitionFamily]),
        (
            "another team's role",
            run(json!({"credentials": {"assumeRoleArn": "arn:aws:iam::111122223333:role/team-b-runner"}})),
            vec![Rule::AssumeRole],
        ),
        ("the controller's identity", run(json!({"credentials": null})), vec![Rule::ControllerIdentity]),
        ("a Secret's keys", run(json!({"credentials": {"secretRef": {"name": "keys"}}})), vec![Rule::SecretRef]),
        (
            "its own external ID",
            run(json!({"credentials": {
                "assumeRoleArn": "arn:aws:iam::111122223333:role/team-a-runner", "externalId": "guessed"}})),
            vec![Rule::ExternalId],
        ),
        (
            "a task role override",
            run(json!({"overrides": {"taskRoleArn": "arn:aws:iam::111122223333:role/admin"}})),
            vec![Rule::TaskRole],
        ),
        (
            "an execution role override (none allowed)",
            run(json!({"overrides": {"executionRoleArn": "arn:aws:iam::111122223333:role/team-a-exec"}})),
            vec![Rule::ExecutionRole],
        ),
        ("EC2", run(json!({"launchType": "EC2"})), vec![Rule::LaunchType]),
        (
            "capacity providers are unrestricted here, and FARGATE_SPOT launches on FARGATE",
            run(json!({"launchType": null, "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT"}]})),
            vec![],
        ),
        // Launch types are governed by what the run really gets (issue 23, finding 3).
        (
            "no launch type: the cluster's default strategy",
            run(json!({"launchType": null})),
            vec![Rule::DefaultLaunchType],
        ),
        (
            "an Auto Scaling group's capacity provider launches on EC2",
            run(json!({"launchType": null, "capacityProviderStrategy": [
                {"capacityProvider": "FARGATE", "base": 1}, {"capacityProvider": "team-a-asg"}]})),
            vec![Rule::CapacityProviderLaunchType],
        ),
        (
            "a run following a task started elsewhere launches nothing",
            run(json!({"launchType": null, "taskArn": "arn:aws:ecs:eu-west-1:111122223333:task/team-a-batch/0a1b"})),
            vec![],
        ),
        ("an EBS volume as the team's role", with_volume("arn:aws:iam::111122223333:role/team-a-ebs", None), vec![]),
        (
            "an EBS volume from the team's snapshot",
            with_volume("arn:aws:iam::111122223333:role/team-a-ebs", Some("snap-0a12")),
            vec![],
        ),
        (
            "an EBS volume as another role",
            with_volume("arn:aws:iam::111122223333:role/admin", None),
            vec![Rule::EbsRole],
        ),
        (
            "an EBS volume from another team's snapshot",
            with_volume("arn:aws:iam::111122223333:role/team-a-ebs", Some("snap-0b34")),
            vec![Rule::EbsSnapshot],
        ),
        ("10 tasks", run(json!({"count": 10})), vec![]),
        ("11 tasks", run(json!({"count": 11})), vec![Rule::Tasks]),
        ("4 vCPU", run(json!({"overrides": {"cpu": "4 vCPU"}})), vec![Rule::Cpu]),
        ("2 vCPU", run(json!({"overrides": {"cpu": "2 vCPU"}})), vec![]),
        ("8 GB", run(json!({"overrides": {"memory": "8 GB"}})), vec![Rule::Memory]),
        (
            "a container over the memory limit",
            run(json!({"overrides": {"containerOverrides": [{"name": "app", "memory": 8192}]}})),
            vec![Rule::Memory],
        ),
        ("unreadable cpu", run(json!({"overrides": {"cpu": "lots"}})), vec![Rule::Cpu]),
        ("no timeout", run(json!({"wait": {}})), vec![Rule::Timeout]),
        ("a longer timeout", run(json!({"wait": {"timeout": "3h"}})), vec![Rule::Timeout]),
        (
            "everything at once",
            run(json!({"cluster": "x", "taskDefinition": "y", "credentials": null, "wait": {}})),
            vec![Rule::Cluster, Rule::TaskDefinitionFamily, Rule::ControllerIdentity, Rule::Timeout],
        ),
    ];
    for (case, spec, expected) in cases {
        assert_eq!(rules(check("team-a", "eu-west-1", &spec, &[&a])), expected, "{case}");
    }
    assert_eq!(rules(check("team-a", "us-east-1", &run(json!({})), &[&a])), vec![Rule::Region]);
}

#[test]
fn what_a_policy_without_launch_types_ebs_volumes_or_a_task_limit_says() {
    let open = policy(
        "open",
        json!({
            "namespaceSelector": {},
            "regions": ["*"],
            "clusters": ["*"],
            "taskDefinitionFamilies": ["*"],
            "credentials": {"assumeRoleArns": ["*"]}
        }),
    );
    let cases: Vec<(&str, EcsTaskRunSpec, Vec<Rule>)> = vec![
        ("the cluster's default strategy", run(json!({"launchType": null})), vec![]),
        (
            "an ASG provider",
            run(json!({"launchType": null, "capacityProviderStrategy": [{"capacityProvider": "asg"}]})),
            vec![],
        ),
        ("100 tasks", run(json!({"count": 100})), vec![]),
        // Where and as whom: nothing until listed.
        ("an EBS volume", with_volume("arn:aws:iam::111122223333:role/team-a-ebs", None), vec![Rule::EbsRole]),
        (
            "an EBS volume from a snapshot",
            with_volume("arn:aws:iam::111122223333:role/team-a-ebs", Some("snap-0a12")),
            vec![Rule::EbsRole, Rule::EbsSnapshot],
        ),
    ];
    for (case, spec, expected) in cases {
        assert_eq!(rules(check("team-a", "eu-west-1", &spec, &[&open])), expected, "{case}");
    }
}

#[test]
fn launch_type_volume_and_task_messages() {
    let a = team_a();
    let message = |spec| check_message(spec, &[&a]);
    assert_eq!(
        message(run(json!({"launchType": null}))),
        "spec.launchType must be set: without it or a capacityProviderStrategy the cluster's default strategy \
         chooses, which EcsRunPolicy team-a cannot check (launchTypes: FARGATE)"
    );
    assert_eq!(
        message(run(json!({"launchType": null, "capacityProviderStrategy": [
            {"capacityProvider": "FARGATE_SPOT"}, {"capacityProvider": "team-a-asg"}]}))),
        "spec.capacityProviderStrategy \"team-a-asg\" (EC2 or ECS Managed Instances, if listed in capacityProviders) \
         is not allowed by EcsRunPolicy team-a (launchTypes: FARGATE)"
    );
    assert_eq!(
        message(with_volume("arn:aws:iam::111122223333:role/admin", Some("snap-0b34"))),
        "spec.volumeConfigurations.managedEBSVolume.roleArn \"arn:aws:iam::111122223333:role/admin\" is not allowed \
         by EcsRunPolicy team-a (ebsVolumes.roleArns: arn:aws:iam::111122223333:role/team-a-ebs); \
         spec.volumeConfigurations.managedEBSVolume.snapshotId \"snap-0b34\" is not allowed by EcsRunPolicy team-a \
         (ebsVolumes.snapshotIds: snap-0a*)"
    );
    assert_eq!(message(run(json!({"count": 50}))), "spec.count exceeds the 10 tasks allowed by EcsRunPolicy team-a");
}

#[test]
fn log_tails_are_capped_by_the_highest_cap_and_uncapped_by_a_policy_without_one() {
    let capped = |name: &str, lines: Option<i32>| {
        let mut spec = json!({"namespaceSelector": {}});
        if let Some(lines) = lines {
            spec["logs"] = json!({"maxTailLines": lines});
        }
        policy(name, spec)
    };
    let (none, five, twenty, uncapped) =
        (capped("none", Some(0)), capped("five", Some(5)), capped("twenty", Some(20)), capped("open", None));
    assert_eq!(max_tail_lines(&[&none]), Some(0));
    assert_eq!(max_tail_lines(&[&none, &five]), Some(5));
    assert_eq!(max_tail_lines(&[&twenty, &five]), Some(20));
    assert_eq!(max_tail_lines(&[&five, &uncapped]), None);
    assert_eq!(max_tail_lines(&[]), Some(0), "a namespace no policy selects reads nothing");
}

#[test]
fn results_are_read_unless_every_selecting_policy_turns_them_off() {
    let with = |name: &str, results: Option<bool>| {
        let mut spec = json!({"namespaceSelector": {}});
        if let Some(results) = results {
            spec["logs"] = json!({"results": results});
        }
        policy(name, spec)
    };
    let (off, on, silent) = (with("off", Some(false)), with("on", Some(true)), with("silent", None));
    assert!(!results_allowed(&[&off]));
    assert!(results_allowed(&[&off, &on]));
    assert!(results_allowed(&[&silent]), "absent: allowed");
    assert!(!results_allowed(&[]), "a namespace no policy selects reads nothing");
}

#[test]
fn a_namespace_no_policy_selects_runs_nothing() {
    let denial = check("team-c", "eu-west-1", &run(json!({})), &[]).expect_err("denied");
    assert_eq!(denial.violations[0].rule, Rule::NoPolicy);
    assert!(denial.message().contains("no EcsRunPolicy selects namespace team-c"), "{}", denial.message());
}

#[test]
fn the_message_names_the_policy_the_field_and_what_is_allowed() {
    let a = team_a();
    let denial = check("team-a", "eu-west-1", &run(json!({"cluster": "team-b-batch"})), &[&a]).expect_err("denied");
    assert_eq!(
        denial.message(),
        "spec.cluster \"team-b-batch\" is not allowed by EcsRunPolicy team-a (clusters: \
         team-a-*, arn:aws:ecs:eu-west-1:111122223333:cluster/team-a-*)"
    );
}

#[test]
fn several_policies_add_up_field_by_field() {
    let a = team_a();
    // A shared policy for the same namespace: the shared cluster, the controller's identity, bigger tasks,
    // and no limit on capacity providers or launch types.
    let shared = policy(
        "shared",
        json!({
            "namespaceSelector": {},
            "regions": ["eu-*"],
            "clusters": ["shared"],
            "taskDefinitionFamilies": ["tools-*"],
            "credentials": {"controllerIdentity": true},
            "limits": {"cpu": 4096}
        }),
    );
    let both = [&a, &shared];
    let cases: Vec<(&str, &str, EcsTaskRunSpec, Vec<Rule>)> = vec![
        ("team A's run", "eu-west-1", run(json!({})), vec![]),
        ("shared cluster with team A's role", "eu-west-1", run(json!({"cluster": "shared"})), vec![]),
        ("shared family", "eu-west-1", run(json!({"taskDefinition": "tools-lint"})), vec![]),
        ("controller identity from shared", "eu-west-1", run(json!({"credentials": null})), vec![]),
        ("a region only shared allows", "eu-central-1", run(json!({})), vec![]),
        ("4 vCPU: shared's higher limit", "eu-west-1", run(json!({"overrides": {"cpu": "4096"}})), vec![]),
        ("8 vCPU: above both", "eu-west-1", run(json!({"overrides": {"cpu": "8 vCPU"}})), vec![Rule::Cpu]),
        // shared sets no memory or timeout limit: those are unbounded now.
        ("memory unbounded by shared", "eu-west-1", run(json!({"overrides": {"memory": "64 GB"}})), vec![]),
        ("timeout unbounded by shared", "eu-west-1", run(json!({"wait": {}})), vec![]),
        ("EC2: shared leaves launch types open", "eu-west-1", run(json!({"launchType": "EC2"})), vec![]),
        ("neither allows team B's cluster", "eu-west-1", run(json!({"cluster": "team-b"})), vec![Rule::Cluster]),
        ("nor us-east-1", "us-east-1", run(json!({})), vec![Rule::Region]),
    ];
    for (case, region, spec, expected) in cases {
        assert_eq!(rules(check("team-a", region, &spec, &both)), expected, "{case}");
    }
    let denial = check("team-a", "eu-west-1", &run(json!({"cluster": "team-b"})), &both).expect_err("denied");
    assert!(denial.message().contains("by EcsRunPolicies team-a, shared (clusters: "), "{}", denial.message());
}

#[test]
fn resource_sizes_in_either_form() {
    assert_eq!(cpu_units("1024"), Some(1024));
    assert_eq!(cpu_units("0.5 vCPU"), Some(512));
    assert_eq!(cpu_units("2 vcpu"), Some(2048));
    assert_eq!(memory_mib("2 GB"), Some(2048));
    assert_eq!(memory_mib("512"), Some(512));
    assert_eq!(memory_mib("a lot"), None);
    assert_eq!(cpu_units("-1 vCPU"), None);
}

#[test]
fn the_example_policy_allows_example_a_in_its_namespaces_only() {
    let policy: EcsRunPolicy =
        serde_yaml_ng::from_str(include_str!("../../../examples/policies/reports-team.yaml")).expect("policy");
    let run: crate::api::EcsTaskRun =
        serde_yaml_ng::from_str(include_str!("../../../examples/a-fargate-network-assume-role.yaml")).expect("run");
    let namespace = |name: &str| BTreeMap::from([("kubernetes.io/metadata.name".to_string(), name.to_string())]);
    assert!(selects(&policy, &namespace("default")));
    assert!(!selects(&policy, &namespace("payments")));
    assert_eq!(check("default", "eu-west-1", &run.spec, &[&policy]), Ok(()));
    let mut elsewhere = run.spec.clone();
    elsewhere.cluster = "payments".into();
    assert_eq!(rules(check("default", "eu-west-1", &elsewhere, &[&policy])), vec![Rule::Cluster]);
}

#[test]
fn a_template_is_held_to_the_same_families_roles_and_limits() {
    let template = |edits: serde_json::Value| {
        let mut template = json!({
            "family": "team-a-etl", "cpu": "1024", "memory": "2048",
            "containerDefinitions": [{"name": "app", "image": "etl:1"}]
        });
        for (key, value) in edits.as_object().expect("object") {
            template[key] = value.clone();
        }
        let mut spec = run(json!({"taskDefinitionTemplate": template}));
        spec.task_definition = None;
        spec
    };
    let policies = [team_a()];
    let policies: Vec<&EcsRunPolicy> = policies.iter().collect();
    let check = |spec: EcsTaskRunSpec| rules(check("team-a", "eu-west-1", &spec, &policies));
    assert_eq!(check(template(json!({}))), vec![], "within team A's policy");
    assert_eq!(check(template(json!({"family": "team-b-etl"}))), vec![Rule::TaskDefinitionFamily]);
    assert_eq!(
        check(template(json!({"taskRoleArn": "arn:aws:iam::111122223333:role/admin"}))),
        vec![Rule::TemplateTaskRole]
    );
    assert_eq!(
        check(template(json!({"executionRoleArn": "arn:aws:iam::111122223333:role/admin"}))),
        vec![Rule::TemplateExecutionRole]
    );
    assert_eq!(check(template(json!({"cpu": "4 vCPU"}))), vec![Rule::TemplateCpu]);
    assert_eq!(
        check(template(
            json!({"containerDefinitions": [{"name": "app", "image": "etl:1", "memoryReservation": 8192}]})
        )),
        vec![Rule::TemplateMemory]
    );
    let denial = check_message(template(json!({"memory": "8 GB"})), &policies);
    assert_eq!(denial, "spec.taskDefinitionTemplate.memory exceeds the 4096 MiB allowed by EcsRunPolicy team-a");
}

fn check_message(spec: EcsTaskRunSpec, policies: &[&EcsRunPolicy]) -> String {
    match check("team-a", "eu-west-1", &spec, policies) {
        Ok(()) => String::new(),
        Err(denial) => denial.message(),
    }
}

/// Issue 35, finding 6: what a run reaches beyond its roles. Network lists restrict nothing until set;
/// everything else is refused until a policy allows it.
#[test]
fn what_a_run_reaches_beyond_its_roles_is_refused_until_allowed() {
    let a = team_a();
    let allowing = policy(
        "reach",
        json!({
            "namespaceSelector": {},
            "regions": ["eu-west-1"],
            "clusters": ["team-a-*"],
            "taskDefinitionFamilies": ["team-a-*"],
            "credentials": {"assumeRoleArns": ["arn:aws:iam::111122223333:role/team-a-*"]},
            "network": {"subnets": ["subnet-0a*"], "securityGroups": ["sg-0a*"], "publicIp": true},
            "privileges": {"executeCommand": true, "placement": true, "hostNetwork": true, "hostVolumes": true,
                           "efsFileSystems": ["fs-0a*"],
                           "secretSources": ["arn:aws:secretsmanager:eu-west-1:111122223333:secret:team-a/*",
                                             "arn:aws:s3:::team-a/*"]},
            "limits": {"gpus": 1, "ephemeralStorageGiB": 50}
        }),
    );
    let network = |subnet: &str, group: &str, public: &str| json!({"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group], "assignPublicIp": public}});
    let template = |edits: serde_json::Value| {
        let mut template = json!({"family": "team-a-t", "networkMode": "bridge",
                                  "containerDefinitions": [{"name": "app", "image": "busybox"}]});
        for (key, value) in edits.as_object().expect("object") {
            if key == "container" {
                for (key, value) in value.as_object().expect("object") {
                    template["containerDefinitions"][0][key] = value.clone();
                }
            } else {
                template[key] = value.clone();
            }
        }
        json!({"taskDefinition": null, "launchType": null,
               "capacityProviderStrategy": [{"capacityProvider": "FARGATE"}], "taskDefinitionTemplate": template})
    };
    let gpus = |count: &str| json!([{"type": "GPU", "value": count}]);
    let cases: Vec<(&str, serde_json::Value, Vec<Rule>)> = vec![
        ("private, anywhere", json!({"networkConfiguration": network("subnet-0a1", "sg-0a1", "DISABLED")}), vec![]),
        (
            "a public IP",
            json!({"networkConfiguration": network("subnet-0a1", "sg-0a1", "ENABLED")}),
            vec![Rule::PublicIp],
        ),
        ("ECS Exec", json!({"enableExecuteCommand": true}), vec![Rule::ExecuteCommand]),
        ("placement", json!({"placementConstraints": [{"type": "distinctInstance"}]}), vec![Rule::Placement]),
        ("a placement strategy", json!({"placementStrategy": [{"type": "random"}]}), vec![Rule::Placement]),
        ("the host's network", template(json!({"networkMode": "host"})), vec![Rule::HostNetwork]),
        (
            "a host path",
            template(json!({"volumes": [{"name": "root", "host": {"sourcePath": "/"}}]})),
            vec![Rule::HostVolume],
        ),
        ("a Docker scratch volume", template(json!({"volumes": [{"name": "scratch", "host": {}}]})), vec![]),
        (
            "an EFS file system",
            template(json!({"volumes": [{"name": "shared", "efsVolumeConfiguration": {"fileSystemId": "fs-0b2"}}]})),
            vec![Rule::EfsFileSystem],
        ),
        (
            "any secret, no list",
            template(
                json!({"container": {"secrets": [{"name": "DB", "valueFrom": "arn:aws:ssm:eu-west-1:1:parameter/x"}]}}),
            ),
            vec![],
        ),
        ("GPUs, no limit", template(json!({"container": {"resourceRequirements": gpus("4")}})), vec![]),
    ];
    for (case, extra, expected) in &cases {
        assert_eq!(rules(check("team-a", "eu-west-1", &run(extra.clone()), &[&a])), *expected, "{case} (team-a)");
    }
    let cases: Vec<(&str, serde_json::Value, Vec<Rule>)> = vec![
        (
            "all allowed",
            json!({"networkConfiguration": network("subnet-0a1", "sg-0a1", "ENABLED"),
                               "enableExecuteCommand": true}),
            vec![],
        ),
        (
            "another team's subnet and group",
            json!({"networkConfiguration": network("subnet-0b1", "sg-0b1", "DISABLED")}),
            vec![Rule::Subnet, Rule::SecurityGroup],
        ),
        (
            "another team's secret and environment file",
            template(json!({"container": {
                "secrets": [{"name": "DB", "valueFrom": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:team-b/db"}],
                "environmentFiles": [{"value": "arn:aws:s3:::team-b/job.env", "type": "s3"}]}})),
            vec![Rule::Secret, Rule::TemplateEnvironmentFile],
        ),
        (
            "another team's log secret",
            template(json!({"container": {"logConfiguration": {"logDriver": "splunk",
                "secretOptions": [{"name": "token", "valueFrom": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:team-b/t"}]}}})),
            vec![Rule::Secret],
        ),
        (
            "an override's environment file",
            json!({"overrides": {"containerOverrides": [{"name": "app",
                "environmentFiles": [{"value": "arn:aws:s3:::team-b/job.env", "type": "s3"}]}]}}),
            vec![Rule::EnvironmentFile],
        ),
        ("two GPUs", template(json!({"container": {"resourceRequirements": gpus("2")}})), vec![Rule::TemplateGpus]),
        (
            "an override's GPUs",
            json!({"overrides": {"containerOverrides": [{"name": "app", "resourceRequirements": gpus("2")}]}}),
            vec![Rule::Gpus],
        ),
        (
            "100 GiB of storage",
            json!({"overrides": {"ephemeralStorage": {"sizeInGiB": 100}}}),
            vec![Rule::EphemeralStorage],
        ),
        (
            "a template's 100 GiB",
            template(json!({"ephemeralStorage": {"sizeInGiB": 100}})),
            vec![Rule::TemplateEphemeralStorage],
        ),
    ];
    for (case, extra, expected) in &cases {
        assert_eq!(rules(check("team-a", "eu-west-1", &run(extra.clone()), &[&allowing])), *expected, "{case} (reach)");
    }
    assert_eq!(
        check_message(run(json!({"enableExecuteCommand": true})), &[&a]),
        "spec.enableExecuteCommand (ECS Exec) is not allowed by EcsRunPolicy team-a (privileges.executeCommand)"
    );
    assert_eq!(
        check_message(run(json!({"networkConfiguration": network("subnet-0b1", "sg-0a1", "DISABLED")})), &[&allowing]),
        "spec.networkConfiguration.awsvpcConfiguration.subnets \"subnet-0b1\" is not allowed by EcsRunPolicy reach \
         (network.subnets: subnet-0a*)"
    );
}

/// Issue 35, finding 6: a capacity provider other than Fargate's may be ECS Managed Instances, which a
/// policy cannot tell from EC2: under `launchTypes` it needs EC2 allowed and its name listed.
#[test]
fn a_capacity_provider_other_than_fargates_needs_ec2_and_its_name_listed() {
    let ec2 = |providers: serde_json::Value| {
        let mut spec = json!({"namespaceSelector": {}, "regions": ["eu-west-1"], "clusters": ["team-a-*"],
                              "taskDefinitionFamilies": ["team-a-*"], "launchTypes": ["EC2", "FARGATE"],
                              "credentials": {"assumeRoleArns": ["arn:aws:iam::111122223333:role/team-a-*"]}});
        if !providers.is_null() {
            spec["capacityProviders"] = providers;
        }
        policy("ec2", spec)
    };
    let on =
        |provider: &str| run(json!({"launchType": null, "capacityProviderStrategy": [{"capacityProvider": provider}]}));
    assert_eq!(
        rules(check("team-a", "eu-west-1", &on("team-a-asg"), &[&ec2(json!(null))])),
        vec![Rule::CapacityProviderLaunchType]
    );
    assert_eq!(
        rules(check("team-a", "eu-west-1", &on("team-a-asg"), &[&ec2(json!(["team-a-*", "FARGATE*"]))])),
        vec![]
    );
    assert_eq!(rules(check("team-a", "eu-west-1", &on("FARGATE_SPOT"), &[&ec2(json!(null))])), vec![]);
}
