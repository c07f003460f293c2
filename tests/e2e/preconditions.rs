//! What the controller's status writes rely on, and the middle tier's and the simulator's fake API
//! copies: a `metadata.resourceVersion` in a server-side apply is a precondition the real API server
//! enforces (409 for a stale one), while a `metadata.uid` is not (another uid is ignored): a run deleted
//! and created again under its name has another resourceVersion, which is what refuses a write decided
//! on the old one. The fake answers the same.

use std::sync::Arc;

use anyhow::{Context as _, ensure};
use ecsrun::api::EcsTaskRun;
use ecsrun_testbed::fakes::FakeApi;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::json;

use crate::{Case, Env, case};

const NAMESPACE: &str = "e2e-preconditions";

pub fn cases() -> Vec<Case> {
    vec![case(
        "preconditions::a_status_apply_from_a_stale_copy_is_refused_and_a_uid_in_it_is_ignored_by_the_api_server_and_the_fake",
        stale_writes_are_refused,
    )]
}

/// The codes the API behind `client` answers three status applies with: on the copy's resourceVersion,
/// on it again (stale by then), and with another uid on the version the first returned.
async fn answers(client: Client, run: &EcsTaskRun) -> anyhow::Result<(u16, u16, u16)> {
    let runs: Api<EcsTaskRun> = Api::namespaced(client, NAMESPACE);
    let name = run.metadata.name.as_deref().context("no name")?;
    let uid = run.metadata.uid.as_deref().context("no uid")?;
    let version = run.metadata.resource_version.clone().context("no resourceVersion")?;
    let apply = |uid: &str, version: &str, message: &str| {
        json!({
            "apiVersion": EcsTaskRun::api_version(&()), "kind": EcsTaskRun::kind(&()),
            "metadata": {"uid": uid, "resourceVersion": version}, "status": {"message": message},
        })
    };
    let params = PatchParams::apply("e2e-preconditions").force();
    let code = |result: &Result<EcsTaskRun, kube::Error>| match result {
        Ok(_) => 200,
        Err(kube::Error::Api(answer)) => answer.code,
        Err(_) => 0,
    };
    let first = runs.patch_status(name, &params, &Patch::Apply(&apply(uid, &version, "first"))).await;
    let stale = runs.patch_status(name, &params, &Patch::Apply(&apply(uid, &version, "stale"))).await;
    let now = first.as_ref().ok().and_then(|run| run.metadata.resource_version.clone()).unwrap_or_default();
    let other = "00000000-0000-4000-8000-00000000dead";
    let recreated = runs.patch_status(name, &params, &Patch::Apply(&apply(other, &now, "other uid"))).await;
    Ok((code(&first), code(&stale), code(&recreated)))
}

async fn stale_writes_are_refused(env: Arc<Env>) -> anyhow::Result<()> {
    ecsrun_testbed::ensure_namespace(&env.client, NAMESPACE).await?;
    // Stopped and orphaned: nothing launches or stops a task for it, whoever reconciles it.
    let spec = serde_json::from_value(json!({
        "cluster": "e2e", "taskDefinition": "job", "stop": true, "deletionPolicy": "Orphan",
    }))?;
    let run = EcsTaskRun::new("preconditions", spec);
    let runs: Api<EcsTaskRun> = Api::namespaced(env.client.clone(), NAMESPACE);
    let created = runs.create(&PostParams::default(), &run).await?;
    let real = answers(env.client.clone(), &created).await?;
    let fake = FakeApi::default();
    let mut stored = created.clone();
    stored.metadata.namespace = None;
    let in_fake = fake.create_run(NAMESPACE, &stored, jiff::Timestamp::now());
    let faked = answers(fake.client(), &in_fake).await?;
    // No controller watches the namespace: nothing writes in between.
    ensure!(real == (200, 409, 200), "the API server answered (current, stale, another uid) {real:?}");
    ensure!(faked == (200, 409, 200), "the fake API answered {faked:?}; the API server {real:?}");
    // A run that does not exist is told apart from a resource the server does not serve (a CRD
    // reloading) by its name in the message, as the controller reads it.
    for (api, who) in [(runs, "the API server"), (Api::namespaced(fake.client(), NAMESPACE), "the fake")] {
        match api.get("not-there").await {
            Err(kube::Error::Api(answer)) if answer.code == 404 => ensure!(
                answer.message.contains("\"not-there\" not found"),
                "{who} says of a missing run: {}",
                answer.message
            ),
            other => anyhow::bail!("{who} answered a GET of a missing run with {other:?}"),
        }
    }
    Ok(())
}
