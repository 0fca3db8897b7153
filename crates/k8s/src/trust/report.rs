//! Who trusts what, as certmint's admin endpoint `/trust` answers it and
//! `certmint rotation status` reads it.

use serde::{Deserialize, Serialize};

/// The whole answer.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TrustReport {
    /// The interlock is on (certmint watches pods).
    pub interlock: bool,
    /// The pod list is loaded.
    pub synced: bool,
    /// SHA-256 (hex) of the anchor the active issuer's chain reaches.
    pub active_anchor: Option<String>,
    /// An issuer waiting for workloads to trust its anchor.
    pub pending: Option<PendingReport>,
    pub workloads: Vec<WorkloadReport>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingReport {
    /// Subject of the held issuer.
    pub issuer: String,
    /// SHA-256 (hex) of the anchor it chains to.
    pub anchor: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkloadReport {
    pub namespace: String,
    pub name: String,
    /// The controller to restart, e.g. `replicaset/web-5d9c`.
    pub owner: Option<String>,
    /// `linkerd-env`, `linkerd-configmap` or `istio`.
    pub source: String,
    /// The anchors it trusts (hex), or `None` when certmint cannot know.
    pub anchors: Option<Vec<String>>,
    pub trusts_active: bool,
    /// Whether it trusts the held issuer's anchor (when one is held).
    pub trusts_pending: Option<bool>,
}

impl TrustReport {
    /// Running workloads that would refuse the active issuer's leaves (an unsafe state).
    pub fn refusing_active(&self) -> impl Iterator<Item = &WorkloadReport> {
        self.workloads
            .iter()
            .filter(|w| self.active_anchor.is_some() && !w.trusts_active)
    }

    /// Running workloads that hold the pending issuer back.
    pub fn blocking_pending(&self) -> impl Iterator<Item = &WorkloadReport> {
        self.workloads
            .iter()
            .filter(|w| w.trusts_pending == Some(false))
    }
}
