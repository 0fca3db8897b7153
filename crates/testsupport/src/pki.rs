//! Test PKI: roots and issuers with chosen validity, generated per test.

use std::time::{Duration, SystemTime};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// A CA certificate with its key.
pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
    key: KeyPair,
    params: CertificateParams,
}

fn ca_params(name: &str, not_before: SystemTime, not_after: SystemTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = not_before.into();
    p.not_after = not_after.into();
    let serial: [u8; 8] = rand_bytes();
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    p
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut b).unwrap();
    b[0] &= 0x7f;
    b[0] |= 1;
    b
}

const DAY: Duration = Duration::from_secs(86400);

impl Ca {
    /// A root valid for ten years from an hour ago.
    pub fn root(name: &str) -> Self {
        let now = SystemTime::now();
        Self::root_valid(name, now - Duration::from_secs(3600), now + 3650 * DAY)
    }

    pub fn root_valid(name: &str, not_before: SystemTime, not_after: SystemTime) -> Self {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(name, not_before, not_after);
        let cert = params.self_signed(&key).unwrap();
        Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            key,
            params,
        }
    }

    /// An issuer under this CA valid for a year from an hour ago.
    pub fn issuer(&self, name: &str) -> Ca {
        let now = SystemTime::now();
        self.issuer_valid(name, now - Duration::from_secs(3600), now + 365 * DAY)
    }

    pub fn issuer_valid(&self, name: &str, not_before: SystemTime, not_after: SystemTime) -> Ca {
        self.issuer_with_key(name, not_before, not_after, KeyPair::generate().unwrap())
    }

    pub fn issuer_with_key(
        &self,
        name: &str,
        not_before: SystemTime,
        not_after: SystemTime,
        key: KeyPair,
    ) -> Ca {
        let mut params = ca_params(name, not_before, not_after);
        params.use_authority_key_identifier_extension = true;
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        Ca {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            key,
            params,
        }
    }
}

/// Verifies `leaf` through `intermediates` to one of `roots` with rustls-webpki, for both
/// TLS roles (server and client auth), now.
pub fn verify_both_roles(
    leaf: &rustls_pki_types::CertificateDer<'_>,
    intermediates: &[rustls_pki_types::CertificateDer<'_>],
    roots: &[rustls_pki_types::CertificateDer<'_>],
) {
    let anchors: Vec<_> = roots
        .iter()
        .map(|r| webpki::anchor_from_trusted_cert(r).unwrap().to_owned())
        .collect();
    let ee = webpki::EndEntityCert::try_from(leaf).unwrap();
    for usage in [
        webpki::KeyUsage::server_auth(),
        webpki::KeyUsage::client_auth(),
    ] {
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            intermediates,
            rustls_pki_types::UnixTime::now(),
            usage,
            None,
            None,
        )
        .expect("chain verifies");
    }
}

/// A Certify answer's leaf and intermediates as DER certificates.
pub fn response_chain(
    resp: &linkerd2_proxy_api::identity::CertifyResponse,
) -> (
    rustls_pki_types::CertificateDer<'static>,
    Vec<rustls_pki_types::CertificateDer<'static>>,
) {
    let leaf = rustls_pki_types::CertificateDer::from(resp.leaf_certificate.clone());
    let inter = resp
        .intermediate_certificates
        .iter()
        .map(|d| rustls_pki_types::CertificateDer::from(d.clone()))
        .collect();
    (leaf, inter)
}
