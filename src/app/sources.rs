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
use certmint_k8s::trust::watch::run_configmap;

use super::Parts;
use crate::config::{AuthnMode, Config, SourceKind};

/// Whether any part needs the API server.
pub(super) fn needs_kube(c: &Config) -> bool {
    c.authn.mode == AuthnMode::Kubernetes
        || c.issuer.source == SourceKind::Kubernetes
        || c.trust_anchors.source == SourceKind::Kubernetes
        || c.istio.impersonation()
        // The interlock watches pods through an explicitly configured cluster.
        || (c.rotation.interlock && c.kubeconfig.is_some())
        || c.pod_certificates.enabled
}

/// Starts the sources; they push what they read through the reloader into the store.
pub(super) fn start(parts: &mut Parts) -> anyhow::Result<()> {
    let reloader = Arc::new(reloader(parts));
    start_interlock(parts, &reloader)?;
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
        return Ok(());
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
    Ok(())
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
    let reloader = Reloader::new(
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
    .with_override_hook(audit_override(parts.audit_cell.clone()));
    match &parts.trust {
        Some(index) => reloader.with_trust(index.clone()),
        None => reloader,
    }
}

/// Records an issuer the interlock's override activated in the audit trail (when on).
fn audit_override(
    cell: Arc<std::sync::OnceLock<Arc<certmint_audit::AuditLog>>>,
) -> certmint_k8s::sources::OverrideHook {
    use certmint_audit::record::{Body, Override};
    Arc::new(move |issuer, hold| {
        let (Some(log), Ok(rt)) = (cell.get(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let body = certmint_audit::EncodedBody::new(&Body::Override(Override {
            issuer: issuer.cert().subject.clone(),
            serial: issuer.cert().serial_hex.clone(),
            anchor_sha256: certmint_core::digest::hex(&issuer.anchor_fingerprint()),
            untrusting: hold.untrusting as u64,
            sample: hold.sample.clone(),
        }));
        let log = log.clone();
        rt.spawn(async move {
            if let Err(e) = log.record(body, std::time::Duration::from_secs(5)).await {
                tracing::error!(error = %e, "the interlock override could not be recorded in the audit trail");
            }
        });
    })
}

/// The cluster-wide pod watch, started once when impersonation checks or the trust
/// interlock need it.
pub(super) fn pod_index(parts: &mut Parts) -> anyhow::Result<Option<Arc<PodIndex>>> {
    if let Some(pods) = &parts.pods {
        return Ok(Some(pods.clone()));
    }
    if !parts.settings.config.istio.impersonation() && parts.trust.is_none() {
        return Ok(None);
    }
    let needed_by = match parts.settings.config.istio.impersonation() {
        true => "istio.trusted_node_accounts",
        false => "rotation.interlock",
    };
    shared_pod_index(parts, needed_by).map(Some)
}

/// The one cluster-wide pod watch, started by the first part that needs it (`needed_by`
/// names that part's setting in the error when there is no client); it also feeds the
/// trust index when the interlock is on.
pub(super) fn shared_pod_index(
    parts: &mut Parts,
    needed_by: &str,
) -> anyhow::Result<Arc<PodIndex>> {
    if let Some(pods) = &parts.pods {
        return Ok(pods.clone());
    }
    let client = parts.kube.clone().with_context(|| format!("{needed_by} needs a Kubernetes client to watch pods; set kubeconfig or run in a cluster"))?;
    let pods = Arc::new(PodIndex::with_trust(parts.trust.clone()));
    let run = pods.clone().run(client, parts.shutdown.clone());
    parts.spawn(run);
    parts.pods = Some(pods.clone());
    Ok(pods)
}

/// The interlock's inputs: the pod watch, the ConfigMaps pods read bundles from, and a
/// look at a held issuer every few seconds (pods come and go without a new issuer read).
fn start_interlock(parts: &mut Parts, reloader: &Arc<Reloader>) -> anyhow::Result<()> {
    let (Some(index), Some(client)) = (parts.trust.clone(), parts.kube.clone()) else {
        return Ok(());
    };
    pod_index(parts)?;
    let every = parts.settings.config.trust_anchors.reload_interval;
    for (ns, name) in parts.settings.config.rotation.configmaps() {
        let watch = run_configmap(
            client.clone(),
            ns,
            name,
            every,
            index.clone(),
            parts.shutdown.clone(),
        );
        parts.spawn(watch);
    }
    let (reloader, mut stop) = (reloader.clone(), parts.shutdown.clone());
    parts.spawn(async move {
        let mut tick = tokio::time::interval(RECHECK);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => reloader.trust_changed(),
            }
        }
    });
    tracing::info!(
        "trust interlock on: an issuer under another trust anchor waits until every running meshed pod trusts it"
    );
    Ok(())
}

/// How often a held issuer is looked at again.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(5);
