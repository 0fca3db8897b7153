//! `io.linkerd.proxy.identity.Identity/Certify` on top of the transport-neutral pipeline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};

use super::status::{FailureLog, to_status};
use crate::ca::cert::hex;
use crate::certify::{Certifier, CertifyError, CertifyRequest};
use crate::metrics::Metrics;
use crate::proto::identity_server::{Identity, IdentityServer};
use crate::proto::{CertifyRequest as ProtoRequest, CertifyResponse};

/// The Linkerd identity service.
pub struct IdentityService {
    certifier: Arc<Certifier>,
    metrics: Arc<Metrics>,
    deadline: Duration,
    failures: FailureLog,
}

impl IdentityService {
    pub fn new(certifier: Arc<Certifier>, metrics: Arc<Metrics>, deadline: Duration) -> Self {
        Self {
            certifier,
            metrics,
            deadline,
            failures: FailureLog::new(),
        }
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
        let req = request.into_inner();
        let identity = req.identity;
        let domain = CertifyRequest {
            identity: identity.clone(),
            token: req.token,
            csr_der: req.certificate_signing_request,
        };
        // linkerd2-proxy sets no deadline: the CA must answer promptly on its own.
        let result = match tokio::time::timeout(self.deadline, self.certifier.certify(domain)).await
        {
            Ok(r) => r,
            Err(_) => Err(CertifyError::DeadlineExceeded),
        };
        let elapsed = start.elapsed().as_secs_f64();
        match result {
            Ok(c) => {
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
                self.metrics.certify("linkerd", label, elapsed);
                Err(status)
            }
        }
    }
}
