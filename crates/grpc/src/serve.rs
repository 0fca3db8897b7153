//! The gRPC listener: Linkerd's Identity, Istio's CA service (when enabled),
//! `grpc.health.v1` and reflection on one port, plaintext or TLS, with limits and a
//! bounded graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tonic::service::RoutesBuilder;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::Limits;
use crate::deadline::DeadlineLayer;
use crate::listen::incoming;
use crate::metrics::{DropReason, Metrics};

/// Whether the server should report itself serving (gRPC health, the `ready` metric);
/// the binary's readiness implements it.
pub trait Health: Send + Sync + 'static {
    fn is_ready(&self) -> bool;
}

/// One wire API served on the gRPC port: it adds its server to the routes (with the
/// decoding limit) and names its service for gRPC health. Each adapter implements it in
/// its own file, so the listener knows no API by name.
pub trait WireApi: Send + 'static {
    fn register(self: Box<Self>, routes: &mut RoutesBuilder, max_message: usize) -> &'static str;
}

/// Everything the gRPC server task needs.
pub struct GrpcServer {
    pub listener: TcpListener,
    /// The wire APIs (Linkerd's Identity always, Istio's CA when `istio.enabled`).
    pub apis: Vec<Box<dyn WireApi>>,
    pub limits: Limits,
    pub tls: Option<Arc<ServerConfig>>,
    pub health: Arc<dyn Health>,
    pub metrics: Arc<Metrics>,
    pub shutdown: watch::Receiver<bool>,
}

/// Starts serving; the task ends after shutdown once in-flight calls finish (or the
/// grace period runs out).
pub fn spawn(s: GrpcServer) -> JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let (routes, names) = register(s.apis, s.limits.max_message_size);
        let (reporter, health) = tonic_health::server::health_reporter();
        tokio::spawn(report_health(
            reporter,
            names,
            s.health.clone(),
            s.metrics.clone(),
            s.shutdown.clone(),
        ));
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let l = &s.limits;
        let metrics = s.metrics.clone();
        let router = Server::builder()
            .layer(
                tower::ServiceBuilder::new()
                    .map_response(move |r: http::Response<tonic::body::Body>| {
                        crate::status_fix::map_response(r, &metrics)
                    })
                    .layer(DeadlineLayer(l.request_timeout + Duration::from_secs(1))),
            )
            .max_concurrent_streams(l.max_concurrent_streams)
            .http2_max_header_list_size(l.max_header_list_size)
            .http2_keepalive_interval(Some(l.keepalive_interval))
            .http2_keepalive_timeout(Some(l.keepalive_timeout))
            .add_routes(routes.routes())
            .add_service(health)
            .add_service(reflection);
        let mut stop = s.shutdown.clone();
        let signal = async move {
            let _ = stop.wait_for(|v| *v).await;
        };
        let grace = l.shutdown_grace;
        let after = s.shutdown.clone();
        let limits = s.limits.clone();
        let (metrics, down) = (s.metrics.clone(), s.shutdown.clone());
        let serve = async move {
            match s.tls {
                Some(cfg) => {
                    let acceptor = TlsAcceptor::from(cfg);
                    let within = limits.handshake_timeout;
                    let conns = incoming(s.listener, &limits, metrics, down, move |tcp| {
                        let handshake = acceptor.accept(tcp);
                        async move {
                            match tokio::time::timeout(within, handshake).await {
                                Ok(Ok(tls)) => Ok(tls),
                                Ok(Err(_)) => Err(DropReason::HandshakeFailed),
                                Err(_) => Err(DropReason::HandshakeTimeout),
                            }
                        }
                    });
                    router.serve_with_incoming_shutdown(conns, signal).await
                }
                None => {
                    let conns =
                        incoming(s.listener, &limits, metrics, down, |tcp| async { Ok(tcp) });
                    router.serve_with_incoming_shutdown(conns, signal).await
                }
            }
        };
        finish_within_grace(serve, after, grace).await
    })
}

/// Every API's routes, and the service names gRPC health reports on.
fn register(apis: Vec<Box<dyn WireApi>>, max_message: usize) -> (RoutesBuilder, Vec<&'static str>) {
    let mut routes = RoutesBuilder::default();
    let names = apis
        .into_iter()
        .map(|api| api.register(&mut routes, max_message))
        .collect();
    (routes, names)
}

/// Runs `serve` to its end; once shutdown starts, in-flight calls get `grace` to finish.
async fn finish_within_grace(
    serve: impl Future<Output = Result<(), tonic::transport::Error>>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) -> anyhow::Result<()> {
    tokio::pin!(serve);
    tokio::select! {
        r = &mut serve => return Ok(r?),
        _ = shutdown.wait_for(|v| *v) => {}
    }
    match tokio::time::timeout(grace, serve).await.ok() {
        Some(r) => Ok(r?),
        None => {
            tracing::warn!(
                ?grace,
                "shutdown grace period over; abandoning in-flight calls"
            );
            Ok(())
        }
    }
}

/// Mirrors readiness into gRPC health and the `ready` metric.
async fn report_health(
    reporter: tonic_health::server::HealthReporter,
    services: Vec<&'static str>,
    health: Arc<dyn Health>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                reporter.set_service_status("", ServingStatus::NotServing).await;
                return;
            }
            _ = tick.tick() => {}
        }
        let ready = health.is_ready();
        metrics.ready.set(i64::from(ready));
        if last == Some(ready) {
            continue;
        }
        last = Some(ready);
        let status = if ready {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        reporter.set_service_status("", status).await;
        for name in &services {
            reporter.set_service_status(name, status).await;
        }
    }
}
