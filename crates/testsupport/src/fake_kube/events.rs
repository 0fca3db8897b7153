//! Events, core/v1 and events.k8s.io/v1: create, JSON merge-patch (kube's `Recorder`
//! patches a repeated event into a `series`), get and list. Each API group keeps its own
//! Events (the real API server converts between the two; the fake does not).

use std::sync::{Arc, Mutex, MutexGuard};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::Response,
};
use serde_json::{Value, json};

use super::{
    resources::timestamp_now,
    server::ServerState,
    status::{bad_request, failure, json_response, not_found},
    tokens::random_uid,
};

pub(crate) const CORE: &str = "v1";
pub(crate) const EVENTS_V1: &str = "events.k8s.io/v1";

/// Every Event, in creation order; patches update an Event in place.
#[derive(Default)]
pub(crate) struct EventLog(Mutex<Vec<Value>>);

impl EventLog {
    fn lock(&self) -> MutexGuard<'_, Vec<Value>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn all(&self) -> Vec<Value> {
        self.lock().clone()
    }
}

fn same(event: &Value, api_version: &str, ns: &str, name: &str) -> bool {
    event["apiVersion"] == api_version
        && event["metadata"]["namespace"] == ns
        && event["metadata"]["name"] == name
}

/// `POST .../namespaces/{ns}/events` for `api_version`.
pub(crate) async fn create(
    api_version: &'static str,
    State(state): State<Arc<ServerState>>,
    Path(ns): Path<String>,
    body: Bytes,
) -> Response {
    if state.faults.take_event_failure() {
        return super::Fault::Status(500).response();
    }
    let Ok(mut event) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("the request body is not a JSON Event");
    };
    if event["metadata"]["namespace"]
        .as_str()
        .is_some_and(|n| n != ns)
    {
        return bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        );
    }
    let name = match (
        event["metadata"]["name"].as_str(),
        event["metadata"]["generateName"].as_str(),
    ) {
        (Some(name), _) => name.to_string(),
        (None, Some(prefix)) => format!("{prefix}{}", &random_uid()[..5]),
        (None, None) => return failure(422, "Invalid", "Event: metadata.name: Required value"),
    };
    event["apiVersion"] = json!(api_version);
    event["kind"] = json!("Event");
    let meta = &mut event["metadata"];
    meta["name"] = json!(name);
    meta["namespace"] = json!(ns);
    meta["uid"] = json!(random_uid());
    meta["creationTimestamp"] = json!(timestamp_now());
    meta["resourceVersion"] = json!(state.store.next_rv().to_string());
    let mut log = state.events.lock();
    if log.iter().any(|e| same(e, api_version, &ns, &name)) {
        let message = format!("events \"{name}\" already exists");
        return failure(409, "AlreadyExists", &message);
    }
    log.push(event.clone());
    json_response(StatusCode::CREATED, &event)
}

/// `PATCH .../namespaces/{ns}/events/{name}` with a merge patch (JSON or strategic; for
/// Event fields the two merge the same way).
pub(crate) async fn patch(
    api_version: &'static str,
    State(state): State<Arc<ServerState>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if state.faults.take_event_failure() {
        return super::Fault::Status(500).response();
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/merge-patch+json")
        && !content_type.starts_with("application/strategic-merge-patch+json")
    {
        let message = format!("the fake API server does not support patch type {content_type:?}");
        return failure(415, "UnsupportedMediaType", &message);
    }
    let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("the patch is not JSON");
    };
    let rv = state.store.next_rv();
    let mut log = state.events.lock();
    let Some(event) = log.iter_mut().find(|e| same(e, api_version, &ns, &name)) else {
        return not_found("events", group(api_version), &name);
    };
    let identity = event["metadata"].clone();
    merge(event, &patch);
    // Identity fields are not patchable.
    for field in ["name", "namespace", "uid", "creationTimestamp"] {
        event["metadata"][field] = identity[field].clone();
    }
    event["metadata"]["resourceVersion"] = json!(rv.to_string());
    json_response(StatusCode::OK, event)
}

/// `GET .../namespaces/{ns}/events/{name}`.
pub(crate) async fn get_one(
    api_version: &'static str,
    State(state): State<Arc<ServerState>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let log = state.events.lock();
    match log.iter().find(|e| same(e, api_version, &ns, &name)) {
        Some(event) => json_response(StatusCode::OK, event),
        None => not_found("events", group(api_version), &name),
    }
}

/// `GET .../namespaces/{ns}/events` (no watch, no selectors).
pub(crate) async fn list(
    api_version: &'static str,
    State(state): State<Arc<ServerState>>,
    Path(ns): Path<String>,
) -> Response {
    let items: Vec<Value> = state
        .events
        .lock()
        .iter()
        .filter(|e| e["apiVersion"] == api_version && e["metadata"]["namespace"] == ns.as_str())
        .cloned()
        .collect();
    let rv = state.store.current_rv().to_string();
    let body = json!({
        "kind": "EventList", "apiVersion": api_version,
        "metadata": { "resourceVersion": rv }, "items": items,
    });
    json_response(StatusCode::OK, &body)
}

fn group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    for (key, value) in patch {
        if value.is_null() {
            if let Value::Object(map) = target {
                map.remove(key);
            }
        } else {
            merge(&mut target[key.as_str()], value);
        }
    }
}
