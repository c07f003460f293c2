//! A schedule's run keeps its slot's name until no creation of the slot's run can land any more.
//!
//! The schedule creates a slot's run, then records the slot in its status; that write can fail, lose its
//! answer or wait behind a crash. A run gone before then (its TTL, a user's delete, history pruning)
//! would leave the slot looking untaken, and the schedule would create its run a second time. So neither
//! TTL deletion nor the finalizer lets such a run go: it stays, under its slot's name, until the schedule
//! records the slot (or the schedule is gone).
//!
//! Even then a creation may still be on its way: a schedule reconcile that found the name free just
//! before the run was created sends its create, which reaches the API server within that reconcile's
//! timeout. So the finalizer also keeps the name until `SLOT_SETTLE` after the run's creation.

use std::time::Duration;

use jiff::Timestamp;
use kube::Client;
use kube::api::Api;

use super::Error;
use super::error::not_found;
use crate::api::{EcsTaskRun, EcsTaskSchedule, ScheduleOrigin};
use crate::schedule::shell::SLOT_SETTLE;

/// Why a slot's run being deleted is kept.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SlotHold {
    /// Its schedule (named) has not recorded the slot.
    Unrecorded(String),
    /// Recorded; a creation may still land for this long.
    Settling(Duration),
}

/// Whether a slot's run must keep its name yet, and why, at `now`. None: it may go (not a schedule's
/// run, a manual trigger, the schedule gone or created again under its name, or the slot recorded and
/// settled).
pub(super) async fn slot_hold(
    client: &Client,
    namespace: &str,
    run: &EcsTaskRun,
    now: Timestamp,
) -> Result<Option<SlotHold>, Error> {
    let Some(ScheduleOrigin::Slot { schedule, slot }) = run.schedule_origin() else { return Ok(None) };
    let schedules: Api<EcsTaskSchedule> = Api::namespaced(client.clone(), namespace);
    // Only the schedule's own "not found" lets its run go: a 404 for the whole resource (its CRD being
    // reloaded) says nothing about the schedule.
    let found = match schedules.get(&schedule).await {
        Ok(found) => found,
        Err(error) if not_found(&error, &schedule) => return Ok(None),
        Err(error) => return Err(Error::Kube(error)),
    };
    let metadata = &run.metadata;
    let owner = metadata.owner_references.iter().flatten().any(|owner| Some(&owner.uid) == found.metadata.uid.as_ref());
    if !owner {
        return Ok(None);
    }
    let recorded = found.status.and_then(|status| status.last_schedule_time).is_some_and(|last| last.0 >= slot);
    if !recorded {
        return Ok(Some(SlotHold::Unrecorded(schedule)));
    }
    let Some(created) = metadata.creation_timestamp.as_ref() else { return Ok(None) };
    let left = SLOT_SETTLE.saturating_sub(crate::decide::duration_between(created.0, now));
    Ok((!left.is_zero()).then_some(SlotHold::Settling(left)))
}
