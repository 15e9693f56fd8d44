//! PutObject: encrypt while streaming to the provider.
//!
//! The client body (already de-chunked by s3s) is checked against the
//! client's Content-MD5 and x-amz-checksum-* values *as plaintext*, sealed
//! segment by segment, and streamed upstream with a known Content-Length.
//! The chunk holding the final segment is held back until every check passed:
//! on a mismatch, a client that disconnects or a short body, the upstream
//! request is aborted before its last byte, so the provider creates or
//! replaces nothing. Memory: a few chunks, whatever the object size.

use super::error::{FrontError, FrontResult, format as format_err, upstream_object};
use super::{Gateway, checksums, client_etag};
use crate::format::header::PartKind;
use crate::format::metadata::{self, ObjectMetadata, StoredMetadata};
use crate::format::stream::PartSealer;
use crate::format::{Envelope, ObjectName, OsRandom, size};
use crate::upstream::{PutRequest, UploadBody};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use futures::StreamExt;
use http_body::Frame;
use md5::Digest;
use s3s::dto::*;
use s3s::{S3Request, S3Response};
use std::collections::HashMap;
use tokio::sync::mpsc;
use tracing::Instrument;

/// Largest single PUT (and largest part) S3 accepts.
pub(crate) const MAX_PUT: u64 = 5 << 30;
/// Ciphertext chunks in flight to the provider (backpressure bound).
const QUEUE: usize = 4;

type Tx = mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>;

/// Content headers sealed with the object and returned on GET/HEAD.
pub(crate) const SEALED_HEADERS: &[&str] = &[
    "content-type",
    "content-disposition",
    "cache-control",
    "content-encoding",
    "content-language",
    "expires",
    "website-redirect-location",
];

pub async fn put_object(
    gw: &Gateway,
    req: S3Request<PutObjectInput>,
) -> FrontResult<S3Response<PutObjectOutput>> {
    if let Some(rule) = gw.policy().passthrough(&req.input.bucket) {
        return super::passthrough::put_object(gw, req, rule.clone()).await;
    }
    let headers = req.headers;
    let trailers = req.trailing_headers;
    let mut input = req.input;
    let Some(body) = input.body.take() else {
        return Err(FrontError::IncompleteBody(None));
    };
    let len = plaintext_length(input.content_length, &headers)?;
    if len > MAX_PUT {
        return Err(FrontError::EntityTooLarge);
    }
    let (bucket, key) = (input.bucket.clone(), input.key.clone());
    let name = ObjectName {
        bucket: &bucket,
        key: &key,
    };
    let ferr = |e| format_err(e, &bucket, &key);

    // Envelope, header and sealed metadata are fixed before the first byte.
    let keys = gw.keys.get();
    let kek = super::active_kek(gw, &keys, &bucket)?;
    let (env, dek) = Envelope::create(kek, gw.algorithm, &mut OsRandom).map_err(ferr)?;
    let tag = env.binding_tag(&dek, name);
    let (sealer, header) =
        PartSealer::start(&env, &dek, tag, (1, PartKind::Last), len, &mut OsRandom)
            .map_err(ferr)?;
    let mut meta = object_metadata(input.metadata.as_ref(), &headers);
    let check = client_checks!(input, &headers)?;
    // Checksums sent as headers are sealed now: they are verified before
    // the last byte goes upstream, and a mismatch aborts the upload, so
    // the object exists only if they hold. Trailer values come after the
    // body (see below); the budget is checked with room for them.
    meta.checksums = checksums::to_map(&header_checksums(&input));
    let pending: Vec<_> = checksums::announced_in_trailer(&headers)
        .into_iter()
        .filter(|a| !meta.checksums.contains_key(*a))
        .collect();
    let stored_meta = |sealed: String| StoredMetadata::single_part(&header, &tag, sealed);
    // The client's metadata comes first: when the checksums (with room
    // for the trailer's) would not fit in the budget, none is kept.
    let mut probe = meta.clone();
    probe.checksums = checksums::with_placeholders(&meta.checksums, &pending);
    let probe = metadata::seal(&env, &dek, name, &probe, &mut OsRandom).map_err(ferr)?;
    let keep_checksums = check_metadata_size(&stored_meta(probe)).is_ok();
    if !keep_checksums {
        meta.checksums.clear();
    }
    let sealed = metadata::seal(&env, &dek, name, &meta, &mut OsRandom).map_err(ferr)?;
    let upstream_meta = stored_meta(sealed);
    check_metadata_size(&upstream_meta)?;

    let mut request = PutRequest {
        bucket: bucket.clone(),
        key: key.clone(),
        content_length: size::part_ciphertext_len(len),
        content_type: Some("application/octet-stream".into()),
        metadata: Some(upstream_meta),
        ..Default::default()
    };
    refuse_if_none_match_etag(input.if_none_match.as_ref())?;
    if input.if_none_match.as_ref().is_some_and(|c| c.is_any()) {
        request.if_none_match = Some("*".into());
    }
    if let Some(cond) = &input.if_match {
        // Conditional write: compare with the ETag clients see, then pin
        // the provider's version so a concurrent write still fails.
        request.if_match = Some(if_match_holds(gw, &bucket, &key, cond).await?);
    }
    let upstream = gw.upstream.clone();
    let (out, verified) = stream_part(
        body,
        &header,
        Sealing::Sealed(Box::new(sealer)),
        check,
        trailers,
        (&bucket, &key, None, gw.upstream.read_timeout()),
        move |b| async move {
            upstream
                .put_object(request, b)
                .await
                .map_err(upstream_object)
        },
    )
    .await?;
    let mut etag = out.e_tag;
    let verified = checksums::to_map(&verified);
    if keep_checksums
        && verified.keys().any(|a| !meta.checksums.contains_key(a))
        && let Some(e) = &etag
    {
        // Checksums that came in the trailer: re-seal the metadata with
        // them, in place, pinned to the object just written.
        meta.checksums = verified.clone();
        let sealed = metadata::seal(&env, &dek, name, &meta, &mut OsRandom).map_err(ferr)?;
        match super::copy::replace_metadata(gw, (&bucket, &key), e, stored_meta(sealed)).await {
            Ok(new_etag) => etag = new_etag.or(etag),
            Err(cause) => {
                tracing::warn!(%bucket, %key, %cause, "the object was stored, but its trailing checksums could not be added to its sealed metadata");
            }
        }
    }
    let mut output = PutObjectOutput {
        e_tag: etag.as_deref().map(|e| ETag::Strong(client_etag(e))),
        ..Default::default()
    };
    checksums::apply_checksums!(output, &verified);
    Ok(S3Response::new(output))
}

/// The checksum values a PutObject carries in its headers.
fn header_checksums(input: &PutObjectInput) -> Checksum {
    Checksum {
        checksum_crc32: input.checksum_crc32.clone(),
        checksum_crc32c: input.checksum_crc32c.clone(),
        checksum_sha1: input.checksum_sha1.clone(),
        checksum_sha256: input.checksum_sha256.clone(),
        checksum_crc64nvme: input.checksum_crc64nvme.clone(),
        ..Default::default()
    }
}

/// How a client body goes to the provider: sealed as a part stream, or —
/// in a passthrough bucket, under the grant policy gave after checking the
/// exception — as it came.
pub(crate) enum Sealing {
    Sealed(Box<PartSealer>),
    Plain(crate::policy::PassthroughGrant),
}

/// Seals `body` as one part stream (after `header`) and sends it upstream
/// through the request `send` builds around the ciphertext body. Without a
/// sealer (a passthrough bucket, [`Sealing::Plain`]) the body goes upstream
/// as it came, and `header` is empty.
///
/// The client's checksums are verified on the plaintext, and the chunk
/// holding the final segment is held back until they pass: on a mismatch, a
/// short or broken body or a client that disconnects, the upstream request
/// is aborted before its last byte, so the provider creates or replaces
/// nothing. Memory: a few chunks, whatever the size.
///
/// Once the last chunk is queued, the provider must take the rest and
/// answer within `answer_within` (the read timeout): a provider that
/// swallows an upload and never answers would otherwise hold the request
/// for as long as the client waits.
pub(crate) async fn stream_part<T, F>(
    mut body: StreamingBlob,
    header: &[u8],
    sealing: Sealing,
    mut check: Checks,
    trailers: Option<s3s::TrailingHeaders>,
    (bucket, key, plain_len, answer_within): (&str, &str, Option<u64>, std::time::Duration),
    send: impl FnOnce(UploadBody) -> F,
) -> FrontResult<(T, Checksum)>
where
    F: std::future::Future<Output = FrontResult<T>> + Send + 'static,
    T: Send + 'static,
{
    let ferr = |e| format_err(e, bucket, key);
    let (tx, rx) = mpsc::channel(QUEUE);
    let frames = tokio_stream::wrappers::ReceiverStream::new(rx);
    let (upstream_body, mut sealer) = match sealing {
        Sealing::Sealed(sealer) => (UploadBody::sealed(frames), Some(*sealer)),
        Sealing::Plain(grant) => (UploadBody::plaintext(frames, grant), None),
    };
    // Spawned work stays in the request's span (its request id).
    let upload = tokio::spawn(send(upstream_body).instrument(tracing::Span::current()));
    let pumped = async {
        if !header.is_empty() {
            send_chunk(&tx, Bytes::copy_from_slice(header)).await?;
        }
        let mut seen = 0u64;
        let mut held: Option<Bytes> = None;
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                tracing::info!(%bucket, %key, cause = %e, "client body failed");
                Pumped::Failed(client_body_error(&e.to_string()))
            })?;
            check.update(&chunk);
            seen += chunk.len() as u64;
            match sealer.as_mut() {
                Some(s) => s
                    .push(&chunk, &mut out)
                    .map_err(|e| Pumped::Failed(ferr(e)))?,
                None => out.extend_from_slice(&chunk),
            }
            if !out.is_empty()
                && let Some(prev) = held.replace(Bytes::from(std::mem::take(&mut out)))
            {
                send_chunk(&tx, prev).await?;
            }
        }
        match sealer {
            Some(s) => s.finish(&mut out).map_err(|e| Pumped::Failed(ferr(e)))?,
            None if Some(seen) != plain_len => {
                return Err(Pumped::Failed(FrontError::IncompleteBody(Some(
                    "body length differs from Content-Length",
                ))));
            }
            None => {}
        }
        let verified = check.finish(trailers).map_err(Pumped::Failed)?;
        // Everything verified: release the final segment.
        let last = match held {
            Some(h) if out.is_empty() => h,
            Some(h) => Bytes::from([h.as_ref(), &out].concat()),
            None => Bytes::from(out),
        };
        send_chunk(&tx, last).await?;
        Ok::<Checksum, Pumped>(verified)
    }
    .await;

    let verified = match pumped {
        Ok(v) => v,
        Err(Pumped::Failed(e)) => {
            // Abort the upstream request before its last byte.
            let _ = tx
                .send(Err(std::io::Error::other("upload aborted by sealgate")))
                .await;
            drop(tx);
            let _ = upload.await;
            return Err(e);
        }
        Err(Pumped::Closed) => {
            // The upstream request ended before taking the whole body: the
            // provider answered early (a refusal), or the request was never
            // sent. Its own outcome is the answer.
            drop(tx);
            return match upload.await {
                Ok(Err(e)) => Err(e),
                Ok(Ok(_)) => Err(FrontError::Internal(
                    "the storage provider answered before taking the whole upload".into(),
                )),
                Err(e) => Err(FrontError::Internal(format!("upload task failed: {e}"))),
            };
        }
    };
    drop(tx);
    let mut upload = upload;
    let answer = tokio::select! {
        r = &mut upload => r.map_err(|e| FrontError::Internal(format!("upload task failed: {e}")))?,
        () = tokio::time::sleep(answer_within) => {
            // Dropping the request closes its connection: an answer that
            // comes later is not taken for this upload's.
            upload.abort();
            tracing::warn!(%bucket, %key, secs = answer_within.as_secs(), "the provider took the upload but did not answer in time");
            Err(FrontError::Unavailable("the storage provider did not answer the upload in time".into()))
        }
    };
    answer.map(|a| (a, verified))
}

/// The S3 error for a client body that failed while streaming: a wrong
/// trailing checksum or signature is the client's data, not a short body.
fn client_body_error(cause: &str) -> FrontError {
    if cause.contains("Mismatch") || cause.contains("mismatch") {
        FrontError::BadDigest("the request body does not match its checksum or signature".into())
    } else {
        FrontError::IncompleteBody(Some("the request body ended early or was malformed"))
    }
}

/// S3's limit on user-defined metadata (keys plus values, in bytes).
const MAX_USER_METADATA: usize = 2048;

/// The provider stores sealgate's header, binding tag and the sealed client
/// metadata as user metadata, under S3's 2 KB limit; a client whose metadata
/// would not fit once sealed gets MetadataTooLarge from sealgate rather than
/// an opaque upstream error. (This leaves clients about 1.2 KB; docs/FORMAT.md.)
pub(crate) fn check_metadata_size(upstream_meta: &HashMap<String, String>) -> FrontResult<()> {
    let size: usize = upstream_meta.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_USER_METADATA {
        return Err(FrontError::MetadataTooLarge(format!(
            "metadata and content headers take {size} bytes at the provider once sealed; the limit is {MAX_USER_METADATA}"
        )));
    }
    Ok(())
}

/// The plaintext length: Content-Length, or for an aws-chunked body sent
/// without one (aws CLI and boto3 over HTTPS) x-amz-decoded-content-length.
/// The sealed size is fixed before the first byte, so one of them is needed.
pub(crate) fn plaintext_length(
    content_length: Option<i64>,
    headers: &http::HeaderMap,
) -> FrontResult<u64> {
    let decoded = || {
        headers
            .get("x-amz-decoded-content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    let l = content_length
        .or_else(decoded)
        .ok_or_else(|| FrontError::MissingContentLength)?;
    u64::try_from(l).map_err(|_| FrontError::InvalidArgument("negative Content-Length".into()))
}

/// Why feeding an upload stopped.
enum Pumped {
    /// The upstream request no longer takes the body (it ended).
    Closed,
    /// The client's body or its checks failed: abort the upstream request.
    Failed(FrontError),
}

async fn send_chunk(tx: &Tx, b: Bytes) -> Result<(), Pumped> {
    tx.send(Ok(Frame::data(b)))
        .await
        .map_err(|_| Pumped::Closed)
}

/// What goes into the sealed metadata blob: x-amz-meta-* and content headers.
pub(crate) fn object_metadata(
    user: Option<&Metadata>,
    headers: &http::HeaderMap,
) -> ObjectMetadata {
    let mut m = ObjectMetadata::default();
    if let Some(user) = user {
        m.user = user
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
    }
    for h in SEALED_HEADERS {
        if let Some(v) = headers.get(*h).and_then(|v| v.to_str().ok()) {
            let v = if *h == "content-encoding" {
                strip_aws_chunked(v)
            } else {
                v.to_owned()
            };
            if !v.is_empty() {
                m.headers.insert((*h).to_owned(), v);
            }
        }
    }
    m
}

pub(crate) fn strip_aws_chunked(v: &str) -> String {
    v.split(',')
        .map(str::trim)
        .filter(|t| !t.eq_ignore_ascii_case("aws-chunked") && !t.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

/// The [`Checks`] a PutObject or UploadPart input asks for (both carry
/// the same Content-MD5 and checksum fields).
macro_rules! client_checks {
    ($input:expr, $headers:expr) => {
        Checks::new(
            &$input.content_md5,
            &$input.checksum_algorithm,
            Checksum {
                checksum_crc32: $input.checksum_crc32.clone(),
                checksum_crc32c: $input.checksum_crc32c.clone(),
                checksum_sha1: $input.checksum_sha1.clone(),
                checksum_sha256: $input.checksum_sha256.clone(),
                checksum_crc64nvme: $input.checksum_crc64nvme.clone(),
                ..Default::default()
            },
            $headers,
        )
    };
}
pub(crate) use client_checks;

/// Plaintext integrity checks the client asked for.
pub(crate) struct Checks {
    md5: Option<(md5::Md5, Vec<u8>)>,
    sums: s3s::checksum::ChecksumHasher,
    expected: s3s::dto::Checksum,
}

impl Checks {
    /// From the request's Content-MD5, checksum algorithm, checksum values
    /// (header) and the x-amz-trailer announcement.
    pub(crate) fn new(
        content_md5: &Option<String>,
        algorithm: &Option<ChecksumAlgorithm>,
        expected: Checksum,
        headers: &http::HeaderMap,
    ) -> FrontResult<Checks> {
        let md5 = match content_md5 {
            Some(b64) => {
                let want = B64
                    .decode(b64.trim())
                    .ok()
                    .filter(|d| d.len() == 16)
                    .ok_or_else(|| FrontError::InvalidDigest)?;
                Some((md5::Md5::new(), want))
            }
            None => None,
        };
        let mut sums = s3s::checksum::ChecksumHasher::default();
        let alg = algorithm.as_ref().map(|a| a.as_str().to_ascii_uppercase());
        // A checksum announced for the trailer (x-amz-trailer) is verified too.
        let trailer = headers
            .get("x-amz-trailer")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let wants = |given: &Option<String>, name: &str| {
            given.is_some()
                || alg.as_deref() == Some(name)
                || trailer
                    .split(',')
                    .any(|t| t.trim() == format!("x-amz-checksum-{}", name.to_ascii_lowercase()))
        };
        if wants(&expected.checksum_crc32, "CRC32") {
            sums.crc32 = Some(Default::default());
        }
        if wants(&expected.checksum_crc32c, "CRC32C") {
            sums.crc32c = Some(Default::default());
        }
        if wants(&expected.checksum_sha1, "SHA1") {
            sums.sha1 = Some(Default::default());
        }
        if wants(&expected.checksum_sha256, "SHA256") {
            sums.sha256 = Some(Default::default());
        }
        if wants(&expected.checksum_crc64nvme, "CRC64NVME") {
            sums.crc64nvme = Some(Default::default());
        }
        Ok(Checks {
            md5,
            sums,
            expected,
        })
    }

    fn update(&mut self, b: &[u8]) {
        if let Some((h, _)) = &mut self.md5 {
            h.update(b);
        }
        self.sums.update(b);
    }

    /// Compares with the header values, or with the trailer values for
    /// unsigned/streaming uploads that send checksums after the body;
    /// returns the values that were compared and matched (the checksums
    /// sealgate verified on the plaintext).
    fn finish(self, trailers: Option<s3s::TrailingHeaders>) -> FrontResult<Checksum> {
        if let Some((h, want)) = self.md5
            && h.finalize().as_slice() != want.as_slice()
        {
            return Err(FrontError::BadDigest(
                "Content-MD5 does not match the body".into(),
            ));
        }
        let mut expected = self.expected;
        if let Some(t) = trailers.and_then(|t| t.take()) {
            let get = |n: &str| t.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
            expected.checksum_crc32 = expected.checksum_crc32.or(get("x-amz-checksum-crc32"));
            expected.checksum_crc32c = expected.checksum_crc32c.or(get("x-amz-checksum-crc32c"));
            expected.checksum_sha1 = expected.checksum_sha1.or(get("x-amz-checksum-sha1"));
            expected.checksum_sha256 = expected.checksum_sha256.or(get("x-amz-checksum-sha256"));
            expected.checksum_crc64nvme = expected
                .checksum_crc64nvme
                .or(get("x-amz-checksum-crc64nvme"));
        }
        let got = self.sums.finalize();
        let pairs = [
            ("CRC32", &got.checksum_crc32, &expected.checksum_crc32),
            ("CRC32C", &got.checksum_crc32c, &expected.checksum_crc32c),
            ("SHA1", &got.checksum_sha1, &expected.checksum_sha1),
            ("SHA256", &got.checksum_sha256, &expected.checksum_sha256),
            (
                "CRC64NVME",
                &got.checksum_crc64nvme,
                &expected.checksum_crc64nvme,
            ),
        ];
        let mut verified = Checksum::default();
        for (name, got, want) in pairs {
            if let (Some(g), Some(w)) = (got, want) {
                if g != w {
                    return Err(FrontError::BadDigest(format!(
                        "x-amz-checksum-{} does not match the body",
                        name.to_ascii_lowercase()
                    )));
                }
                *checksums::field(&mut verified, name) = Some(w.clone());
            }
        }
        Ok(verified)
    }
}

/// S3 takes only `If-None-Match: *` on a write (create if absent); any
/// other value is NotImplemented there, and must not be dropped here.
pub(super) fn refuse_if_none_match_etag(c: Option<&ETagCondition>) -> FrontResult<()> {
    match c {
        Some(c) if !c.is_any() => Err(FrontError::NotImplemented(
            "If-None-Match on a write takes only *".into(),
        )),
        _ => Ok(()),
    }
}

/// Checks an If-Match against the object clients see at `key`; returns
/// the provider's ETag to pin the write to (PutObject and
/// CompleteMultipartUpload).
pub(super) async fn if_match_holds(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    cond: &ETagCondition,
) -> FrontResult<String> {
    let current = gw
        .upstream
        .head_object(bucket, key)
        .await
        .map_err(upstream_object)?;
    let upstream_etag = current.e_tag.unwrap_or_default();
    let holds = match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value().trim_matches('"') == client_etag(&upstream_etag),
    };
    if holds {
        Ok(upstream_etag)
    } else {
        Err(FrontError::PreconditionFailed)
    }
}
