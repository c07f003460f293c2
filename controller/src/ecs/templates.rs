//! Task definitions from `spec.taskDefinitionTemplate`: each distinct content is registered once, as a
//! revision tagged with the content's hash, and that revision serves every run of the template, across
//! runs, restarts and replicas. The lookup by tag comes before any registration (a registration whose
//! answer was lost is found, not repeated); lookups and registrations of one content take turns in a
//! replica, and only the leader launches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

use super::{ContainerDefinitionInfo, Ecs, EcsError, EcsTarget, Identity, TaskDefinitionInfo};
use crate::api::TaskDefinitionTemplate;

/// The tag that carries a registered revision's content hash.
pub const TEMPLATE_HASH_TAG: &str = "ecsrun.dev/template-hash";

/// The content hash of a template: SHA-256 of its canonical JSON, in hex.
pub fn template_hash(template: &TaskDefinitionTemplate) -> String {
    Sha256::digest(template.canonical_json().as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Where a revision is registered (an account's region, as whoever signs the calls) and its content.
type Key = (String, Identity, String);

#[derive(Default)]
pub struct TemplateRegistry {
    known: Mutex<HashMap<Key, String>>,
    turns: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
}

impl TemplateRegistry {
    /// The revision registered for `template` in the target's account and region, registering it first
    /// if ECS has none (tagged with the `namespace` it was registered for); with the containers the
    /// decision injects the run identity into.
    pub async fn ensure<E: Ecs>(
        &self,
        ecs: &E,
        target: &EcsTarget,
        template: &TaskDefinitionTemplate,
        namespace: &str,
    ) -> Result<TaskDefinitionInfo, EcsError> {
        let hash = template_hash(template);
        let key: Key = (target.region.clone(), target.identity.clone(), hash.clone());
        let info = |arn: String| TaskDefinitionInfo {
            arn,
            containers: template
                .container_definitions
                .iter()
                .map(|c| ContainerDefinitionInfo {
                    name: c.name.clone(),
                    essential: c.essential.unwrap_or(true),
                    log: c.log_configuration.as_ref().map(|log| crate::ecs::LogConfiguration {
                        driver: log.log_driver.clone(),
                        group: log.options.get("awslogs-group").cloned(),
                        region: log.options.get("awslogs-region").cloned(),
                        stream_prefix: log.options.get("awslogs-stream-prefix").cloned(),
                    }),
                })
                .collect(),
            registered_by: None,
            size: crate::ecs::TaskDefinitionSize {
                cpu_units: template.cpu.as_deref().and_then(crate::policy::cpu_units),
                memory_mib: template.memory.as_deref().and_then(crate::policy::memory_mib),
                containers: template
                    .container_definitions
                    .iter()
                    .map(|c| crate::ecs::ContainerSize {
                        name: c.name.clone(),
                        cpu_units: c.cpu.map(i64::from),
                        memory_mib: c.memory.map(i64::from),
                    })
                    .collect(),
            },
        };
        if let Some(arn) = self.known(&key) {
            return Ok(info(arn));
        }
        let turn = self.turns.lock().unwrap_or_else(PoisonError::into_inner).entry(key.clone()).or_default().clone();
        let _turn = turn.lock().await;
        // Whoever had the turn before may have found or registered it.
        if let Some(arn) = self.known(&key) {
            return Ok(info(arn));
        }
        let arn = match ecs.find_task_definition(target, template, (TEMPLATE_HASH_TAG, &hash)).await? {
            Some(arn) => arn,
            None => {
                // Whose template it is: a run of another namespace naming the family bare is refused
                // rather than launching it (reconcile/observe.rs).
                let tags = vec![
                    (TEMPLATE_HASH_TAG.to_owned(), hash.clone()),
                    (super::NAMESPACE_TAG.to_owned(), namespace.to_owned()),
                ];
                let arn = ecs.register_task_definition(target, template, &tags).await?;
                tracing::info!(family = %template.family, %arn, %hash, "registered the task definition template");
                arn
            }
        };
        self.known.lock().unwrap_or_else(PoisonError::into_inner).insert(key, arn.clone());
        Ok(info(arn))
    }

    fn known(&self, key: &Key) -> Option<String> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::testing::Recording;

    fn template(image: &str) -> TaskDefinitionTemplate {
        serde_json::from_value(serde_json::json!({
            "family": "etl",
            "containerDefinitions": [
                {"name": "app", "image": image},
                {"name": "log-router", "image": "fluent-bit", "essential": false}
            ]
        }))
        .unwrap()
    }

    fn target() -> EcsTarget {
        EcsTarget { region: "eu-west-1".into(), identity: Identity::Default, cluster: "c".into() }
    }

    #[tokio::test]
    async fn one_content_is_registered_once_and_reused() {
        let ecs = Recording::default();
        let registry = TemplateRegistry::default();
        let first = registry.ensure(&ecs, &target(), &template("etl:1"), "team-a").await.unwrap();
        let again = registry.ensure(&ecs, &target(), &template("etl:1"), "team-a").await.unwrap();
        assert_eq!(first, again);
        assert_eq!(first.arn, "arn:aws:ecs:eu-west-1:123456789012:task-definition/etl:1");
        assert_eq!(
            first.containers.iter().map(|c| (c.name.as_str(), c.essential)).collect::<Vec<_>>(),
            vec![("app", true), ("log-router", false)]
        );
        assert_eq!(ecs.operations(), vec!["ListTaskDefinitions", "RegisterTaskDefinition"], "the second is cached");
        // Changed content: a new revision.
        let changed = registry.ensure(&ecs, &target(), &template("etl:2"), "team-a").await.unwrap();
        assert_eq!(changed.arn, "arn:aws:ecs:eu-west-1:123456789012:task-definition/etl:2");
    }

    #[tokio::test]
    async fn a_restarted_replica_finds_the_revision_instead_of_registering_it_again() {
        let ecs = Recording::default();
        TemplateRegistry::default().ensure(&ecs, &target(), &template("etl:1"), "team-a").await.unwrap();
        let after_restart =
            TemplateRegistry::default().ensure(&ecs, &target(), &template("etl:1"), "team-a").await.unwrap();
        assert_eq!(after_restart.arn, "arn:aws:ecs:eu-west-1:123456789012:task-definition/etl:1");
        assert_eq!(ecs.registered.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn concurrent_runs_of_one_template_register_it_once() {
        let ecs = Arc::new(Recording::default());
        let registry = Arc::new(TemplateRegistry::default());
        let runs = (0..8).map(|_| {
            let (ecs, registry) = (ecs.clone(), registry.clone());
            tokio::spawn(
                async move { registry.ensure(&*ecs, &target(), &template("etl:1"), "team-a").await.unwrap().arn },
            )
        });
        let arns: Vec<String> = futures::future::try_join_all(runs).await.unwrap();
        assert!(arns.iter().all(|arn| arn == &arns[0]));
        assert_eq!(ecs.registered.lock().unwrap().len(), 1);
    }

    #[test]
    fn the_hash_is_of_the_content_not_of_how_it_was_written() {
        let written_one_way = template("etl:1");
        let another: TaskDefinitionTemplate = serde_json::from_str(
            r#"{"containerDefinitions": [{"image": "etl:1", "name": "app"},
                {"essential": false, "name": "log-router", "image": "fluent-bit"}], "family": "etl"}"#,
        )
        .unwrap();
        assert_eq!(template_hash(&written_one_way), template_hash(&another));
        assert_ne!(template_hash(&written_one_way), template_hash(&template("etl:2")));
        assert_eq!(template_hash(&written_one_way).len(), 64);
    }
}
