//! A schedule's run keeps its slot's name until the schedule has recorded the slot.
//!
//! The schedule creates a slot's run, then records the slot in its status; that write can fail, lose its
//! answer or wait behind a crash. A run gone before then (its TTL, a user's delete, history pruning)
//! would leave the slot looking untaken, and the schedule would create its run a second time. So neither
//! TTL deletion nor the finalizer lets such a run go: it stays, under its slot's name, until the schedule
//! records the slot (or the schedule is gone).

use jiff::Timestamp;
use kube::Client;
use kube::api::Api;

use super::Error;
use crate::api::{EcsTaskRun, EcsTaskSchedule, SCHEDULE_LABEL, SCHEDULED_AT_ANNOTATION, TRIGGER_ANNOTATION};

/// The schedule that created `run` for a slot its status does not record yet. None: no such schedule
/// (not a schedule's run, a manual trigger, the schedule gone or created again under its name), so the
/// run may go.
pub(super) async fn slot_unrecorded(
    client: &Client,
    namespace: &str,
    run: &EcsTaskRun,
) -> Result<Option<String>, Error> {
    let metadata = &run.metadata;
    let Some(schedule) = metadata.labels.as_ref().and_then(|labels| labels.get(SCHEDULE_LABEL)) else {
        return Ok(None);
    };
    let annotations = metadata.annotations.clone().unwrap_or_default();
    if annotations.get(TRIGGER_ANNOTATION).is_some_and(|trigger| trigger == "manual") {
        return Ok(None);
    }
    let Some(slot) = annotations.get(SCHEDULED_AT_ANNOTATION).and_then(|at| at.parse::<Timestamp>().ok()) else {
        return Ok(None);
    };
    let schedules: Api<EcsTaskSchedule> = Api::namespaced(client.clone(), namespace);
    let Some(found) = schedules.get_opt(schedule).await.map_err(Error::Kube)? else { return Ok(None) };
    let owner = metadata.owner_references.iter().flatten().any(|owner| Some(&owner.uid) == found.metadata.uid.as_ref());
    let recorded = found.status.and_then(|status| status.last_schedule_time).is_some_and(|last| last.0 >= slot);
    Ok((owner && !recorded).then(|| schedule.clone()))
}
