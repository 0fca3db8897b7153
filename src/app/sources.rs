//! Builds the issuer and anchor sources (files, Kubernetes, or one of each) around the one
//! [`Reloader`], and the pod index behind Istio impersonation checks.

use std::sync::Arc;

use anyhow::Context;
use certmint_core::ca::probe_names;
use certmint_k8s::pods::PodIndex;
use certmint_k8s::sources::events::EventReporter;
use certmint_k8s::sources::files::FileSources;
use certmint_k8s::sources::kube as kube_sources;
use certmint_k8s::sources::{NoReport, ReloadReporter, Reloader, Reminders};

use super::Parts;
use crate::config::{AuthnMode, Config, SourceKind};

/// Whether any part needs the API server.
pub(super) fn needs_kube(c: &Config) -> bool {
    c.authn.mode == AuthnMode::Kubernetes
        || c.issuer.source == SourceKind::Kubernetes
        || c.trust_anchors.source == SourceKind::Kubernetes
        || c.istio.impersonation()
        || c.pod_certificates.enabled
}

/// Starts the sources; they push what they read through the reloader into the store.
pub(super) fn start(parts: &mut Parts) {
    let reloader = Arc::new(reloader(parts));
    let (i, a) = (
        parts.settings.config.issuer.clone(),
        parts.settings.config.trust_anchors.clone(),
    );
    let files = FileSources {
        issuer_dir: (i.source == SourceKind::Files).then(|| i.dir.clone()),
        anchors_file: (a.source == SourceKind::Files).then(|| a.file.clone()),
        interval: i.reload_interval.min(a.reload_interval),
    };
    let shutdown = parts.shutdown.clone();
    if files.issuer_dir.is_some() || files.anchors_file.is_some() {
        files.load_once(&reloader);
        parts.spawn(files.run(reloader.clone(), shutdown.clone()));
    }
    let Some(client) = parts.kube.clone() else {
        return;
    };
    if a.source == SourceKind::Kubernetes {
        parts.spawn(kube_sources::run_anchors(
            client.clone(),
            a.namespace,
            a.configmap,
            a.key,
            a.reload_interval,
            reloader.clone(),
            shutdown.clone(),
        ));
    }
    if i.source == SourceKind::Kubernetes {
        parts.spawn(kube_sources::run_issuer(
            client,
            i.namespace,
            i.secret,
            i.reload_interval,
            reloader,
            shutdown,
        ));
    }
}

fn reloader(parts: &Parts) -> Reloader {
    let config = &parts.settings.config;
    let reporter: Arc<dyn ReloadReporter> = match (&parts.kube, config.issuer.source) {
        (Some(c), SourceKind::Kubernetes) => Arc::new(EventReporter::new(
            c.clone(),
            &config.issuer.namespace,
            &config.issuer.secret,
        )),
        _ => Arc::new(NoReport),
    };
    Reloader::new(
        parts.store.clone(),
        probe_names(&parts.settings.naming),
        parts.metrics.kube.clone(),
        parts.clock.clone(),
        reporter,
        Reminders {
            issuer: config.issuer.reload_interval,
            anchors: config.trust_anchors.reload_interval,
        },
    )
    .with_keys(parts.keys.clone())
}

/// The pod watch behind impersonation checks, when trusted node accounts are configured.
pub(super) fn pod_index(parts: &mut Parts) -> anyhow::Result<Option<Arc<PodIndex>>> {
    if !parts.settings.config.istio.impersonation() {
        return Ok(None);
    }
    shared_pod_index(parts, "istio.trusted_node_accounts").map(Some)
}

/// The one cluster-wide pod watch, started by the first part that needs it (`needed_by`
/// names that part's setting in the error when there is no client).
pub(super) fn shared_pod_index(
    parts: &mut Parts,
    needed_by: &str,
) -> anyhow::Result<Arc<PodIndex>> {
    if let Some(pods) = &parts.pods {
        return Ok(pods.clone());
    }
    let client = parts.kube.clone().with_context(|| format!("{needed_by} needs a Kubernetes client to watch pods; set kubeconfig or run in a cluster"))?;
    let pods = Arc::new(PodIndex::default());
    let run = pods.clone().run(client, parts.shutdown.clone());
    parts.spawn(run);
    parts.pods = Some(pods.clone());
    Ok(pods)
}
