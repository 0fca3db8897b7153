//! The pod-certificate signer's metrics, registered into the binary's registry with every
//! label value pre-created.

use certmint_core::label_enum;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::ResultLabel;

label_enum! {
    /// How the signer's handling of one request ended.
    pub enum Outcome {
        Issued => "issued",
        Denied => "denied",
        Failed => "failed",
        /// Another replica decided it first (a certificate signed here, if any, was not delivered).
        DecidedElsewhere => "decided_elsewhere",
        /// The request was deleted before it was decided.
        Deleted => "deleted",
    }
}

label_enum! {
    /// A write of the ClusterTrustBundle.
    pub enum BundleWrite { Created => "created", Updated => "updated", Error => "error" }
}

/// The handles; shared behind an `Arc`.
#[derive(Default)]
pub struct Metrics {
    pub requests: Family<ResultLabel<Outcome>, Counter>,
    pub status_conflicts: Counter,
    pub status_write_errors: Counter,
    pub waiting_for_pod: Gauge,
    pub bundle_writes: Family<ResultLabel<BundleWrite>, Counter>,
}

impl Metrics {
    /// Registers every metric into `r` (the binary's `certmint`-prefixed registry).
    pub fn register(r: &mut Registry) -> Self {
        let m = Self::default();
        for &result in Outcome::ALL {
            let _ = m.requests.get_or_create(&ResultLabel { result });
        }
        for &result in BundleWrite::ALL {
            let _ = m.bundle_writes.get_or_create(&ResultLabel { result });
        }
        r.register(
            "pod_certificate_requests",
            "PodCertificateRequests handled by result",
            m.requests.clone(),
        );
        r.register(
            "pod_certificate_status_conflicts",
            "PodCertificateRequest status writes that met a newer resourceVersion",
            m.status_conflicts.clone(),
        );
        r.register(
            "pod_certificate_status_write_errors",
            "PodCertificateRequest status writes that failed (the request is tried again)",
            m.status_write_errors.clone(),
        );
        r.register(
            "pod_certificate_requests_waiting_for_pod",
            "PodCertificateRequests waiting for the pod watch to show their pod",
            m.waiting_for_pod.clone(),
        );
        r.register(
            "pod_certificate_trust_bundle_writes",
            "Writes of the signer's ClusterTrustBundle by result",
            m.bundle_writes.clone(),
        );
        m
    }

    pub fn outcome(&self, result: Outcome) {
        self.requests.get_or_create(&ResultLabel { result }).inc();
    }
}
