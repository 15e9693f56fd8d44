//! Upload records: the one piece of state sealgate keeps, and it keeps it at
//! the provider, in a bucket of its own (`upstream.state_bucket`).
//!
//! A client's upload id (`sg1.…`) carries the upload's envelope, which the
//! provider's ListMultipartUploads cannot return. So that a listing can
//! hand clients the very ids they were given (cleanup tools find and abort
//! their own uploads; resuming tools upload more parts), CreateMultipartUpload
//! stores the id at the provider under a name derived from the bucket, the
//! key and the provider's upload id, and completion and abort remove it.
//!
//! The record is the id itself: it reveals nothing the provider does not
//! store already (the envelope is in the upload's metadata), and it
//! authenticates itself, so a reader checks it for the bucket and key and
//! against the provider's upload id before listing it (a record the
//! provider altered, swapped or lost makes that upload list in the `sgl.`
//! form, FORMAT.md §Upload ids). No request path stores anything else, and
//! any replica reads the same records: the data path stays stateless.

use super::{Upstream, UpstreamError};
use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};

/// Folder of upload records inside the state bucket.
const UPLOADS: &str = "uploads/";
/// An id is a few hundred bytes; anything longer is not a record of ours.
const MAX_RECORD: usize = 16 << 10;

/// The state bucket's object name for the upload `upstream_id` of
/// `bucket`/`key`: a hash, so names of any length and content fit, and one
/// record per (bucket, key, provider upload id).
pub fn record_key(bucket: &str, key: &str, upstream_id: &str) -> String {
    let mut h = Sha256::new();
    for part in [bucket, key, upstream_id] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part.as_bytes());
    }
    format!("{UPLOADS}{}", hex::encode(h.finalize()))
}

impl Upstream {
    /// The state bucket, when configured.
    pub fn state_bucket(&self) -> Option<&str> {
        self.state_bucket.as_deref()
    }

    /// Stores the client's upload `id` for the provider's upload
    /// `upstream_id`. Without a state bucket, does nothing.
    pub async fn put_upload_record(
        &self,
        bucket: &str,
        key: &str,
        upstream_id: &str,
        id: &str,
    ) -> Result<(), UpstreamError> {
        let Some(state) = self.state_bucket() else {
            return Ok(());
        };
        self.client
            .put_object()
            .bucket(state)
            .key(record_key(bucket, key, upstream_id))
            .content_type("text/plain")
            .content_length(id.len() as i64)
            .body(ByteStream::from(id.as_bytes().to_vec()))
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        Ok(())
    }

    /// The stored id for the provider's upload `upstream_id`, unchecked
    /// (the caller authenticates it). `None` when there is no state bucket
    /// or no record (an upload begun without one, or a record removed).
    pub async fn upload_record(
        &self,
        bucket: &str,
        key: &str,
        upstream_id: &str,
    ) -> Result<Option<String>, UpstreamError> {
        let Some(state) = self.state_bucket() else {
            return Ok(None);
        };
        let out = match self
            .client
            .get_object()
            .bucket(state)
            .key(record_key(bucket, key, upstream_id))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let e = UpstreamError::from_sdk(e);
                return match e.status() {
                    Some(404) => Ok(None),
                    _ => Err(e),
                };
            }
        };
        if out
            .content_length()
            .is_some_and(|l| !(0..=MAX_RECORD as i64).contains(&l))
        {
            return Ok(None);
        }
        // Read at most MAX_RECORD bytes whatever the answer says of its
        // length (a chunked answer names none): a longer body is not ours,
        // and is dropped (closing the connection) rather than buffered.
        let mut body = out.body;
        let mut record = Vec::new();
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| UpstreamError::BodyCut(e.to_string()))?
        {
            if record.len() + chunk.len() > MAX_RECORD {
                return Ok(None);
            }
            record.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8(record).ok())
    }

    /// Removes the record of a completed or aborted upload. Without a state
    /// bucket, does nothing; a record already gone is no error.
    pub async fn delete_upload_record(
        &self,
        bucket: &str,
        key: &str,
        upstream_id: &str,
    ) -> Result<(), UpstreamError> {
        let Some(state) = self.state_bucket() else {
            return Ok(());
        };
        match self
            .client
            .delete_object()
            .bucket(state)
            .key(record_key(bucket, key, upstream_id))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = UpstreamError::from_sdk(e);
                match e.status() {
                    Some(404) => Ok(()),
                    _ => Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_separate_every_field() {
        let a = record_key("b", "k", "u");
        assert!(a.starts_with(UPLOADS) && a.len() == UPLOADS.len() + 64);
        // Moving a byte between fields changes the name.
        assert_ne!(a, record_key("bk", "", "u"));
        assert_ne!(a, record_key("b", "ku", ""));
        assert_ne!(a, record_key("b", "k", "u2"));
        assert_eq!(a, record_key("b", "k", "u"));
    }

    /// A provider answering a record read with an endless chunked body
    /// (no Content-Length) must not make sealgate buffer it: reading stops
    /// past MAX_RECORD, so the provider gets to send only what the socket
    /// buffers take.
    #[tokio::test]
    async fn an_endless_record_is_not_buffered() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        const SENT: usize = 128 << 20;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "request not read");
                head.extend_from_slice(&buf[..n]);
            }
            let answer = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
            s.write_all(answer).await.unwrap();
            let chunk = vec![b'a'; 64 << 10];
            let frame = [
                format!("{:x}\r\n", chunk.len()).into_bytes(),
                chunk,
                b"\r\n".to_vec(),
            ]
            .concat();
            let mut sent = 0;
            while sent < SENT {
                if s.write_all(&frame).await.is_err() {
                    return sent;
                }
                sent += frame.len();
            }
            let _ = s.write_all(b"0\r\n\r\n").await;
            sent
        });
        let cfg = crate::config::UpstreamConfig {
            endpoint: format!("http://{addr}"),
            region: "us-east-1".into(),
            path_style: true,
            access_key: Some("ak".into()),
            secret_key: Some("sk".into()),
            secret_key_file: None,
            ca_file: None,
            jurisdiction: None,
            connect_timeout_secs: 5,
            read_timeout_secs: 5,
            state_bucket: Some("state".into()),
        };
        let up = Upstream::connect(&cfg, None).await.unwrap();
        let got = up.upload_record("b", "k", "u").await.unwrap();
        assert_eq!(got, None);
        let sent = tokio::time::timeout(std::time::Duration::from_secs(20), server)
            .await
            .expect("the provider was still sending after the record was read")
            .unwrap();
        assert!(
            sent < SENT / 4,
            "{sent} bytes of an endless record were read (at most {MAX_RECORD} are needed)"
        );
    }
}
