//! How local verification and TokenReview combine (issue 11): in `fallback` mode the
//! review's answer is final and a locally verified token is accepted only when no answer
//! can be had (budget exhausted, timeout, 5xx, connection refused); `off` keeps answering
//! UNAVAILABLE; the API server going away after start. The JWT mode's cache.

use certmint_testsupport as common;
use certmint_testsupport::fake_kube;
use certmint_testsupport::local_env;

use std::time::Duration;

use certmint::config::LocalVerification;
use common::*;
use fake_kube::{FakeKube, Fault, Outage, RequestKind};
use local_env::{WAIT, spec, start};
use tonic::Code;

#[tokio::test]
async fn review_answer_is_final_even_when_the_signature_is_good() {
    let env = start(FakeKube::start().await, LocalVerification::Fallback, |_| {}).await;
    env.kube.revoke_pod("shop", "web-0");
    let err = env.certify(&env.kube.mint(&spec())).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert_eq!(env.reviews(), 1);
    assert_eq!(
        env.metric("certmint_token_local_verifications_total{result=\"valid\"}"),
        1.0
    );
    assert_eq!(env.answered_by("local_fallback"), 0.0);
}

#[tokio::test]
async fn fallback_accepts_locally_when_the_review_fails_with_5xx_or_times_out() {
    let env = start(FakeKube::start().await, LocalVerification::Fallback, |c| {
        c.authn.kubernetes.timeout = Duration::from_millis(500);
    })
    .await;
    let k = &env.kube;
    k.set_token_review_fault(Some(Fault::Status(500)));
    env.certify_ok(&k.mint(&spec())).await;
    assert_eq!(env.fallbacks("server_error"), 1.0);
    // 429 reaches certmint at once: kube's client does not retry it behind certmint's back.
    k.set_token_review_fault(Some(Fault::Status(429)));
    env.certify_ok(&k.mint(&spec())).await;
    assert_eq!(
        env.fallbacks("server_error"),
        2.0,
        "the 429 was answered, not retried until the deadline"
    );
    k.set_token_review_fault(None);
    k.set_token_review_latency(Duration::from_secs(3));
    env.certify_ok(&k.mint(&spec())).await;
    assert_eq!(env.fallbacks("timeout"), 1.0);
    assert_eq!(env.answered_by("local_fallback"), 3.0);
    assert_eq!(
        env.reviews(),
        3,
        "each token was offered to TokenReview first"
    );
}

#[tokio::test]
async fn fallback_accepts_locally_when_the_review_budget_is_exhausted() {
    let env = start(FakeKube::start().await, LocalVerification::Fallback, |c| {
        c.authn.kubernetes.max_in_flight = 1;
        c.authn.kubernetes.timeout = Duration::from_secs(20);
    })
    .await;
    let k = env.kube.clone();
    k.set_token_review_latency(Duration::from_secs(5));
    let (addr, first) = (env.server.grpc_addr, k.mint(&spec()));
    let held = tokio::spawn(async move {
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = CsrSpec::for_identity(&local_env::web()).build(&key);
        certify(&mut client(addr).await, &local_env::web(), first, csr).await
    });
    assert!(k.wait_for_requests(RequestKind::TokenReview, 1, WAIT).await);
    // The only review slot is taken: this token is not queued but accepted locally.
    env.certify_ok(&k.mint(&spec())).await;
    assert_eq!(env.fallbacks("budget"), 1.0);
    assert_eq!(env.reviews(), 1);
    held.await.unwrap().expect("the reviewed call succeeds too");
    assert_eq!(env.answered_by("review"), 1.0);
}

#[tokio::test]
async fn outage_switch_fallback_accepts_and_off_answers_unavailable() {
    let kube = FakeKube::start().await;
    let fallback = start(kube.clone(), LocalVerification::Fallback, |_| {}).await;
    let off = start(kube.clone(), LocalVerification::Off, |_| {}).await;
    kube.set_outage(Outage::RefuseConnections);
    fallback.certify_ok(&kube.mint(&spec())).await;
    assert_eq!(fallback.fallbacks("unreachable"), 1.0);
    let err = off.certify(&kube.mint(&spec())).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    kube.set_outage(Outage::ServerErrors);
    fallback.certify_ok(&kube.mint(&spec())).await;
    assert_eq!(fallback.fallbacks("server_error"), 1.0);
    let err = off.certify(&kube.mint(&spec())).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // Service is back: reviews answer again.
    kube.set_outage(Outage::None);
    let before = kube.request_count(RequestKind::TokenReview);
    fallback.certify_ok(&kube.mint(&spec())).await;
    off.certify_ok(&kube.mint(&spec())).await;
    assert_eq!(kube.request_count(RequestKind::TokenReview), before + 2);
}

#[tokio::test]
async fn api_server_going_away_after_start_keeps_first_and_fallback_certifying() {
    let kube = FakeKube::start().await;
    let first = start(kube.clone(), LocalVerification::First, |_| {}).await;
    let fallback = start(kube.clone(), LocalVerification::Fallback, |_| {}).await;
    let tokens: Vec<String> = (0..4).map(|_| kube.mint(&spec())).collect();
    let legacy = kube.mint_legacy_token("shop", "web");
    kube.shutdown();
    first.certify_ok(&tokens[0]).await;
    fallback.certify_ok(&tokens[1]).await;
    assert_eq!(fallback.fallbacks("unreachable"), 1.0);
    // A token that needs a review cannot get one: retryable, never accepted.
    let err = first.certify(&legacy).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // Cached results answer without the API server, too.
    first.certify_ok(&tokens[0]).await;
    assert!(first.server.readiness.check().is_ok(), "still ready");
}

#[tokio::test]
async fn jwt_mode_caches_verified_tokens() {
    install_crypto();
    let files = CaFiles::new();
    let root = common::pki::Ca::root("root");
    let issuer = root.issuer("issuer");
    files.write_anchors(&root.cert_pem);
    files.write_issuer(&issuer.cert_pem, &issuer.key_pem);
    let server = files.start().await;
    let token = files.token_key.token("shop", "web");
    for _ in 0..3 {
        let key = rcgen::KeyPair::generate().unwrap();
        let id = linkerd_name("shop", "web");
        let csr = CsrSpec::for_identity(&id).build(&key);
        certify(&mut client(server.grpc_addr).await, &id, token.clone(), csr)
            .await
            .unwrap();
    }
    let text = server.metrics.encode();
    assert!(
        text.contains("certmint_token_review_cache_total{result=\"hit\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("certmint_token_review_cache_total{result=\"miss\"} 1"),
        "{text}"
    );
}
