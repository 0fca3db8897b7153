//! Back-pressure towards the API server: a bound on reviews in flight and a QPS/burst
//! budget. A caller that cannot get both before its wait runs out is refused (UNAVAILABLE,
//! retryable) rather than queued forever.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::AuthnError;
use crate::metrics::Metrics;

/// Admission control for token reviews.
pub struct Backpressure {
    in_flight: Semaphore,
    rate: DefaultDirectRateLimiter,
    max_wait: Duration,
    metrics: Arc<Metrics>,
}

/// Held while a review is in flight.
pub struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
    metrics: &'a Metrics,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.metrics.token_reviews_in_flight.dec();
    }
}

impl Backpressure {
    pub fn new(
        max_in_flight: usize,
        qps: u32,
        burst: u32,
        max_wait: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        let qps = NonZeroU32::new(qps).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self {
            in_flight: Semaphore::new(max_in_flight.max(1)),
            rate: RateLimiter::direct(Quota::per_second(qps).allow_burst(burst)),
            max_wait,
            metrics,
        }
    }

    /// Waits (at most `max_wait`) for an in-flight slot and a rate token.
    pub async fn acquire(&self) -> Result<Slot<'_>, AuthnError> {
        let deadline = tokio::time::Instant::now() + self.max_wait;
        let permit = match tokio::time::timeout_at(deadline, self.in_flight.acquire()).await {
            Ok(Ok(p)) => p,
            _ => return Err(self.refuse("too many token reviews in flight")),
        };
        if tokio::time::timeout_at(deadline, self.rate.until_ready())
            .await
            .is_err()
        {
            return Err(self.refuse("token review rate budget exhausted"));
        }
        self.metrics.token_reviews_in_flight.inc();
        Ok(Slot {
            _permit: permit,
            metrics: &self.metrics,
        })
    }

    /// Takes a slot and a rate token only if both are free now (local fallback: a token
    /// already verified locally never queues for the API server's budget).
    pub fn try_acquire(&self) -> Result<Slot<'_>, AuthnError> {
        let Ok(permit) = self.in_flight.try_acquire() else {
            return Err(self.refuse("too many token reviews in flight"));
        };
        if self.rate.check().is_err() {
            return Err(self.refuse("token review rate budget exhausted"));
        }
        self.metrics.token_reviews_in_flight.inc();
        Ok(Slot {
            _permit: permit,
            metrics: &self.metrics,
        })
    }

    fn refuse(&self, why: &str) -> AuthnError {
        self.metrics.token_reviews_rejected.inc();
        AuthnError::Unavailable(why.to_owned())
    }
}
