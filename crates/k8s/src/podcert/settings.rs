//! The `pod_certificates:` section: certmint as a PodCertificateRequest signer.

use std::time::Duration;

use certmint_core::identity::is_dns1123_subdomain;
use certmint_core::settings::{SettingError, invalid};

/// Settings of the pod-certificate signer.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PodCertConfig {
    /// Sign PodCertificateRequests for `signer_name` (needs a Kubernetes client).
    pub enabled: bool,
    /// The signer name pods ask for (`domain/path`, not under `kubernetes.io`).
    pub signer_name: String,
    /// How long a request for a pod the pod watch has not shown yet waits before it is
    /// denied (`PodNotFound` or `PodUIDMismatch`).
    #[serde(deserialize_with = "certmint_core::settings::duration")]
    pub pod_wait: Duration,
    /// Where in the lifetime the kubelet is told to refresh (`beginRefreshAt`), with ±5 %
    /// of the lifetime as jitter.
    pub refresh_fraction: f64,
    /// Status writes per second towards the API server, and the burst above that.
    pub write_qps: u32,
    pub write_burst: u32,
    /// Requests signed and written at once.
    pub workers: usize,
    /// Publish the trust anchors as a ClusterTrustBundle for `signer_name`.
    pub publish_trust_bundle: bool,
    /// Before working on a new request a replica waits a delay in [0, claim_stagger)
    /// drawn from the request's UID and a per-replica seed: with several replicas the
    /// first one's decision usually reaches the others' watches before they sign.
    #[serde(deserialize_with = "certmint_core::settings::duration")]
    pub claim_stagger: Duration,
    /// The `certificates.k8s.io` version of PodCertificateRequests and ClusterTrustBundles.
    pub api_version: ApiVersion,
}

/// `pod_certificates.api_version`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    /// API discovery at start: `v1` when the server serves the resource there, else
    /// `v1beta1` (each of the two resources on its own).
    #[default]
    Auto,
    /// Kubernetes 1.37 and later.
    V1,
    /// Kubernetes 1.36 (its `v1beta1` has the stub CSR; 1.35's has not).
    V1beta1,
}

impl Default for PodCertConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            signer_name: "certmint.io/spiffe".into(),
            pod_wait: Duration::from_secs(30),
            refresh_fraction: 0.5,
            write_qps: 50,
            write_burst: 100,
            workers: 8,
            publish_trust_bundle: true,
            claim_stagger: Duration::from_millis(300),
            api_version: ApiVersion::Auto,
        }
    }
}

impl PodCertConfig {
    /// Checks the section; the first problem names its setting.
    pub fn validate(&self) -> Result<(), SettingError> {
        if !valid_signer_name(&self.signer_name) {
            return Err(invalid(
                "pod_certificates.signer_name",
                "must be DOMAIN/PATH with a DNS domain other than kubernetes.io, e.g. certmint.io/spiffe",
            ));
        }
        if self.pod_wait < Duration::from_secs(1) || self.pod_wait > Duration::from_secs(600) {
            return Err(invalid(
                "pod_certificates.pod_wait",
                "must be between 1s and 10m",
            ));
        }
        if !(0.3..=0.8).contains(&self.refresh_fraction) {
            return Err(invalid(
                "pod_certificates.refresh_fraction",
                "must be between 0.3 and 0.8",
            ));
        }
        if self.write_qps == 0 || self.write_burst == 0 {
            return Err(invalid(
                "pod_certificates.write_qps",
                "write_qps and write_burst must be positive",
            ));
        }
        if self.claim_stagger > Duration::from_secs(5) {
            return Err(invalid(
                "pod_certificates.claim_stagger",
                "must be at most 5s",
            ));
        }
        if !(1..=256).contains(&self.workers) {
            return Err(invalid(
                "pod_certificates.workers",
                "must be between 1 and 256",
            ));
        }
        Ok(())
    }

    /// The ClusterTrustBundle's name: the API requires the signer name, `/` written `:`,
    /// as a prefix.
    pub fn trust_bundle_name(&self) -> String {
        format!("{}:anchors", self.signer_name.replace('/', ":"))
    }
}

/// `domain/path`: a DNS subdomain outside `kubernetes.io`, a non-empty path of safe
/// characters, and short enough for the object names derived from it.
pub fn valid_signer_name(name: &str) -> bool {
    let Some((domain, path)) = name.split_once('/') else {
        return false;
    };
    let reserved = domain == "kubernetes.io" || domain.ends_with(".kubernetes.io");
    name.len() <= 200
        && is_dns1123_subdomain(domain)
        && !reserved
        && !path.is_empty()
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signer_names_must_be_domain_prefixed_and_not_reserved() {
        assert!(valid_signer_name("certmint.io/spiffe"));
        assert!(valid_signer_name("example.com/mesh-ca"));
        for bad in [
            "spiffe",
            "certmint.io/",
            "kubernetes.io/kube-apiserver-client-pod",
            "x.kubernetes.io/a",
            "Bad_Domain/x",
            "certmint.io/a/b",
        ] {
            assert!(!valid_signer_name(bad), "{bad}");
        }
    }

    #[test]
    fn defaults_validate_and_name_the_bundle_after_the_signer() {
        let c = PodCertConfig::default();
        c.validate().unwrap();
        assert_eq!(c.trust_bundle_name(), "certmint.io:spiffe:anchors");
        let bad = PodCertConfig {
            refresh_fraction: 0.95,
            ..c
        };
        assert_eq!(
            bad.validate().unwrap_err().setting,
            "pod_certificates.refresh_fraction"
        );
    }
}
