//! The metrics of token authentication and of the issuer/anchor sources, registered into
//! the registry the binary hands over, with every label value pre-created.

use std::time::SystemTime;

use certmint_core::digest::unix_seconds;
use certmint_core::label_enum;
use prometheus_client::encoding::{
    EncodeLabelKey, EncodeLabelSet, EncodeLabelValue, LabelSetEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

label_enum! {
    /// Where an issuer or anchors update came from.
    pub enum Source { Files => "files", Kubernetes => "kubernetes" }
}

label_enum! {
    /// Results of an issuer or anchors reload attempt.
    pub enum Reload {
        Applied => "applied",
        Rejected => "rejected",
        Unchanged => "unchanged",
        Missing => "missing",
        Deleted => "deleted",
        /// Valid, but held by the trust interlock (issue 21).
        Held => "held",
    }
}

label_enum! {
    /// What a TokenReview answered.
    pub enum Review { Authenticated => "authenticated", Unauthenticated => "unauthenticated", Error => "error" }
}

label_enum! {
    /// A review-cache lookup.
    pub enum Lookup { Hit => "hit", Miss => "miss" }
}

label_enum! {
    /// A local verification's verdict on a projected token.
    pub enum Judged { Valid => "valid", Invalid => "invalid", NotJudged => "not_judged" }
}

label_enum! {
    /// Why no TokenReview answer could be had (the cases local fallback may cover); the
    /// `reason` label of `certmint_token_local_fallbacks`.
    pub enum NoAnswer {
        /// No in-flight slot or rate token (back-pressure).
        Budget => "budget",
        /// certmint's own deadline passed.
        Timeout => "timeout",
        /// The API server answered 5xx or 429.
        ServerError => "server_error",
        /// The connection failed (refused, reset, TLS).
        Unreachable => "unreachable",
    }
}

label_enum! {
    /// The path that answered a Kubernetes token authentication.
    pub enum AuthnPath {
        Review => "review",
        Local => "local",
        LocalFallback => "local_fallback",
        LocalRefused => "local_refused",
    }
}

label_enum! {
    /// A fetch of the service-account key set.
    pub enum Fetch { Ok => "ok", Error => "error" }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub source: Source,
    pub result: Reload,
}

/// A `result` label over one of the closed sets above.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ResultLabel<T> {
    pub result: T,
}

impl<T: EncodeLabelValue> EncodeLabelSet for ResultLabel<T> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        let mut label = encoder.encode_label();
        let mut key = label.encode_label_key()?;
        EncodeLabelKey::encode(&"result", &mut key)?;
        let mut value = key.encode_label_value()?;
        self.result.encode(&mut value)?;
        value.finish()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabel {
    pub path: AuthnPath,
}

label_enum! {
    /// Whether a running meshed workload trusts the active issuer's anchor.
    pub enum Trusts { Yes => "yes", No => "no", Unknown => "unknown" }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrustsLabel {
    pub trusts_active: Trusts,
}

label_enum! {
    /// Why a new issuer is held: running workloads do not trust its anchor, or the pod
    /// list is not loaded yet.
    pub enum HoldReason { UntrustedAnchor => "untrusted_anchor", PodsUnknown => "pod_list_loading" }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HoldLabel {
    pub reason: HoldReason,
}

/// One distinct set of trusted anchors (short fingerprints, sorted, comma-separated;
/// `unknown` when certmint cannot read it).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnchorSetLabel {
    pub anchors: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FingerprintLabel {
    pub fingerprint: String,
    pub subject: String,
}

/// The handles; shared behind an `Arc`.
pub struct Metrics {
    pub issuer_expiry: Gauge,
    pub issuer_not_before: Gauge,
    /// 1 (for its reason) while a new issuer is held by the trust interlock, with how
    /// many running workloads do not trust its anchor.
    pub issuer_pending: Family<HoldLabel, Gauge>,
    pub issuer_pending_untrusting: Gauge,
    /// Anchors the last bundle change removed while leaves under them may still live.
    pub anchors_removed_early: Gauge,
    /// Running meshed workloads by whether they trust the active anchor, and by anchor
    /// set (refreshed at each scrape, with the interlock on).
    pub trust_workloads: Family<TrustsLabel, Gauge>,
    pub trust_anchor_sets: Family<AnchorSetLabel, Gauge>,
    pub anchor_expiry: Family<FingerprintLabel, Gauge>,
    pub anchors_earliest_expiry: Gauge,
    pub issuer_reloads: Family<ReloadLabels, Counter>,
    pub anchor_reloads: Family<ReloadLabels, Counter>,
    pub issuer_last_reload: Gauge,
    pub token_reviews: Family<ResultLabel<Review>, Counter>,
    pub token_review_duration: Histogram,
    pub token_review_cache: Family<ResultLabel<Lookup>, Counter>,
    pub token_reviews_in_flight: Gauge,
    pub token_reviews_rejected: Counter,
    pub token_local_verifications: Family<ResultLabel<Judged>, Counter>,
    pub token_local_fallbacks: Family<ResultLabel<NoAnswer>, Counter>,
    pub token_authn_answers: Family<PathLabel, Counter>,
    pub jwks_fetches: Family<ResultLabel<Fetch>, Counter>,
    pub jwks_keys: Gauge,
}

impl Metrics {
    /// The held issuer's reason is `reason` (`None`: nothing is held).
    pub fn set_pending(&self, reason: Option<HoldReason>) {
        for &r in HoldReason::ALL {
            let held = i64::from(Some(r) == reason);
            self.issuer_pending
                .get_or_create(&HoldLabel { reason: r })
                .set(held);
        }
    }

    /// 1 while an issuer is held, for any reason.
    #[cfg(test)]
    pub fn pending(&self) -> i64 {
        HoldReason::ALL
            .iter()
            .map(|&reason| {
                self.issuer_pending
                    .get_or_create(&HoldLabel { reason })
                    .get()
            })
            .sum()
    }

    /// Registers every metric into `r` (the binary's `certmint`-prefixed registry).
    pub fn register(r: &mut Registry) -> Self {
        let m = Self::default();
        r.register(
            "issuer_expiry_timestamp_seconds",
            "Earliest notAfter of the issuer chain (Unix time)",
            m.issuer_expiry.clone(),
        );
        r.register(
            "issuer_not_before_timestamp_seconds",
            "notBefore of the issuer (Unix time)",
            m.issuer_not_before.clone(),
        );
        for &reason in HoldReason::ALL {
            let _ = m.issuer_pending.get_or_create(&HoldLabel { reason });
        }
        r.register(
            "issuer_pending",
            "1 while a new issuer is held by the trust interlock, by reason",
            m.issuer_pending.clone(),
        );
        for &trusts_active in Trusts::ALL {
            let _ = m
                .trust_workloads
                .get_or_create(&TrustsLabel { trusts_active });
        }
        r.register(
            "trust_workloads",
            "Running meshed workloads by whether they trust the active issuer's anchor",
            m.trust_workloads.clone(),
        );
        r.register(
            "trust_anchor_set_workloads",
            "Running meshed workloads per distinct set of trusted anchors",
            m.trust_anchor_sets.clone(),
        );
        r.register(
            "trust_anchors_removed_early",
            "Anchors the last bundle change removed while leaves under them may still be in use",
            m.anchors_removed_early.clone(),
        );
        r.register(
            "issuer_pending_untrusting_workloads",
            "Running workloads that do not trust the anchor of the waiting issuer",
            m.issuer_pending_untrusting.clone(),
        );
        r.register(
            "trust_anchor_expiry_timestamp_seconds",
            "notAfter of each trust anchor (Unix time)",
            m.anchor_expiry.clone(),
        );
        r.register(
            "trust_anchors_earliest_expiry_timestamp_seconds",
            "Earliest notAfter in the anchors bundle (Unix time)",
            m.anchors_earliest_expiry.clone(),
        );
        r.register(
            "issuer_reloads",
            "Issuer reload attempts by source and result",
            m.issuer_reloads.clone(),
        );
        r.register(
            "trust_anchor_reloads",
            "Trust-anchor reload attempts by source and result",
            m.anchor_reloads.clone(),
        );
        r.register(
            "issuer_last_reload_timestamp_seconds",
            "When an issuer was last applied (Unix time)",
            m.issuer_last_reload.clone(),
        );
        r.register(
            "token_reviews",
            "Token reviews sent to the API server by result",
            m.token_reviews.clone(),
        );
        r.register(
            "token_review_duration_seconds",
            "Token review latency",
            m.token_review_duration.clone(),
        );
        r.register(
            "token_review_cache",
            "Token review cache lookups by result",
            m.token_review_cache.clone(),
        );
        r.register(
            "token_reviews_in_flight",
            "Token reviews in flight",
            m.token_reviews_in_flight.clone(),
        );
        r.register(
            "token_reviews_rejected",
            "Token reviews refused for back-pressure",
            m.token_reviews_rejected.clone(),
        );
        r.register(
            "token_local_verifications",
            "Local verifications of projected tokens by verdict (valid, invalid, not_judged)",
            m.token_local_verifications.clone(),
        );
        r.register(
            "token_local_fallbacks",
            "Tokens accepted on local verification because no TokenReview answer could be had, by reason",
            m.token_local_fallbacks.clone(),
        );
        r.register(
            "token_authentications",
            "Kubernetes token authentications (cache misses) by the path that answered",
            m.token_authn_answers.clone(),
        );
        r.register(
            "service_account_key_set_fetches",
            "Fetches of the API server's service-account key set by result",
            m.jwks_fetches.clone(),
        );
        r.register(
            "service_account_keys",
            "Keys in the service-account key set last fetched",
            m.jwks_keys.clone(),
        );
        m.precreate();
        m
    }

    fn precreate(&self) {
        for &source in Source::ALL {
            for &result in Reload::ALL {
                let labels = ReloadLabels { source, result };
                let _ = self.issuer_reloads.get_or_create(&labels);
                let _ = self.anchor_reloads.get_or_create(&labels);
            }
        }
        precreate_results(&self.token_reviews, Review::ALL);
        precreate_results(&self.token_local_verifications, Judged::ALL);
        precreate_results(&self.token_local_fallbacks, NoAnswer::ALL);
        precreate_results(&self.jwks_fetches, Fetch::ALL);
        precreate_results(&self.token_review_cache, Lookup::ALL);
        for &path in AuthnPath::ALL {
            let _ = self.token_authn_answers.get_or_create(&PathLabel { path });
        }
    }

    /// Counts one event labelled `result`.
    pub fn count<T>(family: &Family<ResultLabel<T>, Counter>, result: T)
    where
        T: EncodeLabelValue + Clone + std::hash::Hash + Eq,
    {
        family.get_or_create(&ResultLabel { result }).inc();
    }

    /// Sets a timestamp gauge to `t` in Unix seconds.
    pub fn set_time(gauge: &Gauge, t: SystemTime) {
        gauge.set(unix_seconds(t));
    }
}

fn precreate_results<T>(family: &Family<ResultLabel<T>, Counter>, all: &[T])
where
    T: EncodeLabelValue + Clone + std::hash::Hash + Eq,
{
    for result in all {
        let _ = family.get_or_create(&ResultLabel {
            result: result.clone(),
        });
    }
}

impl Default for Metrics {
    /// Unregistered handles (tests, benchmarks).
    fn default() -> Self {
        Self {
            issuer_expiry: Gauge::default(),
            issuer_not_before: Gauge::default(),
            issuer_pending: Family::default(),
            issuer_pending_untrusting: Gauge::default(),
            anchors_removed_early: Gauge::default(),
            trust_workloads: Family::default(),
            trust_anchor_sets: Family::default(),
            anchor_expiry: Family::default(),
            anchors_earliest_expiry: Gauge::default(),
            issuer_reloads: Family::default(),
            anchor_reloads: Family::default(),
            issuer_last_reload: Gauge::default(),
            token_reviews: Family::default(),
            token_review_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            token_review_cache: Family::default(),
            token_reviews_in_flight: Gauge::default(),
            token_reviews_rejected: Counter::default(),
            token_local_verifications: Family::default(),
            token_local_fallbacks: Family::default(),
            token_authn_answers: Family::default(),
            jwks_fetches: Family::default(),
            jwks_keys: Gauge::default(),
        }
    }
}
