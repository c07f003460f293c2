//! The simulator's tenants: two teams' namespaces, each with its EcsRunPolicy and its own cluster, and a
//! policy both share for the `shared` cluster, enforced on every replica. Users now and then ask for
//! what their policies forbid (the other team's cluster, more tasks than allowed, the cluster's default
//! launch type) or create a run that adopts a task on the shared cluster, perhaps the other team's, and
//! stops it. None of that may reach ECS: the replicas' acting calls are recorded for the invariants.

use std::collections::BTreeMap;

use chacha20::ChaCha8Rng;
use ecsrun::api::{EcsRunPolicy, EcsRunPolicySpec, EcsTaskRunSpec};
use ecsrun::ecs::{Actor, Request};
use ecsrun::policy::Mode;
use ecsrun::tenancy::Tenancy;
use rand::RngExt;

pub const NAMESPACES: [&str; 2] = ["team-a", "team-b"];
/// Where runs of the simulator launch (the fake ECS's default region).
pub const REGION: &str = "eu-west-1";

/// The policies every replica enforces.
pub fn policies() -> Vec<EcsRunPolicy> {
    let policy = |name: &str, spec: serde_json::Value| {
        let spec: EcsRunPolicySpec = serde_json::from_value(spec).expect("the simulator's policies are valid");
        EcsRunPolicy::new(name, spec)
    };
    let team = |team: &str, cluster: &str| {
        serde_json::json!({
            "namespaceSelector": {"matchLabels": {"team": team}},
            "regions": [REGION],
            "clusters": [cluster],
            "taskDefinitionFamilies": ["job"],
            "credentials": {"controllerIdentity": true},
            "launchTypes": ["FARGATE"],
            "limits": {"tasks": 3}
        })
    };
    vec![
        policy("team-a", team("a", "demo")),
        policy("team-b", team("b", "batch")),
        // Both teams on the shared cluster: the policies add up there.
        policy(
            "shared",
            serde_json::json!({
                "namespaceSelector": {},
                "regions": [REGION],
                "clusters": ["shared"],
                "taskDefinitionFamilies": ["job"],
                "credentials": {"controllerIdentity": true},
                "launchTypes": ["FARGATE"],
                "limits": {"tasks": 3}
            }),
        ),
    ]
}

/// The namespaces with their labels.
pub fn namespaces() -> Vec<(&'static str, BTreeMap<String, String>)> {
    NAMESPACES
        .iter()
        .map(|namespace| {
            let team = namespace.trim_start_matches("team-");
            (*namespace, BTreeMap::from([("team".to_owned(), team.to_owned())]))
        })
        .collect()
}

/// What a replica's shell checks launches against.
pub fn tenancy() -> Tenancy {
    let namespaces = namespaces();
    let labelled: Vec<(&str, BTreeMap<String, String>)> = namespaces.iter().map(|(n, l)| (*n, l.clone())).collect();
    Tenancy::fixed(Mode::Enforce, policies(), &labelled, "ecsrun:sim:{namespace}")
}

/// The cluster a namespace's runs use, and the other team's.
pub fn home(namespace: &str) -> (&'static str, &'static str) {
    if namespace == "team-a" { ("demo", "batch") } else { ("batch", "demo") }
}

/// What runs that read results ask for: the result every simulated task publishes, its own id.
const RESULTS: &str = "results:\n  containers: [app]\n  required: [task]\n";

pub fn spec(cluster: &str, extra: &str) -> EcsTaskRunSpec {
    let yaml = format!(
        "cluster: {cluster}\ntaskDefinition: job\nlaunchType: FARGATE\nnetworkConfiguration:\n  \
         awsvpcConfiguration:\n    subnets: [subnet-1]\n{extra}"
    );
    serde_yaml_ng::from_str(&yaml).expect("the simulator's specs are valid")
}

/// A run a user of `namespace` creates: its name (with `serial`) and spec. `shared_tasks`: tasks running on
/// the shared cluster, which a run may adopt.
pub fn new_run(
    rng: &mut ChaCha8Rng,
    namespace: &str,
    serial: usize,
    shared_tasks: &[String],
) -> (String, EcsTaskRunSpec) {
    let (own, other) = home(namespace);
    let cluster = match rng.random_range(0..10) {
        0..3 => "shared",
        _ => own,
    };
    match rng.random_range(0..14) {
        // Runs whose tasks publish results (each task its own id): a retried run's and an index's are
        // their current task's.
        0 => (format!("retried-{serial}"), spec(cluster, &format!("retryPolicy:\n  backoffLimit: 2\n{RESULTS}"))),
        1 => (format!("deadline-{serial}"), spec(cluster, "wait:\n  timeout: 3m\n")),
        2 => {
            (format!("batch-{serial}"), spec(cluster, &format!("count: 3\nretryPolicy:\n  backoffLimit: 1\n{RESULTS}")))
        }
        // A name long enough that ecsrun's StopTask reasons would pass ECS's 255 characters.
        3 => (format!("{}-{serial}", "long".repeat(55)), spec(cluster, "")),
        // What the policies forbid: refused before any AWS call.
        4 => (format!("elsewhere-{serial}"), spec(other, "")),
        5 => (format!("too-many-{serial}"), spec(cluster, "count: 4\n")),
        6 => {
            let mut default_launch = spec(cluster, "");
            default_launch.launch_type = None;
            (format!("default-launch-{serial}"), default_launch)
        }
        // A task on the shared cluster, perhaps another team's, followed and (now and then) stopped.
        7..9 if !shared_tasks.is_empty() => {
            let task_arn = &shared_tasks[rng.random_range(0..shared_tasks.len())];
            let stop = if rng.random_range(0..2) == 0 { "stop: true\n" } else { "" };
            let yaml = format!("cluster: shared\ntaskArn: {task_arn}\n{stop}");
            (format!("adopt-{serial}"), serde_yaml_ng::from_str(&yaml).expect("an adopting spec is valid"))
        }
        // Left running when deleted: no one but the user stops its task.
        12 => (format!("kept-{serial}"), spec(cluster, "deletionPolicy: Orphan\n")),
        // Deleted by ecsrun once finished.
        13 => (format!("expiring-{serial}"), spec(cluster, "ttlSecondsAfterFinished: 0\n")),
        // A revision of the shared family registered from this namespace's template: the other team's
        // runs naming `job` bare must not launch it.
        11 => {
            let yaml = format!(
                "cluster: {cluster}\nlaunchType: FARGATE\nnetworkConfiguration:\n  awsvpcConfiguration:\n    \
                 subnets: [subnet-1]\ntaskDefinitionTemplate:\n  family: job\n  networkMode: awsvpc\n  \
                 requiresCompatibilities: [FARGATE]\n  cpu: \"256\"\n  memory: \"512\"\n  containerDefinitions:\n  \
                 - name: app\n    image: {namespace}/job:1\n"
            );
            (format!("template-{serial}"), serde_yaml_ng::from_str(&yaml).expect("a template spec is valid"))
        }
        _ => (format!("run-{serial}"), spec(cluster, "")),
    }
}

/// A call a replica sent that acts on ECS, as the tenancy invariants need it.
#[derive(Clone, Debug)]
pub enum Act {
    /// RunTask: the run's namespace and uid (from its tags) and the spec the shell launched.
    Launch { namespace: String, uid: Option<String>, spec: Box<EcsTaskRunSpec> },
    /// StopTask on behalf of a run of `namespace`.
    Stop { namespace: String, task_arn: String },
}

impl Act {
    pub fn of(request: &Request<'_>) -> Option<Self> {
        match request {
            Request::RunTask(launch) => Some(Act::Launch {
                namespace: launch.actor.namespace.clone(),
                uid: launch.tags.iter().find(|(k, _)| k == "ecsrun.dev/uid").map(|(_, v)| v.clone()),
                spec: Box::new(launch.spec.clone()),
            }),
            Request::StopTask { task_arn, actor: Actor { namespace, .. }, .. } => {
                Some(Act::Stop { namespace: namespace.clone(), task_arn: (*task_arn).to_owned() })
            }
            _ => None,
        }
    }
}
