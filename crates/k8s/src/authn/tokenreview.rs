//! Authentication through the Kubernetes TokenReview API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kube::Api;
use kube::api::PostParams;

use super::limit::Backpressure;
use super::{Authenticated, Authenticator, AuthnError, Method, PodRef, Token};
use crate::metrics::{Metrics, Review};
use certmint_core::identity::ServiceAccount;

pub use crate::metrics::NoAnswer;

/// How a review ended when it did not authenticate the token.
#[derive(Debug)]
pub enum ReviewError {
    /// The API server answered: not authenticated (or not a usable service account).
    Rejected(String),
    /// No answer could be had.
    NoAnswer(NoAnswer, String),
    /// The API server answered with an error that is neither (e.g. 403): retryable.
    Failed(String),
}

impl From<ReviewError> for AuthnError {
    fn from(e: ReviewError) -> Self {
        match e {
            ReviewError::Rejected(m) => AuthnError::Unauthenticated(m),
            ReviewError::NoAnswer(_, m) | ReviewError::Failed(m) => AuthnError::Unavailable(m),
        }
    }
}

/// Whether a review waits for the back-pressure budget or takes it only if free now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    UpToTimeout,
    No,
}

/// Reviews tokens with the API server.
pub struct TokenReviewer {
    api: Api<TokenReview>,
    audiences: Vec<String>,
    legacy_fallback: bool,
    timeout: Duration,
    limit: Arc<Backpressure>,
    metrics: Arc<Metrics>,
}

impl TokenReviewer {
    pub fn new(
        client: kube::Client,
        audiences: Vec<String>,
        legacy_fallback: bool,
        timeout: Duration,
        limit: Arc<Backpressure>,
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

    /// Reviews `token`; the answer, or why there is none.
    pub async fn check(&self, token: &Token, wait: Wait) -> Result<Authenticated, ReviewError> {
        let mut sent = self.audiences.as_slice();
        let mut status = self.review(token, sent, wait).await?;
        let audience_error = status
            .error
            .as_deref()
            .is_some_and(|e| e.contains("token audiences"));
        if !authenticated(&status) && audience_error && self.legacy_fallback && !sent.is_empty() {
            // Legacy (non-projected) tokens carry no audience: ask once more without one.
            sent = &[];
            status = self.review(token, sent, wait).await?;
        }
        if !authenticated(&status) {
            return Err(ReviewError::Rejected(
                "token not authenticated by the API server".into(),
            ));
        }
        if !sent.is_empty() {
            let granted = status.audiences.as_deref().unwrap_or_default();
            if !granted.iter().any(|a| sent.contains(a)) {
                return Err(ReviewError::Rejected("token audiences do not match".into()));
            }
        }
        let user = status.user.as_ref();
        let username = user.and_then(|u| u.username.as_deref()).unwrap_or_default();
        let account = ServiceAccount::from_username(username).map_err(|_| {
            ReviewError::Rejected("token does not belong to a service account".into())
        })?;
        let extra = |key: &str| {
            let values = user.and_then(|u| u.extra.as_ref()).and_then(|e| e.get(key));
            values.and_then(|v| v.first()).map(String::as_str)
        };
        let pod = PodRef::new(
            extra("authentication.kubernetes.io/pod-name"),
            extra("authentication.kubernetes.io/pod-uid"),
        );
        let node = extra("authentication.kubernetes.io/node-name");
        Ok(Authenticated::new(account, Method::TokenReview, pod).with_node(node))
    }

    /// One TokenReview, within the back-pressure budget and certmint's own deadline
    /// (kube's client would otherwise retry 429s for minutes).
    async fn review(
        &self,
        token: &Token,
        audiences: &[String],
        wait: Wait,
    ) -> Result<TokenReviewStatus, ReviewError> {
        let slot = match wait {
            Wait::UpToTimeout => self.limit.acquire().await,
            Wait::No => self.limit.try_acquire(),
        };
        let _slot = slot.map_err(|e| ReviewError::NoAnswer(NoAnswer::Budget, e.to_string()))?;
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.as_str().to_owned(),
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
            Ok(Err(e)) => {
                let message = format!("TokenReview failed: {}", api_error(&e));
                Err(match no_answer(&e) {
                    Some(why) => ReviewError::NoAnswer(why, message),
                    None => ReviewError::Failed(message),
                })
            }
            Err(_) => Err(ReviewError::NoAnswer(
                NoAnswer::Timeout,
                format!("TokenReview timed out after {:?}", self.timeout),
            )),
        };
        let label = match &outcome {
            Ok(s) if authenticated(s) => Review::Authenticated,
            Ok(_) => Review::Unauthenticated,
            Err(_) => Review::Error,
        };
        Metrics::count(&self.metrics.token_reviews, label);
        outcome
    }
}

impl Authenticator for TokenReviewer {
    fn authenticate<'a>(
        &'a self,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<Authenticated, AuthnError>> {
        Box::pin(async move { Ok(self.check(token, Wait::UpToTimeout).await?) })
    }
}

fn authenticated(s: &TokenReviewStatus) -> bool {
    s.authenticated == Some(true)
}

/// The kube errors that mean "no answer": 5xx, 429, and connection failures.
fn no_answer(e: &kube::Error) -> Option<NoAnswer> {
    match e {
        kube::Error::Api(s) if s.code >= 500 || s.code == 429 => Some(NoAnswer::ServerError),
        kube::Error::HyperError(_) | kube::Error::Service(_) => Some(NoAnswer::Unreachable),
        _ => None,
    }
}

/// A short description of a kube error without request details (which hold the token).
fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("API server answered {} {}", s.code, s.reason),
        kube::Error::HyperError(_) | kube::Error::Service(_) => "API server unreachable".into(),
        _ => "unexpected API error".into(),
    }
}
