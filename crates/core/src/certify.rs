//! The Certify pipeline (DESIGN.md §3): validate → authenticate → sign, first failure answers.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rustls_pki_types::CertificateDer;

use crate::authn::{Authenticated, Authenticator, AuthnError, Token};
use crate::ca::{CaStore, LeafNames, LeafPolicy, SignError, TrustAnchors};
use crate::clock::Clock;
use crate::csr::{self, CsrError};
use crate::identity::{Naming, ServiceAccount};
use crate::impersonation::{Impersonation, ImpersonationError};

mod attested;
pub use attested::AttestedRequest;

/// The largest token accepted.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The largest CSR accepted.
pub const MAX_CSR_BYTES: usize = 16 * 1024;
/// The largest identity string accepted (a DNS name is at most 253 bytes).
pub const MAX_IDENTITY_BYTES: usize = 253;
/// The largest SPIFFE ID accepted (the SPIFFE standard's limit).
pub const MAX_SPIFFE_BYTES: usize = 2048;

/// The identity a request asks for, and so the leaf profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requested {
    /// A Linkerd name: the CSR names it as its DNS SAN; the leaf carries it and its SPIFFE
    /// ID (Linkerd's API).
    Linkerd(String),
    /// The SPIFFE ID the CSR names as its one URI SAN, for the caller itself; the leaf
    /// carries only that URI (Istio's API).
    OwnSpiffe,
    /// A SPIFFE ID asked for on behalf of another workload; the CSR must name it. Allowed
    /// only as the impersonation policy says (Istio's `ImpersonatedIdentity`).
    OnBehalf(String),
}

/// A Certify request, transport-neutral. Deliberately not `Debug`: it holds a token.
pub struct CertifyRequest {
    pub requested: Requested,
    pub token: Bytes,
    pub csr_der: Bytes,
    /// The lifetime the caller asks for; the configured lifetime caps it.
    pub lifetime: Option<Duration>,
}

impl CertifyRequest {
    /// A Linkerd Certify request (no lifetime of its own).
    pub fn linkerd(identity: String, token: Bytes, csr_der: Bytes) -> Self {
        Self {
            requested: Requested::Linkerd(identity),
            token,
            csr_der,
            lifetime: None,
        }
    }
}

/// What the pipeline learnt about a call, kept even when it fails, for logs and the audit
/// trail: the identity asked for (as soon as it is known) and who the token proved.
#[derive(Debug, Default)]
pub struct Trace {
    pub identity: String,
    pub caller: Option<Authenticated>,
}

/// What Certify returns on success.
#[derive(Debug)]
pub struct Certified {
    pub leaf: CertificateDer<'static>,
    pub chain: Vec<Bytes>,
    /// The trust anchors the issuer was validated against (the whole bundle).
    pub anchors: Arc<TrustAnchors>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub serial: [u8; 16],
    /// SHA-256 of the leaf's SubjectPublicKeyInfo (the CSR's key).
    pub spki_sha256: [u8; 32],
    /// The issuer that signed the leaf: its serial and the SHA-256 of its DER (hex, both
    /// computed once when the issuer was loaded).
    pub issuer_serial: String,
    pub issuer_sha256: String,
}

/// Every way Certify can fail, one variant per row of the DESIGN.md §3 table.
#[derive(Debug, thiserror::Error)]
pub enum CertifyError {
    /// Step 1: no issuer loaded yet.
    #[error("issuer not ready")]
    IssuerNotReady,
    /// Step 1: the issuer (or its chain) is outside its validity period.
    #[error("issuer expired")]
    IssuerExpired,
    /// Step 2: a field is missing or too large.
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// Steps 3–5: the CSR is malformed, unsigned, uses a refused key, or names something else.
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// Step 6: the token did not authenticate, or the authenticator is unavailable.
    #[error(transparent)]
    Authn(#[from] AuthnError),
    /// Step 7: the token proves a different identity than the one requested.
    #[error("token identity does not match the requested identity")]
    IdentityMismatch,
    /// Step 7: the caller may not have the identity it asked for on another's behalf.
    #[error(transparent)]
    Impersonation(#[from] ImpersonationError),
    /// The request did not finish within certmint's own deadline (UNAVAILABLE, retryable).
    #[error("request deadline exceeded")]
    DeadlineExceeded,
    /// Step 8: signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// Runs the pipeline against the current CA state.
pub struct Certifier {
    store: CaStore,
    authn: Arc<dyn Authenticator>,
    naming: Naming,
    policy: LeafPolicy,
    clock: Arc<dyn Clock>,
    impersonation: Option<Impersonation>,
}

impl Certifier {
    pub fn new(
        store: CaStore,
        authn: Arc<dyn Authenticator>,
        naming: Naming,
        policy: LeafPolicy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            authn,
            naming,
            policy,
            clock,
            impersonation: None,
        }
    }

    /// A certifier for attested callers only ([`Self::certify_attested`]): every token
    /// is refused.
    pub fn attested_only(
        store: CaStore,
        naming: Naming,
        policy: LeafPolicy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::new(store, Arc::new(attested::NoTokens), naming, policy, clock)
    }

    /// Allows [`Requested::OnBehalf`] as `policy` says (refused without one).
    pub fn with_impersonation(mut self, policy: Impersonation) -> Self {
        self.impersonation = Some(policy);
        self
    }

    pub async fn certify(&self, req: CertifyRequest) -> Result<Certified, CertifyError> {
        self.certify_with(req, &mut Trace::default()).await
    }

    /// As [`Self::certify`], and leaves in `trace` what the call asked for and who the
    /// token proved (when it did), so that a refusal can still say who was refused.
    pub async fn certify_with(
        &self,
        req: CertifyRequest,
        trace: &mut Trace,
    ) -> Result<Certified, CertifyError> {
        if let (Requested::Linkerd(id) | Requested::OnBehalf(id), true) =
            (&req.requested, trace.identity.is_empty())
        {
            trace.identity.clone_from(id);
        }
        // 1. The snapshot taken here is used for the whole request, even across a swap.
        let state = self.store.load().ok_or(CertifyError::IssuerNotReady)?;
        if !state.issuer.is_valid_at(self.clock.now()) {
            return Err(CertifyError::IssuerExpired);
        }
        // 2.
        check_fields(&req)?;
        // 3, 4.
        let csr = csr::verify(&req.csr_der)?;
        // 5.
        let wanted = self.check_names(&req.requested, &csr, trace)?;
        // 6.
        let token = Token::from_bytes(&req.token)
            .map_err(|_| CertifyError::InvalidRequest("token is empty or not UTF-8"))?;
        let caller = trace.caller.insert(self.authn.authenticate(&token).await?);
        // 7.
        let sa = self.authorize(&req.requested, caller, wanted)?;
        // 8. Built from the authenticated identity; the CSR gives only its public key.
        let (names, policy) = self.leaf_profile(&req.requested, &sa, req.lifetime);
        let now = self.clock.now();
        signed(&state, &names, &csr, &policy, now)
    }

    /// The leaf's names and lifetime for `sa`: Linkerd's API gets the Linkerd name and the
    /// SPIFFE ID, Istio's the SPIFFE ID only; a requested lifetime is kept within
    /// [`MIN_LIFETIME`, the configured lifetime].
    fn leaf_profile(
        &self,
        requested: &Requested,
        sa: &ServiceAccount,
        lifetime: Option<Duration>,
    ) -> (LeafNames, LeafPolicy) {
        let uri = Some(self.naming.spiffe_id(sa));
        let dns = match requested {
            Requested::Linkerd(_) => vec![self.naming.linkerd_name(sa)],
            Requested::OwnSpiffe | Requested::OnBehalf(_) => Vec::new(),
        };
        let max = self.policy.lifetime.max(MIN_LIFETIME);
        let policy = LeafPolicy {
            lifetime: lifetime.map_or(self.policy.lifetime, |l| l.clamp(MIN_LIFETIME, max)),
            ..self.policy
        };
        (LeafNames { dns, uri }, policy)
    }

    /// Step 5: the CSR names exactly the identity asked for. Returns the service account
    /// that identity denotes (`None` for a Linkerd name outside this mesh's scheme, which
    /// then cannot match any token in step 7).
    fn check_names(
        &self,
        requested: &Requested,
        csr: &csr::VerifiedCsr,
        trace: &mut Trace,
    ) -> Result<Option<ServiceAccount>, CertifyError> {
        match requested {
            Requested::Linkerd(name) => {
                let sa = self.naming.parse_linkerd_name(name);
                let spiffe = sa.as_ref().map(|sa| self.naming.spiffe_id(sa));
                csr.check_names(name, spiffe.as_deref())?;
                Ok(sa)
            }
            Requested::OwnSpiffe | Requested::OnBehalf(_) => {
                let expected = match requested {
                    Requested::OnBehalf(id) => Some(id.as_str()),
                    _ => None,
                };
                let uri = csr.spiffe_name(expected)?;
                if trace.identity.is_empty() {
                    trace.identity = uri.to_owned();
                }
                let sa = self.naming.parse_spiffe_id(uri).ok_or(CsrError::Names(
                    "URI SAN is not a SPIFFE ID of this trust domain (spiffe://TRUST_DOMAIN/ns/NS/sa/SA)",
                ))?;
                Ok(Some(sa))
            }
        }
    }

    /// Step 7: the identity asked for is the caller's own, or one the impersonation policy
    /// lets it have. Returns the service account the leaf is for.
    fn authorize(
        &self,
        requested: &Requested,
        caller: &Authenticated,
        wanted: Option<ServiceAccount>,
    ) -> Result<ServiceAccount, CertifyError> {
        let wanted = wanted.ok_or(CertifyError::IdentityMismatch)?;
        if wanted == caller.account {
            return Ok(wanted);
        }
        match (requested, &self.impersonation) {
            (Requested::OnBehalf(_), Some(policy)) => {
                policy.check(caller, &wanted)?;
                Ok(wanted)
            }
            _ => Err(CertifyError::IdentityMismatch),
        }
    }
}

/// The shortest lifetime a caller may ask for: a leaf that expires before a proxy could use
/// it helps nobody.
pub const MIN_LIFETIME: Duration = Duration::from_secs(60);

fn check_fields(req: &CertifyRequest) -> Result<(), CertifyError> {
    let invalid = |m| Err(CertifyError::InvalidRequest(m));
    match &req.requested {
        Requested::Linkerd(id) if id.is_empty() => return invalid("identity is required"),
        Requested::Linkerd(id) if id.len() > MAX_IDENTITY_BYTES => {
            return invalid("identity is too long");
        }
        Requested::OnBehalf(id) if id.is_empty() || id.len() > MAX_SPIFFE_BYTES => {
            return invalid("impersonated identity is empty or longer than 2048 bytes");
        }
        _ => {}
    }
    if req.token.is_empty() {
        return invalid("token is required");
    }
    if req.token.len() > MAX_TOKEN_BYTES {
        return invalid("token is larger than 16 KiB");
    }
    if req.csr_der.is_empty() {
        return invalid("certificate_signing_request is required");
    }
    if req.csr_der.len() > MAX_CSR_BYTES {
        return invalid("certificate_signing_request is larger than 16 KiB");
    }
    Ok(())
}

/// Signs the leaf for `names` over the CSR's key with the snapshot's issuer, and what the
/// caller is answered (both APIs and pod certificates).
fn signed(
    state: &crate::ca::CaState,
    names: &LeafNames,
    csr: &csr::VerifiedCsr,
    policy: &LeafPolicy,
    now: std::time::SystemTime,
) -> Result<Certified, CertifyError> {
    let leaf =
        state
            .issuer
            .sign_leaf(names, csr.spki_der(), csr.key_kind().is_rsa(), policy, now)?;
    let issuer = state.issuer.cert();
    Ok(Certified {
        leaf: leaf.der,
        chain: state.issuer.chain_bytes().to_vec(),
        anchors: state.anchors.clone(),
        not_before: leaf.not_before,
        not_after: leaf.not_after,
        serial: leaf.serial,
        spki_sha256: crate::digest::sha256(csr.spki_der()),
        issuer_serial: issuer.serial_hex.clone(),
        issuer_sha256: issuer.fingerprint_sha256.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::UNIX_EPOCH;

    use futures::future::BoxFuture;
    use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::{FromDer, X509Certificate};

    use crate::authn::{Method, Token};
    use crate::ca::create::{KeyType, generate_key, new_issuer, new_root};
    use crate::ca::{CaState, Issuer, IssuerMaterial, TrustAnchors};

    const ID: &str = "web.shop.serviceaccount.identity.linkerd.cluster.local";
    const SPIFFE: &str = "spiffe://cluster.local/ns/shop/sa/web";
    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    /// Proves `account` for any token (or refuses every token), counting the calls.
    struct Stub {
        account: Result<ServiceAccount, String>,
        calls: AtomicUsize,
    }

    impl Authenticator for Stub {
        fn authenticate<'a>(
            &'a self,
            _token: &'a Token,
        ) -> BoxFuture<'a, Result<Authenticated, AuthnError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let r = match &self.account {
                Ok(sa) => Ok(Authenticated::new(sa.clone(), Method::TokenReview, None)),
                Err(why) => Err(AuthnError::Unauthenticated(why.clone())),
            };
            Box::pin(async move { r })
        }
    }

    fn sa(ns: &str, name: &str) -> ServiceAccount {
        ServiceAccount::new(ns, name).unwrap()
    }

    /// A store holding a valid issuer under a root, valid a year from a day ago.
    fn loaded_store() -> CaStore {
        let root = new_root(
            "root",
            3650 * DAY,
            generate_key(KeyType::P256).unwrap(),
            now() - DAY,
        )
        .unwrap();
        let key = generate_key(KeyType::P256).unwrap();
        let inter = new_issuer(
            &root.cert_pem,
            &root.key_pem,
            "issuer",
            365 * DAY,
            0,
            key,
            now() - DAY,
        )
        .unwrap();
        let material = IssuerMaterial {
            cert_pem: inter.cert_pem.into_bytes(),
            key_pem: inter.key_pem.into_bytes(),
        };
        let anchors = TrustAnchors::from_pem(root.cert_pem.as_bytes(), now()).unwrap();
        let probe = crate::ca::probe_names(&naming());
        let issuer = Issuer::load(&material, &anchors, &probe, now()).unwrap();
        let store = CaStore::new();
        store.store(CaState {
            issuer: Arc::new(issuer),
            anchors: Arc::new(anchors),
        });
        store
    }

    fn naming() -> Naming {
        Naming::new("linkerd", "cluster.local").unwrap()
    }

    fn certifier(store: CaStore, stub: &Arc<Stub>, at: SystemTime) -> Certifier {
        Certifier::new(
            store,
            stub.clone(),
            naming(),
            LeafPolicy::default(),
            Arc::new(FixedClock(at)),
        )
    }

    fn stub(account: Result<ServiceAccount, String>) -> Arc<Stub> {
        Arc::new(Stub {
            account,
            calls: AtomicUsize::new(0),
        })
    }

    fn csr(key: &KeyPair, dns: &[&str], uris: &[&str]) -> Bytes {
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        for d in dns {
            p.subject_alt_names
                .push(SanType::DnsName((*d).try_into().unwrap()));
        }
        for u in uris {
            p.subject_alt_names
                .push(SanType::URI((*u).try_into().unwrap()));
        }
        Bytes::from(p.serialize_request(key).unwrap().der().to_vec())
    }

    fn linkerd(identity: &str, token: &[u8], csr_der: Bytes) -> CertifyRequest {
        CertifyRequest::linkerd(identity.into(), Bytes::copy_from_slice(token), csr_der)
    }

    fn web_csr() -> (KeyPair, Bytes) {
        let key = KeyPair::generate().unwrap();
        let der = csr(&key, &[ID], &[]);
        (key, der)
    }

    #[tokio::test]
    async fn issuer_not_ready_answers_before_anything_else() {
        let stub = stub(Ok(sa("shop", "web")));
        let c = certifier(CaStore::new(), &stub, now());
        // Every field is wrong too: the missing issuer still answers first.
        let r = c.certify(linkerd("", b"", Bytes::new())).await;
        assert!(matches!(r, Err(CertifyError::IssuerNotReady)), "{r:?}");
        assert_eq!(stub.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn expired_issuer_answers_before_the_request_is_read() {
        let stub = stub(Ok(sa("shop", "web")));
        let c = certifier(loaded_store(), &stub, now() + 400 * DAY);
        let r = c.certify(linkerd(ID, b"tok", web_csr().1)).await;
        assert!(matches!(r, Err(CertifyError::IssuerExpired)), "{r:?}");
        assert_eq!(stub.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn oversized_or_missing_fields_are_refused_before_authentication() {
        let stub = stub(Ok(sa("shop", "web")));
        let c = certifier(loaded_store(), &stub, now());
        let csr = web_csr().1;
        let big = vec![b'a'; MAX_TOKEN_BYTES + 1];
        let cases = [
            (
                linkerd(ID, &big, csr.clone()),
                "token is larger than 16 KiB",
            ),
            (linkerd(ID, b"", csr.clone()), "token is required"),
            (
                linkerd(ID, b"tok", Bytes::from(vec![0x30; MAX_CSR_BYTES + 1])),
                "certificate_signing_request is larger than 16 KiB",
            ),
            (
                linkerd(ID, b"tok", Bytes::new()),
                "certificate_signing_request is required",
            ),
            (linkerd("", b"tok", csr.clone()), "identity is required"),
            (
                linkerd(&"a".repeat(MAX_IDENTITY_BYTES + 1), b"tok", csr.clone()),
                "identity is too long",
            ),
        ];
        for (req, want) in cases {
            match c.certify(req).await {
                Err(CertifyError::InvalidRequest(got)) => assert_eq!(got, want),
                other => panic!("expected InvalidRequest({want:?}), got {other:?}"),
            }
        }
        // A token of exactly the limit passes step 2.
        let at_limit = vec![b'a'; MAX_TOKEN_BYTES];
        assert!(c.certify(linkerd(ID, &at_limit, csr)).await.is_ok());
        assert_eq!(stub.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn bad_csr_is_refused_before_authentication() {
        let stub = stub(Ok(sa("shop", "web")));
        let c = certifier(loaded_store(), &stub, now());
        let mut tampered = web_csr().1.to_vec();
        *tampered.last_mut().unwrap() ^= 1;
        let r = c.certify(linkerd(ID, b"tok", tampered.into())).await;
        assert!(
            matches!(r, Err(CertifyError::Csr(CsrError::BadSignature))),
            "{r:?}"
        );
        let r = c
            .certify(linkerd(ID, b"tok", Bytes::from_static(b"junk")))
            .await;
        assert!(
            matches!(r, Err(CertifyError::Csr(CsrError::Malformed))),
            "{r:?}"
        );
        assert_eq!(stub.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn csr_naming_another_identity_is_denied_before_authentication() {
        let stub = stub(Ok(sa("shop", "web")));
        let c = certifier(loaded_store(), &stub, now());
        let key = KeyPair::generate().unwrap();
        let other = "db.shop.serviceaccount.identity.linkerd.cluster.local";
        let r = c
            .certify(linkerd(ID, b"tok", csr(&key, &[other], &[])))
            .await;
        match r {
            Err(CertifyError::Csr(e)) => assert!(e.is_policy(), "{e:?}"),
            other => panic!("expected a CSR name refusal, got {other:?}"),
        }
        assert_eq!(stub.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn rejected_token_is_unauthenticated() {
        let stub = stub(Err("expired".into()));
        let c = certifier(loaded_store(), &stub, now());
        let r = c.certify(linkerd(ID, b"tok", web_csr().1)).await;
        assert!(
            matches!(r, Err(CertifyError::Authn(AuthnError::Unauthenticated(_)))),
            "{r:?}"
        );
        assert_eq!(stub.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn token_for_another_identity_is_denied() {
        let stub = stub(Ok(sa("shop", "db")));
        let c = certifier(loaded_store(), &stub, now());
        let mut trace = Trace::default();
        let r = c
            .certify_with(linkerd(ID, b"tok", web_csr().1), &mut trace)
            .await;
        assert!(matches!(r, Err(CertifyError::IdentityMismatch)), "{r:?}");
        assert_eq!(stub.calls.load(Ordering::SeqCst), 1);
        assert_eq!(trace.identity, ID);
        assert_eq!(trace.caller.unwrap().account, sa("shop", "db"));
    }

    #[tokio::test]
    async fn identity_outside_the_mesh_scheme_never_matches_a_token() {
        let stub = stub(Ok(sa("shop", "web")));
        let c = certifier(loaded_store(), &stub, now());
        let key = KeyPair::generate().unwrap();
        let name = "web.example.com";
        let r = c
            .certify(linkerd(name, b"tok", csr(&key, &[name], &[])))
            .await;
        assert!(matches!(r, Err(CertifyError::IdentityMismatch)), "{r:?}");
    }

    #[tokio::test]
    async fn issues_a_leaf_for_the_authenticated_identity() {
        let stub = stub(Ok(sa("shop", "web")));
        let store = loaded_store();
        let state = store.load().unwrap();
        let c = certifier(store, &stub, now());
        let (key, der) = web_csr();
        let got = c.certify(linkerd(ID, b"tok\n", der)).await.unwrap();
        assert_eq!(got.not_before, now() - Duration::from_secs(20));
        assert_eq!(got.not_after, now() + DAY);
        assert_eq!(got.chain, state.issuer.chain_bytes());
        assert!(std::sync::Arc::ptr_eq(&got.anchors, &state.anchors));
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        assert_eq!(got.spki_sha256, crate::digest::sha256(&spki));
        let (_, x509) = X509Certificate::from_der(&got.leaf).unwrap();
        assert_eq!(x509.raw_serial(), &got.serial[..]);
        assert_eq!(x509.public_key().raw, spki.as_slice());
        let san = x509.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            san.value.general_names,
            [GeneralName::DNSName(ID), GeneralName::URI(SPIFFE)]
        );
        let chain: Vec<_> = state.issuer.chain().to_vec();
        crate::ca::verify::verify_leaf(&got.leaf, &chain, &state.anchors, Some(ID), now()).unwrap();
        assert_eq!(stub.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn spiffe_request_gets_a_uri_only_leaf_with_clamped_lifetime() {
        let stub = stub(Ok(sa("shop", "web")));
        let c = certifier(loaded_store(), &stub, now());
        let key = KeyPair::generate().unwrap();
        for (asked, want) in [
            (None, DAY),
            (Some(Duration::from_secs(3600)), Duration::from_secs(3600)),
            (Some(Duration::from_secs(10)), MIN_LIFETIME),
            (Some(2 * DAY), DAY),
        ] {
            let req = CertifyRequest {
                requested: Requested::OwnSpiffe,
                token: Bytes::from_static(b"tok"),
                csr_der: csr(&key, &[], &[SPIFFE]),
                lifetime: asked,
            };
            let got = c.certify(req).await.unwrap();
            assert_eq!(got.not_after, now() + want, "asked {asked:?}");
            let (_, x509) = X509Certificate::from_der(&got.leaf).unwrap();
            let san = x509.subject_alternative_name().unwrap().unwrap();
            assert_eq!(san.value.general_names, [GeneralName::URI(SPIFFE)]);
        }
    }

    #[tokio::test]
    async fn on_behalf_requests_need_an_impersonation_policy() {
        let stub = stub(Ok(sa("kube-system", "ztunnel")));
        let c = certifier(loaded_store(), &stub, now());
        let key = KeyPair::generate().unwrap();
        let req = CertifyRequest {
            requested: Requested::OnBehalf(SPIFFE.into()),
            token: Bytes::from_static(b"tok"),
            csr_der: csr(&key, &[], &[SPIFFE]),
            lifetime: None,
        };
        let r = c.certify(req).await;
        assert!(matches!(r, Err(CertifyError::IdentityMismatch)), "{r:?}");
    }

    #[test]
    fn attested_leaf_spans_exactly_what_was_asked_and_names_only_the_spiffe_id() {
        let stub = stub(Err("no tokens".into()));
        let c = certifier(loaded_store(), &stub, now());
        let key = KeyPair::generate().unwrap();
        let account = sa("shop", "web");
        let der = csr(&key, &[], &[]);
        let req = |span| AttestedRequest {
            account: &account,
            csr_der: &der,
            span,
        };
        let got = c.certify_attested(req(Duration::from_secs(3600))).unwrap();
        assert_eq!(
            got.not_after
                .duration_since(got.not_before)
                .unwrap()
                .as_secs(),
            3600
        );
        assert_eq!(got.not_before, now() - Duration::from_secs(20));
        let (_, x509) = X509Certificate::from_der(&got.leaf).unwrap();
        let san = x509.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names, [GeneralName::URI(SPIFFE)]);
        // Longer than the issuer chain (a year): capped at the chain's end.
        let long = c.certify_attested(req(400 * DAY)).unwrap();
        assert!(long.not_after <= now() + 365 * DAY);
        // The stub CSR is still verified.
        let mut bad = der.to_vec();
        *bad.last_mut().unwrap() ^= 1;
        let r = c.certify_attested(AttestedRequest {
            account: &account,
            csr_der: &bad,
            span: DAY,
        });
        assert!(
            matches!(r, Err(CertifyError::Csr(CsrError::BadSignature))),
            "{r:?}"
        );
        assert_eq!(stub.calls.load(Ordering::SeqCst), 0);
    }
}
