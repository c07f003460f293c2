//! The `EcsTaskSchedule` API (`ecsrun.dev/v1alpha1`): an `EcsTaskRun` created on a cron schedule, as a
//! CronJob creates Jobs, with CronJob's fields where they fit and answers where CronJob's are known to
//! hurt (a repeated hour, an edited schedule, a long suspension, no next time in status).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::EcsTaskRunSpec;
use crate::describe::Describe;

/// Label on every run a schedule creates: the schedule's name (runs are also owned by it).
pub const SCHEDULE_LABEL: &str = "ecsrun.dev/schedule";
/// Annotation on every run a schedule creates: the slot it is for (RFC 3339), or the time of a manual
/// trigger.
pub const SCHEDULED_AT_ANNOTATION: &str = "ecsrun.dev/scheduled-at";
/// Annotation on a run created by `kubectl ecsrun schedule trigger` rather than by a slot: `manual`.
pub const TRIGGER_ANNOTATION: &str = "ecsrun.dev/trigger";
/// The longest schedule name: its runs are named `<schedule>-<unix minutes>` (up to 10 digits) and carry
/// the name in a label (63 characters at most).
pub const MAX_SCHEDULE_NAME: usize = 52;

/// Runs an ECS task on a cron schedule: each slot creates one `EcsTaskRun` from `runTemplate`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ecsrun.dev",
    version = "v1alpha1",
    kind = "EcsTaskSchedule",
    doc = "EcsTaskSchedule creates an EcsTaskRun from its runTemplate at every slot of a cron schedule, as a CronJob creates Jobs: one run per slot (named <schedule>-<slot in unix minutes>, so a restart or a second replica never creates two), a concurrency policy, a deadline for late slots, history limits, suspend, and the next slot in status.",
    plural = "ecstaskschedules",
    shortname = "ets",
    category = "ecsrun",
    namespaced,
    status = "EcsTaskScheduleStatus",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Time-Zone","type":"string","priority":1,"jsonPath":".spec.timeZone"}"#,
    printcolumn = r#"{"name":"Suspend","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Active","type":"integer","jsonPath":".status.activeCount"}"#,
    printcolumn = r#"{"name":"Last-Schedule","type":"date","jsonPath":".status.lastScheduleTime"}"#,
    printcolumn = r#"{"name":"Next","type":"string","jsonPath":".status.nextScheduleTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.runTemplate.spec.taskArn)")
        .message("a schedule launches tasks: runTemplate.spec.taskArn follows a task started elsewhere"),
    validation = Rule::new("!has(self.runTemplate.spec.stop) || !self.runTemplate.spec.stop")
        .message("runTemplate.spec.stop would stop every run at once; suspend the schedule instead")
)]
pub struct EcsTaskScheduleSpec {
    /// When runs are created: five cron fields (minute hour day-of-month month day-of-week, with `*`,
    /// lists, ranges, steps, names, `L`, `W` and `#`), or `@hourly`, `@daily`, `@weekly`, `@monthly`,
    /// `@yearly`. Read in `timeZone`; `TZ=` inside it is refused. Changing it starts from the change:
    /// slots before the edit are never run.
    #[schemars(length(min = 1, max = 255))]
    #[schemars(regex(
        pattern = r"^\s*(@(?i:yearly|annually|monthly|weekly|daily|hourly)|[^\s@=]+(\s+[^\s@=]+){4})\s*$"
    ))]
    #[x_kube(validation = Rule::new("!self.contains('TZ=')")
        .message("set timeZone instead of TZ= or CRON_TZ= in schedule"))]
    pub schedule: String,

    /// IANA time zone the schedule is read in, e.g. `Europe/Berlin`. Absent: UTC. A wall-clock time
    /// that happens twice when clocks go back runs once; one the clocks skip runs right after the jump;
    /// schedules of every hour or more often follow real time through both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$"))]
    pub time_zone: Option<String>,

    /// What a slot does while an earlier run is still active. `Allow`: runs overlap. `Forbid`: the slot
    /// is passed over. `Replace`: the active runs are deleted (their tasks stopped) and the new one created.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,

    /// How late a slot may still start, in seconds (at least 10). A slot missed by more (the controller
    /// down, the schedule suspended) is passed over. Absent: the latest missed slot always runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 31536000))]
    pub starting_deadline_seconds: Option<i64>,

    /// No new runs while true; active runs go on. On resume, at most the latest missed slot runs, and
    /// only within `startingDeadlineSeconds`.
    #[serde(default)]
    pub suspend: bool,

    /// Succeeded runs kept (the oldest deleted first). Default 3.
    #[serde(default = "three")]
    #[schemars(range(min = 0, max = 100))]
    pub successful_runs_history_limit: i32,

    /// Failed (or Unknown) runs kept. Default 1.
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 100))]
    pub failed_runs_history_limit: i32,

    /// The run each slot creates.
    pub run_template: RunTemplate,
}

fn three() -> i32 {
    3
}

fn one() -> i32 {
    1
}

/// What a slot does while earlier runs are active.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConcurrencyPolicy {
    #[default]
    Allow,
    Forbid,
    Replace,
}

/// The run a slot creates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct RunTemplate {
    /// Labels and annotations of the runs.
    #[serde(default, skip_serializing_if = "RunTemplateMetadata::is_empty")]
    pub metadata: RunTemplateMetadata,
    /// The runs' spec.
    pub spec: EcsTaskRunSpec,
}

/// Labels and annotations put on every run of the schedule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct RunTemplateMetadata {
    /// Labels of every run (ecsrun adds `ecsrun.dev/schedule`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = Describe("/additionalProperties", "The label's value."))]
    pub labels: BTreeMap<String, String>,
    /// Annotations of every run (ecsrun adds `ecsrun.dev/scheduled-at`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = Describe("/additionalProperties", "The annotation's value."))]
    pub annotations: BTreeMap<String, String>,
}

impl RunTemplateMetadata {
    fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.annotations.is_empty()
    }
}

/// What the controller last saw of the schedule. Written only by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EcsTaskScheduleStatus {
    /// The slot of the latest run created for a slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When the latest run that succeeded finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// The next slot; absent while suspended or when the schedule cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// Runs of the schedule not yet finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<ActiveRun>,
    /// How many runs are active, for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_count: Option<i32>,
    /// `schedule` and `timeZone` as last read: a change moves `scheduledSince`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_schedule: Option<String>,
    /// Slots after this instant are due: the creation, or the last edit of `schedule` or `timeZone`, so an
    /// edit never fires a slot from before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_since: Option<Time>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (the schedule is read and creating runs), Stalled (it cannot be read) and Suspended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// A run of the schedule that has not finished.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ActiveRun {
    /// The run's name.
    pub name: String,
    /// The run's uid.
    pub uid: String,
}

/// Where a schedule's run comes from, as its labels and annotations say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduleOrigin {
    /// Created for a slot of the schedule.
    Slot { schedule: String, slot: jiff::Timestamp },
    /// Created by `kubectl ecsrun schedule trigger` at `at` (None: unreadable).
    Manual { schedule: String, at: Option<jiff::Timestamp> },
}

impl ScheduleOrigin {
    /// The slot, for a slot's run.
    pub fn slot(&self) -> Option<jiff::Timestamp> {
        match self {
            ScheduleOrigin::Slot { slot, .. } => Some(*slot),
            ScheduleOrigin::Manual { .. } => None,
        }
    }
}

impl crate::EcsTaskRun {
    /// The schedule that created this run and for what; None for a run no schedule created (or whose slot
    /// annotation is not a timestamp, which a schedule never writes).
    pub fn schedule_origin(&self) -> Option<ScheduleOrigin> {
        let schedule = self.metadata.labels.as_ref()?.get(SCHEDULE_LABEL)?.clone();
        let annotations = self.metadata.annotations.as_ref();
        let at = annotations.and_then(|a| a.get(SCHEDULED_AT_ANNOTATION)).and_then(|at| at.parse().ok());
        if annotations.and_then(|a| a.get(TRIGGER_ANNOTATION)).is_some_and(|trigger| trigger == "manual") {
            return Some(ScheduleOrigin::Manual { schedule, at });
        }
        Some(ScheduleOrigin::Slot { schedule, slot: at? })
    }
}

impl EcsTaskSchedule {
    /// The name of the run for `slot`: `<schedule>-<slot in unix minutes>`, the same on every replica and
    /// after any restart, so creating it twice is refused by the API server (AlreadyExists).
    pub fn run_name_for_slot(&self, slot: jiff::Timestamp) -> String {
        format!("{}-{}", self.metadata.name.as_deref().unwrap_or_default(), slot.as_second().div_euclid(60))
    }

    /// The run this schedule creates, from `runTemplate`: owned by the schedule (deleting the schedule
    /// deletes its runs), labelled with its name, annotated with `scheduled_at` and, for `kubectl ecsrun
    /// schedule trigger`, as `manual`; a slot's run carries the controller's finalizer from the start.
    pub fn run(&self, name: String, scheduled_at: jiff::Timestamp, manual: bool) -> crate::EcsTaskRun {
        use kube::Resource as _;
        let template = &self.spec.run_template;
        let mut labels = template.metadata.labels.clone();
        labels.insert(SCHEDULE_LABEL.to_owned(), self.metadata.name.clone().unwrap_or_default());
        let mut annotations = template.metadata.annotations.clone();
        annotations.insert(SCHEDULED_AT_ANNOTATION.to_owned(), scheduled_at.to_string());
        if manual {
            annotations.insert(TRIGGER_ANNOTATION.to_owned(), "manual".to_owned());
        }
        let mut run = crate::EcsTaskRun::new(&name, template.spec.clone());
        run.metadata.namespace = self.metadata.namespace.clone();
        run.metadata.labels = Some(labels);
        run.metadata.annotations = Some(annotations);
        run.metadata.owner_references = self.controller_owner_ref(&()).map(|owner| vec![owner]);
        // Born with the finalizer: a slot's run deleted before the controller first saw it would otherwise
        // go at once, before the schedule recorded its slot, and the schedule would create it again.
        if !manual {
            run.metadata.finalizers = Some(vec![crate::FINALIZER.to_owned()]);
        }
        run
    }
}
