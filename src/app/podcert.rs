//! Builds the pod-certificate signer and the ClusterTrustBundle publisher
//! (`pod_certificates:`), when enabled.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use certmint_audit::AuditLog;
use certmint_core::certify::Certifier;
use certmint_k8s::podcert::{BundlePublisher, DecisionAudit, Signer, SignerParts};

use super::Parts;

/// Starts the signer (and the bundle publisher) until shutdown.
pub(super) fn start(parts: &mut Parts, audit: Option<&Arc<AuditLog>>) -> anyhow::Result<()> {
    let config = parts.settings.config.pod_certificates.clone();
    if !config.enabled {
        return Ok(());
    }
    let client = parts.kube.clone().context(
        "pod_certificates.enabled needs a Kubernetes client; set kubeconfig or run in a cluster",
    )?;
    let pods = super::sources::shared_pod_index(parts, "pod_certificates.enabled")?;
    let issuance = parts.settings.config.issuance;
    let certifier = Certifier::attested_only(
        parts.store.clone(),
        parts.settings.naming.clone(),
        issuance,
        parts.clock.clone(),
    );
    if config.publish_trust_bundle {
        let publisher = BundlePublisher {
            client: client.clone(),
            name: config.trust_bundle_name(),
            signer_name: config.signer_name.clone(),
            store: parts.store.clone(),
            metrics: parts.metrics.podcert.clone(),
            poll: Duration::from_secs(2),
            resync: Duration::from_secs(60),
            api_version: config.api_version,
        };
        parts.spawn(publisher.run(parts.shutdown.clone()));
    }
    let signer = Signer::new(SignerParts {
        client,
        certifier: Arc::new(certifier),
        store: parts.store.clone(),
        pods,
        config,
        lifetime: issuance.lifetime,
        clock_skew: issuance.clock_skew,
        clock: parts.clock.clone(),
        metrics: parts.metrics.podcert.clone(),
        audit: audit.map(|a| {
            Arc::new(super::podcert_audit::PodCertAudit(a.clone())) as Arc<dyn DecisionAudit>
        }),
    });
    parts.spawn(signer.run(parts.shutdown.clone()));
    Ok(())
}
