//! Facts about one X.509 certificate that certmint needs to validate and report on it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::digest::{hex, sha256};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why PEM certificates could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// No `CERTIFICATE` PEM block was found.
    #[error("no PEM certificate found")]
    NoCertificate,
    /// A PEM block is not valid base64 / PEM.
    #[error("PEM is malformed: {0}")]
    Pem(String),
    /// A certificate is not valid DER X.509.
    #[error("certificate {index} is not valid X.509")]
    Parse { index: usize },
}

/// A parsed certificate summary; the DER is kept for chains and anchors.
#[derive(Clone, Debug)]
pub struct CertInfo {
    pub der: CertificateDer<'static>,
    pub subject: String,
    pub issuer: String,
    pub serial_hex: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub is_ca: bool,
    /// keyCertSign is allowed (true when the KeyUsage extension is absent).
    pub can_sign_certs: bool,
    pub self_signed: bool,
    /// subjectPublicKey bits (without the algorithm identifier).
    pub public_key: Vec<u8>,
    pub fingerprint_sha256: String,
}

impl CertInfo {
    pub fn parse(der: CertificateDer<'static>, index: usize) -> Result<Self, CertError> {
        let (rest, x509) =
            X509Certificate::from_der(&der).map_err(|_| CertError::Parse { index })?;
        if !rest.is_empty() {
            return Err(CertError::Parse { index });
        }
        let bc = x509
            .basic_constraints()
            .map_err(|_| CertError::Parse { index })?;
        let ku = x509.key_usage().map_err(|_| CertError::Parse { index })?;
        let info = CertInfo {
            subject: x509.subject().to_string(),
            issuer: x509.issuer().to_string(),
            serial_hex: hex(x509.raw_serial()),
            not_before: to_system_time(x509.validity().not_before.timestamp()),
            not_after: to_system_time(x509.validity().not_after.timestamp()),
            is_ca: bc.is_some_and(|b| b.value.ca),
            can_sign_certs: ku.is_none_or(|k| k.value.key_cert_sign()),
            self_signed: x509.subject().as_raw() == x509.issuer().as_raw(),
            public_key: x509.public_key().subject_public_key.data.to_vec(),
            fingerprint_sha256: hex(&sha256(&der)),
            der: CertificateDer::from(Vec::new()),
        };
        Ok(CertInfo { der, ..info })
    }

    /// Valid at `now` (notBefore ≤ now ≤ notAfter).
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// One certificate as PEM, `\n` line endings, ending in a newline.
pub fn to_pem(der: &[u8]) -> String {
    let block = pem::Pem::new("CERTIFICATE", der);
    pem::encode_config(
        &block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Every `CERTIFICATE` block in a PEM document, parsed, in order.
pub fn parse_pem_chain(pem: &[u8]) -> Result<Vec<CertInfo>, CertError> {
    let mut out = Vec::new();
    for (index, der) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let der = der.map_err(|e| CertError::Pem(e.to_string()))?;
        out.push(CertInfo::parse(der, index)?);
    }
    if out.is_empty() {
        return Err(CertError::NoCertificate);
    }
    Ok(out)
}

fn to_system_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}
