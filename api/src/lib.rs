//! The `ecsrun.dev/v1alpha1` API: [`EcsTaskRun`] (one ECS task run) and [`EcsRunPolicy`] (what the runs of
//! a set of namespaces may use). The controller, its tests and tools share these types; `crdgen` turns
//! them into the CRDs committed in `crds/` and the Helm chart.

mod policy;
mod run;
mod template;

pub use policy::*;
pub use run::*;
pub use template::*;

/// Every CRD of the API as (file name, YAML), exactly as committed in `crds/` and the Helm chart.
pub fn crds() -> Result<Vec<(&'static str, String)>, serde_yaml_ng::Error> {
    use kube::CustomResourceExt;
    Ok(vec![
        ("ecstaskruns.ecsrun.dev.yaml", serde_yaml_ng::to_string(&EcsTaskRun::crd())?),
        ("ecsrunpolicies.ecsrun.dev.yaml", serde_yaml_ng::to_string(&EcsRunPolicy::crd())?),
    ])
}
