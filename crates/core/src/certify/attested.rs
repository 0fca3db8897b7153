//! Certificates for callers the platform has already authenticated: Kubernetes pod
//! certificates, where the API server established the pod, node and service account and
//! the kubelet's stub CSR carries only the pod's public key. The same issuer snapshot,
//! CSR checks (steps 3 and 4) and leaf profile (Istio's: SPIFFE URI SAN only) as Certify;
//! no token and no name check.

use std::time::Duration;

use super::{Certified, Certifier, CertifyError, MAX_CSR_BYTES};
use crate::ca::{LeafNames, LeafPolicy};
use crate::csr;
use crate::identity::ServiceAccount;

/// What an attested caller asks for.
#[derive(Clone, Copy, Debug)]
pub struct AttestedRequest<'a> {
    /// The service account the platform vouches for.
    pub account: &'a ServiceAccount,
    /// A DER PKCS#10 request made with the caller's key; only its key is used.
    pub csr_der: &'a [u8],
    /// notAfter − notBefore as wanted; the issuer chain may shorten it.
    pub span: Duration,
}

impl Certifier {
    /// The naming scheme leaves are built with.
    pub fn naming(&self) -> &crate::identity::Naming {
        &self.naming
    }

    /// Signs a SPIFFE leaf for `req.account` over the CSR's key, valid from now − clock
    /// skew for `req.span` (whole seconds), capped by the issuer chain. The caller decides
    /// the span; checking a capped span against its own floor is the caller's job.
    pub fn certify_attested(&self, req: AttestedRequest<'_>) -> Result<Certified, CertifyError> {
        let state = self.store.load().ok_or(CertifyError::IssuerNotReady)?;
        let now = self.clock.now();
        if !state.issuer.is_valid_at(now) {
            return Err(CertifyError::IssuerExpired);
        }
        if req.csr_der.is_empty() || req.csr_der.len() > MAX_CSR_BYTES {
            return Err(CertifyError::InvalidRequest(
                "stub CSR is empty or larger than 16 KiB",
            ));
        }
        let csr = csr::verify(req.csr_der)?;
        let skew = Duration::from_secs(self.policy.clock_skew.as_secs());
        let names = LeafNames {
            dns: Vec::new(),
            uri: Some(self.naming.spiffe_id(req.account)),
        };
        let policy = LeafPolicy {
            lifetime: Duration::from_secs(req.span.as_secs()).saturating_sub(skew),
            clock_skew: skew,
        };
        super::signed(&state, &names, &csr, &policy, now)
    }
}

/// The authenticator of an attested-only certifier: it has no tokens to check.
pub(super) struct NoTokens;

impl crate::authn::Authenticator for NoTokens {
    fn authenticate<'a>(
        &'a self,
        _token: &'a crate::authn::Token,
    ) -> futures::future::BoxFuture<'a, Result<crate::authn::Authenticated, crate::authn::AuthnError>>
    {
        Box::pin(async {
            Err(crate::authn::AuthnError::Unauthenticated(
                "this certifier takes no tokens".into(),
            ))
        })
    }
}
