//! `certmint serve` as a process: SIGTERM stops it gracefully, letting an in-flight
//! Certify (held up by a slow TokenReview) finish first.

use certmint_testsupport as common;
use certmint_testsupport::fake_kube;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::pki::Ca;
use common::*;
use fake_kube::{FakeKube, RequestKind};
use rcgen::KeyPair;

const WAIT: Duration = Duration::from_secs(30);

/// Starts the binary and returns it with its gRPC and admin addresses (from its JSON log).
fn spawn_serve(config: &std::path::Path) -> (std::process::Child, SocketAddr, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_certmint"))
        .args(["serve", "--config"])
        .arg(config)
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["message"] == "certmint serving" {
                let addr = |k: &str| v[k].as_str().unwrap().parse::<SocketAddr>().unwrap();
                let _ = tx.send((addr("grpc"), addr("admin")));
            }
        }
    });
    let (grpc, admin) = rx.recv_timeout(WAIT).expect("certmint serve did not start");
    (child, grpc, admin)
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_call_finish() {
    let kube = FakeKube::start().await;
    let root = Ca::root("root");
    let issuer = root.issuer("issuer");
    kube.put_configmap(
        "linkerd",
        "linkerd-identity-trust-roots",
        BTreeMap::from([("ca-bundle.crt".into(), root.cert_pem.clone())]),
    );
    let data = BTreeMap::from([
        ("tls.crt".into(), issuer.cert_pem.clone().into_bytes()),
        ("tls.key".into(), issuer.key_pem.clone().into_bytes()),
    ]);
    kube.put_secret(
        "linkerd",
        "linkerd-identity-issuer",
        "kubernetes.io/tls",
        data,
    );
    let dir = tempfile::tempdir().unwrap();
    kube.write_kubeconfig(&dir.path().join("kubeconfig"));
    let config = dir.path().join("certmint.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nkubeconfig: {}\ntls:\n  enabled: false\n\
             issuer:\n  source: kubernetes\ntrust_anchors:\n  source: kubernetes\n",
            dir.path().join("kubeconfig").display()
        ),
    )
    .unwrap();
    let (mut child, grpc, admin) = spawn_serve(&config);
    eventually(WAIT, "ready", async || {
        admin_get(admin, "/ready").await.0 == 200
    })
    .await;

    kube.set_token_review_latency(Duration::from_secs(2));
    let id = linkerd_name("shop", "web");
    let token = kube.mint_token("shop", "web", &[AUDIENCE], Duration::from_secs(3600));
    let csr = CsrSpec::for_identity(&id).build(&KeyPair::generate().unwrap());
    let mut c = client(grpc).await;
    let call = tokio::spawn(async move { certify(&mut c, &id, token, csr).await });
    assert!(
        kube.wait_for_requests(RequestKind::TokenReview, 1, WAIT)
            .await,
        "the call never reached TokenReview"
    );

    sigterm(&child);
    let resp = tokio::time::timeout(WAIT, call)
        .await
        .expect("in-flight call hung")
        .unwrap();
    assert!(resp.is_ok(), "in-flight call failed: {resp:?}");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        tokio::net::TcpStream::connect(grpc).await.is_err(),
        "still accepting after shutdown"
    );
}
