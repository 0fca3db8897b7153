//! Kubernetes pod certificates against the fake API server: certmint signs the
//! PodCertificateRequests for its signer name as the kubelet creates them, checks them
//! against its pod watch, denies what it must with the API's reasons, writes each decision
//! once (first writer wins across replicas), and publishes the anchors as a
//! ClusterTrustBundle that the issued chains verify against.

use certmint_testsupport as common;
use certmint_testsupport::fake_kube;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use certmint::app::Server;
use certmint::config::Config;
use certmint_k8s::podcert::ApiVersion;
use common::*;
use fake_kube::{CertificateVersions, FakeKube, Fault, PodCertRequest, RequestKind};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};
use rustls_pki_types::{CertificateDer, UnixTime, pem::PemObject};
use serde_json::Value;
use x509_parser::prelude::*;

const WAIT: Duration = Duration::from_secs(30);
const SIGNER: &str = "certmint.io/spiffe";
const BUNDLE: &str = "certmint.io:spiffe:anchors";

struct Env {
    kube: FakeKube,
    files: CaFiles,
    server: Server,
}

/// Pods: shop/web-0 (web) on node-a, shop/db-0 (db) on node-b.
async fn env_with(tune: impl FnOnce(&mut Config)) -> Env {
    env_serving(CertificateVersions::V1, tune).await
}

/// [`env_with`] on a fake serving the certificates.k8s.io kinds in `versions`.
async fn env_serving(versions: CertificateVersions, tune: impl FnOnce(&mut Config)) -> Env {
    install_crypto();
    let kube = FakeKube::start().await;
    kube.serve_certificate_versions(versions);
    kube.put_pod("shop", "web-0", "web", "node-a");
    kube.put_pod("shop", "db-0", "db", "node-b");
    let files = CaFiles::with_fresh_ca();
    let server = start_replica(&kube, &files, tune).await;
    Env {
        kube,
        files,
        server,
    }
}

async fn env() -> Env {
    env_with(|_| {}).await
}

async fn start_replica(kube: &FakeKube, files: &CaFiles, tune: impl FnOnce(&mut Config)) -> Server {
    let mut c = files.config();
    c.kubeconfig = Some(files.kubeconfig(|p| kube.write_kubeconfig(p)));
    c.pod_certificates.enabled = true;
    c.pod_certificates.pod_wait = Duration::from_secs(1);
    tune(&mut c);
    start_ready(c).await
}

/// A stub CSR as the kubelet makes it: no subject, no extensions, just the key.
fn stub_csr(key: &KeyPair) -> Vec<u8> {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.serialize_request(key).unwrap().der().to_vec()
}

fn request(
    name: &str,
    pod: &str,
    sa: &str,
    node: &str,
    kube: &FakeKube,
    key: &KeyPair,
) -> PodCertRequest {
    PodCertRequest {
        namespace: "shop".into(),
        name: name.into(),
        signer_name: SIGNER.into(),
        pod_name: pod.into(),
        pod_uid: kube.pod_uid("shop", pod),
        service_account: sa.into(),
        node_name: node.into(),
        max_expiration_seconds: None,
        stub_csr: stub_csr(key),
        annotations: BTreeMap::new(),
    }
}

fn web_request(name: &str, e: &Env, key: &KeyPair) -> PodCertRequest {
    request(name, "web-0", "web", "node-a", &e.kube, key)
}

/// Waits until the request is decided; returns (condition type, reason, status).
async fn decided(kube: &FakeKube, name: &str) -> (String, String, Value) {
    let mut out = None;
    eventually(WAIT, &format!("request {name} decided"), async || {
        let Some(o) = kube.pod_certificate_request("shop", name) else {
            return false;
        };
        let Some(c) = o["status"]["conditions"].as_array().and_then(|c| c.first()) else {
            return false;
        };
        out = Some((
            c["type"].as_str().unwrap().to_owned(),
            c["reason"].as_str().unwrap().to_owned(),
            o["status"].clone(),
        ));
        true
    })
    .await;
    out.unwrap()
}

async fn denied_with(kube: &FakeKube, name: &str, reason: &str) -> String {
    let (t, r, status) = decided(kube, name).await;
    assert_eq!((t.as_str(), r.as_str()), ("Denied", reason), "{status}");
    assert!(status["certificateChain"].is_null());
    status["conditions"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates `n` requests for web-0 at once (`PREFIX-0`, …) and waits until each is Issued.
async fn all_issued(e: &Env, prefix: &str, n: usize) {
    let key = KeyPair::generate().unwrap();
    for i in 0..n {
        let name = format!("{prefix}-{i}");
        e.kube
            .create_pod_certificate_request(&web_request(&name, e, &key));
    }
    for i in 0..n {
        let (t, _, status) = decided(&e.kube, &format!("{prefix}-{i}")).await;
        assert_eq!(t, "Issued", "{status}");
    }
}

fn chain_ders(status: &Value) -> Vec<CertificateDer<'static>> {
    let pem = status["certificateChain"].as_str().unwrap();
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.unwrap())
        .collect()
}

/// Verifies the issued chain with rustls-webpki against the ClusterTrustBundle's anchors.
fn verify_against_bundle(status: &Value, bundle_pem: &str) {
    let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bundle_pem.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let anchors: Vec<_> = roots
        .iter()
        .map(|r| webpki::anchor_from_trusted_cert(r).unwrap().to_owned())
        .collect();
    let chain = chain_ders(status);
    let leaf = webpki::EndEntityCert::try_from(&chain[0]).unwrap();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &chain[1..],
        UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .expect("issued chain verifies against the ClusterTrustBundle");
}

fn leaf_facts(status: &Value) -> (Vec<String>, i64, Vec<u8>) {
    let chain = chain_ders(status);
    let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    let names = san
        .value
        .general_names
        .iter()
        .map(|n| format!("{n}"))
        .collect();
    let span = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
    (names, span, leaf.public_key().raw.to_vec())
}

async fn bundle(kube: &FakeKube) -> String {
    let mut pem = String::new();
    eventually(WAIT, "ClusterTrustBundle published", async || {
        match kube.cluster_trust_bundle(BUNDLE) {
            Some(b) => {
                pem = b["spec"]["trustBundle"].as_str().unwrap().to_owned();
                true
            }
            None => false,
        }
    })
    .await;
    pem
}

fn metric(server: &Server, sample: &str) -> f64 {
    server
        .metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test]
async fn issues_spiffe_certificates_for_supported_key_types_and_denies_the_rest() {
    let e = env().await;
    let keys = [
        (
            "p256",
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        ),
        (
            "p384",
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
        ),
        (
            "ed25519",
            KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
        ),
        (
            "rsa3072",
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_3072).unwrap(),
        ),
        (
            "rsa4096",
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_4096).unwrap(),
        ),
    ];
    for (name, key) in &keys {
        e.kube
            .create_pod_certificate_request(&web_request(name, &e, key));
    }
    let p521 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
    e.kube
        .create_pod_certificate_request(&web_request("p521", &e, &p521));
    let bundle_pem = bundle(&e.kube).await;
    for (name, key) in &keys {
        let (t, _, status) = decided(&e.kube, name).await;
        assert_eq!(t, "Issued", "{name}: {status}");
        let (names, span, spki) = leaf_facts(&status);
        assert_eq!(
            names,
            [format!("URI({})", spiffe_id("shop", "web"))],
            "{name}"
        );
        assert_eq!(span, 86_400, "{name}");
        assert_eq!(
            spki,
            rcgen::PublicKeyData::subject_public_key_info(key),
            "{name}"
        );
        verify_against_bundle(&status, &bundle_pem);
    }
    let message = denied_with(&e.kube, "p521", "UnsupportedKeyType").await;
    assert!(message.contains("ECDSAP256"), "{message}");
    assert_eq!(
        metric(
            &e.server,
            "certmint_pod_certificate_requests_total{result=\"issued\"}"
        ),
        5.0
    );
    assert_eq!(
        metric(
            &e.server,
            "certmint_pod_certificate_requests_total{result=\"denied\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn requests_that_do_not_match_their_pod_are_denied_with_the_reason() {
    let e = env().await;
    let key = KeyPair::generate().unwrap();
    let k = &e.kube;
    k.create_pod_certificate_request(&request("other-node", "web-0", "web", "node-b", k, &key));
    k.create_pod_certificate_request(&request("other-sa", "web-0", "db", "node-a", k, &key));
    let mut ghost = request("missing", "ghost-0", "web", "node-a", k, &key);
    ghost.pod_uid = "no-such-uid".into();
    k.create_pod_certificate_request(&ghost);
    let mut replaced = web_request("uid-mismatch", &e, &key);
    replaced.pod_uid = "an-older-pod-uid".into();
    k.create_pod_certificate_request(&replaced);
    let mut annotated = web_request("annotated", &e, &key);
    annotated
        .annotations
        .insert("example.com/flavour".into(), "spicy".into());
    k.create_pod_certificate_request(&annotated);

    for (request, reason, says) in [
        ("other-node", "PodMismatch", "runs on node node-a"),
        ("other-sa", "PodMismatch", "service account web"),
        ("missing", "PodNotFound", "shop/ghost-0"),
        ("uid-mismatch", "PodUIDMismatch", "an-older-pod-uid"),
        (
            "annotated",
            "UnsupportedUserAnnotation",
            "example.com/flavour",
        ),
    ] {
        let message = denied_with(k, request, reason).await;
        assert!(message.contains(says), "{request}: {message}");
    }
}

#[tokio::test]
async fn requests_naming_a_recreated_service_account_or_node_are_denied() {
    let e = env().await;
    let key = KeyPair::generate().unwrap();
    let k = &e.kube;
    // Both were recreated after the kubelet's requests were admitted: the requests carry
    // the old UIDs.
    let sa_uid = k.recreate_service_account("shop", "web");
    let node_uid = k.recreate_node("node-b");
    k.create_pod_certificate_request(&web_request("old-sa", &e, &key));
    k.create_pod_certificate_request(&request("old-node", "db-0", "db", "node-b", k, &key));
    let message = denied_with(k, "old-sa", "ServiceAccountUIDMismatch").await;
    assert!(
        message.contains(&sa_uid) && message.contains("service account shop/web"),
        "{message}"
    );
    let message = denied_with(k, "old-node", "NodeUIDMismatch").await;
    assert!(
        message.contains(&node_uid) && message.contains("node node-b"),
        "{message}"
    );
}

#[tokio::test]
async fn requests_naming_a_deleted_service_account_or_node_are_denied() {
    let e = env().await;
    let key = KeyPair::generate().unwrap();
    let k = &e.kube;
    assert!(k.delete_service_account("shop", "web"));
    assert!(k.delete_node("node-b"));
    k.create_pod_certificate_request(&web_request("no-sa", &e, &key));
    k.create_pod_certificate_request(&request("no-node", "db-0", "db", "node-b", k, &key));
    let message = denied_with(k, "no-sa", "ServiceAccountNotFound").await;
    assert!(message.contains("no service account shop/web"), "{message}");
    denied_with(k, "no-node", "NodeNotFound").await;
    let reads = |object: &str, result: &str| {
        metric(
            &e.server,
            &format!(
                "certmint_pod_certificate_owner_reads_total{{object=\"{object}\",result=\"{result}\"}}"
            ),
        )
    };
    assert_eq!(reads("service_account", "not_found"), 1.0);
    assert_eq!(reads("node", "not_found"), 1.0);
}

#[tokio::test]
async fn a_failed_service_account_read_leaves_the_request_undecided_until_it_succeeds() {
    let e = env().await;
    let k = &e.kube;
    k.set_get_fault("serviceaccounts", Some(Fault::Status(500)));
    let key = KeyPair::generate().unwrap();
    k.create_pod_certificate_request(&web_request("unlucky", &e, &key));
    // certmint reads, fails, and reads again later without deciding anything.
    assert!(
        k.wait_for_requests(RequestKind::ServiceAccountGet, 2, WAIT)
            .await,
        "certmint did not read the service account again"
    );
    let pending = k.pod_certificate_request("shop", "unlucky").unwrap();
    assert!(
        pending["status"].is_null(),
        "decided during the fault: {pending}"
    );
    let errors = metric(
        &e.server,
        "certmint_pod_certificate_owner_reads_total{object=\"service_account\",result=\"error\"}",
    );
    assert!(errors >= 2.0, "{errors}");
    k.set_get_fault("serviceaccounts", None);
    let (t, _, status) = decided(k, "unlucky").await;
    assert_eq!(t, "Issued", "{status}");
    assert_eq!(k.request_count(RequestKind::PodCertificateStatusWrite), 1);
}

#[tokio::test]
async fn a_burst_of_requests_reads_its_service_account_and_node_once() {
    let e = env().await;
    all_issued(&e, "burst", 50).await;
    // Requests that arrive while a read is in flight join it; later ones reuse it while
    // it is fresh (10 s; the burst is spread over the 300 ms claim stagger).
    assert_eq!(e.kube.request_count(RequestKind::ServiceAccountGet), 1);
    assert_eq!(e.kube.request_count(RequestKind::NodeGet), 1);
}

#[tokio::test]
async fn a_request_for_a_pod_the_watch_shows_late_waits_for_it() {
    let e = env_with(|c| c.pod_certificates.pod_wait = Duration::from_secs(20)).await;
    let key = KeyPair::generate().unwrap();
    let req = request("late", "late-0", "web", "node-a", &e.kube, &key);
    e.kube.create_pod_certificate_request(&req);
    tokio::time::sleep(Duration::from_millis(500)).await;
    e.kube.put_pod("shop", "late-0", "web", "node-a");
    let (t, _, status) = decided(&e.kube, "late").await;
    assert_eq!(t, "Issued", "{status}");
}

#[tokio::test]
async fn lifetime_is_the_smallest_limit_and_never_under_an_hour() {
    let e = env_with(|c| c.issuance.lifetime = Duration::from_secs(2 * 3600)).await;
    let key = KeyPair::generate().unwrap();
    let mut short = web_request("max-5400", &e, &key);
    short.max_expiration_seconds = Some(5400);
    e.kube.create_pod_certificate_request(&short);
    e.kube
        .create_pod_certificate_request(&web_request("default-max", &e, &key));
    let (_, _, s) = decided(&e.kube, "max-5400").await;
    assert_eq!(leaf_facts(&s).1, 5400);
    let (_, _, s) = decided(&e.kube, "default-max").await;
    assert_eq!(leaf_facts(&s).1, 7200);
    // beginRefreshAt is half way through, ±5 % of the lifetime.
    let t = |f: &str| {
        s[f].as_str()
            .unwrap()
            .parse::<k8s_openapi::jiff::Timestamp>()
            .unwrap()
            .as_second()
    };
    let at = t("beginRefreshAt") - t("notBefore");
    assert!((3240..=3960).contains(&at), "{at}");

    // A configured lifetime under an hour is raised to the API's floor.
    let e = env_with(|c| c.issuance.lifetime = Duration::from_secs(600)).await;
    e.kube
        .create_pod_certificate_request(&web_request("floor", &e, &key));
    let (_, _, s) = decided(&e.kube, "floor").await;
    assert_eq!(leaf_facts(&s).1, 3600);
}

#[tokio::test]
async fn an_issuer_chain_ending_within_the_hour_fails_the_request() {
    install_crypto();
    let kube = FakeKube::start().await;
    kube.put_pod("shop", "web-0", "web", "node-a");
    let files = CaFiles::new();
    let root = pki::Ca::root("root");
    let now = SystemTime::now();
    let issuer = root.issuer_valid(
        "issuer",
        now - Duration::from_secs(60),
        now + Duration::from_secs(1800),
    );
    files.write_anchors(&root.cert_pem);
    files.write_issuer(&issuer.cert_pem, &issuer.key_pem);
    let _server = start_replica(&kube, &files, |_| {}).await;
    let key = KeyPair::generate().unwrap();
    kube.create_pod_certificate_request(&request(
        "short-chain",
        "web-0",
        "web",
        "node-a",
        &kube,
        &key,
    ));
    let (t, r, _) = decided(&kube, "short-chain").await;
    assert_eq!((t.as_str(), r.as_str()), ("Failed", "IssuerExpiring"));
}

#[tokio::test]
async fn a_status_conflict_is_retried_on_the_fresh_object() {
    let e = env().await;
    e.kube.conflict_next_status_writes(2);
    let key = KeyPair::generate().unwrap();
    e.kube
        .create_pod_certificate_request(&web_request("contested", &e, &key));
    let (t, _, _) = decided(&e.kube, "contested").await;
    assert_eq!(t, "Issued");
    assert_eq!(
        e.kube.request_count(RequestKind::PodCertificateStatusWrite),
        3
    );
    assert_eq!(
        metric(&e.server, "certmint_pod_certificate_status_conflicts_total"),
        2.0
    );
}

#[tokio::test]
async fn two_replicas_decide_each_request_once() {
    let e = env().await;
    let second = start_replica(&e.kube, &e.files, |_| {}).await;
    const N: usize = 40;
    all_issued(&e, "race", N).await;
    // Every request carries one decision, written once: the loser's write conflicted,
    // it re-read the request, found it decided and left it alone (a replica whose watch
    // shows a request only once it is decided never works on it at all).
    let issued = |s: &Server| {
        metric(
            s,
            "certmint_pod_certificate_requests_total{result=\"issued\"}",
        )
    };
    let lost = |s: &Server| {
        metric(
            s,
            "certmint_pod_certificate_requests_total{result=\"decided_elsewhere\"}",
        )
    };
    eventually(WAIT, "both replicas done", async || {
        issued(&e.server) + issued(&second) == N as f64
            && issued(&e.server) + lost(&e.server) <= N as f64
            && issued(&second) + lost(&second) <= N as f64
    })
    .await;
    for o in e.kube.pod_certificate_requests() {
        assert_eq!(o["status"]["conditions"].as_array().unwrap().len(), 1);
    }
    // What first-writer-wins costs: requests the losing replica also worked on.
    eprintln!(
        "replica 1: {} issued, {} decided elsewhere; replica 2: {} issued, {} decided elsewhere; {} status writes for {N} requests",
        issued(&e.server),
        lost(&e.server),
        issued(&second),
        lost(&second),
        e.kube.request_count(RequestKind::PodCertificateStatusWrite),
    );
}

#[tokio::test]
async fn the_trust_bundle_follows_an_anchor_rotation() {
    let e = env().await;
    let first = bundle(&e.kube).await;
    assert_eq!(CertificateDer::pem_slice_iter(first.as_bytes()).count(), 1);
    // A second root joins the bundle (the first step of a rotation).
    let next = pki::Ca::root("next-root");
    let old = std::fs::read_to_string(&e.files.anchors).unwrap();
    e.files.write_anchors(&format!("{old}{}", next.cert_pem));
    eventually(WAIT, "bundle updated with both roots", async || {
        let b = e.kube.cluster_trust_bundle(BUNDLE).unwrap();
        let pem = b["spec"]["trustBundle"].as_str().unwrap();
        CertificateDer::pem_slice_iter(pem.as_bytes()).count() == 2
    })
    .await;
    let b = e.kube.cluster_trust_bundle(BUNDLE).unwrap();
    assert_eq!(b["spec"]["signerName"], SIGNER);
    // A certificate issued now still verifies against the published bundle.
    let key = KeyPair::generate().unwrap();
    e.kube
        .create_pod_certificate_request(&web_request("after-rotation", &e, &key));
    let (_, _, status) = decided(&e.kube, "after-rotation").await;
    verify_against_bundle(&status, b["spec"]["trustBundle"].as_str().unwrap());
}

#[tokio::test]
async fn every_decision_is_in_the_audit_trail_with_the_request_pod_and_node() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let audit_path = path.clone();
    let e = env_with(move |c| {
        c.audit.enabled = true;
        c.audit.replica = Some("r-0".into());
        c.audit.file = Some(certmint_audit::config::FileSinkConfig {
            path: audit_path,
            max_size: 1 << 20,
            keep: 2,
        });
    })
    .await;
    let key = KeyPair::generate().unwrap();
    e.kube
        .create_pod_certificate_request(&web_request("audited", &e, &key));
    let mut wrong = web_request("audited-denied", &e, &key);
    wrong.node_name = "node-b".into();
    e.kube.create_pod_certificate_request(&wrong);
    let (_, _, status) = decided(&e.kube, "audited").await;
    decided(&e.kube, "audited-denied").await;
    let mut records: Vec<Value> = Vec::new();
    eventually(WAIT, "two certify records", async || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        records = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["kind"] == "certify")
            .collect();
        records.len() >= 2
    })
    .await;
    let by_request = |name: &str| {
        records
            .iter()
            .find(|r| r["request"] == format!("shop/{name}"))
            .unwrap_or_else(|| panic!("no record for {name}: {records:?}"))
            .clone()
    };
    let issued = by_request("audited");
    assert_eq!(issued["api"], "pod_certificate");
    assert_eq!(issued["code"], "OK");
    assert_eq!(issued["identity"], spiffe_id("shop", "web"));
    assert_eq!(issued["caller"]["pod_name"], "web-0");
    assert_eq!(issued["caller"]["node"], "node-a");
    assert_eq!(issued["caller"]["method"], "podcertificaterequest");
    let chain = chain_ders(&status);
    let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
    let serial: String = leaf
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(issued["cert"]["serial"], serial);
    let denied = by_request("audited-denied");
    assert_eq!(denied["code"], "PERMISSION_DENIED");
    assert!(
        denied["reason"]
            .as_str()
            .unwrap()
            .starts_with("PodMismatch: "),
        "{denied}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("CERTIFICATE REQUEST") && !text.contains("stubPKCS10Request"));
}

#[tokio::test]
async fn a_request_decided_by_someone_else_is_never_touched() {
    let e = env_with(|c| c.pod_certificates.pod_wait = Duration::from_secs(20)).await;
    let key = KeyPair::generate().unwrap();
    // The pod is not there yet: certmint waits for its watch to show it.
    let req = request("theirs", "late-0", "web", "node-a", &e.kube, &key);
    e.kube.create_pod_certificate_request(&req);
    let waiting = |s: &Server| metric(s, "certmint_pod_certificate_requests_waiting_for_pod");
    eventually(WAIT, "certmint waiting for the pod", async || {
        waiting(&e.server) == 1.0
    })
    .await;
    let denied = serde_json::json!({"conditions": [{
        "type": "Denied", "status": "True", "reason": "ByAnotherSigner",
        "message": "decided elsewhere", "lastTransitionTime": "2026-12-06T00:00:00Z",
    }]});
    e.kube
        .set_pod_certificate_status("shop", "theirs", denied.clone());
    e.kube.put_pod("shop", "late-0", "web", "node-a");
    let elsewhere = |s: &Server| {
        metric(
            s,
            "certmint_pod_certificate_requests_total{result=\"decided_elsewhere\"}",
        )
    };
    eventually(WAIT, "certmint seeing the decision", async || {
        elsewhere(&e.server) == 1.0
    })
    .await;
    // Another request, issued normally, shows the signer is running after it.
    e.kube
        .create_pod_certificate_request(&web_request("after", &e, &key));
    assert_eq!(decided(&e.kube, "after").await.0, "Issued");
    let theirs = e.kube.pod_certificate_request("shop", "theirs").unwrap();
    assert_eq!(theirs["status"], denied);
    assert_eq!(
        e.kube.request_count(RequestKind::PodCertificateStatusWrite),
        1
    );
    assert_eq!(waiting(&e.server), 0.0);
}

#[tokio::test]
async fn requests_wait_for_an_issuer_and_are_issued_once_one_is_loaded() {
    install_crypto();
    let kube = FakeKube::start().await;
    kube.put_pod("shop", "web-0", "web", "node-a");
    let files = CaFiles::new();
    let root = pki::Ca::root("root");
    files.write_anchors(&root.cert_pem);
    let mut c = files.config();
    c.kubeconfig = Some(files.kubeconfig(|p| kube.write_kubeconfig(p)));
    c.pod_certificates.enabled = true;
    let server = Server::start(c).await.unwrap();
    let key = KeyPair::generate().unwrap();
    kube.create_pod_certificate_request(&request("early", "web-0", "web", "node-a", &kube, &key));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let early = kube.pod_certificate_request("shop", "early").unwrap();
    assert!(
        early["status"].is_null(),
        "decided without an issuer: {early}"
    );
    let issuer = root.issuer("issuer");
    files.write_issuer(&issuer.cert_pem, &issuer.key_pem);
    let (t, _, _) = decided(&kube, "early").await;
    assert_eq!(t, "Issued");
    assert_eq!(
        kube.request_count(RequestKind::PodCertificateStatusWrite),
        1
    );
    drop(server);
}

/// `METHOD PATH` (no query) of each request to certificates.k8s.io `VERSION`, discovery
/// included.
fn certificate_requests(kube: &FakeKube, version: &str) -> Vec<String> {
    let prefix = format!("/apis/certificates.k8s.io/{version}");
    kube.requests()
        .into_iter()
        .map(|l| l.split('?').next().unwrap_or_default().to_owned())
        .filter(|l| {
            let path = l.split(' ').nth(1).unwrap_or("");
            path == prefix || path.starts_with(&format!("{prefix}/"))
        })
        .collect()
}

/// Asserts that the status of shop/`request` and the ClusterTrustBundle were written in
/// certificates.k8s.io `version`.
fn wrote_in(kube: &FakeKube, version: &str, request: &str) {
    let sent = certificate_requests(kube, version);
    let base = format!("/apis/certificates.k8s.io/{version}");
    for line in [
        format!("PUT {base}/namespaces/shop/podcertificaterequests/{request}/status"),
        format!("POST {base}/clustertrustbundles"),
    ] {
        assert!(sent.contains(&line), "no {line} in {sent:?}");
    }
}

#[tokio::test]
async fn a_v1beta1_only_cluster_is_served_in_v1beta1_and_the_chain_verifies_against_its_bundle() {
    let e = env_serving(CertificateVersions::V1beta1, |_| {}).await;
    let key = KeyPair::generate().unwrap();
    e.kube
        .create_pod_certificate_request(&web_request("beta", &e, &key));
    let (t, _, status) = decided(&e.kube, "beta").await;
    assert_eq!(t, "Issued", "{status}");
    let bundle_pem = bundle(&e.kube).await;
    verify_against_bundle(&status, &bundle_pem);
    let stored = e.kube.cluster_trust_bundle(BUNDLE).unwrap();
    assert_eq!(stored["apiVersion"], "certificates.k8s.io/v1beta1");
    wrote_in(&e.kube, "v1beta1", "beta");
    // v1 was only asked whether it serves the kinds (it lists CSRs alone here).
    let v1 = certificate_requests(&e.kube, "v1");
    assert!(
        v1.iter().all(|l| l == "GET /apis/certificates.k8s.io/v1"),
        "{v1:?}"
    );
}

#[tokio::test]
async fn auto_picks_v1_when_both_versions_are_served() {
    let e = env_serving(CertificateVersions::Both, |_| {}).await;
    all_issued(&e, "both", 1).await;
    bundle(&e.kube).await;
    wrote_in(&e.kube, "v1", "both-0");
    let beta = certificate_requests(&e.kube, "v1beta1");
    assert!(beta.is_empty(), "v1beta1 used with v1 served: {beta:?}");
}

#[tokio::test]
async fn a_v1beta1_request_without_a_stub_csr_is_denied_and_never_signed() {
    let e = env_serving(CertificateVersions::V1beta1, |c| {
        c.pod_certificates.api_version = ApiVersion::V1beta1;
    })
    .await;
    let key = KeyPair::generate().unwrap();
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    e.kube.create_pkix_pod_certificate_request(
        &web_request("pkix", &e, &key),
        &spki,
        b"signature over the pod UID",
    );
    let message = denied_with(&e.kube, "pkix", "StubCSRRequired").await;
    assert!(message.contains("stubPKCS10Request"), "{message}");
    let issued = "certmint_pod_certificate_requests_total{result=\"issued\"}";
    assert_eq!(metric(&e.server, issued), 0.0);
    // The setting named the version: no discovery, and nothing in v1.
    assert_eq!(certificate_requests(&e.kube, "v1"), Vec::<String>::new());
    let beta = certificate_requests(&e.kube, "v1beta1");
    let discovery = "GET /apis/certificates.k8s.io/v1beta1".to_owned();
    assert!(!beta.contains(&discovery), "{beta:?}");
}
