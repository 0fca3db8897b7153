//! The pod-certificate signer's metrics, registered into the binary's registry with every
//! label value pre-created.

use certmint_core::label_enum;
use prometheus_client::encoding::EncodeLabelSet;
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
    /// The object a request's UID is checked against.
    pub enum Owner { ServiceAccount => "service_account", Node => "node" }
}

impl Owner {
    /// The object's kind, for messages.
    pub fn kind(self) -> &'static str {
        match self {
            Owner::ServiceAccount => "ServiceAccount",
            Owner::Node => "Node",
        }
    }

    /// The resource RBAC names.
    pub fn resource(self) -> &'static str {
        match self {
            Owner::ServiceAccount => "serviceaccounts",
            Owner::Node => "nodes",
        }
    }
}

label_enum! {
    /// A read of a service account or node.
    pub enum OwnerRead { Found => "found", NotFound => "not_found", Error => "error" }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OwnerReadLabels {
    pub object: Owner,
    pub result: OwnerRead,
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
    pub owner_reads: Family<OwnerReadLabels, Counter>,
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
        for &object in Owner::ALL {
            for &result in OwnerRead::ALL {
                let _ = m
                    .owner_reads
                    .get_or_create(&OwnerReadLabels { object, result });
            }
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
        r.register(
            "pod_certificate_owner_reads",
            "Reads of the service accounts and nodes PodCertificateRequests name, by result (an error leaves the request waiting)",
            m.owner_reads.clone(),
        );
        m
    }

    pub fn outcome(&self, result: Outcome) {
        self.requests.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn owner_read(&self, object: Owner, result: OwnerRead) {
        self.owner_reads
            .get_or_create(&OwnerReadLabels { object, result })
            .inc();
    }
}
