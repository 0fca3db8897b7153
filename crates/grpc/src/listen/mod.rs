//! The gRPC accept loop: a connection cap, a deadline for each TLS handshake and HTTP/2
//! preface, and a backoff with one summary line per interval when accepts fail (e.g. out
//! of file descriptors), instead of a spinning loop and a warning per failure.

mod guard;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

pub use guard::Guarded;
use guard::Slot;

use crate::Limits;
use crate::metrics::{DropReason, Metrics};
use certmint_core::logsum::{INTERVAL, Repeated};

/// Connections ready for HTTP/2 and waiting for the server to pick them up.
const ACCEPT_BACKLOG: usize = 1024;
/// First and longest pause after a failed accept.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accepts connections on `listener` until shutdown, runs `prepare` (e.g. the TLS
/// handshake) on each off the accept loop, and yields the ready ones.
pub fn incoming<S, F, Fut>(
    listener: TcpListener,
    limits: &Limits,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
    prepare: F,
) -> ReceiverStream<std::io::Result<Guarded<S>>>
where
    S: Send + 'static,
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = Result<S, DropReason>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(ACCEPT_BACKLOG);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let preface_timeout = limits.preface_timeout;
    let failures = Repeated::new("failed accepts", tracing::Level::WARN, INTERVAL);
    failures.spawn_flusher();
    let refused = Repeated::new("connections refused", tracing::Level::WARN, INTERVAL);
    refused.spawn_flusher();
    let max = limits.max_connections;
    tokio::spawn(async move {
        let mut backoff = BACKOFF_MIN;
        while !tx.is_closed() {
            let accepted = tokio::select! {
                _ = shutdown.wait_for(|v| *v) => return,
                r = listener.accept() => r,
            };
            let (tcp, peer) = match accepted {
                Ok(c) => {
                    backoff = BACKOFF_MIN;
                    c
                }
                Err(e) => {
                    metrics.grpc_accept_errors.inc();
                    if failures.record(&e.to_string()) {
                        tracing::warn!(error = %e, "accept failed on the gRPC port; backing off (raise the file-descriptor limit or lower limits.max_connections)");
                    }
                    tokio::select! {
                        _ = shutdown.wait_for(|v| *v) => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                metrics.connection_dropped(DropReason::Limit);
                if refused.record("limits.max_connections reached") {
                    tracing::warn!(%peer, max, "gRPC connection refused: limits.max_connections reached");
                }
                continue;
            };
            no_delay(&tcp);
            let slot = Slot::new(permit, metrics.clone());
            let (tx, metrics, ready) = (tx.clone(), metrics.clone(), prepare(tcp));
            tokio::spawn(async move {
                match ready.await {
                    Ok(s) => {
                        let _ = tx.send(Ok(Guarded::new(s, slot, preface_timeout))).await;
                    }
                    Err(reason) => {
                        metrics.connection_dropped(reason);
                        tracing::debug!(%peer, %reason, "connection dropped before HTTP/2");
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Small HTTP/2 frames must not wait for the peer's delayed ACK (tonic applies its own
/// nodelay setting only to listeners it binds itself): ~44 ms per call otherwise.
fn no_delay(tcp: &TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
}
