//! Who trusts what (issue 21), as a pure policy: the anchor sets that running meshed
//! workloads hold, whether a new issuer may be activated, and when an anchor may leave the
//! bundle. The Kubernetes layer fills the view from its pod watch; the reloader asks
//! [`TrustView::hold`] before it activates an issuer.
//!
//! Rules:
//! - A new issuer is **held** while some running meshed workload does not trust the anchor
//!   its chain ends at: a leaf from it, or certmint's serving certificate, would be refused
//!   by that workload. A workload whose anchors certmint cannot know counts as not trusting
//!   (never activate blind). An explicit override activates anyway.
//! - An anchor is **safe to remove** once no active or held issuer chains to it and the
//!   last leaf signed under an issuer that did is dead: one maximum leaf lifetime plus the
//!   clock skew after certmint last signed with such an issuer.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

/// SHA-256 of an anchor certificate's DER.
pub type Fingerprint = [u8; 32];

/// How a workload's trusted anchors were learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TrustSource {
    /// Linkerd-injected pod: the PEM in the proxy container's environment, read at start.
    LinkerdEnv,
    /// The proxy's environment takes the bundle from a ConfigMap when the container
    /// started: what that ConfigMap held then.
    LinkerdConfigMap,
    /// Istio workloads take the roots from every CreateCertificate answer: what certmint
    /// served during the last leaf lifetime.
    Istio,
    /// A pod mounting certmint's ClusterTrustBundle (pod certificates): what the bundle
    /// held when the kubelet last projected it.
    TrustBundle,
}

/// What one workload trusts; `None` when certmint cannot know (a ConfigMap version it did
/// not see, an unparsable value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub namespace: String,
    pub name: String,
    /// The owner to restart (e.g. `deployment/web`), when known.
    pub owner: Option<String>,
    pub source: TrustSource,
    pub anchors: Option<BTreeSet<Fingerprint>>,
}

impl Workload {
    /// Trusts `anchor` for certain.
    pub fn trusts(&self, anchor: &Fingerprint) -> bool {
        self.anchors.as_ref().is_some_and(|a| a.contains(anchor))
    }
}

/// The running meshed workloads certmint can see.
#[derive(Clone, Debug, Default)]
pub struct TrustView {
    pub workloads: Vec<Workload>,
}

/// Why a new issuer waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    /// Workloads that would refuse it.
    pub untrusting: usize,
    /// A few of them (`namespace/name`), for the Event and the log line.
    pub sample: Vec<String>,
}

/// What the reloader asks before it activates an issuer whose chain ends at another anchor
/// than the active one's.
pub trait TrustGate: Send + Sync {
    /// `Some` while an issuer chaining to `anchor` must wait.
    fn hold(&self, anchor: &Fingerprint) -> Option<Hold>;
}

impl TrustGate for TrustView {
    fn hold(&self, anchor: &Fingerprint) -> Option<Hold> {
        TrustView::hold(self, anchor)
    }
}

impl Hold {
    /// Held because the running workloads are not known yet (the pod list is loading).
    pub fn unsynced() -> Self {
        Self {
            untrusting: 0,
            sample: Vec::new(),
        }
    }

    pub fn is_unsynced(&self) -> bool {
        self.untrusting == 0
    }
}

/// How many workloads a hold names.
const SAMPLE: usize = 5;

impl TrustView {
    /// The workloads that do not (or may not) trust `anchor`.
    pub fn not_trusting<'a>(
        &'a self,
        anchor: &'a Fingerprint,
    ) -> impl Iterator<Item = &'a Workload> {
        self.workloads.iter().filter(move |w| !w.trusts(anchor))
    }

    /// `Some` while an issuer chaining to `anchor` must wait.
    pub fn hold(&self, anchor: &Fingerprint) -> Option<Hold> {
        let untrusting: Vec<&Workload> = self.not_trusting(anchor).collect();
        if untrusting.is_empty() {
            return None;
        }
        Some(Hold {
            untrusting: untrusting.len(),
            sample: untrusting
                .iter()
                .take(SAMPLE)
                .map(|w| format!("{}/{}", w.namespace, w.name))
                .collect(),
        })
    }

    /// Workloads per distinct anchor set (`None`: unknown), for metrics and `status`.
    pub fn by_anchor_set(&self) -> BTreeMap<Option<BTreeSet<Fingerprint>>, usize> {
        let mut sets = BTreeMap::new();
        for w in &self.workloads {
            *sets.entry(w.anchors.clone()).or_default() += 1;
        }
        sets
    }
}

/// The versions of one bundle (a ConfigMap key, or what certmint serves) as certmint saw
/// them, oldest first: what it held at a given time.
#[derive(Clone, Debug, Default)]
pub struct BundleHistory {
    versions: Vec<(SystemTime, Option<BTreeSet<Fingerprint>>)>,
}

/// Versions kept per bundle; older ones are dropped (a container started before the
/// oldest kept version then counts as unknown).
const MAX_VERSIONS: usize = 64;

impl BundleHistory {
    /// The bundle held `anchors` from `since` on (`None`: nothing in it parsed). A repeat
    /// of the current content is not a new version.
    pub fn observe(&mut self, since: SystemTime, anchors: Option<BTreeSet<Fingerprint>>) {
        if self.versions.last().is_some_and(|(_, a)| *a == anchors) {
            return;
        }
        if self.versions.len() == MAX_VERSIONS {
            self.versions.remove(0);
        }
        self.versions.push((since, anchors));
    }

    /// What the bundle held at `t`; `None` before the first version certmint saw.
    pub fn at(&self, t: SystemTime) -> Option<&BTreeSet<Fingerprint>> {
        let i = self.versions.iter().rposition(|(since, _)| *since <= t)?;
        self.versions[i].1.as_ref()
    }

    /// The versions, oldest first.
    pub fn versions(&self) -> &[(SystemTime, Option<BTreeSet<Fingerprint>>)] {
        &self.versions
    }
}

/// What a workload that takes a fresh copy of a bundle now and then (Istio's roots in
/// every CreateCertificate answer, a projected ClusterTrustBundle) surely holds, if its
/// last copy is from `from` or later: the anchors present in every version in force since
/// `from`. `versions` is (since when, bundle), oldest first. `None` when `from` is before
/// the first version certmint saw (after a restart, for a workload older than the
/// process: it may hold a bundle certmint never saw).
pub fn held_since(
    versions: &[(SystemTime, Option<BTreeSet<Fingerprint>>)],
    from: SystemTime,
) -> Option<BTreeSet<Fingerprint>> {
    let first = versions.iter().rposition(|(since, _)| *since <= from)?;
    // A version in which nothing parsed counts as an empty bundle.
    let mut window = versions[first..]
        .iter()
        .map(|(_, b)| b.clone().unwrap_or_default());
    let start = window.next()?;
    Some(window.fold(start, |acc, b| acc.intersection(&b).copied().collect()))
}

/// When an anchor may leave the bundle: `None` while an active or held issuer chains to it;
/// otherwise one leaf lifetime plus skew after the last signature under an issuer that did
/// (`last_signed`; never signed: now).
pub fn safe_to_remove_at(
    still_used: bool,
    last_signed: Option<SystemTime>,
    now: SystemTime,
    leaf_lifetime: Duration,
    skew: Duration,
) -> Option<SystemTime> {
    if still_used {
        return None;
    }
    Some(last_signed.map_or(now, |t| t + leaf_lifetime + skew))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const OLD: Fingerprint = [1; 32];
    const NEW: Fingerprint = [2; 32];

    fn w(name: &str, anchors: Option<&[Fingerprint]>) -> Workload {
        Workload {
            namespace: "shop".into(),
            name: name.into(),
            owner: None,
            source: TrustSource::LinkerdEnv,
            anchors: anchors.map(|a| a.iter().copied().collect()),
        }
    }

    #[test]
    fn a_new_issuer_is_held_while_one_workload_trusts_only_the_old_anchor() {
        let mut view = TrustView {
            workloads: vec![w("a", Some(&[OLD, NEW])), w("b", Some(&[OLD]))],
        };
        let hold = view.hold(&NEW).unwrap();
        assert_eq!(
            (hold.untrusting, hold.sample.as_slice()),
            (1, &["shop/b".to_owned()][..])
        );
        assert_eq!(view.hold(&OLD), None);
        // b replaced by a pod with the overlap bundle: released.
        view.workloads[1] = w("b-2", Some(&[OLD, NEW]));
        assert_eq!(view.hold(&NEW), None);
    }

    #[test]
    fn a_workload_whose_anchors_are_unknown_holds_every_new_issuer() {
        let view = TrustView {
            workloads: vec![w("a", None)],
        };
        assert_eq!(view.hold(&OLD).unwrap().untrusting, 1);
        assert_eq!(view.by_anchor_set().get(&None), Some(&1));
    }

    #[test]
    fn a_renewing_workload_surely_holds_only_what_every_bundle_since_its_last_copy_held() {
        let t = |s| UNIX_EPOCH + Duration::from_secs(s);
        let day = Duration::from_secs(86_400);
        let set = |a: &[Fingerprint]| a.iter().copied().collect::<BTreeSet<_>>();
        let served = vec![
            (t(0), Some(set(&[OLD]))),
            (t(200_000), Some(set(&[OLD, NEW]))),
        ];
        let since = |now| held_since(&served, t(now) - day);
        // Less than a lifetime after the overlap bundle: some still hold OLD only.
        assert_eq!(since(250_000), Some(set(&[OLD])));
        // A whole lifetime later every workload renewed and holds the overlap.
        assert_eq!(since(290_000), Some(set(&[OLD, NEW])));
        // A workload started after the overlap bundle was first served holds it.
        assert_eq!(held_since(&served, t(210_000)), Some(set(&[OLD, NEW])));
        // Less than a lifetime after certmint began, a workload older than that may hold
        // what an earlier process served.
        assert_eq!(since(50_000), None);
    }

    #[test]
    fn a_bundle_is_known_from_its_first_observed_version_on() {
        let t = |s| UNIX_EPOCH + Duration::from_secs(s);
        let set = |a: &[Fingerprint]| a.iter().copied().collect::<BTreeSet<_>>();
        let mut h = BundleHistory::default();
        h.observe(t(100), Some(set(&[OLD])));
        h.observe(t(150), Some(set(&[OLD])));
        h.observe(t(200), Some(set(&[OLD, NEW])));
        assert_eq!(h.versions().len(), 2, "a repeat is not a version");
        assert_eq!(
            h.at(t(99)),
            None,
            "started before certmint saw the ConfigMap"
        );
        assert_eq!(h.at(t(199)), Some(&set(&[OLD])));
        assert_eq!(h.at(t(200)), Some(&set(&[OLD, NEW])));
    }

    #[test]
    fn an_anchor_may_go_one_leaf_lifetime_after_the_last_signature_under_it() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let (life, skew) = (Duration::from_secs(86_400), Duration::from_secs(60));
        assert_eq!(safe_to_remove_at(true, Some(now), now, life, skew), None);
        let last = now - Duration::from_secs(3_600);
        assert_eq!(
            safe_to_remove_at(false, Some(last), now, life, skew),
            Some(last + life + skew)
        );
        assert_eq!(safe_to_remove_at(false, None, now, life, skew), Some(now));
    }
}
