//! The leaf profile (DESIGN.md §4): built from the authenticated identity, never the CSR.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;

/// X.509's upper bound for a CommonName.
const MAX_CN_LEN: usize = 64;

/// The names a leaf carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafNames {
    /// DNS SANs, the Linkerd name first (also the CN when it fits); none for a SPIFFE-only
    /// leaf (Istio's API).
    pub dns: Vec<String>,
    /// The SPIFFE ID: URI SAN (absent only for names outside the mesh scheme).
    pub uri: Option<String>,
}

/// Lifetime rules for leaves: the `issuance:` section of the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeafPolicy {
    #[serde(deserialize_with = "crate::settings::duration")]
    pub lifetime: Duration,
    #[serde(deserialize_with = "crate::settings::duration")]
    pub clock_skew: Duration,
}

impl LeafPolicy {
    /// Checks the section; the first problem names its setting.
    pub fn validate(&self) -> Result<(), crate::settings::SettingError> {
        use crate::settings::invalid;
        if self.lifetime < Duration::from_secs(60)
            || self.lifetime > Duration::from_secs(365 * 24 * 3600)
        {
            return Err(invalid("issuance.lifetime", "must be between 1m and 8760h"));
        }
        if self.clock_skew > Duration::from_secs(3600) {
            return Err(invalid("issuance.clock_skew", "must be at most 1h"));
        }
        Ok(())
    }
}

impl Default for LeafPolicy {
    fn default() -> Self {
        Self {
            lifetime: Duration::from_secs(24 * 3600),
            clock_skew: Duration::from_secs(20),
        }
    }
}

/// A freshly signed leaf.
#[derive(Clone, Debug)]
pub struct SignedLeaf {
    pub der: CertificateDer<'static>,
    pub serial: [u8; 16],
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// Why signing failed (an INTERNAL error: the inputs were already validated).
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The CSR's public key could not be carried into the certificate.
    #[error("unsupported public key: {0}")]
    PublicKey(String),
    /// A name could not be encoded.
    #[error("name cannot be encoded: {0}")]
    Name(String),
    /// The issuer chain ends before the leaf would start.
    #[error("issuer chain has expired")]
    ChainExpired,
    /// rcgen or aws-lc-rs failed to produce the certificate.
    #[error("signing failed: {0}")]
    Sign(String),
    /// The system random number generator failed.
    #[error("random number generator failed")]
    Random,
}

/// Signs a leaf for `names` over the CSR's `spki_der` with `signer`, valid from
/// now − skew until min(now + lifetime, `chain_not_after`). The issuer module calls this
/// with its key; this module knows the profile, not where the key comes from.
pub(super) fn sign(
    signer: &rcgen::Issuer<'static, rcgen::KeyPair>,
    chain_not_after: SystemTime,
    request: LeafRequest<'_>,
    policy: &LeafPolicy,
    now: SystemTime,
) -> Result<SignedLeaf, SignError> {
    let not_before = floor_secs(now - policy.clock_skew);
    let not_after = floor_secs((now + policy.lifetime).min(chain_not_after));
    if not_after <= now {
        return Err(SignError::ChainExpired);
    }
    let serial = random_serial()?;
    let params = leaf_params(request.names, request.rsa, serial, not_before, not_after)?;
    let public_key = rcgen::SubjectPublicKeyInfo::from_der(request.spki_der)
        .map_err(|e| SignError::PublicKey(e.to_string()))?;
    let cert = params
        .signed_by(&public_key, signer)
        .map_err(|e| SignError::Sign(e.to_string()))?;
    Ok(SignedLeaf {
        der: cert.der().clone(),
        serial,
        not_before,
        not_after,
    })
}

/// What a leaf is for: its names and the CSR's public key.
#[derive(Clone, Copy, Debug)]
pub(super) struct LeafRequest<'a> {
    pub names: &'a LeafNames,
    pub spki_der: &'a [u8],
    /// The key is RSA (adds keyEncipherment).
    pub rsa: bool,
}

fn leaf_params(
    names: &LeafNames,
    rsa: bool,
    serial: [u8; 16],
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<CertificateParams, SignError> {
    let mut p = CertificateParams::default();
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    p.not_before = not_before.into();
    p.not_after = not_after.into();
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if rsa {
        p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.use_authority_key_identifier_extension = true;
    // An empty subject makes rcgen mark the SAN extension critical (RFC 5280 §4.2.1.6).
    p.distinguished_name = DistinguishedName::new();
    if let Some(cn) = names.dns.first().filter(|d| d.len() <= MAX_CN_LEN) {
        p.distinguished_name.push(DnType::CommonName, cn.as_str());
    }
    let ia5 = |s: &str| {
        s.to_owned()
            .try_into()
            .map_err(|e: rcgen::Error| SignError::Name(e.to_string()))
    };
    for dns in &names.dns {
        p.subject_alt_names.push(SanType::DnsName(ia5(dns)?));
    }
    if let Some(uri) = &names.uri {
        p.subject_alt_names.push(SanType::URI(ia5(uri)?));
    }
    Ok(p)
}

/// A random positive 128-bit serial: the top bit is cleared so DER needs no sign byte,
/// and the first byte is non-zero so the encoding is always 16 bytes.
fn random_serial() -> Result<[u8; 16], SignError> {
    let mut serial = [0u8; 16];
    SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| SignError::Random)?;
    serial[0] = (serial[0] & 0x7f).max(1);
    Ok(serial)
}

fn floor_secs(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs)
}
