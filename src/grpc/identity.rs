//! `io.linkerd.proxy.identity.Identity/Certify` on top of the transport-neutral pipeline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};

use super::status::{FailureLog, code_name, to_status};
use crate::audit::record::CertifyView;
use crate::audit::{AuditLog, EncodedBody, OnFailure};
use crate::ca::cert::hex;
use crate::certify::{Certified, Certifier, CertifyError, CertifyRequest};
use crate::metrics::Metrics;
use crate::proto::identity_server::{Identity, IdentityServer};
use crate::proto::{CertifyRequest as ProtoRequest, CertifyResponse};

/// The Linkerd identity service.
pub struct IdentityService {
    certifier: Arc<Certifier>,
    metrics: Arc<Metrics>,
    deadline: Duration,
    failures: FailureLog,
    audit: Option<Arc<AuditLog>>,
}

/// The status answered when a certificate was signed but its record could not be written.
const AUDIT_UNAVAILABLE: &str =
    "audit trail unavailable: certmint issues no certificate it cannot record; retry later";

impl IdentityService {
    pub fn new(certifier: Arc<Certifier>, metrics: Arc<Metrics>, deadline: Duration) -> Self {
        Self {
            certifier,
            metrics,
            deadline,
            failures: FailureLog::new(),
            audit: None,
        }
    }

    /// Records every outcome in the audit trail before answering.
    pub fn with_audit(mut self, audit: Arc<AuditLog>) -> Self {
        self.audit = Some(audit);
        self
    }

    pub fn into_server(self, max_message: usize) -> IdentityServer<Self> {
        IdentityServer::new(self).max_decoding_message_size(max_message)
    }
}

#[tonic::async_trait]
impl Identity for IdentityService {
    #[tracing::instrument(name = "certify", level = "debug", skip_all)]
    async fn certify(
        &self,
        request: Request<ProtoRequest>,
    ) -> Result<Response<CertifyResponse>, Status> {
        let start = Instant::now();
        let peer = request.remote_addr();
        let req = request.into_inner();
        let identity = req.identity;
        let domain = CertifyRequest {
            identity: identity.clone(),
            token: req.token,
            csr_der: req.certificate_signing_request,
        };
        // linkerd2-proxy sets no deadline: the CA must answer promptly on its own.
        let mut caller = None;
        let certify = self.certifier.certify_with(domain, &mut caller);
        let result = match tokio::time::timeout(self.deadline, certify).await {
            Ok(r) => r,
            Err(_) => Err(CertifyError::DeadlineExceeded),
        };
        let audit = |code: &str, reason: &str, cert: Option<&Certified>| {
            CertifyView::new(&identity, peer, caller.as_ref(), code, reason, cert).encode()
        };
        match result {
            Ok(c) => {
                let audited = match self.audit.is_some() {
                    true => self.audit_issued(audit("OK", "issued", Some(&c))).await,
                    false => Ok(()),
                };
                if let Err(status) = audited {
                    let elapsed = start.elapsed().as_secs_f64();
                    self.metrics.certify("linkerd", "unavailable", elapsed);
                    return Err(status);
                }
                let elapsed = start.elapsed().as_secs_f64();
                tracing::debug!(identity = ?identity, serial = %hex(&c.serial), not_after = %crate::ca::fmt_time(c.not_after), "issued certificate");
                self.metrics.certify("linkerd", "ok", elapsed);
                Ok(Response::new(CertifyResponse {
                    leaf_certificate: c.leaf.to_vec().into(),
                    intermediate_certificates: c.chain,
                    valid_until: Some(prost_types::Timestamp::from(c.not_after)),
                }))
            }
            Err(e) => {
                let (status, label) = to_status(&identity, &e, &self.failures);
                if self.audit.is_some() {
                    let reason = e.to_string();
                    self.audit_refused(audit(code_name(status.code()), &reason, None))
                        .await;
                }
                let elapsed = start.elapsed().as_secs_f64();
                self.metrics.certify("linkerd", label, elapsed);
                Err(status)
            }
        }
    }
}

impl IdentityService {
    /// Records an issued certificate. Err (UNAVAILABLE) when the record could not be
    /// written and `audit.on_failure` is `refuse`: the certificate is then not returned.
    async fn audit_issued(&self, record: EncodedBody) -> Result<(), Status> {
        let Some(audit) = &self.audit else {
            return Ok(());
        };
        match audit.record(record, self.deadline).await {
            Ok(()) => Ok(()),
            Err(e) if audit.policy() == OnFailure::Continue => {
                audit.issued_unrecorded(&e);
                Ok(())
            }
            Err(_) => Err(Status::unavailable(AUDIT_UNAVAILABLE)),
        }
    }

    /// Records a refusal; the caller is refused whether or not the record is written.
    async fn audit_refused(&self, record: EncodedBody) {
        if let Some(audit) = &self.audit {
            let _ = audit.record(record, self.deadline).await;
        }
    }
}
