//! The audit trail's metrics, registered into the binary's registry.

use certmint_core::label_enum;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

label_enum! {
    /// What became of a batch of records.
    pub enum RecordResult { Written => "written", Failed => "failed" }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: RecordResult,
}

/// The handles; shared behind an `Arc`.
#[derive(Default)]
pub struct Metrics {
    pub audit_records: Family<ResultLabel, Counter>,
    pub audit_unrecorded: Counter,
    pub audit_sink_up: Gauge,
}

impl Metrics {
    /// Registers every metric into `r` (the binary's `certmint`-prefixed registry).
    pub fn register(r: &mut Registry) -> Self {
        let m = Self::default();
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
        for &result in RecordResult::ALL {
            let _ = m.audit_records.get_or_create(&ResultLabel { result });
        }
        m
    }
}
