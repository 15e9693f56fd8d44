//! Multipart calls: create, upload and copy parts, list, complete, abort.

use super::body::UploadBody;
use super::object::Metadata;
use super::{Upstream, UpstreamError, key, long_running, time};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use time::OffsetDateTime;

/// An UploadPart.
#[derive(Debug, Clone, Default)]
pub struct PartRequest {
    /// Bucket name.
    pub bucket: String,
    /// Object key, as the client named it.
    pub key: String,
    /// The provider's upload id.
    pub upload_id: String,
    /// Part number (1-based).
    pub part_number: i32,
    /// Bytes the body holds.
    pub content_length: u64,
}

/// An UploadPartCopy of a byte range of `source`, pinned to its ETag.
#[derive(Debug, Clone, Default)]
pub struct PartCopyRequest {
    /// Bucket name.
    pub bucket: String,
    /// Object key, as the client named it.
    pub key: String,
    /// The provider's upload id.
    pub upload_id: String,
    /// Part number (1-based).
    pub part_number: i32,
    /// `x-amz-copy-source`, already encoded.
    pub source: String,
    /// The source's provider ETag it must still have.
    pub source_if_match: String,
    /// `bytes=a-b`.
    pub source_range: String,
}

/// A CompleteMultipartUpload.
#[derive(Debug, Clone, Default)]
pub struct CompleteRequest {
    /// Bucket name.
    pub bucket: String,
    /// Object key, as the client named it.
    pub key: String,
    /// The provider's upload id.
    pub upload_id: String,
    /// (number, provider ETag) of each part, in order.
    pub parts: Vec<(i32, String)>,
    /// `If-Match` for the provider.
    pub if_match: Option<String>,
    /// `If-None-Match` for the provider.
    pub if_none_match: Option<String>,
}

/// A completion's answer.
#[derive(Debug, Clone, Default)]
pub struct Completed {
    /// The provider's ETag.
    pub e_tag: Option<String>,
    /// The object's location.
    pub location: Option<String>,
}

/// One part as the provider lists it.
#[derive(Debug, Clone)]
pub struct ProviderPart {
    /// Part number.
    pub number: i32,
    /// The provider's part ETag.
    pub etag: String,
    /// Stored (ciphertext) size.
    pub size: u64,
    /// When the object was last written.
    pub last_modified: Option<OffsetDateTime>,
}

/// One page of the provider's ListParts.
#[derive(Debug, Clone, Default)]
pub struct PartsPage {
    /// The parts.
    pub parts: Vec<ProviderPart>,
    /// More parts follow.
    pub truncated: bool,
    /// Where the next page starts.
    pub next_marker: Option<String>,
    /// At most this many parts.
    pub max_parts: Option<i32>,
}

/// A ListMultipartUploads request.
#[derive(Debug, Clone, Default)]
pub struct UploadsRequest {
    /// Bucket name.
    pub bucket: String,
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// Groups keys up to this into common prefixes.
    pub delimiter: Option<String>,
    /// List after this key.
    pub key_marker: Option<String>,
    /// The provider's upload id to list after.
    pub upload_id_marker: Option<String>,
    /// At most this many uploads.
    pub max_uploads: Option<i32>,
}

/// An upload in progress as the provider lists it.
#[derive(Debug, Clone, Default)]
pub struct ProviderUpload {
    /// Object key, as the client named it.
    pub key: Option<String>,
    /// The provider's upload id.
    pub upload_id: Option<String>,
    /// When the upload began.
    pub initiated: Option<OffsetDateTime>,
}

/// One page of the provider's ListMultipartUploads.
#[derive(Debug, Clone, Default)]
pub struct UploadsPage {
    /// The uploads listed.
    pub uploads: Vec<ProviderUpload>,
    /// The common prefixes listed.
    pub common_prefixes: Vec<Option<String>>,
    /// At most this many uploads.
    pub max_uploads: Option<i32>,
    /// More follow.
    pub is_truncated: Option<bool>,
    /// The next page's key marker.
    pub next_key_marker: Option<String>,
    /// The next page's upload id marker.
    pub next_upload_id_marker: Option<String>,
}

impl Upstream {
    /// CreateMultipartUpload of an `application/octet-stream` object with
    /// `metadata`; returns the provider's upload id.
    pub async fn create_multipart_upload(
        &self,
        bucket: &str,
        object: &str,
        metadata: Metadata,
    ) -> Result<Option<String>, UpstreamError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key(object))
            .content_type("application/octet-stream")
            .set_metadata(Some(metadata))
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        Ok(out.upload_id().map(str::to_owned))
    }

    /// UploadPart; returns the part's ETag.
    pub async fn upload_part(
        &self,
        r: PartRequest,
        body: UploadBody,
    ) -> Result<Option<String>, UpstreamError> {
        let request = self
            .client
            .upload_part()
            .bucket(r.bucket)
            .key(key(&r.key))
            .upload_id(r.upload_id)
            .part_number(r.part_number)
            .content_length(r.content_length as i64)
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
        Ok(out.e_tag().map(str::to_owned))
    }

    /// UploadPartCopy; returns the part's ETag.
    pub async fn upload_part_copy(
        &self,
        r: PartCopyRequest,
    ) -> Result<Option<String>, UpstreamError> {
        let out = self
            .client
            .upload_part_copy()
            .bucket(r.bucket)
            .key(key(&r.key))
            .upload_id(r.upload_id)
            .part_number(r.part_number)
            .copy_source(r.source)
            .copy_source_if_match(r.source_if_match)
            .copy_source_range(r.source_range)
            .customize()
            .config_override(long_running())
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        Ok(out
            .copy_part_result()
            .and_then(|r| r.e_tag())
            .map(str::to_owned))
    }

    /// CompleteMultipartUpload. A 2xx answer the SDK refuses (moto names
    /// the root element CompleteMultipartUploadResponse) is read leniently.
    pub async fn complete_multipart_upload(
        &self,
        r: CompleteRequest,
    ) -> Result<Completed, UpstreamError> {
        let parts = r
            .parts
            .into_iter()
            .map(|(n, e)| CompletedPart::builder().part_number(n).e_tag(e).build())
            .collect();
        let answer = self
            .client
            .complete_multipart_upload()
            .bucket(&r.bucket)
            .key(key(&r.key))
            .upload_id(r.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .set_if_match(r.if_match)
            .set_if_none_match(r.if_none_match)
            .customize()
            .config_override(long_running())
            .send()
            .await;
        match answer {
            Ok(out) => Ok(Completed {
                e_tag: out.e_tag().map(str::to_owned),
                location: out.location().map(str::to_owned),
            }),
            Err(e) => match lenient_completion(&e) {
                Some(done) => {
                    tracing::debug!(bucket = %r.bucket, key = %r.key, "provider's CompleteMultipartUpload answer read leniently");
                    Ok(done)
                }
                None => Err(UpstreamError::from_sdk(e)),
            },
        }
    }

    /// AbortMultipartUpload.
    pub async fn abort_multipart_upload(
        &self,
        bucket: &str,
        object: &str,
        upload_id: &str,
    ) -> Result<(), UpstreamError> {
        self.client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key(object))
            .upload_id(upload_id)
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        Ok(())
    }

    /// One page of ListParts, read by the SDK, or leniently when the
    /// provider's answer is a 2xx the SDK refuses (moto names the root
    /// element ListPartsResponse).
    pub async fn list_parts(
        &self,
        (bucket, object, upload_id): (&str, &str, &str),
        marker: Option<String>,
        max_parts: Option<i32>,
    ) -> Result<PartsPage, UpstreamError> {
        let page = self
            .client
            .list_parts()
            .bucket(bucket)
            .key(key(object))
            .upload_id(upload_id)
            .set_part_number_marker(marker)
            .set_max_parts(max_parts)
            .send()
            .await;
        match page {
            Ok(p) => Ok(PartsPage {
                parts: p
                    .parts()
                    .iter()
                    .filter_map(|part| {
                        Some(ProviderPart {
                            number: part.part_number()?,
                            etag: part.e_tag().unwrap_or_default().to_owned(),
                            size: u64::try_from(part.size().unwrap_or(0)).unwrap_or(0),
                            last_modified: part.last_modified().and_then(time),
                        })
                    })
                    .collect(),
                truncated: p.is_truncated() == Some(true),
                next_marker: p.next_part_number_marker().map(str::to_owned),
                max_parts: p.max_parts(),
            }),
            Err(e) => match lenient_list_parts(&e) {
                Some(doc) => {
                    tracing::debug!(%bucket, key = %object, "provider's ListParts read leniently");
                    Ok(doc)
                }
                None => Err(UpstreamError::from_sdk(e)),
            },
        }
    }

    /// One page of ListMultipartUploads.
    pub async fn list_multipart_uploads(
        &self,
        r: UploadsRequest,
    ) -> Result<UploadsPage, UpstreamError> {
        let page = self
            .client
            .list_multipart_uploads()
            .bucket(r.bucket)
            .set_prefix(r.prefix)
            .set_delimiter(r.delimiter)
            .set_key_marker(r.key_marker)
            .set_upload_id_marker(r.upload_id_marker)
            .set_max_uploads(r.max_uploads)
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        Ok(UploadsPage {
            uploads: page
                .uploads()
                .iter()
                .map(|u| ProviderUpload {
                    key: u.key().map(str::to_owned),
                    upload_id: u.upload_id().map(str::to_owned),
                    initiated: u.initiated().and_then(time),
                })
                .collect(),
            common_prefixes: page
                .common_prefixes()
                .iter()
                .map(|p| p.prefix().map(str::to_owned))
                .collect(),
            max_uploads: page.max_uploads(),
            is_truncated: page.is_truncated(),
            next_key_marker: page.next_key_marker().map(str::to_owned),
            next_upload_id_marker: page.next_upload_id_marker().map(str::to_owned),
        })
    }
}

/// A ListParts answer with a 2xx status that the SDK refused, read with
/// quick-xml by element names (the root element's name is not checked).
fn lenient_list_parts<E>(
    e: &SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Option<PartsPage> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Doc {
        #[serde(default, rename = "Part")]
        parts: Vec<DocPart>,
        #[serde(default)]
        is_truncated: Option<bool>,
        #[serde(default)]
        next_part_number_marker: Option<String>,
        #[serde(default)]
        max_parts: Option<i32>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct DocPart {
        part_number: i32,
        #[serde(default, rename = "ETag")]
        etag: String,
        size: u64,
        #[serde(default)]
        last_modified: Option<String>,
    }
    let raw = e.raw_response()?;
    if !raw.status().is_success() {
        return None;
    }
    let text = std::str::from_utf8(raw.body().bytes()?).ok()?;
    let doc: Doc = quick_xml::de::from_str(text).ok()?;
    Some(PartsPage {
        parts: doc
            .parts
            .into_iter()
            .map(|p| ProviderPart {
                number: p.part_number,
                etag: p.etag,
                size: p.size,
                last_modified: p.last_modified.and_then(|t| {
                    OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok()
                }),
            })
            .collect(),
        truncated: doc.is_truncated.unwrap_or(false),
        next_marker: doc.next_part_number_marker,
        max_parts: doc.max_parts,
    })
}

/// A CompleteMultipartUpload answer with a 2xx status that the SDK refused:
/// the upload is complete if the document carries the object's ETag and no
/// error code (S3 may answer 200 with an `<Error>` document, which is a
/// failure).
fn lenient_completion<E>(
    e: &SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Option<Completed> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Doc {
        #[serde(rename = "ETag")]
        etag: String,
        #[serde(default)]
        location: Option<String>,
        #[serde(default)]
        code: Option<String>,
    }
    let raw = e.raw_response()?;
    if !raw.status().is_success() {
        return None;
    }
    let text = std::str::from_utf8(raw.body().bytes()?).ok()?;
    let doc: Doc = quick_xml::de::from_str(text).ok()?;
    if doc.code.is_some() || doc.etag.is_empty() {
        return None;
    }
    Some(Completed {
        e_tag: Some(doc.etag),
        location: doc.location,
    })
}
