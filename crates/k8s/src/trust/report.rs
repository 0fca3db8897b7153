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
    /// The anchors in the bundle certmint serves, and when each may leave it.
    #[serde(default)]
    pub anchors: Vec<AnchorReport>,
    /// Anchors dropped from the bundle while leaves under them may still be in use.
    #[serde(default)]
    pub removed_early: Vec<RemovedAnchor>,
}

/// One anchor of the bundle.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AnchorReport {
    /// SHA-256 (hex) of the anchor.
    pub fingerprint: String,
    pub subject: String,
    /// The anchor's own notAfter (RFC 3339).
    pub not_after: String,
    /// `active` or `pending` when that issuer chains to it, else `None`.
    pub issuer: Option<String>,
    /// When certmint stopped signing under it (RFC 3339), if this process did.
    pub retired_at: Option<String>,
    /// From when it may leave the bundle (RFC 3339); `None` while an issuer uses it.
    pub safe_to_remove_at: Option<String>,
    /// `safe_to_remove_at` has passed.
    pub safe_to_remove_now: bool,
    /// Running workloads that do not trust it (an issuer under it would be held).
    pub untrusting: usize,
}

/// An anchor dropped from the bundle too early.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemovedAnchor {
    pub fingerprint: String,
    pub subject: String,
    /// Leaves under it live until then (RFC 3339).
    pub safe_from: String,
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
    /// `linkerd-env`, `linkerd-configmap`, `istio` or `cluster-trust-bundle`.
    pub source: String,
    /// The anchors it trusts (hex), or `None` when certmint cannot know.
    pub anchors: Option<Vec<String>>,
    pub trusts_active: bool,
    /// Whether it trusts the held issuer's anchor (when one is held).
    pub trusts_pending: Option<bool>,
}

impl TrustReport {
    /// Running workloads known to refuse the active issuer's leaves (an unsafe state).
    pub fn refusing_active(&self) -> impl Iterator<Item = &WorkloadReport> {
        self.workloads
            .iter()
            .filter(|w| self.active_anchor.is_some() && w.anchors.is_some() && !w.trusts_active)
    }

    /// Running workloads whose anchors certmint cannot know now (they count as not
    /// trusting a held issuer, but are not reported as refusing the active one).
    pub fn unknown(&self) -> impl Iterator<Item = &WorkloadReport> {
        self.workloads.iter().filter(|w| w.anchors.is_none())
    }

    /// Running workloads that hold the pending issuer back.
    pub fn blocking_pending(&self) -> impl Iterator<Item = &WorkloadReport> {
        self.workloads
            .iter()
            .filter(|w| w.trusts_pending == Some(false))
    }

    /// Old anchors (certmint retired their issuer) whose leaves still live.
    pub fn retiring(&self) -> impl Iterator<Item = &AnchorReport> {
        self.anchors
            .iter()
            .filter(|a| a.retired_at.is_some() && a.issuer.is_none() && !a.safe_to_remove_now)
    }

    /// Anchors no issuer uses and certmint did not retire: new ones, on their way in.
    pub fn incoming(&self) -> impl Iterator<Item = &AnchorReport> {
        self.anchors
            .iter()
            .filter(|a| a.issuer.is_none() && a.retired_at.is_none())
    }

    /// Running workloads that do not (or may not) trust the anchor `fingerprint`.
    pub fn lacking<'a>(&'a self, fingerprint: &'a str) -> impl Iterator<Item = &'a WorkloadReport> {
        self.workloads.iter().filter(move |w| {
            !w.anchors
                .as_ref()
                .is_some_and(|a| a.iter().any(|f| f == fingerprint))
        })
    }
}
