//! Wiring for `certmint serve` (and `dev`): builds the parts from checked [`Settings`],
//! starts the listeners and background tasks, and shuts down gracefully. Each part is
//! built by one function of the submodules; no business rule lives here.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use certmint_audit::AuditLog;
use certmint_core::ca::{CaStore, KeyResolver, NoExternalKeys};
use certmint_core::clock::{Clock, SystemClock};
use certmint_k8s::trust::TrustIndex;

use crate::config::{Config, Settings};
use crate::metrics::Metrics;
use crate::readiness::Readiness;

mod authn;
mod grpc;
mod podcert;
mod podcert_audit;
mod sources;

/// What every builder shares: the settings, the clock, the metrics, the store, the
/// Kubernetes client when one is needed, and the shutdown signal its tasks watch.
struct Parts {
    settings: Settings,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    store: CaStore,
    kube: Option<kube::Client>,
    /// Resolves issuer keys held in an HSM (`hsm:`), else refuses them.
    keys: Arc<dyn KeyResolver>,
    /// What running workloads trust, when the interlock is on (Kubernetes client and
    /// `rotation.interlock`).
    trust: Option<Arc<TrustIndex>>,
    /// The cluster-wide pod watch, once started (interlock and/or impersonation).
    pods: Option<Arc<certmint_k8s::pods::PodIndex>>,
    /// The audit trail once started (the sources start before it and record overrides).
    audit_cell: Arc<std::sync::OnceLock<Arc<AuditLog>>>,
    shutdown: watch::Receiver<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Parts {
    fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }
}

/// A running server.
pub struct Server {
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub store: CaStore,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    /// The audit trail, when `audit.enabled`.
    pub audit: Option<Arc<AuditLog>>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    grpc: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Checks `config` and starts everything it describes with the real clock.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        Self::start_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn start_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let settings = config.check()?;
        let kube = match sources::needs_kube(&settings.config) {
            true => {
                Some(certmint_k8s::client::client(settings.config.kubeconfig.as_deref()).await?)
            }
            false => None,
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let metrics = Arc::new(Metrics::new());
        let keys = hsm_keys(settings.config.hsm.as_ref(), &metrics)?;
        let trust = (kube.is_some() && settings.config.rotation.interlock).then(|| {
            let c = &settings.config;
            let lifetime = c.issuance.lifetime + c.issuance.clock_skew;
            let index = TrustIndex::new(lifetime, clock.clone(), c.istio.enabled);
            let pc = &c.pod_certificates;
            Arc::new(match pc.enabled && pc.publish_trust_bundle {
                true => index.with_trust_bundle(&pc.signer_name, &pc.trust_bundle_name()),
                false => index,
            })
        });
        let mut parts = Parts {
            settings,
            clock,
            metrics,
            store: CaStore::new(),
            kube,
            keys,
            trust,
            pods: None,
            audit_cell: Arc::default(),
            shutdown: shutdown_rx,
            tasks: Vec::new(),
        };
        sources::start(&mut parts)?;
        let audit = start_audit(&parts)?;
        if let Some(log) = &audit {
            let _ = parts.audit_cell.set(log.clone());
        }
        podcert::start(&mut parts, audit.as_ref())?;
        let services = grpc::services(&mut parts, audit.as_ref())?;
        let readiness = grpc::readiness(&mut parts, &services, audit.as_ref());
        let admin_addr = start_admin(&mut parts, readiness.clone()).await?;
        let (grpc_addr, grpc) = grpc::serve(&parts, services, readiness.clone()).await?;
        readiness.set_listening();
        tracing::info!(grpc = %grpc_addr, admin = %admin_addr, tls = parts.settings.config.tls.enabled, "certmint serving");
        Ok(Self {
            grpc_addr,
            admin_addr,
            store: parts.store,
            metrics: parts.metrics,
            readiness,
            audit,
            shutdown,
            tasks: parts.tasks,
            grpc,
        })
    }

    /// Stops accepting, lets in-flight calls finish (bounded by `limits.shutdown_grace`).
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let served = self.grpc.await.context("gRPC server task panicked");
        // In-flight calls are done: write what is queued and a last checkpoint.
        if let Some(audit) = &self.audit {
            audit.close().await;
        }
        served?
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight calls");
        self.shutdown().await
    }
}

/// The resolver of `pkcs11:` issuer keys: the configured module, or none.
pub fn hsm_keys(
    hsm: Option<&certmint_hsm::HsmConfig>,
    metrics: &Metrics,
) -> anyhow::Result<Arc<dyn KeyResolver>> {
    Ok(match hsm {
        Some(cfg) => Arc::new(certmint_hsm::HsmKeys::new(cfg, metrics.hsm.clone())?),
        None => Arc::new(NoExternalKeys),
    })
}

/// The audit trail, when `audit.enabled`.
fn start_audit(parts: &Parts) -> anyhow::Result<Option<Arc<AuditLog>>> {
    let audit = &parts.settings.config.audit;
    Ok(match audit.enabled {
        true => Some(AuditLog::start(audit, parts.metrics.audit.clone())?),
        false => None,
    })
}

/// Admin HTTP (`/live`, `/ready`, `/metrics`) until shutdown.
async fn start_admin(parts: &mut Parts, readiness: Arc<Readiness>) -> anyhow::Result<SocketAddr> {
    let at = parts.settings.config.admin_listen;
    let admin = tokio::net::TcpListener::bind(at)
        .await
        .with_context(|| format!("cannot listen on admin_listen {at}"))?;
    let admin_addr = admin.local_addr()?;
    let router = crate::admin::router(
        parts.metrics.clone(),
        readiness,
        parts.trust.clone(),
        parts.store.clone(),
    );
    let mut stop = parts.shutdown.clone();
    parts.spawn(async move {
        let stop = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(admin, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    Ok(admin_addr)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
