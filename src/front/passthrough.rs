//! Passthrough buckets: data stored unencrypted, only under a registered,
//! unexpired, unrevoked exception (docs/EXCEPTIONS.md).
//!
//! Every write re-reads the registry, so a revocation or expiry stops
//! passthrough at the next write; a refused write is AccessDenied naming the
//! exception and why, and is recorded. Every accepted write leaves a usage
//! record, written durably (fsync) to the audit log *before* the upload
//! starts: a write whose record cannot be written is refused with 503
//! ServiceUnavailable and nothing is stored, and a client that disconnects
//! mid-request cannot leave an unrecorded object. Both go to the tracing log and the audit log
//! (`sealgate::security`). Objects already in sealgate's format are still
//! decrypted on read; multipart uploads and copies are not supported in
//! passthrough buckets (refused, never silently done another way).
//! PutObject forwards SSE-S3 and SSE-KMS headers to the provider and keeps
//! the object only if the provider confirms them (front/unsupported.rs).

use super::Gateway;
use super::error::{FrontError, FrontResult, upstream_object};
use super::put::{Checks, MAX_PUT, Sealing, client_checks, plaintext_length, stream_part};
use crate::format::metadata::StoredMetadata;
use crate::policy::registry::Exception;
use crate::policy::{PassthroughGrant, Rule};
use crate::telemetry::security::TARGET as SECURITY;
use crate::upstream::{GetRequest, PutRequest};
use s3s::dto::*;
use s3s::{S3Request, S3Response};

/// Refuses an operation sealgate does not do in passthrough buckets.
pub(crate) fn refuse_unsupported(gw: &Gateway, bucket: &str, what: &str) -> FrontResult<()> {
    match gw.policy().passthrough(bucket) {
        Some(rule) => Err(FrontError::NotImplemented(format!(
            "{what} are not supported in bucket {bucket}, which is passthrough under exception {}",
            rule.exception
        ))),
        None => Ok(()),
    }
}

/// Who writes what, as every record of an unencrypted write names it.
struct PlainWrite {
    bucket: String,
    key: String,
    access_key: String,
    /// Ties the record to the response the client got (x-amz-request-id).
    request_id: String,
}

/// PutObject to a passthrough bucket: granted by the exception `rule`
/// names (or refused, recorded), recorded durably as `exception_used`
/// before the upload, forwarded as the client sent it, and confirmed
/// (the server-side encryption the client asked for must be applied).
pub(crate) async fn put_object(
    gw: &Gateway,
    req: S3Request<PutObjectInput>,
    rule: Rule,
) -> FrontResult<S3Response<PutObjectOutput>> {
    let mut input = req.input;
    let write = PlainWrite {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        access_key: req
            .credentials
            .as_ref()
            .map(|c| c.access_key.clone())
            .unwrap_or_default(),
        request_id: req
            .extensions
            .get::<crate::telemetry::RequestId>()
            .cloned()
            .unwrap_or_else(crate::telemetry::RequestId::new)
            .0,
    };
    let (exception, grant) = grant_write(gw, &rule, &write)?;
    let Some(body) = input.body.take() else {
        return Err(FrontError::IncompleteBody(None));
    };
    let headers = req.headers;
    let len = plaintext_length(input.content_length, &headers)?;
    if len > MAX_PUT {
        return Err(FrontError::EntityTooLarge);
    }
    let check = client_checks!(input, &headers)?;
    super::put::refuse_if_none_match_etag(input.if_none_match.as_ref())?;
    record_use(gw, &exception, &write, len).await?;
    let request = plain_put_request(&input, len);
    let sse = request.sse.clone();
    let upstream = gw.upstream.clone();
    let out = stream_part(
        body,
        &[],
        Sealing::Plain(grant),
        check,
        req.trailing_headers,
        (
            &write.bucket,
            &write.key,
            Some(len),
            gw.upstream.read_timeout(),
        ),
        move |b| async move {
            upstream
                .put_object(request, b)
                .await
                .map_err(upstream_object)
        },
    )
    .await
    .map(|(out, _)| out)
    .inspect_err(|e| {
        tracing::warn!(
            target: SECURITY,
            event = "exception_use_failed",
            exception = %exception.id,
            bucket = %write.bucket,
            key = %write.key,
            operation = "PutObject",
            access_key = %write.access_key,
            request_id = %write.request_id,
            cause = %e,
            "unencrypted write recorded as exception_used did not complete"
        );
    })?;
    let applied = out.sse.clone();
    if let Some(asked) = &sse
        && applied.as_ref() != Some(asked)
    {
        let (bucket, key) = (&write.bucket, &write.key);
        return Err(sse_not_applied(gw, bucket, key, asked, applied.as_deref()).await);
    }
    let mut resp = S3Response::new(PutObjectOutput {
        e_tag: out
            .e_tag
            .map(|e| ETag::Strong(e.trim_matches('"').to_owned())),
        // What the provider says it did, not what was asked.
        server_side_encryption: applied.map(ServerSideEncryption::from),
        ssekms_key_id: out.ssekms_key_id,
        bucket_key_enabled: out.bucket_key_enabled,
        ..Default::default()
    });
    if let Ok(v) = http::HeaderValue::from_str(&write.request_id) {
        resp.headers.insert("x-amz-request-id", v);
    }
    Ok(resp)
}

/// The exception in force for `rule` and the grant only policy can make,
/// or AccessDenied, logged as `exception_denied`.
fn grant_write(
    gw: &Gateway,
    rule: &Rule,
    write: &PlainWrite,
) -> FrontResult<(Exception, PassthroughGrant)> {
    gw.policy()
        .authorize_write(rule, &gw.keys.get(), chrono::Utc::now())
        .map_err(|why| {
            tracing::warn!(
                target: SECURITY,
                event = "exception_denied",
                exception = %rule.exception,
                bucket = %write.bucket,
                key = %write.key,
                operation = "PutObject",
                access_key = %write.access_key,
                request_id = %write.request_id,
                reason = %why,
                "unencrypted write refused"
            );
            FrontError::AccessDenied(format!(
                "unencrypted write to {} refused: {why}",
                write.bucket
            ))
        })
}

/// Records `exception_used` for an unencrypted write of `len` bytes,
/// durably, before a byte of it is forwarded (503 when it cannot be).
async fn record_use(
    gw: &Gateway,
    exception: &Exception,
    write: &PlainWrite,
    len: u64,
) -> FrontResult<()> {
    let message =
        "unencrypted write authorised under a registered exception (recorded before the upload)";
    authorise(
        gw,
        record(&[
            ("event", "exception_used".into()),
            ("exception", exception.id.as_str().into()),
            ("bucket", write.bucket.as_str().into()),
            ("key", write.key.as_str().into()),
            ("operation", "PutObject".into()),
            ("size", serde_json::Value::from(len)),
            ("access_key", write.access_key.as_str().into()),
            ("request_id", write.request_id.as_str().into()),
            ("message", message.into()),
        ]),
        || {
            tracing::warn!(
                target: SECURITY,
                event = "exception_used",
                exception = %exception.id,
                bucket = %write.bucket,
                key = %write.key,
                operation = "PutObject",
                size = len,
                access_key = %write.access_key,
                request_id = %write.request_id,
                "{message}"
            )
        },
    )
    .await
}

/// The provider request for a passthrough PutObject: the client's
/// headers as sent (nothing is converted).
fn plain_put_request(input: &PutObjectInput, len: u64) -> PutRequest {
    PutRequest {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        content_length: len,
        content_type: input.content_type.clone(),
        content_disposition: input.content_disposition.clone(),
        cache_control: input.cache_control.clone(),
        metadata: input.metadata.clone(),
        // Conditional writes as the client asked: the provider's ETag is the
        // client's here.
        if_match: input.if_match.as_ref().map(etag_condition),
        if_none_match: input.if_none_match.as_ref().map(etag_condition),
        // SSE-S3 / SSE-KMS as the client asked (front/unsupported.rs lets
        // only these through); the provider must confirm them.
        sse: input
            .server_side_encryption
            .as_ref()
            .map(|v| v.as_str().to_owned()),
        ssekms_key_id: input.ssekms_key_id.clone(),
        ssekms_encryption_context: input.ssekms_encryption_context.clone(),
        bucket_key_enabled: input.bucket_key_enabled,
    }
}

/// The provider stored a passthrough object without the server-side
/// encryption the client asked for: the object is removed (it is not what
/// the client asked to store), the event recorded, and the client told.
async fn sse_not_applied(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    asked: &str,
    applied: Option<&str>,
) -> FrontError {
    let removed = gw.upstream.delete_object(bucket, key).await.is_ok();
    tracing::warn!(
        target: SECURITY,
        event = "sse_not_applied",
        %bucket,
        %key,
        asked,
        applied = applied.unwrap_or("none"),
        removed,
        "the provider did not apply the server-side encryption the client asked for"
    );
    FrontError::NotImplemented(format!(
        "x-amz-server-side-encryption: {asked} was forwarded, but the storage provider did not apply it (it answered {}); the object was {}",
        applied.unwrap_or("none"),
        if removed {
            "removed"
        } else {
            "stored without it and could not be removed"
        }
    ))
}

/// An audit record from its fields (`severity` warn).
fn record(fields: &[(&str, serde_json::Value)]) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("severity".into(), "warn".into());
    for (k, v) in fields {
        m.insert((*k).to_owned(), v.clone());
    }
    m
}

/// Writes an authorising record durably before the operation it
/// authorises, then emits it to the tracing log (`emit`); refuses with 503
/// ServiceUnavailable when the audit log cannot take it.
async fn authorise(
    gw: &Gateway,
    event: serde_json::Map<String, serde_json::Value>,
    emit: impl FnOnce(),
) -> FrontResult<()> {
    let name = event
        .get("event")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    match gw.audit.durable(event).await {
        Ok(()) => {
            crate::audit::already_recorded(emit);
            Ok(())
        }
        Err(e) => {
            tracing::error!(
                target: SECURITY,
                event = "record_unavailable",
                record = %name,
                error = %e,
                "operation refused: its audit record could not be written"
            );
            Err(FrontError::Unavailable(format!(
                "refused: the audit record this operation needs could not be written ({e}); retry later"
            )))
        }
    }
}

/// Allows (and records) or refuses (and records) a read of an object not
/// in sealgate's format in an encrypted bucket: only under an active
/// exception that allows legacy-reads for the bucket.
/// The record is written durably before any byte is served (503 when it
/// cannot be).
pub(crate) async fn legacy_read(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    operation: &str,
    access_key: Option<&str>,
) -> FrontResult<()> {
    let access_key = access_key.unwrap_or_default();
    let allowed = gw
        .policy()
        .legacy_reads(&gw.keys.get(), bucket, chrono::Utc::now());
    match allowed {
        Ok(e) => {
            let message = "object not in sealgate's format read under a registered exception";
            authorise(
                gw,
                record(&[
                    ("event", "legacy_read".into()),
                    ("exception", e.id.as_str().into()),
                    ("bucket", bucket.into()),
                    ("key", key.into()),
                    ("operation", operation.into()),
                    ("access_key", access_key.into()),
                    ("message", message.into()),
                ]),
                || {
                    tracing::warn!(
                        target: SECURITY,
                        event = "legacy_read",
                        exception = %e.id,
                        %bucket,
                        %key,
                        %operation,
                        %access_key,
                        "{message}"
                    )
                },
            )
            .await
        }
        Err(why) => {
            tracing::warn!(
                target: SECURITY,
                event = "legacy_read_denied",
                %bucket,
                %key,
                %operation,
                %access_key,
                reason = %why,
                "read of an object not in sealgate's format refused"
            );
            Err(FrontError::LegacyReadDenied(why.to_string()))
        }
    }
}

/// Whether a passthrough bucket's object is stored as plaintext (no
/// sealgate metadata): then GET/HEAD serve it as stored.
pub(crate) async fn is_plain(gw: &Gateway, bucket: &str, key: &str) -> FrontResult<bool> {
    if gw.policy().passthrough(bucket).is_none() {
        return Ok(false);
    }
    let head = gw
        .upstream
        .head_object(bucket, key)
        .await
        .map_err(upstream_object)?;
    let m = head.metadata.as_ref();
    Ok(!m.is_some_and(StoredMetadata::names_sealed_object))
}

fn range_header(r: &Option<Range>) -> Option<String> {
    r.as_ref().map(|r| match *r {
        Range::Int {
            first,
            last: Some(last),
        } => format!("bytes={first}-{last}"),
        Range::Int { first, last: None } => format!("bytes={first}-"),
        Range::Suffix { length } => format!("bytes=-{length}"),
    })
}

/// GET of a plaintext object in a passthrough bucket, as stored.
pub(crate) async fn get_plain(
    gw: &Gateway,
    i: GetObjectInput,
) -> FrontResult<S3Response<GetObjectOutput>> {
    let download = gw
        .upstream
        .get_object(GetRequest {
            bucket: i.bucket.clone(),
            key: i.key.clone(),
            range: range_header(&i.range),
            if_match: i.if_match.as_ref().and_then(cond),
            if_none_match: i.if_none_match.as_ref().and_then(cond),
        })
        .await
        .map_err(upstream_object)?;
    let r = download.info;
    let out = GetObjectOutput {
        content_length: r.content_length,
        content_range: r.content_range,
        content_type: r.content_type,
        e_tag: r
            .e_tag
            .map(|e| ETag::Strong(e.trim_matches('"').to_owned())),
        last_modified: r.last_modified.map(Timestamp::from),
        metadata: r.metadata,
        accept_ranges: Some("bytes".into()),
        body: Some(StreamingBlob::wrap(futures::StreamExt::map(
            download.body.into_stream(),
            |chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())),
        ))),
        ..Default::default()
    };
    Ok(S3Response::new(out))
}

fn cond(c: &ETagCondition) -> Option<String> {
    match c {
        ETagCondition::Any => Some("*".into()),
        ETagCondition::ETag(e) => Some(format!("\"{}\"", e.value())),
    }
}

/// HEAD of a plaintext object in a passthrough bucket, as stored.
pub(crate) async fn head_plain(
    gw: &Gateway,
    i: HeadObjectInput,
) -> FrontResult<S3Response<HeadObjectOutput>> {
    let r = gw
        .upstream
        .head_object(&i.bucket, &i.key)
        .await
        .map_err(upstream_object)?;
    Ok(S3Response::new(HeadObjectOutput {
        content_length: r.content_length,
        content_type: r.content_type,
        e_tag: r
            .e_tag
            .map(|e| ETag::Strong(e.trim_matches('"').to_owned())),
        last_modified: r.last_modified.map(Timestamp::from),
        metadata: r.metadata,
        accept_ranges: Some("bytes".into()),
        ..Default::default()
    }))
}

/// A client's ETag condition as the header value to forward.
fn etag_condition(c: &ETagCondition) -> String {
    match c {
        ETagCondition::Any => "*".to_owned(),
        ETagCondition::ETag(e) => format!("\"{}\"", e.value().trim_matches('"')),
    }
}
