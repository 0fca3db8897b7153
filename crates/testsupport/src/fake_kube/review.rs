//! `TokenReview` and `SelfSubjectAccessReview` endpoints. Both answer `201 Created` with the
//! request's spec echoed back and a status filled in, as the real API server does.

use std::sync::Arc;

use axum::{body::Bytes, extract::State, http::StatusCode, response::Response};
use serde_json::{Value, json};

use super::{
    authn::{self, Authenticated},
    server::ServerState,
    status::{bad_request, json_response},
};

/// `POST /apis/authentication.k8s.io/v1/tokenreviews`.
pub(crate) async fn token_review(State(state): State<Arc<ServerState>>, body: Bytes) -> Response {
    let _in_flight = state.counters.review_started();
    let settings = state.faults.get();
    if !settings.token_review_latency.is_zero() {
        tokio::time::sleep(settings.token_review_latency).await;
    }
    if let Some(fault) = settings.token_review_fault {
        return fault.response();
    }
    let Ok(review) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("the request body is not a JSON TokenReview");
    };
    let spec = &review["spec"];
    let Some(token) = spec["token"].as_str() else {
        return bad_request("TokenReview.authentication.k8s.io: spec.token: Required value");
    };
    let requested: Vec<String> = spec["audiences"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|a| a.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let leeway = settings.token_leeway;
    let keys = state.keys.all();
    let revoked = state.revoked_pods();
    let status = match authn::review(&keys, token, &requested, leeway, &revoked) {
        Ok(user) => authenticated(user),
        // `authenticated: false` is omitted, as Go's omitempty does.
        Err(error) => json!({ "user": {}, "error": error }),
    };
    let body = json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": { "creationTimestamp": null },
        "spec": spec,
        "status": status,
    });
    json_response(StatusCode::CREATED, &body)
}

fn authenticated(user: Authenticated) -> Value {
    let mut info = json!({
        "username": user.username,
        "uid": user.uid,
        "groups": user.groups,
    });
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    json!({ "authenticated": true, "user": info, "audiences": user.audiences })
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`: allowed or not, as set
/// by `FakeKube::set_ssar_allowed`, whatever the question.
pub(crate) async fn self_subject_access_review(
    State(state): State<Arc<ServerState>>,
    body: Bytes,
) -> Response {
    let Ok(review) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("the request body is not a JSON SelfSubjectAccessReview");
    };
    let status = if state.faults.get().ssar_allowed {
        json!({ "allowed": true, "reason": "allowed by the fake API server" })
    } else {
        json!({ "allowed": false, "reason": "denied by the fake API server" })
    };
    let body = json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": { "creationTimestamp": null },
        "spec": review["spec"],
        "status": status,
    });
    json_response(StatusCode::CREATED, &body)
}
