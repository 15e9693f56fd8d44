//! Multipart uploads, encrypted and stateless.
//!
//! CreateMultipartUpload fixes the object's envelope (a fresh DEK wrapped
//! under the active KEK), binding tag and sealed metadata in the provider's
//! upload metadata, and hands the client an upload id that carries the
//! envelope and the provider's id, authenticated under the DEK for this
//! bucket and key (`format::upload_id`). Any gateway instance can then seal
//! an UploadPart: each part is its own part stream (its own header and stream
//! salt, so a re-uploaded part never reuses a nonce), sealed while it streams
//! with a few chunks of memory, in any order and in parallel.
//!
//! CompleteMultipartUpload checks the client's part list against the
//! provider's (ListParts) before completing: S3's own rules on order, ETags
//! and the 5 MiB minimum apply to *plaintext* sizes, and the format needs
//! part numbers 1..N without gaps (FORMAT.md §Multipart objects).

use super::Gateway;
use super::error::{FrontError, FrontResult, format as format_err, upstream_object};
use super::put::{
    Checks, MAX_PUT, Sealing, check_metadata_size, client_checks, object_metadata,
    plaintext_length, stream_part,
};
use crate::format::RandomSource;
use crate::format::header::{HEADER_LEN, PartHeader, PartKind};
use crate::format::metadata::{self, StoredMetadata};
use crate::format::stream::PartSealer;
use crate::format::upload_id;
use crate::format::{Envelope, FORMAT_V1, ObjectName, OsRandom, size};
use crate::telemetry::security::TARGET as SECURITY;
use crate::upstream::{
    CompleteRequest, PartRequest, PartsPage, ProviderUpload, UploadBody, UploadsRequest,
    UpstreamError,
};
use s3s::dto::*;
use s3s::{S3Request, S3Response};
use std::collections::{BTreeMap, HashMap};

/// S3's smallest part, except the last.
pub(super) const MIN_PART: u64 = 5 << 20;
/// S3's largest part number.
const MAX_PART_NUMBER: i32 = 10_000;

fn no_such_upload() -> FrontError {
    FrontError::NoSuchUpload
}

/// Authenticates a client upload id for `name` (FORMAT.md §Upload ids); an
/// altered id, or one for another object, is logged and is NoSuchUpload.
fn authenticate(gw: &Gateway, id: &str, name: ObjectName<'_>) -> FrontResult<upload_id::UploadId> {
    upload_id::decode(id, name, gw.keys.get().as_ref()).map_err(|e| {
        tracing::warn!(target: SECURITY, event = "bad_upload_id", bucket = %name.bucket, key = %name.key, cause = %e, "upload id altered or used for another object");
        no_such_upload()
    })
}

/// [`authenticate`] for a part upload, after checking the part number.
fn open_upload(
    gw: &Gateway,
    id: &str,
    name: ObjectName<'_>,
    part_number: i32,
) -> FrontResult<upload_id::UploadId> {
    if !(1..=MAX_PART_NUMBER).contains(&part_number) {
        return Err(FrontError::InvalidArgument(
            "Part number must be an integer between 1 and 10000, inclusive".into(),
        ));
    }
    authenticate(gw, id, name)
}

/// The provider's id inside a client upload id (either form), for calls that
/// need no data key.
fn upstream_id(id: &str) -> FrontResult<String> {
    upload_id::upstream_part(id).ok_or_else(no_such_upload)
}

/// The provider's id inside a client upload id, authenticated for this
/// bucket and key like an UploadPart's (ListParts, AbortMultipartUpload):
/// the provider may not bind its upload ids to a bucket (s3s-fs does not),
/// so a bare `sgu.` id, or another object's id, is NoSuchUpload.
fn authenticated_upstream_id(
    gw: &Gateway,
    id: &str,
    bucket: &str,
    key: &str,
) -> FrontResult<String> {
    let name = ObjectName { bucket, key };
    upload_id::decode_upstream(id, name, gw.keys.get().as_ref()).map_err(|e| {
        tracing::warn!(target: SECURITY, event = "bad_upload_id", %bucket, %key, cause = %e, "upload id altered or used for another object");
        no_such_upload()
    })
}

fn quoted(etag: &str) -> String {
    format!("\"{}\"", etag.trim_matches('"'))
}

fn etag_value(e: &ETag) -> &str {
    match e {
        ETag::Strong(v) | ETag::Weak(v) => v,
    }
}

pub async fn create_multipart_upload(
    gw: &Gateway,
    req: S3Request<CreateMultipartUploadInput>,
) -> FrontResult<S3Response<CreateMultipartUploadOutput>> {
    let input = req.input;
    let (bucket, key) = (input.bucket.clone(), input.key.clone());
    super::passthrough::refuse_unsupported(gw, &bucket, "multipart uploads")?;
    let name = ObjectName {
        bucket: &bucket,
        key: &key,
    };
    let ferr = |e| format_err(e, &bucket, &key);
    let keys = gw.keys.get();
    let kek = super::active_kek(gw, &keys, &bucket)?;
    let (env, dek) = Envelope::create(kek, gw.algorithm, &mut OsRandom).map_err(ferr)?;
    let tag = env.binding_tag(&dek, name);
    let sealed = metadata::seal(
        &env,
        &dek,
        name,
        &object_metadata(input.metadata.as_ref(), &req.headers),
        &mut OsRandom,
    )
    .map_err(ferr)?;
    let upstream_meta = StoredMetadata::multipart(&env, &tag, sealed);
    check_metadata_size(&upstream_meta)?;
    let provider_id = gw
        .upstream
        .create_multipart_upload(&bucket, &key, upstream_meta)
        .await
        .map_err(upstream_object)?
        .ok_or_else(|| FrontError::Internal("the storage provider returned no upload id".into()))?;
    let provider_id = provider_id.as_str();
    let id = upload_id::encode(&env, &dek, name, provider_id);
    // The record lets ListMultipartUploads list this very id. It grants
    // nothing (the id authenticates itself), so an upload goes ahead
    // without it: that upload is then listed in the `sgl.` form.
    if let Err(e) = gw
        .upstream
        .put_upload_record(&bucket, &key, provider_id, &id)
        .await
    {
        tracing::warn!(%bucket, %key, cause = %e, "upload record not stored in the state bucket; ListMultipartUploads will list this upload in the sgl. form");
    }
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(bucket.clone()),
        key: Some(key.clone()),
        upload_id: Some(id),
        ..Default::default()
    }))
}

/// Removes the upload record of a finished upload; a record left behind
/// only costs a few hundred bytes in the state bucket.
async fn forget_upload(gw: &Gateway, bucket: &str, key: &str, upstream_id: &str) {
    if let Err(e) = gw
        .upstream
        .delete_upload_record(bucket, key, upstream_id)
        .await
    {
        tracing::warn!(%bucket, %key, cause = %e, "upload record not removed from the state bucket");
    }
}

pub async fn upload_part(
    gw: &Gateway,
    req: S3Request<UploadPartInput>,
) -> FrontResult<S3Response<UploadPartOutput>> {
    let headers = req.headers;
    let trailers = req.trailing_headers;
    let mut input = req.input;
    let (bucket, key) = (input.bucket.clone(), input.key.clone());
    let name = ObjectName {
        bucket: &bucket,
        key: &key,
    };
    let id = open_upload(gw, &input.upload_id, name, input.part_number)?;
    let Some(body) = input.body.take() else {
        return Err(FrontError::IncompleteBody(None));
    };
    let len = plaintext_length(input.content_length, &headers)?;
    if len > MAX_PUT {
        return Err(FrontError::EntityTooLarge);
    }
    let check = client_checks!(input, &headers)?;
    let etag = seal_part(
        gw,
        &id,
        name,
        input.part_number,
        (body, len),
        check,
        trailers,
    )
    .await?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: etag,
        ..Default::default()
    }))
}

/// Seals `body` (`len` plaintext bytes) as part `part_number` of the upload
/// `id` and streams it to the provider; returns the part's ETag.
async fn seal_part(
    gw: &Gateway,
    id: &upload_id::UploadId,
    name: ObjectName<'_>,
    part_number: i32,
    (body, len): (StreamingBlob, u64),
    check: Checks,
    trailers: Option<s3s::TrailingHeaders>,
) -> FrontResult<Option<ETag>> {
    let ferr = |e| format_err(e, name.bucket, name.key);
    let tag = id.envelope.binding_tag(&id.dek, name);
    let number = u32::try_from(part_number).expect("checked by open_upload");
    let kind = part_kind(&id.envelope, len);
    let (sealer, header) = PartSealer::start(
        &id.envelope,
        &id.dek,
        tag,
        (number, kind),
        len,
        &mut OsRandom,
    )
    .map_err(ferr)?;
    let request = PartRequest {
        bucket: name.bucket.to_owned(),
        key: name.key.to_owned(),
        upload_id: id.upstream.clone(),
        part_number,
        content_length: size::part_ciphertext_len(len),
    };
    let upstream = gw.upstream.clone();
    let etag = stream_part(
        body,
        &header,
        Sealing::Sealed(Box::new(sealer)),
        check,
        trailers,
        (name.bucket, name.key, None, gw.upstream.read_timeout()),
        move |b| async move { upstream.upload_part(request, b).await.map_err(upload_error) },
    )
    .await?
    .0;
    Ok(etag.map(|e| ETag::Strong(client_part_etag(&e))))
}

/// The ETag a client sees for a part the provider stored with ETag
/// `provider` (UploadPart, UploadPartCopy, ListParts). The provider's part
/// ETag is the MD5 of the part's *ciphertext*; as for single-part objects
/// ([`super::client_etag`]) it gets a `-1` suffix, so that a client which
/// compares a 32-hex part ETag with the MD5 of the part it sent (s3cmd)
/// skips the comparison instead of giving up. No MD5 of plaintext is made.
fn client_part_etag(provider: &str) -> String {
    super::client_etag(provider)
}

/// Whether `client`, an ETag in a completion's part list, names the part the
/// provider holds with ETag `provider`: the form UploadPart returned, or the
/// provider's own (ids and ETags from before the suffix, or read from the
/// provider directly).
fn names_part(client: &str, provider: &str) -> bool {
    let (client, provider) = (client.trim_matches('"'), provider.trim_matches('"'));
    client == client_part_etag(provider) || client == provider
}

/// The provider's ETag for a client part ETag, for a provider that lists no
/// part ETags (s3s-fs): the client's without the suffix
/// [`client_part_etag`] added.
fn provider_part_etag(client: &str) -> &str {
    let v = client.trim_matches('"');
    match v.strip_suffix("-1") {
        Some(bare) if !bare.contains('-') => bare,
        _ => v,
    }
}

/// Whether a part of `len` plaintext bytes ends its object (FORMAT.md
/// §Completion): a part under 5 MiB can only be an upload's last, so it
/// carries the end-of-object mark itself; a larger one may be followed by
/// more parts, and completion adds a record after it when it turns out last.
/// Uploads begun before version 3 (their id carries a version-1 envelope)
/// keep writing version-1 parts.
fn part_kind(envelope: &Envelope, len: u64) -> PartKind {
    if envelope.version == FORMAT_V1 || len >= MIN_PART {
        PartKind::Data
    } else {
        PartKind::Last
    }
}

/// Upstream failures of calls on an upload: a 404 means the upload is gone.
fn upload_error(e: UpstreamError) -> FrontError {
    if e.is_missing() {
        return no_such_upload();
    }
    upstream_object(e)
}

/// One page of the provider's ListParts.
async fn list_parts_page(
    gw: &Gateway,
    (bucket, key, upload): (&str, &str, &str),
    marker: Option<String>,
    max_parts: Option<i32>,
) -> FrontResult<PartsPage> {
    gw.upstream
        .list_parts((bucket, key, upload), marker, max_parts)
        .await
        .map_err(upload_error)
}

/// Every part the provider holds for an upload: number → (ETag, stored
/// size).
async fn provider_parts(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    upload: &str,
) -> FrontResult<BTreeMap<i32, (String, u64)>> {
    let mut parts = BTreeMap::new();
    let mut marker: Option<String> = None;
    loop {
        let page = list_parts_page(gw, (bucket, key, upload), marker.clone(), None).await?;
        parts.extend(page.parts.into_iter().map(|p| (p.number, (p.etag, p.size))));
        match (page.truncated, page.next_marker) {
            (true, Some(m)) if marker.as_deref() != Some(m.as_str()) => marker = Some(m),
            _ => break,
        }
    }
    Ok(parts)
}

pub async fn complete_multipart_upload(
    gw: &Gateway,
    req: S3Request<CompleteMultipartUploadInput>,
) -> FrontResult<S3Response<CompleteMultipartUploadOutput>> {
    let input = req.input;
    let (bucket, key) = (input.bucket.clone(), input.key.clone());
    let name = ObjectName {
        bucket: &bucket,
        key: &key,
    };
    let id = authenticate(gw, &input.upload_id, name)?;
    let result = complete_checked(gw, &bucket, &key, &id, input).await;
    let result = match result {
        Err(e) if e.is_upload_or_part_gone() => {
            // A completion whose answer was lost (a dropped connection, a
            // retry after the provider had finished) finds the upload gone
            // or its parts consumed. If the object now at the key is this
            // upload's, the completion happened: say so, as S3 does for a
            // repeated completion, instead of an error that would make the
            // client think its data is not stored.
            match super::get::locate(gw, &bucket, &key).await {
                Ok(obj) if obj.envelope == id.envelope => {
                    tracing::info!(%bucket, %key, "multipart upload already completed; answering as completed");
                    Ok(S3Response::new(CompleteMultipartUploadOutput {
                        bucket: Some(bucket.clone()),
                        key: Some(key.clone()),
                        e_tag: super::etag(Some(&obj.upstream_etag)),
                        ..Default::default()
                    }))
                }
                _ => Err(e),
            }
        }
        other => other,
    };
    if result.is_ok() {
        forget_upload(gw, &bucket, &key, &id.upstream).await;
    }
    result
}

/// Checks the client's part list against the provider's parts and
/// completes the upload at the provider.
async fn complete_checked(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    id: &upload_id::UploadId,
    input: CompleteMultipartUploadInput,
) -> FrontResult<S3Response<CompleteMultipartUploadOutput>> {
    let (bucket, key) = (bucket.to_owned(), key.to_owned());
    let named: Vec<(i32, String)> = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let n = p.part_number.unwrap_or(0);
            let e = p.e_tag.as_ref().map(etag_value).unwrap_or("").to_owned();
            (n, e)
        })
        .collect();
    if named.is_empty() {
        return Err(FrontError::MalformedXml("The XML you provided was not well-formed or did not validate against our published schema".into()));
    }
    if named.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(FrontError::InvalidPartOrder);
    }
    if let Some(gap) = named
        .iter()
        .enumerate()
        .find(|(i, (n, _))| *n != *i as i32 + 1)
    {
        // S3 allows gaps; the format needs 1..N (FORMAT.md §Multipart objects).
        return Err(FrontError::InvalidPart(format!(
            "sealgate requires part numbers 1, 2, ..., N without gaps; part {} is missing",
            gap.0 + 1
        )));
    }
    let stored = provider_parts(gw, &bucket, &key, &id.upstream).await?;
    let last = named.len() - 1;
    let (mut total, mut last_len) = (0u64, 0u64);
    for (i, (n, etag)) in named.iter().enumerate() {
        let invalid = || {
            FrontError::InvalidPart("One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.".into())
        };
        let (stored_etag, stored_size) = stored.get(n).ok_or_else(invalid)?;
        // A provider that lists no part ETags (s3s-fs) checks them itself,
        // or not at all; S3 and most providers list them.
        if !stored_etag.is_empty() && !names_part(etag, stored_etag) {
            return Err(invalid());
        }
        // A bare header is a completion record left by a completion that
        // failed after uploading it, never a part of the client's.
        if *stored_size == HEADER_LEN as u64 {
            return Err(invalid());
        }
        let plain =
            size::part_plaintext_len(*stored_size).map_err(|e| format_err(e, &bucket, &key))?;
        if i < last && plain < MIN_PART {
            return Err(FrontError::EntityTooSmall);
        }
        total += plain;
        last_len = plain;
    }
    // The provider is given its own ETags: the listed one where it lists
    // them, else the client's without sealgate's suffix.
    let mut parts: Vec<(i32, String)> = named
        .iter()
        .map(|(n, e)| {
            let provider = match stored.get(n) {
                Some((s, _)) if !s.is_empty() => s.as_str(),
                _ => provider_part_etag(e),
            };
            (*n, quoted(provider))
        })
        .collect();
    super::put::refuse_if_none_match_etag(input.if_none_match.as_ref())?;
    if let Some(size) = input.mpu_object_size
        && u64::try_from(size).ok() != Some(total)
    {
        return Err(FrontError::InvalidRequest(format!(
            "The provided 'x-amz-mp-object-size' header value {size} does not match what was computed: {total}"
        )));
    }
    // If-Match: compare with the ETag clients see, then pin the provider's
    // version so a concurrent write still fails (as PutObject does). Both
    // conditions are settled before a completion record is sealed.
    let pinned = match &input.if_match {
        Some(cond) => Some(super::put::if_match_holds(gw, &bucket, &key, cond).await?),
        None => None,
    };
    let create_only = input.if_none_match.as_ref().is_some_and(|c| c.is_any());
    if id.envelope.version != FORMAT_V1 && part_kind(&id.envelope, last_len) == PartKind::Data {
        // A record outlives a completion the provider then refuses (and a
        // provider that keeps it can later serve this part list: FORMAT.md
        // §Limits), so refuse what is known to fail before sealing one.
        if create_only && object_exists(gw, &bucket, &key).await? {
            return Err(FrontError::PreconditionFailed);
        }
        // The last part was too large to know it was last when it was
        // sealed: commit the part count and total here (FORMAT.md §Completion).
        parts.push(upload_completion_record(gw, (&bucket, &key), id, named.len(), total).await?);
    }
    let done = gw
        .upstream
        .complete_multipart_upload(CompleteRequest {
            bucket: bucket.clone(),
            key: key.clone(),
            upload_id: id.upstream.clone(),
            parts,
            if_match: pinned,
            if_none_match: create_only.then(|| "*".to_owned()),
        })
        .await
        .map_err(upload_error)?;
    let (e_tag, location) = (done.e_tag, done.location);
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(bucket.clone()),
        key: Some(key.clone()),
        e_tag: super::etag(e_tag.as_deref()),
        location,
        ..Default::default()
    }))
}

/// Whether an object is stored at `key` (for If-None-Match: * ahead of
/// sealing a completion record).
async fn object_exists(gw: &Gateway, bucket: &str, key: &str) -> FrontResult<bool> {
    match gw.upstream.head_object(bucket, key).await {
        Ok(_) => Ok(true),
        Err(e) if e.status() == Some(404) => Ok(false),
        Err(e) => Err(upstream_object(e)),
    }
}

/// Seals the completion record of an upload whose `data_parts` parts hold
/// `total` plaintext bytes and uploads it as the next part: a bare 212-byte
/// header, allowed because it is the last part.
async fn upload_completion_record(
    gw: &Gateway,
    (bucket, key): (&str, &str),
    id: &upload_id::UploadId,
    data_parts: usize,
    total: u64,
) -> FrontResult<(i32, String)> {
    let number = u32::try_from(data_parts + 1)
        .ok()
        .filter(|n| *n <= MAX_PART_NUMBER as u32)
        .ok_or_else(|| {
            FrontError::InvalidArgument("sealgate stores at most 9,999 parts when the last part is 5 MiB or larger (it adds a completion record as the next part); upload fewer, larger parts".into())
        })?;
    let name = ObjectName { bucket, key };
    let mut salt = [0u8; 32];
    OsRandom
        .fill(&mut salt)
        .map_err(|e| format_err(e, bucket, key))?;
    let record = PartHeader::completion(
        id.envelope.clone(),
        &id.dek,
        id.envelope.binding_tag(&id.dek, name),
        number,
        total,
        salt,
    )
    .map_err(|e| format_err(e, bucket, key))?;
    let request = PartRequest {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        upload_id: id.upstream.clone(),
        part_number: number as i32,
        content_length: HEADER_LEN as u64,
    };
    let etag = gw
        .upstream
        .upload_part(
            request,
            UploadBody::sealed_bytes(record.to_bytes().to_vec()),
        )
        .await
        .map_err(upload_error)?;
    Ok((number as i32, quoted(&etag.unwrap_or_default())))
}

pub async fn abort_multipart_upload(
    gw: &Gateway,
    req: S3Request<AbortMultipartUploadInput>,
) -> FrontResult<S3Response<AbortMultipartUploadOutput>> {
    let i = req.input;
    let upload = authenticated_upstream_id(gw, &i.upload_id, &i.bucket, &i.key)?;
    gw.upstream
        .abort_multipart_upload(&i.bucket, &i.key, &upload)
        .await
        .map_err(upload_error)?;
    forget_upload(gw, &i.bucket, &i.key, &upload).await;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub async fn list_parts(
    gw: &Gateway,
    req: S3Request<ListPartsInput>,
) -> FrontResult<S3Response<ListPartsOutput>> {
    let i = req.input;
    let upload = authenticated_upstream_id(gw, &i.upload_id, &i.bucket, &i.key)?;
    let page = list_parts_page(
        gw,
        (&i.bucket, &i.key, &upload),
        i.part_number_marker.map(|m| m.to_string()),
        i.max_parts,
    )
    .await?;
    let mut listed = page.parts;
    // S3 lists parts in ascending order; not every provider does (s3s-fs).
    listed.sort_by_key(|p| p.number);
    let mut parts = Vec::new();
    for p in listed {
        if p.size == HEADER_LEN as u64 {
            // A completion record left by a failed completion: not the
            // client's part (a data part is at least 228 bytes).
            continue;
        }
        let plain =
            size::part_plaintext_len(p.size).map_err(|e| format_err(e, &i.bucket, &i.key))?;
        parts.push(Part {
            part_number: Some(p.number),
            e_tag: Some(ETag::Strong(client_part_etag(&p.etag))).filter(|_| !p.etag.is_empty()),
            size: Some(plain as i64),
            last_modified: p.last_modified.map(Timestamp::from),
            ..Default::default()
        });
    }
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(i.bucket.clone()),
        key: Some(i.key.clone()),
        upload_id: Some(i.upload_id.clone()),
        parts: Some(parts),
        is_truncated: Some(page.truncated),
        max_parts: page.max_parts,
        part_number_marker: i.part_number_marker,
        next_part_number_marker: page.next_marker.and_then(|m| m.parse().ok()),
        ..Default::default()
    }))
}

pub async fn list_multipart_uploads(
    gw: &Gateway,
    req: S3Request<ListMultipartUploadsInput>,
) -> FrontResult<S3Response<ListMultipartUploadsOutput>> {
    let i = req.input;
    let marker = match &i.upload_id_marker {
        Some(m) => Some(upstream_id(m)?),
        None => None,
    };
    let page = gw
        .upstream
        .list_multipart_uploads(UploadsRequest {
            bucket: i.bucket.clone(),
            prefix: i.prefix.clone(),
            delimiter: i.delimiter.clone(),
            key_marker: i.key_marker.clone(),
            upload_id_marker: marker,
            max_uploads: i.max_uploads,
        })
        .await
        .map_err(super::error::upstream_bucket)?;
    // The provider's listing has no envelopes: the id each client was
    // given comes from its upload record (checked for its bucket, key and
    // provider id before it is listed). An upload without a valid record
    // is listed in the `sgl.` form, authenticated under the active KEK:
    // enough to list its parts or abort it, not to upload more parts.
    let ids = listed_ids(gw, &i.bucket, &page.uploads).await;
    let keys = gw.keys.get();
    let listed = |key: Option<&str>, u: &str| {
        ids.get(&(key.unwrap_or_default().to_owned(), u.to_owned()))
            .cloned()
            .unwrap_or_else(|| {
                let name = ObjectName {
                    bucket: &i.bucket,
                    key: key.unwrap_or_default(),
                };
                upload_id::encode_listed(keys.active(), name, u)
            })
    };
    let enc = super::list::Enc::of(&i.encoding_type);
    let uploads = page
        .uploads
        .iter()
        .map(|u| MultipartUpload {
            key: enc.s(u.key.as_deref()),
            upload_id: u
                .upload_id
                .as_deref()
                .map(|id| listed(u.key.as_deref(), id)),
            initiated: u.initiated.map(Timestamp::from),
            ..Default::default()
        })
        .collect();
    let common_prefixes = page
        .common_prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: enc.s(p.as_deref()),
        })
        .collect::<Vec<_>>();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(i.bucket.clone()),
        prefix: enc.s(i.prefix.as_deref()),
        delimiter: enc.s(i.delimiter.as_deref()),
        key_marker: enc.s(i.key_marker.as_deref()),
        encoding_type: enc.ty(),
        upload_id_marker: i.upload_id_marker.clone(),
        max_uploads: page.max_uploads,
        is_truncated: page.is_truncated,
        next_key_marker: enc.s(page.next_key_marker.as_deref()),
        next_upload_id_marker: page
            .next_upload_id_marker
            .as_deref()
            .map(|id| listed(page.next_key_marker.as_deref(), id)),
        uploads: Some(uploads),
        common_prefixes: (!common_prefixes.is_empty()).then_some(common_prefixes),
        ..Default::default()
    }))
}

/// UploadPartCopy: a range of an existing object becomes a part of an
/// upload. The part must be sealed under the *upload's* data key with its own
/// header, so the range is read through the gateway (authenticated and
/// decrypted like a ranged GET) and sealed again as it streams; memory stays
/// at a few chunks. (CopyObject, by contrast, copies ciphertext server-side.)
pub async fn upload_part_copy(
    gw: &Gateway,
    req: S3Request<UploadPartCopyInput>,
) -> FrontResult<S3Response<UploadPartCopyOutput>> {
    let i = req.input.clone();
    let (bucket, key) = (i.bucket.clone(), i.key.clone());
    let name = ObjectName {
        bucket: &bucket,
        key: &key,
    };
    let id = open_upload(gw, &i.upload_id, name, i.part_number)?;
    let (src_bucket, src_key) = super::copy::source(&i.copy_source)?;
    super::passthrough::refuse_unsupported(gw, src_bucket, "copies")?;
    let range = match &i.copy_source_range {
        Some(r) => Some(parse_copy_range(r)?),
        None => None,
    };
    let get = GetObjectInput {
        bucket: src_bucket.to_owned(),
        key: src_key.to_owned(),
        range,
        if_match: i.copy_source_if_match.clone(),
        if_none_match: i.copy_source_if_none_match.clone(),
        if_modified_since: i.copy_source_if_modified_since.clone(),
        if_unmodified_since: i.copy_source_if_unmodified_since.clone(),
        ..Default::default()
    };
    let last_byte = match range {
        Some(Range::Int { last, .. }) => last,
        _ => None,
    };
    let source = super::get::get_object(gw, req.map_input(|_| get))
        .await
        .map_err(|e| {
            // Every failed copy-source condition is 412 for a copy.
            if e.is_not_modified() {
                FrontError::PreconditionFailed
            } else if last_byte.is_some() && e.is_range_not_satisfiable() {
                copy_range_outside(None)
            } else {
                e
            }
        })?
        .output;
    // A range must lie within the source (S3 refuses it; a GET would
    // shorten it). Nothing has been sealed yet: dropping the body ends the
    // read.
    if let Some(last) = last_byte {
        let size = source
            .content_range
            .as_deref()
            .and_then(|r| r.rsplit_once('/'))
            .and_then(|(_, total)| total.parse::<u64>().ok());
        if size.is_none_or(|size| last >= size) {
            return Err(copy_range_outside(size));
        }
    }
    let len = u64::try_from(source.content_length.unwrap_or(0)).unwrap_or(0);
    if len > MAX_PUT {
        return Err(FrontError::EntityTooLarge);
    }
    let body = source
        .body
        .ok_or_else(|| FrontError::Internal("source body missing".into()))?;
    let check = Checks::new(&None, &None, Checksum::default(), &http::HeaderMap::new())?;
    let etag = seal_part(gw, &id, name, i.part_number, (body, len), check, None).await?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: etag,
            last_modified: Some(Timestamp::from(time::OffsetDateTime::now_utc())),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// S3's answer to an x-amz-copy-source-range outside its source.
fn copy_range_outside(size: Option<u64>) -> FrontError {
    match size {
        Some(size) => FrontError::InvalidArgument(format!(
            "Range specified is not valid for source object of size: {size}"
        )),
        None => {
            FrontError::InvalidArgument("Range specified is not valid for source object".into())
        }
    }
}

/// x-amz-copy-source-range: `bytes=first-last`, both required (S3's rule).
pub(crate) fn parse_copy_range(r: &str) -> FrontResult<Range> {
    let bad = || {
        FrontError::InvalidArgument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last".into(),
        )
    };
    let (a, b) = r
        .trim()
        .strip_prefix("bytes=")
        .and_then(|v| v.split_once('-'))
        .ok_or_else(bad)?;
    let (first, last) = (
        a.trim().parse::<u64>().map_err(|_| bad())?,
        b.trim().parse::<u64>().map_err(|_| bad())?,
    );
    if last < first {
        return Err(bad());
    }
    Ok(Range::Int {
        first,
        last: Some(last),
    })
}

/// How many upload records a listing reads at once.
const RECORD_READS: usize = 16;

/// The client ids of a listing page's uploads, by (key, provider id), from
/// their upload records; an upload whose record is missing, unreadable or
/// not valid for it is left out (and listed in the `sgl.` form).
async fn listed_ids(
    gw: &Gateway,
    bucket: &str,
    uploads: &[ProviderUpload],
) -> HashMap<(String, String), String> {
    use futures::StreamExt;
    if gw.upstream.state_bucket().is_none() {
        return HashMap::new();
    }
    let wanted: Vec<(String, String)> = uploads
        .iter()
        .filter_map(|u| Some((u.key.clone()?, u.upload_id.clone()?)))
        .collect();
    futures::stream::iter(wanted)
        .map(|(key, upstream)| listed_id(gw, bucket, key, upstream))
        .buffer_unordered(RECORD_READS)
        .filter_map(|x| async move { x })
        .collect()
        .await
}

/// One upload's client id from its record, if the record is valid for it.
async fn listed_id(
    gw: &Gateway,
    bucket: &str,
    key: String,
    upstream: String,
) -> Option<((String, String), String)> {
    let record = match gw.upstream.upload_record(bucket, &key, &upstream).await {
        Ok(Some(r)) => r,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(%bucket, %key, cause = %e, "upload record unreadable; listing the sgl. form");
            return None;
        }
    };
    let keys = gw.keys.get();
    let name = ObjectName { bucket, key: &key };
    match upload_id::decode(&record, name, keys.as_ref()) {
        Ok(id) if id.upstream == upstream => Some(((key, upstream), record)),
        // Begun under a key since revoked or removed: no tampering, and the
        // listed form still lets the client find and abort the upload.
        Err(
            crate::format::FormatError::UnknownKey(_)
            | crate::format::FormatError::RevokedKey { .. },
        ) => {
            tracing::info!(%bucket, %key, "upload record under a key no longer usable; listing the sgl. form");
            None
        }
        _ => {
            tracing::warn!(target: SECURITY, event = "bad_upload_record", %bucket, %key, "upload record altered or not this upload's; listing the sgl. form");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_etags_map_both_ways_and_nothing_else_names_a_part() {
        let md5 = "0123456789abcdef0123456789abcdef";
        let shown = client_part_etag(&format!("\"{md5}\""));
        assert_eq!(shown, format!("{md5}-1"));
        assert!(names_part(&format!("\"{shown}\""), md5));
        assert!(names_part(md5, &format!("\"{md5}\"")));
        assert_eq!(provider_part_etag(&format!("\"{shown}\"")), md5);
        for other in ["", "-1", "0123456789abcdef0123456789abcdee-1", "x"] {
            assert!(!names_part(other, md5), "{other}");
        }
        assert!(!names_part(&format!("{md5}-2"), md5));
        // A provider ETag that has a '-' already is shown unchanged.
        assert_eq!(client_part_etag("abc-7"), "abc-7");
        assert_eq!(provider_part_etag("abc-7"), "abc-7");
    }
}
