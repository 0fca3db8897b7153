//! Signing a judged request through the core certifier, and the decision it makes:
//! `Issued` with the chain and times, or the refusal the API prescribes for what went
//! wrong (`Denied`/`UnsupportedKeyType` for a key certmint does not sign).

use std::time::Duration;

use certmint_core::certify::{AttestedRequest, Certified, CertifyError};
use certmint_core::csr::CsrError;
use certmint_core::identity::ServiceAccount;

use super::decide::Refusal;
use super::lifetime::{self, MIN_SPAN};
use super::parts::SignerParts;
use super::request::Request;
use super::status::{Decision, IssuedCert};

/// A decision, the identity it concerns and the certificate behind an `Issued` one.
pub struct Signed {
    pub decision: Decision,
    pub identity: String,
    pub cert: Option<Certified>,
}

impl Signed {
    pub fn refused(decision: Decision) -> Self {
        Self {
            decision,
            identity: String::new(),
            cert: None,
        }
    }
}

/// The key types certmint signs, for the `UnsupportedKeyType` message.
const KEY_TYPES: &str =
    "certmint signs ECDSAP256, ECDSAP384, ED25519, RSA3072 and RSA4096 keys; use ECDSAP256";

/// Signs for `account` with `span`; None when signing cannot happen now (no issuer yet,
/// HSM unavailable) and the request should be tried again.
pub fn sign(
    parts: &SignerParts,
    req: &Request,
    account: &ServiceAccount,
    span: Duration,
) -> Option<Signed> {
    let identity = parts.certifier.naming().spiffe_id(account);
    let refuse = |d| {
        Some(Signed {
            decision: d,
            identity: identity.clone(),
            cert: None,
        })
    };
    if chain_left(parts).is_some_and(|left| left < MIN_SPAN) {
        return refuse(Decision::Failed(Refusal::new(
            "IssuerExpiring",
            "the issuer chain expires within an hour; certmint issues no pod certificate shorter than 1h",
        )));
    }
    let attested = AttestedRequest {
        account,
        csr_der: &req.stub_csr,
        span,
    };
    match parts.certifier.certify_attested(attested) {
        Ok(cert) => {
            let span_got = cert
                .not_after
                .duration_since(cert.not_before)
                .unwrap_or_default();
            if span_got < MIN_SPAN {
                return refuse(Decision::Failed(Refusal::new(
                    "IssuerExpiring",
                    "the issuer chain leaves less than 1h",
                )));
            }
            let begin_refresh_at = lifetime::refresh_at(
                cert.not_before,
                cert.not_after,
                parts.config.refresh_fraction,
                rand::random::<f64>() * 2.0 - 1.0,
            );
            let issued = IssuedCert {
                chain_pem: chain_pem(&cert),
                not_before: cert.not_before,
                not_after: cert.not_after,
                begin_refresh_at,
            };
            Some(Signed {
                decision: Decision::Issued(issued),
                identity,
                cert: Some(cert),
            })
        }
        Err(CertifyError::IssuerNotReady | CertifyError::DeadlineExceeded) => None,
        Err(CertifyError::Sign(certmint_core::ca::SignError::KeyUnavailable)) => None,
        Err(e) => refuse(refusal(e)),
    }
}

/// Time left in the current issuer chain after the backdated notBefore.
fn chain_left(parts: &SignerParts) -> Option<Duration> {
    let state = parts.store.load()?;
    let not_before = parts.clock.now() - parts.clock_skew;
    Some(
        state
            .issuer
            .chain_not_after()
            .duration_since(not_before)
            .unwrap_or_default(),
    )
}

fn refusal(e: CertifyError) -> Decision {
    match e {
        CertifyError::Csr(CsrError::KeyNotAllowed(what)) => Decision::Denied(Refusal::new(
            "UnsupportedKeyType",
            format!("{what}: {KEY_TYPES}"),
        )),
        CertifyError::Csr(e) => Decision::Denied(Refusal::new("InvalidRequest", e.to_string())),
        CertifyError::InvalidRequest(m) => Decision::Denied(Refusal::new("InvalidRequest", m)),
        CertifyError::IssuerExpired => Decision::Failed(Refusal::new(
            "IssuerExpired",
            "the issuer is expired or not yet valid",
        )),
        e => {
            tracing::error!(error = %e, "pod certificate signing failed");
            Decision::Failed(Refusal::new("SigningFailed", "signing failed"))
        }
    }
}

/// The chain as PEM: the leaf, then the issuer and any further intermediates.
fn chain_pem(cert: &Certified) -> String {
    let mut out = pem_cert(&cert.leaf);
    for c in &cert.chain {
        out.push_str(&pem_cert(c));
    }
    out
}

/// One certificate as PEM with LF line endings.
pub fn pem_cert(der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der.to_vec()), config)
}
