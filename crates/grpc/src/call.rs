//! One Certify call, whatever wire API it came in on: the pipeline under certmint's own
//! deadline, the audit record, the metric, and the one error → Status mapping.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::Status;

use super::status::{FailureLog, code_name, to_status};
use crate::metrics::{Api, CertifyResult, Metrics};
use certmint_audit::record::CertifyView;
use certmint_audit::{AuditLog, EncodedBody, OnFailure};
use certmint_core::certify::{Certified, Certifier, CertifyError, CertifyRequest, Trace};
use certmint_core::digest::hex;

/// The status answered when a certificate was signed but its record could not be written.
const AUDIT_UNAVAILABLE: &str =
    "audit trail unavailable: certmint issues no certificate it cannot record; retry later";

/// Runs Certify calls for one wire API (`api` labels metrics and audit records).
pub struct CallHandler {
    api: Api,
    certifier: Arc<Certifier>,
    metrics: Arc<Metrics>,
    deadline: Duration,
    failures: FailureLog,
    audit: Option<Arc<AuditLog>>,
}

impl CallHandler {
    pub fn new(
        api: Api,
        certifier: Arc<Certifier>,
        metrics: Arc<Metrics>,
        deadline: Duration,
    ) -> Self {
        metrics.precreate_api(api);
        Self {
            api,
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

    /// Runs `request` (or answers the error its translation from the wire produced).
    /// `identity` is what the request asked for, as far as the wire says.
    pub async fn run(
        &self,
        identity: String,
        request: Result<CertifyRequest, CertifyError>,
        peer: Option<SocketAddr>,
    ) -> Result<Certified, Status> {
        let start = Instant::now();
        let mut trace = Trace {
            identity,
            caller: None,
        };
        let result = match request {
            Ok(req) => {
                // linkerd2-proxy sets no deadline: the CA must answer promptly on its own.
                let certify = self.certifier.certify_with(req, &mut trace);
                match tokio::time::timeout(self.deadline, certify).await {
                    Ok(r) => r,
                    Err(_) => Err(CertifyError::DeadlineExceeded),
                }
            }
            Err(e) => Err(e),
        };
        let record = |code: &str, reason: &str, cert: Option<&Certified>| {
            let caller = trace.caller.as_ref();
            CertifyView::new(
                self.api.as_str(),
                &trace.identity,
                peer,
                caller,
                code,
                reason,
                cert,
            )
            .encode()
        };
        match result {
            Ok(c) => {
                if self.audit.is_some()
                    && let Err(status) = self.audit_issued(record("OK", "issued", Some(&c))).await
                {
                    self.observe(start, CertifyResult::Unavailable);
                    return Err(status);
                }
                tracing::debug!(api = self.api.as_str(), identity = ?trace.identity, serial = %hex(&c.serial), not_after = %certmint_core::ca::fmt_time(c.not_after), "issued certificate");
                self.observe(start, CertifyResult::Ok);
                Ok(c)
            }
            Err(e) => {
                let (status, label) = to_status(&trace.identity, &e, &self.failures);
                if self.audit.is_some() {
                    let reason = e.to_string();
                    self.audit_refused(record(code_name(status.code()), &reason, None))
                        .await;
                }
                self.observe(start, label);
                Err(status)
            }
        }
    }

    fn observe(&self, start: Instant, label: CertifyResult) {
        let elapsed = start.elapsed().as_secs_f64();
        self.metrics.certify(self.api, label, elapsed);
    }

    /// Records an issued certificate. Err (UNAVAILABLE) when the record could not be
    /// written and `audit.on_failure` is `refuse`: the certificate is then not returned,
    /// and a record written after that says `undelivered`.
    async fn audit_issued(&self, record: EncodedBody) -> Result<(), Status> {
        let Some(audit) = &self.audit else {
            return Ok(());
        };
        match audit.record_issued(record, self.deadline).await {
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
