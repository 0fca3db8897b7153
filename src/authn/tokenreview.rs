//! Authentication through the Kubernetes TokenReview API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kube::Api;
use kube::api::PostParams;

use super::limit::Backpressure;
use super::{Authenticator, AuthnError, Token};
use crate::identity::ServiceAccount;
use crate::metrics::{Metrics, ResultLabel};

/// Reviews tokens with the API server.
pub struct TokenReviewer {
    api: Api<TokenReview>,
    audiences: Vec<String>,
    legacy_fallback: bool,
    timeout: Duration,
    limit: Backpressure,
    metrics: Arc<Metrics>,
}

impl TokenReviewer {
    pub fn new(
        client: kube::Client,
        audiences: Vec<String>,
        legacy_fallback: bool,
        timeout: Duration,
        limit: Backpressure,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            api: Api::all(client),
            audiences,
            legacy_fallback,
            timeout,
            limit,
            metrics,
        }
    }

    async fn check(&self, token: &Token) -> Result<ServiceAccount, AuthnError> {
        let mut sent = self.audiences.as_slice();
        let mut status = self.review(token, sent).await?;
        let audience_error = status
            .error
            .as_deref()
            .is_some_and(|e| e.contains("token audiences"));
        if !authenticated(&status) && audience_error && self.legacy_fallback && !sent.is_empty() {
            // Legacy (non-projected) tokens carry no audience: ask once more without one.
            sent = &[];
            status = self.review(token, sent).await?;
        }
        if !authenticated(&status) {
            return Err(AuthnError::Unauthenticated(
                "token not authenticated by the API server".into(),
            ));
        }
        if !sent.is_empty() {
            let granted = status.audiences.as_deref().unwrap_or_default();
            if !granted.iter().any(|a| sent.contains(a)) {
                return Err(AuthnError::Unauthenticated(
                    "token audiences do not match".into(),
                ));
            }
        }
        let username = status
            .user
            .as_ref()
            .and_then(|u| u.username.as_deref())
            .unwrap_or_default();
        ServiceAccount::from_username(username).map_err(|_| {
            AuthnError::Unauthenticated("token does not belong to a service account".into())
        })
    }

    /// One TokenReview, within the back-pressure budget and certmint's own deadline
    /// (kube's client would otherwise retry 429s for minutes).
    async fn review(
        &self,
        token: &Token,
        audiences: &[String],
    ) -> Result<TokenReviewStatus, AuthnError> {
        let _slot = self.limit.acquire().await?;
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.as_str().to_owned()),
                audiences: (!audiences.is_empty()).then(|| audiences.to_vec()),
            },
            ..TokenReview::default()
        };
        let start = Instant::now();
        let result = tokio::time::timeout(
            self.timeout,
            self.api.create(&PostParams::default(), &review),
        )
        .await;
        self.metrics
            .token_review_duration
            .observe(start.elapsed().as_secs_f64());
        let outcome = match result {
            Ok(Ok(r)) => Ok(r.status.unwrap_or_default()),
            Ok(Err(e)) => Err(AuthnError::Unavailable(format!(
                "TokenReview failed: {}",
                api_error(&e)
            ))),
            Err(_) => Err(AuthnError::Unavailable(format!(
                "TokenReview timed out after {:?}",
                self.timeout
            ))),
        };
        let label = match &outcome {
            Ok(s) if authenticated(s) => "authenticated",
            Ok(_) => "unauthenticated",
            Err(_) => "error",
        };
        self.metrics
            .token_reviews
            .get_or_create(&ResultLabel { result: label })
            .inc();
        outcome
    }
}

impl Authenticator for TokenReviewer {
    fn authenticate<'a>(
        &'a self,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<ServiceAccount, AuthnError>> {
        Box::pin(self.check(token))
    }
}

fn authenticated(s: &TokenReviewStatus) -> bool {
    s.authenticated == Some(true)
}

/// A short description of a kube error without request details (which hold the token).
fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("API server answered {} {}", s.code, s.reason),
        kube::Error::HyperError(_) | kube::Error::Service(_) => "API server unreachable".into(),
        _ => "unexpected API error".into(),
    }
}
