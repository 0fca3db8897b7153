//! Wiring for `certmint serve` (and `dev`): builds the parts from a [`Config`], starts the
//! listeners and background tasks, and shuts down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::audit::{AuditLog, OnFailure};
use crate::ca::{CaStore, LeafNames, LeafPolicy};
use crate::certify::Certifier;
use crate::clock::{Clock, SystemClock};
use crate::config::{AuthnMode, Config, SourceKind};
use crate::grpc::{CallHandler, IdentityService, IstioService};
use crate::identity::Naming;
use crate::impersonation::Impersonation;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::sources::events::EventReporter;
use crate::sources::files::FileSources;
use crate::sources::kube as kube_sources;
use crate::sources::pods::PodIndex;
use crate::sources::{NoReport, ReloadReporter, Reloader, Reminders};
use crate::tls::{Renewer, ServingCert};

mod authn;
use authn::Authenticators;

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
    /// Starts everything described by `config` (already validated) with the real clock.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        Self::start_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn start_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        config.validate()?;
        let naming = config.naming()?;
        let metrics = Arc::new(Metrics::new());
        let store = CaStore::new();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        let kube = match needs_kube(&config) {
            true => Some(crate::kubeclient::client(config.kubeconfig.as_deref()).await?),
            false => None,
        };
        let reporter: Arc<dyn ReloadReporter> = match (&kube, config.issuer.source) {
            (Some(c), SourceKind::Kubernetes) => Arc::new(EventReporter::new(
                c.clone(),
                &config.issuer.namespace,
                &config.issuer.secret,
            )),
            _ => Arc::new(NoReport),
        };
        let reloader = Arc::new(Reloader::new(
            store.clone(),
            probe_names(&naming),
            metrics.clone(),
            clock.clone(),
            reporter,
            Reminders {
                issuer: config.issuer.reload_interval,
                anchors: config.trust_anchors.reload_interval,
            },
        ));
        start_sources(
            &config,
            kube.as_ref(),
            reloader,
            shutdown_rx.clone(),
            &mut tasks,
        );

        let audit = match config.audit.enabled {
            true => Some(AuditLog::start(&config.audit, metrics.clone())?),
            false => None,
        };
        let authenticators =
            Authenticators::start(&config, kube.as_ref(), &metrics, &shutdown_rx, &mut tasks)?;
        let policy = LeafPolicy {
            lifetime: config.issuance.lifetime,
            clock_skew: config.issuance.clock_skew,
        };
        let certifier =
            |authn| Certifier::new(store.clone(), authn, naming.clone(), policy, clock.clone());
        let linkerd = certifier(authenticators.for_audiences(&config.authn.audiences)?);
        let istio = match config.istio.enabled {
            true => {
                let authn = authenticators.for_audiences(&config.istio.audiences)?;
                let pods = start_pod_index(&config, kube.as_ref(), &shutdown_rx, &mut tasks)?;
                Some(with_impersonation(certifier(authn), &config, pods)?)
            }
            false => None,
        };

        let serving_cert = config.tls.enabled.then(|| Arc::new(ServingCert::default()));
        if let Some(cert) = &serving_cert {
            let renewer = Renewer {
                store: store.clone(),
                cert: cert.clone(),
                names: server_names(&config, &naming),
                policy,
                clock: clock.clone(),
                metrics: metrics.clone(),
            };
            tasks.push(tokio::spawn(renewer.run(shutdown_rx.clone())));
        }
        let readiness = Arc::new(Readiness::new(
            store.clone(),
            clock,
            config.authn.mode == AuthnMode::Kubernetes,
            serving_cert.clone(),
        ));
        if let (Some(client), AuthnMode::Kubernetes) = (&kube, config.authn.mode) {
            tasks.push(tokio::spawn(confirm_tokenreview_access(
                client.clone(),
                readiness.clone(),
                shutdown_rx.clone(),
            )));
        }

        let admin = TcpListener::bind(config.admin_listen)
            .await
            .with_context(|| format!("cannot listen on admin_listen {}", config.admin_listen))?;
        let admin_addr = admin.local_addr()?;
        let router = crate::admin::router(metrics.clone(), readiness.clone());
        let mut admin_shutdown = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let stop = async move {
                let _ = admin_shutdown.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(admin, router)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "admin server failed");
            }
        }));

        let grpc = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on listen {}", config.listen))?;
        let grpc_addr = grpc.local_addr()?;
        let calls = |api, certifier| {
            let handler = CallHandler::new(
                api,
                Arc::new(certifier),
                metrics.clone(),
                config.limits.request_timeout,
            );
            Arc::new(match &audit {
                Some(a) => handler.with_audit(a.clone()),
                None => handler,
            })
        };
        if let Some(a) = audit.as_ref().filter(|a| a.policy() == OnFailure::Refuse) {
            readiness.set_audit(a.clone());
        }
        let identity = IdentityService::new(calls("linkerd", linkerd));
        let istio =
            istio.map(|c| IstioService::new(calls("istio", c), config.istio.cluster_ids.clone()));
        let grpc = crate::serve::spawn(crate::serve::GrpcServer {
            listener: grpc,
            identity,
            istio,
            limits: config.limits.clone(),
            tls: serving_cert.map(crate::tls::server_config),
            readiness: readiness.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown_rx,
        });
        readiness.set_listening();
        tracing::info!(grpc = %grpc_addr, admin = %admin_addr, tls = config.tls.enabled, "certmint serving");
        Ok(Self {
            grpc_addr,
            admin_addr,
            store,
            metrics,
            readiness,
            audit,
            shutdown,
            tasks,
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

/// Starts the issuer and anchor sources (files, Kubernetes, or one of each).
fn start_sources(
    config: &Config,
    kube: Option<&kube::Client>,
    reloader: Arc<Reloader>,
    shutdown: watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) {
    let (i, a) = (&config.issuer, &config.trust_anchors);
    let files = FileSources {
        issuer_dir: (i.source == SourceKind::Files).then(|| i.dir.clone()),
        anchors_file: (a.source == SourceKind::Files).then(|| a.file.clone()),
        interval: i.reload_interval.min(a.reload_interval),
    };
    if files.issuer_dir.is_some() || files.anchors_file.is_some() {
        files.load_once(&reloader);
        tasks.push(tokio::spawn(files.run(reloader.clone(), shutdown.clone())));
    }
    let Some(client) = kube else { return };
    if a.source == SourceKind::Kubernetes {
        let run = kube_sources::run_anchors(
            client.clone(),
            a.namespace.clone(),
            a.configmap.clone(),
            a.key.clone(),
            a.reload_interval,
            reloader.clone(),
            shutdown.clone(),
        );
        tasks.push(tokio::spawn(run));
    }
    if i.source == SourceKind::Kubernetes {
        let run = kube_sources::run_issuer(
            client.clone(),
            i.namespace.clone(),
            i.secret.clone(),
            i.reload_interval,
            reloader,
            shutdown,
        );
        tasks.push(tokio::spawn(run));
    }
}

/// Readiness stays false until the API server confirms certmint may create TokenReviews;
/// re-asked every 10 s so an RBAC fix is picked up without a restart.
async fn confirm_tokenreview_access(
    client: kube::Client,
    readiness: Arc<Readiness>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match crate::kubeclient::can_create_tokenreviews(client.clone()).await {
            Ok(true) => {
                readiness.set_authorized();
                tracing::info!("allowed to create tokenreviews");
                return;
            }
            Ok(false) => tracing::error!(
                "certmint's service account may not create tokenreviews.authentication.k8s.io; grant it (see the Helm chart's ClusterRole); not ready"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot check tokenreviews access yet"),
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
    }
}

fn needs_kube(c: &Config) -> bool {
    c.authn.mode == AuthnMode::Kubernetes
        || c.issuer.source == SourceKind::Kubernetes
        || c.trust_anchors.source == SourceKind::Kubernetes
        || c.istio.impersonation()
}

/// The pod watch behind impersonation checks, when trusted node accounts are configured.
fn start_pod_index(
    config: &Config,
    kube: Option<&kube::Client>,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<Option<Arc<PodIndex>>> {
    if !config.istio.impersonation() {
        return Ok(None);
    }
    let client = kube.context("istio.trusted_node_accounts needs a Kubernetes client to watch pods; set kubeconfig or run in a cluster")?;
    let pods = Arc::new(PodIndex::default());
    tasks.push(tokio::spawn(
        pods.clone().run(client.clone(), shutdown.clone()),
    ));
    Ok(Some(pods))
}

fn with_impersonation(
    certifier: Certifier,
    config: &Config,
    pods: Option<Arc<PodIndex>>,
) -> anyhow::Result<Certifier> {
    let Some(pods) = pods else {
        return Ok(certifier);
    };
    let trusted = config.istio.trusted_accounts()?;
    Ok(certifier.with_impersonation(Impersonation::new(trusted, pods)))
}

/// The throwaway identity used to prove a new issuer can sign verifiable leaves.
pub fn probe_names(naming: &Naming) -> LeafNames {
    let sa = crate::identity::ServiceAccount::new("certmint-probe", "certmint-probe")
        .expect("valid static labels");
    LeafNames {
        dns: vec![naming.linkerd_name(&sa)],
        uri: Some(naming.spiffe_id(&sa)),
    }
}

/// The serving certificate's names: the Linkerd identity name first, then the extra names
/// clients dial (`tls.extra_names`, e.g. `certmint.linkerd.svc` for Istio's agents).
fn server_names(config: &Config, naming: &Naming) -> LeafNames {
    let name = config.server_name();
    let uri = naming
        .parse_linkerd_name(&name)
        .map(|sa| naming.spiffe_id(&sa));
    let mut dns = vec![name];
    for extra in &config.tls.extra_names {
        if !dns.contains(extra) {
            dns.push(extra.clone());
        }
    }
    LeafNames { dns, uri }
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
