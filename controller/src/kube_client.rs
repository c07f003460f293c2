//! The Kubernetes client, with every request counted by verb and resource
//! (`ecsrun_kube_requests_total`), so API server load per run can be read off the controller itself.

use std::sync::Arc;

use kube::client::{Body, ClientBuilder};
use kube::{Client, Config};
use tower::util::MapRequestLayer;

use crate::metrics::Metrics;

/// The one field manager that owns `.status` (of runs, schedules and policies).
pub const FIELD_MANAGER: &str = "ecsrun-controller";

/// A client for `config` that counts its requests in `metrics`.
pub fn instrumented(config: Config, metrics: Arc<Metrics>) -> Result<Client, kube::Error> {
    let count = MapRequestLayer::new(move |request: http::Request<Body>| {
        let (verb, resource) = label(&request);
        metrics.kube_requests.with_label_values(&[verb, &resource]).inc();
        request
    });
    Ok(ClientBuilder::try_from(config)?.with_layer(&count).build())
}

/// (verb, resource[/subresource]): `APPLY` for server-side apply and `WATCH` for watches, as the API
/// server's own metrics name them. Bounded: only the resources the controller touches appear.
fn label<B>(request: &http::Request<B>) -> (&'static str, String) {
    let uri = request.uri();
    let is = |header: &str, needle: &str| {
        request.headers().get(header).and_then(|value| value.to_str().ok()).is_some_and(|value| value.contains(needle))
    };
    let verb = match *request.method() {
        http::Method::GET if uri.query().is_some_and(|query| query.contains("watch=true")) => "WATCH",
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH if is("content-type", "apply-patch") => "APPLY",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        _ => "OTHER",
    };
    (verb, resource(uri.path()))
}

/// `/apis/ecsrun.dev/v1alpha1/namespaces/ns/ecstaskruns/name/status` → `ecstaskruns/status`.
fn resource(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|segment| !segment.is_empty()).collect();
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    }
    .unwrap_or_default();
    let rest = match rest {
        ["namespaces", _, resource @ ..] if !resource.is_empty() => resource,
        other => other,
    };
    match rest {
        [] => "other".into(),
        [resource] | [resource, _] => (*resource).into(),
        [resource, _, subresource, ..] => format!("{resource}/{subresource}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_labelled_by_verb_and_resource() {
        let cases = [
            ("GET", "/apis/ecsrun.dev/v1alpha1/ecstaskruns?watch=true&resourceVersion=1", "", "WATCH", "ecstaskruns"),
            ("GET", "/api/v1/namespaces/team-a/secrets/aws", "", "GET", "secrets"),
            (
                "PATCH",
                "/apis/ecsrun.dev/v1alpha1/namespaces/a/ecstaskruns/r/status?fieldManager=x&force=true",
                "application/apply-patch+yaml",
                "APPLY",
                "ecstaskruns/status",
            ),
            (
                "PATCH",
                "/apis/ecsrun.dev/v1alpha1/namespaces/a/ecstaskruns/r",
                "application/json-patch+json",
                "PATCH",
                "ecstaskruns",
            ),
            ("POST", "/apis/events.k8s.io/v1/namespaces/a/events", "application/json", "POST", "events"),
            ("PUT", "/apis/coordination.k8s.io/v1/namespaces/ecsrun/leases/ecsrun-controller", "", "PUT", "leases"),
            ("GET", "/version", "", "GET", "other"),
        ];
        for (method, uri, content_type, verb, resource) in cases {
            let request =
                http::Request::builder().method(method).uri(uri).header("content-type", content_type).body(()).unwrap();
            assert_eq!(label(&request), (verb, resource.to_string()), "{method} {uri}");
        }
    }
}
