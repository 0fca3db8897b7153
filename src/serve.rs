//! The gRPC listener: Identity, `grpc.health.v1` and reflection on one port, plaintext or
//! TLS, with limits and a bounded graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::config::Limits;
use crate::grpc::IdentityService;
use crate::metrics::Metrics;
use crate::proto::identity_server::IdentityServer;
use crate::readiness::Readiness;

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Completed handshakes waiting for the server to pick them up.
const ACCEPT_BACKLOG: usize = 1024;

/// Everything the gRPC server task needs.
pub struct GrpcServer {
    pub listener: TcpListener,
    pub identity: IdentityService,
    pub limits: Limits,
    pub tls: Option<Arc<ServerConfig>>,
    pub readiness: Arc<Readiness>,
    pub metrics: Arc<Metrics>,
    pub shutdown: watch::Receiver<bool>,
}

/// Starts serving; the task ends after shutdown once in-flight calls finish (or the
/// grace period runs out).
pub fn spawn(s: GrpcServer) -> JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let (reporter, health) = tonic_health::server::health_reporter();
        tokio::spawn(report_health(
            reporter,
            s.readiness.clone(),
            s.metrics.clone(),
            s.shutdown.clone(),
        ));
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let l = &s.limits;
        let router = Server::builder()
            .layer(tower::util::MapResponseLayer::new(
                crate::grpc::oversize::map_response,
            ))
            .timeout(l.request_timeout + Duration::from_secs(1))
            .max_concurrent_streams(l.max_concurrent_streams)
            .http2_keepalive_interval(Some(l.keepalive_interval))
            .http2_keepalive_timeout(Some(l.keepalive_timeout))
            .add_service(health)
            .add_service(reflection)
            .add_service(s.identity.into_server(l.max_message_size));
        let mut stop = s.shutdown.clone();
        let signal = async move {
            let _ = stop.wait_for(|v| *v).await;
        };
        let grace = l.shutdown_grace;
        let mut after = s.shutdown.clone();
        let serve = async move {
            match s.tls {
                Some(cfg) => {
                    router
                        .serve_with_incoming_shutdown(
                            tls_incoming(s.listener, cfg, s.shutdown),
                            signal,
                        )
                        .await
                }
                None => {
                    router
                        .serve_with_incoming_shutdown(plaintext_incoming(s.listener), signal)
                        .await
                }
            }
        };
        tokio::pin!(serve);
        // Once shutdown starts, in-flight calls get `grace` to finish.
        tokio::select! {
            r = &mut serve => return Ok(r?),
            _ = after.wait_for(|v| *v) => {}
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
    })
}

/// Small HTTP/2 frames must not wait for the peer's delayed ACK (tonic applies its own
/// nodelay setting only to listeners it binds itself): ~44 ms per call otherwise.
fn no_delay(tcp: &TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
}

/// Accepted plaintext connections, with TCP_NODELAY.
fn plaintext_incoming(listener: TcpListener) -> impl Stream<Item = std::io::Result<TcpStream>> {
    use futures::StreamExt;
    TcpListenerStream::new(listener).map(|r| r.inspect(no_delay))
}

/// Accepts TCP connections and completes TLS handshakes off the accept loop, so one slow
/// client cannot hold up the others.
fn tls_incoming(
    listener: TcpListener,
    cfg: Arc<ServerConfig>,
    mut shutdown: watch::Receiver<bool>,
) -> impl Stream<Item = std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = mpsc::channel(ACCEPT_BACKLOG);
    let acceptor = TlsAcceptor::from(cfg);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = shutdown.wait_for(|v| *v) => return,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => { tracing::warn!(error = %e, "accept failed"); continue; }
                },
            };
            no_delay(&tcp);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Mirrors readiness into gRPC health and the `ready` metric.
async fn report_health(
    reporter: tonic_health::server::HealthReporter,
    readiness: Arc<Readiness>,
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
        let ready = readiness.check().is_ok();
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
        match status {
            ServingStatus::Serving => {
                reporter
                    .set_serving::<IdentityServer<IdentityService>>()
                    .await
            }
            _ => {
                reporter
                    .set_not_serving::<IdentityServer<IdentityService>>()
                    .await
            }
        }
    }
}
