//! The issuer's key in an HSM (issue 22), against SoftHSM2: serve with a key that exists
//! only in a token, verify the chains, refuse a missing object and a key that does not
//! match, rotate to another key object, 64 calls at once through the session pool, and
//! look at the generated key from outside certmint with OpenSC's `pkcs11-tool`.
//!
//! One test process initialises the PKCS#11 module once, so the tokens are made before
//! the first test touches it (`hsm()`); faults that disturb the module are in
//! `hsm_faults.rs`, a process of their own.

use certmint_testsupport as common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use certmint::app::Server;
use certmint::config::Config;
use certmint_core::ca::ExternalKey;
use certmint_hsm::{Curve, HsmKeys};
use common::softhsm::{SoftHsm, config, issuer_for, key_uri, softhsm};
use common::*;
use rustls_pki_types::CertificateDer;

const WAIT: Duration = Duration::from_secs(20);

/// SoftHSM with this process's token and its keys, made before any test uses them.
struct Hsm {
    soft: &'static SoftHsm,
    token: String,
    keys: std::collections::HashMap<&'static str, Arc<dyn ExternalKey>>,
}

/// The key objects the tests use. They are generated up front, one after another:
/// SoftHSM 2.6 fails a key generation now and then (CKR_GENERAL_ERROR) while other
/// threads use the same token, which only the ceremony (a single-threaded CLI) does in
/// production.
const OBJECTS: &[&str] = &[
    "serve", "keep", "other", "rotate-a", "rotate-b", "pool", "outside",
];

fn hsm() -> Option<&'static Hsm> {
    static HSM: OnceLock<Option<Hsm>> = OnceLock::new();
    HSM.get_or_init(|| {
        let soft = softhsm()?;
        install_crypto();
        let token = soft.token("certmint");
        let resolver = HsmKeys::new(&config(soft, &soft.pin_file), Arc::default()).unwrap();
        let keys = OBJECTS
            .iter()
            .map(|o| {
                let key = resolver.generate(&key_uri(&token, o), Curve::P256).unwrap();
                (*o, Arc::new(key) as Arc<dyn ExternalKey>)
            })
            .collect();
        Some(Hsm { soft, token, keys })
    })
    .as_ref()
}

impl Hsm {
    /// The P-256 key `object` in the token (one of `OBJECTS`).
    fn key(&self, object: &str) -> Arc<dyn ExternalKey> {
        self.keys[object].clone()
    }

    fn config(&self, files: &CaFiles) -> Config {
        let mut c = files.config();
        c.hsm = Some(config(self.soft, &self.soft.pin_file));
        c
    }
}

/// A layout whose issuer key is `object` in the token; the root stays on disk (tests).
fn layout(h: &Hsm, object: &str) -> (CaFiles, pki::Ca) {
    let files = CaFiles::new();
    let root = pki::Ca::root("hsm root");
    files.write_anchors(&root.cert_pem);
    let issuer = issuer_for(&root, h.key(object));
    files.write_issuer(&issuer.cert_pem, &issuer.key_pem);
    (files, root)
}

fn verify(resp: &linkerd2_proxy_api::identity::CertifyResponse, root: &pki::Ca) {
    let (leaf, inter) = pki::response_chain(resp);
    pki::verify_both_roles(&leaf, &inter, &[CertificateDer::from(root.der.clone())]);
}

async fn metric(server: &Server, line_start: &str) -> String {
    let (_, body) = admin_get(server.admin_addr, "/metrics").await;
    body.lines()
        .find(|l| l.starts_with(line_start))
        .unwrap_or_else(|| panic!("no {line_start} in metrics"))
        .to_owned()
}

#[tokio::test]
async fn serves_with_an_issuer_key_that_exists_only_in_the_token() {
    let Some(h) = hsm() else { return };
    let (files, root) = layout(h, "serve");
    let key_file = std::fs::read_to_string(files.issuer_dir.join("tls.key")).unwrap();
    assert!(key_file.starts_with("pkcs11:token="), "{key_file}");
    assert!(!key_file.contains("PRIVATE KEY"));
    let server = start_ready(h.config(&files)).await;
    let issuer = server.store.load().unwrap().issuer.clone();
    assert_eq!(
        issuer.key_location(),
        Some(format!("pkcs11:token={};object=serve;type=private", h.token).as_str())
    );
    let resp = files.certify_web(server.grpc_addr).await.unwrap();
    verify(&resp, &root);
    let ok = metric(&server, "certmint_hsm_signatures_total{result=\"ok\"}").await;
    // The probe leaf at load and the caller's leaf were both signed in the token.
    let n: u64 = ok.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 2, "{ok}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn refuses_a_missing_object_and_a_key_that_does_not_match_and_keeps_the_issuer() {
    let Some(h) = hsm() else { return };
    let (files, root) = layout(h, "keep");
    let server = start_ready(h.config(&files)).await;
    let before = server.store.load().unwrap().issuer.digest();

    // A Secret naming an object the token does not hold.
    let cert = issuer_for(&root, h.key("other")).cert_pem;
    files.write_issuer(&cert, &key_uri(&h.token, "no-such-key"));
    // A certificate for one key, naming another.
    let store = server.store.clone();
    let rejected = async || {
        metric(
            &server,
            "certmint_issuer_reloads_total{source=\"files\",result=\"rejected\"}",
        )
        .await
    };
    eventually(WAIT, "the missing object is refused", async || {
        !rejected().await.ends_with(" 0")
    })
    .await;
    files.write_issuer(&cert, &key_uri(&h.token, "keep"));
    eventually(WAIT, "the mismatched key is refused", async || {
        rejected().await.ends_with(" 2")
    })
    .await;
    assert_eq!(store.load().unwrap().issuer.digest(), before);
    verify(&files.certify_web(server.grpc_addr).await.unwrap(), &root);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn rotates_to_another_key_object() {
    let Some(h) = hsm() else { return };
    let (files, root) = layout(h, "rotate-a");
    let server = start_ready(h.config(&files)).await;
    let next = issuer_for(&root, h.key("rotate-b"));
    files.write_issuer(&next.cert_pem, &next.key_pem);
    let store = server.store.clone();
    eventually(WAIT, "the new key object is in use", async || {
        store
            .load()
            .and_then(|s| s.issuer.key_location().map(str::to_owned))
            .is_some_and(|l| l.contains("object=rotate-b"))
    })
    .await;
    let resp = files.certify_web(server.grpc_addr).await.unwrap();
    verify(&resp, &root);
    let issuer_der = rustls_pki_types::pem::PemObject::from_pem_slice(next.cert_pem.as_bytes())
        .map(|c: CertificateDer<'static>| c.to_vec())
        .unwrap();
    assert_eq!(resp.intermediate_certificates[0], issuer_der);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn sixty_four_concurrent_calls_share_the_session_pool() {
    let Some(h) = hsm() else { return };
    let (files, root) = layout(h, "pool");
    let server = start_ready(h.config(&files)).await;
    let files = Arc::new(files);
    let calls: Vec<_> = (0..64)
        .map(|_| {
            let files = files.clone();
            let addr = server.grpc_addr;
            tokio::spawn(async move { files.certify_web(addr).await })
        })
        .collect();
    for c in calls {
        verify(&c.await.unwrap().unwrap(), &root);
    }
    let open = metric(&server, "certmint_hsm_sessions_open").await;
    let n: usize = open.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((1..=8).contains(&n), "{open}: at most hsm.sessions");
    server.shutdown().await.unwrap();
}

#[test]
fn a_generated_key_is_sensitive_and_never_extractable_seen_from_outside() {
    let Some(h) = hsm() else { return };
    let _ = h.key("outside");
    // Another process on the same SoftHSM token can find it busy (its file backend locks
    // the token's files while this process's tests sign): a few tries.
    let list = || {
        h.soft
            .pkcs11_tool()
            .args([
                "--token-label",
                &h.token,
                "--login",
                "--pin",
                common::softhsm::PIN,
            ])
            .args(["--list-objects", "--type", "privkey", "--label", "outside"])
            .output()
            .expect("pkcs11-tool (OpenSC) runs")
    };
    let mut out = list();
    for _ in 0..10 {
        if out.status.success() && !out.stdout.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        out = list();
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}{err}");
    let access = text
        .lines()
        .find(|l| l.trim_start().starts_with("Access:"))
        .unwrap_or_else(|| panic!("no Access line in {text}"));
    assert!(access.contains("always sensitive"), "{access}");
    assert!(access.contains("never extractable"), "{access}");
    // A CA key signs and does nothing else.
    let usage = text
        .lines()
        .find(|l| l.trim_start().starts_with("Usage:"))
        .unwrap_or_else(|| panic!("no Usage line in {text}"));
    assert_eq!(usage.split_once(':').unwrap().1.trim(), "sign", "{usage}");
}
