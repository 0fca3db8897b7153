//! A token-review cache keyed by SHA-256 of (token, audiences). Positive entries live
//! min(TTL, the token's own `exp` − now), negative ones 5 s; "unavailable" is never
//! cached. Concurrent lookups of one token share a single review.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use moka::Expiry;
use moka::future::Cache;
use serde::Deserialize;

use super::{Authenticated, Authenticator, AuthnError, Token};
use crate::metrics::{Lookup, Metrics};

/// How long a rejection is remembered.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);

#[derive(Clone)]
enum Outcome {
    Authenticated(Authenticated, Duration),
    Rejected(String),
}

struct OutcomeExpiry;

impl Expiry<[u8; 32], Outcome> for OutcomeExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Outcome,
        _now: Instant,
    ) -> Option<Duration> {
        Some(match value {
            Outcome::Authenticated(_, ttl) => *ttl,
            Outcome::Rejected(_) => NEGATIVE_TTL,
        })
    }
}

/// Wraps an authenticator with the cache.
pub struct CachedAuthenticator {
    inner: Arc<dyn Authenticator>,
    cache: Cache<[u8; 32], Outcome>,
    audiences: Vec<u8>,
    ttl: Duration,
    metrics: Arc<Metrics>,
}

impl CachedAuthenticator {
    pub fn new(
        inner: Arc<dyn Authenticator>,
        audiences: &[String],
        ttl: Duration,
        capacity: u64,
        metrics: Arc<Metrics>,
    ) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity)
            .expire_after(OutcomeExpiry)
            .build();
        Self {
            inner,
            cache,
            audiences: audiences.join("\n").into_bytes(),
            ttl,
            metrics,
        }
    }

    fn key(&self, token: &Token) -> [u8; 32] {
        // aws-lc's assembly SHA-256: the portable one of the sha2 crate cost ~3 % of a
        // Certify in the issue 6 profile.
        certmint_core::digest::sha256_parts(&[
            &(token.as_str().len() as u64).to_be_bytes(),
            token.as_str().as_bytes(),
            &self.audiences,
        ])
    }

    async fn review(&self, token: &Token) -> Result<Outcome, AuthnError> {
        match self.inner.authenticate(token).await {
            Ok(sa) => Ok(Outcome::Authenticated(
                sa,
                positive_ttl(token, self.ttl, SystemTime::now()),
            )),
            Err(AuthnError::Unauthenticated(reason)) => Ok(Outcome::Rejected(reason)),
            Err(e) => Err(e),
        }
    }
}

impl Authenticator for CachedAuthenticator {
    fn authenticate<'a>(
        &'a self,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<Authenticated, AuthnError>> {
        Box::pin(async move {
            let entry = self
                .cache
                .entry(self.key(token))
                .or_try_insert_with(self.review(token))
                .await
                .map_err(|e| match &*e {
                    AuthnError::Unavailable(m) => AuthnError::Unavailable(m.clone()),
                    AuthnError::Unauthenticated(m) => AuthnError::Unauthenticated(m.clone()),
                })?;
            let fresh = entry.is_fresh();
            let result = if fresh { Lookup::Miss } else { Lookup::Hit };
            Metrics::count(&self.metrics.token_review_cache, result);
            match entry.into_value() {
                Outcome::Authenticated(a, _) if fresh => Ok(a),
                Outcome::Authenticated(a, _) => Ok(a.from_cache()),
                Outcome::Rejected(reason) => Err(AuthnError::Unauthenticated(reason)),
            }
        })
    }
}

#[derive(Deserialize)]
struct ExpOnly {
    exp: Option<u64>,
}

/// min(ttl, exp − now); zero when the token is already expired. The token was just
/// authenticated, so its claims are read without checking the signature again.
fn positive_ttl(token: &Token, ttl: Duration, now: SystemTime) -> Duration {
    let exp = jsonwebtoken::dangerous::insecure_decode::<ExpOnly>(token.as_str())
        .ok()
        .and_then(|d| d.claims.exp);
    let Some(exp) = exp else { return ttl };
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    ttl.min(Duration::from_secs(exp.saturating_sub(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_with_exp(exp: u64) -> Token {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let t = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"ES256"}"#),
            b64(&format!(r#"{{"exp":{exp}}}"#))
        );
        Token::from_bytes(t.as_bytes()).unwrap()
    }

    /// Proves every token as `shop/web` by local verification after a failed review.
    struct Fallback;

    impl Authenticator for Fallback {
        fn authenticate<'a>(
            &'a self,
            _token: &'a Token,
        ) -> BoxFuture<'a, Result<Authenticated, AuthnError>> {
            use certmint_core::authn::caller::Method;
            let sa = certmint_core::identity::ServiceAccount::new("shop", "web").unwrap();
            Box::pin(async move { Ok(Authenticated::new(sa, Method::LocalFallback, None)) })
        }
    }

    #[tokio::test]
    async fn a_cache_hit_keeps_how_the_token_was_proven() {
        let cached = CachedAuthenticator::new(
            Arc::new(Fallback),
            &["aud".into()],
            Duration::from_secs(60),
            10,
            Arc::new(Metrics::default()),
        );
        let token = token_with_exp(u64::MAX / 2);
        let fresh = cached.authenticate(&token).await.unwrap();
        assert_eq!(
            (fresh.method.as_str(), fresh.cached),
            ("local_fallback", false)
        );
        let hit = cached.authenticate(&token).await.unwrap();
        assert_eq!((hit.method.as_str(), hit.cached), ("local_fallback", true));
    }

    #[test]
    fn positive_ttl_is_capped_by_token_expiry() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ttl = Duration::from_secs(60);
        assert_eq!(
            positive_ttl(&token_with_exp(1_000_030), ttl, now),
            Duration::from_secs(30)
        );
        assert_eq!(positive_ttl(&token_with_exp(1_000_600), ttl, now), ttl);
        assert_eq!(
            positive_ttl(&token_with_exp(999_000), ttl, now),
            Duration::ZERO
        );
        assert_eq!(
            positive_ttl(&Token::from_bytes(b"opaque").unwrap(), ttl, now),
            ttl
        );
    }
}
