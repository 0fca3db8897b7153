//! The metrics of the gRPC layer: Certify outcomes by wire API, connections, malformed
//! requests, the serving certificate and readiness, registered into the binary's registry.

use std::time::SystemTime;

use certmint_core::digest::unix_seconds;
use certmint_core::label_enum;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

label_enum! {
    /// The wire API a call arrived on.
    pub enum Api { Linkerd => "linkerd", Istio => "istio" }
}

label_enum! {
    /// How a Certify call ended (gRPC code names, snake case).
    pub enum CertifyResult {
        Ok => "ok",
        InvalidArgument => "invalid_argument",
        PermissionDenied => "permission_denied",
        Unauthenticated => "unauthenticated",
        Unavailable => "unavailable",
        Internal => "internal",
    }
}

label_enum! {
    /// Why a gRPC connection was closed by certmint before it carried a call.
    pub enum DropReason {
        Limit => "limit",
        HandshakeTimeout => "handshake_timeout",
        HandshakeFailed => "handshake_failed",
        PrefaceTimeout => "preface_timeout",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertifyLabels {
    pub api: Api,
    pub result: CertifyResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: DropReason,
}

/// The handles; shared behind an `Arc`.
pub struct Metrics {
    pub certify_requests: Family<CertifyLabels, Counter>,
    pub certify_duration: Histogram,
    pub certificates_issued: Counter,
    pub serving_cert_expiry: Gauge,
    pub ready: Gauge,
    pub grpc_connections_open: Gauge,
    pub grpc_connections_dropped: Family<ReasonLabel, Counter>,
    pub grpc_accept_errors: Counter,
    pub grpc_malformed_requests: Counter,
}

impl Metrics {
    /// Registers every metric into `r` (the binary's `certmint`-prefixed registry).
    pub fn register(r: &mut Registry) -> Self {
        let m = Self::default();
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
            "serving_certificate_expiry_timestamp_seconds",
            "notAfter of the gRPC serving certificate (Unix time)",
            m.serving_cert_expiry.clone(),
        );
        r.register(
            "ready",
            "1 when a valid issuer and anchors are loaded and serving",
            m.ready.clone(),
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
        m.precreate_api(Api::Linkerd);
        for &reason in DropReason::ALL {
            let _ = m
                .grpc_connections_dropped
                .get_or_create(&ReasonLabel { reason });
        }
        m
    }

    /// Pre-creates the Certify series of a wire API so dashboards show zeros, not gaps.
    pub fn precreate_api(&self, api: Api) {
        for &result in CertifyResult::ALL {
            let _ = self
                .certify_requests
                .get_or_create(&CertifyLabels { api, result });
        }
    }

    /// Counts one Certify outcome and its latency.
    pub fn certify(&self, api: Api, result: CertifyResult, seconds: f64) {
        self.certify_requests
            .get_or_create(&CertifyLabels { api, result })
            .inc();
        self.certify_duration.observe(seconds);
        if result == CertifyResult::Ok {
            self.certificates_issued.inc();
        }
    }

    /// Counts one connection closed before it carried a call.
    pub fn connection_dropped(&self, reason: DropReason) {
        self.grpc_connections_dropped
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Sets a timestamp gauge to `t` in Unix seconds.
    pub fn set_time(gauge: &Gauge, t: SystemTime) {
        gauge.set(unix_seconds(t));
    }
}

impl Default for Metrics {
    /// Unregistered handles (tests, benchmarks).
    fn default() -> Self {
        Self {
            certify_requests: Family::default(),
            certify_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            certificates_issued: Counter::default(),
            serving_cert_expiry: Gauge::default(),
            ready: Gauge::default(),
            grpc_connections_open: Gauge::default(),
            grpc_connections_dropped: Family::default(),
            grpc_accept_errors: Counter::default(),
            grpc_malformed_requests: Counter::default(),
        }
    }
}
