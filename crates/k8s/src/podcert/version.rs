//! Which `certificates.k8s.io` version certmint talks to. Kubernetes 1.37 serves
//! PodCertificateRequests and ClusterTrustBundles in `v1`; 1.36 only in `v1beta1`. The
//! setting names one, or (`auto`) API discovery picks `v1` when the server lists the
//! resource there, else `v1beta1`.

use std::time::Duration;

use kube::Client;
use tokio::sync::watch;

use super::settings::ApiVersion;

/// The group both resources live in.
pub const GROUP: &str = "certificates.k8s.io";
/// How long a failed or empty discovery waits before it is tried again.
const RETRY: Duration = Duration::from_secs(30);

/// A served version of `certificates.k8s.io`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V1beta1,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V1beta1 => "v1beta1",
        }
    }

    /// `certificates.k8s.io/VERSION`.
    pub fn api_version(self) -> String {
        format!("{GROUP}/{}", self.as_str())
    }
}

/// Why no version could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The discovery request failed.
    #[error("API discovery of {GROUP} failed: {0}")]
    Api(#[source] kube::Error),
    /// Neither version lists the resource.
    #[error(
        "the API server serves no {0} in {GROUP} v1 or v1beta1; enable the PodCertificateRequest feature gate (Kubernetes 1.36: also --runtime-config={GROUP}/v1beta1=true) or set pod_certificates.enabled: false"
    )]
    NotServed(&'static str),
}

/// The version to use for `resource` (plural, e.g. `podcertificaterequests`).
pub async fn choose(
    client: &Client,
    setting: ApiVersion,
    resource: &'static str,
) -> Result<Version, DiscoveryError> {
    match setting {
        ApiVersion::V1 => Ok(Version::V1),
        ApiVersion::V1beta1 => Ok(Version::V1beta1),
        ApiVersion::Auto => {
            for version in [Version::V1, Version::V1beta1] {
                if serves(client, version, resource).await? {
                    return Ok(version);
                }
            }
            Err(DiscoveryError::NotServed(resource))
        }
    }
}

/// Whether `GET /apis/certificates.k8s.io/VERSION` lists `resource` (a 404 is "no": the
/// version is not served at all).
async fn serves(client: &Client, version: Version, resource: &str) -> Result<bool, DiscoveryError> {
    match client
        .list_api_group_resources(&version.api_version())
        .await
    {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == resource)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(DiscoveryError::Api(e)),
    }
}

/// [`choose`], tried again every 30 s until it succeeds; logs the choice once. None on
/// shutdown.
pub async fn choose_until_found(
    client: &Client,
    setting: ApiVersion,
    resource: &'static str,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Version> {
    loop {
        match choose(client, setting, resource).await {
            Ok(version) => {
                tracing::info!(resource, api_version = %version.api_version(), setting = ?setting, "certificates.k8s.io version chosen");
                return Some(version);
            }
            Err(e) => {
                tracing::error!(resource, error = %e, "cannot choose a certificates.k8s.io version; retrying in 30s")
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return None,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}
