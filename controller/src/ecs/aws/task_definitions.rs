//! What DescribeTaskDefinition answered, kept per region, identity and reference, so a burst of runs of
//! one family costs one call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::ecs::{EcsTarget, Identity, TaskDefinitionInfo, is_bare_family};

/// How long a bare family (no revision) stands for the revision it resolved to; a new revision
/// registered meanwhile is picked up after this.
const BARE_FAMILY_TTL: Duration = Duration::from_secs(60);
/// Bounds the cache; past this many references it starts over.
const MAX_CACHED_TASK_DEFINITIONS: usize = 1024;

/// Task definitions by the reference a run gave (`family`, `family:rev` or an ARN) and by the revision
/// ARN they resolved to, per region and identity. Revisions are immutable and kept; a bare family
/// expires after [`BARE_FAMILY_TTL`], since it follows the latest ACTIVE revision.
#[derive(Default)]
pub(super) struct TaskDefinitionCache {
    entries: Mutex<HashMap<TaskDefinitionKey, (TaskDefinitionInfo, Option<Instant>)>>,
    /// One lookup per reference at a time: a burst of runs of one family asks ECS once, not once each.
    lookups: Mutex<HashMap<TaskDefinitionKey, Arc<tokio::sync::Mutex<()>>>>,
}

/// (region, identity, reference as given).
type TaskDefinitionKey = (String, Identity, String);

impl TaskDefinitionCache {
    pub(super) fn get(&self, target: &EcsTarget, reference: &str) -> Option<TaskDefinitionInfo> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (info, expires) = entries.get(&(target.region.clone(), target.identity.clone(), reference.to_owned()))?;
        expires.is_none_or(|expires| Instant::now() < expires).then(|| info.clone())
    }

    /// Held while looking `reference` up; lookups of other references go on.
    pub(super) async fn lookup(&self, target: &EcsTarget, reference: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let key = (target.region.clone(), target.identity.clone(), reference.to_owned());
        let lock = {
            let mut lookups = self.lookups.lock().unwrap_or_else(PoisonError::into_inner);
            if lookups.len() >= MAX_CACHED_TASK_DEFINITIONS {
                lookups.retain(|_, lock| Arc::strong_count(lock) > 1);
            }
            lookups.entry(key).or_default().clone()
        };
        lock.lock_owned().await
    }

    pub(super) fn insert(&self, target: &EcsTarget, reference: &str, info: &TaskDefinitionInfo) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_CACHED_TASK_DEFINITIONS {
            entries.clear();
        }
        let key = |reference: &str| (target.region.clone(), target.identity.clone(), reference.to_owned());
        let expires = is_bare_family(reference).then(|| Instant::now() + BARE_FAMILY_TTL);
        entries.insert(key(reference), (info.clone(), expires));
        entries.insert(key(&info.arn), (info.clone(), None));
    }
}
