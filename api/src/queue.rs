//! Queueing under Kueue: the labels a run (or a schedule's `runTemplate`) is queued by, as Kueue's own
//! integrations read them, and where a queued run stands in its status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The LocalQueue a run waits in. A run with this label launches nothing until Kueue admits its Workload.
pub const QUEUE_NAME_LABEL: &str = "kueue.x-k8s.io/queue-name";
/// The WorkloadPriorityClass of a queued run's Workload.
pub const PRIORITY_CLASS_LABEL: &str = "kueue.x-k8s.io/priority-class";

/// A queued run's Workload and its admission.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    /// The LocalQueue (`kueue.x-k8s.io/queue-name`).
    pub local_queue: String,
    /// The Workload ecsrun created for the run, in the run's namespace.
    pub workload: String,
    /// Whether Kueue has admitted the Workload: the run's tasks may run.
    pub admitted: bool,
    /// The ClusterQueue that admitted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_queue: Option<String>,
    /// The ResourceFlavor the run's vCPU was admitted in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
    /// When the Workload was last admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admitted_at: Option<Time>,
}
