//! Istio impersonation (ztunnel in shared mode) against the fake API server: a trusted
//! node account gets certificates only for workloads with a running pod on its own node,
//! as a cluster-wide pod watch sees them; everyone else gets PERMISSION_DENIED with the
//! reason.

use certmint_testsupport as common;
use certmint_testsupport::fake_kube;
use certmint_testsupport::istio_client;

use std::time::Duration;

use certmint::app::Server;
use common::*;
use fake_kube::{FakeKube, TokenSpec};
use istio_client::{Call, ztunnel_csr};
use rustls_pki_types::{CertificateDer, pem::PemObject};
use tonic::Code;
use tonic::transport::Channel;
use x509_parser::prelude::*;

const WAIT: Duration = Duration::from_secs(20);

struct Env {
    kube: FakeKube,
    _files: CaFiles,
    server: Server,
}

/// Pods: shop/web on node-a, shop/db on node-b, ztunnel on both; ztunnel trusted.
async fn env() -> Env {
    install_crypto();
    let kube = FakeKube::start().await;
    kube.put_pod("shop", "web-0", "web", "node-a");
    kube.put_pod("shop", "db-0", "db", "node-b");
    kube.put_pod("istio-system", "ztunnel-a", "ztunnel", "node-a");
    kube.put_pod("istio-system", "ztunnel-b", "ztunnel", "node-b");
    let files = CaFiles::with_fresh_ca();
    let mut c = files.kubernetes_config(|p| kube.write_kubeconfig(p));
    c.istio.enabled = true;
    c.istio.trusted_node_accounts = vec!["istio-system/ztunnel".into()];
    let server = start_ready(c).await;
    Env {
        kube,
        _files: files,
        server,
    }
}

impl Env {
    /// An `istio-ca` token of `ns/sa`, bound to `pod` and/or naming `node`.
    fn token(&self, ns: &str, sa: &str, pod: Option<&str>, node: Option<&str>) -> String {
        let mut spec = TokenSpec::new(ns, sa, &["istio-ca"], Duration::from_secs(3600));
        spec.pod = pod.map(str::to_owned);
        spec.node = node.map(str::to_owned);
        self.kube.mint(&spec)
    }

    fn ztunnel_a(&self) -> String {
        self.token("istio-system", "ztunnel", Some("ztunnel-a"), None)
    }

    async fn on_behalf(
        &self,
        token: String,
        ns: &str,
        sa: &str,
    ) -> Result<Vec<String>, tonic::Status> {
        let id = spiffe_id(ns, sa);
        let ch = Channel::from_shared(format!("http://{}", self.server.grpc_addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Call::new(ztunnel_csr(&[&id]), token)
            .on_behalf_of(&id)
            .send(ch)
            .await
    }
}

fn denied(r: Result<Vec<String>, tonic::Status>, reason: &str) {
    let err = r.expect_err("must be refused");
    assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
    assert!(
        err.message().contains(reason),
        "{:?} lacks {reason:?}",
        err.message()
    );
}

fn leaf_uri(chain: &[String]) -> String {
    let der = CertificateDer::from_pem_slice(chain[0].as_bytes()).unwrap();
    let (_, leaf) = X509Certificate::from_der(&der).unwrap();
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    match san.value.general_names.as_slice() {
        [GeneralName::URI(u)] => (*u).to_owned(),
        other => panic!("unexpected SANs {other:?}"),
    }
}

#[tokio::test]
async fn trusted_node_agent_gets_certificates_only_for_pods_on_its_node() {
    let e = env().await;
    // ztunnel on node-a: web runs there, db does not.
    let chain = e.on_behalf(e.ztunnel_a(), "shop", "web").await.unwrap();
    assert_eq!(leaf_uri(&chain), spiffe_id("shop", "web"));
    denied(
        e.on_behalf(e.ztunnel_a(), "shop", "db").await,
        "no running pod of shop/db is on node node-a",
    );
    // Its own identity, named as impersonated (shared mode does this).
    let chain = e
        .on_behalf(e.ztunnel_a(), "istio-system", "ztunnel")
        .await
        .unwrap();
    assert_eq!(leaf_uri(&chain), spiffe_id("istio-system", "ztunnel"));
    // The node claim alone places the caller (ztunnel on node-b may have db).
    let on_b = e.token("istio-system", "ztunnel", None, Some("node-b"));
    let chain = e.on_behalf(on_b, "shop", "db").await.unwrap();
    assert_eq!(leaf_uri(&chain), spiffe_id("shop", "db"));
}

#[tokio::test]
async fn untrusted_or_unplaced_callers_are_refused_with_the_reason() {
    let e = env().await;
    let web = e.token("shop", "web", Some("web-0"), None);
    denied(
        e.on_behalf(web, "shop", "db").await,
        "shop/web is not a trusted node account",
    );
    let unbound = e.token("istio-system", "ztunnel", None, None);
    denied(
        e.on_behalf(unbound, "shop", "web").await,
        "bound to no known pod or node",
    );
    // A token bound to a pod the API server does not know (gone, or a uid that does not
    // match) does not place the caller anywhere.
    let ghost = e.token("istio-system", "ztunnel", Some("ztunnel-gone"), None);
    denied(e.on_behalf(ghost, "shop", "web").await, "is not running");
    // The pod claim and node claim must agree.
    let liar = e.token("istio-system", "ztunnel", Some("ztunnel-a"), Some("node-b"));
    denied(e.on_behalf(liar, "shop", "db").await, "is not running");
}

#[tokio::test]
async fn a_deleted_pod_stops_authorising_impersonation() {
    let e = env().await;
    e.on_behalf(e.ztunnel_a(), "shop", "web").await.unwrap();
    assert!(e.kube.delete_pod("shop", "web-0"));
    let mut last = None;
    eventually(WAIT, "the watch to see the deletion", async || {
        last = Some(e.on_behalf(e.ztunnel_a(), "shop", "web").await);
        last.as_ref().unwrap().is_err()
    })
    .await;
    denied(
        last.unwrap(),
        "no running pod of shop/web is on node node-a",
    );
}

/// Not a test: serves certmint (TLS, both APIs, impersonation for `istio-system/ztunnel`)
/// against the fake API server for a real client to use, e.g. ztunnel in shared mode.
/// `CERTMINT_HARNESS_DIR=/some/dir cargo test --test istio_impersonation -- --ignored
/// --nocapture` writes there `roots/root.pem` (the anchors), `ztunnel.token` (bound to pod
/// istio-system/ztunnel-local on node-a), `app.token` (demo/app) and `web.token` (shop/web,
/// Linkerd's audience), all without a trailing newline, then serves on 127.0.0.1:15012
/// (`CERTMINT_HARNESS_PORT`) for `CERTMINT_HARNESS_SECS` (300) seconds. Pods: demo/app-1 (sa
/// app) and demo/app-2 (sa other) on node-a, demo/app-3 (sa remote) on node-b.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "serves for a real client; run by hand"]
async fn harness_for_real_clients() {
    let dir = std::path::PathBuf::from(
        std::env::var("CERTMINT_HARNESS_DIR").expect("CERTMINT_HARNESS_DIR"),
    );
    let var = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (port, secs) = (
        var("CERTMINT_HARNESS_PORT", 15012),
        var("CERTMINT_HARNESS_SECS", 300),
    );
    install_crypto();
    let kube = FakeKube::start().await;
    for (ns, pod, sa, node) in [
        ("demo", "app-1", "app", "node-a"),
        ("demo", "app-2", "other", "node-a"),
        ("demo", "app-3", "remote", "node-b"),
        ("istio-system", "ztunnel-local", "ztunnel", "node-a"),
        ("shop", "web-0", "web", "node-a"),
    ] {
        kube.put_pod(ns, pod, sa, node);
    }
    let files = CaFiles::with_fresh_ca();
    let mut c = files.kubernetes_config(|p| kube.write_kubeconfig(p));
    c.listen = ([127, 0, 0, 1], port as u16).into();
    c.tls.enabled = true;
    c.tls.extra_names = vec!["localhost".into()];
    c.istio.enabled = true;
    c.istio.trusted_node_accounts = vec!["istio-system/ztunnel".into()];
    let server = start_ready(c).await;
    std::fs::create_dir_all(dir.join("roots")).unwrap();
    std::fs::copy(&files.anchors, dir.join("roots/root.pem")).unwrap();
    let mint = |ns: &str, sa: &str, aud: &str, pod: Option<&str>| {
        let mut spec = TokenSpec::new(ns, sa, &[aud], Duration::from_secs(3600));
        spec.pod = pod.map(str::to_owned);
        kube.mint(&spec)
    };
    let tokens = [
        (
            "ztunnel.token",
            mint("istio-system", "ztunnel", "istio-ca", Some("ztunnel-local")),
        ),
        ("app.token", mint("demo", "app", "istio-ca", Some("app-1"))),
        (
            "web.token",
            mint("shop", "web", "identity.l5d.io", Some("web-0")),
        ),
    ];
    for (name, token) in tokens {
        std::fs::write(dir.join(name), token).unwrap();
    }
    println!(
        "certmint on https://127.0.0.1:{port} (admin {}); files in {}",
        server.admin_addr,
        dir.display()
    );
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let text = certify_metrics(server.admin_addr).await;
    println!("{text}");
}

/// The Certify lines of the metrics page.
async fn certify_metrics(admin: std::net::SocketAddr) -> String {
    let (_, body) = admin_get(admin, "/metrics").await;
    body.lines()
        .filter(|l| l.starts_with("certmint_certify_requests_total{"))
        .collect::<Vec<_>>()
        .join("\n")
}
