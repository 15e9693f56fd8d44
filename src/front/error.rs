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

fn upstream(e: UpstreamError, not_found: S3ErrorCode) -> S3Error {
    // Codes that describe the client's request, safe and useful to pass on.
    const PASS: &[&str] = &[
        "NoSuchKey",
        "NoSuchBucket",
        "BucketAlreadyExists",
        "BucketAlreadyOwnedByYou",
        "BucketNotEmpty",
        "InvalidBucketName",
        "PreconditionFailed",
        "InvalidRange",
        "NoSuchUpload",
        "InvalidPart",
        "InvalidPartOrder",
        "EntityTooSmall",
        "EntityTooLarge",
        "KeyTooLongError",
        "InvalidArgument",
        "SlowDown",
        "NotImplemented",
    ];
    match &e {
        UpstreamError::Service { code, status, .. } => {
            if PASS.contains(&code.as_str())
                && let Some(c) = S3ErrorCode::from_bytes(code.as_bytes())
            {
                return S3Error::new(c);
            }
            match status {
                304 => not_modified(),
                404 => S3Error::new(not_found),
                412 => s3_error!(PreconditionFailed),
                503 => s3_error!(SlowDown),
                400..=499 if GATEWAY_CREDENTIALS.contains(&code.as_str()) => {
                    // Not the client's credentials: passing the code on
                    // would tell the client its own key or clock is wrong.
                    tracing::error!(cause = %e, "the storage provider refused the gateway's credentials or signature");
                    s3_error!(
                        InternalError,
                        "the storage provider refused the gateway's credentials"
                    )
                }
                400..=499 if GATEWAY_BODY.contains(&code.as_str()) => {
                    // sealgate verified the client's body and wrote this one
                    // itself: passing BadDigest on would blame the client's
                    // data, and stop the retry a transient fault deserves.
                    tracing::error!(cause = %e, "the storage provider refused the body sealgate sent");
                    s3_error!(
                        InternalError,
                        "the storage provider refused the gateway's request"
                    )
                }
                400..=499 if is_error_code(code) => {
                    // The provider refused the request for a reason of its
                    // own (a quota, a bucket policy, a limit, a conflict):
                    // the client gets the code and status it would have got
                    // directly; the provider's message stays in the log.
                    tracing::info!(cause = %e, "the storage provider refused the request");
                    let c = match (code.as_str(), status) {
                        // An error without a body (a HEAD's): its status.
                        ("Unknown", 403) => S3ErrorCode::AccessDenied,
                        ("Unknown", _) => S3ErrorCode::InvalidRequest,
                        _ => S3ErrorCode::from_bytes(code.as_bytes())
                            .unwrap_or(S3ErrorCode::InvalidRequest),
                    };
                    S3Error::new(c).with_status(*status)
                }
                _ => {
                    tracing::warn!(cause = %e, "upstream error");
                    s3_error!(InternalError, "the storage provider returned an error")
                }
            }
        }
        UpstreamError::Transport(_) => {
            tracing::warn!(cause = %e, "upstream unreachable");
            s3_error!(ServiceUnavailable, "the storage provider is unreachable")
        }
    }
}

/// Provider refusals of the gateway's own request signing (its provider
/// credentials, its clock): a configuration fault of the gateway, not the
/// client's.
const GATEWAY_CREDENTIALS: &[&str] = &[
    "AccessKeyIdNotFound",
    "AuthorizationHeaderMalformed",
    "AuthorizationQueryParametersError",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidSecurity",
    "InvalidToken",
    "MissingSecurityHeader",
    "RequestTimeTooSkewed",
    "SignatureDoesNotMatch",
    "TokenRefreshRequired",
];

/// Provider refusals of the request body or XML sealgate made (the client's
/// own body was verified before it was sealed).
const GATEWAY_BODY: &[&str] = &[
    "BadDigest",
    "IncompleteBody",
    "InvalidDigest",
    "MalformedXML",
    "MissingContentLength",
    "XAmzContentSHA256Mismatch",
];

/// Whether a provider's error code looks like an S3 error code (a short
/// ASCII word), so it can be passed on as one.
fn is_error_code(code: &str) -> bool {
    (1..=64).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
}

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
        FormatError::NotSealed => s3_error!(
            InvalidObjectState,
            "object is not in sealgate's encrypted format; reading unencrypted data needs a registered exception"
        ),
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
