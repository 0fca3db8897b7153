//! Private keys from PEM in the formats admins actually have: PKCS#8, SEC1 and PKCS#1.
//!
//! rcgen signs only with PKCS#8 keys, so SEC1 (`EC PRIVATE KEY`, what openssl,
//! step and cert-manager write) and PKCS#1 (`RSA PRIVATE KEY`) are wrapped into PKCS#8.

use pkcs8::der::Encode;
use pkcs8::der::asn1::{AnyRef, ObjectIdentifier};
use pkcs8::{AlgorithmIdentifierRef, PrivateKeyInfo};
use rcgen::KeyPair;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// Why a private key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No PEM private key block was found.
    #[error("no PEM private key found (expected PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)")]
    NoKey,
    /// The key block is not a valid SEC1 / PKCS#1 / PKCS#8 structure.
    #[error("private key is malformed: {0}")]
    Malformed(String),
    /// The key type is not supported for signing.
    #[error("private key type not supported (use ECDSA P-256/P-384, Ed25519 or RSA): {0}")]
    Unsupported(String),
    /// A key outside certmint (an HSM) could not be found or used.
    #[error("{0}")]
    External(String),
}

/// Parses the first private key in `pem` into a signing key pair.
pub fn key_pair_from_pem(pem: &[u8]) -> Result<KeyPair, KeyError> {
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(|_| KeyError::NoKey)?;
    let pkcs8 = match &key {
        PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        PrivateKeyDer::Sec1(k) => wrap_sec1(k.secret_sec1_der())?,
        PrivateKeyDer::Pkcs1(k) => wrap(RSA_ENCRYPTION, Some(AnyRef::NULL), k.secret_pkcs1_der())?,
        _ => return Err(KeyError::Unsupported("unknown PEM key kind".into())),
    };
    KeyPair::try_from(pkcs8.as_slice()).map_err(|e| KeyError::Unsupported(e.to_string()))
}

fn wrap_sec1(der: &[u8]) -> Result<Vec<u8>, KeyError> {
    let ec = sec1::EcPrivateKey::try_from(der).map_err(|e| KeyError::Malformed(e.to_string()))?;
    let curve = ec
        .parameters
        .and_then(|p| p.named_curve())
        .ok_or_else(|| KeyError::Malformed("EC key does not name its curve".into()))?;
    if ec.public_key.is_none() {
        return Err(KeyError::Malformed(
            "EC key does not include its public key".into(),
        ));
    }
    wrap(EC_PUBLIC_KEY, Some(AnyRef::from(&curve)), der)
}

fn wrap(
    oid: ObjectIdentifier,
    params: Option<AnyRef<'_>>,
    der: &[u8],
) -> Result<Vec<u8>, KeyError> {
    let algorithm = AlgorithmIdentifierRef {
        oid,
        parameters: params,
    };
    PrivateKeyInfo::new(algorithm, der)
        .to_der()
        .map_err(|e| KeyError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PublicKeyData};

    fn pem(label: &str, der: &[u8]) -> String {
        pem_rfc7468_encode(label, der)
    }

    fn pem_rfc7468_encode(label: &str, der: &[u8]) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn reads_pkcs8_and_sec1_ec_keys() {
        for alg in [&PKCS_ECDSA_P256_SHA256, &PKCS_ECDSA_P384_SHA384] {
            let kp = KeyPair::generate_for(alg).unwrap();
            let from_pkcs8 = key_pair_from_pem(kp.serialize_pem().as_bytes()).unwrap();
            assert_eq!(from_pkcs8.public_key_raw(), kp.public_key_raw());
            // What openssl writes: the PKCS#8 inner key with the curve named inside it.
            let info = PrivateKeyInfo::try_from(kp.serialized_der()).unwrap();
            let mut ec = sec1::EcPrivateKey::try_from(info.private_key).unwrap();
            let curve = info.algorithm.parameters_oid().unwrap();
            ec.parameters = Some(sec1::EcParameters::NamedCurve(curve));
            let sec1 = pem("EC PRIVATE KEY", &ec.to_der().unwrap());
            let from_sec1 = key_pair_from_pem(sec1.as_bytes()).unwrap();
            assert_eq!(from_sec1.der_bytes(), kp.der_bytes());
        }
    }

    #[test]
    fn reads_pkcs1_rsa_keys() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let pkcs1 = key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap();
        let kp = key_pair_from_pem(pkcs1.as_bytes()).unwrap();
        assert!(kp.is_compatible(&rcgen::PKCS_RSA_SHA256));
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(key_pair_from_pem(b"nope"), Err(KeyError::NoKey)));
        let bad = pem("EC PRIVATE KEY", b"\x30\x03\x02\x01\x01");
        assert!(key_pair_from_pem(bad.as_bytes()).is_err());
    }
}
