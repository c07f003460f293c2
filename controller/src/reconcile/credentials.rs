//! Where a run's ECS calls go and with whose credentials: its region, the controller's identity, a role
//! assumed with the namespace's external ID, or keys from a Secret (remembered, so a namespace being
//! deleted, whose Secrets go first, can still stop its runs' tasks).

use std::collections::HashMap;
use std::sync::{MutexGuard, PoisonError};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use tracing::warn;

use super::{Context, Error};
use crate::api::EcsTaskRun;
use crate::ecs::{Actor, Ecs, EcsTarget, Identity, Session, StaticKeys};

impl<E: Ecs> Context<E> {
    /// Where the run's ECS calls go, with whose credentials.
    pub(super) async fn target(&self, run: &EcsTaskRun, namespace: &str) -> Result<EcsTarget, Error> {
        let region = region(run, self.settings.default_region.as_deref()).ok_or(Error::NoRegion)?;
        let identity = match &run.spec.credentials {
            None => Identity::Default,
            Some(credentials) => match (&credentials.assume_role_arn, &credentials.secret_ref) {
                // The external ID is the namespace's own unless the run may choose one (the policy gate
                // checks that before any launch). Reads share the namespace's session.
                (Some(role_arn), _) => Identity::AssumeRole {
                    role_arn: role_arn.clone(),
                    external_id: Some(
                        credentials.external_id.clone().unwrap_or_else(|| self.tenancy.external_id(namespace)),
                    ),
                    session: Session::for_namespace(namespace),
                },
                (None, Some(secret)) => {
                    let key = (namespace.to_owned(), secret.name.clone());
                    match self.secret_identity(namespace, &secret.name).await {
                        Ok(identity) => {
                            self.remembered_identities().insert(key, identity.clone());
                            identity
                        }
                        Err(error) => match self.remembered_identities().get(&key) {
                            Some(identity) if run.metadata.deletion_timestamp.is_some() => {
                                warn!(%error, "stopping the deleted run's tasks with the credentials last read");
                                identity.clone()
                            }
                            _ => return Err(error),
                        },
                    }
                }
                // The CRD requires exactly one of the two.
                (None, None) => Identity::Default,
            },
        };
        Ok(EcsTarget { region, identity, cluster: run.spec.cluster.clone() })
    }

    fn remembered_identities(&self) -> MutexGuard<'_, HashMap<(String, String), Identity>> {
        self.secret_identities.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn secret_identity(&self, namespace: &str, name: &str) -> Result<Identity, Error> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = secrets
            .get_opt(name)
            .await
            .map_err(Error::Kube)?
            .ok_or_else(|| Error::Credentials(format!("Secret {namespace}/{name} not found")))?;
        let data = secret.data.unwrap_or_default();
        let field = |key: &str| {
            data.get(key)
                .map(|bytes| String::from_utf8_lossy(&bytes.0).trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let missing = |key: &str| Error::Credentials(format!("Secret {namespace}/{name} has no {key}"));
        Ok(Identity::Static {
            // The keys themselves tell a rotated Secret from a relabelled one: a change of its metadata alone
            // keeps the same identity, and so the same client.
            source: format!("{namespace}/{name}"),
            keys: StaticKeys {
                access_key_id: field("AWS_ACCESS_KEY_ID").ok_or_else(|| missing("AWS_ACCESS_KEY_ID"))?,
                secret_access_key: field("AWS_SECRET_ACCESS_KEY").ok_or_else(|| missing("AWS_SECRET_ACCESS_KEY"))?,
                session_token: field("AWS_SESSION_TOKEN"),
            },
        })
    }
}

/// The run a StopTask acts for.
pub(super) fn actor(run: &EcsTaskRun) -> Result<Actor, Error> {
    Ok(Actor {
        namespace: run.namespace().ok_or(Error::MissingMetadata("namespace"))?,
        name: run.metadata.name.clone().ok_or(Error::MissingMetadata("name"))?,
    })
}

/// The run's region: where it launched (pinned in status), else its spec's, else the region of the task
/// it adopts, else the controller's default.
pub(super) fn region(run: &EcsTaskRun, default: Option<&str>) -> Option<String> {
    let pinned = run.status.as_ref().and_then(|status| status.region.clone());
    let adopted = run.spec.task_arn.as_deref().and_then(crate::api::arn_region).map(str::to_owned);
    pinned.or_else(|| run.spec.region.clone()).or(adopted).or_else(|| default.map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::EcsTaskRunStatus;

    fn run(spec_region: Option<&str>, pinned: Option<&str>) -> EcsTaskRun {
        let mut run = EcsTaskRun::new(
            "r",
            serde_json::from_value(serde_json::json!({"cluster": "c", "taskDefinition": "t", "region": spec_region}))
                .unwrap(),
        );
        run.status = pinned.map(|region| EcsTaskRunStatus { region: Some(region.into()), ..Default::default() });
        run
    }

    #[test]
    fn a_launched_run_keeps_its_region_whatever_the_default_becomes() {
        assert_eq!(region(&run(None, None), Some("us-east-1")).as_deref(), Some("us-east-1"));
        assert_eq!(region(&run(Some("eu-west-1"), None), Some("us-east-1")).as_deref(), Some("eu-west-1"));
        assert_eq!(region(&run(None, Some("eu-west-1")), Some("us-east-1")).as_deref(), Some("eu-west-1"));
        assert_eq!(region(&run(None, None), None), None);
    }
}
