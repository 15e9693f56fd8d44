//! Client authentication and bucket grants.
//!
//! s3s verifies SigV4 (header-signed, presigned with expiry, signed and
//! unsigned aws-chunked, 15-minute clock skew) against the secret this module
//! returns for an access key; [`Grants`] then decides whether that key may
//! touch the bucket. s3s runs access checks only when an auth provider is
//! set, and passes requests without credentials to them: both are refused
//! here, so nothing unauthenticated reaches the front end or the provider.

pub mod failures;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};
use std::collections::HashMap;

/// One client identity.
#[derive(Clone)]
pub struct Client {
    secret: String,
    buckets: Vec<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("buckets", &self.buckets)
            .finish_non_exhaustive()
    }
}

/// Access key → secret and bucket grants.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    clients: HashMap<String, Client>,
}

impl Grants {
    /// Adds a client; `buckets` holds bucket names or `*`.
    pub fn add(&mut self, access_key: String, secret: String, buckets: Vec<String>) {
        self.clients.insert(access_key, Client { secret, buckets });
    }

    /// Whether `access_key` may use `bucket`.
    pub fn allows(&self, access_key: &str, bucket: &str) -> bool {
        self.clients
            .get(access_key)
            .is_some_and(|c| c.buckets.iter().any(|b| b == "*" || b == bucket))
    }

    /// Whether `access_key` may use every bucket (needed for ListBuckets).
    pub fn allows_all(&self, access_key: &str) -> bool {
        self.clients
            .get(access_key)
            .is_some_and(|c| c.buckets.iter().any(|b| b == "*"))
    }

    /// True when no client is configured.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

#[async_trait::async_trait]
impl S3Auth for Grants {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.clients.get(access_key) {
            Some(c) => Ok(SecretKey::from(c.secret.as_str())),
            None => Err(s3_error!(InvalidAccessKeyId)),
        }
    }
}

/// Keys with `.` or `..` segments are refused for every operation: S3 treats
/// them as opaque names, but a file-backed provider may resolve them as paths
/// and store the object outside its bucket (s3s-fs does), which would let a
/// client granted one bucket write into another.
pub fn has_dot_segment(key: &str) -> bool {
    key.split('/').any(|s| s == "." || s == "..")
}

impl Grants {
    /// A copy reads its source: the access key needs the source bucket too.
    fn check_copy_source(
        &self,
        creds: Option<&s3s::auth::Credentials>,
        source: &s3s::dto::CopySource,
    ) -> S3Result<()> {
        let Some(creds) = creds else {
            return Err(s3_error!(AccessDenied, "Signature required"));
        };
        match source {
            s3s::dto::CopySource::Bucket { bucket, key, .. } => {
                if has_dot_segment(key) {
                    return Err(s3_error!(
                        InvalidArgument,
                        "object keys with \".\" or \"..\" path segments are not accepted"
                    ));
                }
                if self.allows(&creds.access_key, bucket) {
                    Ok(())
                } else {
                    Err(s3_error!(AccessDenied, "Access Denied"))
                }
            }
            _ => Err(s3_error!(
                NotImplemented,
                "copy sources other than bucket/key are not supported"
            )),
        }
    }
}

#[async_trait::async_trait]
impl S3Access for Grants {
    async fn copy_object(
        &self,
        req: &mut s3s::S3Request<s3s::dto::CopyObjectInput>,
    ) -> S3Result<()> {
        self.check_copy_source(req.credentials.as_ref(), &req.input.copy_source)
    }

    async fn upload_part_copy(
        &self,
        req: &mut s3s::S3Request<s3s::dto::UploadPartCopyInput>,
    ) -> S3Result<()> {
        self.check_copy_source(req.credentials.as_ref(), &req.input.copy_source)
    }

    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        // Name the operation for metrics (the listener reads it back).
        let op = cx.s3_op().name().to_owned();
        if let Some(slot) = cx
            .extensions_mut()
            .get::<crate::serve::listener::Operation>()
        {
            slot.set(&op);
        }
        let Some(creds) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Signature required"));
        };
        let ak = creds.access_key.clone();
        match cx.s3_path() {
            S3Path::Root => Ok(()),
            S3Path::Object { key, .. } if has_dot_segment(key) => Err(s3_error!(
                InvalidArgument,
                "object keys with \".\" or \"..\" path segments are not accepted"
            )),
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => {
                if self.allows(&ak, bucket) {
                    Ok(())
                } else {
                    Err(s3_error!(AccessDenied, "Access Denied"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_detected_exactly() {
        for bad in ["..", "../x", "a/../b", "a/..", "./a", "a/./b", "."] {
            assert!(has_dot_segment(bad), "{bad}");
        }
        for ok in [
            "a..b", "...", "a/b", ".hidden", "a/.b", "a..", "x/y../z", "",
        ] {
            assert!(!has_dot_segment(ok), "{ok}");
        }
    }

    #[test]
    fn grants_match_bucket_or_wildcard() {
        let mut g = Grants::default();
        g.add("a".into(), "s".into(), vec!["one".into()]);
        g.add("b".into(), "s".into(), vec!["*".into()]);
        assert!(g.allows("a", "one") && !g.allows("a", "two") && !g.allows("nobody", "one"));
        assert!(g.allows("b", "two") && g.allows_all("b") && !g.allows_all("a"));
    }
}
