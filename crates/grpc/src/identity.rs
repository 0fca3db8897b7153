//! `io.linkerd.proxy.identity.Identity/Certify` on top of the transport-neutral pipeline.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::call::CallHandler;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;

use crate::proto::identity_server::{Identity, IdentityServer};
use crate::proto::{CertifyRequest as ProtoRequest, CertifyResponse};
use crate::serve::WireApi;
use certmint_core::certify::CertifyRequest;

/// The Linkerd identity service.
pub struct IdentityService {
    calls: Arc<CallHandler>,
}

impl IdentityService {
    pub fn new(calls: Arc<CallHandler>) -> Self {
        Self { calls }
    }

    pub fn into_server(self, max_message: usize) -> IdentityServer<Self> {
        IdentityServer::new(self).max_decoding_message_size(max_message)
    }
}

impl WireApi for IdentityService {
    fn register(self: Box<Self>, routes: &mut RoutesBuilder, max_message: usize) -> &'static str {
        routes.add_service(self.into_server(max_message));
        <IdentityServer<Self> as NamedService>::NAME
    }
}

#[tonic::async_trait]
impl Identity for IdentityService {
    #[tracing::instrument(name = "certify", level = "debug", skip_all)]
    async fn certify(
        &self,
        request: Request<ProtoRequest>,
    ) -> Result<Response<CertifyResponse>, Status> {
        let peer = request.remote_addr();
        let req = request.into_inner();
        let domain = CertifyRequest::linkerd(
            req.identity.clone(),
            req.token,
            req.certificate_signing_request,
        );
        let c = self.calls.run(req.identity, Ok(domain), peer).await?;
        Ok(Response::new(CertifyResponse {
            leaf_certificate: c.leaf.to_vec().into(),
            intermediate_certificates: c.chain,
            valid_until: Some(prost_types::Timestamp::from(c.not_after)),
        }))
    }
}
