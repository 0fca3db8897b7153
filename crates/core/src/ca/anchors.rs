//! The trust-anchor bundle: the roots that issuers must chain to and clients verify against.

use std::time::SystemTime;

use rustls_pki_types::TrustAnchor;

use super::cert::{CertError, CertInfo, parse_pem_chain};

/// Why a trust-anchor bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// The bundle does not parse.
    #[error("trust anchors: {0}")]
    Parse(#[from] CertError),
    /// A certificate in the bundle is not a CA (basicConstraints CA:true, keyCertSign).
    #[error("trust anchor {subject:?} is not a CA certificate")]
    NotCa { subject: String },
    /// No certificate in the bundle is valid now.
    #[error("no trust anchor in the bundle is valid now")]
    NoneValid,
    /// webpki could not use a certificate as an anchor.
    #[error("trust anchor {subject:?} is unusable: {reason}")]
    Unusable { subject: String, reason: String },
}

/// A parsed, checked bundle of one or more roots.
#[derive(Debug)]
pub struct TrustAnchors {
    certs: Vec<CertInfo>,
    anchors: Vec<TrustAnchor<'static>>,
}

impl TrustAnchors {
    /// Parses a PEM bundle; every certificate must be a CA, at least one valid at `now`.
    pub fn from_pem(pem: &[u8], now: SystemTime) -> Result<Self, AnchorError> {
        let certs = parse_pem_chain(pem)?;
        let mut anchors = Vec::with_capacity(certs.len());
        for c in &certs {
            if !c.is_ca || !c.can_sign_certs {
                return Err(AnchorError::NotCa {
                    subject: c.subject.clone(),
                });
            }
            let anchor =
                webpki::anchor_from_trusted_cert(&c.der).map_err(|e| AnchorError::Unusable {
                    subject: c.subject.clone(),
                    reason: e.to_string(),
                })?;
            anchors.push(anchor.to_owned());
        }
        let bundle = Self { certs, anchors };
        if bundle.valid_at(now).is_empty() {
            return Err(AnchorError::NoneValid);
        }
        Ok(bundle)
    }

    /// The anchors usable for verification at `now` (expired ones are never trusted).
    pub fn valid_at(&self, now: SystemTime) -> Vec<TrustAnchor<'static>> {
        self.certs
            .iter()
            .zip(&self.anchors)
            .filter(|(c, _)| c.is_valid_at(now))
            .map(|(_, a)| a.clone())
            .collect()
    }

    /// The certificate behind a webpki anchor (matched by subject and key).
    pub fn cert_for(&self, anchor: &TrustAnchor<'_>) -> Option<&CertInfo> {
        self.anchors
            .iter()
            .position(|a| {
                a.subject == anchor.subject
                    && a.subject_public_key_info == anchor.subject_public_key_info
            })
            .map(|i| &self.certs[i])
    }

    pub fn certs(&self) -> &[CertInfo] {
        &self.certs
    }

    /// The earliest notAfter of any anchor in the bundle.
    pub fn earliest_expiry(&self) -> SystemTime {
        self.certs
            .iter()
            .map(|c| c.not_after)
            .min()
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}
