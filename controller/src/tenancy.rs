//! The multi-tenant shell around [`policy`](crate::policy): the caches of EcsRunPolicies and Namespace
//! labels the check reads, the gate before every launch (`enforce` refuses, `audit` lets through and
//! says so), the external ID a run's assumed role is sent, and the policies' status (which namespaces
//! each selects, and which of them another policy selects too, for the admission policy).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use tracing::{info, warn};

use crate::api::{EcsRunPolicy, EcsRunPolicyStatus, EcsTaskRunSpec};
use crate::policy::{self, Denial, Mode};

/// Status entries listed per policy; the count says how many there are in all.
const MAX_LISTED_NAMESPACES: usize = 1000;
/// How often the policies' status is brought up to date with the caches.
const STATUS_EVERY: Duration = Duration::from_secs(5);
/// How long startup waits for the caches to fill before giving up.
const CACHE_SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// What the gate says about a launch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    Allowed,
    /// Broke the policies, let through (`audit`).
    Audited(Denial),
    /// Broke the policies, refused (`enforce`).
    Denied(Denial),
    /// The namespace is not in the cache yet (created a moment ago): ask again shortly.
    NamespaceNotSeen,
}

pub struct Tenancy {
    mode: Mode,
    caches: Option<Caches>,
    /// The external ID format with the cluster ID filled in; `{namespace}` is left to fill per run.
    external_id: String,
    /// This install's identity (`--cluster-id`, else the uid of `kube-system`): every task it launches is
    /// tagged with it, and its orphan sweep stops only tasks that carry it.
    cluster_id: Option<String>,
}

struct Caches {
    policies: Store<EcsRunPolicy>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
}

impl Tenancy {
    /// Resolves the cluster ID (`--cluster-id`, else the uid of `kube-system`, stable for the cluster's
    /// life) and, unless policies are off, fills the EcsRunPolicy and Namespace caches before returning:
    /// an empty cache would refuse every run.
    pub async fn start(
        client: &Client,
        mode: Mode,
        cluster_id: Option<String>,
        external_id_format: &str,
    ) -> anyhow::Result<Self> {
        let cluster_id = match cluster_id {
            Some(id) => Some(id),
            None => {
                let read = Api::<Namespace>::all(client.clone())
                    .get("kube-system")
                    .await
                    .context("reading the kube-system namespace's uid for the external ID (or set --cluster-id)")
                    .and_then(|namespace| namespace.uid().context("kube-system has no uid"));
                match read {
                    Ok(id) => Some(id),
                    Err(error) if external_id_format.contains("{cluster}") => return Err(error),
                    Err(error) => {
                        tracing::warn!(%error, "no cluster ID: tasks are not tagged with this install's identity");
                        None
                    }
                }
            }
        };
        let external_id = match &cluster_id {
            Some(id) => external_id_format.replace("{cluster}", id),
            None => external_id_format.to_owned(),
        };
        if mode == Mode::Off {
            return Ok(Self { mode, caches: None, external_id, cluster_id });
        }
        let (policies, policy_writer) = reflector::store();
        let policy_events = watcher(Api::<EcsRunPolicy>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .reflect(policy_writer)
            .for_each(|_| async {});
        tokio::spawn(policy_events);
        let (namespaces, namespace_writer) = reflector::store();
        let namespace_events =
            watcher(Api::<PartialObjectMeta<Namespace>>::all(client.clone()), watcher::Config::default())
                .default_backoff()
                .reflect(namespace_writer)
                .for_each(|_| async {});
        tokio::spawn(namespace_events);
        let synced = async {
            policies.wait_until_ready().await?;
            namespaces.wait_until_ready().await
        };
        match tokio::time::timeout(CACHE_SYNC_TIMEOUT, synced).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => bail!("EcsRunPolicy / Namespace caches: {error}"),
            Err(_) => bail!(
                "EcsRunPolicies and Namespaces could not be listed within {CACHE_SYNC_TIMEOUT:?}: is the \
                 EcsRunPolicy CRD installed, and may the controller list both? (--policy-mode=off turns policies off)"
            ),
        }
        info!(?mode, policies = policies.state().len(), "EcsRunPolicy caches filled");
        Ok(Self { mode, caches: Some(Caches { policies, namespaces }), external_id, cluster_id })
    }

    /// Policies and namespaces (name, labels) given rather than watched: the caches as a watch would
    /// have filled them, for the simulator and tests that run the shell without an API server's watches.
    pub fn fixed(
        mode: Mode,
        policies: Vec<EcsRunPolicy>,
        namespaces: &[(&str, BTreeMap<String, String>)],
        external_id: &str,
    ) -> Self {
        let (policy_store, mut policy_writer) = reflector::store();
        for policy in policies {
            policy_writer.apply_watcher_event(&watcher::Event::Apply(policy));
        }
        let (namespace_store, mut namespace_writer) = reflector::store::<PartialObjectMeta<Namespace>>();
        for (name, labels) in namespaces {
            let mut namespace = PartialObjectMeta::<Namespace>::default();
            namespace.metadata.name = Some((*name).to_owned());
            namespace.metadata.labels = Some(labels.clone());
            namespace_writer.apply_watcher_event(&watcher::Event::Apply(namespace));
        }
        let caches = Caches { policies: policy_store, namespaces: namespace_store };
        Self {
            mode,
            caches: (mode != Mode::Off).then_some(caches),
            external_id: external_id.to_owned(),
            cluster_id: None,
        }
    }

    /// No policies (`--policy-mode=off`), external IDs from `external_id_format` as given.
    pub fn off(external_id_format: &str) -> Self {
        Self { mode: Mode::Off, caches: None, external_id: external_id_format.to_owned(), cluster_id: None }
    }

    /// The same, as the install `cluster_id` (its tasks carry it).
    pub fn with_cluster_id(mut self, cluster_id: &str) -> Self {
        self.cluster_id = Some(cluster_id.to_owned());
        self
    }

    /// This install's identity, if it has one.
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// `judge` of the cached policies that select `namespace` (by name); None while the namespace is not
    /// in the cache.
    fn with_selected<T>(caches: &Caches, namespace: &str, judge: impl FnOnce(&[&EcsRunPolicy]) -> T) -> Option<T> {
        let namespace_object = caches.namespaces.get(&ObjectRef::new(namespace))?;
        let labels = namespace_object.metadata.labels.clone().unwrap_or_default();
        let all = caches.policies.state();
        Some(judge(&policy::selecting(all.iter().map(Arc::as_ref), &labels)))
    }

    /// Checks a launch of `spec` in `region` from `namespace` against the policies that select it.
    pub fn gate(&self, namespace: &str, region: &str, spec: &EcsTaskRunSpec) -> Gate {
        let Some(caches) = &self.caches else { return Gate::Allowed };
        let checked =
            Self::with_selected(caches, namespace, |selected| policy::check(namespace, region, spec, selected));
        match (checked, self.mode) {
            (None, _) => Gate::NamespaceNotSeen,
            (Some(Ok(())), _) | (Some(Err(_)), Mode::Off) => Gate::Allowed,
            (Some(Err(denial)), Mode::Audit) => Gate::Audited(denial),
            (Some(Err(denial)), Mode::Enforce) => Gate::Denied(denial),
        }
    }

    /// The most log lines per failed container the policies selecting `namespace` let its runs read
    /// (None: uncapped). Applied in audit mode too: it breaks no run, and tails are for whoever reads
    /// the namespace. A namespace not seen yet reads none.
    pub fn max_tail_lines(&self, namespace: &str) -> Option<u32> {
        let caches = self.caches.as_ref()?;
        Self::with_selected(caches, namespace, policy::max_tail_lines).unwrap_or(Some(0))
    }

    /// Whether the policies selecting `namespace` let its runs read their tasks' results into their status.
    /// Like tails, applied in audit mode too; a namespace not seen yet reads none.
    pub fn results_allowed(&self, namespace: &str) -> bool {
        let Some(caches) = self.caches.as_ref() else { return true };
        Self::with_selected(caches, namespace, policy::results_allowed).unwrap_or(false)
    }

    /// The external ID sent when a run of `namespace` assumes a role.
    pub fn external_id(&self, namespace: &str) -> String {
        self.external_id.replace("{namespace}", namespace)
    }

    /// Keeps every policy's status (the namespaces it selects, those another policy selects too) in step
    /// with the caches, until dropped. Run by the leader only.
    pub async fn publish_policy_status(self: Arc<Self>, client: Client, field_manager: &'static str) {
        let Some(caches) = &self.caches else { return };
        let api: Api<EcsRunPolicy> = Api::all(client);
        loop {
            let policies = caches.policies.state();
            let namespaces = caches.namespaces.state();
            for (name, status) in policy_statuses(&policies, &namespaces) {
                let current = policies.iter().find(|policy| policy.name_any() == name).and_then(|p| p.status.clone());
                if current.as_ref() == Some(&status) {
                    continue;
                }
                let patch = serde_json::json!({
                    "apiVersion": "ecsrun.dev/v1alpha1", "kind": "EcsRunPolicy", "status": status,
                });
                let params = PatchParams::apply(field_manager).force();
                if let Err(error) = api.patch_status(&name, &params, &Patch::Apply(&patch)).await {
                    warn!(policy = %name, %error, "could not write the EcsRunPolicy's status");
                }
            }
            tokio::time::sleep(STATUS_EVERY).await;
        }
    }
}

/// Each policy's status: which namespaces it selects, and which of those another policy selects too.
fn policy_statuses(
    policies: &[Arc<EcsRunPolicy>],
    namespaces: &[Arc<PartialObjectMeta<Namespace>>],
) -> Vec<(String, EcsRunPolicyStatus)> {
    let empty = BTreeMap::new();
    let mut selected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut selectors_of: BTreeMap<String, usize> = BTreeMap::new();
    for namespace in namespaces {
        let labels = namespace.metadata.labels.as_ref().unwrap_or(&empty);
        for policy in policies.iter().filter(|policy| policy::selects(policy, labels)) {
            selected.entry(policy.name_any()).or_default().insert(namespace.name_any());
            *selectors_of.entry(namespace.name_any()).or_default() += 1;
        }
    }
    policies
        .iter()
        .map(|policy| {
            let name = policy.name_any();
            let mine = selected.remove(&name).unwrap_or_default();
            let shared = mine.iter().filter(|namespace| selectors_of.get(*namespace).is_some_and(|n| *n > 1));
            let status = EcsRunPolicyStatus {
                namespace_count: Some(i32::try_from(mine.len()).unwrap_or(i32::MAX)),
                namespaces: mine.iter().take(MAX_LISTED_NAMESPACES).cloned().collect(),
                shared_namespaces: shared.take(MAX_LISTED_NAMESPACES).cloned().collect(),
                observed_generation: policy.metadata.generation,
            };
            (name, status)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::EcsRunPolicySpec;

    fn namespace(name: &str, labels: &[(&str, &str)]) -> Arc<PartialObjectMeta<Namespace>> {
        let mut meta = PartialObjectMeta::<Namespace>::default();
        meta.metadata.name = Some(name.into());
        meta.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        Arc::new(meta)
    }

    fn policy(name: &str, selector: serde_json::Value) -> Arc<EcsRunPolicy> {
        let spec: EcsRunPolicySpec =
            serde_json::from_value(serde_json::json!({"namespaceSelector": selector})).unwrap();
        let mut policy = EcsRunPolicy::new(name, spec);
        policy.metadata.generation = Some(2);
        Arc::new(policy)
    }

    #[test]
    fn statuses_list_selected_and_shared_namespaces() {
        let namespaces = [
            namespace("a", &[("team", "a")]),
            namespace("b", &[("team", "b")]),
            namespace("tools", &[("shared", "y")]),
        ];
        let policies = [
            policy("team-a", serde_json::json!({"matchLabels": {"team": "a"}})),
            policy("teams", serde_json::json!({"matchExpressions": [{"key": "team", "operator": "Exists"}]})),
            policy("nobody", serde_json::json!({"matchLabels": {"team": "z"}})),
        ];
        let statuses: BTreeMap<String, EcsRunPolicyStatus> =
            policy_statuses(&policies, &namespaces).into_iter().collect();
        assert_eq!(statuses["team-a"].namespaces, ["a"]);
        assert_eq!(statuses["team-a"].shared_namespaces, ["a"]);
        assert_eq!(statuses["teams"].namespaces, ["a", "b"]);
        assert_eq!(statuses["teams"].shared_namespaces, ["a"]);
        assert_eq!(statuses["teams"].namespace_count, Some(2));
        assert_eq!(statuses["nobody"].namespace_count, Some(0));
        assert!(statuses["nobody"].namespaces.is_empty());
        assert_eq!(statuses["nobody"].observed_generation, Some(2));
    }

    #[test]
    fn external_ids_fill_in_the_namespace() {
        let tenancy = Tenancy::off("ecsrun:c0ffee:{namespace}");
        assert_eq!(tenancy.external_id("team-a"), "ecsrun:c0ffee:team-a");
        assert_eq!(
            tenancy.gate(
                "team-a",
                "eu-west-1",
                &serde_json::from_value(serde_json::json!({
            "cluster": "any", "taskDefinition": "any"}))
                .unwrap()
            ),
            Gate::Allowed
        );
    }
}
