//! Client authentication and bucket grants.
//!
//! s3s verifies SigV4 (header-signed, presigned with expiry, signed and
//! unsigned aws-chunked, 15-minute clock skew) against the secret this module
//! returns for an access key; [`Grants`] then decides whether that key may
//! touch the bucket. s3s runs access checks only when an auth provider is
//! set, and passes requests without credentials to them: both are refused
//! here, so nothing unauthenticated reaches the front end or the provider.
//! Signature Version 2 never gets this far (`serve/gate.rs` refuses it).
//! [`check_key`] is the one check of object keys sent upstream.

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
    /// Provider buckets only sealgate uses (the state bucket): no grant,
    /// not even `*`, reaches them.
    reserved: Vec<String>,
}

impl Grants {
    /// Adds a client; `buckets` holds bucket names or `*`.
    pub fn add(&mut self, access_key: String, secret: String, buckets: Vec<String>) {
        self.clients.insert(access_key, Client { secret, buckets });
    }

    /// Keeps `bucket` from every client: sealgate's own state lives there.
    pub fn reserve(&mut self, bucket: String) {
        self.reserved.push(bucket);
    }

    /// Whether `access_key` may use `bucket`.
    pub fn allows(&self, access_key: &str, bucket: &str) -> bool {
        !self.reserved.iter().any(|r| r == bucket)
            && self
                .clients
                .get(access_key)
                .is_some_and(|c| c.buckets.iter().any(|b| b == "*" || b == bucket))
    }

    /// Whether `access_key` may use every bucket.
    pub fn allows_all(&self, access_key: &str) -> bool {
        self.clients
            .get(access_key)
            .is_some_and(|c| c.buckets.iter().any(|b| b == "*"))
    }

    /// The buckets `access_key` sees in ListBuckets.
    pub fn visible(&self, access_key: &str) -> VisibleBuckets {
        match self.clients.get(access_key) {
            Some(c) if c.buckets.iter().any(|b| b == "*") => match self.reserved.is_empty() {
                true => VisibleBuckets::All,
                false => VisibleBuckets::AllBut(self.reserved.clone()),
            },
            Some(c) => VisibleBuckets::Only(
                c.buckets
                    .iter()
                    .filter(|b| !self.reserved.contains(b))
                    .cloned()
                    .collect(),
            ),
            None => VisibleBuckets::Only(Vec::new()),
        }
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

/// Whether `key` has a `.` or `..` path segment.
pub fn has_dot_segment(key: &str) -> bool {
    key.split('/').any(|s| s == "." || s == "..")
}

/// Whether `key`, read as a path by a file-backed provider, could name a
/// file outside its bucket: it starts with `/` (an absolute path) or has
/// a `.` or `..` segment. S3 treats keys as opaque names, but s3s-fs (the
/// embedded provider) joins them to the bucket's directory, so such a key
/// would let a client granted one bucket reach another.
pub fn key_escapes_bucket(key: &str) -> bool {
    key.starts_with('/') || has_dot_segment(key)
}

/// The one check of every object key sealgate sends upstream, whatever
/// carried it: the request path (every object operation, multipart
/// included), a copy source, the keys in a DeleteObjects body. Browser-form
/// (PostObject) keys never get this far: such uploads are refused before
/// their body is read (`serve/gate.rs`). Listing prefixes, markers and
/// start-after are compared as strings by the provider, never resolved as
/// paths, and pass.
pub fn check_key(key: &str) -> S3Result<()> {
    if key_escapes_bucket(key) {
        return Err(s3_error!(
            InvalidArgument,
            "object keys starting with \"/\" or with \".\" or \"..\" path segments are not accepted"
        ));
    }
    Ok(())
}

/// The buckets a ListBuckets caller may see, handed from the access check
/// to the front end in the request's extensions. Absent, nothing is shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VisibleBuckets {
    /// Every bucket (a `*` grant).
    All,
    /// Every bucket but these (a `*` grant, with sealgate's own buckets).
    AllBut(Vec<String>),
    /// Only these.
    Only(Vec<String>),
}

impl VisibleBuckets {
    /// Whether `bucket` is listed.
    pub fn shows(&self, bucket: &str) -> bool {
        match self {
            VisibleBuckets::All => true,
            VisibleBuckets::AllBut(hidden) => !hidden.iter().any(|b| b == bucket),
            VisibleBuckets::Only(b) => b.iter().any(|b| b == bucket),
        }
    }
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
                check_key(key)?;
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

    async fn delete_objects(
        &self,
        req: &mut s3s::S3Request<s3s::dto::DeleteObjectsInput>,
    ) -> S3Result<()> {
        // One escaping key refuses the whole request: nothing is deleted.
        for o in &req.input.delete.objects {
            check_key(&o.key)?;
        }
        Ok(())
    }

    async fn list_buckets(
        &self,
        req: &mut s3s::S3Request<s3s::dto::ListBucketsInput>,
    ) -> S3Result<()> {
        let Some(creds) = req.credentials.as_ref() else {
            return Err(s3_error!(AccessDenied, "Signature required"));
        };
        let visible = self.visible(&creds.access_key);
        req.extensions.insert(visible);
        Ok(())
    }

    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        // Name the operation for metrics (the listener reads it back).
        let op = cx.s3_op().name().to_owned();
        if let Some(slot) = cx.extensions_mut().get::<crate::telemetry::Operation>() {
            slot.set(&op);
        }
        let Some(creds) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Signature required"));
        };
        let ak = creds.access_key.clone();
        match cx.s3_path() {
            S3Path::Root => Ok(()),
            S3Path::Object { key, .. } if key_escapes_bucket(key) => check_key(key),
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
    fn keys_that_could_leave_the_bucket_are_refused() {
        for bad in ["/etc/passwd", "/", "//x", "../x", "a/../b", "./a"] {
            assert!(key_escapes_bucket(bad) && check_key(bad).is_err(), "{bad}");
        }
        for ok in ["a/b", "x//y", "a/", ".hidden", "a..b", "dir/..."] {
            assert!(!key_escapes_bucket(ok) && check_key(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn list_buckets_shows_the_grant() {
        let mut g = Grants::default();
        g.add("a".into(), "s".into(), vec!["one".into()]);
        g.add("b".into(), "s".into(), vec!["*".into()]);
        assert!(g.visible("a").shows("one") && !g.visible("a").shows("two"));
        assert_eq!(g.visible("b"), VisibleBuckets::All);
        assert!(!g.visible("nobody").shows("one"));
    }

    #[test]
    fn grants_match_bucket_or_wildcard() {
        let mut g = Grants::default();
        g.add("a".into(), "s".into(), vec!["one".into()]);
        g.add("b".into(), "s".into(), vec!["*".into()]);
        assert!(g.allows("a", "one") && !g.allows("a", "two") && !g.allows("nobody", "one"));
        assert!(g.allows("b", "two") && g.allows_all("b") && !g.allows_all("a"));
    }

    #[test]
    fn no_grant_reaches_the_state_bucket() {
        let mut g = Grants::default();
        g.add("a".into(), "s".into(), vec!["one".into(), "state".into()]);
        g.add("b".into(), "s".into(), vec!["*".into()]);
        g.reserve("state".into());
        for ak in ["a", "b"] {
            assert!(!g.allows(ak, "state"), "{ak} reaches the state bucket");
            assert!(!g.visible(ak).shows("state"), "{ak} lists the state bucket");
            assert!(g.allows(ak, "one") && g.visible(ak).shows("one"));
        }
    }
}
