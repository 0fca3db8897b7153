//! Issuer and anchor hot reload from files: rotation without restart (including kubelet's
//! `..data` symlink swap), rejected updates that keep the old issuer, anchor overlap,
//! and an expired issuer never signing.

use certmint_testsupport as common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use certmint::app::Server;
use common::pki::Ca;
use common::*;
use rcgen::KeyPair;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(20);

/// Certifies `shop/web` and returns the first intermediate (the signing issuer).
async fn signer(files: &CaFiles, server: &Server) -> Result<Vec<u8>, tonic::Status> {
    let resp = files.certify_web(server.grpc_addr).await?;
    Ok(resp.intermediate_certificates[0].clone())
}

async fn wait_for_signer(files: &CaFiles, server: &Server, want: &[u8]) {
    eventually(WAIT, "the new issuer to sign", async || {
        signer(files, server).await.ok().as_deref() == Some(want)
    })
    .await;
}

fn reloads(server: &Server, result: &str) -> u64 {
    counter(server, "issuer_reloads", result)
}

fn counter(server: &Server, family: &str, result: &str) -> u64 {
    let text = server.metrics.encode();
    let needle = format!("certmint_{family}_total{{source=\"files\",result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Writes an update and waits until the reloader has rejected it.
async fn expect_rejected(server: &Server, write: impl FnOnce()) {
    let before = reloads(server, "rejected");
    write();
    eventually(WAIT, "the update to be rejected", async || {
        reloads(server, "rejected") > before
    })
    .await;
}

#[tokio::test]
async fn rotated_issuer_is_used_without_restart() {
    let files = CaFiles::new();
    let root = Ca::root("root");
    let (a, b) = (root.issuer("issuer a"), root.issuer("issuer b"));
    files.write_anchors(&root.cert_pem);
    files.write_issuer(&a.cert_pem, &a.key_pem);
    let server = files.start().await;
    assert_eq!(signer(&files, &server).await.unwrap(), a.der);
    files.write_issuer(&b.cert_pem, &b.key_pem);
    wait_for_signer(&files, &server, &b.der).await;
    assert!(reloads(&server, "applied") >= 2);
    server.shutdown().await.unwrap();
}

/// Lays out `dir` the way kubelet mounts a Secret: files behind a `..data` symlink.
fn kubelet_write(dir: &Path, generation: u32, ca: &Ca) {
    let data = dir.join(format!("..2026_11_28_{generation}"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("tls.crt"), &ca.cert_pem).unwrap();
    std::fs::write(data.join("tls.key"), &ca.key_pem).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(data.file_name().unwrap(), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for f in ["tls.crt", "tls.key"] {
        let link = dir.join(f);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(f), &link).unwrap();
        }
    }
}

#[tokio::test]
async fn kubelet_data_symlink_swap_is_picked_up() {
    let files = CaFiles::new();
    let root = Ca::root("root");
    let (a, b) = (root.issuer("issuer a"), root.issuer("issuer b"));
    files.write_anchors(&root.cert_pem);
    kubelet_write(&files.issuer_dir, 1, &a);
    let server = files.start().await;
    assert_eq!(signer(&files, &server).await.unwrap(), a.der);
    kubelet_write(&files.issuer_dir, 2, &b);
    wait_for_signer(&files, &server, &b.der).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn invalid_issuers_are_rejected_and_the_old_one_keeps_signing() {
    let files = CaFiles::new();
    let root = Ca::root("root");
    let good = root.issuer("good issuer");
    files.write_anchors(&root.cert_pem);
    files.write_issuer(&good.cert_pem, &good.key_pem);
    let server = files.start().await;

    let stranger = Ca::root("stranger root").issuer("untrusted issuer");
    let other = root.issuer("other issuer");
    let now = SystemTime::now();
    let expired = root.issuer_valid(
        "expired issuer",
        now - Duration::from_secs(7200),
        now - Duration::from_secs(60),
    );
    let cases = [
        (
            "does not chain to the anchors",
            stranger.cert_pem.clone(),
            stranger.key_pem.clone(),
        ),
        (
            "key does not match",
            good.cert_pem.clone(),
            other.key_pem.clone(),
        ),
        ("expired", expired.cert_pem.clone(), expired.key_pem.clone()),
        ("garbage", "not pem".to_owned(), "not pem".to_owned()),
        ("a leaf, not a CA", leaf_pem(&root), other.key_pem.clone()),
    ];
    for (what, cert, key) in cases {
        expect_rejected(&server, || files.write_issuer(&cert, &key)).await;
        assert_eq!(
            signer(&files, &server).await.unwrap(),
            good.der,
            "{what}: old issuer must keep signing"
        );
        assert!(server.readiness.check().is_ok(), "{what}: still ready");
    }
    server.shutdown().await.unwrap();
}

/// A non-CA certificate signed by `root`, with its own key.
fn leaf_pem(root: &Ca) -> String {
    let mut p = rcgen::CertificateParams::new(vec!["leaf.example".to_owned()]).unwrap();
    p.is_ca = rcgen::IsCa::ExplicitNoCa;
    let key = KeyPair::generate().unwrap();
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&root.cert_pem, KeyPair::from_pem(&root.key_pem).unwrap())
            .unwrap();
    p.signed_by(&key, &issuer).unwrap().pem()
}

#[tokio::test]
async fn anchor_bundle_overlap_allows_an_issuer_under_the_new_root() {
    let files = CaFiles::new();
    let (old_root, new_root) = (Ca::root("old root"), Ca::root("new root"));
    let (old_issuer, new_issuer) = (old_root.issuer("old issuer"), new_root.issuer("new issuer"));
    files.write_anchors(&old_root.cert_pem);
    files.write_issuer(&old_issuer.cert_pem, &old_issuer.key_pem);
    let server = files.start().await;

    // Before the bundle carries the new root, its issuer is refused.
    expect_rejected(&server, || {
        files.write_issuer(&new_issuer.cert_pem, &new_issuer.key_pem)
    })
    .await;
    assert_eq!(signer(&files, &server).await.unwrap(), old_issuer.der);

    // With old+new anchors, the pending issuer under the new root is applied.
    files.write_anchors(&format!("{}{}", old_root.cert_pem, new_root.cert_pem));
    wait_for_signer(&files, &server, &new_issuer.der).await;

    // Dropping the old root is fine now; dropping the new one (in use) is refused.
    files.write_anchors(&new_root.cert_pem);
    eventually(WAIT, "anchors without the old root", async || {
        server
            .store
            .load()
            .is_some_and(|s| s.anchors.certs().len() == 1)
    })
    .await;
    let rejected = counter(&server, "trust_anchor_reloads", "rejected");
    files.write_anchors(&old_root.cert_pem);
    eventually(WAIT, "the anchors update to be rejected", async || {
        counter(&server, "trust_anchor_reloads", "rejected") > rejected
    })
    .await;
    let state = server.store.load().unwrap();
    assert_eq!(
        state.anchors.certs()[0].der.as_ref(),
        new_root.der.as_slice()
    );
    assert_eq!(signer(&files, &server).await.unwrap(), new_issuer.der);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_an_issuer_certify_is_unavailable_and_not_ready() {
    let files = CaFiles::new();
    files.write_anchors(&Ca::root("root").cert_pem);
    let server = files.start().await;
    let err = signer(&files, &server).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.message(), "issuer not ready");
    let (code, body) = admin_get(server.admin_addr, "/ready").await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(admin_get(server.admin_addr, "/live").await.0, 200);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_expired_issuer_is_never_used() {
    let files = CaFiles::new();
    let root = Ca::root("root");
    let now = SystemTime::now();
    let issuer = root.issuer_valid(
        "short issuer",
        now - Duration::from_secs(60),
        now + Duration::from_secs(7200),
    );
    files.write_anchors(&root.cert_pem);
    files.write_issuer(&issuer.cert_pem, &issuer.key_pem);
    let clock = TestClock::new();
    install_crypto();
    let server = Server::start_with_clock(files.config(), Arc::new(clock.clone()))
        .await
        .unwrap();

    // Leaves are clamped to the issuer's notAfter while it is valid.
    let resp = files.certify_web(server.grpc_addr).await.unwrap();
    let issuer_na = x509_parser::parse_x509_certificate(&issuer.der)
        .unwrap()
        .1
        .validity()
        .not_after
        .timestamp();
    assert_eq!(resp.valid_until.unwrap().seconds, issuer_na);
    eventually(WAIT, "ready", async || {
        admin_get(server.admin_addr, "/ready").await.0 == 200
    })
    .await;

    clock.advance(Duration::from_secs(3 * 3600));
    let err = signer(&files, &server).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unavailable, "issuer expired")
    );
    let (code, body) = admin_get(server.admin_addr, "/ready").await;
    assert_eq!(code, 503);
    assert!(body.contains("expired"), "{body}");
    server.shutdown().await.unwrap();
}
