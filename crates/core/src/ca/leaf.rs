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
    /// The issuer's key is in an HSM that cannot sign now (retryable).
    #[error("issuer key unavailable (HSM)")]
    KeyUnavailable,
}

/// Signs a leaf for `names` over the CSR's `spki_der` with `signer`, valid from
/// now − skew until min(now + lifetime, `chain_not_after`). The issuer module calls this
/// with its key; this module knows the profile, not where the key comes from.
pub(super) fn sign(
    signer: &rcgen::Issuer<'static, super::CaKey>,
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
    let cert = params.signed_by(&public_key, signer).map_err(|e| match e {
        rcgen::Error::RemoteKeyError => SignError::KeyUnavailable,
        e => SignError::Sign(e.to_string()),
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::create::{KeyType, generate_key, new_root};
    use rcgen::{KeyPair, PublicKeyData};
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::{FromDer, X509Certificate};

    const DNS: &str = "web.shop.serviceaccount.identity.linkerd.cluster.local";
    const URI: &str = "spiffe://cluster.local/ns/shop/sa/web";
    const DAY: Duration = Duration::from_secs(24 * 3600);

    /// A fixed "now" on a whole second.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn secs(t: SystemTime) -> i64 {
        t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
    }

    /// A root CA as the signer: the profile does not care which CA signs.
    fn signer() -> (rcgen::Issuer<'static, crate::ca::CaKey>, String) {
        let root = new_root(
            "root",
            3650 * DAY,
            generate_key(KeyType::P256).unwrap(),
            now() - DAY,
        )
        .unwrap();
        let cert = &crate::ca::cert::parse_pem_chain(root.cert_pem.as_bytes()).unwrap()[0];
        let key = crate::ca::keys::key_pair_from_pem(root.key_pem.as_bytes()).unwrap();
        (
            crate::ca::ca_signer(&cert.der, crate::ca::CaKey::Local(key)).unwrap(),
            cert.subject.clone(),
        )
    }

    fn names() -> LeafNames {
        LeafNames {
            dns: vec![DNS.into()],
            uri: Some(URI.into()),
        }
    }

    fn sign_at(
        names: &LeafNames,
        spki: &[u8],
        rsa: bool,
        chain_not_after: SystemTime,
        now: SystemTime,
    ) -> Result<SignedLeaf, SignError> {
        let (signer, _) = signer();
        let request = LeafRequest {
            names,
            spki_der: spki,
            rsa,
        };
        sign(
            &signer,
            chain_not_after,
            request,
            &LeafPolicy::default(),
            now,
        )
    }

    fn spki() -> Vec<u8> {
        KeyPair::generate().unwrap().subject_public_key_info()
    }

    #[test]
    fn backdates_by_skew_and_lasts_the_lifetime() {
        let leaf = sign_at(&names(), &spki(), false, now() + 365 * DAY, now()).unwrap();
        assert_eq!(leaf.not_before, now() - Duration::from_secs(20));
        assert_eq!(leaf.not_after, now() + DAY);
        let (_, x509) = X509Certificate::from_der(&leaf.der).unwrap();
        assert_eq!(x509.validity().not_before.timestamp(), secs(now()) - 20);
        assert_eq!(x509.validity().not_after.timestamp(), secs(now() + DAY));
    }

    #[test]
    fn never_outlives_the_issuer_chain() {
        let chain_end = now() + Duration::from_secs(3600);
        let leaf = sign_at(&names(), &spki(), false, chain_end, now()).unwrap();
        assert_eq!(leaf.not_after, chain_end);
        let (_, x509) = X509Certificate::from_der(&leaf.der).unwrap();
        assert_eq!(x509.validity().not_after.timestamp(), secs(chain_end));
    }

    #[test]
    fn refuses_when_the_chain_ends_now_or_earlier() {
        for end in [now(), now() - Duration::from_secs(1)] {
            let r = sign_at(&names(), &spki(), false, end, now());
            assert!(matches!(r, Err(SignError::ChainExpired)), "{r:?}");
        }
    }

    #[test]
    fn validity_is_whole_seconds() {
        let now = now() + Duration::from_millis(900);
        let leaf = sign_at(&names(), &spki(), false, now + 365 * DAY, now).unwrap();
        assert_eq!(leaf.not_before, self::now() - Duration::from_secs(20));
        assert_eq!(leaf.not_after, self::now() + DAY);
    }

    #[test]
    fn serial_is_positive_128_bit_and_random() {
        let spki = spki();
        let a = sign_at(&names(), &spki, false, now() + DAY, now()).unwrap();
        let b = sign_at(&names(), &spki, false, now() + DAY, now()).unwrap();
        assert_ne!(a.serial, b.serial);
        for leaf in [&a, &b] {
            let (_, x509) = X509Certificate::from_der(&leaf.der).unwrap();
            let raw = x509.raw_serial();
            assert_eq!(raw, &leaf.serial[..]);
            assert_eq!(raw.len(), 16);
            assert!(raw[0] != 0 && raw[0] & 0x80 == 0, "{raw:02x?}");
        }
    }

    #[test]
    fn profile_is_an_end_entity_for_both_tls_roles() {
        let spki = spki();
        let leaf = sign_at(&names(), &spki, false, now() + DAY, now()).unwrap();
        let (_, x509) = X509Certificate::from_der(&leaf.der).unwrap();
        let bc = x509.basic_constraints().unwrap().unwrap();
        assert!(bc.critical);
        assert!(!bc.value.ca);
        let ku = x509.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature());
        assert!(!ku.key_encipherment());
        assert!(!ku.key_cert_sign());
        let eku = x509.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!eku.any && !eku.code_signing && eku.other.is_empty());
        let has = |f: fn(&ParsedExtension<'_>) -> bool| {
            x509.extensions().iter().any(|e| f(e.parsed_extension()))
        };
        assert!(has(|e| matches!(
            e,
            ParsedExtension::SubjectKeyIdentifier(_)
        )));
        assert!(has(|e| matches!(
            e,
            ParsedExtension::AuthorityKeyIdentifier(_)
        )));
    }

    #[test]
    fn rsa_keys_also_get_key_encipherment() {
        let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let spki = key.subject_public_key_info();
        let leaf = sign_at(&names(), &spki, true, now() + DAY, now()).unwrap();
        let (_, x509) = X509Certificate::from_der(&leaf.der).unwrap();
        let ku = x509.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && ku.key_encipherment());
        assert_eq!(x509.public_key().raw, spki.as_slice());
    }

    #[test]
    fn carries_the_csr_key_and_the_given_names() {
        let spki = spki();
        let (signer, root_subject) = signer();
        let request = LeafRequest {
            names: &names(),
            spki_der: &spki,
            rsa: false,
        };
        let policy = LeafPolicy::default();
        let leaf = sign(&signer, now() + DAY, request, &policy, now()).unwrap();
        let (_, x509) = X509Certificate::from_der(&leaf.der).unwrap();
        assert_eq!(x509.public_key().raw, spki.as_slice());
        assert_eq!(x509.issuer().to_string(), root_subject);
        let cns: Vec<_> = x509
            .subject()
            .iter_common_name()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(cns, [DNS]);
        let san = x509.subject_alternative_name().unwrap().unwrap();
        assert!(!san.critical);
        assert_eq!(
            san.value.general_names,
            [GeneralName::DNSName(DNS), GeneralName::URI(URI)]
        );
    }

    #[test]
    fn long_or_absent_dns_name_gives_empty_subject_and_critical_san() {
        let long = format!("{}.{DNS}", "a".repeat(20));
        assert!(long.len() > MAX_CN_LEN);
        for names in [
            LeafNames {
                dns: vec![long.clone()],
                uri: Some(URI.into()),
            },
            LeafNames {
                dns: Vec::new(),
                uri: Some(URI.into()),
            },
        ] {
            let leaf = sign_at(&names, &spki(), false, now() + DAY, now()).unwrap();
            let (_, x509) = X509Certificate::from_der(&leaf.der).unwrap();
            assert_eq!(x509.subject().iter().count(), 0, "{names:?}");
            let san = x509.subject_alternative_name().unwrap().unwrap();
            assert!(san.critical, "{names:?}");
            let mut want: Vec<GeneralName<'_>> = names
                .dns
                .iter()
                .map(|d| GeneralName::DNSName(d.as_str()))
                .collect();
            want.push(GeneralName::URI(URI));
            assert_eq!(san.value.general_names, want);
        }
    }

    #[test]
    fn policy_bounds_name_their_setting() {
        let with = |lifetime: u64, skew: u64| LeafPolicy {
            lifetime: Duration::from_secs(lifetime),
            clock_skew: Duration::from_secs(skew),
        };
        assert_eq!(LeafPolicy::default().validate(), Ok(()));
        assert_eq!(with(60, 0).validate(), Ok(()));
        assert_eq!(with(8760 * 3600, 3600).validate(), Ok(()));
        for bad in [with(59, 20), with(8760 * 3600 + 1, 20), with(0, 20)] {
            let e = bad.validate().unwrap_err();
            assert_eq!(e.setting, "issuance.lifetime");
            assert_eq!(e.message, "must be between 1m and 8760h");
        }
        let e = with(3600, 3601).validate().unwrap_err();
        assert_eq!(e.setting, "issuance.clock_skew");
        assert_eq!(e.message, "must be at most 1h");
        // The lifetime is checked first.
        assert_eq!(
            with(59, 3601).validate().unwrap_err().setting,
            "issuance.lifetime"
        );
    }
}
