//! Events as the API server stores them: each transition's own note, and repeats folded only when they
//! say the same thing.

use std::sync::Arc;

use anyhow::{Context as _, ensure};
use ecsrun::events::Publisher;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::events::Reporter;
use kube::{Resource, ResourceExt};

use crate::{Case, Env, case};

const NAMESPACE: &str = "e2e-events";

pub fn cases() -> Vec<Case> {
    vec![case("events::two_notes_of_one_reason_are_two_events_and_a_repeat_is_counted", two_notes_of_one_reason)]
}

async fn two_notes_of_one_reason(env: Arc<Env>) -> anyhow::Result<()> {
    ecsrun_testbed::ensure_namespace(&env.client, NAMESPACE).await?;
    // Any object will do; one nothing else writes Events about.
    let objects: Api<ConfigMap> = Api::namespaced(env.client.clone(), NAMESPACE);
    let mut object = ConfigMap::default();
    object.metadata.name = Some("retried".into());
    let object = objects.create(&PostParams::default(), &object).await?;
    let regarding = object.object_ref(&());
    let publisher = Publisher::new(
        env.client.clone(),
        Reporter { controller: "ecsrun-testbed".into(), instance: Some("e2e".into()) },
        ecsrun::clock::Clock::default(),
    );
    let first = "attempt 1 failed: container app exited 3; attempt 2 in 10s";
    let second = "attempt 2 failed: container app exited 4; attempt 3 in 20s";
    publisher.publish(&regarding, true, "Retrying", first).await?;
    publisher.publish(&regarding, true, "Retrying", second).await?;
    publisher.publish(&regarding, true, "Retrying", second).await?;

    let events: Api<Event> = Api::namespaced(env.client.clone(), NAMESPACE);
    let uid = object.uid().context("no uid")?;
    let listed = events.list(&ListParams::default()).await?;
    let mut told: Vec<(String, i32)> = listed
        .items
        .into_iter()
        .filter(|event| event.regarding.as_ref().and_then(|r| r.uid.as_deref()) == Some(uid.as_str()))
        .map(|event| (event.note.unwrap_or_default(), event.series.map_or(1, |series| series.count)))
        .collect();
    told.sort();
    let expected = vec![(first.to_owned(), 1), (second.to_owned(), 2)];
    ensure!(told == expected, "Events read back: {told:?}; expected {expected:?}");
    Ok(())
}
