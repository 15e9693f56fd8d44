//! A connection whose writes fail when the client stops reading.
//!
//! hyper has no response write timeout: a client that requests a large
//! object and then stops reading holds its connection, the request's task
//! and the upstream stream for as long as it likes. Wrapped in
//! [`WriteTimeout`], a write (or flush) that makes no progress for the limit
//! fails with `TimedOut`; hyper then closes the connection and drops the
//! response body, which drops the upstream stream. The clock runs only
//! while a write is pending on the client, never while sealgate waits for
//! the provider.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Wraps an IO stream, failing writes stalled for longer than `limit`.
pub struct WriteTimeout<T> {
    inner: T,
    limit: Duration,
    /// Made on the first stalled write only.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the last write or flush returned `Pending`.
    waiting: bool,
}

impl<T> WriteTimeout<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, limit: Duration) -> Self {
        WriteTimeout {
            inner,
            limit,
            timer: None,
            waiting: false,
        }
    }

    /// After a `Pending` from the inner stream: starts the clock on the first
    /// one of a stall, fails once it has run out.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let limit = self.limit;
        if !self.waiting {
            self.waiting = true;
            let deadline = Instant::now() + limit;
            match self.timer.as_mut() {
                Some(t) => t.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let timer = self.timer.as_mut().expect("set above");
        ready!(timer.as_mut().poll(cx));
        tracing::info!(
            secs = limit.as_secs(),
            "client stopped reading the response; closing the connection"
        );
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("client did not read the response for {limit:?}"),
        ))
    }
}

use std::future::Future;

impl<T: AsyncRead + Unpin> AsyncRead for WriteTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.stalled(cx).map(Err),
            r => {
                self.waiting = false;
                r
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.stalled(cx).map(Err),
            r => {
                self.waiting = false;
                r
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.stalled(cx).map(Err),
            r => {
                self.waiting = false;
                r
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Pending => self.stalled(cx).map(Err),
            r => {
                self.waiting = false;
                r
            }
        }
    }
}
