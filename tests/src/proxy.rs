//! An HTTP proxy in front of the ECS endpoint (moto) that behaves, for throttling, as ECS does: a token
//! bucket per (access key, region, throttle class) with ECS's documented burst and sustained rates, and a
//! `ThrottlingException` ("Rate exceeded", HTTP 400) for a call that finds its bucket empty. It counts
//! every call by operation, every throttle, the calls admitted per second per class, the ARNs per
//! DescribeTasks, and when each run's first RunTask passed. On top, it injects faults on a share of the
//! calls (`set_faults`): ThrottlingException, HTTP 500, a connection dropped before or after the call
//! reached ECS, and slow answers. The fleet benchmark and the fault suite both stand behind it. The fault
//! suite's task events pass sends the controller's SQS calls through it too: they get the same faults, an
//! outage can be switched on (`set_outage`), and a DeleteMessageBatch held, to kill the consumer mid-batch.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// ECS's throttle classes, as the proxy enforces them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Cluster resource read: DescribeTasks, ListTasks.
    Read,
    /// Cluster resource modify: RunTask, StopTask.
    Modify,
    /// Fargate task launches: RunTask with launchType FARGATE or a FARGATE capacity provider.
    Launch,
    /// Task definition read: DescribeTaskDefinition.
    TaskDefinitionRead,
}

impl Class {
    fn of(operation: &str, body: &serde_json::Value) -> Vec<Class> {
        match operation {
            "DescribeTasks" | "ListTasks" => vec![Class::Read],
            "StopTask" => vec![Class::Modify],
            "RunTask" => {
                let fargate = body["launchType"] == "FARGATE"
                    || body["capacityProviderStrategy"].as_array().is_some_and(|items| {
                        items.iter().any(|item| {
                            item["capacityProvider"] == "FARGATE" || item["capacityProvider"] == "FARGATE_SPOT"
                        })
                    });
                if fargate { vec![Class::Modify, Class::Launch] } else { vec![Class::Modify] }
            }
            "DescribeTaskDefinition" => vec![Class::TaskDefinitionRead],
            _ => Vec::new(),
        }
    }
}

/// A token bucket: `burst` tokens, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Bucket {
    pub per_second: u32,
    pub burst: u32,
}

/// ECS's documented defaults per account and region.
pub fn ecs_buckets() -> BTreeMap<Class, Bucket> {
    BTreeMap::from([
        (Class::Read, Bucket { per_second: 20, burst: 100 }),
        (Class::Modify, Bucket { per_second: 40, burst: 100 }),
        (Class::Launch, Bucket { per_second: 20, burst: 100 }),
        (Class::TaskDefinitionRead, Bucket { per_second: 20, burst: 100 }),
    ])
}

/// A fault the proxy injects in place of (or around) a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// ThrottlingException, as an empty bucket answers; not forwarded.
    Throttle,
    /// HTTP 500 ServerException; not forwarded.
    ServerError,
    /// The connection drops before the call reaches ECS.
    DropBefore,
    /// The call reaches ECS (a RunTask starts its task), then the connection drops before the answer.
    DropAfter,
    /// The answer comes `Faults::slow` late.
    Slow,
    /// The call takes `Faults::stalled` (a congested path, a slow endpoint): held for half of it on its way
    /// to ECS, for the other half on its way back. A caller that gives up in the first half (its attempt
    /// timed out, it was killed) may or may not have its call reach ECS, as with any server; in the second
    /// half the call has taken effect and only the answer is lost.
    Stall,
}

impl Fault {
    pub const ALL: [Fault; 6] =
        [Fault::Throttle, Fault::ServerError, Fault::DropBefore, Fault::DropAfter, Fault::Slow, Fault::Stall];
}

/// Which faults to inject, on what share of the calls.
#[derive(Clone, Debug)]
pub struct Faults {
    /// Share of ECS calls that get a fault, 0.0 to 1.0.
    pub rate: f64,
    /// The faults, chosen in turn.
    pub kinds: Vec<Fault>,
    pub slow: Duration,
    /// How long a stalled call is held: spread over this range, call by call.
    pub stalled: std::ops::Range<Duration>,
    /// Only these operations get faults; empty: every operation.
    pub operations: Vec<String>,
}

/// What the proxy counted, cumulative since it started (or since `reset`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Counts {
    /// Calls by operation, throttled ones included.
    pub calls: BTreeMap<String, u64>,
    /// ThrottlingExceptions the proxy answered, by operation.
    pub throttled: BTreeMap<String, u64>,
    /// Calls forwarded to the endpoint per class, per second since the start.
    #[serde(skip)]
    pub admitted_per_second: BTreeMap<Class, BTreeMap<u64, u64>>,
    /// Task ARNs asked for in forwarded DescribeTasks calls.
    pub describe_arns: u64,
    /// Faults injected, by fault.
    pub faults: BTreeMap<Fault, u64>,
}

impl Counts {
    pub fn calls(&self, operation: &str) -> u64 {
        self.calls.get(operation).copied().unwrap_or(0)
    }

    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    pub fn total_throttled(&self) -> u64 {
        self.throttled.values().sum()
    }

    /// Calls by operation since `earlier`.
    pub fn since(&self, earlier: &Counts) -> BTreeMap<String, u64> {
        self.calls.iter().map(|(op, n)| (op.clone(), n - earlier.calls(op))).filter(|(_, n)| *n > 0).collect()
    }

    /// The most calls of `class` forwarded in any one second.
    pub fn peak_per_second(&self, class: Class) -> u64 {
        self.admitted_per_second.get(&class).and_then(|seconds| seconds.values().max().copied()).unwrap_or(0)
    }
}

struct Shared {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    buckets: BTreeMap<Class, Bucket>,
    limiters: Mutex<HashMap<(String, Class), Arc<DefaultDirectRateLimiter>>>,
    started: Instant,
    counts: Mutex<Counts>,
    /// When the first RunTask of each startedBy was forwarded.
    first_run_task: Mutex<HashMap<String, Instant>>,
    faults: Mutex<Option<Faults>>,
    /// Drives which calls get a fault: a fixed sequence, so a run can be repeated.
    dice: Mutex<u64>,
    /// Signalled after each RunTask is forwarded (the fault suite kills the controller then).
    pub run_task_forwarded: tokio::sync::Notify,
    /// Operations answered 503 ServiceUnavailable while listed: a service out for a while.
    outage: Mutex<Vec<String>>,
    /// Armed: the next DeleteMessageBatch is held (never answered) and `delete_held` signalled, so the
    /// consumer is caught mid-batch: events received and applied, their messages not deleted.
    hold_delete: std::sync::atomic::AtomicBool,
    delete_held: tokio::sync::Notify,
}

/// The proxy; it stops when dropped.
pub struct EcsProxy {
    pub endpoint: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl EcsProxy {
    /// Listens on a loopback port and forwards to `upstream`, enforcing `buckets`.
    pub async fn start(upstream: &str, buckets: BTreeMap<Class, Bucket>) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).pool_max_idle_per_host(64).build_http(),
            buckets,
            limiters: Mutex::default(),
            started: Instant::now(),
            counts: Mutex::default(),
            first_run_task: Mutex::default(),
            faults: Mutex::default(),
            dice: Mutex::new(0x9E37_79B9_7F4A_7C15),
            run_task_forwarded: tokio::sync::Notify::new(),
            outage: Mutex::default(),
            hold_delete: std::sync::atomic::AtomicBool::new(false),
            delete_held: tokio::sync::Notify::new(),
        });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new().fallback(forward).with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("ecs proxy: {error}");
            }
        });
        Ok(Self { endpoint, shared, server })
    }

    /// Injects `faults` from now on; None stops injecting.
    pub fn set_faults(&self, faults: Option<Faults>) {
        *self.shared.faults.lock().unwrap_or_else(PoisonError::into_inner) = faults;
    }

    /// Answers `operations` with 503 ServiceUnavailable from now on; empty ends the outage.
    pub fn set_outage(&self, operations: &[&str]) {
        *self.shared.outage.lock().unwrap_or_else(PoisonError::into_inner) =
            operations.iter().map(|operation| (*operation).to_owned()).collect();
    }

    /// Holds the next DeleteMessageBatch, and resolves once one is held (the consumer mid-batch); the held
    /// call is dropped when its caller dies. Disarmed again if none comes within `within`; says whether
    /// one came.
    pub async fn hold_next_delete(&self, within: Duration) -> bool {
        self.shared.hold_delete.store(true, std::sync::atomic::Ordering::SeqCst);
        let held = tokio::time::timeout(within, self.shared.delete_held.notified()).await.is_ok();
        self.shared.hold_delete.store(false, std::sync::atomic::Ordering::SeqCst);
        held
    }

    /// Resolves after the next RunTask has been forwarded to ECS.
    pub async fn run_task_forwarded(&self) {
        self.shared.run_task_forwarded.notified().await;
    }

    pub fn counts(&self) -> Counts {
        self.shared.counts.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// When the first RunTask of the run with this startedBy was forwarded.
    pub fn first_run_task(&self, started_by: &str) -> Option<Instant> {
        self.shared.first_run_task.lock().unwrap_or_else(PoisonError::into_inner).get(started_by).copied()
    }

    /// The second (since the proxy started) that `at` falls in, as `Counts::admitted_per_second` keys it.
    pub fn second_of(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.shared.started).as_secs()
    }
}

impl Drop for EcsProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn header<'a>(request: &'a Request, name: &str) -> &'a str {
    request.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or_default()
}

/// The caller's access key and region from the SigV4 Authorization header: ECS's throttling scope.
fn caller(authorization: &str) -> String {
    authorization
        .split("Credential=")
        .nth(1)
        .and_then(|credential| {
            let mut parts = credential.split('/');
            let key = parts.next()?;
            let region = parts.nth(1)?;
            Some(format!("{key}/{region}"))
        })
        .unwrap_or_default()
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    match handle(&shared, request).await {
        Ok(response) => response,
        Err(error) => (StatusCode::BAD_GATEWAY, format!("ecs proxy: {error:#}")).into_response(),
    }
}

async fn handle(shared: &Shared, request: Request) -> anyhow::Result<Response> {
    let operation = header(&request, "x-amz-target").rsplit('.').next().unwrap_or_default().to_owned();
    let caller = caller(header(&request, "authorization"));
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.context("reading the request")?;
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let classes = Class::of(&operation, &json);
    let now = Instant::now();

    let throttled = classes.iter().any(|class| {
        let Some(bucket) = shared.buckets.get(class) else { return false };
        let limiter = shared
            .limiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((caller.clone(), *class))
            .or_insert_with(|| {
                let per_second = NonZeroU32::new(bucket.per_second).unwrap_or(NonZeroU32::MIN);
                let burst = NonZeroU32::new(bucket.burst).unwrap_or(NonZeroU32::MIN);
                Arc::new(RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)))
            })
            .clone();
        limiter.check().is_err()
    });
    {
        let mut counts = shared.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *counts.calls.entry(operation.clone()).or_default() += 1;
        if throttled {
            *counts.throttled.entry(operation.clone()).or_default() += 1;
        } else {
            let second = now.saturating_duration_since(shared.started).as_secs();
            for class in &classes {
                *counts.admitted_per_second.entry(*class).or_default().entry(second).or_default() += 1;
            }
            if operation == "DescribeTasks" {
                counts.describe_arns += json["tasks"].as_array().map_or(0, Vec::len) as u64;
            }
        }
    }
    if throttled {
        return Ok(error_response(StatusCode::BAD_REQUEST, "ThrottlingException", "Rate exceeded"));
    }
    if shared.outage.lock().unwrap_or_else(PoisonError::into_inner).contains(&operation) {
        return Ok(error_response(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "injected outage"));
    }
    if operation == "DeleteMessageBatch" && shared.hold_delete.swap(false, std::sync::atomic::Ordering::SeqCst) {
        // notify_one keeps the signal for a waiter that has not polled yet.
        shared.delete_held.notify_one();
        tokio::time::sleep(Duration::from_secs(60)).await;
        return Ok(dropped());
    }
    let fault = if operation.is_empty() { None } else { shared.roll(&operation) };
    if let Some(fault) = fault {
        *shared.counts.lock().unwrap_or_else(PoisonError::into_inner).faults.entry(fault).or_default() += 1;
    }
    match fault {
        Some(Fault::Throttle) => {
            return Ok(error_response(StatusCode::BAD_REQUEST, "ThrottlingException", "Rate exceeded"));
        }
        Some(Fault::ServerError) => {
            return Ok(error_response(StatusCode::INTERNAL_SERVER_ERROR, "ServerException", "injected by the proxy"));
        }
        Some(Fault::DropBefore) => return Ok(dropped()),
        Some(Fault::Slow) => {
            let slow = shared.faults.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(|f| f.slow);
            tokio::time::sleep(slow.unwrap_or_default()).await;
        }
        Some(Fault::Stall) => {
            let held = shared.stall() / 2;
            tokio::time::sleep(held).await;
            let answer = deliver(shared, &operation, parts, body, fault).await;
            tokio::time::sleep(held).await;
            return answer;
        }
        Some(Fault::DropAfter) | None => {}
    }
    deliver(shared, &operation, parts, body, fault).await
}

/// Forwards the call to ECS and answers with what ECS answered (or, for DropAfter, a dropped connection).
async fn deliver(
    shared: &Shared,
    operation: &str,
    parts: http::request::Parts,
    body: Bytes,
    fault: Option<Fault>,
) -> anyhow::Result<Response> {
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let now = Instant::now();
    if operation == "RunTask"
        && let Some(started_by) = json["startedBy"].as_str()
    {
        shared
            .first_run_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(started_by.to_owned())
            .or_insert(now);
    }

    let mut upstream = http::Request::builder().method(parts.method).uri(format!(
        "{}{}",
        shared.upstream,
        parts.uri.path_and_query().map_or("/", |path| path.as_str())
    ));
    for (name, value) in &parts.headers {
        if name != "host" {
            upstream = upstream.header(name, value);
        }
    }
    let answer = tokio::time::timeout(Duration::from_secs(120), shared.client.request(upstream.body(Full::new(body))?))
        .await
        .context("the ECS endpoint did not answer in 120s")?
        .context("forwarding to the ECS endpoint")?;
    let (parts, body) = answer.into_parts();
    let body = body.collect().await.context("reading the ECS endpoint's answer")?.to_bytes();
    if operation == "RunTask" {
        shared.run_task_forwarded.notify_waiters();
    }
    if fault == Some(Fault::DropAfter) {
        return Ok(dropped());
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

impl Shared {
    /// How long the next stalled call is held.
    fn stall(&self) -> Duration {
        let range = self.faults.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(|f| f.stalled.clone());
        let Some(range) = range else { return Duration::ZERO };
        let spread = range.end.saturating_sub(range.start);
        let unit = (self.next_die() >> 11) as f64 / (1u64 << 53) as f64;
        range.start + spread.mul_f64(unit)
    }

    /// The next number of a fixed sequence (xorshift64*: plenty for choosing calls, the same every run).
    fn next_die(&self) -> u64 {
        let mut dice = self.dice.lock().unwrap_or_else(PoisonError::into_inner);
        *dice ^= *dice >> 12;
        *dice ^= *dice << 25;
        *dice ^= *dice >> 27;
        dice.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Whether this call gets a fault, and which.
    fn roll(&self, operation: &str) -> Option<Fault> {
        let faults = self.faults.lock().unwrap_or_else(PoisonError::into_inner).clone()?;
        if faults.kinds.is_empty()
            || !(faults.operations.is_empty() || faults.operations.iter().any(|o| o == operation))
        {
            return None;
        }
        let value = self.next_die();
        let unit = (value >> 11) as f64 / (1u64 << 53) as f64;
        (unit < faults.rate).then(|| faults.kinds[(value % faults.kinds.len() as u64) as usize])
    }
}

/// An error as ECS answers it (awsJson1_1): the SDK classifies it by `__type` and retries what is transient.
fn error_response(status: StatusCode, type_: &'static str, message: &str) -> Response {
    let body = format!(r#"{{"__type":"{type_}","message":"{message}"}}"#);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
    headers.insert("x-amzn-errortype", HeaderValue::from_static(type_));
    response
}

/// A response whose body fails at once: the server aborts the connection mid-answer, which the client
/// sees as a dropped connection.
fn dropped() -> Response {
    let failing = futures::stream::once(async { Err::<Bytes, std::io::Error>(std::io::Error::other("injected drop")) });
    let mut response = Response::new(Body::from_stream(failing));
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_is_the_access_key_and_region_of_the_signature() {
        let authorization = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261123/eu-west-1/ecs/aws4_request, \
                             SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(caller(authorization), "AKIDEXAMPLE/eu-west-1");
        assert_eq!(caller(""), "");
    }

    #[test]
    fn operations_fall_in_ecs_throttle_classes() {
        let fargate = serde_json::json!({"launchType": "FARGATE"});
        let spot = serde_json::json!({"capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT"}]});
        assert_eq!(Class::of("RunTask", &fargate), vec![Class::Modify, Class::Launch]);
        assert_eq!(Class::of("RunTask", &spot), vec![Class::Modify, Class::Launch]);
        assert_eq!(Class::of("RunTask", &serde_json::json!({"launchType": "EC2"})), vec![Class::Modify]);
        assert_eq!(Class::of("StopTask", &fargate), vec![Class::Modify]);
        assert_eq!(Class::of("ListTasks", &fargate), vec![Class::Read]);
        assert_eq!(Class::of("DescribeTaskDefinition", &fargate), vec![Class::TaskDefinitionRead]);
        assert!(Class::of("CreateCluster", &fargate).is_empty());
    }
}
