//! The issuer: an intermediate CA certificate and key, validated before it may sign.

use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;
use rcgen::KeyPair;
use rustls_pki_types::{CertificateDer, UnixTime};
use std::sync::Arc;

use super::anchors::TrustAnchors;
use super::cert::{CertError, CertInfo, parse_pem_chain};
use super::keys::KeyError;
use super::leaf::{LeafNames, LeafPolicy, LeafRequest, SignError, SignedLeaf};
use super::signing_key::{CaKey, KeyResolver, NoExternalKeys};

/// The raw issuer files as a source delivered them. `Debug` never shows the key. The key
/// entry holds PEM, or a PKCS#11 URI naming a key in an HSM (then it holds no secret).
#[derive(Clone, PartialEq, Eq)]
pub struct IssuerMaterial {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl IssuerMaterial {
    /// SHA-256 over both files: how a source tells that the issuer changed.
    pub fn digest(&self) -> [u8; 32] {
        crate::digest::sha256_parts(&[
            &(self.cert_pem.len() as u64).to_be_bytes(),
            &self.cert_pem,
            &self.key_pem,
        ])
    }
}

impl fmt::Debug for IssuerMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerMaterial")
            .field("cert_pem_len", &self.cert_pem.len())
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Why an issuer was refused; the current issuer stays in place.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("issuer certificate: {0}")]
    Cert(#[from] CertError),
    #[error("issuer key: {0}")]
    Key(#[from] KeyError),
    /// The key in the key file does not belong to the first certificate.
    #[error("issuer key does not match the issuer certificate")]
    KeyMismatch,
    /// The certificate lacks basicConstraints CA:true or keyCertSign.
    #[error("issuer certificate {subject:?} is not a CA (needs CA:true and keyCertSign)")]
    NotCa { subject: String },
    /// The issuer or an intermediate is outside its validity period.
    #[error("issuer certificate {subject:?} is not valid now (valid {not_before} to {not_after})")]
    NotValidNow {
        subject: String,
        not_before: String,
        not_after: String,
    },
    /// The chain does not verify to any current trust anchor.
    #[error("issuer does not chain to a current trust anchor: {0}")]
    Untrusted(String),
    /// rcgen refused the certificate or the probe signature.
    #[error("issuer cannot sign: {0}")]
    Signing(String),
}

/// A validated issuer, ready to sign leaves.
pub struct Issuer {
    signer: rcgen::Issuer<'static, CaKey>,
    /// Where the key is when not in memory (PKCS#11 URI).
    key_location: Option<String>,
    key_external: Option<Arc<dyn super::ExternalKey>>,
    pub(super) cert: CertInfo,
    /// The issuer and further intermediates (DER), as sent in every response.
    pub(super) chain: Vec<CertificateDer<'static>>,
    /// The same chain, encoded once and shared by every response.
    chain_bytes: Vec<Bytes>,
    /// The earliest notAfter over the issuer, intermediates and the anchor used.
    pub(super) chain_not_after: SystemTime,
    pub(super) digest: [u8; 32],
    /// SHA-256 of the trust anchor the chain reached (what a workload must trust).
    anchor: crate::trust::Fingerprint,
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("subject", &self.cert.subject)
            .field("not_after", &self.chain_not_after)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// Validates `material` against `anchors` at `now`: parse, key match, CA flags,
    /// validity, and a probe leaf (for `probe`) that must verify to an anchor.
    pub fn load(
        material: &IssuerMaterial,
        anchors: &TrustAnchors,
        probe: &LeafNames,
        now: SystemTime,
    ) -> Result<Self, IssuerError> {
        Self::load_with(material, anchors, probe, now, &NoExternalKeys)
    }

    /// [`load`](Self::load) where the key may be a reference that `keys` resolves (an HSM
    /// key: the probe leaf is then signed inside the HSM).
    pub fn load_with(
        material: &IssuerMaterial,
        anchors: &TrustAnchors,
        probe: &LeafNames,
        now: SystemTime,
        keys: &dyn KeyResolver,
    ) -> Result<Self, IssuerError> {
        let certs = parse_pem_chain(&material.cert_pem)?;
        let key = CaKey::from_key_file(&material.key_pem, keys)?;
        let key_location = key.location();
        let key_external = match &key {
            CaKey::External(k) => Some(k.clone()),
            CaKey::Local(_) => None,
        };
        let cert = certs[0].clone();
        if key.public_key_raw() != cert.public_key.as_slice() {
            return Err(IssuerError::KeyMismatch);
        }
        if !cert.is_ca || !cert.can_sign_certs {
            return Err(IssuerError::NotCa {
                subject: cert.subject,
            });
        }
        let chain: Vec<CertInfo> = certs.into_iter().filter(|c| !c.self_signed).collect();
        if let Some(bad) = chain.iter().find(|c| !c.is_valid_at(now)) {
            return Err(not_valid_now(bad));
        }
        let signer = super::ca_signer(&cert.der, key).map_err(IssuerError::Signing)?;
        let mut issuer = Issuer {
            signer,
            key_location,
            key_external,
            digest: material.digest(),
            chain_not_after: chain
                .iter()
                .map(|c| c.not_after)
                .min()
                .unwrap_or(cert.not_after),
            chain_bytes: chain
                .iter()
                .map(|c| Bytes::copy_from_slice(&c.der))
                .collect(),
            chain: chain.iter().map(|c| c.der.clone()).collect(),
            cert,
            anchor: [0; 32],
        };
        let anchor = issuer.verify_probe(anchors, probe, now)?;
        issuer.chain_not_after = issuer.chain_not_after.min(anchor.not_after);
        issuer.anchor = crate::digest::sha256(&anchor.der);
        Ok(issuer)
    }

    /// Signs a throwaway leaf and verifies it as a client would, for both TLS roles.
    /// Returns the anchor the chain reached.
    fn verify_probe(
        &self,
        anchors: &TrustAnchors,
        probe: &LeafNames,
        now: SystemTime,
    ) -> Result<CertInfo, IssuerError> {
        let probe_key = KeyPair::generate().map_err(|e| IssuerError::Signing(e.to_string()))?;
        let spki = rcgen::PublicKeyData::subject_public_key_info(&probe_key);
        let policy = LeafPolicy::default();
        let leaf = self
            .sign_leaf(probe, &spki, false, &policy, now)
            .map_err(|e| IssuerError::Signing(e.to_string()))?;
        let ee = webpki::EndEntityCert::try_from(&leaf.der)
            .map_err(|e| IssuerError::Signing(e.to_string()))?;
        let trusted = anchors.valid_at(now);
        let time = UnixTime::since_unix_epoch(
            now.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        let mut reached = None;
        for usage in [
            webpki::KeyUsage::server_auth(),
            webpki::KeyUsage::client_auth(),
        ] {
            let path = ee
                .verify_for_usage(
                    webpki::ALL_VERIFICATION_ALGS,
                    &trusted,
                    &self.chain,
                    time,
                    usage,
                    None,
                    None,
                )
                .map_err(|e| IssuerError::Untrusted(format!("{e:?}")))?;
            reached = anchors.cert_for(path.anchor()).cloned();
        }
        reached.ok_or_else(|| IssuerError::Untrusted("anchor not found".into()))
    }

    /// Signs a leaf for `names` over the CSR's `spki_der`, valid from now − skew until
    /// min(now + lifetime, the chain's earliest notAfter).
    pub fn sign_leaf(
        &self,
        names: &LeafNames,
        spki_der: &[u8],
        rsa: bool,
        policy: &LeafPolicy,
        now: SystemTime,
    ) -> Result<SignedLeaf, SignError> {
        let request = LeafRequest {
            names,
            spki_der,
            rsa,
        };
        super::leaf::sign(&self.signer, self.chain_not_after, request, policy, now)
    }

    /// Where the key is when it is not in memory (a PKCS#11 URI).
    pub fn key_location(&self) -> Option<&str> {
        self.key_location.as_deref()
    }

    /// False while an HSM key cannot sign (readiness).
    pub fn key_available(&self) -> bool {
        self.key_external.as_ref().is_none_or(|k| k.available())
    }

    /// The issuer certificate's summary.
    pub fn cert(&self) -> &CertInfo {
        &self.cert
    }

    /// The certificates sent after the leaf in every response.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The chain as shared buffers (cloning is a reference count per certificate).
    pub fn chain_bytes(&self) -> &[Bytes] {
        &self.chain_bytes
    }

    /// The earliest notAfter in the chain: no leaf outlives it.
    pub fn chain_not_after(&self) -> SystemTime {
        self.chain_not_after
    }

    /// Valid for signing at `now`.
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.cert.not_before <= now && now < self.chain_not_after
    }

    /// SHA-256 of the trust anchor this issuer's chain reaches.
    pub fn anchor_fingerprint(&self) -> crate::trust::Fingerprint {
        self.anchor
    }

    /// The digest of the material this issuer was built from.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
}

fn not_valid_now(c: &CertInfo) -> IssuerError {
    IssuerError::NotValidNow {
        subject: c.subject.clone(),
        not_before: super::fmt_time(c.not_before),
        not_after: super::fmt_time(c.not_after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::cert::parse_pem_chain;
    use crate::ca::create::{CaMaterial, KeyType, generate_key, new_issuer, new_root};
    use std::time::{Duration, UNIX_EPOCH};

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn root(lifetime: Duration, since: SystemTime) -> CaMaterial {
        new_root(
            "root",
            lifetime,
            generate_key(KeyType::P256).unwrap(),
            since,
        )
        .unwrap()
    }

    fn issuer_of(root: &CaMaterial, lifetime: Duration, since: SystemTime) -> CaMaterial {
        let key = generate_key(KeyType::P256).unwrap();
        new_issuer(
            &root.cert_pem,
            &root.key_pem,
            "issuer",
            lifetime,
            0,
            key,
            since,
        )
        .unwrap()
    }

    fn material(cert: &CaMaterial, key: &CaMaterial) -> IssuerMaterial {
        IssuerMaterial {
            cert_pem: cert.cert_pem.clone().into_bytes(),
            key_pem: key.key_pem.clone().into_bytes(),
        }
    }

    fn anchors(root: &CaMaterial) -> TrustAnchors {
        TrustAnchors::from_pem(root.cert_pem.as_bytes(), now()).unwrap()
    }

    fn probe() -> LeafNames {
        crate::ca::probe_names(&crate::identity::Naming::new("linkerd", "cluster.local").unwrap())
    }

    fn load(cert: &CaMaterial, key: &CaMaterial, root: &CaMaterial) -> Result<Issuer, IssuerError> {
        Issuer::load(&material(cert, key), &anchors(root), &probe(), now())
    }

    fn not_after(pem: &str) -> SystemTime {
        parse_pem_chain(pem.as_bytes()).unwrap()[0].not_after
    }

    #[test]
    fn accepts_a_valid_issuer_that_chains_to_an_anchor() {
        let root = root(3650 * DAY, now() - DAY);
        let inter = issuer_of(&root, 365 * DAY, now() - DAY);
        let issuer = load(&inter, &inter, &root).unwrap();
        assert_eq!(issuer.cert().subject, "CN=issuer");
        assert_eq!(issuer.chain().len(), 1);
        assert_eq!(issuer.chain()[0], issuer.cert().der);
        assert_eq!(issuer.chain_bytes()[0].as_ref(), issuer.cert().der.as_ref());
        assert_eq!(issuer.chain_not_after(), not_after(&inter.cert_pem));
        assert_eq!(issuer.digest(), material(&inter, &inter).digest());
        assert!(issuer.is_valid_at(now()));
        assert!(!issuer.is_valid_at(issuer.chain_not_after()));
    }

    #[test]
    fn chain_end_is_capped_by_the_anchor_it_verifies_to() {
        // The issuer was signed by a long-lived root; the bundle holds a re-issued copy of
        // that root (same name and key) that expires sooner.
        let long = root(3650 * DAY, now() - DAY);
        let inter = issuer_of(&long, 365 * DAY, now() - DAY);
        let key = crate::ca::keys::key_pair_from_pem(long.key_pem.as_bytes()).unwrap();
        let short = new_root("root", 30 * DAY, key, now() - DAY).unwrap();
        let issuer = load(&inter, &inter, &short).unwrap();
        assert_eq!(issuer.chain_not_after(), not_after(&short.cert_pem));
        assert!(issuer.chain_not_after() < not_after(&inter.cert_pem));
    }

    #[test]
    fn refuses_a_key_that_does_not_match_the_certificate() {
        let root = root(3650 * DAY, now() - DAY);
        let inter = issuer_of(&root, 365 * DAY, now() - DAY);
        let other = issuer_of(&root, 365 * DAY, now() - DAY);
        let r = load(&inter, &other, &root);
        assert!(matches!(r, Err(IssuerError::KeyMismatch)), "{r:?}");
    }

    #[test]
    fn refuses_a_certificate_that_is_not_a_ca() {
        let root = root(3650 * DAY, now() - DAY);
        let key = generate_key(KeyType::P256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["leaf.example".into()]).unwrap();
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        let cert = params.self_signed(&key).unwrap();
        let leaf = CaMaterial {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after: now(),
        };
        let r = load(&leaf, &leaf, &root);
        assert!(matches!(r, Err(IssuerError::NotCa { .. })), "{r:?}");
    }

    #[test]
    fn refuses_a_ca_without_key_cert_sign() {
        let root = root(3650 * DAY, now() - DAY);
        let key = generate_key(KeyType::P256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).unwrap();
        let ca = CaMaterial {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after: now(),
        };
        let r = load(&ca, &ca, &root);
        assert!(matches!(r, Err(IssuerError::NotCa { .. })), "{r:?}");
    }

    #[test]
    fn refuses_an_expired_or_not_yet_valid_issuer() {
        let root = root(3650 * DAY, now() - 1000 * DAY);
        let expired = issuer_of(&root, 30 * DAY, now() - 31 * DAY);
        let future = issuer_of(&root, 30 * DAY, now() + DAY);
        for inter in [&expired, &future] {
            match load(inter, inter, &root) {
                Err(IssuerError::NotValidNow { subject, .. }) => assert_eq!(subject, "CN=issuer"),
                other => panic!("expected NotValidNow, got {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_an_issuer_from_another_root() {
        let root_a = root(3650 * DAY, now() - DAY);
        let root_b = root(3650 * DAY, now() - DAY);
        let inter = issuer_of(&root_a, 365 * DAY, now() - DAY);
        let r = load(&inter, &inter, &root_b);
        assert!(matches!(r, Err(IssuerError::Untrusted(_))), "{r:?}");
    }

    #[test]
    fn debug_never_shows_the_key() {
        let root = root(3650 * DAY, now() - DAY);
        let shown = format!("{:?}", material(&root, &root));
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    }
}
