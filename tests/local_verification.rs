//! Local verification of projected service-account tokens (issue 11) against the fake API
//! server: each local check on its own, RS256 and ES256, signing-key rotation, an
//! unknown-kid flood, and the tokens left to TokenReview.

use certmint_testsupport::fake_kube;
use certmint_testsupport::local_env;

use std::time::{Duration, Instant};

use certmint::config::LocalVerification;
use fake_kube::{FakeKube, KeyAlg, RequestKind, TokenSpec};
use local_env::{Env, spec, start};
use serde_json::{Value, json};
use tonic::Code;

fn edited(edit: fn(&mut Value)) -> TokenSpec {
    let mut s = spec();
    s.edit = Some(edit);
    s
}

async fn refused(env: &Env, token: &str, reason: &str) {
    let err = env.certify(token).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{reason}: {err:?}");
    assert!(err.message().contains(reason), "{reason}: {err:?}");
}

/// An HS256 token naming the fake's key id: HMAC is never accepted.
fn hmac_token(kid: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.into());
    let claims = json!({"iss": fake_kube::ISSUER, "aud": ["identity.l5d.io"]});
    let key = jsonwebtoken::EncodingKey::from_secret(b"public key bytes");
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test]
async fn each_local_check_refuses_without_a_token_review() {
    let env = start(FakeKube::start().await, LocalVerification::Fallback, |_| {}).await;
    let k = &env.kube;
    let mut wrong_audience = spec();
    wrong_audience.audiences = vec!["other".into()];
    let mut expired = spec();
    expired.age = Duration::from_secs(7200);
    let mut bad_signature = spec();
    bad_signature.foreign_key = true;
    bad_signature.kid = Some(k.signing_kid());
    let mut unknown_key = spec();
    unknown_key.foreign_key = true;
    let cases = [
        (k.mint(&wrong_audience), "token audiences do not match"),
        (k.mint(&expired), "token has expired"),
        (
            k.mint(&edited(|v| {
                v["nbf"] = json!(v["iat"].as_i64().unwrap() + 600)
            })),
            "token is not valid yet",
        ),
        (
            k.mint(&edited(|v| {
                v["iat"] = json!(v["iat"].as_i64().unwrap() + 600)
            })),
            "token is issued in the future",
        ),
        (k.mint(&bad_signature), "token signature does not verify"),
        (k.mint(&unknown_key), "token signed by an unknown key"),
        (
            k.mint(&edited(|v| {
                v["kubernetes.io"]["serviceaccount"]["uid"] = json!("")
            })),
            "token lacks its service account uid",
        ),
        (
            k.mint(&edited(|v| v["kubernetes.io"]["pod"]["uid"] = Value::Null)),
            "token names a pod without name or uid",
        ),
        (
            k.mint(&edited(|v| {
                v["kubernetes.io"]
                    .as_object_mut()
                    .unwrap()
                    .remove("namespace");
            })),
            "token lacks its namespace",
        ),
        (
            k.mint(&edited(|v| {
                v["sub"] = json!("system:serviceaccount:shop:admin")
            })),
            "token subject disagrees with its service-account claims",
        ),
        (hmac_token(&k.signing_kid()), "token algorithm not allowed"),
        ("not-a-jwt".to_owned(), "token is not a JWT"),
    ];
    for (token, reason) in &cases {
        refused(&env, token, reason).await;
    }
    assert_eq!(env.reviews(), 0, "no refused token may cost a TokenReview");
    assert_eq!(env.answered_by("local_refused"), cases.len() as f64);
    // The same claims, unedited, pass locally and are then reviewed (fallback mode).
    env.certify_ok(&k.mint(&spec())).await;
    assert_eq!(env.reviews(), 1);
    assert_eq!(env.answered_by("review"), 1.0);
}

#[tokio::test]
async fn first_mode_verifies_rs256_and_es256_and_follows_key_rotation() {
    let env = start(FakeKube::start().await, LocalVerification::First, |c| {
        c.authn.kubernetes.key_refresh_interval = Duration::from_secs(3600);
    })
    .await;
    let k = &env.kube;
    env.certify_ok(&k.mint(&spec())).await;
    let es256_old = k.mint(&spec());
    // A new RS256 key signs from now on; the ES256 key stays published.
    k.rotate_signing_key(KeyAlg::Rs256, false);
    let fetches = k.request_count(RequestKind::Jwks);
    env.certify_ok(&k.mint(&spec())).await;
    assert_eq!(
        k.request_count(RequestKind::Jwks),
        fetches + 1,
        "unknown kid: one fetch"
    );
    env.certify_ok(&es256_old).await;
    let rs256_old = k.mint(&spec());
    // Another rotation retires every older key.
    k.rotate_signing_key(KeyAlg::Es256, true);
    env.certify_ok(&k.mint(&spec())).await;
    refused(&env, &rs256_old, "token signed by an unknown key").await;
    assert_eq!(env.reviews(), 0, "first mode reviews nothing it can judge");
    assert_eq!(env.answered_by("local"), 4.0);
}

#[tokio::test]
async fn tokens_not_judged_locally_are_reviewed() {
    let env = start(FakeKube::start().await, LocalVerification::First, |_| {}).await;
    let k = &env.kube;
    let mut long_lived = spec();
    long_lived.ttl = Duration::from_secs(72 * 3600);
    env.certify_ok(&k.mint(&long_lived)).await;
    assert_eq!(env.reviews(), 1, "over-long lifetime goes to TokenReview");
    env.certify_ok(&k.mint(&edited(|v| {
        v.as_object_mut().unwrap().remove("exp");
    })))
    .await;
    assert_eq!(env.reviews(), 2, "no exp goes to TokenReview");
    // Legacy tokens: one review with the audience, one without (legacy_fallback).
    env.certify_ok(&k.mint_legacy_token("shop", "web")).await;
    assert_eq!(env.reviews(), 4, "legacy token goes to TokenReview");
    let foreign_issuer = k.mint(&edited(|v| v["iss"] = json!("https://elsewhere")));
    let err = env.certify(&foreign_issuer).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(
        env.reviews(),
        5,
        "unknown issuer goes to TokenReview, which refuses"
    );
    assert_eq!(env.answered_by("local"), 0.0);
}

#[tokio::test]
async fn unknown_kid_flood_stays_within_one_key_fetch_per_second() {
    let env = start(FakeKube::start().await, LocalVerification::Fallback, |c| {
        c.authn.kubernetes.key_refresh_interval = Duration::from_secs(3600);
    })
    .await;
    let k = &env.kube;
    let fetches = k.request_count(RequestKind::Jwks);
    let t0 = Instant::now();
    let calls = (0..200).map(|i| {
        let mut s = spec();
        s.foreign_key = true;
        s.kid = Some(format!("unknown-{i}"));
        let token = k.mint(&s);
        let env = &env;
        async move { env.certify(&token).await }
    });
    let results = futures::future::join_all(calls).await;
    let elapsed = t0.elapsed().as_secs_f64();
    for r in &results {
        assert_eq!(r.as_ref().unwrap_err().code(), Code::Unauthenticated);
    }
    let made = k.request_count(RequestKind::Jwks) - fetches;
    assert!(made >= 1, "an unknown kid must trigger a fetch");
    assert!(
        made as f64 <= elapsed + 1.0,
        "{made} key set fetches in {elapsed:.1} s for 200 unknown kids"
    );
    assert_eq!(env.reviews(), 0);
}
