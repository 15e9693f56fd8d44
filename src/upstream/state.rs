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
        if out.content_length().unwrap_or(0) as usize > MAX_RECORD {
            return Ok(None);
        }
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| UpstreamError::Transport(e.to_string()))?
            .into_bytes();
        if body.len() > MAX_RECORD {
            return Ok(None);
        }
        Ok(String::from_utf8(body.to_vec()).ok())
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
}
