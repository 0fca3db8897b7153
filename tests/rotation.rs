//! The trust interlock (issue 21) against the fake API server: a new issuer under a new
//! root is held while a running Linkerd pod trusts only the old root (its proxy's
//! environment says so), the bundle itself is served at once, and the issuer is activated
//! by itself when that pod is gone.

use certmint_testsupport as common;
use certmint_testsupport::fake_kube;

use std::time::Duration;

use certmint::app::Server;
use common::*;
use fake_kube::FakeKube;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// A meshed pod whose linkerd-proxy was started with `anchors` in its environment.
fn meshed(kube: &FakeKube, name: &str, anchors: &str) {
    let anchors = anchors.to_owned();
    kube.put_pod_with("shop", name, "web", "node-a", move |pod: &mut Value| {
        pod["spec"]["containers"] = json!([
            {"name": "app"},
            {"name": "linkerd-proxy", "env": [
                {"name": "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", "value": anchors},
            ]},
        ]);
    });
}

/// `certmint ARGS`: (exit code, stdout and stderr). (Async: the server runs on this
/// test's runtime.)
async fn certmint(args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_certmint"))
        .args(args)
        .output()
        .await
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// Against the server's admin endpoint.
async fn status(server: &Server) -> (i32, String) {
    let admin = format!("http://{}", server.admin_addr);
    certmint(&["rotation", "status", "--admin", &admin]).await
}

/// Every certmint pod asked through the API server's pod proxy.
async fn status_through_api(kubeconfig: &std::path::Path, admin_port: u16) -> (i32, String) {
    let kubeconfig = kubeconfig.to_str().unwrap();
    let port = admin_port.to_string();
    let args = [
        "rotation",
        "status",
        "--kubernetes",
        "--kubeconfig",
        kubeconfig,
    ];
    certmint(&[&args[..], &["--admin-port", &port]].concat()).await
}

/// An issuer Secret's data (`kubernetes.io/tls`).
const TLS: &str = "kubernetes.io/tls";

fn tls(ca: &pki::Ca) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::collections::BTreeMap::from([
        ("tls.crt".to_owned(), ca.cert_pem.clone().into_bytes()),
        ("tls.key".to_owned(), ca.key_pem.clone().into_bytes()),
    ])
}

/// A running certmint pod, as the chart labels it (the fake proxies to loopback).
fn certmint_pod(kube: &FakeKube, name: &str) {
    kube.put_pod_with("certmint", name, "certmint", "node-a", |pod: &mut Value| {
        pod["metadata"]["labels"] = json!({"app.kubernetes.io/name": "certmint"});
    });
}

/// Waits until `rotation status` exits with `code`; its output then.
async fn status_becomes(server: &Server, code: i32, what: &str) -> String {
    eventually(WAIT, what, async || status(server).await.0 == code).await;
    status(server).await.1
}

async fn metric(server: &Server, series: &str) -> u64 {
    let (_, body) = admin_get(server.admin_addr, "/metrics").await;
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in metrics"))
}

/// A fake API server, certmint's files with the old root and issuer a under it, a new
/// root and the overlap bundle of both.
type Roots = (FakeKube, CaFiles, pki::Ca, pki::Ca, pki::Ca, String);

async fn roots() -> Roots {
    install_crypto();
    let kube = FakeKube::start().await;
    let (files, old, issuer_a) = CaFiles::with_ca("old root", "issuer a");
    let new = pki::Ca::root("new root");
    let overlap = format!("{}{}", old.cert_pem, new.cert_pem);
    (kube, files, old, issuer_a, new, overlap)
}

#[tokio::test]
async fn a_new_root_waits_for_the_last_pod_that_does_not_trust_it() {
    let (kube, files, old, issuer_a, new, overlap) = roots().await;
    meshed(&kube, "web-old", &old.cert_pem);
    meshed(&kube, "web-overlap", &overlap);
    let mut config = files.kubernetes_config(|p| kube.write_kubeconfig(p));
    config.authn.mode = certmint::config::AuthnMode::Jwt;
    let server = start_ready(config).await;
    let store = server.store.clone();
    let active = || store.load().unwrap().issuer.cert().subject.clone();
    assert_eq!(active(), "CN=issuer a");
    let s = &server;
    let text = status_becomes(s, 0, "the pod list is loaded").await;
    assert!(text.contains("2 running meshed workload(s)"), "{text}");
    assert_eq!(
        metric(s, "certmint_trust_workloads{trusts_active=\"yes\"} ").await,
        2
    );

    // The overlap bundle, then an issuer under the new root.
    files.write_anchors(&overlap);
    eventually(WAIT, "the overlap bundle is served", async || {
        s.store.load().unwrap().anchors.certs().len() == 2
    })
    .await;
    // Before the issuer: which pods must restart first.
    let (code, text) = status(s).await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("waiting: 1 workload(s) do not trust the anchor CN=new root")
            && text.contains("shop/web-old"),
        "{text}"
    );
    let issuer_b = new.issuer("issuer b");
    files.write_issuer(&issuer_b.cert_pem, &issuer_b.key_pem);
    eventually(WAIT, "the new issuer is held", async || {
        metric(s, "certmint_issuer_pending{reason=\"untrusted_anchor\"} ").await == 1
    })
    .await;
    assert_eq!(
        metric(s, "certmint_issuer_pending_untrusting_workloads ").await,
        1
    );
    assert_eq!(
        active(),
        "CN=issuer a",
        "never activated while web-old runs"
    );
    let (code, text) = status(s).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("is held until 1 workload(s)"), "{text}");
    assert!(text.contains("shop/web-old"), "{text}");
    assert!(
        text.contains("kubectl -n shop delete pod web-old"),
        "{text}"
    );
    // Certify keeps working, under the old issuer.
    let resp = files.certify_web(server.grpc_addr).await.unwrap();
    assert_eq!(resp.intermediate_certificates[0], issuer_a.der);

    // web-old is replaced by a pod started with the overlap bundle.
    kube.delete_pod("shop", "web-old");
    meshed(&kube, "web-old-2", &overlap);
    eventually(
        WAIT,
        "activated once no running pod refuses it",
        async || s.store.load().unwrap().issuer.cert().subject == "CN=issuer b",
    )
    .await;
    assert_eq!(
        metric(s, "certmint_issuer_pending{reason=\"untrusted_anchor\"} ").await,
        0
    );
    let resp = files.certify_web(server.grpc_addr).await.unwrap();
    assert_eq!(resp.intermediate_certificates[0], issuer_b.der);
    // Next step: the old anchor goes once the leaves signed under issuer a are dead.
    let (code, text) = status(s).await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("phase: new issuer active, old anchor still in the bundle")
            && text.contains("leaves under the old anchor CN=old root")
            && text.contains("may be removed from"),
        "{text}"
    );
    // Dropping it now is unsafe, and said so; putting it back is waiting again.
    files.write_anchors(&new.cert_pem);
    let text = status_becomes(s, 2, "status reports the early removal").await;
    assert!(
        text.contains("UNSAFE: anchor CN=old root") && text.contains("put it back until"),
        "{text}"
    );
    assert_eq!(metric(s, "certmint_trust_anchors_removed_early ").await, 1);
    files.write_anchors(&overlap);
    status_becomes(s, 1, "the old anchor is back").await;

    // The same through the API server: every certmint replica, by its pod.
    let kubeconfig = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig);
    let port = s.admin_addr.port();
    let (code, text) = status_through_api(&kubeconfig, port).await;
    assert_eq!(code, 2, "no certmint pod yet: {text}");
    assert!(
        text.contains("no running certmint pod in namespace certmint"),
        "{text}"
    );
    certmint_pod(&kube, "certmint-0");
    let (code, text) = status_through_api(&kubeconfig, port).await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("leaves under the old anchor CN=old root"),
        "{text}"
    );

    // A pod started later with the old root only cannot talk to anyone now: unsafe.
    meshed(&kube, "web-stale", &old.cert_pem);
    let text = status_becomes(s, 2, "status reports the unsafe state").await;
    assert!(
        text.contains("UNSAFE") && text.contains("shop/web-stale"),
        "{text}"
    );
    // `certmint check` reports the same unsafe state, from the admin endpoint and (with
    // --kubernetes, reading copies of certmint's files from the cluster) through the API.
    let stale = "do not trust the active issuer's anchor (shop/web-stale)";
    let admin = format!("http://{}", s.admin_addr);
    let (anchors, issuer_dir) = (files.anchors.to_str(), files.issuer_dir.to_str());
    let (code, text) = certmint(&[
        "check",
        "--trust-anchors",
        anchors.unwrap(),
        "--issuer-dir",
        issuer_dir.unwrap(),
        "--admin",
        &admin,
    ])
    .await;
    assert!(code == 2 && text.contains(stale), "{text}");
    let (code, text) = status_through_api(&kubeconfig, port).await;
    assert!(code == 2 && text.contains("shop/web-stale"), "{text}");
    kube.put_secret("certmint", "certmint-issuer", TLS, tls(&issuer_b));
    let bundle = std::collections::BTreeMap::from([("ca-bundle.crt".to_owned(), overlap.clone())]);
    kube.put_configmap("certmint", "certmint-trust-anchors", bundle);
    let kubeconfig = kubeconfig.to_str().unwrap();
    let port = port.to_string();
    let (code, text) = certmint(&[
        "check",
        "--kubernetes",
        "--namespace",
        "certmint",
        "--kubeconfig",
        kubeconfig,
        "--admin-port",
        &port,
    ])
    .await;
    assert!(code == 2 && text.contains(stale), "{text}");
    server.shutdown().await.unwrap();
}

/// A Linkerd pod whose proxy reads its bundle from `linkerd-identity-trust-roots` when it
/// starts, started at `started` (whole seconds, as the API reports it).
fn from_config_map(kube: &FakeKube, name: &str, started: std::time::SystemTime) {
    let secs = started
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let at = k8s_openapi::jiff::Timestamp::from_second(secs)
        .unwrap()
        .to_string();
    kube.put_pod_with("linkerd", name, "linkerd-destination", "node-a", move |pod: &mut Value| {
        pod["spec"]["containers"] = json!([{"name": "linkerd-proxy", "env": [
            {"name": "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", "valueFrom": {"configMapKeyRef":
                {"name": "linkerd-identity-trust-roots", "key": "ca-bundle.crt"}}},
        ]}]);
        pod["status"]["containerStatuses"] = json!([{"name": "linkerd-proxy", "ready": true,
            "restartCount": 0, "image": "proxy", "imageID": "", "state": {"running": {"startedAt": at}}}]);
    });
}

/// The anchors certmint says `ns/name` trusts (`None`: unknown, or not listed).
async fn anchors_of(server: &Server, ns: &str, name: &str) -> Option<usize> {
    let (_, body) = admin_get(server.admin_addr, "/trust").await;
    let report: Value = serde_json::from_str(&body).unwrap();
    report["workloads"]
        .as_array()?
        .iter()
        .find(|w| w["namespace"] == ns && w["name"] == name)?["anchors"]
        .as_array()
        .map(Vec::len)
}

#[tokio::test]
async fn config_map_pods_unknown_pods_and_the_override_on_the_record() {
    let (kube, files, old, issuer_a, new, overlap) = roots().await;
    files.write_anchors(&overlap);
    kube.put_secret("certmint", "certmint-issuer", TLS, tls(&issuer_a));
    let roots = |pem: &str| {
        std::collections::BTreeMap::from([("ca-bundle.crt".to_owned(), pem.to_owned())])
    };
    kube.put_configmap(
        "linkerd",
        "linkerd-identity-trust-roots",
        roots(&old.cert_pem),
    );
    let audit_dir = tempfile::tempdir().unwrap();
    let audit_file = audit_dir.path().join("audit.jsonl");
    let mut config = files.kubernetes_config(|p| kube.write_kubeconfig(p));
    config.authn.mode = certmint::config::AuthnMode::Jwt;
    config.issuer.source = certmint::config::SourceKind::Kubernetes;
    config.issuer.namespace = "certmint".into();
    config.issuer.secret = "certmint-issuer".into();
    config.audit.enabled = true;
    config.audit.replica = Some("certmint-0".into());
    config.audit.file = Some(certmint_audit::config::FileSinkConfig {
        path: audit_file.clone(),
        max_size: 1 << 20,
        keep: 2,
    });
    let server = start_ready(config).await;
    let s = &server;
    let active = || s.store.load().unwrap().issuer.cert().subject.clone();
    assert_eq!(active(), "CN=issuer a");

    // A proxy that started after certmint saw the ConfigMap (old root) trusts the old
    // root only, also after the ConfigMap changes. (Its start is now, in whole seconds:
    // known once that is after certmint first read the ConfigMap, and before the change.)
    let now = std::time::SystemTime::now;
    let later = || now() + Duration::from_secs(1);
    eventually(WAIT, "cm-1 is known to trust the old root", async || {
        from_config_map(&kube, "cm-1", now());
        anchors_of(s, "linkerd", "cm-1").await == Some(1)
    })
    .await;
    kube.put_configmap("linkerd", "linkerd-identity-trust-roots", roots(&overlap));
    // One started after the change reads the overlap.
    eventually(WAIT, "cm-2 is known to trust the overlap", async || {
        from_config_map(&kube, "cm-2", later());
        anchors_of(s, "linkerd", "cm-2").await == Some(2)
    })
    .await;
    assert_eq!(anchors_of(s, "linkerd", "cm-1").await, Some(1));

    // The new issuer is held for cm-1; a proxy without the variable is unknown and holds
    // it too.
    let issuer_b = new.issuer("issuer b");
    kube.put_secret("certmint", "certmint-issuer", TLS, tls(&issuer_b));
    let untrusting = "certmint_issuer_pending_untrusting_workloads ";
    eventually(WAIT, "issuer b is held for cm-1", async || {
        metric(s, untrusting).await == 1
    })
    .await;
    kube.put_pod_with("shop", "no-env", "web", "node-a", |pod: &mut Value| {
        pod["spec"]["containers"] = json!([{"name": "linkerd-proxy"}]);
    });
    eventually(WAIT, "no-env holds it too", async || {
        metric(s, untrusting).await == 2
    })
    .await;
    let text = status(s).await.1;
    assert!(
        text.contains("cannot tell what 1 workload(s) trust") && text.contains("shop/no-env"),
        "{text}"
    );
    kube.delete_pod("linkerd", "cm-1");
    eventually(WAIT, "only no-env holds it", async || {
        metric(s, untrusting).await == 1
    })
    .await;
    assert_eq!(active(), "CN=issuer a");

    // The override: activated, said, and on the record.
    let annotation = "certmint.io/activate-untrusted-issuer";
    kube.annotate_secret("certmint", "certmint-issuer", annotation, Some("true"));
    eventually(WAIT, "the override activates issuer b", async || {
        active() == "CN=issuer b"
    })
    .await;
    kube.annotate_secret("certmint", "certmint-issuer", annotation, None);
    let said = kube.events().iter().any(|e| {
        e.to_string()
            .contains("override: issuer CN=issuer b activated although 1 running workload(s)")
    });
    assert!(said, "{:#?}", kube.events());
    eventually(WAIT, "the override is on the record", async || {
        std::fs::read_to_string(&audit_file).is_ok_and(|t| t.contains("\"kind\":\"override\""))
    })
    .await;
    let text = std::fs::read_to_string(&audit_file).unwrap();
    let record: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["kind"] == "override")
        .unwrap();
    assert_eq!(record["issuer"], "CN=issuer b");
    let serial = s.store.load().unwrap().issuer.cert().serial_hex.clone();
    assert_eq!(record["serial"], serial.as_str());
    assert_eq!(
        (record["untrusting"].as_u64(), &record["sample"]),
        (Some(1), &json!(["shop/no-env"]))
    );
    server.shutdown().await.unwrap();
}
