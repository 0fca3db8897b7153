//! What the signer is built from: the client, the certifier and CA store, the pod index,
//! its settings, the clock, metrics and the audit trail.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;

use certmint_core::ca::CaStore;
use certmint_core::certify::Certifier;
use certmint_core::clock::Clock;

use super::audit::DecisionAudit;
use super::metrics::Metrics;
use super::settings::PodCertConfig;
use crate::pods::PodIndex;

/// What the signer is built from.
pub struct SignerParts {
    pub client: Client,
    pub certifier: Arc<Certifier>,
    pub store: CaStore,
    pub pods: Arc<PodIndex>,
    pub config: PodCertConfig,
    /// `issuance.lifetime` and `issuance.clock_skew`.
    pub lifetime: Duration,
    pub clock_skew: Duration,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub audit: Option<Arc<dyn DecisionAudit>>,
}
