//! Audit records of the pod-certificate API: the same `certify` records as the gRPC APIs,
//! with `api` = `pod_certificate`, the request's `namespace/name`, and the pod, node and
//! service account the API server vouched for as the caller.

use certmint_audit::EncodedBody;
use certmint_audit::record::{Body, Caller, CertifyRecord};
use certmint_core::certify::Certified;

use super::request::Request;
use super::status::Decision;

/// The `api` of these records.
pub const API: &str = "pod_certificate";

/// The code a decision is recorded with (the gRPC code names the other APIs use).
pub fn code(decision: &Decision) -> &'static str {
    match decision {
        Decision::Issued(_) => "OK",
        Decision::Denied(_) => "PERMISSION_DENIED",
        Decision::Failed(_) => "INTERNAL",
    }
}

/// The record of `decision` on `req`; `identity` is the SPIFFE ID asked for.
pub fn record(
    req: &Request,
    identity: &str,
    decision: &Decision,
    cert: Option<&Certified>,
) -> EncodedBody {
    let reason = match decision {
        Decision::Issued(_) => "issued".to_owned(),
        Decision::Denied(r) | Decision::Failed(r) => format!("{}: {}", r.reason, r.message),
    };
    let mut rec = CertifyRecord::new(API, identity, None, None, code(decision), &reason, cert);
    rec.caller = Some(Caller {
        namespace: req.namespace.clone(),
        service_account: req.service_account.clone(),
        method: "podcertificaterequest".into(),
        cached: false,
        pod_name: Some(req.pod_name.clone()),
        pod_uid: Some(req.pod_uid.clone()),
        node: Some(req.node_name.clone()),
    });
    rec.request = Some(req.key());
    EncodedBody::new(&Body::Certify(Box::new(rec)))
}
