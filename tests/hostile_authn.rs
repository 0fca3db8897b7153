//! Hostile load on authentication (issue 10 §5): every TokenReview stalls at the API
//! server while a flood of new tokens arrives. Each flooded call must end UNAVAILABLE
//! within the request deadline; a client whose token is already reviewed stays served.

use certmint_testsupport as common;
use certmint_testsupport::fake_kube;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use certmint::config::{AuthnMode, Config, LocalVerification, SourceKind};
use common::wire::GoodClient;
use common::*;
use fake_kube::FakeKube;
use rcgen::KeyPair;
use tonic::Code;

const NS: &str = "linkerd";

fn config(kube: &FakeKube, dir: &std::path::Path) -> Config {
    let kubeconfig = dir.join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig);
    let mut c = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    c.kubeconfig = Some(kubeconfig);
    c.tls.enabled = false;
    c.authn.mode = AuthnMode::Kubernetes;
    c.authn.kubernetes.timeout = Duration::from_secs(1);
    c.authn.kubernetes.max_in_flight = 50;
    // TokenReview alone: with local verification, stalled reviews would fall back to the
    // local verdict (tests/local_fallback.rs covers that path).
    c.authn.kubernetes.local_verification = LocalVerification::Off;
    c.limits.request_timeout = Duration::from_secs(2);
    c.issuer.source = SourceKind::Kubernetes;
    c.issuer.namespace = NS.into();
    c.trust_anchors.source = SourceKind::Kubernetes;
    c.trust_anchors.namespace = NS.into();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_token_reviews_do_not_stall_reviewed_clients() {
    install_crypto();
    let kube = FakeKube::start().await;
    let root = pki::Ca::root("root");
    let issuer = root.issuer("issuer");
    let anchors = BTreeMap::from([("ca-bundle.crt".to_owned(), root.cert_pem.clone())]);
    kube.put_configmap(NS, "linkerd-identity-trust-roots", anchors);
    let secret = BTreeMap::from([
        ("tls.crt".to_owned(), issuer.cert_pem.clone().into_bytes()),
        ("tls.key".to_owned(), issuer.key_pem.clone().into_bytes()),
    ]);
    kube.put_secret(NS, "linkerd-identity-issuer", "kubernetes.io/tls", secret);
    let dir = tempfile::tempdir().unwrap();
    let server = start_ready(config(&kube, dir.path())).await;
    let addr = server.grpc_addr;
    let day = Duration::from_secs(3600);
    let token = kube.mint_token("shop", "web", &[AUDIENCE], day);
    // Reviewed once while the API server is healthy: then cached.
    // Every 5 ms: the flood lasts about 2 s, and a p99 needs a few hundred samples (of 90 it
    // is the maximum).
    let good = GoodClient::start_with(client(addr).await, token, Duration::from_millis(5));
    eventually(Duration::from_secs(10), "first good call", async || {
        good.calls() > 0
    })
    .await;

    // Attackers' keys, tokens and connections are made first, so that the good client's
    // latency measures the server, not this process generating keys.
    let mut attackers = Vec::new();
    for i in 0..150 {
        let sa = format!("sa{i}");
        let token = kube.mint_token("shop", &sa, &[AUDIENCE], day);
        let id = linkerd_name("shop", &sa);
        let csr = CsrSpec::for_identity(&id).build(&KeyPair::generate().unwrap());
        attackers.push((id, token, csr, client(addr).await));
    }
    kube.set_token_review_latency(Duration::from_secs(5));
    let mut flood = Vec::new();
    for (id, token, csr, mut c) in attackers {
        flood.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = certify(&mut c, &id, token, csr).await;
            (r.map(|_| ()), t.elapsed())
        }));
    }
    let mut slowest = Duration::ZERO;
    for f in flood {
        let (r, took) = f.await.unwrap();
        assert_eq!(r.unwrap_err().code(), Code::Unavailable);
        assert!(took < Duration::from_secs(4), "answered after {took:?}");
        slowest = slowest.max(took);
    }
    println!("case 150 calls with stalled TokenReviews: all UNAVAILABLE, slowest {slowest:?}");
    let report = good.finish().await;
    println!(
        "good client (cached token): {} calls, p50 {:?}, p99 {:?}, max {:?}",
        report.calls, report.p50, report.p99, report.max
    );
    kube.set_token_review_latency(Duration::ZERO);
    server.shutdown().await.unwrap();
}
