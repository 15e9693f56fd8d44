//! The one place where failures become S3 errors for clients.
//!
//! Every front-end handler returns a [`FrontError`]: one variant per kind of
//! cause, each saying when it happens. [`From<FrontError> for S3Error`] is
//! the single, exhaustive mapping to an S3 code, status and message (as
//! Garage's `api/s3/error.rs` and rustls's one wire mapping do). Branching
//! on an outcome is done on these variants, never on S3 codes.
//!
//! Internal detail (provider messages, key ids, paths) is logged, never sent.
//! Every integrity failure maps to one client-facing error and is logged as a
//! security event with the precise cause, when it is detected
//! ([`format`]): the event is a fact about the stored object whether or not
//! the client ends up seeing this error. A provider failure is logged when
//! it is mapped, which happens once, as the error leaves the front end.

use crate::format::FormatError;
use crate::telemetry::security::TARGET as SECURITY;
use crate::upstream::UpstreamError;
use s3s::{S3Error, S3ErrorCode, s3_error};

/// The result of a front-end handler.
pub type FrontResult<T> = Result<T, FrontError>;

/// Why a request to the front end failed.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    /// A provider call about an object failed or was refused. Mapped by the
    /// provider's answer ([`upstream`]); a 404 without a `NoSuch*` code (a
    /// HEAD's) is NoSuchKey.
    #[error("storage provider (object): {0}")]
    UpstreamObject(UpstreamError),
    /// A provider call about a bucket failed or was refused; a bare 404 is
    /// NoSuchBucket.
    #[error("storage provider (bucket): {0}")]
    UpstreamBucket(UpstreamError),
    /// A stored object could not be read as sealgate's format (tampering,
    /// an unknown or revoked key, not sealed at all), a range outside it, or
    /// a body whose length differs from its Content-Length. Logged with the
    /// object's name when constructed ([`format`]).
    #[error("object format: {0}")]
    Format(FormatError),
    /// An object not in sealgate's format in an encrypted bucket, and no
    /// exception allows reading it (the reason why not).
    #[error("legacy read refused: {0}")]
    LegacyReadDenied(String),
    /// A conditional GET or HEAD whose If-None-Match / If-Modified-Since
    /// held: 304, with the validators (ETag, Last-Modified) the client
    /// checks its copy against.
    #[error("not modified")]
    NotModified(http::HeaderMap),
    /// A precondition (If-Match, If-Unmodified-Since, a copy source's
    /// conditions) did not hold: 412.
    #[error("precondition failed")]
    PreconditionFailed,
    /// The request asks for an operation, option or header sealgate does
    /// not carry out (SSE-C, ACLs, Object Lock, versions, part numbers,
    /// provider-side encryption it cannot confirm): 501.
    #[error("not implemented: {0}")]
    NotImplemented(String),
    /// A request value outside what S3 or sealgate accepts: 400.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A request that is well-formed but not allowed as a whole (a copy
    /// onto itself, a wrong x-amz-mp-object-size): 400.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A request body's XML that does not validate (e.g. too many keys).
    #[error("malformed XML: {0}")]
    MalformedXml(String),
    /// Refused by the bucket policy: no exception allows an unencrypted
    /// write, or the provider's data-location exception expired: 403.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// A write without Content-Length (and no decoded length).
    #[error("missing Content-Length")]
    MissingContentLength,
    /// A write without a body, or whose body ended early, was malformed or
    /// had a length other than announced.
    #[error("incomplete body")]
    IncompleteBody(Option<&'static str>),
    /// A single write larger than sealgate takes (5 GiB, as S3).
    #[error("entity too large")]
    EntityTooLarge,
    /// A multipart upload whose parts other than the last are under 5 MiB.
    #[error("entity too small")]
    EntityTooSmall,
    /// The body does not match the Content-MD5, checksum or signature the
    /// client sent.
    #[error("bad digest: {0}")]
    BadDigest(String),
    /// A Content-MD5 header that is not a base64 MD5.
    #[error("invalid Content-MD5")]
    InvalidDigest,
    /// User metadata that would exceed S3's limit once sealed.
    #[error("metadata too large: {0}")]
    MetadataTooLarge(String),
    /// An upload id that does not authenticate or names no upload at the
    /// provider.
    #[error("no such upload")]
    NoSuchUpload,
    /// A completion naming a part that is missing or whose ETag differs.
    #[error("invalid part: {0}")]
    InvalidPart(String),
    /// A completion whose part list is not ascending.
    #[error("invalid part order")]
    InvalidPartOrder,
    /// DeleteBucket of a bucket that still holds objects.
    #[error("bucket not empty")]
    BucketNotEmpty,
    /// Retryable: the provider's connection broke or did not answer in
    /// time, or an authorising audit record could not be written: 503.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The provider or sealgate broke an invariant (no upload id returned,
    /// an upload task that failed, a body missing): 500.
    #[error("internal: {0}")]
    Internal(String),
}

impl FrontError {
    /// A failed lookup whose object is not in sealgate's format: the one
    /// case a read may take the legacy (exception) path for. A provider's
    /// own InvalidObjectState (e.g. an archived object) is not this.
    pub(crate) fn is_not_sealed(&self) -> bool {
        matches!(self, FrontError::Format(FormatError::NotSealed))
    }

    /// A 304 from sealgate's own condition check or from the provider.
    pub(crate) fn is_not_modified(&self) -> bool {
        match self {
            FrontError::NotModified(_) => true,
            FrontError::UpstreamObject(UpstreamError::Service { status, .. }) => *status == 304,
            _ => false,
        }
    }

    /// A range outside the object, found by sealgate or by the provider.
    pub(crate) fn is_range_not_satisfiable(&self) -> bool {
        match self {
            FrontError::Format(FormatError::RangeNotSatisfiable) => true,
            FrontError::UpstreamObject(UpstreamError::Service { status, code, .. }) => {
                *status == 416 || code == "InvalidRange"
            }
            _ => false,
        }
    }

    /// The upload or one of its parts is gone, by sealgate's check or the
    /// provider's answer: what a completion whose answer was lost finds.
    pub(crate) fn is_upload_or_part_gone(&self) -> bool {
        match self {
            FrontError::NoSuchUpload | FrontError::InvalidPart(_) => true,
            FrontError::UpstreamObject(UpstreamError::Service { code, .. }) => {
                code == "NoSuchUpload" || code == "InvalidPart"
            }
            _ => false,
        }
    }
}

/// Maps an upstream failure for an object-level call.
pub fn upstream_object(e: UpstreamError) -> FrontError {
    FrontError::UpstreamObject(e)
}

/// Maps an upstream failure for a bucket-level call.
pub fn upstream_bucket(e: UpstreamError) -> FrontError {
    FrontError::UpstreamBucket(e)
}

impl From<FrontError> for S3Error {
    /// The one mapping from a cause to what the client is told.
    fn from(e: FrontError) -> S3Error {
        match e {
            FrontError::UpstreamObject(e) => upstream(e, S3ErrorCode::NoSuchKey),
            FrontError::UpstreamBucket(e) => upstream(e, S3ErrorCode::NoSuchBucket),
            FrontError::Format(e) => format_code(e),
            FrontError::LegacyReadDenied(why) => s3_error!(
                InvalidObjectState,
                "object is not in sealgate's encrypted format, and {why}"
            ),
            FrontError::NotModified(validators) => {
                let mut e = not_modified();
                e.set_headers(validators);
                e
            }
            FrontError::PreconditionFailed => s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ),
            FrontError::NotImplemented(m) => S3Error::with_message(S3ErrorCode::NotImplemented, m),
            FrontError::InvalidArgument(m) => {
                S3Error::with_message(S3ErrorCode::InvalidArgument, m)
            }
            FrontError::InvalidRequest(m) => S3Error::with_message(S3ErrorCode::InvalidRequest, m),
            FrontError::MalformedXml(m) => S3Error::with_message(S3ErrorCode::MalformedXML, m),
            FrontError::AccessDenied(m) => S3Error::with_message(S3ErrorCode::AccessDenied, m),
            FrontError::MissingContentLength => S3Error::new(S3ErrorCode::MissingContentLength),
            FrontError::IncompleteBody(None) => S3Error::new(S3ErrorCode::IncompleteBody),
            FrontError::IncompleteBody(Some(m)) => {
                S3Error::with_message(S3ErrorCode::IncompleteBody, m)
            }
            FrontError::EntityTooLarge => S3Error::new(S3ErrorCode::EntityTooLarge),
            FrontError::EntityTooSmall => s3_error!(
                EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed object size."
            ),
            FrontError::BadDigest(m) => S3Error::with_message(S3ErrorCode::BadDigest, m),
            FrontError::InvalidDigest => S3Error::new(S3ErrorCode::InvalidDigest),
            FrontError::MetadataTooLarge(m) => {
                S3Error::with_message(S3ErrorCode::MetadataTooLarge, m)
            }
            FrontError::NoSuchUpload => s3_error!(
                NoSuchUpload,
                "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
            ),
            FrontError::InvalidPart(m) => S3Error::with_message(S3ErrorCode::InvalidPart, m),
            FrontError::InvalidPartOrder => s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order. Parts must be ordered by part number."
            ),
            FrontError::BucketNotEmpty => s3_error!(
                BucketNotEmpty,
                "The bucket you tried to delete is not empty"
            ),
            FrontError::Unavailable(m) => S3Error::with_message(S3ErrorCode::ServiceUnavailable, m),
            FrontError::Internal(m) => S3Error::with_message(S3ErrorCode::InternalError, m),
        }
    }
}

/// Codes by which a provider refuses *sealgate's own* request to it (its
/// credentials, signature, clock or body framing), not anything the client
/// asked: passing them on would tell the client its own request was wrong.
const GATEWAY_FAULTS: &[&str] = &[
    "AccessKeyIdNotFound",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "RequestTimeTooSkewed",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
    "AuthorizationQueryParametersError",
    "MissingSecurityHeader",
    "InvalidSecurity",
    "XAmzContentSHA256Mismatch",
    "BadDigest",
    "InvalidDigest",
    "IncompleteBody",
    "MissingContentLength",
    "RequestTimeout",
    // The XML sealgate sends is its own (a client's was parsed and rebuilt).
    "MalformedXML",
];

/// A provider's refusal as the client would have had it directly: the
/// provider's code and HTTP status for every 4xx (its message stays in the
/// log), except refusals of sealgate's own credentials or framing
/// ([`GATEWAY_FAULTS`]), which are the gateway's problem (500, logged).
/// 5xx: 503 is SlowDown (retried by clients), 501 NotImplemented, anything
/// else InternalError. Unreachable: 503.
fn upstream(e: UpstreamError, not_found: S3ErrorCode) -> S3Error {
    match &e {
        UpstreamError::Service { code, status, .. } => {
            let status = *status;
            // A code worth passing on: an S3-style name, not a body fragment.
            let named = !code.is_empty()
                && code != "Unknown"
                && code.len() <= 64
                && code.bytes().all(|b| b.is_ascii_alphanumeric());
            match status {
                304 => not_modified(),
                _ if GATEWAY_FAULTS.contains(&code.as_str()) => {
                    tracing::error!(cause = %e, "the storage provider refused the gateway's own request: check the upstream credentials, clock and settings");
                    s3_error!(
                        InternalError,
                        "the storage provider refused the gateway's credentials or request (see the gateway's log)"
                    )
                }
                // HEAD answers carry no body, so no code: the kind of thing.
                404 if !(named && code.starts_with("NoSuch")) => S3Error::new(not_found),
                400..=499 => {
                    tracing::info!(cause = %e, "the storage provider refused the request");
                    let c = if named {
                        S3ErrorCode::from_bytes(code.as_bytes())
                    } else {
                        codeless(status)
                    };
                    match c {
                        Some(c) => S3Error::new(c).with_status(status),
                        None => {
                            s3_error!(InvalidRequest, "the storage provider refused the request")
                                .with_status(status)
                        }
                    }
                }
                501 => s3_error!(NotImplemented),
                503 => s3_error!(SlowDown),
                _ => {
                    tracing::warn!(cause = %e, "upstream error");
                    s3_error!(InternalError, "the storage provider returned an error")
                }
            }
        }
        UpstreamError::Transport(_)
        | UpstreamError::Timeout(_)
        | UpstreamError::BodyCut(_)
        | UpstreamError::Stalled { .. } => {
            tracing::warn!(cause = %e, "upstream unreachable");
            s3_error!(ServiceUnavailable, "the storage provider is unreachable")
        }
        UpstreamError::Construction(_) => {
            // Nothing was sent: the provider client would not take a value
            // of the request (the provider did not refuse it).
            tracing::warn!(cause = %e, "request not forwarded");
            s3_error!(
                InvalidArgument,
                "the request cannot be forwarded to the storage provider: a value in it is not accepted by the provider client"
            )
        }
    }
}

/// The S3 code for a 4xx answer without one (HEAD answers have no body).
fn codeless(status: u16) -> Option<S3ErrorCode> {
    Some(match status {
        400 => S3ErrorCode::InvalidRequest,
        403 => S3ErrorCode::AccessDenied,
        405 => S3ErrorCode::MethodNotAllowed,
        409 => S3ErrorCode::OperationAborted,
        412 => S3ErrorCode::PreconditionFailed,
        416 => S3ErrorCode::InvalidRange,
        _ => return None,
    })
}

/// 304 Not Modified, for a conditional GET or HEAD.
fn not_modified() -> S3Error {
    S3Error::new(S3ErrorCode::Custom("NotModified".into())).with_status(304)
}

/// A format failure while reading or writing the object `bucket`/`key`,
/// logged now with the precise cause (a security event for integrity
/// failures and unknown or revoked keys); the client gets the one answer
/// [`From<FrontError> for S3Error`] gives it.
pub fn format(e: FormatError, bucket: &str, key: &str) -> FrontError {
    report_format(&e, bucket, key);
    FrontError::Format(e)
}

/// Logs a format failure of the object `bucket`/`key` with its precise
/// cause: what [`format`] does, for a failure found after the response
/// began (the client's response is aborted; no S3 error is sent).
pub fn report_format(e: &FormatError, bucket: &str, key: &str) {
    match e {
        FormatError::RangeNotSatisfiable
        | FormatError::LengthMismatch { .. }
        | FormatError::NotSealed => {}
        FormatError::UnknownKey(id) => {
            tracing::error!(target: SECURITY, event = "unknown_key", %bucket, %key, key_id = %id, "object names a key the key store lacks");
        }
        FormatError::DestroyedKey { id, why } => {
            tracing::warn!(target: SECURITY, event = "destroyed_key_read", %bucket, %key, key_id = %id, reason = %why, "object's key was destroyed (crypto-shredded); refused");
        }
        FormatError::RevokedKey { id, why } => {
            tracing::error!(target: SECURITY, event = "revoked_key_used", %bucket, %key, key_id = %id, reason = %why, "object is wrapped with a revoked key; refused");
        }
        e if e.is_integrity_failure() => {
            tracing::error!(target: SECURITY, event = "integrity_failure", %bucket, %key, cause = %e, "stored object failed authentication: possible tampering by the provider");
        }
        e => {
            tracing::error!(%bucket, %key, cause = %e, "object format error");
        }
    }
}

/// What the client is told about a format failure (logged by [`format`]).
fn format_code(e: FormatError) -> S3Error {
    match e {
        FormatError::RangeNotSatisfiable => s3_error!(InvalidRange),
        FormatError::LengthMismatch { .. } => {
            s3_error!(IncompleteBody, "body length differs from Content-Length")
        }
        FormatError::NotSealed => s3_error!(
            InvalidObjectState,
            "object is not in sealgate's encrypted format; reading unencrypted data needs a registered exception"
        ),
        FormatError::UnknownKey(_) => s3_error!(InternalError, "object cannot be decrypted"),
        // Not InvalidObjectState, which tells the client the object is not
        // in sealgate's format: it is, and its key is refused.
        FormatError::RevokedKey { .. } => s3_error!(
            AccessDenied,
            "the object's key-encryption key is revoked; it is not decrypted"
        ),
        // Final, so not a 5xx a client would retry.
        FormatError::DestroyedKey { .. } => s3_error!(
            AccessDenied,
            "the object's key was destroyed (its key domain was erased); it can never be decrypted"
        ),
        e if e.is_integrity_failure() => {
            s3_error!(InternalError, "stored object failed authentication")
        }
        _ => s3_error!(InternalError),
    }
}

trait WithStatus {
    fn with_status(self, status: u16) -> Self;
}

impl WithStatus for S3Error {
    fn with_status(mut self, status: u16) -> Self {
        if let Ok(s) = http::StatusCode::from_u16(status) {
            self.set_status_code(s);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(e: FrontError) -> (String, u16) {
        let e = S3Error::from(e);
        let status = e
            .status_code()
            .unwrap_or_else(|| e.code().status_code().expect("a status"));
        (e.code().as_str().to_owned(), status.as_u16())
    }

    fn service(status: u16, code: &str) -> UpstreamError {
        UpstreamError::Service {
            status,
            code: code.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn each_cause_has_its_s3_code_and_status() {
        let s = |m: &str| m.to_owned();
        let cases: Vec<(FrontError, &str, u16)> = vec![
            (
                FrontError::UpstreamObject(service(404, "")),
                "NoSuchKey",
                404,
            ),
            (
                FrontError::UpstreamBucket(service(404, "")),
                "NoSuchBucket",
                404,
            ),
            (
                FrontError::UpstreamObject(service(403, "QuotaExceeded")),
                "QuotaExceeded",
                403,
            ),
            (
                FrontError::UpstreamObject(service(403, "SignatureDoesNotMatch")),
                "InternalError",
                500,
            ),
            (
                FrontError::UpstreamObject(service(503, "x")),
                "SlowDown",
                503,
            ),
            (
                FrontError::UpstreamObject(service(304, "")),
                "NotModified",
                304,
            ),
            (
                FrontError::UpstreamObject(UpstreamError::Timeout("t".into())),
                "ServiceUnavailable",
                503,
            ),
            (
                FrontError::Format(FormatError::NotSealed),
                "InvalidObjectState",
                403,
            ),
            (
                FrontError::Format(FormatError::RangeNotSatisfiable),
                "InvalidRange",
                416,
            ),
            (
                FrontError::Format(FormatError::UnknownKey(crate::format::KeyId([7; 16]))),
                "InternalError",
                500,
            ),
            (
                FrontError::LegacyReadDenied(s("no exception")),
                "InvalidObjectState",
                403,
            ),
            (
                FrontError::NotModified(http::HeaderMap::new()),
                "NotModified",
                304,
            ),
            (FrontError::PreconditionFailed, "PreconditionFailed", 412),
            (FrontError::NotImplemented(s("x")), "NotImplemented", 501),
            (FrontError::InvalidArgument(s("x")), "InvalidArgument", 400),
            (FrontError::InvalidRequest(s("x")), "InvalidRequest", 400),
            (FrontError::MalformedXml(s("x")), "MalformedXML", 400),
            (FrontError::AccessDenied(s("x")), "AccessDenied", 403),
            (
                FrontError::MissingContentLength,
                "MissingContentLength",
                411,
            ),
            (FrontError::IncompleteBody(None), "IncompleteBody", 400),
            (FrontError::EntityTooLarge, "EntityTooLarge", 400),
            (FrontError::EntityTooSmall, "EntityTooSmall", 400),
            (FrontError::BadDigest(s("x")), "BadDigest", 400),
            (FrontError::InvalidDigest, "InvalidDigest", 400),
            (
                FrontError::MetadataTooLarge(s("x")),
                "MetadataTooLarge",
                400,
            ),
            (FrontError::NoSuchUpload, "NoSuchUpload", 404),
            (FrontError::InvalidPart(s("x")), "InvalidPart", 400),
            (FrontError::InvalidPartOrder, "InvalidPartOrder", 400),
            (FrontError::BucketNotEmpty, "BucketNotEmpty", 409),
            (FrontError::Unavailable(s("x")), "ServiceUnavailable", 503),
            (FrontError::Internal(s("x")), "InternalError", 500),
        ];
        for (e, code, status) in cases {
            let what = format!("{e:?}");
            assert_eq!(answer(e), (code.to_owned(), status), "{what}");
        }
    }

    #[test]
    fn outcomes_are_decided_on_variants_not_codes() {
        // sealgate's own "not sealed" takes the legacy path; a provider's
        // InvalidObjectState (an archived object) does not.
        assert!(FrontError::Format(FormatError::NotSealed).is_not_sealed());
        assert!(!FrontError::UpstreamObject(service(403, "InvalidObjectState")).is_not_sealed());
        assert!(!FrontError::LegacyReadDenied("x".into()).is_not_sealed());
        // A completion's lost answer: sealgate's check or the provider's.
        assert!(FrontError::NoSuchUpload.is_upload_or_part_gone());
        assert!(FrontError::UpstreamObject(service(404, "NoSuchUpload")).is_upload_or_part_gone());
        assert!(FrontError::UpstreamObject(service(400, "InvalidPart")).is_upload_or_part_gone());
        assert!(!FrontError::UpstreamObject(service(404, "NoSuchKey")).is_upload_or_part_gone());
        assert!(!FrontError::EntityTooSmall.is_upload_or_part_gone());
        // A copy source's 304 and bad range.
        assert!(FrontError::NotModified(http::HeaderMap::new()).is_not_modified());
        assert!(FrontError::UpstreamObject(service(304, "")).is_not_modified());
        assert!(!FrontError::PreconditionFailed.is_not_modified());
        assert!(FrontError::Format(FormatError::RangeNotSatisfiable).is_range_not_satisfiable());
        assert!(
            FrontError::UpstreamObject(service(416, "InvalidRange")).is_range_not_satisfiable()
        );
        assert!(!FrontError::InvalidArgument("x".into()).is_range_not_satisfiable());
    }

    #[test]
    fn a_not_modified_answer_carries_its_validators() {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::ETAG, "\"e\"".parse().unwrap());
        let e = S3Error::from(FrontError::NotModified(h));
        assert_eq!(e.headers().and_then(|h| h.get("etag")).unwrap(), "\"e\"");
    }
}
