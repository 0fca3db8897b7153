//! certificates.k8s.io PodCertificateRequests and ClusterTrustBundles, in `v1` and/or
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

type St = State<Arc<ServerState>>;

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
fn create_pcr(
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
fn check_version(cur: &Value, sent: &Value, name: &str) -> Result<(), Response> {
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

fn invalid(message: &str) -> Response {
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

// ----- ClusterTrustBundles -----

/// `POST /apis/certificates.k8s.io/VERSION/clustertrustbundles`.
pub(crate) async fn create_bundle(v: CertVersion, State(state): St, body: Bytes) -> Response {
    let Ok(mut object) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("request body is not JSON");
    };
    let Some(name) = object["metadata"]["name"].as_str().map(str::to_owned) else {
        return invalid("metadata.name: Required value");
    };
    if let Err(m) = validate_bundle(&name, &object) {
        return invalid(&m);
    }
    object["kind"] = json!("ClusterTrustBundle");
    object["apiVersion"] = json!(v.api_version());
    let created = state
        .store
        .create(Kind::ClusterTrustBundle, "", &name, |rv| {
            let meta = &mut object["metadata"];
            meta["uid"] = json!(random_uid());
            meta["creationTimestamp"] = json!(timestamp_now());
            meta["resourceVersion"] = json!(rv.to_string());
            object
        });
    match created {
        Ok(o) => json_response(StatusCode::CREATED, &o),
        Err(()) => failure(
            409,
            "AlreadyExists",
            &format!("clustertrustbundles.certificates.k8s.io \"{name}\" already exists"),
        ),
    }
}

/// `GET /apis/certificates.k8s.io/VERSION/clustertrustbundles/{name}`.
pub(crate) async fn get_bundle(
    v: CertVersion,
    State(state): St,
    Path(name): Path<String>,
) -> Response {
    match state.store.get(Kind::ClusterTrustBundle, "", &name) {
        Some(o) => json_response(StatusCode::OK, &v.stamp(o)),
        None => not_found("clustertrustbundles", "certificates.k8s.io", &name),
    }
}

/// `PUT /apis/certificates.k8s.io/VERSION/clustertrustbundles/{name}`.
pub(crate) async fn replace_bundle(
    v: CertVersion,
    State(state): St,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(sent) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("request body is not JSON");
    };
    if let Err(m) = validate_bundle(&name, &sent) {
        return invalid(&m);
    }
    let result = state
        .store
        .update(Kind::ClusterTrustBundle, "", &name, |cur, rv| {
            check_version(cur, &sent, &name)?;
            if cur["spec"]["signerName"] != sent["spec"]["signerName"] {
                return Err(invalid("spec.signerName: field is immutable"));
            }
            let mut o = cur.clone();
            o["spec"] = sent["spec"].clone();
            o["metadata"]["labels"] = sent["metadata"]["labels"].clone();
            o["metadata"]["resourceVersion"] = json!(rv.to_string());
            Ok(o)
        });
    match result {
        Ok(Some(o)) => json_response(StatusCode::OK, &v.stamp(o)),
        Ok(None) => not_found("clustertrustbundles", "certificates.k8s.io", &name),
        Err(r) => r,
    }
}

/// A bundle names its signer as its name's prefix and holds only CERTIFICATE blocks.
fn validate_bundle(name: &str, object: &Value) -> Result<(), String> {
    if let Some(signer) = object["spec"]["signerName"].as_str() {
        let prefix = format!("{}:", signer.replace('/', ":"));
        if !name.starts_with(&prefix) {
            return Err(format!("metadata.name: must start with {prefix:?}"));
        }
    }
    let pem_text = object["spec"]["trustBundle"].as_str().unwrap_or("");
    match pem::parse_many(pem_text) {
        Ok(blocks) if !blocks.is_empty() && blocks.iter().all(|b| b.tag() == "CERTIFICATE") => {
            Ok(())
        }
        _ => Err("spec.trustBundle: must hold one or more CERTIFICATE blocks".into()),
    }
}

// ----- the test's side -----

/// A PodCertificateRequest as the kubelet makes it for a pod's `podCertificate` volume.
#[derive(Clone, Debug)]
pub struct PodCertRequest {
    pub namespace: String,
    pub name: String,
    pub signer_name: String,
    pub pod_name: String,
    pub pod_uid: String,
    pub service_account: String,
    pub node_name: String,
    pub max_expiration_seconds: Option<i64>,
    /// The stub CSR, DER.
    pub stub_csr: Vec<u8>,
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl super::FakeKube {
    /// Creates a request as the kubelet would (defaults applied, no status). Panics if the
    /// API would refuse it.
    pub fn create_pod_certificate_request(&self, r: &PodCertRequest) -> Value {
        use base64::Engine;
        let mut spec = kubelet_spec(r);
        spec["stubPKCS10Request"] =
            json!(base64::engine::general_purpose::STANDARD.encode(&r.stub_csr));
        let v = self.state().pcr_faults.versions().preferred();
        self.admit(r, spec, v)
    }

    /// Creates a `v1beta1` request in Kubernetes 1.35's form: the key as `pkixPublicKey`
    /// (DER SubjectPublicKeyInfo) with `proofOfPossession`, no stub CSR (`r.stub_csr` is
    /// not used). Panics if the API would refuse it.
    pub fn create_pkix_pod_certificate_request(
        &self,
        r: &PodCertRequest,
        pkix: &[u8],
        proof: &[u8],
    ) -> Value {
        use base64::Engine;
        let b64 = &base64::engine::general_purpose::STANDARD;
        let mut spec = kubelet_spec(r);
        spec["pkixPublicKey"] = json!(b64.encode(pkix));
        spec["proofOfPossession"] = json!(b64.encode(proof));
        self.admit(r, spec, CertVersion::V1beta1)
    }

    fn admit(&self, r: &PodCertRequest, spec: Value, v: CertVersion) -> Value {
        let object = json!({ "metadata": { "name": r.name }, "spec": spec });
        match create_pcr(self.state(), &r.namespace, object, v) {
            Ok(o) => o,
            Err(r) => panic!(
                "the fake refused the PodCertificateRequest: HTTP {}",
                r.status()
            ),
        }
    }

    /// Serves PodCertificateRequests and ClusterTrustBundles in these versions only (from
    /// the next request on; discovery answers accordingly).
    pub fn serve_certificate_versions(&self, versions: CertificateVersions) {
        *self
            .state()
            .pcr_faults
            .versions
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = versions;
    }

    /// A request as stored now.
    pub fn pod_certificate_request(&self, ns: &str, name: &str) -> Option<Value> {
        self.state()
            .store
            .get(Kind::PodCertificateRequest, ns, name)
    }

    /// Every request, in every namespace.
    pub fn pod_certificate_requests(&self) -> Vec<Value> {
        self.state().store.list(Kind::PodCertificateRequest, None).0
    }

    /// A ClusterTrustBundle as stored now.
    pub fn cluster_trust_bundle(&self, name: &str) -> Option<Value> {
        self.state().store.get(Kind::ClusterTrustBundle, "", name)
    }

    /// The next `n` status writes meet a concurrent change: the request's resourceVersion
    /// moves on just before, and the write is answered 409 Conflict.
    pub fn conflict_next_status_writes(&self, n: u32) {
        self.state().pcr_faults.conflicts.store(n, Ordering::SeqCst);
    }

    /// Sets a request's status directly, as another signer would (no validation, no HTTP
    /// request counted).
    pub fn set_pod_certificate_status(&self, ns: &str, name: &str, status: Value) {
        let updated =
            self.state()
                .store
                .update(Kind::PodCertificateRequest, ns, name, |cur, rv| {
                    let mut o = cur.clone();
                    o["status"] = status;
                    o["metadata"]["resourceVersion"] = json!(rv.to_string());
                    Ok::<_, ()>(o)
                });
        assert!(matches!(updated, Ok(Some(_))), "no request {ns}/{name}");
    }

    /// The uid of the pod `put_pod` made for `ns/name`.
    pub fn pod_uid(&self, ns: &str, name: &str) -> String {
        super::tokens::stable_uid(&["pod", ns, name])
    }
}

/// A request's spec as the kubelet fills it in, without the key.
fn kubelet_spec(r: &PodCertRequest) -> Value {
    let mut spec = json!({
            "signerName": r.signer_name,
        "podName": r.pod_name,
        "podUID": r.pod_uid,
        "serviceAccountName": r.service_account,
        "serviceAccountUID": super::owners::account_uid(&r.namespace, &r.service_account),
        "nodeName": r.node_name,
        "nodeUID": super::owners::node_uid(&r.node_name),
    });
    if let Some(max) = r.max_expiration_seconds {
        spec["maxExpirationSeconds"] = json!(max);
    }
    if !r.annotations.is_empty() {
        spec["unverifiedUserAnnotations"] = json!(r.annotations);
    }
    spec
}
