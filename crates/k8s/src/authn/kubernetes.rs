//! Kubernetes authentication: TokenReview combined with local verification of projected
//! tokens, as `authn.kubernetes.local_verification` says (`off`, `fallback`, `first`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;

use super::local::{LocalVerifier, Verdict};
use super::settings::LocalVerification;
use super::tokenreview::{NoAnswer, ReviewError, TokenReviewer, Wait};
use super::{Authenticated, Authenticator, AuthnError, Method, Token};
use crate::metrics::{AuthnPath, Metrics, PathLabel};

/// TokenReview, with or without local verification in front of it.
pub struct KubernetesAuthenticator {
    mode: LocalVerification,
    local: Option<LocalVerifier>,
    review: TokenReviewer,
    fallbacks: Arc<FallbackSummary>,
    metrics: Arc<Metrics>,
}

impl KubernetesAuthenticator {
    /// `local` is required unless `mode` is `off` (then it is ignored).
    pub fn new(
        mode: LocalVerification,
        local: Option<LocalVerifier>,
        review: TokenReviewer,
        fallbacks: Arc<FallbackSummary>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mode = if local.is_none() {
            LocalVerification::Off
        } else {
            mode
        };
        Self {
            mode,
            local,
            review,
            fallbacks,
            metrics,
        }
    }

    async fn check(&self, token: &Token) -> Result<Authenticated, AuthnError> {
        let verdict = match (&self.local, self.mode) {
            (Some(local), LocalVerification::Fallback | LocalVerification::First) => {
                local.verify(token).await
            }
            _ => Verdict::NotJudged("local verification off"),
        };
        match (verdict, self.mode) {
            (Verdict::Invalid(why), _) => {
                self.answered_by(AuthnPath::LocalRefused);
                Err(AuthnError::Unauthenticated(why.to_owned()))
            }
            (Verdict::Valid(sa), LocalVerification::First) => {
                self.answered_by(AuthnPath::Local);
                Ok(sa)
            }
            (Verdict::Valid(local), _) => self.review_or_fallback(token, local).await,
            (Verdict::NotJudged(_), _) => {
                let answer = self.review.check(token, Wait::UpToTimeout).await;
                self.answered_by(AuthnPath::Review);
                Ok(answer?)
            }
        }
    }

    /// The review's answer is final; only when there is none is the local verdict used.
    async fn review_or_fallback(
        &self,
        token: &Token,
        local: Authenticated,
    ) -> Result<Authenticated, AuthnError> {
        match self.review.check(token, Wait::No).await {
            Ok(reviewed) => {
                self.answered_by(AuthnPath::Review);
                Ok(reviewed)
            }
            Err(ReviewError::NoAnswer(why, _)) => {
                self.answered_by(AuthnPath::LocalFallback);
                self.fallbacks.record(why);
                Metrics::count(&self.metrics.token_local_fallbacks, why);
                Ok(local.with_method(Method::LocalFallback))
            }
            Err(e) => {
                self.answered_by(AuthnPath::Review);
                Err(e.into())
            }
        }
    }

    fn answered_by(&self, path: AuthnPath) {
        self.metrics
            .token_authn_answers
            .get_or_create(&PathLabel { path })
            .inc();
    }
}

impl Authenticator for KubernetesAuthenticator {
    fn authenticate<'a>(
        &'a self,
        token: &'a Token,
    ) -> BoxFuture<'a, Result<Authenticated, AuthnError>> {
        Box::pin(self.check(token))
    }
}

/// Counts local fallbacks between log lines: one summary line per interval, never one per
/// call (a cold start during an outage would otherwise write thousands).
#[derive(Default)]
pub struct FallbackSummary {
    counts: [AtomicU64; 4],
}

impl FallbackSummary {
    fn record(&self, why: NoAnswer) {
        self.counts[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Logs and resets the counts, if any.
    pub fn flush(&self) {
        let take = |why: NoAnswer| self.counts[why as usize].swap(0, Ordering::Relaxed);
        let (budget, timeout, server_error, unreachable) = (
            take(NoAnswer::Budget),
            take(NoAnswer::Timeout),
            take(NoAnswer::ServerError),
            take(NoAnswer::Unreachable),
        );
        let total = budget + timeout + server_error + unreachable;
        if total > 0 {
            tracing::warn!(
                total,
                budget,
                timeout,
                server_error,
                unreachable,
                "tokens accepted on local verification alone: no TokenReview answer could be had"
            );
        }
    }

    /// Flushes every `interval` until shutdown, and once more at the end.
    pub async fn run(self: Arc<Self>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(interval) => self.flush(),
            }
        }
        self.flush();
    }
}
