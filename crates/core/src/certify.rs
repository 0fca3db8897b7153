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
        let leaf = state.issuer.sign_leaf(
            &names,
            csr.spki_der(),
            csr.key_kind().is_rsa(),
            &policy,
            now,
        )?;
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
