//! An accepted gRPC connection that holds a slot under the connection cap for its whole
//! life and must deliver the HTTP/2 connection preface within a deadline.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;
use tonic::transport::server::Connected;

use crate::metrics::{DropReason, Metrics};

/// Length of the HTTP/2 client connection preface ("PRI * HTTP/2.0...").
const PREFACE_LEN: usize = 24;

/// One place under the connection cap; counted in `grpc_connections_open` while held.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Slot {
    pub fn new(permit: OwnedSemaphorePermit, metrics: Arc<Metrics>) -> Self {
        metrics.grpc_connections_open.inc();
        Self {
            _permit: permit,
            metrics,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.grpc_connections_open.dec();
    }
}

/// Until the preface is in: when it must have arrived, and how much of it has.
struct Preface {
    deadline: Pin<Box<Sleep>>,
    seen: usize,
}

/// A connection stream with its slot and preface deadline.
pub struct Guarded<S> {
    inner: S,
    slot: Slot,
    preface: Option<Preface>,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, slot: Slot, preface_timeout: Duration) -> Self {
        Self {
            inner,
            slot,
            preface: Some(Preface {
                deadline: Box::pin(tokio::time::sleep(preface_timeout)),
                seen: 0,
            }),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(p) = &mut this.preface
            && p.deadline.as_mut().poll(cx).is_ready()
        {
            this.preface = None;
            this.slot
                .metrics
                .connection_dropped(DropReason::PrefaceTimeout);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no HTTP/2 preface in time",
            )));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(p)) = (&r, &mut this.preface) {
            p.seen += buf.filled().len() - before;
            if p.seen >= PREFACE_LEN {
                this.preface = None;
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: Connected> Connected for Guarded<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
