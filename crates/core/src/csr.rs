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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData, RsaKeySize, SanType,
        SignatureAlgorithm, SigningKey,
    };

    const ID: &str = "web.shop.serviceaccount.identity.linkerd.cluster.local";
    const SPIFFE: &str = "spiffe://cluster.local/ns/shop/sa/web";

    /// What a CSR asks for: its subject CN and SANs.
    #[derive(Default)]
    struct Names<'a> {
        cn: Option<&'a str>,
        dns: &'a [&'a str],
        uris: &'a [&'a str],
        extra: Vec<SanType>,
    }

    fn csr(key: &impl SigningKey, names: Names<'_>) -> Vec<u8> {
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        if let Some(cn) = names.cn {
            p.distinguished_name.push(DnType::CommonName, cn);
        }
        for d in names.dns {
            p.subject_alt_names
                .push(SanType::DnsName((*d).try_into().unwrap()));
        }
        for u in names.uris {
            p.subject_alt_names
                .push(SanType::URI((*u).try_into().unwrap()));
        }
        p.subject_alt_names.extend(names.extra);
        p.serialize_request(key).unwrap().der().to_vec()
    }

    /// A Linkerd-style CSR: CN and DNS SAN are the identity.
    fn linkerd_csr(key: &impl SigningKey) -> Vec<u8> {
        csr(
            key,
            Names {
                cn: Some(ID),
                dns: &[ID],
                ..Names::default()
            },
        )
    }

    fn key(alg: &'static SignatureAlgorithm) -> KeyPair {
        KeyPair::generate_for(alg).unwrap()
    }

    /// An RSA key of any size, for sizes aws-lc-rs will not generate or load. Without a
    /// private key it signs with zeros: enough for the key policy, which runs first.
    struct OddRsa {
        public: Vec<u8>,
        private: Option<rsa::RsaPrivateKey>,
    }

    impl OddRsa {
        fn generated(bits: usize) -> Self {
            use rsa::pkcs1::EncodeRsaPublicKey;
            let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).unwrap();
            let public = private.to_public_key().to_pkcs1_der().unwrap().to_vec();
            Self {
                public,
                private: Some(private),
            }
        }

        fn public_only(bits: usize) -> Self {
            use rsa::pkcs1::EncodeRsaPublicKey;
            let n = rsa::BigUint::from_bytes_be(&vec![0xff; bits / 8]);
            let key = rsa::RsaPublicKey::new_with_max_size(n, rsa::BigUint::from(65537u32), bits)
                .unwrap();
            Self {
                public: key.to_pkcs1_der().unwrap().to_vec(),
                private: None,
            }
        }
    }

    impl PublicKeyData for OddRsa {
        fn der_bytes(&self) -> &[u8] {
            &self.public
        }

        fn algorithm(&self) -> &'static SignatureAlgorithm {
            &rcgen::PKCS_RSA_SHA256
        }
    }

    impl SigningKey for OddRsa {
        fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
            use rsa::signature::{SignatureEncoding, Signer};
            Ok(match &self.private {
                Some(k) => rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new(k.clone())
                    .sign(msg)
                    .to_vec(),
                None => vec![0; self.public.len()],
            })
        }
    }

    #[test]
    fn accepts_ecdsa_p256_p384_and_ed25519_keys() {
        for (alg, kind) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, KeyKind::EcdsaP256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, KeyKind::EcdsaP384),
            (&rcgen::PKCS_ED25519, KeyKind::Ed25519),
        ] {
            let k = key(alg);
            let v = verify(&linkerd_csr(&k)).unwrap();
            assert_eq!(v.key_kind(), kind);
            assert!(!kind.is_rsa());
            assert_eq!(v.spki_der(), k.subject_public_key_info().as_slice());
        }
    }

    #[test]
    fn accepts_rsa_2048_to_4096() {
        for (size, bits) in [(RsaKeySize::_2048, 2048), (RsaKeySize::_4096, 4096)] {
            let k = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size).unwrap();
            let v = verify(&linkerd_csr(&k)).unwrap();
            assert_eq!(v.key_kind(), KeyKind::Rsa(bits));
            assert!(v.key_kind().is_rsa());
            assert_eq!(v.spki_der(), k.subject_public_key_info().as_slice());
        }
    }

    #[test]
    fn rejects_rsa_1024_even_when_correctly_signed() {
        let k = OddRsa::generated(1024);
        let err = verify(&linkerd_csr(&k)).unwrap_err();
        assert_eq!(
            err,
            CsrError::KeyNotAllowed("RSA-1024 (allowed 2048-4096)".into())
        );
        assert!(!err.is_policy());
    }

    #[test]
    fn rejects_rsa_8192_before_verifying_its_signature() {
        // The signature is zeros: the size is refused before the expensive verification.
        let err = verify(&linkerd_csr(&OddRsa::public_only(8192))).unwrap_err();
        assert_eq!(
            err,
            CsrError::KeyNotAllowed("RSA-8192 (allowed 2048-4096)".into())
        );
    }

    #[test]
    fn rejects_ecdsa_p521() {
        let k = key(&rcgen::PKCS_ECDSA_P521_SHA512);
        assert_eq!(
            verify(&linkerd_csr(&k)).unwrap_err(),
            CsrError::KeyNotAllowed("EC curve other than P-256/P-384".into())
        );
    }

    #[test]
    fn rejects_csr_with_tampered_signature() {
        let mut der = linkerd_csr(&key(&rcgen::PKCS_ED25519));
        *der.last_mut().unwrap() ^= 0x01;
        assert_eq!(verify(&der).unwrap_err(), CsrError::BadSignature);
    }

    #[test]
    fn rejects_csr_whose_names_were_changed_after_signing() {
        let mut der = linkerd_csr(&key(&rcgen::PKCS_ECDSA_P256_SHA256));
        // Rename the DNS SAN (`web.` → `wex.`) inside the signed body.
        let at = der
            .windows(ID.len())
            .rposition(|w| w == ID.as_bytes())
            .unwrap();
        der[at + 2] = b'x';
        assert_eq!(verify(&der).unwrap_err(), CsrError::BadSignature);
    }

    #[test]
    fn rejects_garbage_and_trailing_bytes() {
        assert_eq!(verify(b"not a csr").unwrap_err(), CsrError::Malformed);
        assert_eq!(verify(&[]).unwrap_err(), CsrError::Malformed);
        let mut der = linkerd_csr(&key(&rcgen::PKCS_ED25519));
        der.push(0);
        assert_eq!(verify(&der).unwrap_err(), CsrError::Malformed);
    }

    fn names_check(names: Names<'_>, spiffe: Option<&str>) -> Result<(), CsrError> {
        let k = key(&rcgen::PKCS_ED25519);
        verify(&csr(&k, names)).unwrap().check_names(ID, spiffe)
    }

    #[test]
    fn accepts_matching_names_with_or_without_cn_and_spiffe_uri() {
        let full = Names {
            cn: Some(ID),
            dns: &[ID],
            uris: &[SPIFFE],
            ..Names::default()
        };
        assert_eq!(names_check(full, Some(SPIFFE)), Ok(()));
        let bare = Names {
            dns: &[ID],
            ..Names::default()
        };
        assert_eq!(names_check(bare, Some(SPIFFE)), Ok(()));
    }

    #[test]
    fn requires_exactly_one_dns_san_equal_to_identity() {
        let want = Err(CsrError::Names(
            "expected exactly one DNS SAN equal to the identity",
        ));
        let other = "db.shop.serviceaccount.identity.linkerd.cluster.local";
        for dns in [&[][..], &[other][..], &[ID, ID][..], &[ID, other][..]] {
            let names = Names {
                cn: Some(ID),
                dns,
                ..Names::default()
            };
            let got = names_check(names, None);
            assert_eq!(got, want, "DNS SANs {dns:?}");
            assert!(got.unwrap_err().is_policy());
        }
    }

    #[test]
    fn rejects_cn_other_than_identity() {
        let names = Names {
            cn: Some("admin"),
            dns: &[ID],
            ..Names::default()
        };
        assert_eq!(
            names_check(names, None),
            Err(CsrError::Names("subject CN differs from the identity"))
        );
    }

    #[test]
    fn rejects_ip_and_email_sans() {
        let ip = SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
        let email = SanType::Rfc822Name("a@example.com".try_into().unwrap());
        for extra in [ip, email] {
            let names = Names {
                dns: &[ID],
                extra: vec![extra.clone()],
                ..Names::default()
            };
            assert_eq!(
                names_check(names, Some(SPIFFE)),
                Err(CsrError::Names("IP, email or other SANs are not allowed")),
                "{extra:?}"
            );
        }
    }

    #[test]
    fn allows_only_the_matching_spiffe_uri() {
        let want = Err(CsrError::Names("URI SAN is not the identity's SPIFFE ID"));
        let other = "spiffe://cluster.local/ns/shop/sa/db";
        for (uris, spiffe) in [
            (&[other][..], Some(SPIFFE)),
            (&[SPIFFE, SPIFFE][..], Some(SPIFFE)),
            (&[SPIFFE][..], None),
        ] {
            let names = Names {
                dns: &[ID],
                uris,
                ..Names::default()
            };
            assert_eq!(names_check(names, spiffe), want, "{uris:?} vs {spiffe:?}");
        }
    }

    #[test]
    fn spiffe_only_csr_names_one_uri() {
        let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
        let ok = |names| verify(&csr(&k, names)).unwrap();
        let v = ok(Names {
            cn: Some(SPIFFE),
            uris: &[SPIFFE],
            ..Names::default()
        });
        assert_eq!(v.spiffe_name(None), Ok(SPIFFE));
        assert_eq!(v.spiffe_name(Some(SPIFFE)), Ok(SPIFFE));
        assert_eq!(
            v.spiffe_name(Some("spiffe://cluster.local/ns/shop/sa/db")),
            Err(CsrError::Names("URI SAN is not the requested identity"))
        );
        let with_dns = ok(Names {
            dns: &[ID],
            uris: &[SPIFFE],
            ..Names::default()
        });
        assert_eq!(
            with_dns.spiffe_name(None),
            Err(CsrError::Names("only a URI SAN is allowed"))
        );
        let none = ok(Names {
            dns: &[ID],
            ..Names::default()
        });
        assert_eq!(
            none.spiffe_name(None),
            Err(CsrError::Names(
                "expected exactly one URI SAN (a SPIFFE ID)"
            ))
        );
        let bad_cn = ok(Names {
            cn: Some("admin"),
            uris: &[SPIFFE],
            ..Names::default()
        });
        assert_eq!(
            bad_cn.spiffe_name(None),
            Err(CsrError::Names("subject CN differs from the SPIFFE ID"))
        );
    }
}
