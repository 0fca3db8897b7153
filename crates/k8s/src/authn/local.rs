//! Local verification of projected service-account tokens against the API server's
//! published keys. A token is judged valid, invalid, or left to TokenReview.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::jws;
use super::keyset::{KeySet, Keys, KidLookup};
use super::projected::{self, Claims, Policy};
use super::{Authenticated, Method, Token};
use crate::metrics::{Judged, Metrics};

/// The local judgement of a token.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Signature, issuer, audience, time window and claims all check out.
    Valid(Authenticated),
    /// The token fails a check that TokenReview would fail too: refuse it.
    Invalid(&'static str),
    /// Cannot be judged locally (legacy, long-lived, other issuer, no keys): review it.
    NotJudged(&'static str),
}

/// Verifies tokens with the key set and the policy.
pub struct LocalVerifier {
    keys: Arc<KeySet>,
    policy: Policy,
    metrics: Arc<Metrics>,
}

impl LocalVerifier {
    pub fn new(keys: Arc<KeySet>, policy: Policy, metrics: Arc<Metrics>) -> Self {
        Self {
            keys,
            policy,
            metrics,
        }
    }

    pub async fn verify(&self, token: &Token) -> Verdict {
        let verdict = self.judge(token.as_str()).await;
        let result = match verdict {
            Verdict::Valid(_) => Judged::Valid,
            Verdict::Invalid(_) => Judged::Invalid,
            Verdict::NotJudged(_) => Judged::NotJudged,
        };
        Metrics::count(&self.metrics.token_local_verifications, result);
        verdict
    }

    async fn judge(&self, token: &str) -> Verdict {
        let Ok(header) = jws::header(token) else {
            return Verdict::Invalid("token is not a JWT");
        };
        if header.forbidden {
            return Verdict::Invalid("token algorithm not allowed");
        }
        let Some(claims) = projected::peek(token) else {
            return Verdict::Invalid("token is not a JWT");
        };
        let seen = self.keys.generation();
        let Some(keys) = self.keys.current() else {
            return Verdict::NotJudged("service-account keys not loaded");
        };
        if let Some(why) = claims.not_judgeable(&keys.issuer, &self.policy) {
            return Verdict::NotJudged(why);
        }
        let Some(alg) = header.alg else {
            return Verdict::NotJudged("token algorithm not verified locally");
        };
        let keys = match header.kid.as_deref() {
            Some(kid) if !keys.has_kid(kid) => match self.keys.lookup_kid(kid, seen).await {
                KidLookup::Known(k) => k,
                KidLookup::Unknown => return Verdict::Invalid("token signed by an unknown key"),
                KidLookup::FetchFailed => {
                    return Verdict::NotJudged("key set could not be refreshed");
                }
            },
            _ => keys,
        };
        match verified_claims(token, &keys, alg, header.kid.as_deref()) {
            Some(verified) => match verified.check(&self.policy, unix_now()) {
                Ok(sa) => {
                    let caller = Authenticated::new(sa, Method::Local, verified.pod());
                    Verdict::Valid(caller.with_node(verified.node()))
                }
                Err(why) => Verdict::Invalid(why),
            },
            None => Verdict::Invalid("token signature does not verify"),
        }
    }
}

/// The claims of the first key (same `kid`, or any when the token names none) whose
/// signature check passes. The claims checked are the verified ones, not the peeked ones.
fn verified_claims(token: &str, keys: &Keys, alg: jws::Alg, kid: Option<&str>) -> Option<Claims> {
    keys.keys
        .iter()
        .filter(|k| k.alg == alg && (kid.is_none() || k.kid.as_deref() == kid))
        .find_map(|k| jws::verify::<Claims>(token, k).ok())
}

fn unix_now() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
