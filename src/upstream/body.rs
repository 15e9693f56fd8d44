//! Bodies going to and coming from the provider, in sealgate's own types:
//! the front end never sees the SDK's byte streams.

use super::UpstreamError;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use futures::Stream;
use http_body::Frame;
use std::time::Duration;

/// A download's body: read chunk by chunk, each chunk within the read
/// timeout.
#[derive(Debug)]
pub struct Body {
    stream: ByteStream,
    read_timeout: Duration,
}

impl Body {
    pub(super) fn new(stream: ByteStream, read_timeout: Duration) -> Body {
        Body {
            stream,
            read_timeout,
        }
    }

    /// The next piece of the download; an error if the provider's
    /// connection breaks ([`UpstreamError::BodyCut`]) or it sends nothing
    /// for the read timeout ([`UpstreamError::Stalled`]: a stall would
    /// otherwise hold the client's response open forever).
    pub async fn next(&mut self) -> Option<Result<Bytes, UpstreamError>> {
        match tokio::time::timeout(self.read_timeout, self.stream.next()).await {
            Ok(r) => r.map(|c| c.map_err(|e| UpstreamError::BodyCut(e.to_string()))),
            Err(_) => Some(Err(UpstreamError::Stalled {
                secs: self.read_timeout.as_secs(),
            })),
        }
    }

    /// The whole (small) body at once, with no read timeout of its own.
    pub async fn collect(self) -> Result<Bytes, UpstreamError> {
        self.stream
            .collect()
            .await
            .map(|b| b.into_bytes())
            .map_err(|e| UpstreamError::BodyCut(e.to_string()))
    }

    /// The body as a stream of chunks (each within the read timeout).
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, UpstreamError>> + Send {
        futures::stream::unfold(self, |mut body| async move {
            body.next().await.map(|chunk| (chunk, body))
        })
    }
}

/// A body for an upload: the bytes of a part stream as `format` sealed
/// them, or a passthrough bucket's plaintext.
pub struct UploadBody {
    pub(super) stream: ByteStream,
    /// Streamed while the client sends it: the answer may rightly take
    /// longer than the read timeout (see [`super::long_running`]).
    pub(super) streaming: bool,
    /// For plaintext, the grant it goes under (one grant, one upload).
    #[allow(dead_code)]
    grant: Option<crate::policy::PassthroughGrant>,
}

/// What an upload body streams: frames of bytes, or an error that aborts
/// the upload before its last byte.
pub trait FrameStream:
    Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send + Sync + 'static
{
}
impl<S> FrameStream for S where
    S: Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send + Sync + 'static
{
}

impl UploadBody {
    /// A sealed part stream (header and segments from `format`), streamed.
    pub fn sealed(frames: impl FrameStream) -> UploadBody {
        UploadBody::streamed(frames)
    }

    /// Sealed bytes held whole (a completion record).
    pub fn sealed_bytes(bytes: Vec<u8>) -> UploadBody {
        UploadBody {
            stream: ByteStream::from(bytes),
            streaming: false,
            grant: None,
        }
    }

    fn streamed(frames: impl FrameStream) -> UploadBody {
        UploadBody {
            stream: ByteStream::from_body_1_x(http_body_util::StreamBody::new(frames)),
            streaming: true,
            grant: None,
        }
    }
}

impl UploadBody {
    /// A passthrough bucket's plaintext, streamed: only with the grant that
    /// policy gives once the bucket's exception has been checked, so
    /// plaintext cannot reach the provider without one.
    pub fn plaintext(
        frames: impl FrameStream,
        grant: crate::policy::PassthroughGrant,
    ) -> UploadBody {
        UploadBody {
            grant: Some(grant),
            ..UploadBody::streamed(frames)
        }
    }
}
