//! Requests refused at the HTTP layer, from their request line and headers
//! alone, before s3s reads a byte of the body or looks at a signature.
//!
//! - **Browser-form uploads** (`POST` with `multipart/form-data`, S3's
//!   PostObject): s3s parses the form, and buffers the whole file part in
//!   memory, *before* the access check can refuse an unsigned request, so
//!   an outsider could make the gateway hold gigabytes. sealgate does not
//!   support PostObject: such a request gets `501 NotImplemented` and the
//!   connection is closed; its body is never parsed (one of at most 8 MiB
//!   is read out and dropped first, so the client gets the answer rather
//!   than a broken pipe; a larger one is not read).
//!
//! - **Signature Version 2** (`Authorization: AWS key:sig`, or a presigned
//!   `AWSAccessKeyId`/`Signature`/`Expires` query): s3s verifies it but
//!   never checks its date, and it signs no payload, so a captured request
//!   replays forever with any body. sealgate accepts SigV4 only: `400
//!   InvalidRequest`, with S3's own message for it.
//! - **SigV4 presigned URLs valid for more than 7 days** (`X-Amz-Expires`
//!   over 604800): `400 AuthorizationQueryParametersError`, as on S3 (s3s
//!   accepts any lifetime).
//!
//! - **POST bodies over [`XML_MAX_BODY`]**, from their Content-Length: the
//!   POSTs sealgate serves (DeleteObjects, CompleteMultipartUpload) carry
//!   XML that s3s reads whole into memory; `400 MaxMessageLengthExceeded`.
//!   (s3s also caps bodies it reads without a length at that size, but
//!   answers 500 there.)
//!
//! Refusals are S3 XML errors, as s3s would write them.

use s3s::{S3Error, s3_error};

/// Why `req` is refused before s3s sees it, if it is.
pub(crate) fn refusal<B>(req: &http::Request<B>) -> Option<S3Error> {
    if is_form_upload(req) {
        return Some(s3_error!(
            NotImplemented,
            "browser-form uploads (POST Object, multipart/form-data) are not supported; use PUT"
        ));
    }
    if req.method() == http::Method::POST && declared_length(req) > XML_MAX_BODY as u64 {
        return Some(s3_error!(
            MaxMessageLengthExceeded,
            "Your request was too big: XML request bodies are limited to {XML_MAX_BODY} bytes"
        ));
    }
    if uses_signature_v2(req) {
        return Some(s3_error!(
            InvalidRequest,
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
        ));
    }
    if signed_twice(req) {
        // s3s verifies the query and ignores the header; the header would
        // then name the client in logs and rate limits (S3 refuses these).
        return Some(s3_error!(
            InvalidArgument,
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified"
        ));
    }
    if presigned_too_long(req) {
        return Some(s3_error!(
            AuthorizationQueryParametersError,
            "X-Amz-Expires must be less than a week (in seconds) that is; the maximum expires is {MAX_PRESIGNED_SECS} seconds"
        ));
    }
    None
}

/// Largest XML request body (DeleteObjects, CompleteMultipartUpload) s3s
/// reads into memory. S3 allows 1,000 keys per DeleteObjects (each up to
/// 1,024 bytes; 4 MiB leaves ~4,100 bytes per escaped key) and 10,000
/// parts per completion (~200 bytes each with a checksum): both fit;
/// s3s's default is 20 MiB per request.
pub const XML_MAX_BODY: usize = 4 << 20;

/// The body length a request declares (Content-Length, or the decoded
/// length of an aws-chunked body, whichever is larger); 0 if none.
fn declared_length<B>(req: &http::Request<B>) -> u64 {
    ["content-length", "x-amz-decoded-content-length"]
        .iter()
        .flat_map(|h| req.headers().get_all(*h))
        .filter_map(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

/// The longest a SigV4 presigned URL may be valid, as on S3 (7 days).
pub const MAX_PRESIGNED_SECS: u64 = 604_800;

/// The query's (name, value) pairs, decoded as s3s decodes them.
fn query(req: &http::Request<impl Sized>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Whatever s3s would check as SigV2: a `Signature` query parameter, or an
/// `Authorization` header in the `AWS key:signature` form (any case: a
/// SigV4 header starts `AWS4-`).
fn uses_signature_v2<B>(req: &http::Request<B>) -> bool {
    let header = req
        .headers()
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .any(|v| {
            v.as_bytes()
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"AWS "))
        });
    header
        || query(req)
            .iter()
            .any(|(k, _)| k == "Signature" || k == "AWSAccessKeyId")
}

/// A request authenticated twice: presigned query parameters and an
/// `Authorization` header.
fn signed_twice<B>(req: &http::Request<B>) -> bool {
    req.headers().contains_key(http::header::AUTHORIZATION)
        && query(req).iter().any(|(k, _)| {
            k == "X-Amz-Signature" || k == "X-Amz-Credential" || k == "X-Amz-Algorithm"
        })
}

/// A presigned SigV4 URL claiming more than [`MAX_PRESIGNED_SECS`] (a
/// value that is not a number is left to s3s, which refuses it).
fn presigned_too_long<B>(req: &http::Request<B>) -> bool {
    query(req)
        .iter()
        .filter(|(k, _)| k == "X-Amz-Expires")
        .any(|(_, v)| {
            // s3s reads it with `str::parse`, which takes a leading '+'.
            let digits = v.strip_prefix('+').unwrap_or(v);
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits
                    .parse::<u64>()
                    .map_or(true, |n| n > MAX_PRESIGNED_SECS)
        })
}

/// A `POST` whose body s3s would parse as an HTML form (any
/// `multipart/form-data` Content-Type, whatever its case or parameters).
fn is_form_upload<B>(req: &http::Request<B>) -> bool {
    req.method() == http::Method::POST
        && req
            .headers()
            .get_all(http::header::CONTENT_TYPE)
            .iter()
            .any(|v| {
                let v = String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase();
                let v: String = v.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                v.starts_with("multipart/form-data")
            })
}

/// The S3 XML error response for a refusal (written by s3s). It closes
/// the connection, so an unread body is never read.
pub(crate) fn response(mut e: S3Error, request_id: &str) -> s3s::HttpResponse {
    e.set_request_id(request_id);
    let mut resp = e.to_http_response().unwrap_or_else(|_| {
        let mut r = http::Response::new(s3s::Body::empty());
        *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        r
    });
    resp.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::Request<()> {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn a_request_signed_in_the_query_and_the_header_is_refused() {
        let auth = (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=victim/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
        );
        let r = req(
            "GET",
            "/b/k?X-Amz-Signature=00&X-Amz-Credential=ak",
            &[auth],
        );
        let e = refusal(&r).expect("refused");
        assert_eq!(e.code(), &s3s::S3ErrorCode::InvalidArgument);
        assert!(refusal(&req("GET", "/b/k?X-Amz-Signature=00", &[])).is_none());
        assert!(refusal(&req("GET", "/b/k", &[auth])).is_none());
    }

    #[test]
    fn form_uploads_are_refused_in_every_spelling() {
        for ct in [
            "multipart/form-data; boundary=x",
            "Multipart/Form-Data;boundary=x",
            " multipart/form-data",
            "MULTIPART/FORM-DATA",
        ] {
            let r = req("POST", "/bucket", &[("content-type", ct)]);
            assert_eq!(
                refusal(&r).map(|e| e.code().as_str().to_owned()).as_deref(),
                Some("NotImplemented"),
                "{ct}"
            );
        }
        // Other POSTs (DeleteObjects, multipart uploads) pass.
        for (m, ct) in [("POST", "application/xml"), ("PUT", "multipart/form-data")] {
            assert!(refusal(&req(m, "/bucket?delete", &[("content-type", ct)])).is_none());
        }
        assert!(refusal(&req("POST", "/bucket/k?uploads", &[])).is_none());
    }

    #[test]
    fn presigned_urls_up_to_seven_days_pass() {
        for q in [
            "X-Amz-Expires=604800",
            "X-Amz-Expires=%2B1",
            "X-Amz-Expires=x",
        ] {
            let r = req("GET", &format!("/b/k?X-Amz-Signature=00&{q}"), &[]);
            assert_eq!(code_of(&r), None, "{q}");
        }
    }

    #[test]
    fn large_post_bodies_are_refused_from_their_length() {
        let big = (XML_MAX_BODY + 1).to_string();
        let r = req("POST", "/b?delete", &[("content-length", big.as_str())]);
        assert_eq!(code_of(&r).as_deref(), Some("MaxMessageLengthExceeded"));
        let ok = XML_MAX_BODY.to_string();
        assert_eq!(
            code_of(&req(
                "POST",
                "/b?delete",
                &[("content-length", ok.as_str())]
            )),
            None
        );
        // PUT bodies stream; they are not buffered.
        assert_eq!(
            code_of(&req("PUT", "/b/k", &[("content-length", big.as_str())])),
            None
        );
    }

    fn code_of(r: &http::Request<()>) -> Option<String> {
        refusal(r).map(|e| e.code().as_str().to_owned())
    }

    #[test]
    fn signature_v2_is_refused_and_v4_is_not() {
        let v2 = [
            req("GET", "/b/k", &[("authorization", "AWS ak:c2lnbmF0dXJl")]),
            req("GET", "/b/k", &[("authorization", "aws ak:c2ln")]),
            req(
                "GET",
                "/b/k?AWSAccessKeyId=ak&Expires=4102444800&Signature=x",
                &[],
            ),
            req("GET", "/b/k?Signature=x", &[]),
            req("GET", "/b/k?%53ignature=x", &[]),
        ];
        for r in &v2 {
            assert_eq!(
                code_of(r).as_deref(),
                Some("InvalidRequest"),
                "{:?}",
                r.uri()
            );
        }
        let v4 = [
            req(
                "GET",
                "/b/k",
                &[(
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=ak/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
                )],
            ),
            req("GET", "/b/k?X-Amz-Signature=00&X-Amz-Expires=604800", &[]),
            req("GET", "/b/k", &[]),
        ];
        for r in &v4 {
            assert_eq!(code_of(r), None, "{:?}", r.uri());
        }
    }

    #[test]
    fn presigned_urls_over_seven_days_are_refused() {
        for q in [
            "X-Amz-Expires=604801",
            "X-Amz-Expires=999999999",
            "X-Amz-Expires=99999999999999999999999",
            "X-Amz-Expires=1&X-Amz-Expires=604801",
            "X-Amz-Expires=%2B604801",
            "X-Amz-Expires=0000000000000000604801",
        ] {
            let r = req("GET", &format!("/b/k?X-Amz-Signature=00&{q}"), &[]);
            assert_eq!(
                code_of(&r).as_deref(),
                Some("AuthorizationQueryParametersError"),
                "{q}"
            );
        }
    }
}
