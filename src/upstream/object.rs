//! Object calls: HEAD, GET, PUT, DELETE, copy, attributes.

use super::body::{Body, UploadBody};
use super::{Upstream, UpstreamError, key, long_running, time};
use aws_sdk_s3::types::{Delete, MetadataDirective, ObjectAttributes, ObjectIdentifier};
use std::collections::HashMap;
use time::OffsetDateTime;

/// The provider's S3 metadata of an object (`x-amz-meta-*`, names without
/// the prefix).
pub type Metadata = HashMap<String, String>;

/// What a HEAD or GET answer says of a stored object.
#[derive(Debug, Clone, Default)]
pub struct ObjectInfo {
    /// The provider's ETag, quoted as it sent it.
    pub e_tag: Option<String>,
    /// Bytes in the answer (the whole object for a HEAD).
    pub content_length: Option<i64>,
    /// `Content-Range` of a ranged GET.
    pub content_range: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// When the object was last written.
    pub last_modified: Option<OffsetDateTime>,
    /// Named by a HEAD answer only.
    pub storage_class: Option<String>,
    /// S3 metadata.
    pub metadata: Option<Metadata>,
}

/// A GET's answer: what it says of the object, and its body.
#[derive(Debug)]
pub struct Download {
    /// What the answer says of the object.
    pub info: ObjectInfo,
    /// The body.
    pub body: Body,
}

/// A GET of (a range of) an object.
#[derive(Debug, Clone, Default)]
pub struct GetRequest {
    /// Bucket name.
    pub bucket: String,
    /// Object key, as the client named it.
    pub key: String,
    /// An HTTP `Range` value (`bytes=a-b`).
    pub range: Option<String>,
    /// `If-Match`: pins the version read.
    pub if_match: Option<String>,
    /// `If-None-Match` for the provider.
    pub if_none_match: Option<String>,
}

/// A PUT of a whole object.
#[derive(Debug, Clone, Default)]
pub struct PutRequest {
    /// Bucket name.
    pub bucket: String,
    /// Object key, as the client named it.
    pub key: String,
    /// Bytes the body holds (stored bytes).
    pub content_length: u64,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// S3 metadata.
    pub metadata: Option<Metadata>,
    /// `If-Match` for the provider.
    pub if_match: Option<String>,
    /// `If-None-Match` for the provider.
    pub if_none_match: Option<String>,
    /// Server-side encryption asked of the provider (passthrough only).
    pub sse: Option<String>,
    /// The KMS key of SSE-KMS.
    pub ssekms_key_id: Option<String>,
    /// The SSE-KMS encryption context.
    pub ssekms_encryption_context: Option<String>,
    /// S3 Bucket Key for SSE-KMS.
    pub bucket_key_enabled: Option<bool>,
}

/// A PUT's answer.
#[derive(Debug, Clone, Default)]
pub struct PutOutput {
    /// The provider's ETag.
    pub e_tag: Option<String>,
    /// The server-side encryption the provider says it applied.
    pub sse: Option<String>,
    /// The KMS key of SSE-KMS.
    pub ssekms_key_id: Option<String>,
    /// S3 Bucket Key for SSE-KMS.
    pub bucket_key_enabled: Option<bool>,
}

/// A server-side copy that replaces the metadata (sealgate's own copies:
/// always `application/octet-stream`, pinned to the source's ETag).
#[derive(Debug, Clone, Default)]
pub struct CopyRequest {
    /// Bucket name.
    pub bucket: String,
    /// Object key, as the client named it.
    pub key: String,
    /// `x-amz-copy-source`, already encoded.
    pub source: String,
    /// The source's provider ETag it must still have.
    pub source_if_match: String,
    /// S3 metadata.
    pub metadata: Metadata,
}

/// A copy's answer.
#[derive(Debug, Clone, Default)]
pub struct Copied {
    /// The provider's ETag.
    pub e_tag: Option<String>,
    /// When the object was last written.
    pub last_modified: Option<OffsetDateTime>,
}

/// One outcome of a DeleteObjects request.
#[derive(Debug, Clone, Default)]
pub struct DeleteResult {
    /// Keys deleted.
    pub deleted: Vec<Option<String>>,
    /// Keys not deleted, with the provider's reason.
    pub errors: Vec<DeleteFailure>,
}

/// A key a DeleteObjects request did not delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteFailure {
    /// Object key, as the client named it.
    pub key: Option<String>,
    /// The provider's error code.
    pub code: Option<String>,
    /// The provider's message.
    pub message: Option<String>,
}

/// A GetObjectAttributes request, for an object stored as plaintext.
#[derive(Debug, Clone, Default)]
pub struct AttributesRequest {
    /// Bucket name.
    pub bucket: String,
    /// Object key, as the client named it.
    pub key: String,
    /// The attribute names the client asked for.
    pub attributes: Vec<String>,
    /// At most this many parts.
    pub max_parts: Option<i32>,
    /// List parts after this one.
    pub part_number_marker: Option<String>,
}

/// Checksum values as the provider reports them.
#[derive(Debug, Clone, Default)]
pub struct Checksums {
    /// CRC32.
    pub crc32: Option<String>,
    /// CRC32C.
    pub crc32c: Option<String>,
    /// CRC64NVME.
    pub crc64nvme: Option<String>,
    /// SHA-1.
    pub sha1: Option<String>,
    /// SHA-256.
    pub sha256: Option<String>,
}

/// GetObjectAttributes as the provider answered it.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    /// The provider's ETag.
    pub e_tag: Option<String>,
    /// When the object was last written.
    pub last_modified: Option<OffsetDateTime>,
    /// Stored size.
    pub object_size: Option<i64>,
    /// The provider's storage class.
    pub storage_class: Option<String>,
    /// The object's checksum and its type.
    pub checksum: Option<(Checksums, Option<String>)>,
    /// The parts.
    pub parts: Option<AttributeParts>,
}

/// The parts section of GetObjectAttributes.
#[derive(Debug, Clone, Default)]
pub struct AttributeParts {
    /// Parts the object has.
    pub total_parts_count: Option<i32>,
    /// List parts after this one.
    pub part_number_marker: Option<String>,
    /// Where the next page starts.
    pub next_part_number_marker: Option<String>,
    /// At most this many parts.
    pub max_parts: Option<i32>,
    /// More follow.
    pub is_truncated: Option<bool>,
    /// (number, size, checksums) of each part.
    pub parts: Vec<(Option<i32>, Option<i64>, Checksums)>,
}

/// What a write-once PUT found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOnce {
    /// The object was stored.
    Written,
    /// An object was already there; it was left as it was.
    AlreadyThere,
}

impl Upstream {
    /// PUTs `body` at `bucket`/`object` only where no object is
    /// (`If-None-Match: *`: nothing is ever overwritten), with Object Lock in
    /// COMPLIANCE mode until `retain_until` (Unix seconds) when given. For
    /// the audit log's chain-head anchors (`audit::anchor`).
    pub async fn put_write_once(
        &self,
        bucket: &str,
        object: &str,
        content_type: &str,
        body: Vec<u8>,
        retain_until: Option<i64>,
    ) -> Result<WriteOnce, UpstreamError> {
        let mut req = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key(object))
            .content_type(content_type)
            .if_none_match("*")
            .body(aws_sdk_s3::primitives::ByteStream::from(body));
        if let Some(until) = retain_until {
            req = req
                .object_lock_mode(aws_sdk_s3::types::ObjectLockMode::Compliance)
                .object_lock_retain_until_date(aws_smithy_types::DateTime::from_secs(until));
        }
        match req.send().await {
            Ok(_) => Ok(WriteOnce::Written),
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(412) => {
                Ok(WriteOnce::AlreadyThere)
            }
            Err(e) => Err(UpstreamError::from_sdk(e)),
        }
    }

    /// HEAD of an object.
    pub async fn head_object(
        &self,
        bucket: &str,
        object: &str,
    ) -> Result<ObjectInfo, UpstreamError> {
        let h = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key(object))
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        // Fields are moved out of the answer, not copied (the metadata map
        // carries the sealed headers on every HEAD).
        Ok(ObjectInfo {
            last_modified: h.last_modified().and_then(time),
            storage_class: h.storage_class().map(|c| c.as_str().to_owned()),
            content_length: h.content_length,
            content_range: None,
            e_tag: h.e_tag,
            content_type: h.content_type,
            metadata: h.metadata,
        })
    }

    /// GET of an object or a range of it.
    pub async fn get_object(&self, r: GetRequest) -> Result<Download, UpstreamError> {
        let out = self
            .client
            .get_object()
            .bucket(r.bucket)
            .key(key(&r.key))
            .set_range(r.range)
            .set_if_match(r.if_match)
            .set_if_none_match(r.if_none_match)
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        let info = ObjectInfo {
            last_modified: out.last_modified().and_then(time),
            content_length: out.content_length,
            content_range: out.content_range,
            e_tag: out.e_tag,
            content_type: out.content_type,
            storage_class: None,
            metadata: out.metadata,
        };
        Ok(Download {
            info,
            body: Body::new(out.body, self.read_timeout),
        })
    }

    /// PUT of a whole object.
    pub async fn put_object(
        &self,
        r: PutRequest,
        body: UploadBody,
    ) -> Result<PutOutput, UpstreamError> {
        let request = self
            .client
            .put_object()
            .bucket(r.bucket)
            .key(key(&r.key))
            .content_length(r.content_length as i64)
            .set_content_type(r.content_type)
            .set_content_disposition(r.content_disposition)
            .set_cache_control(r.cache_control)
            .set_metadata(r.metadata)
            .set_if_match(r.if_match)
            .set_if_none_match(r.if_none_match)
            .set_server_side_encryption(r.sse.as_deref().map(Into::into))
            .set_ssekms_key_id(r.ssekms_key_id)
            .set_ssekms_encryption_context(r.ssekms_encryption_context)
            .set_bucket_key_enabled(r.bucket_key_enabled)
            .body(body.stream);
        let out = if body.streaming {
            request
                .customize()
                .config_override(long_running())
                .send()
                .await
        } else {
            request.send().await
        }
        .map_err(UpstreamError::from_sdk)?;
        Ok(PutOutput {
            e_tag: out.e_tag().map(str::to_owned),
            sse: out.server_side_encryption().map(|v| v.as_str().to_owned()),
            ssekms_key_id: out.ssekms_key_id().map(str::to_owned),
            bucket_key_enabled: out.bucket_key_enabled(),
        })
    }

    /// DELETE of an object.
    pub async fn delete_object(&self, bucket: &str, object: &str) -> Result<(), UpstreamError> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key(object))
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        Ok(())
    }

    /// DeleteObjects of `keys` (each checked by the caller).
    pub async fn delete_objects(
        &self,
        bucket: &str,
        keys: &[String],
        quiet: bool,
    ) -> Result<DeleteResult, UpstreamError> {
        let construction =
            |e: aws_sdk_s3::error::BuildError| UpstreamError::Construction(e.to_string());
        let objects = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(construction)?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(quiet)
            .build()
            .map_err(construction)?;
        let out = self
            .client
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        Ok(DeleteResult {
            deleted: out
                .deleted()
                .iter()
                .map(|d| d.key().map(str::to_owned))
                .collect(),
            errors: out
                .errors()
                .iter()
                .map(|e| DeleteFailure {
                    key: e.key().map(str::to_owned),
                    code: e.code().map(str::to_owned),
                    message: e.message().map(str::to_owned),
                })
                .collect(),
        })
    }

    /// A server-side copy replacing the metadata, pinned to the source's
    /// ETag.
    pub async fn copy_object(&self, r: CopyRequest) -> Result<Copied, UpstreamError> {
        let out = self
            .client
            .copy_object()
            .bucket(r.bucket)
            .key(key(&r.key))
            .copy_source(r.source)
            .copy_source_if_match(r.source_if_match)
            .metadata_directive(MetadataDirective::Replace)
            .content_type("application/octet-stream")
            .set_metadata(Some(r.metadata))
            .customize()
            .config_override(long_running())
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        let result = out.copy_object_result();
        Ok(Copied {
            e_tag: result.and_then(|r| r.e_tag()).map(str::to_owned),
            last_modified: result.and_then(|r| r.last_modified()).and_then(time),
        })
    }

    /// GetObjectAttributes, as the provider answers it.
    pub async fn object_attributes(
        &self,
        r: AttributesRequest,
    ) -> Result<Attributes, UpstreamError> {
        let attributes = r
            .attributes
            .iter()
            .map(|a| ObjectAttributes::from(a.as_str()))
            .collect();
        let out = self
            .client
            .get_object_attributes()
            .bucket(r.bucket)
            .key(key(&r.key))
            .set_object_attributes(Some(attributes))
            .set_max_parts(r.max_parts)
            .set_part_number_marker(r.part_number_marker)
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        let checksum = out.checksum().map(|c| {
            (
                Checksums {
                    crc32: c.checksum_crc32().map(str::to_owned),
                    crc32c: c.checksum_crc32_c().map(str::to_owned),
                    crc64nvme: c.checksum_crc64_nvme().map(str::to_owned),
                    sha1: c.checksum_sha1().map(str::to_owned),
                    sha256: c.checksum_sha256().map(str::to_owned),
                },
                c.checksum_type().map(|t| t.as_str().to_owned()),
            )
        });
        let parts = out.object_parts().map(|p| AttributeParts {
            total_parts_count: p.total_parts_count(),
            part_number_marker: p.part_number_marker().map(str::to_owned),
            next_part_number_marker: p.next_part_number_marker().map(str::to_owned),
            max_parts: p.max_parts(),
            is_truncated: p.is_truncated(),
            parts: p
                .parts()
                .iter()
                .map(|part| {
                    let sums = Checksums {
                        crc32: part.checksum_crc32().map(str::to_owned),
                        crc32c: part.checksum_crc32_c().map(str::to_owned),
                        crc64nvme: part.checksum_crc64_nvme().map(str::to_owned),
                        sha1: part.checksum_sha1().map(str::to_owned),
                        sha256: part.checksum_sha256().map(str::to_owned),
                    };
                    (part.part_number(), part.size(), sums)
                })
                .collect(),
        });
        Ok(Attributes {
            e_tag: out.e_tag().map(str::to_owned),
            last_modified: out.last_modified().and_then(time),
            object_size: out.object_size(),
            storage_class: out.storage_class().map(|c| c.as_str().to_owned()),
            checksum,
            parts,
        })
    }
}
