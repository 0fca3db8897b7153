//! Builds what the gRPC port serves: one certifier per wire API (each with its own
//! authenticator), the call handlers, the serving certificate and its renewer, readiness,
//! and the listener. A new wire API adds one line to [`services`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use certmint_audit::{AuditLog, OnFailure};
use certmint_core::ca::{LeafNames, LeafPolicy};
use certmint_core::certify::Certifier;
use certmint_core::impersonation::Impersonation;
use certmint_grpc::metrics::Api;
use certmint_grpc::serve::{GrpcServer, WireApi};
use certmint_grpc::tls::{Renewer, ServingCert};
use certmint_grpc::{CallHandler, IdentityService, IstioService};

use super::Parts;
use super::authn::Authenticators;
use crate::config::{AuthnMode, Settings};
use crate::readiness::Readiness;

/// The wire APIs and the serving certificate, ready to be served.
pub(super) struct Services {
    apis: Vec<Box<dyn WireApi>>,
    serving_cert: Option<Arc<ServingCert>>,
}

/// One certifier per wire API, each behind its call handler.
pub(super) fn services(
    parts: &mut Parts,
    audit: Option<&Arc<AuditLog>>,
) -> anyhow::Result<Services> {
    let authenticators = Authenticators::start(parts)?;
    let config = parts.settings.config.clone();
    let metrics = parts.metrics.grpc.clone();
    let calls = |api, certifier: Certifier| {
        let handler = CallHandler::new(
            api,
            Arc::new(certifier),
            metrics.clone(),
            config.limits.request_timeout,
        );
        Arc::new(match audit {
            Some(a) => handler.with_audit(a.clone()),
            None => handler,
        })
    };
    let mut apis: Vec<Box<dyn WireApi>> = Vec::new();
    let linkerd = authenticators.for_audiences(&config.authn.audiences)?;
    let linkerd = certifier(parts, linkerd);
    apis.push(Box::new(IdentityService::new(calls(Api::Linkerd, linkerd))));
    if config.istio.enabled {
        let authn = authenticators.for_audiences(&config.istio.audiences)?;
        let certifier = with_impersonation(parts, certifier(parts, authn))?;
        let ids = config.istio.cluster_ids.clone();
        apis.push(Box::new(IstioService::new(
            calls(Api::Istio, certifier),
            ids,
        )));
    }
    let serving_cert = start_serving_cert(parts);
    Ok(Services { apis, serving_cert })
}

fn certifier(parts: &Parts, authn: Arc<dyn certmint_core::authn::Authenticator>) -> Certifier {
    Certifier::new(
        parts.store.clone(),
        authn,
        parts.settings.naming.clone(),
        parts.settings.config.issuance,
        parts.clock.clone(),
    )
}

fn with_impersonation(parts: &mut Parts, certifier: Certifier) -> anyhow::Result<Certifier> {
    let Some(pods) = super::sources::pod_index(parts)? else {
        return Ok(certifier);
    };
    let trusted = parts.settings.trusted_node_accounts.clone();
    Ok(certifier.with_impersonation(Impersonation::new(trusted, pods)))
}

/// The serving certificate and the task that renews it, when TLS is on.
fn start_serving_cert(parts: &mut Parts) -> Option<Arc<ServingCert>> {
    if !parts.settings.config.tls.enabled {
        return None;
    }
    let cert = Arc::new(ServingCert::default());
    let policy: LeafPolicy = parts.settings.config.issuance;
    let renewer = Renewer {
        store: parts.store.clone(),
        cert: cert.clone(),
        names: server_names(&parts.settings),
        policy,
        clock: parts.clock.clone(),
        metrics: parts.metrics.grpc.clone(),
    };
    let run = renewer.run(parts.shutdown.clone());
    parts.spawn(run);
    Some(cert)
}

/// The serving certificate's names: the Linkerd identity name first, then the extra names
/// clients dial (`tls.extra_names`, e.g. `certmint.linkerd.svc` for Istio's agents).
fn server_names(settings: &Settings) -> LeafNames {
    let (config, naming) = (&settings.config, &settings.naming);
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

/// Readiness, with the TokenReview-access check under Kubernetes authentication and the
/// audit sink under `audit.on_failure: refuse`.
pub(super) fn readiness(
    parts: &mut Parts,
    services: &Services,
    audit: Option<&Arc<AuditLog>>,
) -> Arc<Readiness> {
    let kube_authn = parts.settings.config.authn.mode == AuthnMode::Kubernetes;
    let readiness = Arc::new(Readiness::new(
        parts.store.clone(),
        parts.clock.clone(),
        kube_authn,
        services.serving_cert.clone(),
    ));
    if let (Some(client), true) = (&parts.kube, kube_authn) {
        let run =
            confirm_tokenreview_access(client.clone(), readiness.clone(), parts.shutdown.clone());
        parts.spawn(run);
    }
    if let Some(a) = audit.filter(|a| a.policy() == OnFailure::Refuse) {
        readiness.set_audit(a.clone());
    }
    readiness
}

/// Binds the gRPC port and serves the services on it until shutdown.
pub(super) async fn serve(
    parts: &Parts,
    services: Services,
    readiness: Arc<Readiness>,
) -> anyhow::Result<(SocketAddr, JoinHandle<anyhow::Result<()>>)> {
    let config = &parts.settings.config;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on listen {}", config.listen))?;
    let addr = listener.local_addr()?;
    let task = certmint_grpc::serve::spawn(GrpcServer {
        listener,
        apis: services.apis,
        limits: config.limits.clone(),
        tls: services.serving_cert.map(certmint_grpc::tls::server_config),
        health: readiness,
        metrics: parts.metrics.grpc.clone(),
        shutdown: parts.shutdown.clone(),
    });
    Ok((addr, task))
}

/// Readiness stays false until the API server confirms certmint may create TokenReviews;
/// re-asked every 10 s so an RBAC fix is picked up without a restart.
async fn confirm_tokenreview_access(
    client: kube::Client,
    readiness: Arc<Readiness>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match certmint_k8s::client::can_create_tokenreviews(client.clone()).await {
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
