//! What a running pod trusts (issue 21), read from the pod as the meshes deliver anchors:
//! Linkerd's injector writes the bundle into the proxy container's environment (or points
//! it at a ConfigMap read when the container starts); Istio workloads take the roots from
//! every CreateCertificate answer. Only certificates that parse count, as in
//! linkerd2-proxy; an anchor's own expiry does not matter to it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use certmint_core::clock::Clock;
use certmint_core::digest::sha256;
use certmint_core::trust::{
    BundleHistory, Fingerprint, Hold, TrustGate, TrustSource, TrustView, Workload, istio_trusted,
};

/// Linkerd's proxy container and the variable holding its anchors.
pub const LINKERD_PROXY: &str = "linkerd-proxy";
pub const TRUST_ANCHORS_ENV: &str = "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS";
/// Istio's sidecar container; ambient pods carry the redirection annotation.
pub const ISTIO_PROXY: &str = "istio-proxy";
pub const AMBIENT_ANNOTATION: &str = "ambient.istio.io/redirection";

/// A bundle larger than this is not read (a hostile pod spec).
const MAX_BUNDLE: usize = 1 << 20;

/// How a pod gets its anchors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodTrust {
    /// Not a meshed pod certmint knows.
    NotMeshed,
    /// Linkerd, the PEM literally in the environment: its anchors (`None`: none parse).
    Literal(Option<BTreeSet<Fingerprint>>),
    /// Linkerd, from a ConfigMap key read when the proxy container started.
    FromConfigMap {
        name: String,
        key: String,
        started_at: Option<Time>,
    },
    /// Istio, sidecar or ambient: the roots of its last CreateCertificate answer.
    Istio,
}

/// What `pod` trusts, from its spec and status.
pub fn pod_trust(pod: &Pod) -> PodTrust {
    let Some(spec) = &pod.spec else {
        return PodTrust::NotMeshed;
    };
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    if let Some(proxy) = containers.clone().find(|c| c.name == LINKERD_PROXY) {
        return linkerd(pod, proxy);
    }
    let ambient = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(AMBIENT_ANNOTATION))
        .is_some_and(|v| v == "enabled");
    if ambient || containers.clone().any(|c| c.name == ISTIO_PROXY) {
        return PodTrust::Istio;
    }
    PodTrust::NotMeshed
}

fn linkerd(pod: &Pod, proxy: &Container) -> PodTrust {
    let Some(var) = proxy
        .env
        .iter()
        .flatten()
        .find(|e| e.name == TRUST_ANCHORS_ENV)
    else {
        return PodTrust::Literal(None);
    };
    if let Some(value) = &var.value {
        return PodTrust::Literal(fingerprints(value));
    }
    let Some(cm) = var
        .value_from
        .as_ref()
        .and_then(|v| v.config_map_key_ref.as_ref())
    else {
        return PodTrust::Literal(None);
    };
    PodTrust::FromConfigMap {
        name: cm.name.clone(),
        key: cm.key.clone(),
        started_at: started_at(pod, LINKERD_PROXY),
    }
}

/// When the named container's current run started.
fn started_at(pod: &Pod, container: &str) -> Option<Time> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let status = statuses.iter().find(|s| s.name == container)?;
    status.state.as_ref()?.running.as_ref()?.started_at.clone()
}

/// The fingerprints of the certificates in `pem` that parse; `None` when none does.
pub fn fingerprints(pem: &str) -> Option<BTreeSet<Fingerprint>> {
    if pem.len() > MAX_BUNDLE {
        return None;
    }
    let blocks = pem::parse_many(pem).ok()?;
    let set: BTreeSet<Fingerprint> = blocks
        .iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .filter(|b| x509_parser::parse_x509_certificate(b.contents()).is_ok())
        .map(|b| sha256(b.contents()))
        .collect();
    (!set.is_empty()).then_some(set)
}

/// What every running meshed pod trusts, kept from the pod watch (and the ConfigMaps
/// Linkerd pods read their bundle from, and the bundles certmint served Istio workloads),
/// answering the reloader's interlock question.
pub struct TrustIndex {
    inner: RwLock<Inner>,
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
    pub fn new(leaf_lifetime: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: RwLock::default(),
            leaf_lifetime,
            clock,
        }
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
        let mut inner = self.write();
        if finished || trust == PodTrust::NotMeshed || pod.metadata.deletion_timestamp.is_some() {
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

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl TrustGate for TrustIndex {
    fn hold(&self, anchor: &Fingerprint) -> Option<Hold> {
        self.view().hold(anchor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapKeySelector, ContainerState, ContainerStateRunning, ContainerStatus, EnvVar,
        EnvVarSource, PodSpec, PodStatus,
    };

    fn root_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.self_signed(&key).unwrap().pem()
    }

    fn pod(containers: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers,
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    fn proxy(env: EnvVar) -> Container {
        Container {
            name: LINKERD_PROXY.into(),
            env: Some(vec![env]),
            ..Container::default()
        }
    }

    #[test]
    fn the_literal_bundle_counts_the_certificates_that_parse() {
        let (a, b) = (root_pem(), root_pem());
        let junk = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let env = EnvVar {
            name: TRUST_ANCHORS_ENV.into(),
            value: Some(format!("{a}{junk}{b}")),
            ..EnvVar::default()
        };
        let PodTrust::Literal(Some(set)) = pod_trust(&pod(vec![proxy(env)])) else {
            panic!("a literal bundle");
        };
        assert_eq!(set.len(), 2);
        assert_eq!(fingerprints(junk), None);
    }

    #[test]
    fn a_bundle_from_a_config_map_is_known_by_the_proxy_start_time() {
        let env = EnvVar {
            name: TRUST_ANCHORS_ENV.into(),
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: "linkerd-identity-trust-roots".into(),
                    key: "ca-bundle.crt".into(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        };
        let mut p = pod(vec![proxy(env)]);
        let started = Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap());
        p.status = Some(PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                name: LINKERD_PROXY.into(),
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(started.clone()),
                    }),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        });
        assert_eq!(
            pod_trust(&p),
            PodTrust::FromConfigMap {
                name: "linkerd-identity-trust-roots".into(),
                key: "ca-bundle.crt".into(),
                started_at: Some(started),
            }
        );
    }

    #[test]
    fn istio_sidecars_and_ambient_pods_are_istio_and_others_not_meshed() {
        let sidecar = pod(vec![Container {
            name: ISTIO_PROXY.into(),
            ..Container::default()
        }]);
        assert_eq!(pod_trust(&sidecar), PodTrust::Istio);
        let mut ambient = pod(vec![Container::default()]);
        ambient.metadata.annotations =
            Some([(AMBIENT_ANNOTATION.to_owned(), "enabled".to_owned())].into());
        assert_eq!(pod_trust(&ambient), PodTrust::Istio);
        assert_eq!(
            pod_trust(&pod(vec![Container::default()])),
            PodTrust::NotMeshed
        );
        let no_env = proxy(EnvVar::default());
        assert_eq!(pod_trust(&pod(vec![no_env])), PodTrust::Literal(None));
    }

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
        let index = TrustIndex::new(Duration::from_secs(86_400), clock.clone());
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
