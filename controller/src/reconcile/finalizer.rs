//! kube-runtime's `finalizer()`, with the copy's uid as a precondition of both finalizer writes.
//!
//! kube's helper addresses the run by name. A copy of a run that was deleted and created again under its
//! name (GitOps `Replace`), reconciled from a lagging cache or by a write that took its time, then adds its
//! finalizer to the new run or, worse, removes the new run's finalizer, which lets the new run be deleted
//! with its task running. Here every JSON patch first tests `/metadata/uid`; a failed test (422) means
//! the copy is stale, a routine error the next reconcile, on the latest copy, resolves.

use std::str::FromStr;
use std::sync::Arc;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, RemoveOperation, TestOperation};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Error as FinalizerError, Event};
use kube::{Resource, ResourceExt};

use super::Error;
use super::error::Staleness;
use crate::api::EcsTaskRun;

/// As kube-runtime's `finalizer()`: Apply once the finalizer is on the run, Cleanup (then the finalizer's
/// removal) once it is being deleted.
pub(super) async fn finalizer<F, Fut>(
    api: &Api<EcsTaskRun>,
    finalizer_name: &str,
    run: Arc<EcsTaskRun>,
    reconcile: F,
) -> Result<Action, FinalizerError<Error>>
where
    F: FnOnce(Event<EcsTaskRun>) -> Fut,
    Fut: Future<Output = Result<Action, Error>>,
{
    let name = run.meta().name.clone().ok_or(FinalizerError::UnnamedObject)?;
    let uid = run.meta().uid.clone().ok_or(FinalizerError::UnnamedObject)?;
    let index = run.finalizers().iter().position(|finalizer| finalizer == finalizer_name);
    let deleting = run.meta().deletion_timestamp.is_some();
    match (index, deleting) {
        (Some(_), false) => reconcile(Event::Apply(run)).await.map_err(FinalizerError::ApplyFailed),
        (Some(index), true) => {
            let action = reconcile(Event::Cleanup(run)).await.map_err(FinalizerError::CleanupFailed)?;
            let at = pointer(&format!("/metadata/finalizers/{index}"))?;
            let operations = vec![
                PatchOperation::Test(TestOperation { path: at.clone(), value: finalizer_name.into() }),
                PatchOperation::Remove(RemoveOperation { path: at }),
            ];
            match write(api, &name, &uid, operations).await {
                Err(Written::Stale) => Err(FinalizerError::CleanupFailed(Error::Stale(Staleness::Changed))),
                Err(Written::Failed(error)) => Err(FinalizerError::RemoveFinalizer(error)),
                Ok(()) => Ok(action),
            }
        }
        (None, false) => {
            let operations = if run.finalizers().is_empty() {
                vec![
                    PatchOperation::Test(TestOperation {
                        path: pointer("/metadata/finalizers")?,
                        value: serde_json::Value::Null,
                    }),
                    PatchOperation::Add(AddOperation {
                        path: pointer("/metadata/finalizers")?,
                        value: vec![finalizer_name].into(),
                    }),
                ]
            } else {
                // The API server does not deduplicate finalizers: fail if anyone added one meanwhile.
                vec![
                    PatchOperation::Test(TestOperation {
                        path: pointer("/metadata/finalizers")?,
                        value: run.finalizers().into(),
                    }),
                    PatchOperation::Add(AddOperation {
                        path: pointer("/metadata/finalizers/-")?,
                        value: finalizer_name.into(),
                    }),
                ]
            };
            match write(api, &name, &uid, operations).await {
                Err(Written::Stale) => Err(FinalizerError::ApplyFailed(Error::Stale(Staleness::Changed))),
                Err(Written::Failed(error)) => Err(FinalizerError::AddFinalizer(error)),
                // The patch's own watch event brings the run back for its Apply.
                Ok(()) => Ok(Action::await_change()),
            }
        }
        (None, true) => Ok(Action::await_change()),
    }
}

enum Written {
    /// A test failed: the run as the API server has it is not this copy's (another uid, other finalizers).
    Stale,
    Failed(kube::Error),
}

/// One JSON patch of the run named `name`, applied only if it is still the run whose uid is `uid`.
async fn write(api: &Api<EcsTaskRun>, name: &str, uid: &str, operations: Vec<PatchOperation>) -> Result<(), Written> {
    let mut guarded = vec![PatchOperation::Test(TestOperation {
        path: PointerBuf::from_tokens(["metadata", "uid"]),
        value: uid.into(),
    })];
    guarded.extend(operations);
    match api.patch(name, &PatchParams::default(), &Patch::Json::<()>(json_patch::Patch(guarded))).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(answer)) if answer.code == 422 => Err(Written::Stale),
        Err(error) => Err(Written::Failed(error)),
    }
}

fn pointer(path: &str) -> Result<PointerBuf, FinalizerError<Error>> {
    PointerBuf::from_str(path).map_err(|_| FinalizerError::InvalidFinalizer)
}
