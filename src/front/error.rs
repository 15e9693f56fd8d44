//! The one place where failures become S3 errors for clients.
//!
//! Internal detail (provider messages, key ids, paths) is logged, never sent.
//! Every integrity failure maps to one client-facing error and is logged as a
//! security event with the precise cause.

use crate::format::FormatError;
use crate::upstream::UpstreamError;
use s3s::{S3Error, S3ErrorCode, s3_error};

/// Maps an upstream failure for an object-level call.
pub fn upstream_object(e: UpstreamError) -> S3Error {
    upstream(e, S3ErrorCode::NoSuchKey)
}

/// Maps an upstream failure for a bucket-level call.
pub fn upstream_bucket(e: UpstreamError) -> S3Error {
    upstream(e, S3ErrorCode::NoSuchBucket)
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

/// The message of the one InvalidObjectState sealgate gives itself: the
/// object is not in its format (a provider's InvalidObjectState, e.g. an
/// archived object, is passed on and means something else).
pub(crate) const NOT_SEALED: &str = "object is not in sealgate's encrypted format; reading unencrypted data needs a registered exception";

/// 304 Not Modified, for a conditional GET or HEAD.
pub fn not_modified() -> S3Error {
    S3Error::new(S3ErrorCode::Custom("NotModified".into())).with_status(304)
}

/// 412 Precondition Failed.
pub fn precondition_failed() -> S3Error {
    s3_error!(
        PreconditionFailed,
        "At least one of the pre-conditions you specified did not hold"
    )
}

/// Maps a format failure while reading or writing an object.
pub fn format(e: FormatError, bucket: &str, key: &str) -> S3Error {
    match e {
        FormatError::RangeNotSatisfiable => s3_error!(InvalidRange),
        FormatError::LengthMismatch { .. } => {
            s3_error!(IncompleteBody, "body length differs from Content-Length")
        }
        FormatError::NotSealed => {
            S3Error::with_message(S3ErrorCode::InvalidObjectState, NOT_SEALED)
        }
        FormatError::UnknownKey(id) => {
            tracing::error!(target: "sealgate::security", event = "unknown_key", %bucket, %key, key_id = %id, "object names a key the key store lacks");
            s3_error!(InternalError, "object cannot be decrypted")
        }
        FormatError::RevokedKey { id, why } => {
            tracing::error!(target: "sealgate::security", event = "revoked_key_used", %bucket, %key, key_id = %id, reason = %why, "object is wrapped with a revoked key; refused");
            // Not InvalidObjectState: that code means "not in sealgate's
            // format" and would send the read down the legacy path.
            s3_error!(
                AccessDenied,
                "the object's key-encryption key is revoked; it is not decrypted"
            )
        }
        e if e.is_integrity_failure() => {
            tracing::error!(target: "sealgate::security", event = "integrity_failure", %bucket, %key, cause = %e, "stored object failed authentication: possible tampering by the provider");
            s3_error!(InternalError, "stored object failed authentication")
        }
        e => {
            tracing::error!(%bucket, %key, cause = %e, "object format error");
            s3_error!(InternalError)
        }
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
