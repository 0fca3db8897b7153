//! What the audit trail is told of each decision. The signer records through this trait;
//! the binary implements it over the audit crate (`certify` records with `api` =
//! `pod_certificate`), which this layer does not depend on.

use futures::future::BoxFuture;

use certmint_core::certify::Certified;

use super::request::Request;
use super::status::Decision;

/// The `api` of these records.
pub const API: &str = "pod_certificate";

/// One decision on one request.
pub struct DecisionRecord<'a> {
    pub request: &'a Request,
    /// The SPIFFE ID asked for (empty when the request was refused before it was known).
    pub identity: &'a str,
    /// The gRPC code name the other APIs would have answered: `OK` (Issued),
    /// `PERMISSION_DENIED` (Denied), `INTERNAL` (Failed).
    pub code: &'static str,
    /// `issued`, or `REASON: message`.
    pub reason: String,
    pub cert: Option<&'a Certified>,
    /// The certificate was signed here but another replica's decision was written: the
    /// code recorded as what the pod got instead (`ABORTED`).
    pub undelivered: Option<&'static str>,
}

impl<'a> DecisionRecord<'a> {
    pub fn new(
        request: &'a Request,
        identity: &'a str,
        decision: &Decision,
        cert: Option<&'a Certified>,
    ) -> Self {
        let (code, reason) = match decision {
            Decision::Issued(_) => ("OK", "issued".to_owned()),
            Decision::Denied(r) => ("PERMISSION_DENIED", format!("{}: {}", r.reason, r.message)),
            Decision::Failed(r) => ("INTERNAL", format!("{}: {}", r.reason, r.message)),
        };
        Self {
            request,
            identity,
            code,
            reason,
            cert,
            undelivered: None,
        }
    }
}

/// The audit trail, as the signer uses it.
pub trait DecisionAudit: Send + Sync + 'static {
    /// Records an issued certificate before it is written; false when it must not be
    /// written (the record could not be kept and the trail's policy refuses then).
    fn issued<'a>(&'a self, record: DecisionRecord<'a>) -> BoxFuture<'a, bool>;
    /// Records a refusal, or a certificate that was not delivered (best effort).
    fn other<'a>(&'a self, record: DecisionRecord<'a>) -> BoxFuture<'a, ()>;
}
