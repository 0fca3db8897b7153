//! The trust index: what every running meshed pod trusts now, answering the reloader's
//! interlock question ([`TrustGate`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;

use certmint_core::ca::{CaState, cert::CertInfo};
use certmint_core::clock::Clock;
use certmint_core::digest::sha256;
use certmint_core::trust::{
    BundleHistory, Fingerprint, Hold, TrustGate, TrustSource, TrustView, Workload, held_since,
};

use super::pod::{PodTrust, fingerprints, pod_trust};
use super::report::{AnchorReport, PendingReport, RemovedAnchor, TrustReport, WorkloadReport};

/// What every running meshed pod trusts, kept from the pod watch (and the ConfigMaps
/// Linkerd pods read their bundle from, and the bundles certmint served Istio workloads),
/// answering the reloader's interlock question.
pub struct TrustIndex {
    inner: RwLock<Inner>,
    /// Istio workloads count only when certmint serves Istio's API (otherwise their roots
    /// come from elsewhere and are unknown to it).
    istio: bool,
    /// certmint's ClusterTrustBundle (signer name, object name) when it publishes one:
    /// pods that mount it count.
    trust_bundle: Option<(String, String)>,
    /// The pod list has been loaded; until then every root change is held.
    synced: AtomicBool,
    /// The issuer the interlock holds, for reports: subject and anchor.
    pending: RwLock<Option<(String, Fingerprint)>>,
    /// Anchors whose issuer certmint stopped signing with, and when: leaves under them
    /// live one leaf lifetime longer.
    retired: RwLock<HashMap<Fingerprint, SystemTime>>,
    /// Anchors the bundle dropped while leaves under them lived, with the time each would
    /// have been safe to drop.
    removed_early: RwLock<Vec<(AnchorInfo, SystemTime)>>,
    /// When this index began: a process cannot know whether an earlier one signed under an
    /// anchor, so every anchor it did not see retired counts as used until then.
    started: SystemTime,
    /// The longest leaf lifetime (plus skew): leaves signed now are dead after it.
    leaf_lifetime: Duration,
    clock: Arc<dyn Clock>,
}

/// An anchor no longer in the bundle, as the reports name it.
#[derive(Clone, Debug)]
pub struct AnchorInfo {
    pub fingerprint: Fingerprint,
    pub subject: String,
}

#[derive(Default)]
struct Inner {
    pods: HashMap<String, Entry>,
    /// (namespace, name, key) → the versions certmint saw.
    configmaps: HashMap<(String, String, String), BundleHistory>,
    /// The anchors certmint served in CreateCertificate answers, by time.
    served: BundleHistory,
}

struct Entry {
    namespace: String,
    name: String,
    owner: Option<String>,
    trust: PodTrust,
    /// When the pod started (`status.startTime`).
    started: Option<SystemTime>,
}

/// How long the kubelet may take to project a changed ClusterTrustBundle into a pod's
/// volume (its sync period is a minute, plus jitter).
const PROJECTION_LAG: Duration = Duration::from_secs(120);

impl TrustIndex {
    pub fn new(leaf_lifetime: Duration, clock: Arc<dyn Clock>, istio: bool) -> Self {
        Self {
            inner: RwLock::default(),
            istio,
            trust_bundle: None,
            synced: AtomicBool::new(false),
            pending: RwLock::new(None),
            retired: RwLock::default(),
            removed_early: RwLock::default(),
            started: clock.now(),
            leaf_lifetime,
            clock,
        }
    }

    /// Pods mounting the ClusterTrustBundle `name` (for `signer_name`) count, as trusting
    /// what it held when the kubelet last projected it.
    pub fn with_trust_bundle(mut self, signer_name: &str, name: &str) -> Self {
        self.trust_bundle = Some((signer_name.to_owned(), name.to_owned()));
        self
    }

    /// Replaces the pods with a complete list (the watch's first list or a re-list).
    pub fn replace(&self, pods: &[Pod]) {
        self.write().pods.clear();
        for p in pods {
            self.apply(p);
        }
        self.synced.store(true, Ordering::Release);
    }

    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// A pod as the watch reports it: kept while it is meshed and not finished.
    pub fn apply(&self, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let finished = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed");
        let trust = pod_trust(pod);
        let counted = match &trust {
            PodTrust::NotMeshed => false,
            PodTrust::Istio => self.istio,
            PodTrust::TrustBundle { signer_name, name } => self
                .trust_bundle
                .as_ref()
                .is_some_and(|(s, n)| signer_name.as_ref() == Some(s) || name.as_ref() == Some(n)),
            _ => true,
        };
        let mut inner = self.write();
        if finished || !counted || pod.metadata.deletion_timestamp.is_some() {
            inner.pods.remove(&uid);
            return;
        }
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| format!("{}/{}", o.kind.to_lowercase(), o.name));
        inner.pods.insert(
            uid,
            Entry {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                owner,
                trust,
                started: pod
                    .status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .map(|t| SystemTime::from(t.0)),
            },
        );
    }

    /// A pod is gone.
    pub fn delete(&self, pod: &Pod) {
        if let Some(uid) = &pod.metadata.uid {
            self.write().pods.remove(uid);
        }
    }

    /// A ConfigMap key that Linkerd pods may read their bundle from now holds `pem`.
    pub fn configmap(&self, namespace: &str, name: &str, key: &str, pem: Option<&str>) {
        let anchors = pem.and_then(fingerprints);
        let now = self.clock.now();
        let id = (namespace.to_owned(), name.to_owned(), key.to_owned());
        self.write()
            .configmaps
            .entry(id)
            .or_default()
            .observe(now, anchors);
    }

    /// The ConfigMap is gone: every key of it now holds nothing.
    pub fn configmap_gone(&self, namespace: &str, name: &str) {
        let now = self.clock.now();
        let mut inner = self.write();
        for ((ns, n, _), history) in inner.configmaps.iter_mut() {
            if ns == namespace && n == name {
                history.observe(now, None);
            }
        }
    }

    /// certmint now serves `anchors` (to Istio workloads in every answer); `removed_early`
    /// are the anchors this bundle dropped while leaves under them live, with the time
    /// each would have been safe to drop.
    pub fn bundle_applied(
        &self,
        anchors: BTreeSet<Fingerprint>,
        removed_early: Vec<(AnchorInfo, SystemTime)>,
    ) {
        let now = self.clock.now();
        let mut early = self
            .removed_early
            .write()
            .unwrap_or_else(|e| e.into_inner());
        // An anchor put back is no longer missing; one dropped again has its new time.
        early.retain(|(r, _)| {
            !anchors.contains(&r.fingerprint)
                && !removed_early
                    .iter()
                    .any(|(g, _)| g.fingerprint == r.fingerprint)
        });
        early.extend(removed_early);
        self.write().served.observe(now, Some(anchors));
    }

    /// Anchors dropped too early whose leaves still live now.
    pub fn removed_early_now(&self) -> usize {
        let now = self.clock.now();
        let early = self.removed_early.read().unwrap_or_else(|e| e.into_inner());
        early.iter().filter(|(_, s)| *s > now).count()
    }

    /// The running meshed workloads and what they trust, now.
    pub fn view(&self) -> TrustView {
        let now = self.clock.now();
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let served = inner.served.versions();
        // A renewing workload's last copy is from within the window, and not from before
        // it started.
        let renewed = |started: Option<SystemTime>, window: Duration| {
            let from = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
            held_since(served, started.map_or(from, |s| s.max(from)))
        };
        let workloads = inner
            .pods
            .values()
            .map(|e| {
                let (source, anchors) = match &e.trust {
                    PodTrust::Literal(a) => (TrustSource::LinkerdEnv, a.clone()),
                    PodTrust::FromConfigMap {
                        name,
                        key,
                        started_at,
                    } => {
                        let id = (e.namespace.clone(), name.clone(), key.clone());
                        let at = started_at.as_ref().map(|t| SystemTime::from(t.0));
                        let held = at.and_then(|t| inner.configmaps.get(&id)?.at(t).cloned());
                        (TrustSource::LinkerdConfigMap, held)
                    }
                    PodTrust::Istio => (TrustSource::Istio, renewed(e.started, self.leaf_lifetime)),
                    PodTrust::TrustBundle { .. } => {
                        (TrustSource::TrustBundle, renewed(e.started, PROJECTION_LAG))
                    }
                    PodTrust::NotMeshed => (TrustSource::LinkerdEnv, None),
                };
                Workload {
                    namespace: e.namespace.clone(),
                    name: e.name.clone(),
                    owner: e.owner.clone(),
                    source,
                    anchors,
                }
            })
            .collect();
        TrustView { workloads }
    }

    /// The reloader holds (or no longer holds) an issuer.
    pub fn set_pending(&self, pending: Option<(String, Fingerprint)>) {
        *self.pending.write().unwrap_or_else(|e| e.into_inner()) = pending;
    }

    /// certmint stopped signing with an issuer under `anchor` now (another became active).
    pub fn retire(&self, anchor: Fingerprint) {
        let now = self.clock.now();
        self.retired
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(anchor, now);
    }

    /// When `anchor` may leave the bundle: `None` while `in_use` (an active or held issuer
    /// chains to it); the last leaf signed under it is dead one leaf lifetime after its
    /// issuer was retired. An anchor this process never saw retired may have been signed
    /// under by the process before it, up to this one's start.
    pub fn safe_to_remove_at(&self, anchor: &Fingerprint, in_use: bool) -> Option<SystemTime> {
        let retired = self.retired.read().unwrap_or_else(|e| e.into_inner());
        let last_signed = retired.get(anchor).copied().unwrap_or(self.started);
        certmint_core::trust::safe_to_remove_at(
            in_use,
            Some(last_signed),
            self.clock.now(),
            self.leaf_lifetime,
            Duration::ZERO,
        )
    }

    /// Refreshes the trust gauges (called at each metrics scrape).
    pub fn sample(&self, metrics: &crate::metrics::Metrics, active: Option<Fingerprint>) {
        use crate::metrics::{AnchorSetLabel, Trusts, TrustsLabel};
        let view = self.view();
        let mut counts = [0i64; 3];
        for w in &view.workloads {
            let i = match (&w.anchors, active) {
                (None, _) | (_, None) => 2,
                (Some(a), Some(act)) if a.contains(&act) => 0,
                _ => 1,
            };
            counts[i] += 1;
        }
        for (trusts_active, n) in [Trusts::Yes, Trusts::No, Trusts::Unknown]
            .into_iter()
            .zip(counts)
        {
            metrics
                .trust_workloads
                .get_or_create(&TrustsLabel { trusts_active })
                .set(n);
        }
        let early = i64::try_from(self.removed_early_now()).unwrap_or(i64::MAX);
        metrics.anchors_removed_early.set(early);
        metrics.trust_anchor_sets.clear();
        for (set, n) in view.by_anchor_set() {
            let anchors = match set {
                Some(s) => s
                    .iter()
                    .map(|f| certmint_core::digest::hex(&f[..8]))
                    .collect::<Vec<_>>()
                    .join(","),
                None => "unknown".to_owned(),
            };
            metrics
                .trust_anchor_sets
                .get_or_create(&AnchorSetLabel { anchors })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Who trusts what, against the active issuer's anchor and the held one's, and when
    /// each anchor of the bundle in use (`state`) may leave it.
    pub fn report(&self, state: Option<&CaState>) -> TrustReport {
        let active = state.map(|s| s.issuer.anchor_fingerprint());
        let pending = self
            .pending
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let hex = |f: &Fingerprint| certmint_core::digest::hex(f);
        let view = self.view();
        let bundle = state.map_or(&[][..], |s| s.anchors.certs());
        let (anchors, removed_early) = self.anchor_reports(&view, bundle, active, pending.as_ref());
        let workloads = view
            .workloads
            .iter()
            .map(|w| WorkloadReport {
                namespace: w.namespace.clone(),
                name: w.name.clone(),
                owner: w.owner.clone(),
                source: match w.source {
                    TrustSource::LinkerdEnv => "linkerd-env",
                    TrustSource::LinkerdConfigMap => "linkerd-configmap",
                    TrustSource::Istio => "istio",
                    TrustSource::TrustBundle => "cluster-trust-bundle",
                }
                .to_owned(),
                anchors: w.anchors.as_ref().map(|a| a.iter().map(hex).collect()),
                trusts_active: active.is_some_and(|a| w.trusts(&a)),
                trusts_pending: pending.as_ref().map(|(_, a)| w.trusts(a)),
            })
            .collect();
        TrustReport {
            interlock: true,
            synced: self.synced(),
            active_anchor: active.as_ref().map(hex),
            pending: pending.map(|(issuer, a)| PendingReport {
                issuer,
                anchor: hex(&a),
            }),
            workloads,
            anchors,
            removed_early,
        }
    }

    fn anchor_reports(
        &self,
        view: &TrustView,
        bundle: &[CertInfo],
        active: Option<Fingerprint>,
        pending: Option<&(String, Fingerprint)>,
    ) -> (Vec<AnchorReport>, Vec<RemovedAnchor>) {
        use certmint_core::ca::fmt_time;
        let now = self.clock.now();
        let retired = self
            .retired
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let anchors = bundle
            .iter()
            .map(|a| {
                let fp = sha256(&a.der);
                let issuer = match (active, pending) {
                    (Some(f), _) if f == fp => Some("active"),
                    (_, Some((_, f))) if *f == fp => Some("pending"),
                    _ => None,
                };
                let safe = self.safe_to_remove_at(&fp, issuer.is_some());
                AnchorReport {
                    fingerprint: certmint_core::digest::hex(&fp),
                    subject: a.subject.clone(),
                    not_after: fmt_time(a.not_after),
                    issuer: issuer.map(str::to_owned),
                    retired_at: retired.get(&fp).map(|t| fmt_time(*t)),
                    safe_to_remove_at: safe.map(fmt_time),
                    safe_to_remove_now: safe.is_some_and(|s| s <= now),
                    untrusting: view.not_trusting(&fp).count(),
                }
            })
            .collect();
        let early = self.removed_early.read().unwrap_or_else(|e| e.into_inner());
        let removed = early
            .iter()
            .filter(|(_, safe)| *safe > now)
            .map(|(a, safe)| RemovedAnchor {
                fingerprint: certmint_core::digest::hex(&a.fingerprint),
                subject: a.subject.clone(),
                safe_from: fmt_time(*safe),
            })
            .collect();
        (anchors, removed)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl TrustGate for TrustIndex {
    fn hold(&self, anchor: &Fingerprint) -> Option<Hold> {
        if !self.synced() {
            return Some(Hold::unsynced());
        }
        self.view().hold(anchor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::pod::tests::{pod, proxy, root_pem, time};
    use crate::trust::pod::{ISTIO_PROXY, TRUST_ANCHORS_ENV};
    use k8s_openapi::api::core::v1::{Container, EnvVar, PodStatus};

    /// A clock the test moves.
    struct Clock(std::sync::Mutex<SystemTime>);
    impl certmint_core::clock::Clock for Clock {
        fn now(&self) -> SystemTime {
            *self.0.lock().unwrap()
        }
    }

    fn running(name: &str, uid: &str, containers: Vec<Container>) -> Pod {
        let mut p = pod(containers);
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("shop".into());
        p.metadata.uid = Some(uid.into());
        p
    }

    fn literal(pem: &str) -> Container {
        proxy(EnvVar {
            name: TRUST_ANCHORS_ENV.into(),
            value: Some(pem.into()),
            ..EnvVar::default()
        })
    }

    fn from_config_map(started: SystemTime) -> (Container, PodStatus) {
        crate::trust::pod::tests::from_config_map("roots", time(started))
    }

    #[test]
    fn the_index_holds_a_new_root_until_the_last_pod_that_lacks_it_is_gone() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let clock = Arc::new(Clock(std::sync::Mutex::new(t0)));
        let index = TrustIndex::new(Duration::from_secs(86_400), clock.clone(), true);
        assert_eq!(
            index.hold(&[0; 32]),
            Some(Hold::unsynced()),
            "nothing known yet"
        );
        index.replace(&[]);
        let (old, new) = (root_pem(), root_pem());
        let new_fp = *fingerprints(&new).unwrap().iter().next().unwrap();
        let overlap = format!("{old}{new}");

        // The ConfigMap held the old root only, then the overlap.
        index.configmap("shop", "roots", "ca-bundle.crt", Some(&old));
        *clock.0.lock().unwrap() = t0 + Duration::from_secs(100);
        index.configmap("shop", "roots", "ca-bundle.crt", Some(&overlap));
        *clock.0.lock().unwrap() = t0 + Duration::from_secs(200);

        let a = running("a", "uid-a", vec![literal(&overlap)]);
        let b = running("b", "uid-b", vec![literal(&old)]);
        let (c_proxy, c_status) = from_config_map(t0 + Duration::from_secs(50));
        let mut c = running("c", "uid-c", vec![c_proxy]);
        c.status = Some(c_status);
        for p in [&a, &b, &c] {
            index.apply(p);
        }
        let hold = index.hold(&new_fp).unwrap();
        assert_eq!(hold.untrusting, 2, "{hold:?}");
        let mut sample = hold.sample.clone();
        sample.sort();
        assert_eq!(sample, ["shop/b", "shop/c"], "c started before the overlap");

        index.delete(&b);
        // c restarts after the overlap reached the ConfigMap.
        let (c_proxy, c_status) = from_config_map(t0 + Duration::from_secs(150));
        let mut c2 = running("c", "uid-c2", vec![c_proxy]);
        c2.status = Some(c_status);
        index.delete(&c);
        index.apply(&c2);
        assert_eq!(index.hold(&new_fp), None);

        // An Istio workload knows only what certmint served within a leaf lifetime.
        serve(&index, &old);
        index.apply(&running(
            "d",
            "uid-d",
            vec![Container {
                name: ISTIO_PROXY.into(),
                ..Container::default()
            }],
        ));
        assert_eq!(index.hold(&new_fp).map(|h| h.untrusting), Some(1));
        *clock.0.lock().unwrap() = t0 + Duration::from_secs(300);
        serve(&index, &overlap);
        assert!(
            index.hold(&new_fp).is_some(),
            "a renewal may not have happened yet"
        );
        *clock.0.lock().unwrap() = t0 + Duration::from_secs(300 + 86_400);
        assert_eq!(
            index.hold(&new_fp),
            None,
            "every Istio workload renewed since"
        );
    }

    /// A pod started at `started` mounting the ClusterTrustBundle of `signer`.
    fn mounting(name: &str, signer: &str, started: SystemTime) -> Pod {
        use k8s_openapi::api::core::v1::{
            ClusterTrustBundleProjection, ProjectedVolumeSource, Volume, VolumeProjection,
        };
        let mut p = running(name, &format!("uid-{name}"), vec![Container::default()]);
        p.spec.as_mut().unwrap().volumes = Some(vec![Volume {
            name: "trust".into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    cluster_trust_bundle: Some(ClusterTrustBundleProjection {
                        signer_name: Some(signer.into()),
                        path: "anchors.pem".into(),
                        ..ClusterTrustBundleProjection::default()
                    }),
                    ..VolumeProjection::default()
                }]),
                ..ProjectedVolumeSource::default()
            }),
            ..Volume::default()
        }]);
        p.status = Some(PodStatus {
            start_time: Some(time(started)),
            ..PodStatus::default()
        });
        p
    }

    #[test]
    fn pods_mounting_the_trust_bundle_trust_what_it_held_when_last_projected() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let clock = Arc::new(Clock(std::sync::Mutex::new(t0)));
        let index = TrustIndex::new(Duration::from_secs(86_400), clock.clone(), false)
            .with_trust_bundle("certmint.io/spiffe", "certmint.io:spiffe:anchors");
        let (old, new) = (root_pem(), root_pem());
        let overlap = format!("{old}{new}");
        let new_fp = *fingerprints(&new).unwrap().iter().next().unwrap();
        serve(&index, &old);
        index.replace(&[
            mounting("a", "certmint.io/spiffe", t0 - Duration::from_secs(3600)),
            mounting("other", "example.com/signer", t0),
        ]);
        assert_eq!(index.view().workloads.len(), 1, "another signer's bundle");
        assert_eq!(
            index.hold(&new_fp).map(|h| h.untrusting),
            Some(1),
            "a pod older than this process may hold a bundle it never saw"
        );
        *clock.0.lock().unwrap() = t0 + Duration::from_secs(600);
        serve(&index, &overlap);
        assert!(index.hold(&new_fp).is_some(), "not projected yet");
        // A pod started after the overlap was published mounts it.
        index.apply(&mounting(
            "b",
            "certmint.io/spiffe",
            t0 + Duration::from_secs(610),
        ));
        *clock.0.lock().unwrap() = t0 + Duration::from_secs(620);
        let view = index.view();
        let b = view.workloads.iter().find(|w| w.name == "b").unwrap();
        assert!(b.trusts(&new_fp) && b.source == TrustSource::TrustBundle);
        // The kubelet re-projected the bundle into a within its sync period.
        *clock.0.lock().unwrap() = t0 + Duration::from_secs(600) + PROJECTION_LAG;
        assert_eq!(index.hold(&new_fp), None);
        assert_eq!(
            index.report(None).workloads[0].source,
            "cluster-trust-bundle"
        );
    }

    /// certmint serves the anchors of `pem`.
    fn serve(index: &TrustIndex, pem: &str) {
        index.bundle_applied(fingerprints(pem).unwrap(), Vec::new());
    }
}
