//! certificates.k8s.io PodCertificateRequests (ClusterTrustBundles: `trust_bundles.rs`; the
//! test's side, as the kubelet: `kubelet.rs`), in `v1` and/or
//! `v1beta1` (`cert_versions.rs`; one store, each answer in the version asked): created as the
//! kubelet (or an admin) would, listed and watched with a `spec.signerName` field selector,
//! and the `/status` subresource with the API server's validation: a status is immutable
//! once decided, carries at most one of Issued/Denied/Failed (status True), and an Issued
//! one carries a chain whose leaf matches notBefore/notAfter, the stub CSR's key and the
//! lifetime limits.

// Handlers here answer refusals with the HTTP response itself; its size does not matter in
// a test server.
#![allow(clippy::result_large_err)]

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use axum::{
    body::Bytes,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::StatusCode,
    response::Response,
};
use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{
    cert_versions::{CertVersion, CertificateVersions},
    resources::{ListQuery, list_or_watch, timestamp_now},
    server::ServerState,
    status::{bad_request, failure, json_response, not_found},
    store::Kind,
    tokens::random_uid,
};

/// Test switches for PodCertificateRequests.
#[derive(Default)]
pub(crate) struct PcrFaults {
    /// The next status writes that meet a concurrent change (the object's resourceVersion
    /// moves on, then the write gets 409 Conflict).
    pub conflicts: AtomicU32,
    /// The versions served.
    pub versions: std::sync::Mutex<CertificateVersions>,
}

impl PcrFaults {
    pub(crate) fn versions(&self) -> CertificateVersions {
        *self.versions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(super) type St = State<Arc<ServerState>>;

fn query_or_400(query: Result<Query<ListQuery>, QueryRejection>) -> Result<ListQuery, Response> {
    query
        .map(|Query(q)| q)
        .map_err(|_| bad_request("invalid list or watch query parameters"))
}

/// `GET /apis/certificates.k8s.io/VERSION/{resource}` (all namespaces, or cluster-scoped).
pub(crate) async fn list_all(
    kind: Kind,
    v: CertVersion,
    State(state): St,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    match query_or_400(query) {
        Ok(q) => list_or_watch(&state, kind, v.api_version(), None, &q),
        Err(r) => r,
    }
}

/// `GET …/namespaces/{ns}/podcertificaterequests`.
pub(crate) async fn list_namespaced(
    v: CertVersion,
    State(state): St,
    Path(ns): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    match query_or_400(query) {
        Ok(q) => {
            let api_version = v.api_version();
            list_or_watch(
                &state,
                Kind::PodCertificateRequest,
                api_version,
                Some(ns),
                &q,
            )
        }
        Err(r) => r,
    }
}

/// `GET …/namespaces/{ns}/podcertificaterequests/{name}`.
pub(crate) async fn get_request(
    v: CertVersion,
    State(state): St,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match state.store.get(Kind::PodCertificateRequest, &ns, &name) {
        Some(o) => json_response(StatusCode::OK, &v.stamp(o)),
        None => not_found("podcertificaterequests", "certificates.k8s.io", &name),
    }
}

/// `POST …/namespaces/{ns}/podcertificaterequests`: what the kubelet sends.
pub(crate) async fn create_request(
    v: CertVersion,
    State(state): St,
    Path(ns): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(object) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("request body is not JSON");
    };
    match create_pcr(&state, &ns, object, v) {
        Ok(o) => json_response(StatusCode::CREATED, &o),
        Err(r) => r,
    }
}

/// Admits and stores a new request: defaults, required fields, no status.
pub(super) fn create_pcr(
    state: &ServerState,
    ns: &str,
    mut object: Value,
    v: CertVersion,
) -> Result<Value, Response> {
    let spec = &mut object["spec"];
    if spec["maxExpirationSeconds"].is_null() {
        spec["maxExpirationSeconds"] = json!(86_400);
    }
    let max = spec["maxExpirationSeconds"].as_i64().unwrap_or(0);
    if !(3600..=7_862_400).contains(&max) {
        return Err(invalid(
            "spec.maxExpirationSeconds: must be in the range [3600, 7862400]",
        ));
    }
    for field in REQUIRED {
        if spec[field].as_str().is_none_or(str::is_empty) {
            return Err(invalid(&format!("spec.{field}: Required value")));
        }
    }
    check_key(spec, v).map_err(|m| invalid(&m))?;
    let name = match object["metadata"]["name"].as_str() {
        Some(n) => n.to_owned(),
        None => format!(
            "{}{}",
            object["metadata"]["generateName"]
                .as_str()
                .unwrap_or("req-"),
            &random_uid()[..8]
        ),
    };
    object["kind"] = json!("PodCertificateRequest");
    object["apiVersion"] = json!(v.api_version());
    object.as_object_mut().map(|o| o.remove("status"));
    let created = state
        .store
        .create(Kind::PodCertificateRequest, ns, &name, |rv| {
            object["metadata"] = json!({
                "name": name, "namespace": ns, "uid": random_uid(), "generation": 1,
                "creationTimestamp": timestamp_now(), "resourceVersion": rv.to_string(),
            });
            object
        });
    created.map_err(|()| {
        failure(
            409,
            "AlreadyExists",
            &format!("podcertificaterequests.certificates.k8s.io \"{name}\" already exists"),
        )
    })
}

const REQUIRED: [&str; 7] = [
    "signerName",
    "podName",
    "podUID",
    "serviceAccountName",
    "serviceAccountUID",
    "nodeName",
    "nodeUID",
];

/// The key: `v1` has the stub CSR only; 1.36's `v1beta1` has it or (deprecated, 1.35's
/// only form) `pkixPublicKey` with `proofOfPossession`, never both. The fake does not check
/// the proof.
fn check_key(spec: &Value, v: CertVersion) -> Result<(), String> {
    let has = |f: &str| spec[f].as_str().is_some_and(|s| !s.is_empty());
    let stub = has("stubPKCS10Request");
    match (v, stub, has("pkixPublicKey"), has("proofOfPossession")) {
        (CertVersion::V1, true, ..)
        | (CertVersion::V1beta1, true, false, false)
        | (CertVersion::V1beta1, false, true, true) => Ok(()),
        (CertVersion::V1beta1, true, ..) => {
            Err("spec.pkixPublicKey: must be empty when stubPKCS10Request is set".into())
        }
        _ => Err("spec.stubPKCS10Request: Required value".into()),
    }
}

/// `PUT …/podcertificaterequests/{name}/status`.
pub(crate) async fn update_status(
    v: CertVersion,
    State(state): St,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Ok(sent) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("request body is not JSON");
    };
    if take_one(&state.pcr_faults.conflicts) {
        // Someone else changed the object first.
        let _ = state
            .store
            .update(Kind::PodCertificateRequest, &ns, &name, |cur, rv| {
                let mut o = cur.clone();
                o["metadata"]["resourceVersion"] = json!(rv.to_string());
                o["metadata"]["labels"]["touched"] = json!(rv.to_string());
                Ok::<_, ()>(o)
            });
    }
    let result = state
        .store
        .update(Kind::PodCertificateRequest, &ns, &name, |cur, rv| {
            check_version(cur, &sent, &name)?;
            let status = &sent["status"];
            validate_status(cur, status).map_err(|m| invalid(&m))?;
            let mut o = cur.clone();
            o["status"] = status.clone();
            o["metadata"]["resourceVersion"] = json!(rv.to_string());
            Ok(o)
        });
    match result {
        Ok(Some(o)) => json_response(StatusCode::OK, &v.stamp(o)),
        Ok(None) => not_found("podcertificaterequests", "certificates.k8s.io", &name),
        Err(r) => r,
    }
}

fn take_one(n: &AtomicU32) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

/// A write naming a resourceVersion must name the current one.
pub(super) fn check_version(cur: &Value, sent: &Value, name: &str) -> Result<(), Response> {
    match sent["metadata"]["resourceVersion"].as_str() {
        Some(rv) if rv != cur["metadata"]["resourceVersion"] => Err(failure(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {name}: the object has been modified; please apply your changes to the latest version and try again"
            ),
        )),
        _ => Ok(()),
    }
}

pub(super) fn invalid(message: &str) -> Response {
    failure(422, "Invalid", message)
}

const TERMINAL: [&str; 3] = ["Issued", "Denied", "Failed"];

/// The API server's rules for a status update of `cur` to `status`.
fn validate_status(cur: &Value, status: &Value) -> Result<(), String> {
    let old = &cur["status"];
    if terminal(old).is_some() || !old["certificateChain"].is_null() {
        if old != status {
            return Err("status: Forbidden: the status is immutable once the request is issued, denied or failed".into());
        }
        return Ok(());
    }
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let decided: Vec<&Value> = conditions
        .iter()
        .filter(|c| TERMINAL.contains(&c["type"].as_str().unwrap_or("")))
        .collect();
    if decided.len() > 1 {
        return Err("status.conditions: at most one of Issued, Denied, Failed".into());
    }
    if decided.iter().any(|c| c["status"] != "True") {
        return Err("status.conditions: Issued, Denied and Failed must have status True".into());
    }
    for c in &conditions {
        if c["reason"].as_str().is_none_or(str::is_empty) || c["lastTransitionTime"].is_null() {
            return Err("status.conditions: reason and lastTransitionTime are required".into());
        }
    }
    let issued = decided.first().is_some_and(|c| c["type"] == "Issued");
    let chain = status["certificateChain"].as_str();
    match (issued, chain) {
        (true, Some(chain)) => validate_chain(cur, status, chain),
        (true, None) => {
            Err("status.certificateChain: Required value with an Issued condition".into())
        }
        (false, Some(_)) => Err("status.certificateChain: only with an Issued condition".into()),
        (false, None) => {
            for f in ["notBefore", "notAfter", "beginRefreshAt"] {
                if !status[f].is_null() {
                    return Err(format!("status.{f}: only with certificateChain"));
                }
            }
            Ok(())
        }
    }
}

fn terminal(status: &Value) -> Option<&str> {
    status["conditions"]
        .as_array()?
        .iter()
        .filter_map(|c| c["type"].as_str())
        .find(|t| TERMINAL.contains(t))
}

/// The chain parses, the leaf's times equal the status's, its key is the stub CSR's, its
/// lifetime is within [1h, maxExpirationSeconds] and beginRefreshAt is inside it.
fn validate_chain(cur: &Value, status: &Value, chain: &str) -> Result<(), String> {
    let blocks = pem::parse_many(chain).map_err(|e| format!("status.certificateChain: {e}"))?;
    if blocks.is_empty() || blocks.iter().any(|b| b.tag() != "CERTIFICATE") {
        return Err("status.certificateChain: must hold one or more CERTIFICATE blocks".into());
    }
    let mut leaf = None;
    for b in &blocks {
        let (_, cert) = X509Certificate::from_der(b.contents())
            .map_err(|_| "status.certificateChain: a block is not a certificate".to_string())?;
        leaf.get_or_insert(cert);
    }
    let leaf = leaf.ok_or("status.certificateChain: empty")?;
    let time = |f: &str| {
        status[f]
            .as_str()
            .and_then(|s| s.parse::<k8s_openapi::jiff::Timestamp>().ok())
            .map(|t| t.as_second())
            .ok_or_else(|| format!("status.{f}: Required value"))
    };
    let (nb, na, refresh) = (
        time("notBefore")?,
        time("notAfter")?,
        time("beginRefreshAt")?,
    );
    if nb != leaf.validity().not_before.timestamp() || na != leaf.validity().not_after.timestamp() {
        return Err("status.notBefore/notAfter: must equal the leaf certificate's".into());
    }
    let max = cur["spec"]["maxExpirationSeconds"]
        .as_i64()
        .unwrap_or(86_400);
    if na - nb < 3600 || na - nb > max {
        return Err(format!(
            "status.notAfter: the lifetime {}s is outside [3600, {max}]",
            na - nb
        ));
    }
    if refresh < nb + 600 || refresh > na - 600 {
        return Err("status.beginRefreshAt: must be 10 minutes inside the validity period".into());
    }
    let stub = cur["spec"]["stubPKCS10Request"].as_str().unwrap_or("");
    if !same_key(stub, leaf.public_key().raw) {
        return Err("status.certificateChain: the leaf's key is not the stub CSR's".into());
    }
    Ok(())
}

fn same_key(stub_b64: &str, spki: &[u8]) -> bool {
    use base64::Engine;
    use x509_parser::certification_request::X509CertificationRequest;
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(stub_b64) else {
        return false;
    };
    X509CertificationRequest::from_der(&der)
        .is_ok_and(|(_, csr)| csr.certification_request_info.subject_pki.raw == spki)
}
