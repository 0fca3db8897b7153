//! Builds the token authenticators: one per wire API, each with its own audiences and
//! cache, sharing the TokenReview budget, the service-account key set and the fallback
//! summary (so two APIs never double the load certmint puts on the API server).

use std::sync::Arc;
use std::time::Duration;

use certmint_core::authn::Authenticator;
use certmint_k8s::authn::cache::CachedAuthenticator;
use certmint_k8s::authn::jwt::JwtAuthenticator;
use certmint_k8s::authn::keyset::KeySet;
use certmint_k8s::authn::kubernetes::{FallbackSummary, KubernetesAuthenticator};
use certmint_k8s::authn::limit::Backpressure;
use certmint_k8s::authn::local::LocalVerifier;
use certmint_k8s::authn::projected::Policy;
use certmint_k8s::authn::settings::AuthnConfig;
use certmint_k8s::authn::tokenreview::TokenReviewer;
use certmint_k8s::metrics::Metrics;

use super::Parts;
use crate::config::{AuthnMode, LocalVerification};

/// How often the local-fallback summary line is written (when there is something to say).
const FALLBACK_SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// What every authenticator of this server shares.
pub(super) struct Authenticators {
    config: AuthnConfig,
    kube: Option<kube::Client>,
    metrics: Arc<Metrics>,
    limit: Arc<Backpressure>,
    keys: Option<Arc<KeySet>>,
    fallbacks: Arc<FallbackSummary>,
}

impl Authenticators {
    /// Starts the shared parts (key-set refresh, fallback summary) as tasks of `parts`.
    pub(super) fn start(parts: &mut Parts) -> anyhow::Result<Self> {
        let a = parts.settings.config.authn.clone();
        let (kube, metrics) = (parts.kube.clone(), parts.metrics.kube.clone());
        let shutdown = parts.shutdown.clone();
        let k = &a.kubernetes;
        let limit = Arc::new(Backpressure::new(
            k.max_in_flight,
            k.qps,
            k.burst,
            k.timeout,
            metrics.clone(),
        ));
        let kube_mode = a.mode == AuthnMode::Kubernetes;
        let keys = match (
            kube.as_ref(),
            kube_mode && k.local_verification != LocalVerification::Off,
        ) {
            (Some(client), true) => {
                let keys = Arc::new(KeySet::new(
                    client.clone(),
                    k.issuer.clone(),
                    k.timeout,
                    metrics.clone(),
                ));
                let run = keys.clone().run(k.key_refresh_interval, shutdown.clone());
                parts.spawn(run);
                Some(keys)
            }
            _ => None,
        };
        let fallbacks = Arc::new(FallbackSummary::default());
        if kube_mode {
            let run = fallbacks
                .clone()
                .run(FALLBACK_SUMMARY_INTERVAL, shutdown.clone());
            parts.spawn(run);
            tracing::info!(
                local_verification = k.local_verification.as_str(),
                "Kubernetes token authentication"
            );
        }
        Ok(Self {
            config: a,
            kube,
            metrics,
            limit,
            keys,
            fallbacks,
        })
    }

    /// An authenticator that accepts tokens for `audiences`, with its own review cache.
    pub(super) fn for_audiences(
        &self,
        audiences: &[String],
    ) -> anyhow::Result<Arc<dyn Authenticator>> {
        let a = &self.config;
        let k = &a.kubernetes;
        let inner: Arc<dyn Authenticator> = match (a.mode, &self.kube) {
            (AuthnMode::Jwt, _) => Arc::new(JwtAuthenticator::from_files(
                &a.jwt.keys,
                a.jwt.issuers.clone(),
                audiences.to_vec(),
            )?),
            (AuthnMode::Kubernetes, Some(client)) => {
                let reviewer = TokenReviewer::new(
                    client.clone(),
                    audiences.to_vec(),
                    k.legacy_fallback,
                    k.timeout,
                    self.limit.clone(),
                    self.metrics.clone(),
                );
                let local = self.keys.as_ref().map(|keys| {
                    let policy = Policy {
                        audiences: audiences.to_vec(),
                        skew: k.token_clock_skew,
                        max_lifetime: k.max_token_lifetime,
                    };
                    LocalVerifier::new(keys.clone(), policy, self.metrics.clone())
                });
                Arc::new(KubernetesAuthenticator::new(
                    k.local_verification,
                    local,
                    reviewer,
                    self.fallbacks.clone(),
                    self.metrics.clone(),
                ))
            }
            (AuthnMode::Kubernetes, None) => {
                anyhow::bail!("authn.mode kubernetes needs a Kubernetes client")
            }
        };
        Ok(Arc::new(CachedAuthenticator::new(
            inner,
            audiences,
            k.cache_ttl,
            k.cache_size,
            self.metrics.clone(),
        )))
    }
}
