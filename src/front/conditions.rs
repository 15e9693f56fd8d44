//! Conditional requests (RFC 9110 §13, as S3 applies them), evaluated
//! against what clients see: the client ETag and the last-modified time.

use s3s::dto::{ETagCondition, Timestamp};

/// What a request's preconditions say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Serve the request.
    Proceed,
    /// 304 Not Modified (GET/HEAD with If-None-Match or If-Modified-Since).
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

fn matches(cond: &ETagCondition, etag: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value().trim_matches('"') == etag.trim_matches('"'),
    }
}

/// Compares to whole seconds: HTTP dates have no fractions.
fn secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// S3's rules: If-Match (else If-Unmodified-Since) decides 412; then
/// If-None-Match (else If-Modified-Since) decides 304. When If-Match holds,
/// If-Unmodified-Since is ignored; when If-None-Match fails, a true
/// If-Modified-Since does not rescue the request.
pub fn evaluate(
    etag: &str,
    last_modified: Option<&Timestamp>,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> Outcome {
    let modified = last_modified.map(secs);
    match if_match {
        Some(c) if !matches(c, etag) => return Outcome::Failed,
        Some(_) => {}
        None => {
            if let (Some(since), Some(m)) = (if_unmodified_since, modified)
                && m > secs(since)
            {
                return Outcome::Failed;
            }
        }
    }
    match if_none_match {
        Some(c) if matches(c, etag) => return Outcome::NotModified,
        Some(_) => {}
        None => {
            if let (Some(since), Some(m)) = (if_modified_since, modified)
                && m <= secs(since)
            {
                return Outcome::NotModified;
            }
        }
    }
    Outcome::Proceed
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::dto::ETag;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from(time::OffsetDateTime::from_unix_timestamp(secs).unwrap())
    }
    fn tag(v: &str) -> ETagCondition {
        ETagCondition::ETag(ETag::Strong(v.into()))
    }

    #[test]
    fn s3_precedence() {
        fn ev(
            im: Option<&ETagCondition>,
            inm: Option<&ETagCondition>,
            ims: Option<&Timestamp>,
            ius: Option<&Timestamp>,
        ) -> Outcome {
            evaluate("abc-1", Some(&t(1000)), im, inm, ims, ius)
        }
        assert_eq!(ev(None, None, None, None), Outcome::Proceed);
        assert_eq!(ev(Some(&tag("abc-1")), None, None, None), Outcome::Proceed);
        assert_eq!(
            ev(Some(&tag("\"abc-1\"")), None, None, None),
            Outcome::Proceed
        );
        assert_eq!(ev(Some(&tag("zzz")), None, None, None), Outcome::Failed);
        assert_eq!(
            ev(Some(&ETagCondition::Any), None, None, None),
            Outcome::Proceed
        );
        assert_eq!(
            ev(None, Some(&tag("abc-1")), None, None),
            Outcome::NotModified
        );
        assert_eq!(ev(None, Some(&tag("zzz")), None, None), Outcome::Proceed);
        assert_eq!(ev(None, None, Some(&t(1000)), None), Outcome::NotModified);
        assert_eq!(ev(None, None, Some(&t(999)), None), Outcome::Proceed);
        assert_eq!(ev(None, None, None, Some(&t(999))), Outcome::Failed);
        assert_eq!(ev(None, None, None, Some(&t(1000))), Outcome::Proceed);
        // If-Match true overrides a failing If-Unmodified-Since.
        assert_eq!(
            ev(Some(&tag("abc-1")), None, None, Some(&t(1))),
            Outcome::Proceed
        );
        // If-None-Match false (no match) overrides If-Modified-Since.
        assert_eq!(
            ev(None, Some(&tag("zzz")), Some(&t(5000)), None),
            Outcome::Proceed
        );
    }
}
