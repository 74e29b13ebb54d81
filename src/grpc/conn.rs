//! The gRPC listener's connections, as the HTTP listeners bound theirs: at most
//! `--max-connections` at once (a connection beyond is closed as it is accepted, so a flood
//! cannot exhaust the process's files), and every connection must start talking — its HTTP/2
//! preface, after the TLS handshake where there is one — within `--header-read-timeout`, so
//! silent sockets do not keep their slots. HTTP/2's own limits (streams per connection,
//! keep-alive pings that reap dead peers) are set on the server in [`super::serve`].

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Sleep,
};
use tonic::transport::server::Connected;

/// The bounds of one gRPC listener's connections.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// `--max-connections`.
    pub max_connections: usize,
    /// `--header-read-timeout`: a connection's first bytes (and a TLS handshake) come within it.
    pub first_bytes: Duration,
}

/// The listener's connection slots.
#[derive(Clone)]
pub struct Slots(Arc<Semaphore>);

impl Slots {
    pub fn new(bounds: &Bounds) -> Self {
        Self(Arc::new(Semaphore::new(bounds.max_connections)))
    }

    /// A slot for a connection just accepted, or `None` when all are taken (close it).
    pub fn take(&self) -> Option<OwnedSemaphorePermit> {
        let permit = Arc::clone(&self.0).try_acquire_owned().ok();
        if permit.is_none() {
            tracing::debug!("gRPC connection limit reached: closing a connection");
        }
        permit
    }
}

/// An accepted connection holding its slot until it closes; reading fails with `TimedOut` if
/// its first bytes do not come within the deadline.
pub struct Conn<IO> {
    inner: IO,
    _slot: OwnedSemaphorePermit,
    silent_until: Option<Pin<Box<Sleep>>>,
}

impl<IO> Conn<IO> {
    pub fn new(inner: IO, slot: OwnedSemaphorePermit, first_bytes: Duration) -> Self {
        Self {
            inner,
            _slot: slot,
            silent_until: Some(Box::pin(tokio::time::sleep(first_bytes))),
        }
    }
}

impl<IO: Connected> Connected for Conn<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Conn<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Some(deadline) = &mut this.silent_until {
            if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
                this.silent_until = None;
            } else if polled.is_pending() && deadline.as_mut().poll(cx).is_ready() {
                tracing::debug!("closing a gRPC connection that sent nothing in time");
                return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
            }
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Conn<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
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

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
