//! CopyObject: server-side, without re-encryption.
//!
//! The source is located and authenticated like a GET. The copy keeps the
//! source's envelope and ciphertext; only the name binding is recomputed for
//! the destination (FORMAT.md §Name binding) and the sealed metadata is
//! re-sealed (COPY) or replaced (REPLACE) under the same data key. A
//! single-part source is copied with one upstream CopyObject; a multipart
//! source part by part (UploadPartCopy of each part's exact ciphertext
//! range, found by walking and checking the part headers), so the copy
//! keeps its `-N` ETag and listings keep exact sizes.

use super::error::{FrontError, FrontResult, format as format_err, upstream_object};
use super::get::{Located, locate, stored_part_headers};
use super::put::{check_metadata_size, object_metadata};
use super::{Gateway, client_etag};
use crate::format::metadata::{self, StoredMetadata};
use crate::format::{ObjectName, OsRandom};
use crate::upstream::{CompleteRequest, CopyRequest, PartCopyRequest, UpstreamError};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::*;
use s3s::{S3Request, S3Response};
use std::collections::HashMap;

/// Characters kept as-is in x-amz-copy-source (RFC 3986 unreserved and `/`).
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// The bucket and key of a copy source; versions and access points are
/// not supported.
pub(super) fn source(s: &CopySource) -> FrontResult<(&str, &str)> {
    match s {
        CopySource::Bucket {
            version_id: Some(_),
            ..
        } => Err(FrontError::NotImplemented(
            "copying a specific version is not supported".into(),
        )),
        CopySource::Bucket { bucket, key, .. } => Ok((bucket, key)),
        _ => Err(FrontError::NotImplemented(
            "copy sources other than bucket/key are not supported".into(),
        )),
    }
}

pub async fn copy_object(
    gw: &Gateway,
    req: S3Request<CopyObjectInput>,
) -> FrontResult<S3Response<CopyObjectOutput>> {
    let headers = req.headers;
    let i = req.input;
    let (src_bucket, src_key) = source(&i.copy_source)?;
    super::passthrough::refuse_unsupported(gw, src_bucket, "copies")?;
    super::passthrough::refuse_unsupported(gw, &i.bucket, "copies")?;
    let replace = i
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str().eq_ignore_ascii_case("REPLACE"));
    if src_bucket == i.bucket && src_key == i.key && !replace {
        return Err(FrontError::InvalidRequest("This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.".into()));
    }
    let src = locate(gw, src_bucket, src_key).await?;
    check_copy_conditions(&i, &src)?;

    let ferr = |e| format_err(e, &i.bucket, &i.key);
    let dest = ObjectName {
        bucket: &i.bucket,
        key: &i.key,
    };
    let tag = src.envelope.binding_tag(&src.dek, dest);
    let mut meta = if replace {
        object_metadata(i.metadata.as_ref(), &headers)
    } else {
        src.meta.clone()
    };
    // The checksums describe the plaintext, which a copy keeps, with
    // either directive (as S3 does). A copy asking for another algorithm
    // would need the plaintext read back to compute it: it gets none
    // (docs/COMPATIBILITY.md).
    meta.checksums = src.meta.checksums.clone();
    if let Some(a) = &i.checksum_algorithm {
        let a = a.as_str().to_ascii_lowercase();
        meta.checksums.retain(|name, _| *name == a);
    }
    let stored_meta = |meta: &metadata::ObjectMetadata| {
        let sealed =
            metadata::seal(&src.envelope, &src.dek, dest, meta, &mut OsRandom).map_err(ferr)?;
        let upstream_meta = match &src.header {
            Some(h) => StoredMetadata::single_part(&h.to_bytes(), &tag, sealed),
            None => StoredMetadata::multipart(&src.envelope, &tag, sealed),
        };
        Ok::<_, FrontError>(upstream_meta)
    };
    let mut upstream_meta = stored_meta(&meta)?;
    if check_metadata_size(&upstream_meta).is_err() && !meta.checksums.is_empty() {
        // The client's metadata comes first (as in PutObject).
        meta.checksums.clear();
        upstream_meta = stored_meta(&meta)?;
    }
    check_metadata_size(&upstream_meta)?;
    let source = copy_source(src_bucket, src_key);

    let (etag, last_modified) = if src.header.is_some() {
        let copied = gw
            .upstream
            .copy_object(CopyRequest {
                bucket: i.bucket.clone(),
                key: i.key.clone(),
                source: source.clone(),
                source_if_match: src.upstream_etag.clone(),
                metadata: upstream_meta,
            })
            .await
            .map_err(upstream_object)?;
        (copied.e_tag, copied.last_modified.map(Timestamp::from))
    } else {
        let etag = copy_parts(gw, &src, (src_bucket, src_key), &i, &source, upstream_meta).await?;
        (etag, Some(Timestamp::from(time::OffsetDateTime::now_utc())))
    };
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: etag.map(|e| ETag::Strong(client_etag(&e))),
            last_modified,
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// x-amz-copy-source for `bucket`/`key`.
fn copy_source(bucket: &str, key: &str) -> String {
    format!(
        "{}/{}",
        utf8_percent_encode(bucket, COPY_SOURCE),
        utf8_percent_encode(key, COPY_SOURCE)
    )
}

/// Replaces the S3 metadata of the single-part object at `bucket`/`key`
/// with `upstream_meta`, in place (a CopyObject onto itself), only while
/// it is still the version whose provider ETag is `etag`; returns the new
/// provider ETag. Used to add checksums that arrived in a trailer after
/// the object was written.
pub(super) async fn replace_metadata(
    gw: &Gateway,
    (bucket, key): (&str, &str),
    etag: &str,
    upstream_meta: HashMap<String, String>,
) -> Result<Option<String>, UpstreamError> {
    let copied = gw
        .upstream
        .copy_object(CopyRequest {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            source: copy_source(bucket, key),
            source_if_match: etag.to_owned(),
            metadata: upstream_meta,
        })
        .await?;
    Ok(copied.e_tag)
}

/// Copies a multipart source part by part into a new upload at the
/// destination; aborts that upload on any failure.
async fn copy_parts(
    gw: &Gateway,
    src: &Located,
    (src_bucket, src_key): (&str, &str),
    i: &CopyObjectInput,
    source: &str,
    upstream_meta: HashMap<String, String>,
) -> FrontResult<Option<String>> {
    let upstream = &gw.upstream;
    let upload = upstream
        .create_multipart_upload(&i.bucket, &i.key, upstream_meta)
        .await
        .map_err(upstream_object)?
        .ok_or_else(|| FrontError::Internal("the storage provider returned no upload id".into()))?;
    let result = async {
        // Every part (and the completion record) is verified before its
        // bytes are copied: a copy must not launder a truncated source.
        let headers = stored_part_headers(gw, src, (src_bucket, src_key)).await?;
        let mut parts = Vec::new();
        let mut offset = 0u64;
        for h in headers {
            let (n, len) = (h.part_number, h.stored_len());
            let etag = upstream
                .upload_part_copy(PartCopyRequest {
                    bucket: i.bucket.clone(),
                    key: i.key.clone(),
                    upload_id: upload.clone(),
                    part_number: n as i32,
                    source: source.to_owned(),
                    source_if_match: src.upstream_etag.clone(),
                    source_range: format!("bytes={}-{}", offset, offset + len - 1),
                })
                .await
                .map_err(upstream_object)?
                .unwrap_or_default();
            parts.push((n as i32, etag));
            offset += len;
        }
        let done = upstream
            .complete_multipart_upload(CompleteRequest {
                bucket: i.bucket.clone(),
                key: i.key.clone(),
                upload_id: upload.clone(),
                parts,
                ..Default::default()
            })
            .await
            .map_err(upstream_object)?;
        Ok(done.e_tag)
    }
    .await;
    if result.is_err()
        && let Err(cause) = upstream
            .abort_multipart_upload(&i.bucket, &i.key, &upload)
            .await
    {
        tracing::debug!(bucket = %i.bucket, key = %i.key, %cause, "copy upload not aborted");
    }
    result
}

/// x-amz-copy-source-if-* against the source as clients see it; S3 answers
/// 412 for any that fails.
fn check_copy_conditions(i: &CopyObjectInput, src: &Located) -> FrontResult<()> {
    let etag = client_etag(&src.upstream_etag);
    let ok = super::conditions::evaluate(
        &etag,
        src.last_modified.as_ref(),
        i.copy_source_if_match.as_ref(),
        i.copy_source_if_none_match.as_ref(),
        i.copy_source_if_modified_since.as_ref(),
        i.copy_source_if_unmodified_since.as_ref(),
    );
    match ok {
        super::conditions::Outcome::Proceed => Ok(()),
        _ => Err(FrontError::PreconditionFailed),
    }
}
