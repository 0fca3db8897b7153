//! Publishes the trust anchors as a ClusterTrustBundle for the signer name, so that pods
//! can mount them next to their certificate (`clusterTrustBundle` projected source).
//! Follows the CA store: a change of anchors is written within one poll, and the object is
//! re-read periodically so an edit or deletion by someone else is undone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::Resource;
use k8s_openapi::api::certificates::v1::{ClusterTrustBundle, ClusterTrustBundleSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use tokio::sync::watch;

use certmint_core::ca::{CaStore, TrustAnchors};

use super::issue::pem_cert;
use super::metrics::{BundleWrite, Metrics};
use super::settings::ApiVersion;
use super::version;
use super::versioned::VersionedApi;

/// The label pods can select the bundle by.
pub const LABEL: &str = "certmint.io/trust-bundle";

/// Keeps one ClusterTrustBundle equal to the store's anchors.
pub struct BundlePublisher {
    pub client: Client,
    pub name: String,
    pub signer_name: String,
    pub store: CaStore,
    pub metrics: Arc<Metrics>,
    /// How often the store is looked at.
    pub poll: Duration,
    /// How often the object is re-read even when the anchors did not change.
    pub resync: Duration,
    /// The `certificates.k8s.io` version to publish in (`auto`: the one served).
    pub api_version: ApiVersion,
}

impl BundlePublisher {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let resource = ClusterTrustBundle::URL_PATH_SEGMENT;
        let Some(version) =
            version::choose_until_found(&self.client, self.api_version, resource, &mut shutdown)
                .await
        else {
            return;
        };
        let api = VersionedApi::<ClusterTrustBundle>::all(self.client.clone(), version);
        let mut published: Option<String> = None;
        let mut last_sync = tokio::time::Instant::now();
        loop {
            let wanted = self.store.load().map(|s| bundle_pem(&s.anchors));
            let stale = last_sync.elapsed() >= self.resync;
            if let Some(pem) = wanted.filter(|w| stale || published.as_ref() != Some(w)) {
                match self.sync(&api, &pem).await {
                    Ok(()) => {
                        published = Some(pem);
                        last_sync = tokio::time::Instant::now();
                    }
                    Err(e) => {
                        self.count(BundleWrite::Error);
                        tracing::warn!(bundle = %self.name, error = %e, "cannot publish the ClusterTrustBundle; will retry");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
    }

    /// Creates the object, or updates it (with its resourceVersion) when it differs.
    async fn sync(
        &self,
        api: &VersionedApi<ClusterTrustBundle>,
        pem: &str,
    ) -> Result<(), kube::Error> {
        match api.get_opt(&self.name).await? {
            None => {
                api.create(&self.object(pem, None)).await?;
                self.count(BundleWrite::Created);
                tracing::info!(bundle = %self.name, "ClusterTrustBundle created");
            }
            Some(current)
                if current.spec.trust_bundle != pem
                    || current.spec.signer_name.as_deref() != Some(&self.signer_name) =>
            {
                let rv = current.metadata.resource_version.clone();
                api.replace(&self.name, &self.object(pem, rv)).await?;
                self.count(BundleWrite::Updated);
                tracing::info!(bundle = %self.name, "ClusterTrustBundle updated to the current anchors");
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn object(&self, pem: &str, resource_version: Option<String>) -> ClusterTrustBundle {
        let labels = BTreeMap::from([(LABEL.to_owned(), "anchors".to_owned())]);
        ClusterTrustBundle {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(labels),
                resource_version,
                ..ObjectMeta::default()
            },
            spec: ClusterTrustBundleSpec {
                signer_name: Some(self.signer_name.clone()),
                trust_bundle: pem.to_owned(),
            },
        }
    }

    fn count(&self, result: BundleWrite) {
        self.metrics
            .bundle_writes
            .get_or_create(&crate::metrics::ResultLabel { result })
            .inc();
    }
}

/// Every anchor of the bundle, PEM, in the source's order.
pub fn bundle_pem(anchors: &TrustAnchors) -> String {
    anchors.certs().iter().map(|c| pem_cert(&c.der)).collect()
}
