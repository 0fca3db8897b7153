//! The rcgen signer for a CA certificate, built only from a subject that rcgen can write
//! back. rcgen re-encodes the CA's subject name into every certificate it signs, and its
//! encoder panics on two things a hostile issuer Secret can carry: an RDN with no attribute,
//! and an attribute type whose arcs (as x509-parser decodes them) are not a canonical OID
//! (found by the `ca_pem` fuzz target: x509-parser reads OID 2.109.4 as arcs 3.9.4). Both
//! are refused here with an error instead.

use rcgen::SigningKey;
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Checks the CA certificate's subject, then builds the signer.
pub fn ca_signer<K: SigningKey>(
    der: &CertificateDer<'_>,
    key: K,
) -> Result<rcgen::Issuer<'static, K>, String> {
    check_subject(der)?;
    rcgen::Issuer::from_ca_cert_der(der, key).map_err(|e| e.to_string())
}

fn check_subject(der: &[u8]) -> Result<(), String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    for rdn in cert.subject().iter() {
        if rdn.iter().next().is_none() {
            return Err("the certificate's subject has an empty RDN; reissue it".into());
        }
        for attr in rdn.iter() {
            let arcs: Vec<u64> = attr
                .attr_type()
                .iter()
                .map(Iterator::collect)
                .unwrap_or_default();
            if !canonical(&arcs) {
                return Err(format!(
                    "the certificate's subject has an attribute type certmint cannot re-encode ({}); reissue it with standard name attributes",
                    attr.attr_type()
                ));
            }
        }
    }
    Ok(())
}

/// X.660: at least two arcs; the first is 0, 1 or 2; under 0 and 1 the second is below 40.
fn canonical(arcs: &[u64]) -> bool {
    match arcs {
        [first, second, ..] => *first <= 2 && (*first == 2 || *second < 40),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_arcs_pass() {
        assert!(canonical(&[2, 5, 4, 3]));
        assert!(canonical(&[1, 39]));
        assert!(canonical(&[2, 999, 1]));
        assert!(!canonical(&[4, 29, 4]));
        assert!(!canonical(&[1, 40]));
        assert!(!canonical(&[2]));
        assert!(!canonical(&[]));
    }
}
