//! A server-side TLS connection that dies with the fake API server: once shut down, every
//! read and write fails, so hyper drops the socket without a TLS close_notify, as a
//! crashed API server would. Pooled idle client connections therefore stop working too.

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::watch,
};
use tokio_rustls::server::TlsStream;

type Closed = Pin<Box<dyn Future<Output = ()> + Send>>;

pub(crate) struct Conn {
    io: TlsStream<TcpStream>,
    closed: Closed,
    dead: bool,
}

impl Conn {
    /// The connection dies at shutdown, or when the outage switch starts refusing.
    pub(crate) fn new(
        io: TlsStream<TcpStream>,
        mut shutdown: watch::Receiver<bool>,
        mut refuse: watch::Receiver<bool>,
    ) -> Conn {
        let closed = Box::pin(async move {
            // A dropped sender means the server handle is gone: also a shutdown.
            tokio::select! {
                _ = shutdown.wait_for(|down| *down) => {}
                _ = refuse.wait_for(|r| *r) => {}
            }
        });
        Conn {
            io,
            closed,
            dead: false,
        }
    }

    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if !self.dead && self.closed.as_mut().poll(cx).is_ready() {
            self.dead = true;
        }
        if self.dead {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "fake API server shut down",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.check(cx).is_err() {
            // No close_notify after a shutdown: the connection just ends.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
