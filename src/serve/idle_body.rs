//! A request body that fails when the client stops sending.
//!
//! hyper times out request *headers* but not bodies: a client that sends
//! headers and then trickles (or stops sending) its body would hold a
//! connection, a task and an upstream upload open for as long as it likes.
//! The clock runs only while sealgate is waiting for the client, so a
//! provider that is slow to take the bytes never counts against the client.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// No body byte arrived within the limit while sealgate waited for one.
#[derive(Debug, thiserror::Error)]
#[error("request body idle for more than {0:?}; closing")]
pub struct BodyIdle(pub Duration);

/// Wraps `B`, failing a read that waits longer than `limit`.
pub struct IdleBody<B> {
    inner: B,
    limit: Duration,
    /// Made on the first wait only: most bodies (every GET's) never wait.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the last poll returned `Pending` (the timer is running).
    waiting: bool,
    /// Set once the body was read to its end; the listener reads it to
    /// tell whether a connection can carry another request.
    finished: Arc<AtomicBool>,
}

impl<B> IdleBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, limit: Duration) -> Self {
        IdleBody {
            inner,
            limit,
            timer: None,
            waiting: false,
            finished: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A flag that turns true once the body has been read to its end.
    pub fn finished(&self) -> Arc<AtomicBool> {
        self.finished.clone()
    }
}

impl<B> Body for IdleBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                this.waiting = false;
                if r.is_none() || this.inner.is_end_stream() {
                    this.finished.store(true, Ordering::Relaxed);
                }
                Poll::Ready(r.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timer = match (&mut this.timer, this.waiting) {
                    (Some(t), true) => t,
                    (slot, _) => {
                        // Start the clock now: time sealgate spent not
                        // asking (e.g. while the provider took the previous
                        // bytes) is not the client's.
                        this.waiting = true;
                        let deadline = Instant::now() + this.limit;
                        match slot {
                            Some(t) => {
                                t.as_mut().reset(deadline);
                                t
                            }
                            None => slot.insert(Box::pin(tokio::time::sleep_until(deadline))),
                        }
                    }
                };
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyIdle(this.limit))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that yields one frame, then never another.
    struct Stuck(bool);

    impl Body for Stuck {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.0 {
                Poll::Pending
            } else {
                self.0 = true;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"abc")))))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_after_the_limit_and_not_before() {
        let mut b = IdleBody::new(Stuck(false), Duration::from_secs(5));
        let first = b.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"abc"));
        // Time spent not reading does not count against the client.
        tokio::time::advance(Duration::from_secs(60)).await;
        let started = Instant::now();
        let err = b.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("idle"), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
