//! Every metric certmint exports, registered in one place with label values pre-created
//! so dashboards show zeros rather than gaps.

use std::time::SystemTime;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::ca::cert::unix_seconds;

/// Results a Certify call can end with (gRPC code names, snake case).
pub const CERTIFY_RESULTS: &[&str] = &[
    "ok",
    "invalid_argument",
    "permission_denied",
    "unauthenticated",
    "unavailable",
    "internal",
];
/// Results of an issuer or anchors reload attempt.
pub const RELOAD_RESULTS: &[&str] = &["applied", "rejected", "unchanged", "missing", "deleted"];
/// Why a gRPC connection was closed by certmint before it carried a call.
pub const CONNECTION_DROP_REASONS: &[&str] = &[
    "limit",
    "handshake_timeout",
    "handshake_failed",
    "preface_timeout",
];
/// Results of a token review.
pub const REVIEW_RESULTS: &[&str] = &["authenticated", "unauthenticated", "error"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertifyLabels {
    pub api: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub source: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// Which path answered a token authentication (issue 11).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabel {
    pub path: &'static str,
}

/// Paths that can answer a Kubernetes token authentication.
pub const AUTHN_PATHS: &[&str] = &["review", "local", "local_fallback", "local_refused"];
/// Why a locally verified token was accepted without a review.
pub const FALLBACK_REASONS: &[&str] = &["budget", "timeout", "server_error", "unreachable"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FingerprintLabel {
    pub fingerprint: String,
    pub subject: String,
}

/// The metric handles; cheap to share behind an `Arc`.
pub struct Metrics {
    pub certify_requests: Family<CertifyLabels, Counter>,
    pub certify_duration: Histogram,
    pub certificates_issued: Counter,
    pub issuer_expiry: Gauge,
    pub issuer_not_before: Gauge,
    pub anchor_expiry: Family<FingerprintLabel, Gauge>,
    pub anchors_earliest_expiry: Gauge,
    pub issuer_reloads: Family<ReloadLabels, Counter>,
    pub anchor_reloads: Family<ReloadLabels, Counter>,
    pub issuer_last_reload: Gauge,
    pub serving_cert_expiry: Gauge,
    pub token_reviews: Family<ResultLabel, Counter>,
    pub token_review_duration: Histogram,
    pub token_review_cache: Family<ResultLabel, Counter>,
    pub token_reviews_in_flight: Gauge,
    pub token_reviews_rejected: Counter,
    pub token_local_verifications: Family<ResultLabel, Counter>,
    pub token_local_fallbacks: Family<ResultLabel, Counter>,
    pub token_authn_answers: Family<PathLabel, Counter>,
    pub jwks_fetches: Family<ResultLabel, Counter>,
    pub jwks_keys: Gauge,
    pub ready: Gauge,
    /// Tokio tasks alive in the serving runtime, refreshed at each scrape.
    pub runtime_alive_tasks: Gauge,
    pub grpc_connections_open: Gauge,
    pub grpc_connections_dropped: Family<ReasonLabel, Counter>,
    pub grpc_accept_errors: Counter,
    pub grpc_malformed_requests: Counter,
    pub audit_records: Family<ResultLabel, Counter>,
    pub audit_unrecorded: Counter,
    pub audit_sink_up: Gauge,
    registry: Registry,
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Self::unregistered();
        let mut r = Registry::with_prefix("certmint");
        r.register(
            "certify_requests",
            "Certify calls by API and result",
            m.certify_requests.clone(),
        );
        r.register(
            "certify_duration_seconds",
            "Certify latency",
            m.certify_duration.clone(),
        );
        r.register(
            "certificates_issued",
            "Leaf certificates issued",
            m.certificates_issued.clone(),
        );
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
            "serving_certificate_expiry_timestamp_seconds",
            "notAfter of the gRPC serving certificate (Unix time)",
            m.serving_cert_expiry.clone(),
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
        r.register(
            "ready",
            "1 when a valid issuer and anchors are loaded and serving",
            m.ready.clone(),
        );
        r.register(
            "runtime_alive_tasks",
            "Tokio tasks alive in the server runtime (sampled at each scrape)",
            m.runtime_alive_tasks.clone(),
        );
        r.register(
            "grpc_connections_open",
            "Open gRPC connections, handshakes included",
            m.grpc_connections_open.clone(),
        );
        r.register(
            "grpc_connections_dropped",
            "gRPC connections closed before carrying a call, by reason",
            m.grpc_connections_dropped.clone(),
        );
        r.register(
            "grpc_accept_errors",
            "Failed accepts on the gRPC port (e.g. out of file descriptors)",
            m.grpc_accept_errors.clone(),
        );
        r.register(
            "grpc_malformed_requests",
            "gRPC requests whose protobuf did not decode (answered INVALID_ARGUMENT)",
            m.grpc_malformed_requests.clone(),
        );
        r.register(
            "audit_records",
            "Audit records by result (written, failed to write)",
            m.audit_records.clone(),
        );
        r.register(
            "audit_unrecorded_certificates",
            "Certificates issued without an audit record (audit.on_failure: continue)",
            m.audit_unrecorded.clone(),
        );
        r.register(
            "audit_sink_up",
            "1 when the last audit write succeeded on every sink",
            m.audit_sink_up.clone(),
        );
        m.registry = r;
        m.precreate();
        m
    }

    fn unregistered() -> Self {
        let latency = || Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        Self {
            certify_requests: Family::default(),
            certify_duration: latency(),
            certificates_issued: Counter::default(),
            issuer_expiry: Gauge::default(),
            issuer_not_before: Gauge::default(),
            anchor_expiry: Family::default(),
            anchors_earliest_expiry: Gauge::default(),
            issuer_reloads: Family::default(),
            anchor_reloads: Family::default(),
            issuer_last_reload: Gauge::default(),
            serving_cert_expiry: Gauge::default(),
            token_reviews: Family::default(),
            token_review_duration: latency(),
            token_review_cache: Family::default(),
            token_reviews_in_flight: Gauge::default(),
            token_reviews_rejected: Counter::default(),
            token_local_verifications: Family::default(),
            token_local_fallbacks: Family::default(),
            token_authn_answers: Family::default(),
            jwks_fetches: Family::default(),
            jwks_keys: Gauge::default(),
            ready: Gauge::default(),
            runtime_alive_tasks: Gauge::default(),
            grpc_connections_open: Gauge::default(),
            grpc_connections_dropped: Family::default(),
            grpc_accept_errors: Counter::default(),
            grpc_malformed_requests: Counter::default(),
            audit_records: Family::default(),
            audit_unrecorded: Counter::default(),
            audit_sink_up: Gauge::default(),
            registry: Registry::default(),
        }
    }

    fn precreate(&self) {
        self.precreate_api("linkerd");
        for result in RELOAD_RESULTS {
            for source in ["files", "kubernetes"] {
                let _ = self
                    .issuer_reloads
                    .get_or_create(&ReloadLabels { source, result });
                let _ = self
                    .anchor_reloads
                    .get_or_create(&ReloadLabels { source, result });
            }
        }
        for result in REVIEW_RESULTS {
            let _ = self.token_reviews.get_or_create(&ResultLabel { result });
        }
        for result in ["valid", "invalid", "not_judged"] {
            let _ = self
                .token_local_verifications
                .get_or_create(&ResultLabel { result });
        }
        for result in FALLBACK_REASONS {
            let _ = self
                .token_local_fallbacks
                .get_or_create(&ResultLabel { result });
        }
        for path in AUTHN_PATHS {
            let _ = self.token_authn_answers.get_or_create(&PathLabel { path });
        }
        for result in ["ok", "error"] {
            let _ = self.jwks_fetches.get_or_create(&ResultLabel { result });
        }
        for reason in CONNECTION_DROP_REASONS {
            let _ = self
                .grpc_connections_dropped
                .get_or_create(&ReasonLabel { reason });
        }
        for result in ["written", "failed"] {
            let _ = self.audit_records.get_or_create(&ResultLabel { result });
        }
        for result in ["hit", "miss"] {
            let _ = self
                .token_review_cache
                .get_or_create(&ResultLabel { result });
        }
    }

    /// Counts one Certify outcome.
    /// Pre-creates the Certify series of a wire API (`linkerd`, `istio`) so dashboards show
    /// zeros rather than gaps.
    pub fn precreate_api(&self, api: &'static str) {
        for result in CERTIFY_RESULTS {
            let _ = self
                .certify_requests
                .get_or_create(&CertifyLabels { api, result });
        }
    }

    pub fn certify(&self, api: &'static str, result: &'static str, seconds: f64) {
        let _ = self
            .certify_requests
            .get_or_create(&CertifyLabels { api, result })
            .inc();
        self.certify_duration.observe(seconds);
        if result == "ok" {
            self.certificates_issued.inc();
        }
    }

    /// Sets `runtime_alive_tasks` from the tokio runtime this is called on (none: unchanged).
    pub fn sample_runtime(&self) {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let alive = rt.metrics().num_alive_tasks();
            self.runtime_alive_tasks
                .set(i64::try_from(alive).unwrap_or(i64::MAX));
        }
    }

    /// Counts one connection closed before it carried a call.
    pub fn connection_dropped(&self, reason: &'static str) {
        let _ = self
            .grpc_connections_dropped
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    pub fn set_time(gauge: &Gauge, t: SystemTime) {
        gauge.set(unix_seconds(t));
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive_tasks(m: &Metrics) -> i64 {
        m.sample_runtime();
        let text = m.encode();
        let line = text
            .lines()
            .find(|l| l.starts_with("certmint_runtime_alive_tasks "))
            .expect("alive-task gauge exposed");
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn alive_tasks_counts_the_runtime_tasks_at_scrape() {
        let m = Metrics::new();
        let before = alive_tasks(&m);
        let (tx, rx) = tokio::sync::watch::channel(false);
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    let _ = rx.wait_for(|done| *done).await;
                })
            })
            .collect();
        assert_eq!(alive_tasks(&m), before + 3);
        tx.send_replace(true);
        for t in tasks {
            t.await.unwrap();
        }
    }
}
