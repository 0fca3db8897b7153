//! The pod-certificate signer's decisions as audit records: `certify` records with `api` =
//! `pod_certificate`, the request's `namespace/name`, and the pod, node and service
//! account the API server vouched for as the caller. The signer (Kubernetes layer) and the
//! audit trail do not know each other; this adapter joins them.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use certmint_audit::record::{Body, Caller, CertifyRecord};
use certmint_audit::{AuditLog, EncodedBody, OnFailure};
use certmint_k8s::podcert::audit::API;
use certmint_k8s::podcert::{DecisionAudit, DecisionRecord};

/// How long a decision waits for its record to reach the writer.
const WAIT: Duration = Duration::from_secs(5);

/// [`DecisionAudit`] over the audit log.
pub(super) struct PodCertAudit(pub Arc<AuditLog>);

fn encode(r: &DecisionRecord<'_>) -> EncodedBody {
    let req = r.request;
    let mut rec = CertifyRecord::new(API, r.identity, None, None, r.code, &r.reason, r.cert);
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
    let mut body = EncodedBody::new(&Body::Certify(Box::new(rec)));
    if let Some(code) = r.undelivered {
        body.mark_undelivered(code);
    }
    body
}

impl DecisionAudit for PodCertAudit {
    fn issued<'a>(&'a self, record: DecisionRecord<'a>) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            match self.0.record_issued(encode(&record), WAIT).await {
                Ok(()) => true,
                Err(e) if self.0.policy() == OnFailure::Continue => {
                    self.0.issued_unrecorded(&e);
                    true
                }
                Err(_) => false,
            }
        })
    }

    fn other<'a>(&'a self, record: DecisionRecord<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = self.0.record(encode(&record), WAIT).await;
        })
    }
}
