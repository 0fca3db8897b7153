//! Seed PKI: CSRs of every accepted key type and name shape, and issuer bundles whose
//! keys are written as PKCS#8, SEC1 and PKCS#1.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use anyhow::{Result, anyhow};
use certmint_core::ca::create::{KeyType, generate_key, new_issuer, new_root};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use pkcs8::der::Encode;
use rcgen::{CertificateParams, DnType, KeyPair, SanType};

const YEAR: Duration = Duration::from_secs(365 * 86400);

fn rsa_pkcs8(bits: usize) -> Result<(rsa::RsaPrivateKey, KeyPair)> {
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)?;
    let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)?;
    Ok((key, KeyPair::from_pem(&pem)?))
}

/// (name, DER) for CSRs: each key type, then name shapes around `identity`.
pub fn csrs(identity: &str, spiffe: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let p256 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let keys = [
        (
            "p256",
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
        ),
        (
            "p384",
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?,
        ),
        ("ed25519", KeyPair::generate_for(&rcgen::PKCS_ED25519)?),
        ("rsa2048", rsa_pkcs8(2048)?.1),
    ];
    let dns = |s: &str| SanType::DnsName(s.try_into().expect("DNS name"));
    let uri = |s: &str| SanType::URI(s.try_into().expect("URI"));
    let mut out = Vec::new();
    for (name, key) in &keys {
        out.push((
            name.to_string(),
            csr(Some(identity), vec![dns(identity)], key)?,
        ));
    }
    let shapes: Vec<(&str, Option<&str>, Vec<SanType>)> = vec![
        ("spiffe", Some(identity), vec![dns(identity), uri(spiffe)]),
        ("no-cn", None, vec![dns(identity)]),
        (
            "ip",
            None,
            vec![dns(identity), SanType::IpAddress([10, 0, 0, 1].into())],
        ),
        (
            "email",
            None,
            vec![dns(identity), SanType::Rfc822Name("a@b.c".try_into()?)],
        ),
        ("two-dns", None, vec![dns(identity), dns("other.example")]),
        ("other-cn", Some("other"), vec![dns(identity)]),
        ("no-san", Some(identity), vec![]),
    ];
    for (name, cn, sans) in shapes {
        out.push((name.to_owned(), csr(cn, sans, &p256)?));
    }
    Ok(out)
}

/// CSRs as Istio's clients send them (DER; empty subject, the SPIFFE ID as the only SAN),
/// one per key type, plus a few that must be refused.
pub fn istio_csrs(spiffe: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let uri = |s: &str| SanType::URI(s.try_into().expect("URI"));
    let mut out = Vec::new();
    for (name, alg) in [
        ("p256", &rcgen::PKCS_ECDSA_P256_SHA256),
        ("p384", &rcgen::PKCS_ECDSA_P384_SHA384),
        ("ed25519", &rcgen::PKCS_ED25519),
    ] {
        out.push((
            name.to_owned(),
            csr(None, vec![uri(spiffe)], &KeyPair::generate_for(alg)?)?,
        ));
    }
    out.push((
        "rsa2048".into(),
        csr(None, vec![uri(spiffe)], &rsa_pkcs8(2048)?.1)?,
    ));
    let p256 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let dns = SanType::DnsName("web.shop.svc".try_into()?);
    out.push((
        "uri-and-dns".into(),
        csr(None, vec![uri(spiffe), dns], &p256)?,
    ));
    out.push(("cn".into(), csr(Some(spiffe), vec![uri(spiffe)], &p256)?));
    out.push((
        "other-domain".into(),
        csr(None, vec![uri("spiffe://evil/ns/shop/sa/web")], &p256)?,
    ));
    Ok(out)
}

fn csr(cn: Option<&str>, sans: Vec<SanType>, key: &KeyPair) -> Result<Vec<u8>> {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        p.distinguished_name.push(DnType::CommonName, cn);
    }
    p.subject_alt_names = sans;
    Ok(p.serialize_request(key)?.der().to_vec())
}

/// An issuer with its root, the issuer key PEM in a chosen format.
pub struct Bundle {
    root_pem: String,
    issuer_pem: String,
    key_pem: String,
}

impl Bundle {
    /// Issuer certificate, root, key: one blob for the `ca_pem` target.
    pub fn pem(&self) -> Vec<u8> {
        format!("{}{}{}", self.issuer_pem, self.root_pem, self.key_pem).into_bytes()
    }

    /// `{"secret": …, "configmap": …}` as the API server would send them.
    pub fn kube_json(&self, linkerd_type: bool) -> Result<Vec<u8>> {
        let (ty, crt, key) = if linkerd_type {
            ("linkerd.io/tls", "crt.pem", "key.pem")
        } else {
            ("kubernetes.io/tls", "tls.crt", "tls.key")
        };
        let data = BTreeMap::from([
            (
                crt.to_owned(),
                ByteString(self.issuer_pem.clone().into_bytes()),
            ),
            (
                key.to_owned(),
                ByteString(self.key_pem.clone().into_bytes()),
            ),
        ]);
        let secret = Secret {
            type_: Some(ty.into()),
            data: Some(data),
            ..Default::default()
        };
        let bundle = BTreeMap::from([("ca-bundle.crt".to_owned(), self.root_pem.clone())]);
        let cm = ConfigMap {
            data: Some(bundle),
            ..Default::default()
        };
        Ok(serde_json::to_vec(
            &serde_json::json!({"secret": secret, "configmap": cm}),
        )?)
    }
}

/// (name, bundle) for each issuer key type and PEM key format.
pub fn ca_bundles() -> Result<Vec<(String, Bundle)>> {
    let now = SystemTime::now() - Duration::from_secs(60);
    let root = new_root("seed root", 10 * YEAR, generate_key(KeyType::P256)?, now)?;
    let issue = |key: KeyPair| {
        new_issuer(
            &root.cert_pem,
            &root.key_pem,
            "seed issuer",
            YEAR,
            0,
            key,
            now,
        )
    };
    let mut out = Vec::new();
    for (name, alg) in [
        ("p256", &rcgen::PKCS_ECDSA_P256_SHA256),
        ("p384", &rcgen::PKCS_ECDSA_P384_SHA384),
        ("ed25519", &rcgen::PKCS_ED25519),
    ] {
        let key = KeyPair::generate_for(alg)?;
        let sec1 = (name != "ed25519").then(|| sec1_pem(&key)).transpose()?;
        let issuer = issue(key)?;
        let bundle = |key_pem: String| Bundle {
            root_pem: root.cert_pem.clone(),
            issuer_pem: issuer.cert_pem.clone(),
            key_pem,
        };
        out.push((format!("{name}-pkcs8"), bundle(issuer.key_pem.clone())));
        if let Some(sec1) = sec1 {
            out.push((format!("{name}-sec1-linkerd"), bundle(sec1)));
        }
    }
    let (rsa_key, kp) = rsa_pkcs8(2048)?;
    let issuer = issue(kp)?;
    let pkcs1 = {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        rsa_key
            .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)?
            .to_string()
    };
    for (name, key_pem) in [("rsa-pkcs8", issuer.key_pem.clone()), ("rsa-pkcs1", pkcs1)] {
        let b = Bundle {
            root_pem: root.cert_pem.clone(),
            issuer_pem: issuer.cert_pem.clone(),
            key_pem,
        };
        out.push((name.to_owned(), b));
    }
    Ok(out)
}

/// The SEC1 `EC PRIVATE KEY` form openssl writes, with the curve named inside.
fn sec1_pem(key: &KeyPair) -> Result<String> {
    let info = pkcs8::PrivateKeyInfo::try_from(key.serialized_der()).map_err(|e| anyhow!("{e}"))?;
    let mut ec = sec1::EcPrivateKey::try_from(info.private_key).map_err(|e| anyhow!("{e}"))?;
    let curve = info
        .algorithm
        .parameters_oid()
        .map_err(|e| anyhow!("{e}"))?;
    ec.parameters = Some(sec1::EcParameters::NamedCurve(curve));
    let der = ec.to_der().map_err(|e| anyhow!("{e}"))?;
    Ok(pem::encode(&pem::Pem::new("EC PRIVATE KEY", der)))
}
