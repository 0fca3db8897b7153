//! Creating CA material: trust anchors (roots) and issuers (intermediates), with the
//! profile `step certificate create --profile root-ca / intermediate-ca` uses.

use std::time::{Duration, SystemTime};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SerialNumber,
};

use super::keys::key_pair_from_pem;
use super::signing_key::CaKey;

/// Key algorithms certmint can generate for CAs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    P256,
    P384,
    Rsa3072,
}

impl KeyType {
    /// The names the CLI accepts, in the order of the variants.
    pub const NAMES: [&'static str; 3] = ["p256", "p384", "rsa3072"];
}

impl std::str::FromStr for KeyType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "p256" => Ok(KeyType::P256),
            "p384" => Ok(KeyType::P384),
            "rsa3072" => Ok(KeyType::Rsa3072),
            _ => Err(format!(
                "{s:?} is not a key type; use p256, p384 or rsa3072"
            )),
        }
    }
}

/// Why CA material could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("generating a key: {0}")]
    KeyGen(String),
    #[error("signing key: {0}")]
    Key(#[from] super::keys::KeyError),
    #[error("CA certificate: {0}")]
    Cert(String),
}

/// A certificate and its private key, both PEM (key in PKCS#8); for a key in an HSM,
/// `key_pem` holds the key's PKCS#11 URI instead.
pub struct CaMaterial {
    pub cert_pem: String,
    pub key_pem: String,
    pub not_after: SystemTime,
}

/// Generates a key of `key_type`.
pub fn generate_key(key_type: KeyType) -> Result<KeyPair, CreateError> {
    let kg = |e: rcgen::Error| CreateError::KeyGen(e.to_string());
    match key_type {
        KeyType::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(kg),
        KeyType::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(kg),
        KeyType::Rsa3072 => {
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 3072)
                .map_err(|e| CreateError::KeyGen(e.to_string()))?;
            let pem = key
                .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
                .map_err(|e| CreateError::KeyGen(e.to_string()))?;
            Ok(key_pair_from_pem(pem.as_bytes())?)
        }
    }
}

fn ca_params(
    name: &str,
    not_before: SystemTime,
    not_after: SystemTime,
    path_len: Option<u8>,
) -> Result<CertificateParams, CreateError> {
    let mut serial = [0u8; 16];
    SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| CreateError::KeyGen("random number generator failed".into()))?;
    serial[0] = (serial[0] & 0x7f).max(1);
    let mut p = CertificateParams::default();
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, name);
    p.not_before = not_before.into();
    p.not_after = not_after.into();
    p.is_ca = IsCa::Ca(path_len.map_or(
        BasicConstraints::Unconstrained,
        BasicConstraints::Constrained,
    ));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.use_authority_key_identifier_extension = false;
    Ok(p)
}

/// A self-signed trust anchor valid from `now` for `lifetime`.
pub fn new_root(
    name: &str,
    lifetime: Duration,
    key: KeyPair,
    now: SystemTime,
) -> Result<CaMaterial, CreateError> {
    new_root_with(name, lifetime, CaKey::Local(key), now)
}

/// [`new_root`] with a key that may live in an HSM (signed there).
pub fn new_root_with(
    name: &str,
    lifetime: Duration,
    key: CaKey,
    now: SystemTime,
) -> Result<CaMaterial, CreateError> {
    let not_after = now + lifetime;
    let params = ca_params(name, now, not_after, Some(1))?;
    let cert = params.self_signed(&key).map_err(cert_error)?;
    Ok(CaMaterial {
        cert_pem: cert.pem(),
        key_pem: key_text(&key),
        not_after,
    })
}

/// The key file's text: PEM, or the URI of a key in an HSM.
fn key_text(key: &CaKey) -> String {
    match key {
        CaKey::Local(k) => k.serialize_pem(),
        CaKey::External(k) => format!("{}\n", k.location()),
    }
}

fn cert_error(e: rcgen::Error) -> CreateError {
    match e {
        rcgen::Error::RemoteKeyError => {
            CreateError::Cert("the HSM could not sign (see the log line before)".into())
        }
        e => CreateError::Cert(e.to_string()),
    }
}

/// An issuer signed by the CA in `ca_cert_pem`/`ca_key_pem`. Its notAfter is clamped to
/// the signing CA's (the returned material says what was used).
pub fn new_issuer(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    name: &str,
    lifetime: Duration,
    path_len: u8,
    key: KeyPair,
    now: SystemTime,
) -> Result<CaMaterial, CreateError> {
    let ca_key = CaKey::Local(key_pair_from_pem(ca_key_pem.as_bytes())?);
    new_issuer_with(
        ca_cert_pem,
        ca_key,
        name,
        lifetime,
        path_len,
        CaKey::Local(key),
        now,
    )
}

/// [`new_issuer`] where the signing CA's key and the issuer's key may live in an HSM.
pub fn new_issuer_with(
    ca_cert_pem: &str,
    ca_key: CaKey,
    name: &str,
    lifetime: Duration,
    path_len: u8,
    key: CaKey,
    now: SystemTime,
) -> Result<CaMaterial, CreateError> {
    let ca_info = super::cert::parse_pem_chain(ca_cert_pem.as_bytes())
        .map_err(|e| CreateError::Cert(e.to_string()))?;
    let ca_cert = &ca_info[0];
    if ca_key.public_key_raw() != ca_cert.public_key.as_slice() {
        return Err(CreateError::Cert(
            "the CA key does not match the CA certificate".into(),
        ));
    }
    if !ca_cert.is_ca || !ca_cert.can_sign_certs {
        return Err(CreateError::Cert(
            "the signing certificate is not a CA".into(),
        ));
    }
    let not_after = (now + lifetime).min(ca_cert.not_after);
    let mut params = ca_params(name, now, not_after, Some(path_len))?;
    params.use_authority_key_identifier_extension = true;
    let issuer = super::ca_signer(&ca_cert.der, ca_key).map_err(CreateError::Cert)?;
    let cert = params.signed_by(&key, &issuer).map_err(cert_error)?;
    Ok(CaMaterial {
        cert_pem: cert.pem(),
        key_pem: key_text(&key),
        not_after,
    })
}
