//! GetObjectAttributes: the plaintext size, the ETag, the storage class,
//! the parts of a multipart object and the checksums sealgate verified,
//! from an object located and authenticated exactly as for a HEAD (data
//! key, name binding, sealed metadata, every size from verified headers).
//! Passthrough objects (and legacy reads under an exception) are answered
//! by the provider.

use super::error::{FrontError, FrontResult, upstream_object};
use super::get::{locate, stored_part_headers};
use super::{Gateway, checksums, client_etag};
use crate::format::header::PartKind;
use crate::upstream::AttributesRequest;
use s3s::dto::*;
use s3s::{S3Request, S3Response};

/// S3's default and largest page of parts.
const MAX_PARTS: i32 = 1000;

pub async fn get_object_attributes(
    gw: &Gateway,
    req: S3Request<GetObjectAttributesInput>,
) -> FrontResult<S3Response<GetObjectAttributesOutput>> {
    let access_key = req.credentials.as_ref().map(|c| c.access_key.clone());
    let i = req.input;
    if i.version_id.is_some() {
        return Err(FrontError::NotImplemented(
            "reading a specific version is not supported".into(),
        ));
    }
    if i.sse_customer_algorithm.is_some() || i.sse_customer_key.is_some() {
        return Err(FrontError::NotImplemented(
            "sealgate does not apply SSE-C: objects are encrypted by the gateway".into(),
        ));
    }
    // One header may carry several names ("ETag,ObjectSize": botocore),
    // or several headers one each (the Rust SDK).
    let asked: Vec<String> = i
        .object_attributes
        .iter()
        .flat_map(|a| a.as_str().split(','))
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect();
    if asked.is_empty() {
        return Err(FrontError::InvalidArgument(
            "x-amz-object-attributes must name at least one attribute".into(),
        ));
    }
    const KNOWN: &[&str] = &[
        ObjectAttributes::CHECKSUM,
        ObjectAttributes::ETAG,
        ObjectAttributes::OBJECT_PARTS,
        ObjectAttributes::OBJECT_SIZE,
        ObjectAttributes::STORAGE_CLASS,
    ];
    if let Some(a) = asked.iter().find(|a| !KNOWN.contains(&a.as_str())) {
        return Err(FrontError::InvalidArgument(format!(
            "Invalid attribute name specified: {a}"
        )));
    }
    let max_parts = i.max_parts.unwrap_or(MAX_PARTS);
    let marker = i.part_number_marker.unwrap_or(0);
    if !(0..=MAX_PARTS).contains(&max_parts) || marker < 0 {
        return Err(FrontError::InvalidArgument(
            "max-parts must be between 0 and 1000 and part-number-marker not negative".into(),
        ));
    }
    if super::passthrough::is_plain(gw, &i.bucket, &i.key).await? {
        return provider_attributes(gw, i, &asked).await;
    }
    let obj = match locate(gw, &i.bucket, &i.key).await {
        Ok(o) => o,
        Err(e) if e.is_not_sealed() => {
            super::passthrough::legacy_read(
                gw,
                &i.bucket,
                &i.key,
                "GetObjectAttributes",
                access_key.as_deref(),
            )
            .await?;
            return provider_attributes(gw, i, &asked).await;
        }
        Err(e) => return Err(e),
    };
    let wants = |a: &str| asked.iter().any(|x| x == a);
    let mut out = GetObjectAttributesOutput {
        last_modified: obj.last_modified.clone(),
        ..Default::default()
    };
    if wants(ObjectAttributes::ETAG) {
        out.e_tag = Some(ETag::Strong(client_etag(&obj.upstream_etag)));
    }
    if wants(ObjectAttributes::OBJECT_SIZE) {
        out.object_size = Some(obj.plaintext_len as i64);
    }
    if wants(ObjectAttributes::STORAGE_CLASS) {
        out.storage_class = Some(StorageClass::from(
            obj.storage_class
                .clone()
                .unwrap_or_else(|| StorageClass::STANDARD.to_owned()),
        ));
    }
    if wants(ObjectAttributes::CHECKSUM) {
        out.checksum = checksums::from_map(&obj.meta.checksums);
    }
    // S3 lists parts for multipart objects only.
    if wants(ObjectAttributes::OBJECT_PARTS) && obj.header.is_none() {
        // Every part header is read and verified (one 212-byte read per
        // part): the sizes are the plaintext ones, and a completion record
        // is not a part the client uploaded.
        let headers = stored_part_headers(gw, &obj, (&i.bucket, &i.key)).await?;
        let data: Vec<_> = headers
            .iter()
            .filter(|h| h.kind != PartKind::Completion)
            .collect();
        let after: Vec<_> = data
            .iter()
            .filter(|h| i64::from(h.part_number) > i64::from(marker))
            .collect();
        let page: Vec<ObjectPart> = after
            .iter()
            .take(max_parts as usize)
            .map(|h| ObjectPart {
                part_number: Some(h.part_number as i32),
                size: Some(h.plaintext_len as i64),
                ..Default::default()
            })
            .collect();
        let truncated = after.len() > page.len();
        out.object_parts = Some(GetObjectAttributesParts {
            total_parts_count: Some(data.len() as i32),
            part_number_marker: Some(marker),
            next_part_number_marker: page.last().and_then(|p| p.part_number),
            max_parts: Some(max_parts),
            is_truncated: Some(truncated),
            parts: Some(page),
        });
    }
    Ok(S3Response::new(out))
}

/// GetObjectAttributes answered by the provider for an object stored as
/// plaintext (a passthrough bucket, or a legacy read under an exception).
async fn provider_attributes(
    gw: &Gateway,
    i: GetObjectAttributesInput,
    asked: &[String],
) -> FrontResult<S3Response<GetObjectAttributesOutput>> {
    let r = gw
        .upstream
        .object_attributes(AttributesRequest {
            bucket: i.bucket.clone(),
            key: i.key.clone(),
            attributes: asked.to_vec(),
            max_parts: i.max_parts,
            part_number_marker: i.part_number_marker.map(|m| m.to_string()),
        })
        .await
        .map_err(upstream_object)?;
    let checksum = r.checksum.map(|(c, checksum_type)| Checksum {
        checksum_crc32: c.crc32,
        checksum_crc32c: c.crc32c,
        checksum_crc64nvme: c.crc64nvme,
        checksum_sha1: c.sha1,
        checksum_sha256: c.sha256,
        checksum_type: checksum_type.map(ChecksumType::from),
    });
    let object_parts = r.parts.map(|p| GetObjectAttributesParts {
        total_parts_count: p.total_parts_count,
        part_number_marker: p.part_number_marker.and_then(|m| m.parse().ok()),
        next_part_number_marker: p.next_part_number_marker.and_then(|m| m.parse().ok()),
        max_parts: p.max_parts,
        is_truncated: p.is_truncated,
        parts: Some(
            p.parts
                .into_iter()
                .map(|(part_number, size, c)| ObjectPart {
                    part_number,
                    size,
                    checksum_crc32: c.crc32,
                    checksum_crc32c: c.crc32c,
                    checksum_crc64nvme: c.crc64nvme,
                    checksum_sha1: c.sha1,
                    checksum_sha256: c.sha256,
                })
                .collect(),
        ),
    });
    Ok(S3Response::new(GetObjectAttributesOutput {
        e_tag: r
            .e_tag
            .map(|e| ETag::Strong(e.trim_matches('"').to_owned())),
        last_modified: r.last_modified.map(Timestamp::from),
        object_size: r.object_size,
        storage_class: r.storage_class.map(StorageClass::from),
        checksum,
        object_parts,
        ..Default::default()
    }))
}
