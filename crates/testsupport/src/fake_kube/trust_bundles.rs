//! certificates.k8s.io ClusterTrustBundles (cluster-scoped), in the version asked: created,
//! read and replaced with the API server's validation (the name starts with the signer
//! name, `/` written `:`; the signer name is immutable; the bundle holds CERTIFICATE blocks
//! only).

#![allow(clippy::result_large_err)]

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use serde_json::{Value, json};

use super::{
    cert_versions::CertVersion,
    certificates::{St, check_version, invalid},
    resources::timestamp_now,
    status::{bad_request, failure, json_response, not_found},
    store::Kind,
    tokens::random_uid,
};

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
