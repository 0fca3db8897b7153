//! Secrets, ConfigMaps, Pods, ServiceAccounts and Nodes: GET of one object, list (with
//! field selectors), and the `?watch=true` variant of list, which `watch.rs` streams.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    extract::{Path, Query, State, rejection::QueryRejection},
    http::StatusCode,
    response::Response,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    selector::FieldSelector,
    server::ServerState,
    status::{bad_request, json_response, not_found},
    store::Kind,
    tokens::{random_uid, unix_now},
    watch,
};

/// The list/watch query parameters the fake understands (others, like `limit`, are ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListQuery {
    pub watch: Option<String>,
    pub resource_version: Option<String>,
    pub timeout_seconds: Option<u64>,
    pub allow_watch_bookmarks: Option<bool>,
    pub send_initial_events: Option<bool>,
    pub field_selector: Option<String>,
    pub label_selector: Option<String>,
}

impl ListQuery {
    fn is_watch(&self) -> bool {
        matches!(self.watch.as_deref(), Some("true" | "1"))
    }
}

fn kind_of(resource: &str) -> Option<Kind> {
    match resource {
        "secrets" => Some(Kind::Secret),
        "configmaps" => Some(Kind::ConfigMap),
        "pods" => Some(Kind::Pod),
        "serviceaccounts" => Some(Kind::ServiceAccount),
        "nodes" => Some(Kind::Node),
        _ => None,
    }
}

fn unknown_resource() -> Response {
    super::status::failure(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// `GET /api/v1/namespaces/{ns}/{resource}`: list or watch in one namespace.
pub(crate) async fn namespaced(
    State(state): State<Arc<ServerState>>,
    Path((ns, resource)): Path<(String, String)>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return bad_request("invalid list or watch query parameters");
    };
    match kind_of(&resource) {
        Some(kind) if !kind.cluster_scoped() => {
            list_or_watch(&state, kind, kind.api_version(), Some(ns), &query)
        }
        _ => unknown_resource(),
    }
}

/// `GET /api/v1/{resource}`: list or watch across namespaces.
pub(crate) async fn cluster_wide(
    State(state): State<Arc<ServerState>>,
    Path(resource): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return bad_request("invalid list or watch query parameters");
    };
    match kind_of(&resource) {
        Some(kind) => list_or_watch(&state, kind, kind.api_version(), None, &query),
        None => unknown_resource(),
    }
}

/// `GET /api/v1/namespaces/{ns}/{resource}/{name}`.
pub(crate) async fn get_one(
    State(state): State<Arc<ServerState>>,
    Path((ns, resource, name)): Path<(String, String, String)>,
) -> Response {
    match kind_of(&resource) {
        Some(kind) if !kind.cluster_scoped() => get_stored(&state, kind, &ns, &name),
        _ => unknown_resource(),
    }
}

/// `GET /api/v1/{resource}/{name}` of a cluster-scoped object (Nodes).
pub(crate) async fn get_cluster_scoped(
    State(state): State<Arc<ServerState>>,
    Path((resource, name)): Path<(String, String)>,
) -> Response {
    match kind_of(&resource) {
        Some(kind) if kind.cluster_scoped() => get_stored(&state, kind, "", &name),
        _ => unknown_resource(),
    }
}

/// One stored object, or the fault the test set for reads of its kind.
fn get_stored(state: &ServerState, kind: Kind, ns: &str, name: &str) -> Response {
    if let Some(fault) = state.faults.get().get_faults.get(kind.resource()) {
        return fault.response();
    }
    match state.store.get(kind, ns, name) {
        Some(object) => json_response(StatusCode::OK, &object),
        None => not_found(kind.resource(), "", name),
    }
}

/// A list or watch of `kind`, its objects served as `api_version`.
pub(crate) fn list_or_watch(
    state: &Arc<ServerState>,
    kind: Kind,
    api_version: &'static str,
    ns: Option<String>,
    q: &ListQuery,
) -> Response {
    let fields = match FieldSelector::parse(kind, q.field_selector.as_deref())
        .and_then(|f| f.with_labels(q.label_selector.as_deref()))
    {
        Ok(fields) => fields,
        Err(message) => return bad_request(&message),
    };
    if q.is_watch() {
        return watch::start(state, (kind, api_version), ns, fields, q);
    }
    let (items, rv) = state.store.list(kind, ns.as_deref());
    let items: Vec<Value> = items
        .into_iter()
        .filter(|o| fields.matches(o))
        .map(|mut o| {
            o["apiVersion"] = json!(api_version);
            o
        })
        .collect();
    let list = json!({
        "kind": format!("{}List", kind.name()),
        "apiVersion": api_version,
        "metadata": { "resourceVersion": rv.to_string() },
        "items": items,
    });
    json_response(StatusCode::OK, &list)
}

/// A Secret object; keeps the uid and creationTimestamp of `previous`.
pub(crate) fn secret(
    (ns, name): (&str, &str),
    type_: &str,
    data: &BTreeMap<String, Vec<u8>>,
    previous: Option<&Value>,
    rv: u64,
) -> Value {
    let data: BTreeMap<&String, String> =
        data.iter().map(|(k, v)| (k, STANDARD.encode(v))).collect();
    json!({
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": metadata(ns, name, previous, rv),
        "type": type_,
        "data": data,
    })
}

/// A ConfigMap object; keeps the uid and creationTimestamp of `previous`.
pub(crate) fn config_map(
    (ns, name): (&str, &str),
    data: &BTreeMap<String, String>,
    previous: Option<&Value>,
    rv: u64,
) -> Value {
    json!({
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": metadata(ns, name, previous, rv),
        "data": data,
    })
}

/// A running Pod scheduled on `node` as service account `sa`, with the uid that tokens
/// bound to it carry (so a pod-bound token names this pod).
pub(crate) fn pod((ns, name): (&str, &str), sa: &str, node: &str, rv: u64) -> Value {
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": super::tokens::stable_uid(&["pod", ns, name]),
            "creationTimestamp": timestamp_now(),
            "resourceVersion": rv.to_string(),
        },
        "spec": {"containers": [{"name": "app"}], "serviceAccountName": sa, "nodeName": node},
        "status": {"phase": "Running"},
    })
}

fn metadata(ns: &str, name: &str, previous: Option<&Value>, rv: u64) -> Value {
    let mut meta = match previous {
        Some(previous) => previous["metadata"].clone(),
        None => json!({
            "name": name,
            "namespace": ns,
            "uid": random_uid(),
            "creationTimestamp": timestamp_now(),
        }),
    };
    meta["resourceVersion"] = Value::String(rv.to_string());
    meta
}

/// Now, as RFC 3339 with second precision (metav1.Time).
pub(crate) fn timestamp_now() -> String {
    let now = k8s_openapi::jiff::Timestamp::from_second(unix_now()).expect("valid time");
    now.to_string()
}
