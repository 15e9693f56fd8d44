//! The S3 front end: `impl S3 for Gateway`.
//!
//! s3s parses requests, verifies signatures and calls these methods; each
//! delegates to the file of its operation family (like Garage's
//! `src/api/s3/`). Operations not implemented here keep s3s's default answer,
//! 501 NotImplemented, and are never forwarded: an allowlist, not a denylist.

mod acl;
mod attributes;
mod bucket;
mod checksums;
mod conditions;
mod copy;
mod delete;
pub mod error;
mod get;
mod list;
mod multipart;
mod passthrough;
mod put;
mod unsupported;

// Parsers of client input, for the fuzz entry points (crate::fuzzing).
pub(crate) use multipart::parse_copy_range;
pub(crate) use put::{plaintext_length, strip_aws_chunked};

use crate::format::Algorithm;
use crate::telemetry::security::TARGET as SECURITY;
use crate::upstream::Upstream;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};
use std::sync::Arc;

/// The gateway's request handlers and what they share.
#[derive(Clone)]
pub struct Gateway {
    upstream: Upstream,
    keys: Arc<crate::keys::KeyCell>,
    algorithm: Algorithm,
    policy: Arc<crate::policy::PolicyCell>,
    /// Where authorising records (`exception_used`, `legacy_read`) are
    /// written durably before what they authorise.
    audit: crate::audit::Recorder,
}

impl Gateway {
    /// A gateway encrypting new objects with `algorithm` under the store's
    /// active key, except in the passthrough buckets `policy` allows.
    pub fn new(
        upstream: Upstream,
        keys: Arc<crate::keys::KeyCell>,
        algorithm: Algorithm,
        policy: Arc<crate::policy::PolicyCell>,
    ) -> Self {
        Gateway {
            upstream,
            keys,
            algorithm,
            policy,
            audit: crate::audit::Recorder::default(),
        }
    }

    /// Writes authorising records to `audit` (durably, before the
    /// operation; refused with 503 when they cannot be written).
    pub fn with_audit(mut self, audit: crate::audit::Recorder) -> Self {
        self.audit = audit;
        self
    }
}

impl Gateway {
    /// The bucket policy in force for this request.
    fn policy(&self) -> Arc<crate::policy::Policy> {
        self.policy.get()
    }

    /// Refuses new data once the data-location exception the provider's
    /// jurisdiction depends on has expired (recorded as a denial).
    fn check_location(&self) -> error::FrontResult<()> {
        self.policy()
            .check_location(chrono::Utc::now())
            .map_err(|why| {
                tracing::warn!(target: SECURITY, event = "exception_denied", scope = "data-location", reason = %why, "write refused: provider location no longer allowed");
                error::FrontError::AccessDenied(why.to_string())
            })
    }
}

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        Ok(bucket::list_buckets(self, req).await?)
    }
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        unsupported::check(
            self,
            &req.input.bucket,
            &req.headers,
            unsupported::Op::CreateBucket,
        )?;
        Ok(bucket::create_bucket(self, req).await?)
    }
    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        Ok(bucket::head_bucket(self, req).await?)
    }
    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        Ok(bucket::delete_bucket(self, req).await?)
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        Ok(bucket::get_bucket_location(self, req).await?)
    }
    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        Ok(acl::get_bucket_acl(self, req).await?)
    }
    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        Ok(acl::get_object_acl(self, req).await?)
    }
    async fn put_bucket_acl(
        &self,
        _req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        Err(acl::refuse_acl_change().into())
    }
    async fn put_object_acl(
        &self,
        _req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        Err(acl::refuse_acl_change().into())
    }
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        unsupported::check(
            self,
            &req.input.bucket,
            &req.headers,
            unsupported::Op::PutObject,
        )?;
        self.check_location()?;
        Ok(put::put_object(self, req).await?)
    }
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        Ok(get::get_object(self, req).await?)
    }
    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        Ok(get::head_object(self, req).await?)
    }
    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        Ok(attributes::get_object_attributes(self, req).await?)
    }
    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        Ok(delete::delete_object(self, req).await?)
    }
    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        Ok(delete::delete_objects(self, req).await?)
    }
    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        Ok(list::list_objects(self, req).await?)
    }
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        Ok(list::list_objects_v2(self, req).await?)
    }
    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        unsupported::check(
            self,
            &req.input.bucket,
            &req.headers,
            unsupported::Op::CopyObject,
        )?;
        self.check_location()?;
        Ok(copy::copy_object(self, req).await?)
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        unsupported::check(
            self,
            &req.input.bucket,
            &req.headers,
            unsupported::Op::CreateMultipartUpload,
        )?;
        self.check_location()?;
        Ok(multipart::create_multipart_upload(self, req).await?)
    }
    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        unsupported::check(
            self,
            &req.input.bucket,
            &req.headers,
            unsupported::Op::UploadPart,
        )?;
        self.check_location()?;
        Ok(multipart::upload_part(self, req).await?)
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.check_location()?;
        Ok(multipart::complete_multipart_upload(self, req).await?)
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        Ok(multipart::abort_multipart_upload(self, req).await?)
    }
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        unsupported::check(
            self,
            &req.input.bucket,
            &req.headers,
            unsupported::Op::UploadPartCopy,
        )?;
        self.check_location()?;
        Ok(multipart::upload_part_copy(self, req).await?)
    }
    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        Ok(multipart::list_parts(self, req).await?)
    }
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        Ok(multipart::list_multipart_uploads(self, req).await?)
    }
}

/// The key new objects of `bucket` are wrapped with: the active key of
/// the key domain `[[policy.key_domains]]` assigns it, or the store's own.
/// A destroyed domain takes no new objects (a security event: something
/// still writes to erased data's bucket).
pub(crate) fn active_kek<'a>(
    gw: &Gateway,
    keys: &'a crate::keys::KeyStore,
    bucket: &str,
) -> error::FrontResult<&'a crate::format::Kek> {
    let policy = gw.policy.get();
    let domain = policy.domain_for(bucket);
    keys.active_in(domain).map_err(|e| match e {
        crate::keys::KeyError::DomainDestroyed { .. } => {
            tracing::warn!(target: SECURITY, event = "write_to_destroyed_domain", %bucket, domain = domain.unwrap_or_default(), cause = %e, "write refused: the bucket's key domain was destroyed");
            error::FrontError::AccessDenied(format!("the bucket's {e}: nothing can be written under it"))
        }
        e => error::FrontError::Internal(format!("the bucket's key domain: {e}")),
    })
}

/// The ETag clients see for an upstream ETag: the same value in PUT, HEAD,
/// GET and listings, and no MD5 of plaintext anywhere. A single-part ETag is
/// the MD5 of *ciphertext*; it gets a `-1` suffix so that clients which
/// compare a 32-hex ETag with the MD5 of their file (rclone) do not report
/// false corruption. Multipart ETags (`…-N`) pass unchanged.
pub(crate) fn client_etag(upstream: &str) -> String {
    let v = upstream.trim_matches('"');
    if v.contains('-') {
        v.to_owned()
    } else {
        format!("{v}-1")
    }
}

/// Number of part streams an upstream ETag implies (`-N` suffix, else 1).
pub(crate) fn etag_parts(upstream: &str) -> u32 {
    upstream
        .trim_matches('"')
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(1)
}

/// The ETag DTO for a client ETag value.
pub(crate) fn etag(upstream: Option<&str>) -> Option<ETag> {
    upstream.map(|e| ETag::Strong(client_etag(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_stable_and_never_look_like_plain_md5() {
        assert_eq!(
            client_etag("\"0123456789abcdef0123456789abcdef\""),
            "0123456789abcdef0123456789abcdef-1"
        );
        assert_eq!(client_etag("\"abc-3\""), "abc-3");
        assert_eq!(etag_parts("\"abc-3\""), 3);
        assert_eq!(etag_parts("\"0123\""), 1);
    }
}
