//! What a running pod trusts (issue 21), read from the pod as the meshes deliver anchors:
//! Linkerd's injector writes the bundle into the proxy container's environment (or points
//! it at a ConfigMap read when the container starts); Istio workloads take the roots from
//! every CreateCertificate answer. Only certificates that parse count, as in
//! linkerd2-proxy; an anchor's own expiry does not matter to it.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use certmint_core::digest::sha256;
use certmint_core::trust::Fingerprint;

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
    /// Mounts a ClusterTrustBundle (a `clusterTrustBundle` projected volume source), by
    /// signer name or by object name; counted when it is certmint's.
    TrustBundle {
        signer_name: Option<String>,
        name: Option<String>,
    },
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
    let bundle = spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.projected.as_ref()?.sources.as_ref())
        .flatten()
        .find_map(|s| s.cluster_trust_bundle.as_ref());
    match bundle {
        Some(b) => PodTrust::TrustBundle {
            signer_name: b.signer_name.clone(),
            name: b.name.clone(),
        },
        None => PodTrust::NotMeshed,
    }
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapKeySelector, ContainerState, ContainerStateRunning, ContainerStatus, EnvVar,
        EnvVarSource, PodSpec, PodStatus,
    };

    pub(crate) fn root_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.self_signed(&key).unwrap().pem()
    }

    pub(crate) fn pod(containers: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers,
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    pub(crate) fn proxy(env: EnvVar) -> Container {
        Container {
            name: LINKERD_PROXY.into(),
            env: Some(vec![env]),
            ..Container::default()
        }
    }

    /// A proxy taking its bundle from `configmap`'s `ca-bundle.crt` at start, and a status
    /// saying it started at `started`.
    pub(crate) fn from_config_map(configmap: &str, started: Time) -> (Container, PodStatus) {
        let c = proxy(EnvVar {
            name: TRUST_ANCHORS_ENV.into(),
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: configmap.into(),
                    key: "ca-bundle.crt".into(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
        let status = PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                name: LINKERD_PROXY.into(),
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(started),
                    }),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        };
        (c, status)
    }

    /// `t` in whole seconds, as the API reports times.
    pub(crate) fn time(t: std::time::SystemTime) -> Time {
        let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        Time(k8s_openapi::jiff::Timestamp::from_second(secs as i64).unwrap())
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
        let started = Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap());
        let (proxy, status) = from_config_map("linkerd-identity-trust-roots", started.clone());
        let mut p = pod(vec![proxy]);
        p.status = Some(status);
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
}
