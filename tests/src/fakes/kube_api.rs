//! An in-memory Kubernetes API for the controller's shell, served to a real `kube::Client` as a tower
//! service: the requests the shell makes about EcsTaskRuns (reads, finalizer patches, server-side-applied
//! status), Events and Secrets, answered with the semantics the shell relies on: uid, resourceVersion,
//! generation, finalizers and deletionTimestamp (an object goes once its last finalizer does), 404 for
//! what is gone, 422 for a JSON-patch `test` that fails (kube's finalizer helper guards with one), a delete
//! and a recreate under one name being two objects, a `metadata.resourceVersion` in a patch as a
//! precondition (409), a `metadata.uid` in an apply ignored (both as the API server does; see the e2e
//! case `preconditions`). With `Chaos` (the simulator) requests fail (500, a 409
//! conflict, a 404 while the CRD reloads), lose their answers or crash their caller as the seed says. No
//! watches and no validation: what needs a real API server stays in the e2e tier.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use ecsrun::api::EcsTaskRun;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};

use super::chaos::{Chaos, Fault};

/// (resource, namespace, name).
type Key = (String, String, String);

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    revision: u64,
    uids: u64,
    /// Every request: method and path.
    requests: Vec<(Method, String)>,
    /// Answers to give instead of serving matching requests: (method, path fragment, matching requests to
    /// serve first, code).
    faults: Vec<(Method, String, usize, u16)>,
    /// The test's clock as last given (`create_run`, `delete_run`): when a DELETE request marks an object.
    clock: Option<Timestamp>,
    /// Every run ever created, as created (however soon it went again).
    created_runs: Vec<Value>,
    /// Every run status applied since the last `take_run_statuses`: (uid, status).
    run_statuses: Vec<(String, Value)>,
    /// Runs gone since the last `take_removed_runs`, as they were last, and when.
    removed_runs: Vec<(Value, Option<Timestamp>)>,
    /// Namespaces being deleted: nothing new is created in them.
    terminating: std::collections::BTreeSet<String>,
    /// Writes refused while the clock is in a window (a webhook that is down): (path fragment, from, until).
    outages: Vec<(String, Timestamp, Timestamp)>,
}

/// The fake API; cheap to clone (shared state).
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    chaos: Option<Arc<Chaos>>,
}

fn status(code: u16, reason: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    respond(code, &body)
}

fn respond(code: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

impl FakeApi {
    /// An API whose requests `chaos` disturbs.
    pub fn with_chaos(chaos: Arc<Chaos>) -> Self {
        Self { chaos: Some(chaos), ..Self::default() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A client whose every request this API answers.
    pub fn client(&self) -> kube::Client {
        let api = self.clone();
        let service = tower::service_fn(move |request: Request<kube::client::Body>| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(api.serve(request).await) }
        });
        kube::Client::new(service, "default")
    }

    async fn serve(&self, request: Request<kube::client::Body>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) => return status(400, "BadRequest", &error.to_string()),
        };
        let path = parts.uri.path().to_owned();
        let acts = parts.method != Method::GET;
        if let Some(chaos) = &self.chaos {
            chaos.delay("api", parts.method.as_str(), "request", &path, None).await;
        }
        let fault = match &self.chaos {
            Some(chaos) => chaos.fault("api", parts.method.as_str(), acts, &path),
            None => Fault::None,
        };
        match (&self.chaos, fault) {
            (Some(chaos), Fault::CrashBefore) => chaos.crash_here().await,
            (Some(chaos), Fault::Fail) => {
                return match chaos.roll(("api-failure", &path)) % 3 {
                    0 => status(404, "NotFound", "the server could not find the requested resource (simulator)"),
                    1 if acts => status(409, "Conflict", "the object has been modified (simulator)"),
                    _ => status(500, "InternalError", "injected by the simulator"),
                };
            }
            _ => {}
        }
        let method = parts.method.clone();
        let answer = self.answer(parts, path.clone(), body);
        if let Some(chaos) = &self.chaos {
            chaos.delay("api", method.as_str(), "answer", &path, None).await;
        }
        match (&self.chaos, fault) {
            (Some(chaos), Fault::CrashAfter) => chaos.crash_here().await,
            (_, Fault::LoseAnswer) => status(504, "Timeout", "answer lost (simulator)"),
            _ => answer,
        }
    }

    fn answer(&self, parts: http::request::Parts, path: String, body: Bytes) -> Response<Full<Bytes>> {
        let content_type =
            parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let mut state = self.state();
        state.requests.push((parts.method.clone(), path.clone()));
        if let Some(at) = state
            .faults
            .iter()
            .position(|(method, fragment, _, _)| *method == parts.method && path.contains(fragment.as_str()))
        {
            if state.faults[at].2 == 0 {
                let (_, _, _, code) = state.faults.remove(at);
                // A 404 as the API server gives it while a CRD reloads: for the whole resource, naming nothing.
                return match code {
                    404 => status(404, "NotFound", "the server could not find the requested resource (fake API)"),
                    _ => status(code, "InternalError", "injected by the fake API"),
                };
            }
            state.faults[at].2 -= 1;
        }
        let refused = state.clock.is_some_and(|now| {
            state
                .outages
                .iter()
                .any(|(fragment, from, until)| path.contains(fragment.as_str()) && (*from..*until).contains(&now))
        });
        if refused && parts.method != Method::GET {
            let message = "Internal error occurred: failed calling webhook: connection refused (simulator)";
            return status(500, "InternalError", message);
        }
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        // /apis/{group}/{version}/namespaces/{ns}/{resource}[/{name}[/{sub}]] or /api/v1/namespaces/...
        let rest = match segments.as_slice() {
            ["apis", _, _, "namespaces", rest @ ..] | ["api", _, "namespaces", rest @ ..] => rest,
            _ => return status(404, "NotFound", &format!("no route for {path}")),
        };
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&body) {
                Ok(value) => value,
                Err(error) => return status(400, "BadRequest", &error.to_string()),
            }
        };
        match (parts.method.clone(), rest) {
            (Method::GET, [namespace, resource, name]) => {
                match state.objects.get(&(resource.to_string(), namespace.to_string(), name.to_string())) {
                    Some(object) => respond(200, object),
                    None => status(404, "NotFound", &format!("{resource} \"{name}\" not found")),
                }
            }
            (Method::POST, [namespace, resource]) => {
                let name = body["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                let key = (resource.to_string(), namespace.to_string(), name.clone());
                if state.objects.contains_key(&key) {
                    return status(409, "AlreadyExists", &format!("{resource} \"{name}\" already exists"));
                }
                if state.terminating.contains(*namespace) && *resource != "events" {
                    let message =
                        format!("unable to create new content in namespace {namespace} because it is being terminated");
                    return status(403, "Forbidden", &message);
                }
                let mut body = body;
                if !body["metadata"]["creationTimestamp"].is_string()
                    && let Some(now) = state.clock
                {
                    body["metadata"]["creationTimestamp"] = json!(now.to_string());
                }
                if body["metadata"]["generation"].is_null() {
                    body["metadata"]["generation"] = json!(1);
                }
                let object = state.stamp(body, true);
                if *resource == "ecstaskruns" {
                    state.created_runs.push(object.clone());
                }
                state.objects.insert(key, object.clone());
                respond(201, &object)
            }
            (Method::PATCH, [namespace, resource, name, subresource @ ..]) => {
                let key = (resource.to_string(), namespace.to_string(), name.to_string());
                let Some(current) = state.objects.get(&key).cloned() else {
                    return status(404, "NotFound", &format!("{resource} \"{name}\" not found"));
                };
                let mut object = current.clone();
                // A resourceVersion in a patch is a precondition: the object must not have changed since.
                if let Some(version) = body["metadata"]["resourceVersion"].as_str()
                    && Some(version) != current["metadata"]["resourceVersion"].as_str()
                {
                    return status(
                        409,
                        "Conflict",
                        "the object has been modified; please apply your changes to the latest version and try again",
                    );
                }
                match (content_type.as_str(), subresource) {
                    // Server-side apply of the status by its one manager: the status it sends is the status.
                    ("application/apply-patch+yaml", ["status"]) => {
                        object["status"] = body["status"].clone();
                        if *resource == "ecstaskruns" {
                            let uid = object["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
                            state.run_statuses.push((uid, object["status"].clone()));
                        }
                    }
                    ("application/json-patch+json", []) => {
                        let patch: json_patch::Patch = match serde_json::from_value(body) {
                            Ok(patch) => patch,
                            Err(error) => return status(400, "BadRequest", &error.to_string()),
                        };
                        // The API server's JSON patch finds an absent field equal to null (kube's finalizer
                        // helper tests for that before adding the first finalizer).
                        if object["metadata"].get("finalizers").is_none() {
                            object["metadata"]["finalizers"] = Value::Null;
                        }
                        if let Err(error) = json_patch::patch(&mut object, &patch) {
                            return status(422, "Invalid", &error.to_string());
                        }
                        // An empty list is stored as none at all (metadata.finalizers is `omitempty`).
                        let finalizers = &object["metadata"]["finalizers"];
                        if (finalizers.is_null() || finalizers.as_array().is_some_and(Vec::is_empty))
                            && let Some(metadata) = object["metadata"].as_object_mut()
                        {
                            metadata.remove("finalizers");
                        }
                    }
                    ("application/merge-patch+json", _) => json_patch::merge(&mut object, &body),
                    (other, _) => return status(415, "UnsupportedMediaType", other),
                }
                let object = state.stamp(object, false);
                let gone = object["metadata"]["deletionTimestamp"].is_string()
                    && object["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty);
                if gone {
                    state.remove(&key);
                } else {
                    state.objects.insert(key, object.clone());
                }
                respond(200, &object)
            }
            // A replace of the status (a Workload's, as Kueue's job integrations write it): conditional on
            // the resourceVersion it carries.
            (Method::PUT, [namespace, resource, name, "status"]) => {
                let key = (resource.to_string(), namespace.to_string(), name.to_string());
                let Some(current) = state.objects.get(&key).cloned() else {
                    return status(404, "NotFound", &format!("{resource} \"{name}\" not found"));
                };
                if body["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
                    return status(409, "Conflict", "the object has been modified (fake API)");
                }
                let mut object = current;
                object["status"] = body["status"].clone();
                let object = state.stamp(object, false);
                state.objects.insert(key, object.clone());
                respond(200, &object)
            }
            // A delete with a uid precondition (ttlSecondsAfterFinished): marked while finalizers hold it.
            (Method::DELETE, [namespace, resource, name]) => {
                let key = (resource.to_string(), namespace.to_string(), name.to_string());
                let Some(mut object) = state.objects.get(&key).cloned() else {
                    return status(404, "NotFound", &format!("{resource} \"{name}\" not found"));
                };
                if let Some(uid) = body["preconditions"]["uid"].as_str()
                    && Some(uid) != object["metadata"]["uid"].as_str()
                {
                    return status(409, "Conflict", "Precondition failed: UID in precondition does not match");
                }
                if object["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty) {
                    state.remove(&key);
                    return respond(200, &object);
                }
                if !object["metadata"]["deletionTimestamp"].is_string() {
                    let now = state.clock.unwrap_or_else(Timestamp::now);
                    object["metadata"]["deletionTimestamp"] = json!(now.to_string());
                    object["metadata"]["generation"] =
                        json!(object["metadata"]["generation"].as_i64().unwrap_or(1) + 1);
                }
                let object = state.stamp(object, false);
                state.objects.insert(key, object.clone());
                respond(200, &object)
            }
            (method, _) => status(405, "MethodNotAllowed", &format!("{method} {path}")),
        }
    }

    /// From `from` until `until` (the test's clock), every write to a path containing `fragment` is
    /// refused with a 500, as when an admission webhook for it is down.
    pub fn refuse_writes(&self, fragment: &str, from: Timestamp, until: Timestamp) {
        self.state().outages.push((fragment.to_owned(), from, until));
    }

    /// The test's clock moved on: a DELETE marks objects at this time.
    pub fn set_now(&self, now: Timestamp) {
        self.state().clock = Some(now);
    }

    /// Creates a run as `kubectl apply` would: a fresh uid, generation 1, created at `now`.
    pub fn create_run(&self, namespace: &str, run: &EcsTaskRun, now: Timestamp) -> EcsTaskRun {
        let mut state = self.state();
        state.clock = Some(now);
        let mut value = serde_json::to_value(run).expect("a run serializes");
        let name = value["metadata"]["name"].as_str().expect("a run has a name").to_owned();
        value["metadata"]["namespace"] = json!(namespace);
        value["metadata"]["generation"] = json!(1);
        value["metadata"]["creationTimestamp"] = json!(now.to_string());
        state.uids += 1;
        value["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", state.uids));
        let value = state.stamp(value, false);
        state.created_runs.push(value.clone());
        state.objects.insert(("ecstaskruns".into(), namespace.into(), name), value.clone());
        serde_json::from_value(value).expect("a run deserializes")
    }

    /// Every run ever created, in the order they were (however soon they went again).
    pub fn created_runs(&self) -> Vec<EcsTaskRun> {
        let state = self.state();
        state
            .created_runs
            .iter()
            .map(|value| serde_json::from_value(value.clone()).expect("a run deserializes"))
            .collect()
    }

    /// Every run status applied since the last call, in order: (uid, status).
    pub fn take_run_statuses(&self) -> Vec<(String, ecsrun::api::EcsTaskRunStatus)> {
        std::mem::take(&mut self.state().run_statuses)
            .into_iter()
            .filter_map(|(uid, status)| Some((uid, serde_json::from_value(status).ok()?)))
            .collect()
    }

    /// Every run gone since the last call (its last state) and when it went.
    pub fn take_removed_runs(&self) -> Vec<(EcsTaskRun, Timestamp)> {
        std::mem::take(&mut self.state().removed_runs)
            .into_iter()
            .filter_map(|(run, at)| Some((serde_json::from_value(run).ok()?, at?)))
            .collect()
    }

    /// The namespace is being deleted: its runs are deleted, and nothing new is created in it.
    pub fn terminate_namespace(&self, namespace: &str, now: Timestamp) {
        {
            let mut state = self.state();
            state.terminating.insert(namespace.to_owned());
            state.objects.retain(|(resource, at, _), _| !(resource == "ecstaskschedules" && at == namespace));
        }
        let names: Vec<String> = self
            .runs()
            .into_iter()
            .filter(|run| run.metadata.namespace.as_deref() == Some(namespace))
            .filter_map(|run| run.metadata.name)
            .collect();
        for name in names {
            self.delete_run(namespace, &name, now);
        }
    }

    /// Whether the namespace is being deleted.
    pub fn terminating(&self, namespace: &str) -> bool {
        self.state().terminating.contains(namespace)
    }

    /// The schedule as the API has it now.
    pub fn schedule(&self, namespace: &str, name: &str) -> Option<ecsrun::api::EcsTaskSchedule> {
        let state = self.state();
        let value = state.objects.get(&("ecstaskschedules".into(), namespace.into(), name.into()))?;
        Some(serde_json::from_value(value.clone()).expect("a stored schedule deserializes"))
    }

    /// A user's edit of a schedule's spec.
    pub fn edit_schedule(&self, namespace: &str, name: &str, edit: impl FnOnce(&mut ecsrun::api::EcsTaskScheduleSpec)) {
        let mut state = self.state();
        let key = ("ecstaskschedules".to_owned(), namespace.to_owned(), name.to_owned());
        let Some(value) = state.objects.get(&key).cloned() else { return };
        let mut schedule: ecsrun::api::EcsTaskSchedule =
            serde_json::from_value(value).expect("a schedule deserializes");
        edit(&mut schedule.spec);
        let mut value = serde_json::to_value(&schedule).expect("a schedule serializes");
        value["metadata"]["generation"] = json!(schedule.metadata.generation.unwrap_or(1) + 1);
        let value = state.stamp(value, false);
        state.objects.insert(key, value);
    }

    /// Every object of `resource` (its plural, e.g. `workloads`), as stored.
    pub fn objects(&self, resource: &str) -> Vec<Value> {
        let state = self.state();
        state.objects.iter().filter(|((r, _, _), _)| r == resource).map(|(_, value)| value.clone()).collect()
    }

    /// The object `resource` `namespace`/`name`, as stored.
    pub fn object(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.state().objects.get(&(resource.to_owned(), namespace.to_owned(), name.to_owned())).cloned()
    }

    /// Changes an object as another controller or a user would (a new resourceVersion).
    pub fn edit_object(&self, resource: &str, namespace: &str, name: &str, edit: impl FnOnce(&mut Value)) {
        let mut state = self.state();
        let key = (resource.to_owned(), namespace.to_owned(), name.to_owned());
        let Some(mut value) = state.objects.get(&key).cloned() else { return };
        edit(&mut value);
        let value = state.stamp(value, false);
        state.objects.insert(key, value);
    }

    /// Deletes an object as a user would: marked while finalizers hold it, else gone.
    pub fn delete_object(&self, resource: &str, namespace: &str, name: &str) {
        let mut state = self.state();
        let key = (resource.to_owned(), namespace.to_owned(), name.to_owned());
        let Some(mut value) = state.objects.get(&key).cloned() else { return };
        if value["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty) {
            state.remove(&key);
            return;
        }
        if !value["metadata"]["deletionTimestamp"].is_string() {
            let now = state.clock.unwrap_or_else(Timestamp::now);
            value["metadata"]["deletionTimestamp"] = json!(now.to_string());
        }
        let value = state.stamp(value, false);
        state.objects.insert(key, value);
    }

    /// The run as the API has it now.
    pub fn run(&self, namespace: &str, name: &str) -> Option<EcsTaskRun> {
        let state = self.state();
        let value = state.objects.get(&("ecstaskruns".into(), namespace.into(), name.into()))?;
        Some(serde_json::from_value(value.clone()).expect("a stored run deserializes"))
    }

    /// Every run, by (namespace, name).
    pub fn runs(&self) -> Vec<EcsTaskRun> {
        let state = self.state();
        state
            .objects
            .iter()
            .filter(|((resource, _, _), _)| resource == "ecstaskruns")
            .map(|(_, value)| serde_json::from_value(value.clone()).expect("a stored run deserializes"))
            .collect()
    }

    /// Changes a run's spec (generation goes up), as an edit would.
    pub fn edit_spec(&self, namespace: &str, name: &str, edit: impl FnOnce(&mut ecsrun::api::EcsTaskRunSpec)) {
        let mut state = self.state();
        let key = ("ecstaskruns".to_owned(), namespace.to_owned(), name.to_owned());
        let Some(value) = state.objects.get(&key).cloned() else { return };
        let mut run: EcsTaskRun = serde_json::from_value(value).expect("a stored run deserializes");
        edit(&mut run.spec);
        let mut value = serde_json::to_value(&run).expect("a run serializes");
        value["metadata"]["generation"] = json!(run.metadata.generation.unwrap_or(1) + 1);
        let value = state.stamp(value, false);
        state.objects.insert(key, value);
    }

    /// Deletes a run: with finalizers it only gets a deletionTimestamp (and a new generation); without,
    /// it is gone at once.
    pub fn delete_run(&self, namespace: &str, name: &str, now: Timestamp) {
        let mut state = self.state();
        state.clock = Some(now);
        let key = ("ecstaskruns".to_owned(), namespace.to_owned(), name.to_owned());
        let Some(mut value) = state.objects.get(&key).cloned() else { return };
        if value["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty) {
            state.remove(&key);
            return;
        }
        if !value["metadata"]["deletionTimestamp"].is_string() {
            value["metadata"]["deletionTimestamp"] = json!(now.to_string());
            value["metadata"]["generation"] = json!(value["metadata"]["generation"].as_i64().unwrap_or(1) + 1);
        }
        let value = state.stamp(value, false);
        state.objects.insert(key, value);
    }

    /// Creates or replaces a schedule (status included) as the API would hold it; returns it with its uid.
    pub fn put_schedule(
        &self,
        namespace: &str,
        schedule: &ecsrun::api::EcsTaskSchedule,
    ) -> ecsrun::api::EcsTaskSchedule {
        let mut state = self.state();
        let mut value = serde_json::to_value(schedule).expect("a schedule serializes");
        value["metadata"]["namespace"] = json!(namespace);
        let value = state.stamp(value, true);
        let name = value["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        state.objects.insert(("ecstaskschedules".into(), namespace.into(), name), value.clone());
        serde_json::from_value(value).expect("a schedule deserializes")
    }

    pub fn put_secret(&self, namespace: &str, secret: &Secret) {
        let mut state = self.state();
        let value = state.stamp(serde_json::to_value(secret).expect("a Secret serializes"), true);
        let name = value["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        state.objects.insert(("secrets".into(), namespace.into(), name), value);
    }

    /// Events about the object named `name`: (reason, note, count), oldest first.
    pub fn events(&self, namespace: &str, name: &str) -> Vec<(String, String, i64)> {
        let state = self.state();
        let mut events: Vec<(u64, String, String, i64)> = state
            .objects
            .iter()
            .filter(|((resource, ns, _), event)| {
                resource == "events" && ns == namespace && event["regarding"]["name"].as_str() == Some(name)
            })
            .map(|(_, event)| {
                (
                    event["metadata"]["resourceVersion"].as_str().and_then(|rv| rv.parse().ok()).unwrap_or(0),
                    event["reason"].as_str().unwrap_or_default().to_owned(),
                    event["note"].as_str().unwrap_or_default().to_owned(),
                    event["series"]["count"].as_i64().unwrap_or(1),
                )
            })
            .collect();
        events.sort();
        events.into_iter().map(|(_, reason, note, count)| (reason, note, count)).collect()
    }

    /// Requests served so far whose method is `method` and whose path contains `fragment`.
    pub fn count(&self, method: Method, fragment: &str) -> usize {
        self.state().requests.iter().filter(|(m, path)| *m == method && path.contains(fragment)).count()
    }

    /// Serves the next `skip` `method` requests whose path contains `fragment`, then answers the one after
    /// with `code` instead of serving it.
    pub fn fail_after(&self, skip: usize, method: Method, fragment: &str, code: u16) {
        self.state().faults.push((method, fragment.to_owned(), skip, code));
    }
}

impl State {
    /// Removes an object, noting a run's removal and when (`take_removed_runs`).
    fn remove(&mut self, key: &Key) {
        let removed = self.objects.remove(key);
        if let Some(run) = removed.filter(|_| key.0 == "ecstaskruns") {
            self.removed_runs.push((run, self.clock));
        }
    }

    /// A new resourceVersion (and, for a new object, a uid).
    fn stamp(&mut self, mut object: Value, new: bool) -> Value {
        self.revision += 1;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        if new && !object["metadata"]["uid"].is_string() {
            self.uids += 1;
            object["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", self.uids));
        }
        object
    }
}
