//! The trust index: what every running meshed pod trusts now, answering the reloader's
//! interlock question ([`TrustGate`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;

use certmint_core::clock::Clock;
use certmint_core::trust::{
    BundleHistory, Fingerprint, Hold, TrustGate, TrustSource, TrustView, Workload, istio_trusted,
};

use super::pod::{PodTrust, fingerprints, pod_trust};
use super::report::{PendingReport, TrustReport, WorkloadReport};

/// What every running meshed pod trusts, kept from the pod watch (and the ConfigMaps
/// Linkerd pods read their bundle from, and the bundles certmint served Istio workloads),
/// answering the reloader's interlock question.
pub struct TrustIndex {
    inner: RwLock<Inner>,
    /// Istio workloads count only when certmint serves Istio's API (otherwise their roots
    /// come from elsewhere and are unknown to it).
    istio: bool,
    /// The pod list has been loaded; until then every root change is held.
    synced: AtomicBool,
    /// The issuer the interlock holds, for reports: subject and anchor.
    pending: RwLock<Option<(String, Fingerprint)>>,
    /// Anchors whose issuer certmint stopped signing with, and when: leaves under them
    /// live one leaf lifetime longer.
    retired: RwLock<HashMap<Fingerprint, SystemTime>>,
    /// The longest leaf lifetime: Istio workloads renew within it.
    leaf_lifetime: Duration,
    clock: Arc<dyn Clock>,
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
}

impl TrustIndex {
    pub fn new(leaf_lifetime: Duration, clock: Arc<dyn Clock>, istio: bool) -> Self {
        Self {
            inner: RwLock::default(),
            istio,
            synced: AtomicBool::new(false),
            pending: RwLock::new(None),
            retired: RwLock::default(),
            leaf_lifetime,
            clock,
        }
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
        let counted = match trust {
            PodTrust::NotMeshed => false,
            PodTrust::Istio => self.istio,
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

    /// certmint now serves `anchors` to Istio workloads.
    pub fn served(&self, anchors: BTreeSet<Fingerprint>) {
        let now = self.clock.now();
        self.write().served.observe(now, Some(anchors));
    }

    /// The running meshed workloads and what they trust, now.
    pub fn view(&self) -> TrustView {
        let now = self.clock.now();
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let istio = istio_trusted(inner.served.versions(), now, self.leaf_lifetime);
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
                    PodTrust::Istio => (TrustSource::Istio, istio.clone()),
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
    /// issuer was retired (an anchor no issuer of this process used: now).
    pub fn safe_to_remove_at(&self, anchor: &Fingerprint, in_use: bool) -> Option<SystemTime> {
        let retired = self.retired.read().unwrap_or_else(|e| e.into_inner());
        certmint_core::trust::safe_to_remove_at(
            in_use,
            retired.get(anchor).copied(),
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

    /// Who trusts what, against the active issuer's anchor and the held one's.
    pub fn report(&self, active: Option<Fingerprint>) -> TrustReport {
        let pending = self
            .pending
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let hex = |f: &Fingerprint| certmint_core::digest::hex(f);
        let workloads = self
            .view()
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
        }
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
    use crate::trust::pod::tests::{pod, proxy, root_pem};
    use crate::trust::pod::{ISTIO_PROXY, LINKERD_PROXY, TRUST_ANCHORS_ENV};
    use k8s_openapi::api::core::v1::{
        ConfigMapKeySelector, Container, ContainerState, ContainerStateRunning, ContainerStatus,
        EnvVar, EnvVarSource, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

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
        let c = proxy(EnvVar {
            name: TRUST_ANCHORS_ENV.into(),
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: "roots".into(),
                    key: "ca-bundle.crt".into(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
        let secs = started
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let at = Time(k8s_openapi::jiff::Timestamp::from_second(secs as i64).unwrap());
        let status = PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                name: LINKERD_PROXY.into(),
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(at),
                    }),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        };
        (c, status)
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
        index.served(fingerprints(&old).unwrap());
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
        index.served(fingerprints(&overlap).unwrap());
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
}
