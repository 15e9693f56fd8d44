//! Protections a client asks for that sealgate does not carry out are
//! refused, never silently dropped (docs/SECURITY.md §Requested
//! protections).
//!
//! Every write (PutObject, CreateMultipartUpload, CopyObject, UploadPart,
//! UploadPartCopy) and CreateBucket is checked here before anything reaches
//! the provider: server-side encryption (SSE-S3, SSE-KMS, SSE-C), Object
//! Lock (a bucket's, an object's retention and legal hold), ACLs and grants,
//! and tagging. A header sealgate does not
//! act on is `NotImplemented` (501, S3's answer for "a header you provided
//! implies functionality that is not implemented"), naming the header. What
//! is accepted:
//!
//! - `x-amz-acl: private`: what every object gets anyway (rclone configs
//!   often set it); any other canned ACL or grant is refused;
//! - in a passthrough bucket's PutObject, SSE-S3 and SSE-KMS
//!   (`x-amz-server-side-encryption`, its KMS key id, context and bucket-key
//!   setting), forwarded to the provider, which must confirm them
//!   (`super::passthrough`).

use super::Gateway;
use super::error::{FrontError, FrontResult};

/// The operation being checked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    CreateBucket,
    PutObject,
    CreateMultipartUpload,
    CopyObject,
    UploadPart,
    UploadPartCopy,
}

/// SSE-S3 / SSE-KMS request headers: forwarded in a passthrough bucket's
/// PutObject, refused everywhere else.
const SSE: &[&str] = &[
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-context",
    "x-amz-server-side-encryption-bucket-key-enabled",
];

/// SSE-C (customer-provided keys), for the object and for a copy source.
const SSE_C: &[&str] = &[
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-server-side-encryption-customer-key-md5",
    "x-amz-copy-source-server-side-encryption-customer-algorithm",
    "x-amz-copy-source-server-side-encryption-customer-key",
    "x-amz-copy-source-server-side-encryption-customer-key-md5",
];

/// Object Lock: retention mode and date, legal hold.
const LOCK: &[&str] = &[
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
];

/// Explicit grants.
const GRANTS: &[&str] = &[
    "x-amz-grant-full-control",
    "x-amz-grant-read",
    "x-amz-grant-read-acp",
    "x-amz-grant-write",
    "x-amz-grant-write-acp",
];

/// Refuses, before anything is stored, a write to `bucket` that asks for a
/// protection sealgate does not carry out.
pub(crate) fn check(
    gw: &Gateway,
    bucket: &str,
    headers: &http::HeaderMap,
    op: Op,
) -> FrontResult<()> {
    let passthrough = gw.policy().passthrough(bucket).is_some();
    check_headers(headers, bucket, op, passthrough)
}

fn value(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
}

fn check_headers(
    headers: &http::HeaderMap,
    bucket: &str,
    op: Op,
    passthrough: bool,
) -> FrontResult<()> {
    for h in SSE_C {
        if headers.contains_key(*h) {
            return Err(FrontError::NotImplemented(format!(
                "{h} is not supported: sealgate does not forward customer-provided keys (SSE-C); objects are encrypted by sealgate{}",
                if passthrough {
                    ", except in passthrough buckets, where SSE-S3 and SSE-KMS are forwarded to the provider"
                } else {
                    " under keys it holds"
                }
            )));
        }
    }
    let forwards_sse = passthrough && op == Op::PutObject;
    for h in SSE {
        let Some(v) = value(headers, h) else { continue };
        if !forwards_sse {
            return Err(FrontError::NotImplemented(format!(
                "{h}: {v} is not supported in bucket {bucket}: {}",
                if passthrough {
                    "provider-side encryption is forwarded only for single PutObject requests in passthrough buckets"
                } else {
                    "sealgate encrypts every object itself under keys it holds and does not ask the provider for its own encryption; send the request without this header"
                }
            )));
        }
        if *h == "x-amz-server-side-encryption"
            && !matches!(v.as_str(), "AES256" | "aws:kms" | "aws:kms:dsse")
        {
            return Err(FrontError::InvalidArgument(format!(
                "x-amz-server-side-encryption: {v} is not a valid value (AES256, aws:kms or aws:kms:dsse)"
            )));
        }
    }
    if forwards_sse
        && value(headers, "x-amz-server-side-encryption").is_none()
        && let Some(h) = SSE[1..].iter().find(|h| headers.contains_key(**h))
    {
        return Err(FrontError::InvalidArgument(format!(
            "{h} needs x-amz-server-side-encryption: aws:kms"
        )));
    }
    if let Some(v) = value(headers, "x-amz-bucket-object-lock-enabled")
        && v.eq_ignore_ascii_case("true")
    {
        return Err(FrontError::NotImplemented(format!(
            "x-amz-bucket-object-lock-enabled: {v} is not supported: sealgate does not carry out Object Lock, so the bucket's objects would not be protected as asked"
        )));
    }
    for h in LOCK {
        if let Some(v) = value(headers, h) {
            return Err(FrontError::NotImplemented(format!(
                "{h}: {v} is not supported: sealgate does not carry out Object Lock retention or legal holds, so the object would not be protected as asked"
            )));
        }
    }
    if let Some(v) = value(headers, "x-amz-acl")
        && !v.eq_ignore_ascii_case("private")
    {
        return Err(FrontError::NotImplemented(format!(
            "x-amz-acl: {v} is not supported: sealgate keeps every object private to its clients (only x-amz-acl: private is accepted)"
        )));
    }
    for h in GRANTS {
        if headers.contains_key(*h) {
            return Err(FrontError::NotImplemented(format!(
                "{h} is not supported: sealgate does not carry out ACL grants; access is given by its own credentials' bucket grants"
            )));
        }
    }
    if let Some(v) = value(headers, "x-amz-tagging").filter(|v| !v.is_empty()) {
        return Err(FrontError::NotImplemented(format!(
            "x-amz-tagging: {v} is not supported: sealgate does not store object tags"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn refused(pairs: &[(&str, &str)], op: Op, passthrough: bool) -> Option<String> {
        check_headers(&headers(pairs), "b", op, passthrough)
            .err()
            .map(|e| {
                let e = s3s::S3Error::from(e);
                format!("{:?} {}", e.code(), e.message().unwrap_or_default())
            })
    }

    #[test]
    fn each_unsupported_protection_is_refused_naming_its_header() {
        use Op::*;
        for op in [
            PutObject,
            CreateMultipartUpload,
            CopyObject,
            UploadPart,
            UploadPartCopy,
        ] {
            for (h, v) in [
                ("x-amz-server-side-encryption", "AES256"),
                ("x-amz-server-side-encryption", "aws:kms"),
                ("x-amz-server-side-encryption-aws-kms-key-id", "k"),
                ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
                ("x-amz-server-side-encryption-customer-key", "a2V5"),
                (
                    "x-amz-copy-source-server-side-encryption-customer-key",
                    "a2V5",
                ),
                ("x-amz-object-lock-mode", "COMPLIANCE"),
                (
                    "x-amz-object-lock-retain-until-date",
                    "2030-01-01T00:00:00Z",
                ),
                ("x-amz-object-lock-legal-hold", "ON"),
                ("x-amz-acl", "public-read"),
                (
                    "x-amz-grant-read",
                    "uri=http://acs.amazonaws.com/groups/global/AllUsers",
                ),
                ("x-amz-tagging", "a=b"),
            ] {
                let why = refused(&[(h, v)], op, false).unwrap_or_else(|| panic!("{h} accepted"));
                assert!(why.contains("NotImplemented") && why.contains(h), "{why}");
            }
        }
        let why = refused(
            &[("x-amz-bucket-object-lock-enabled", "true")],
            CreateBucket,
            false,
        )
        .unwrap();
        assert!(why.contains("x-amz-bucket-object-lock-enabled"), "{why}");
        assert_eq!(
            refused(
                &[("x-amz-bucket-object-lock-enabled", "false")],
                CreateBucket,
                false
            ),
            None
        );
        // What happens anyway is accepted.
        assert_eq!(refused(&[("x-amz-acl", "private")], PutObject, false), None);
        assert_eq!(refused(&[("x-amz-tagging", "")], PutObject, false), None);
        assert_eq!(refused(&[], CopyObject, false), None);
    }

    #[test]
    fn passthrough_put_forwards_sse_s3_and_kms_only() {
        use Op::*;
        for v in ["AES256", "aws:kms", "aws:kms:dsse"] {
            assert_eq!(
                refused(&[("x-amz-server-side-encryption", v)], PutObject, true),
                None
            );
        }
        assert_eq!(
            refused(
                &[
                    ("x-amz-server-side-encryption", "aws:kms"),
                    ("x-amz-server-side-encryption-aws-kms-key-id", "alias/k"),
                    ("x-amz-server-side-encryption-bucket-key-enabled", "true"),
                ],
                PutObject,
                true
            ),
            None
        );
        let why = refused(&[("x-amz-server-side-encryption", "DES")], PutObject, true).unwrap();
        assert!(why.contains("InvalidArgument"), "{why}");
        let why = refused(
            &[("x-amz-server-side-encryption-aws-kms-key-id", "k")],
            PutObject,
            true,
        )
        .unwrap();
        assert!(why.contains("InvalidArgument"), "{why}");
        let why = refused(
            &[("x-amz-server-side-encryption-customer-algorithm", "AES256")],
            PutObject,
            true,
        )
        .unwrap();
        assert!(why.contains("NotImplemented"), "{why}");
        for (h, v) in [("x-amz-acl", "public-read"), ("x-amz-tagging", "a=b")] {
            assert!(refused(&[(h, v)], PutObject, true).is_some(), "{h}");
        }
    }
}
