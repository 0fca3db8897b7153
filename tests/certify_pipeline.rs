//! The Certify pipeline end to end against one shared server: every error code of
//! DESIGN.md §3, the leaf profile of §4 checked by parsing the DER, chains verified with
//! rustls-webpki, and serial uniqueness.

use certmint_testsupport as common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use rcgen::KeyPair;
use rustls_pki_types::CertificateDer;
use tonic::Code;
use x509_parser::prelude::*;

struct Shared {
    addr: SocketAddr,
    files: CaFiles,
    root_der: Vec<u8>,
    issuer_der: Vec<u8>,
}

/// One server for the whole file, on its own runtime so every test can reach it.
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let (files, root, issuer) = CaFiles::with_ca("pipeline root", "pipeline issuer");
        let (addr, _) = background_server(files.config());
        Shared {
            addr,
            files,
            root_der: root.der,
            issuer_der: issuer.der,
        }
    })
}

fn web() -> String {
    linkerd_name("shop", "web")
}

async fn certify_web(
    csr: Vec<u8>,
) -> Result<linkerd2_proxy_api::identity::CertifyResponse, tonic::Status> {
    let s = shared();
    let mut c = client(s.addr).await;
    certify(&mut c, &web(), s.files.token_key.token("shop", "web"), csr).await
}

async fn code_of(identity: &str, token: impl Into<Vec<u8>>, csr: Vec<u8>) -> Code {
    let mut c = client(shared().addr).await;
    match certify(&mut c, identity, token, csr).await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

/// The leaf's subjectAltName entries (the extension must be present).
fn sans<'a>(leaf: &'a X509Certificate<'a>) -> &'a [GeneralName<'a>] {
    &leaf
        .subject_alternative_name()
        .unwrap()
        .expect("subjectAltName present")
        .value
        .general_names
}

fn csr_web(key: &KeyPair) -> Vec<u8> {
    CsrSpec::for_identity(&web()).build(key)
}

#[tokio::test]
async fn missing_fields_are_invalid_argument() {
    let s = shared();
    let key = KeyPair::generate().unwrap();
    let token = s.files.token_key.token("shop", "web");
    assert_eq!(
        code_of("", token.clone(), csr_web(&key)).await,
        Code::InvalidArgument
    );
    assert_eq!(
        code_of(&web(), Vec::new(), csr_web(&key)).await,
        Code::InvalidArgument
    );
    assert_eq!(
        code_of(&web(), token.clone(), Vec::new()).await,
        Code::InvalidArgument
    );
    assert_eq!(
        code_of(&web(), vec![b'a'; 16 * 1024 + 1], csr_web(&key)).await,
        Code::InvalidArgument
    );
    assert_eq!(
        code_of(&web(), token.clone(), vec![0x30; 16 * 1024 + 1]).await,
        Code::InvalidArgument
    );
    assert_eq!(
        code_of(&web(), "  \n", csr_web(&key)).await,
        Code::InvalidArgument
    );
}

#[tokio::test]
async fn garbage_and_tampered_csrs_are_invalid_argument() {
    let token = shared().files.token_key.token("shop", "web");
    assert_eq!(
        code_of(&web(), token.clone(), b"not a csr".to_vec()).await,
        Code::InvalidArgument
    );
    let key = KeyPair::generate().unwrap();
    let mut csr = csr_web(&key);
    // Flip a bit inside the signed CN (the signature no longer matches).
    let pos = csr.windows(4).position(|w| w == b"web.").unwrap();
    csr[pos] ^= 0x01;
    let err = certify_web(csr).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "CSR signature does not verify");
}

#[tokio::test]
async fn csr_names_must_match_the_identity() {
    let key = KeyPair::generate().unwrap();
    let other = linkerd_name("shop", "db");
    let id = web();
    let cases = [
        ("another identity", CsrSpec::for_identity(&other)),
        (
            "extra DNS SAN",
            CsrSpec {
                dns: vec![id.clone(), "evil.example.com".into()],
                ..CsrSpec::for_identity(&id)
            },
        ),
        (
            "IP SAN",
            CsrSpec {
                ips: vec!["10.0.0.1".parse().unwrap()],
                ..CsrSpec::for_identity(&id)
            },
        ),
        (
            "email SAN",
            CsrSpec {
                emails: vec!["a@b.c".into()],
                ..CsrSpec::for_identity(&id)
            },
        ),
        (
            "foreign URI SAN",
            CsrSpec {
                uris: vec![spiffe_id("shop", "db")],
                ..CsrSpec::for_identity(&id)
            },
        ),
        (
            "CN differs",
            CsrSpec {
                cn: Some(other.clone()),
                ..CsrSpec::for_identity(&id)
            },
        ),
        (
            "no DNS SAN",
            CsrSpec {
                dns: vec![],
                ..CsrSpec::for_identity(&id)
            },
        ),
    ];
    for (what, spec) in cases {
        let err = certify_web(spec.build(&key)).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{what}: {err:?}");
    }
    // The matching SPIFFE ID and an empty CN are allowed.
    let ok = CsrSpec {
        cn: None,
        uris: vec![spiffe_id("shop", "web")],
        ..CsrSpec::for_identity(&id)
    };
    certify_web(ok.build(&key)).await.unwrap();
}

#[tokio::test]
async fn token_for_another_service_account_is_permission_denied() {
    let s = shared();
    let key = KeyPair::generate().unwrap();
    let token = s.files.token_key.token("shop", "db");
    let mut c = client(s.addr).await;
    let err = certify(&mut c, &web(), token, csr_web(&key))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn bad_tokens_are_unauthenticated() {
    let s = shared();
    let key = KeyPair::generate().unwrap();
    let tk = &s.files.token_key;
    let stranger = TokenKey::new(s.files.dir.path().join("..").as_path());
    let cases = [
        (
            "expired",
            tk.token_with("shop", "web", AUDIENCE, TOKEN_ISSUER, -60),
        ),
        (
            "wrong audience",
            tk.token_with("shop", "web", "other-audience", TOKEN_ISSUER, 3600),
        ),
        (
            "wrong issuer",
            tk.token_with("shop", "web", AUDIENCE, "someone-else", 3600),
        ),
        ("unknown key", stranger.token("shop", "web")),
        ("not a JWT", "definitely.not.a-jwt".to_owned()),
    ];
    for (what, token) in cases {
        let mut c = client(s.addr).await;
        let err = certify(&mut c, &web(), token, csr_web(&key))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{what}: {err:?}");
        assert!(
            !err.message().contains("eyJ"),
            "status must not echo the token"
        );
    }
}

#[tokio::test]
async fn token_file_with_trailing_newline_is_accepted() {
    let s = shared();
    let key = KeyPair::generate().unwrap();
    let token = format!("{}\n", s.files.token_key.token("shop", "web"));
    let mut c = client(s.addr).await;
    certify(&mut c, &web(), token, csr_web(&key)).await.unwrap();
}

#[tokio::test]
async fn leaf_follows_the_profile_even_when_the_csr_asks_for_ca() {
    let s = shared();
    let key = KeyPair::generate().unwrap();
    let spec = CsrSpec {
        ask_ca: true,
        ..CsrSpec::for_identity(&web())
    };
    let csr = spec.build(&key);
    let before = SystemTime::now();
    let resp = certify_web(csr.clone()).await.unwrap();
    let (_, leaf) = X509Certificate::from_der(&resp.leaf_certificate).unwrap();

    assert_eq!(resp.intermediate_certificates, vec![s.issuer_der.clone()]);
    let bc = leaf
        .basic_constraints()
        .unwrap()
        .expect("basicConstraints present");
    assert!(!bc.value.ca, "leaf must be CA:false");
    let ku = leaf.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_encipherment() && !ku.key_cert_sign());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth && !eku.any);
    let sans = sans(&leaf);
    assert_eq!(sans.len(), 2);
    assert!(sans.contains(&GeneralName::DNSName(&web())));
    assert!(sans.contains(&GeneralName::URI(&spiffe_id("shop", "web"))));
    let cn: Vec<_> = leaf
        .subject()
        .iter_common_name()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cn, vec![web().as_str()]);
    assert!(
        leaf.get_extension_unique(&oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
            .unwrap()
            .is_some()
    );
    let (_, issuer) = X509Certificate::from_der(&s.issuer_der).unwrap();
    let aki = leaf
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.clone(),
            _ => None,
        });
    let issuer_ski = issuer
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.clone()),
            _ => None,
        });
    assert_eq!(aki.map(|k| k.0.to_vec()), issuer_ski.map(|k| k.0.to_vec()));

    // Serial: positive, 128 bits.
    let serial = leaf.raw_serial();
    assert_eq!(serial.len(), 16);
    assert!(serial[0] & 0x80 == 0 && serial[0] != 0);

    // Validity: now − 20 s to now + 24 h, valid_until = notAfter.
    let nb = leaf.validity().not_before.timestamp();
    let na = leaf.validity().not_after.timestamp();
    let t0 = before
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (t0 - 22..=t0 - 18).contains(&nb),
        "notBefore {nb} vs now {t0}"
    );
    assert_eq!(na - nb, 24 * 3600 + 20);
    assert_eq!(resp.valid_until.unwrap().seconds, na);

    // The public key is the CSR's, byte for byte.
    let (_, req) = X509CertificationRequest::from_der(&csr).unwrap();
    assert_eq!(
        leaf.public_key().raw,
        req.certification_request_info.subject_pki.raw
    );

    verify_chain(&resp, &s.root_der, &web());
}

/// Verifies with rustls-webpki for both TLS roles, and the DNS name.
fn verify_chain(resp: &linkerd2_proxy_api::identity::CertifyResponse, root_der: &[u8], name: &str) {
    let root = CertificateDer::from(root_der.to_vec());
    let (leaf, inter) = common::pki::response_chain(resp);
    common::pki::verify_both_roles(&leaf, &inter, &[root]);
    let ee = webpki::EndEntityCert::try_from(&leaf).unwrap();
    let sn = rustls_pki_types::ServerName::try_from(name).unwrap();
    ee.verify_is_valid_for_subject_name(&sn).unwrap();
}

#[tokio::test]
async fn accepts_every_allowed_key_type() {
    use rsa::pkcs8::EncodePrivateKey;
    let mut keys = vec![
        (
            "p384",
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
            false,
        ),
        (
            "ed25519",
            KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
            false,
        ),
    ];
    let rsa = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let pem = rsa.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    keys.push(("rsa2048", KeyPair::from_pem(&pem).unwrap(), true));
    for (what, key, is_rsa) in keys {
        let resp = certify_web(csr_web(&key))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let (_, leaf) = X509Certificate::from_der(&resp.leaf_certificate).unwrap();
        let ku = leaf.key_usage().unwrap().unwrap().value;
        assert_eq!(
            ku.key_encipherment(),
            is_rsa,
            "{what}: keyEncipherment only for RSA"
        );
        verify_chain(&resp, &shared().root_der, &web());
    }
}

/// An RSA key ring refuses to sign with (too small), signing through the rsa crate.
struct SmallRsa(rsa::RsaPrivateKey, Vec<u8>);

impl rcgen::PublicKeyData for SmallRsa {
    fn der_bytes(&self) -> &[u8] {
        &self.1
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

impl rcgen::SigningKey for SmallRsa {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        use rsa::signature::{SignatureEncoding, Signer};
        let sk = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new(self.0.clone());
        Ok(sk.sign(msg).to_vec())
    }
}

#[tokio::test]
async fn refuses_small_rsa_keys() {
    use rsa::pkcs1::EncodeRsaPublicKey;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
    let public = key
        .to_public_key()
        .to_pkcs1_der()
        .unwrap()
        .as_bytes()
        .to_vec();
    let signer = SmallRsa(key, public);
    let csr = CsrSpec::for_identity(&web()).build_with(&signer);
    assert_eq!(
        certify_web(csr).await.unwrap_err().code(),
        Code::InvalidArgument
    );
}

#[tokio::test]
async fn long_names_get_an_empty_subject_and_critical_san() {
    let s = shared();
    let sa = "a".repeat(40);
    let id = linkerd_name("shop", &sa);
    assert!(id.len() > 64);
    let key = KeyPair::generate().unwrap();
    let csr = CsrSpec {
        cn: None,
        ..CsrSpec::for_identity(&id)
    }
    .build(&key);
    let mut c = client(s.addr).await;
    let resp = certify(&mut c, &id, s.files.token_key.token("shop", &sa), csr)
        .await
        .unwrap();
    let (_, leaf) = X509Certificate::from_der(&resp.leaf_certificate).unwrap();
    assert_eq!(leaf.subject().iter().count(), 0);
    let san = leaf
        .get_extension_unique(&oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME)
        .unwrap()
        .unwrap();
    assert!(san.critical);
    verify_chain(&resp, &s.root_der, &id);
}

#[tokio::test]
async fn ten_thousand_issuances_have_distinct_serials() {
    let s = shared();
    // One key and CSR for all: serials must not derive from the key.
    let key = KeyPair::generate().unwrap();
    let csr = csr_web(&key);
    let token = s.files.token_key.token("shop", "web");
    let c = client(s.addr).await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (mut c, csr, token) = (c.clone(), csr.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut serials = Vec::new();
            for _ in 0..10_000 / 32 + 1 {
                let resp = certify(&mut c, &web(), token.clone(), csr.clone())
                    .await
                    .unwrap();
                let (_, leaf) = X509Certificate::from_der(&resp.leaf_certificate).unwrap();
                serials.push(leaf.raw_serial().to_vec());
            }
            serials
        }));
    }
    let mut all = HashSet::new();
    let mut n = 0;
    for t in tasks {
        for s in t.await.unwrap() {
            n += 1;
            all.insert(s);
        }
    }
    assert!(n >= 10_000);
    assert_eq!(all.len(), n, "duplicate serials");
    eprintln!("{n} issuances in {:?}", start.elapsed());
    let _ = Duration::ZERO;
}

/// linkerd2's `proxy-identity` (Go) writes the CSR the proxy sends: a P-256 key, the
/// identity as CN and as the only DNS SAN. Go encodes that CN as a PrintableString, where
/// rcgen's default (and the other tests) use UTF8String.
#[tokio::test]
async fn csr_shaped_like_linkerd_proxy_identity_is_certified() {
    let key = KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(
        rcgen::DnType::CommonName,
        rcgen::DnValue::PrintableString(web().as_str().try_into().unwrap()),
    );
    p.subject_alt_names = vec![rcgen::SanType::DnsName(web().try_into().unwrap())];
    let csr = p.serialize_request(&key).unwrap().der().to_vec();
    let (_, req) = X509CertificationRequest::from_der(&csr).unwrap();
    let cn = req
        .certification_request_info
        .subject
        .iter_common_name()
        .next()
        .expect("CN present");
    assert_eq!(
        cn.attr_value().tag(),
        x509_parser::asn1_rs::Tag::PrintableString
    );

    let resp = certify_web(csr).await.unwrap();
    let (_, leaf) = X509Certificate::from_der(&resp.leaf_certificate).unwrap();
    let sans = sans(&leaf);
    assert!(sans.contains(&GeneralName::DNSName(&web())));
}
