//! The Certify pipeline (DESIGN.md §3): validate → authenticate → sign, first failure answers.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use rustls_pki_types::CertificateDer;

use crate::authn::{Authenticated, Authenticator, AuthnError, Token};
use crate::ca::{CaStore, LeafNames, LeafPolicy, SignError};
use crate::clock::Clock;
use crate::csr::{self, CsrError};
use crate::identity::Naming;

/// The largest token accepted.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The largest CSR accepted.
pub const MAX_CSR_BYTES: usize = 16 * 1024;
/// The largest identity string accepted (a DNS name is at most 253 bytes).
pub const MAX_IDENTITY_BYTES: usize = 253;

/// A Certify request, transport-neutral. Deliberately not `Debug`: it holds a token.
pub struct CertifyRequest {
    pub identity: String,
    pub token: Bytes,
    pub csr_der: Bytes,
}

/// What Certify returns on success.
#[derive(Debug)]
pub struct Certified {
    pub leaf: CertificateDer<'static>,
    pub chain: Vec<Bytes>,
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
        }
    }

    pub async fn certify(&self, req: CertifyRequest) -> Result<Certified, CertifyError> {
        self.certify_with(req, &mut None).await
    }

    /// As [`Self::certify`], and leaves in `caller` who the token proved (when it did), so
    /// that a refusal after authentication can still say who was refused.
    pub async fn certify_with(
        &self,
        req: CertifyRequest,
        caller: &mut Option<Authenticated>,
    ) -> Result<Certified, CertifyError> {
        // 1. The snapshot taken here is used for the whole request, even across a swap.
        let state = self.store.load().ok_or(CertifyError::IssuerNotReady)?;
        if !state.issuer.is_valid_at(self.clock.now()) {
            return Err(CertifyError::IssuerExpired);
        }
        // 2.
        check_fields(&req)?;
        // 3, 4.
        let csr = csr::verify(&req.csr_der)?;
        // 5. The SPIFFE ID a CSR may carry is the one the requested name maps to.
        let requested = self.naming.parse_linkerd_name(&req.identity);
        let spiffe = requested.as_ref().map(|sa| self.naming.spiffe_id(sa));
        csr.check_names(&req.identity, spiffe.as_deref())?;
        // 6.
        let token = Token::from_bytes(&req.token)
            .map_err(|_| CertifyError::InvalidRequest("token is empty or not UTF-8"))?;
        let sa = caller
            .insert(self.authn.authenticate(&token).await?)
            .account
            .clone();
        // 7.
        let names = LeafNames {
            dns: self.naming.linkerd_name(&sa),
            uri: Some(self.naming.spiffe_id(&sa)),
        };
        if names.dns != req.identity {
            return Err(CertifyError::IdentityMismatch);
        }
        // 8. Built from the authenticated identity; the CSR gives only its public key.
        let now = self.clock.now();
        let leaf = state.issuer.sign_leaf(
            &names,
            csr.spki_der(),
            csr.key_kind().is_rsa(),
            &self.policy,
            now,
        )?;
        let issuer = state.issuer.cert();
        Ok(Certified {
            leaf: leaf.der,
            chain: state.issuer.chain_bytes().to_vec(),
            not_before: leaf.not_before,
            not_after: leaf.not_after,
            serial: leaf.serial,
            spki_sha256: crate::ca::cert::sha256(csr.spki_der()),
            issuer_serial: issuer.serial_hex.clone(),
            issuer_sha256: issuer.fingerprint_sha256.clone(),
        })
    }
}

fn check_fields(req: &CertifyRequest) -> Result<(), CertifyError> {
    let invalid = |m| Err(CertifyError::InvalidRequest(m));
    if req.identity.is_empty() {
        return invalid("identity is required");
    }
    if req.identity.len() > MAX_IDENTITY_BYTES {
        return invalid("identity is too long");
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
