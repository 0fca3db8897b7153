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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    use certmint_core::authn::{Authenticated, Authenticator, Method, Token};
    use certmint_core::ca::cert::{CertInfo, parse_pem_chain, to_pem};
    use certmint_core::ca::create::{CaMaterial, KeyType, generate_key, new_issuer, new_root};
    use certmint_core::ca::{CaState, CaStore, Issuer, IssuerMaterial, LeafPolicy, TrustAnchors};
    use certmint_core::certify::Certifier;
    use certmint_core::clock::FixedClock;
    use certmint_core::identity::{Naming, ServiceAccount};
    use futures::future::BoxFuture;
    use prost_types::{Struct, Value};

    use crate::metrics::{Api, Metrics};

    const SPIFFE: &str = "spiffe://cluster.local/ns/shop/sa/web";
    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    /// Proves shop/web for any token, counting the calls.
    #[derive(Default)]
    struct Stub(AtomicUsize);
    impl Authenticator for Stub {
        fn authenticate<'a>(
            &'a self,
            _token: &'a Token,
        ) -> BoxFuture<'a, Result<Authenticated, AuthnError>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            let sa = ServiceAccount::new("shop", "web").unwrap();
            Box::pin(async move { Ok(Authenticated::new(sa, Method::TokenReview, None)) })
        }
    }

    fn service(store: CaStore, stub: Arc<Stub>) -> IstioService {
        let naming = Naming::new("linkerd", "cluster.local").unwrap();
        let certifier = Certifier::new(
            store,
            stub,
            naming,
            LeafPolicy::default(),
            Arc::new(FixedClock(now())),
        );
        let metrics = Arc::new(Metrics::default());
        let calls = CallHandler::new(
            Api::Istio,
            Arc::new(certifier),
            metrics,
            Duration::from_secs(5),
        );
        IstioService::new(Arc::new(calls), vec!["Kubernetes".into()])
    }

    fn csr_pem() -> (String, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.subject_alt_names
            .push(rcgen::SanType::URI(SPIFFE.try_into().unwrap()));
        let csr = p.serialize_request(&key).unwrap();
        (csr.pem().unwrap(), csr.der().to_vec())
    }

    fn meta(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut m = MetadataMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    fn request(csr: &str, validity: i64, impersonate: Option<Kind>) -> IstioCertificateRequest {
        IstioCertificateRequest {
            csr: csr.into(),
            validity_duration: validity,
            metadata: impersonate.map(|kind| Struct {
                fields: [(IMPERSONATED_IDENTITY.to_owned(), Value { kind: Some(kind) })].into(),
            }),
        }
    }

    fn unauthenticated_because(r: Result<impl std::fmt::Debug, CertifyError>) -> String {
        match r {
            Err(CertifyError::Authn(AuthnError::Unauthenticated(why))) => why,
            other => panic!("expected Unauthenticated, got {other:?}"),
        }
    }

    fn invalid_because(r: Result<impl std::fmt::Debug, CertifyError>) -> &'static str {
        match r {
            Err(CertifyError::InvalidRequest(why)) => why,
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }

    #[test]
    fn pem_csr_becomes_der() {
        let (pem, der) = csr_pem();
        assert_eq!(csr_der(&pem).unwrap(), der);
        assert_eq!(invalid_because(csr_der("")), "csr is required");
        let huge = "a".repeat(MAX_CSR_PEM_BYTES + 1);
        assert_eq!(invalid_because(csr_der(&huge)), "csr is larger than 32 KiB");
        let cert_pem = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        for bad in ["junk", cert_pem] {
            assert_eq!(
                invalid_because(csr_der(bad)),
                "csr is not a PEM CERTIFICATE REQUEST"
            );
        }
    }

    #[test]
    fn token_comes_from_a_bearer_header() {
        let token = |v: &str| bearer_token(&meta(&[("authorization", v)]));
        assert_eq!(token("Bearer abc.def").unwrap(), "abc.def");
        assert_eq!(token("bearer abc").unwrap(), "abc");
        let not_bearer = "authorization header is not \"Bearer TOKEN\"";
        for bad in ["Basic abc", "Bearer", "Bearer  ", "abc"] {
            assert_eq!(unauthenticated_because(token(bad)), not_bearer, "{bad:?}");
        }
        assert_eq!(
            unauthenticated_because(bearer_token(&MetadataMap::new())),
            "no authorization header; send the service-account token as Bearer"
        );
    }

    #[test]
    fn impersonated_identity_is_a_non_empty_string() {
        let ask = |kind| impersonated_identity(&request("", 0, kind));
        assert_eq!(ask(None).unwrap(), None);
        assert_eq!(ask(Some(Kind::StringValue(String::new()))).unwrap(), None);
        assert_eq!(
            ask(Some(Kind::StringValue(SPIFFE.into())))
                .unwrap()
                .as_deref(),
            Some(SPIFFE)
        );
        assert_eq!(
            invalid_because(ask(Some(Kind::NumberValue(1.0)))),
            "metadata ImpersonatedIdentity must be a string (a SPIFFE ID)"
        );
    }

    #[tokio::test]
    async fn translates_identity_lifetime_and_csr() {
        let svc = service(CaStore::new(), Arc::default());
        let (pem, der) = csr_pem();
        let auth = meta(&[("authorization", "Bearer tok")]);
        for (validity, lifetime) in [
            (3600, Some(Duration::from_secs(3600))),
            (0, None),
            (-5, None),
        ] {
            let req = svc
                .translate(&auth, request(&pem, validity, None), None)
                .unwrap();
            assert_eq!(req.lifetime, lifetime, "validity_duration {validity}");
            assert_eq!(req.requested, Requested::OwnSpiffe);
            assert_eq!(req.token, "tok");
            assert_eq!(req.csr_der, der);
        }
        let req = svc
            .translate(&auth, request(&pem, 0, None), Some(SPIFFE.into()))
            .unwrap();
        assert_eq!(req.requested, Requested::OnBehalf(SPIFFE.into()));
    }

    #[tokio::test]
    async fn cluster_id_must_be_one_served() {
        let svc = service(CaStore::new(), Arc::default());
        let (pem, _) = csr_pem();
        let token = ("authorization", "Bearer tok");
        let ok = [meta(&[token]), meta(&[token, ("clusterid", "Kubernetes")])];
        for m in ok {
            assert!(svc.translate(&m, request(&pem, 0, None), None).is_ok());
        }
        let other = meta(&[token, ("clusterid", "east")]);
        assert_eq!(
            unauthenticated_because(
                svc.translate(&other, request(&pem, 0, None), None)
                    .map(drop)
            ),
            "cluster ID is not one this CA serves (istio.cluster_ids)"
        );
        // The token header is checked first.
        let no_token = meta(&[("clusterid", "east")]);
        assert_eq!(
            unauthenticated_because(
                svc.translate(&no_token, request(&pem, 0, None), None)
                    .map(drop)
            ),
            "no authorization header; send the service-account token as Bearer"
        );
    }

    fn root(name: &str) -> CaMaterial {
        new_root(
            name,
            3650 * DAY,
            generate_key(KeyType::P256).unwrap(),
            now() - DAY,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn create_certificate_answers_a_verifiable_chain_ending_in_every_anchor() {
        // A rotation: the issuer chains to the old root, the bundle holds both roots.
        let (old, new) = (root("old-root"), root("new-root"));
        let key = generate_key(KeyType::P256).unwrap();
        let inter = new_issuer(
            &old.cert_pem,
            &old.key_pem,
            "issuer",
            365 * DAY,
            0,
            key,
            now() - DAY,
        )
        .unwrap();
        let bundle = [old.cert_pem.as_str(), new.cert_pem.as_str()].concat();
        let anchors = TrustAnchors::from_pem(bundle.as_bytes(), now()).unwrap();
        let material = IssuerMaterial {
            cert_pem: inter.cert_pem.clone().into_bytes(),
            key_pem: inter.key_pem.into_bytes(),
        };
        let probe =
            certmint_core::ca::probe_names(&Naming::new("linkerd", "cluster.local").unwrap());
        let issuer = Issuer::load(&material, &anchors, &probe, now()).unwrap();
        let anchors_pem: String = anchors.certs().iter().map(|a| to_pem(&a.der)).collect();
        let store = CaStore::new();
        store.store(CaState {
            issuer: Arc::new(issuer),
            anchors: Arc::new(anchors),
        });
        let stub = Arc::new(Stub::default());
        let svc = service(store.clone(), stub.clone());

        let (pem, _) = csr_pem();
        let mut req = Request::new(request(&pem, 10, None));
        req.metadata_mut()
            .insert("authorization", "Bearer tok".parse().unwrap());
        let chain = svc
            .create_certificate(req)
            .await
            .unwrap()
            .into_inner()
            .cert_chain;

        assert_eq!(chain.len(), 3);
        let leaf = parse_pem_chain(chain[0].as_bytes()).unwrap();
        assert_eq!(leaf.len(), 1, "entry 0 is the leaf alone");
        assert_eq!(
            chain[1],
            to_pem(&parse_pem_chain(inter.cert_pem.as_bytes()).unwrap()[0].der)
        );
        assert_eq!(chain[2], anchors_pem);
        assert_eq!(parse_pem_chain(chain[2].as_bytes()).unwrap().len(), 2);
        // ttl 10 s is raised to the 60 s minimum; notBefore is backdated by the skew.
        let CertInfo {
            not_before,
            not_after,
            ..
        } = &leaf[0];
        assert_eq!(*not_before, now() - Duration::from_secs(20));
        assert_eq!(*not_after, now() + Duration::from_secs(60));
        let state = store.load().unwrap();
        certmint_core::ca::verify::verify_leaf(
            &leaf[0].der,
            state.issuer.chain(),
            &state.anchors,
            None,
            now(),
        )
        .unwrap();
        assert_eq!(stub.0.load(Ordering::SeqCst), 1);
    }
}
