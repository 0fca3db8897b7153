//! `istio.v1.auth.IstioCertificateService/CreateCertificate`: Istio's agents and ztunnel.
//! Translates the request (PEM CSR, bearer token header, cluster ID, impersonation) into
//! the same pipeline Linkerd's Certify runs, and answers a PEM chain ending in the roots.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost_types::value::Kind;
use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject;
use tonic::metadata::MetadataMap;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::{Request, Response, Status};

use super::call::CallHandler;
use crate::proto::istio::istio_certificate_service_server::{
    IstioCertificateService, IstioCertificateServiceServer,
};
use crate::proto::istio::{IstioCertificateRequest, IstioCertificateResponse};
use crate::serve::WireApi;
use certmint_core::authn::AuthnError;
use certmint_core::certify::{CertifyError, CertifyRequest, MAX_CSR_BYTES, Requested};

mod pem_cache;
use pem_cache::PemCache;

/// The metadata key a node agent uses to ask on behalf of a workload.
const IMPERSONATED_IDENTITY: &str = "ImpersonatedIdentity";
/// A PEM CSR may be this much larger than its DER (base64 and armour).
const MAX_CSR_PEM_BYTES: usize = MAX_CSR_BYTES * 2;

/// Istio's CA service.
pub struct IstioService {
    calls: Arc<CallHandler>,
    cluster_ids: Vec<String>,
    pem: PemCache,
}

impl IstioService {
    pub fn new(calls: Arc<CallHandler>, cluster_ids: Vec<String>) -> Self {
        Self {
            calls,
            cluster_ids,
            pem: PemCache::default(),
        }
    }

    pub fn into_server(self, max_message: usize) -> IstioCertificateServiceServer<Self> {
        IstioCertificateServiceServer::new(self).max_decoding_message_size(max_message)
    }

    /// The wire request as a pipeline request; the first problem answers.
    fn translate(
        &self,
        meta: &MetadataMap,
        req: IstioCertificateRequest,
        impersonated: Option<String>,
    ) -> Result<CertifyRequest, CertifyError> {
        let token = bearer_token(meta)?;
        self.check_cluster(meta)?;
        let csr_der = csr_der(&req.csr)?;
        let requested = match impersonated {
            Some(id) => Requested::OnBehalf(id),
            None => Requested::OwnSpiffe,
        };
        let lifetime = u64::try_from(req.validity_duration)
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs);
        Ok(CertifyRequest {
            requested,
            token,
            csr_der,
            lifetime,
        })
    }

    /// A request naming a cluster certmint does not serve is refused; none named means
    /// this cluster (as Istio's own CA treats it).
    fn check_cluster(&self, meta: &MetadataMap) -> Result<(), CertifyError> {
        let Some(value) = meta.get("clusterid") else {
            return Ok(());
        };
        match value.to_str() {
            Ok(id) if self.cluster_ids.iter().any(|c| c == id) => Ok(()),
            _ => Err(unauthenticated(
                "cluster ID is not one this CA serves (istio.cluster_ids)",
            )),
        }
    }
}

impl WireApi for IstioService {
    fn register(self: Box<Self>, routes: &mut RoutesBuilder, max_message: usize) -> &'static str {
        routes.add_service(self.into_server(max_message));
        <IstioCertificateServiceServer<Self> as NamedService>::NAME
    }
}

#[tonic::async_trait]
impl IstioCertificateService for IstioService {
    #[tracing::instrument(name = "create_certificate", level = "debug", skip_all)]
    async fn create_certificate(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> Result<Response<IstioCertificateResponse>, Status> {
        let peer = request.remote_addr();
        let (meta, _, req) = request.into_parts();
        let (identity, translated) = match impersonated_identity(&req) {
            Ok(id) => (
                id.clone().unwrap_or_default(),
                self.translate(&meta, req, id),
            ),
            Err(e) => (String::new(), Err(e)),
        };
        let c = self.calls.run(identity, translated, peer).await?;
        Ok(Response::new(IstioCertificateResponse {
            cert_chain: self.pem.response_chain(&c),
        }))
    }
}

/// `ImpersonatedIdentity` from the request metadata, when present and non-empty.
fn impersonated_identity(req: &IstioCertificateRequest) -> Result<Option<String>, CertifyError> {
    let Some(value) = req
        .metadata
        .as_ref()
        .and_then(|m| m.fields.get(IMPERSONATED_IDENTITY))
    else {
        return Ok(None);
    };
    match &value.kind {
        Some(Kind::StringValue(s)) if s.is_empty() => Ok(None),
        Some(Kind::StringValue(s)) => Ok(Some(s.clone())),
        _ => Err(CertifyError::InvalidRequest(
            "metadata ImpersonatedIdentity must be a string (a SPIFFE ID)",
        )),
    }
}

/// The token from `authorization: Bearer …`.
fn bearer_token(meta: &MetadataMap) -> Result<Bytes, CertifyError> {
    let value = meta.get("authorization").ok_or_else(|| {
        unauthenticated("no authorization header; send the service-account token as Bearer")
    })?;
    let text = value
        .to_str()
        .map_err(|_| unauthenticated("authorization header is not ASCII"))?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or_else(|| unauthenticated("authorization header is not \"Bearer TOKEN\""))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(unauthenticated(
            "authorization header is not \"Bearer TOKEN\"",
        ));
    }
    Ok(Bytes::copy_from_slice(token.as_bytes()))
}

/// The CSR's DER from its PEM form.
fn csr_der(csr: &str) -> Result<Bytes, CertifyError> {
    if csr.is_empty() {
        return Err(CertifyError::InvalidRequest("csr is required"));
    }
    if csr.len() > MAX_CSR_PEM_BYTES {
        return Err(CertifyError::InvalidRequest("csr is larger than 32 KiB"));
    }
    match CertificateSigningRequestDer::from_pem_slice(csr.as_bytes()) {
        Ok(der) => Ok(Bytes::from(der.as_ref().to_vec())),
        Err(_) => Err(CertifyError::InvalidRequest(
            "csr is not a PEM CERTIFICATE REQUEST",
        )),
    }
}

fn unauthenticated(why: &str) -> CertifyError {
    CertifyError::Authn(AuthnError::Unauthenticated(why.to_owned()))
}
