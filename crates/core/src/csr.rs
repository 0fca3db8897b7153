//! PKCS#10 requests: parse, verify the self-signature, and apply the name and key policy.
//!
//! A CSR contributes only its public key to a leaf; its names are checked, never copied.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_PKCS1_SHA1WITHRSA, OID_SHA1_WITH_RSA, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

/// Why a CSR was refused. Step 3/4 errors are INVALID_ARGUMENT, name errors PERMISSION_DENIED.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsrError {
    /// The bytes are not a DER PKCS#10 request.
    #[error("CSR is not a DER PKCS#10 request")]
    Malformed,
    /// The request's self-signature does not verify with its own key.
    #[error("CSR signature does not verify")]
    BadSignature,
    /// The key type or size is not one certmint signs.
    #[error("CSR key algorithm not allowed: {0}")]
    KeyNotAllowed(String),
    /// The names in the request do not match the identity asked for.
    #[error("CSR names do not match the requested identity: {0}")]
    Names(&'static str),
}

impl CsrError {
    /// True for policy refusals (PERMISSION_DENIED) as opposed to malformed input.
    pub fn is_policy(&self) -> bool {
        matches!(self, CsrError::Names(_))
    }
}

/// The key kinds certmint accepts in a CSR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa(usize),
}

impl KeyKind {
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyKind::Rsa(_))
    }
}

/// A CSR whose signature verified and whose key is allowed.
#[derive(Debug)]
pub struct VerifiedCsr {
    spki: Vec<u8>,
    key: KeyKind,
    common_names: Vec<String>,
    dns_names: Vec<String>,
    uris: Vec<String>,
    other_names: usize,
}

impl VerifiedCsr {
    /// The SubjectPublicKeyInfo, DER, exactly as the CSR carried it.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    pub fn key_kind(&self) -> KeyKind {
        self.key
    }

    /// Step 5: exactly one DNS SAN equal to `identity`; CN empty or equal; no other SANs
    /// except a URI equal to `spiffe_id` (when the identity maps to one).
    pub fn check_names(&self, identity: &str, spiffe_id: Option<&str>) -> Result<(), CsrError> {
        if self.dns_names.len() != 1 || self.dns_names[0] != identity {
            return Err(CsrError::Names(
                "expected exactly one DNS SAN equal to the identity",
            ));
        }
        if self.common_names.len() > 1 || self.common_names.iter().any(|cn| cn != identity) {
            return Err(CsrError::Names("subject CN differs from the identity"));
        }
        if self.other_names > 0 {
            return Err(CsrError::Names("IP, email or other SANs are not allowed"));
        }
        if self.uris.len() > 1 || self.uris.iter().any(|u| Some(u.as_str()) != spiffe_id) {
            return Err(CsrError::Names("URI SAN is not the identity's SPIFFE ID"));
        }
        Ok(())
    }
}

impl VerifiedCsr {
    /// Step 5 for a SPIFFE-only leaf (Istio's API): exactly one URI SAN and no other SAN;
    /// CN absent or equal to it; equal to `expected` when the request names the identity.
    /// Returns the URI the CSR asks for.
    pub fn spiffe_name(&self, expected: Option<&str>) -> Result<&str, CsrError> {
        let [uri] = self.uris.as_slice() else {
            return Err(CsrError::Names(
                "expected exactly one URI SAN (a SPIFFE ID)",
            ));
        };
        if !self.dns_names.is_empty() || self.other_names > 0 {
            return Err(CsrError::Names("only a URI SAN is allowed"));
        }
        if self.common_names.len() > 1 || self.common_names.iter().any(|cn| cn != uri) {
            return Err(CsrError::Names("subject CN differs from the SPIFFE ID"));
        }
        if expected.is_some_and(|e| e != uri) {
            return Err(CsrError::Names("URI SAN is not the requested identity"));
        }
        Ok(uri)
    }
}

/// Steps 3 and 4: parse, verify the self-signature, check the key algorithm.
pub fn verify(der: &[u8]) -> Result<VerifiedCsr, CsrError> {
    let (rest, csr) = X509CertificationRequest::from_der(der).map_err(|_| CsrError::Malformed)?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed);
    }
    let sig_alg = &csr.signature_algorithm.algorithm;
    if *sig_alg == OID_PKCS1_SHA1WITHRSA || *sig_alg == OID_SHA1_WITH_RSA {
        return Err(CsrError::BadSignature);
    }
    let info = &csr.certification_request_info;
    // The key policy first: verifying a huge RSA key's signature is the expensive part.
    let key = key_kind(&info.subject_pki)?;
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;
    let mut out = VerifiedCsr {
        spki: info.subject_pki.raw.to_vec(),
        key,
        common_names: Vec::new(),
        dns_names: Vec::new(),
        uris: Vec::new(),
        other_names: 0,
    };
    for cn in info.subject.iter_common_name() {
        let cn = cn.as_str().map_err(|_| CsrError::Malformed)?;
        out.common_names.push(cn.to_owned());
    }
    collect_sans(&csr, &mut out)?;
    Ok(out)
}

fn collect_sans(csr: &X509CertificationRequest<'_>, out: &mut VerifiedCsr) -> Result<(), CsrError> {
    let Some(exts) = csr.requested_extensions() else {
        return Ok(());
    };
    for ext in exts {
        let san = match ext {
            ParsedExtension::SubjectAlternativeName(san) => san,
            ParsedExtension::ParseError { .. } => return Err(CsrError::Malformed),
            _ => continue,
        };
        for name in &san.general_names {
            match name {
                GeneralName::DNSName(d) => out.dns_names.push((*d).to_owned()),
                GeneralName::URI(u) => out.uris.push((*u).to_owned()),
                _ => out.other_names += 1,
            }
        }
    }
    Ok(())
}

fn key_kind(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<KeyKind, CsrError> {
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_SIG_ED25519 {
        return Ok(KeyKind::Ed25519);
    }
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or_else(|| CsrError::KeyNotAllowed("EC key without a named curve".into()))?;
        return match curve {
            c if c == OID_EC_P256 => Ok(KeyKind::EcdsaP256),
            c if c == OID_NIST_EC_P384 => Ok(KeyKind::EcdsaP384),
            _ => Err(CsrError::KeyNotAllowed(
                "EC curve other than P-256/P-384".into(),
            )),
        };
    }
    if *alg == OID_PKCS1_RSAENCRYPTION {
        let bits = match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => rsa.key_size(),
            _ => return Err(CsrError::Malformed),
        };
        return match bits {
            2048..=4096 => Ok(KeyKind::Rsa(bits)),
            _ => Err(CsrError::KeyNotAllowed(format!(
                "RSA-{bits} (allowed 2048-4096)"
            ))),
        };
    }
    Err(CsrError::KeyNotAllowed("unsupported key type".into()))
}
