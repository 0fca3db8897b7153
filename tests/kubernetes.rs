//! certmint as a Kubernetes citizen, against the fake API server: TokenReview
//! authentication, its cache and back-pressure, issuer/anchor watches with Events, and
//! resilience to API faults.

use certmint_testsupport as common;
use certmint_testsupport::fake_kube;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use certmint::app::Server;
use certmint::config::{AuthnMode, Config, LocalVerification, SourceKind};
use common::pki::Ca;
use common::*;
use fake_kube::{FakeKube, Fault, RequestKind};
use rcgen::KeyPair;
use tonic::Code;

const NS: &str = "linkerd";
const SECRET: &str = "linkerd-identity-issuer";
const CONFIGMAP: &str = "linkerd-identity-trust-roots";
const WAIT: Duration = Duration::from_secs(20);

struct Env {
    kube: FakeKube,
    _dir: tempfile::TempDir,
    server: Server,
}

fn put_issuer(kube: &FakeKube, ca: &Ca) {
    let data = BTreeMap::from([
        ("tls.crt".to_owned(), ca.cert_pem.clone().into_bytes()),
        ("tls.key".to_owned(), ca.key_pem.clone().into_bytes()),
    ]);
    kube.put_secret(NS, SECRET, "kubernetes.io/tls", data);
}

fn put_anchors(kube: &FakeKube, pem: &str) {
    kube.put_configmap(
        NS,
        CONFIGMAP,
        BTreeMap::from([("ca-bundle.crt".to_owned(), pem.to_owned())]),
    );
}

/// A config with Kubernetes authn and sources through `kube`'s kubeconfig (written in
/// `dir`). Re-reads are slow (60 s) so that, within the test bounds, only the watch can
/// deliver updates.
fn kube_config(kube: &FakeKube, dir: &std::path::Path) -> Config {
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
    // These tests are about the TokenReview path itself; local verification has its own
    // file (tests/local_verification.rs).
    c.authn.kubernetes.local_verification = LocalVerification::Off;
    c.issuer.source = SourceKind::Kubernetes;
    c.issuer.namespace = NS.into();
    c.issuer.secret = SECRET.into();
    c.issuer.reload_interval = Duration::from_secs(60);
    c.trust_anchors.source = SourceKind::Kubernetes;
    c.trust_anchors.namespace = NS.into();
    c.trust_anchors.configmap = CONFIGMAP.into();
    c.trust_anchors.reload_interval = Duration::from_secs(60);
    c
}

/// A server from [`kube_config`], adjusted by `tweak`, once ready.
async fn start(kube: FakeKube, tweak: impl FnOnce(&mut Config)) -> Env {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let mut c = kube_config(&kube, dir.path());
    tweak(&mut c);
    let server = Server::start(c).await.unwrap();
    let s = &server;
    eventually(WAIT, "ready", async || s.readiness.check().is_ok()).await;
    Env {
        kube,
        _dir: dir,
        server,
    }
}

/// A fake API server holding one root and one issuer.
async fn cluster() -> (FakeKube, Ca, Ca) {
    let kube = FakeKube::start().await;
    let root = Ca::root("root");
    let issuer = root.issuer("issuer one");
    put_anchors(&kube, &root.cert_pem);
    put_issuer(&kube, &issuer);
    (kube, root, issuer)
}

fn web() -> String {
    linkerd_name("shop", "web")
}

async fn certify_with(env: &Env, token: String) -> Result<Vec<Vec<u8>>, tonic::Status> {
    let key = KeyPair::generate().unwrap();
    let mut c = client(env.server.grpc_addr).await;
    let resp = certify(
        &mut c,
        &web(),
        token,
        CsrSpec::for_identity(&web()).build(&key),
    )
    .await?;
    Ok(resp.intermediate_certificates)
}

fn token(env: &Env) -> String {
    env.kube
        .mint_token("shop", "web", &[AUDIENCE], Duration::from_secs(3600))
}

#[tokio::test]
async fn projected_tokens_authenticate_and_bad_ones_do_not() {
    let (kube, _root, issuer) = cluster().await;
    let env = start(kube, |_| {}).await;
    assert_eq!(
        certify_with(&env, token(&env)).await.unwrap(),
        vec![issuer.der.clone()]
    );
    let k = &env.kube;
    let bad = [
        (
            "wrong audience",
            k.mint_token("shop", "web", &["other"], Duration::from_secs(3600)),
        ),
        ("expired", k.mint_expired_token("shop", "web", &[AUDIENCE])),
        (
            "unknown key",
            k.mint_foreign_token("shop", "web", &[AUDIENCE], Duration::from_secs(3600)),
        ),
        ("garbage", "garbage".to_owned()),
    ];
    for (what, t) in bad {
        let err = certify_with(&env, t).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{what}: {err:?}");
    }
    // A token for another service account proves a different identity.
    let other = k.mint_token("shop", "db", &[AUDIENCE], Duration::from_secs(3600));
    assert_eq!(
        certify_with(&env, other).await.unwrap_err().code(),
        Code::PermissionDenied
    );
}

#[tokio::test]
async fn legacy_tokens_need_the_fallback() {
    let (kube, _root, _issuer) = cluster().await;
    let with = start(kube.clone(), |_| {}).await;
    certify_with(&with, kube.mint_legacy_token("shop", "web"))
        .await
        .unwrap();
    let without = start(kube.clone(), |c| c.authn.kubernetes.legacy_fallback = false).await;
    let err = certify_with(&without, kube.mint_legacy_token("shop", "web"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn reviews_are_cached_and_shared() {
    let (kube, _root, _issuer) = cluster().await;
    let env = start(kube, |_| {}).await;
    let reviews = || env.kube.request_count(RequestKind::TokenReview);
    let t = token(&env);
    certify_with(&env, t.clone()).await.unwrap();
    certify_with(&env, t.clone()).await.unwrap();
    assert_eq!(reviews(), 1);

    // 200 concurrent calls with one new token: one review.
    env.kube
        .set_token_review_latency(Duration::from_millis(200));
    let t = env
        .kube
        .mint_token("shop", "web", &[AUDIENCE], Duration::from_secs(3600));
    let calls = (0..200).map(|_| certify_with(&env, t.clone()));
    for r in futures::future::join_all(calls).await {
        r.unwrap();
    }
    assert_eq!(reviews(), 2);
}

#[tokio::test]
async fn an_expired_token_is_not_served_from_the_cache() {
    let (kube, _root, _issuer) = cluster().await;
    kube.set_token_leeway(Duration::ZERO);
    let env = start(kube, |_| {}).await;
    let t = env
        .kube
        .mint_token("shop", "web", &[AUDIENCE], Duration::from_secs(2));
    certify_with(&env, t.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let err = certify_with(&env, t).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(env.kube.request_count(RequestKind::TokenReview), 2);
}

/// Puts the fake API server into a fault.
type Inject = fn(&FakeKube);

#[tokio::test]
async fn api_faults_are_unavailable_within_the_deadline_then_recover() {
    let (kube, _root, _issuer) = cluster().await;
    let env = start(kube, |_| {}).await;
    let faults: [(&str, Inject); 3] = [
        ("500", |k| {
            k.set_token_review_fault(Some(Fault::Status(500)))
        }),
        ("429", |k| {
            k.set_token_review_fault(Some(Fault::Status(429)))
        }),
        ("5 s latency", |k| {
            k.set_token_review_latency(Duration::from_secs(5))
        }),
    ];
    for (what, inject) in faults {
        inject(&env.kube);
        let start = Instant::now();
        let err = certify_with(&env, token(&env)).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{what}: {err:?}");
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{what}: took {:?}",
            start.elapsed()
        );
        env.kube.set_token_review_fault(None);
        env.kube.set_token_review_latency(Duration::ZERO);
        certify_with(&env, token(&env))
            .await
            .unwrap_or_else(|e| panic!("{what}: no recovery: {e:?}"));
    }
}

/// How many times an Event with `reason` was recorded (repeats merge into a series).
fn events_with_reason(kube: &FakeKube, reason: &str) -> u64 {
    kube.events()
        .iter()
        .filter(|e| e["reason"] == reason)
        .map(|e| e["series"]["count"].as_u64().unwrap_or(1))
        .sum()
}

/// Rotates to `next` and waits until Certify is signed by it.
async fn rotate_and_wait(env: &Env, next: &Ca) {
    put_issuer(&env.kube, next);
    eventually(WAIT, "the rotated issuer to sign", async || {
        certify_with(env, token(env)).await.ok() == Some(vec![next.der.clone()])
    })
    .await;
}

/// Puts an invalid issuer and waits for the Warning Event; the old issuer keeps signing.
async fn reject_and_check(env: &Env, bad: &Ca, current: &Ca) {
    let before = events_with_reason(&env.kube, "IssuerUpdateSkipped");
    put_issuer(&env.kube, bad);
    eventually(WAIT, "an IssuerUpdateSkipped Event", async || {
        events_with_reason(&env.kube, "IssuerUpdateSkipped") > before
    })
    .await;
    assert_eq!(
        certify_with(env, token(env)).await.unwrap(),
        vec![current.der.clone()]
    );
}

#[tokio::test]
async fn issuer_rotation_through_the_secret_survives_watch_faults() {
    let (kube, root, one) = cluster().await;
    let env = start(kube, |_| {}).await;
    eventually(WAIT, "an IssuerUpdated Event", async || {
        events_with_reason(&env.kube, "IssuerUpdated") >= 1
    })
    .await;
    let two = root.issuer("issuer two");
    rotate_and_wait(&env, &two).await;
    eventually(WAIT, "a second IssuerUpdated Event", async || {
        env.kube.events().iter().any(|e| {
            e["reason"] == "IssuerUpdated"
                && e["note"].as_str().unwrap_or("").contains("issuer two")
        })
    })
    .await;
    let stranger = Ca::root("stranger").issuer("stranger issuer");
    reject_and_check(&env, &stranger, &two).await;

    env.kube.drop_watches();
    let three = root.issuer("issuer three");
    rotate_and_wait(&env, &three).await;
    reject_and_check(&env, &stranger, &three).await;

    env.kube.fail_next_watch_with_gone();
    env.kube.drop_watches();
    let four = root.issuer("issuer four");
    rotate_and_wait(&env, &four).await;
    reject_and_check(&env, &stranger, &four).await;
    let _ = one;
}

#[tokio::test]
async fn an_event_the_api_server_refuses_is_retried_without_delaying_the_reload() {
    let (kube, root, _one) = cluster().await;
    let env = start(kube, |_| {}).await;
    eventually(WAIT, "the first IssuerUpdated Event", async || {
        events_with_reason(&env.kube, "IssuerUpdated") >= 1
    })
    .await;
    env.kube.fail_next_event_writes(2);
    let two = root.issuer("issuer two");
    rotate_and_wait(&env, &two).await;
    eventually(WAIT, "the IssuerUpdated Event for issuer two", async || {
        env.kube.events().iter().any(|e| {
            e["reason"] == "IssuerUpdated"
                && e["note"].as_str().unwrap_or("").contains("issuer two")
        })
    })
    .await;
}

#[tokio::test]
async fn deleting_the_secret_keeps_the_last_good_issuer() {
    let (kube, _root, one) = cluster().await;
    let env = start(kube, |_| {}).await;
    let before = events_with_reason(&env.kube, "IssuerUpdateSkipped");
    env.kube.delete_secret(NS, SECRET);
    eventually(WAIT, "a Warning Event for the deletion", async || {
        events_with_reason(&env.kube, "IssuerUpdateSkipped") > before
    })
    .await;
    assert_eq!(
        certify_with(&env, token(&env)).await.unwrap(),
        vec![one.der.clone()]
    );
    assert!(
        env.server
            .metrics
            .encode()
            .contains("certmint_issuer_reloads_total{source=\"kubernetes\",result=\"deleted\"} 1")
    );
}

fn reload_count(env: &Server, family: &str, result: &str) -> u64 {
    let needle = format!("certmint_{family}_total{{source=\"kubernetes\",result=\"{result}\"}} ");
    env.metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn absent_secret_and_configmap_count_missing_until_they_appear() {
    install_crypto();
    let kube = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = kube_config(&kube, dir.path());
    c.issuer.reload_interval = Duration::from_millis(200);
    c.trust_anchors.reload_interval = Duration::from_millis(200);
    let server = Server::start(c).await.unwrap();
    let s = &server;
    eventually(WAIT, "several re-reads of the absent objects", async || {
        reload_count(s, "issuer_reloads", "missing") >= 3
            && reload_count(s, "trust_anchor_reloads", "missing") >= 3
    })
    .await;
    assert_eq!(reload_count(s, "issuer_reloads", "deleted"), 0);
    assert_eq!(reload_count(s, "trust_anchor_reloads", "deleted"), 0);

    let root = Ca::root("root");
    put_anchors(&kube, &root.cert_pem);
    put_issuer(&kube, &root.issuer("late issuer"));
    eventually(WAIT, "ready once both appear", async || {
        s.readiness.check().is_ok()
    })
    .await;
    kube.delete_configmap(NS, CONFIGMAP);
    kube.delete_secret(NS, SECRET);
    eventually(WAIT, "one deletion each", async || {
        reload_count(s, "issuer_reloads", "deleted") == 1
            && reload_count(s, "trust_anchor_reloads", "deleted") == 1
    })
    .await;
    let missing = reload_count(s, "issuer_reloads", "missing");
    eventually(
        WAIT,
        "re-reads of the deleted objects count as missing",
        async || reload_count(s, "issuer_reloads", "missing") >= missing + 3,
    )
    .await;
    assert_eq!(reload_count(s, "issuer_reloads", "deleted"), 1);
    assert_eq!(reload_count(s, "trust_anchor_reloads", "deleted"), 1);
    assert!(
        s.readiness.check().is_ok(),
        "the last good issuer and anchors stay"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn trust_anchor_rotation_through_the_configmap() {
    let (kube, old_root, _one) = cluster().await;
    let env = start(kube, |_| {}).await;
    let new_root = Ca::root("new root");
    let new_issuer = new_root.issuer("issuer under the new root");
    put_anchors(
        &env.kube,
        &format!("{}{}", old_root.cert_pem, new_root.cert_pem),
    );
    eventually(WAIT, "the two-root bundle", async || {
        env.server
            .store
            .load()
            .is_some_and(|s| s.anchors.certs().len() == 2)
    })
    .await;
    rotate_and_wait(&env, &new_issuer).await;
}

#[tokio::test]
async fn readiness_waits_for_tokenreview_permission() {
    let (kube, _root, _issuer) = cluster().await;
    kube.set_ssar_allowed(false);
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let c = kube_config(&kube, dir.path());
    let server = Server::start(c).await.unwrap();
    kube.wait_for_requests(RequestKind::SelfSubjectAccessReview, 1, WAIT)
        .await;
    let s = &server;
    eventually(WAIT, "the issuer to load", async || {
        s.store.load().is_some()
    })
    .await;
    assert_eq!(
        server.readiness.check(),
        Err("not allowed to create tokenreviews")
    );
}

#[tokio::test]
async fn a_herd_of_distinct_tokens_is_admitted_within_the_in_flight_limit() {
    const N: usize = 2000;
    const LIMIT: usize = 20;
    let (kube, _root, _issuer) = cluster().await;
    let env = Arc::new(
        start(kube, |c| {
            c.authn.kubernetes.max_in_flight = LIMIT;
            c.authn.kubernetes.qps = 2000;
            c.authn.kubernetes.burst = 200;
        })
        .await,
    );
    env.kube.set_token_review_latency(Duration::from_millis(20));
    let tokens: Vec<String> = (0..N)
        .map(|i| {
            env.kube.mint_token(
                "shop",
                &format!("sa-{i}"),
                &[AUDIENCE],
                Duration::from_secs(3600),
            )
        })
        .collect();
    let channels: Vec<_> =
        futures::future::join_all((0..16).map(|_| client(env.server.grpc_addr))).await;
    let unavailable = Arc::new(AtomicUsize::new(0));
    let start_time = Instant::now();
    let mut tasks = Vec::new();
    for (i, t) in tokens.into_iter().enumerate() {
        let (mut c, unavailable) = (channels[i % channels.len()].clone(), unavailable.clone());
        tasks.push(tokio::spawn(async move {
            let id = linkerd_name("shop", &format!("sa-{i}"));
            let key = KeyPair::generate().unwrap();
            let csr = CsrSpec::for_identity(&id).build(&key);
            loop {
                match certify(&mut c, &id, t.clone(), csr.clone()).await {
                    Ok(_) => return,
                    Err(s) if s.code() == Code::Unavailable => {
                        unavailable.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(s) => panic!("unexpected {:?}: {}", s.code(), s.message()),
                }
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("no hang")
            .unwrap();
    }
    let reviews = env.kube.request_count(RequestKind::TokenReview);
    let max = env.kube.token_review_max_in_flight();
    eprintln!(
        "herd: {N} certified in {:?}, {reviews} TokenReviews, max in flight {max}, {} UNAVAILABLE retried",
        start_time.elapsed(),
        unavailable.load(Ordering::Relaxed)
    );
    assert!(
        max as usize <= LIMIT,
        "API server saw {max} reviews in flight"
    );
    assert!(reviews as usize >= N);
}

#[tokio::test]
async fn a_slow_request_is_answered_unavailable_at_the_request_deadline() {
    let (kube, _root, _issuer) = cluster().await;
    let env = start(kube, |c| {
        c.limits.request_timeout = Duration::from_secs(1);
        c.authn.kubernetes.timeout = Duration::from_secs(30);
    })
    .await;
    env.kube.set_token_review_latency(Duration::from_secs(10));
    let started = Instant::now();
    let err = certify_with(&env, token(&env)).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unavailable, "request timed out; retry")
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}
