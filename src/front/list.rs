//! ListObjects (v1 and v2): forwarded page by page; each entry's size is
//! turned into the plaintext size by arithmetic on the stored size and the
//! ETag's part count (FORMAT.md §Sizes) — no request per listed object,
//! except where the provider lists no ETag (s3s-fs, the embedded default):
//! then each entry without one gets one HEAD for its ETag, at most
//! [`LIST_HEADS`] at a time. A multipart object's size needs its part
//! count, and sync tools (s3cmd) compare the listed ETag with what HEAD and
//! their own records say, so a listing must carry the ETag HEAD gives.

use super::error::{FrontResult, upstream_bucket};
use super::{Gateway, etag, etag_parts};
use crate::format::size::object_plaintext_len;
use crate::upstream::{ListRequest, ListedObject};
use futures::StreamExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::*;
use s3s::{S3Request, S3Response};

/// Characters left unencoded when a client asks for `encoding-type=url`.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// HEADs in flight for one listing page whose entries lack ETags.
pub const LIST_HEADS: usize = 16;

/// The page's entries with every missing ETag filled in from a HEAD: a
/// listing must give the sizes and ETags HEAD gives, or sync tools
/// transfer the same files forever.
async fn with_etags(gw: &Gateway, bucket: &str, listed: Vec<ListedObject>) -> Vec<ListedObject> {
    futures::stream::iter(listed)
        .map(|o| async move {
            let lacks = o.e_tag.as_deref().is_none_or(str::is_empty);
            let (Some(key), true) = (o.key.as_deref(), lacks) else {
                return o;
            };
            match gw.upstream.head_object(bucket, key).await {
                // Only if it is still the same object (same stored size).
                Ok(h) if h.content_length == o.size => {
                    let mut o = o;
                    o.e_tag = h.e_tag;
                    o
                }
                _ => o,
            }
        })
        .buffered(LIST_HEADS)
        .collect()
        .await
}

/// The plaintext size clients see for a listed object. Objects that are not
/// in sealgate's format (sizes no ciphertext can have) keep their size.
pub(crate) fn plaintext_size(stored: i64, upstream_etag: Option<&str>) -> i64 {
    let parts = upstream_etag.map_or(1, etag_parts);
    match u64::try_from(stored)
        .ok()
        .and_then(|c| object_plaintext_len(c, parts).ok())
    {
        Some(p) => p as i64,
        None => stored,
    }
}

/// A listing's encoding of names: URL-encoded when the client asked for
/// `encoding-type=url`, else as they are (the XML writer escapes them).
pub(crate) struct Enc(bool);

impl Enc {
    pub(crate) fn of(requested: &Option<EncodingType>) -> Enc {
        Enc(requested
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL))
    }
    pub(crate) fn s(&self, v: Option<&str>) -> Option<String> {
        v.map(|v| {
            if self.0 {
                utf8_percent_encode(v, KEEP).to_string()
            } else {
                v.to_owned()
            }
        })
    }
    pub(crate) fn ty(&self) -> Option<EncodingType> {
        self.0.then(|| EncodingType::from_static(EncodingType::URL))
    }
}

/// A listed object as clients see it. In a passthrough bucket (`raw`)
/// objects are listed as stored: size and ETag unconverted. `owner`: S3
/// lists it in ListObjects (v1) always and in v2 with FetchOwner=true.
fn object(o: &ListedObject, enc: &Enc, raw: bool, owner: bool) -> Object {
    let stored = o.size.unwrap_or(0);
    Object {
        key: enc.s(o.key.as_deref()),
        size: Some(if raw {
            stored
        } else {
            plaintext_size(stored, o.e_tag.as_deref())
        }),
        e_tag: if raw {
            o.e_tag
                .as_deref()
                .map(|e| ETag::Strong(e.trim_matches('"').to_owned()))
        } else {
            etag(o.e_tag.as_deref())
        },
        last_modified: o.last_modified.map(Timestamp::from),
        storage_class: o.storage_class.clone().map(ObjectStorageClass::from),
        owner: owner.then(super::acl::owner),
        ..Default::default()
    }
}

fn prefixes(p: &[Option<String>], enc: &Enc) -> Vec<CommonPrefix> {
    p.iter()
        .map(|c| CommonPrefix {
            prefix: enc.s(c.as_deref()),
        })
        .collect()
}

pub async fn list_objects_v2(
    gw: &Gateway,
    req: S3Request<ListObjectsV2Input>,
) -> FrontResult<S3Response<ListObjectsV2Output>> {
    let i = req.input;
    let enc = Enc::of(&i.encoding_type);
    let out = gw
        .upstream
        .list_objects_v2(ListRequest {
            bucket: i.bucket.clone(),
            prefix: i.prefix.clone(),
            delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
            max_keys: i.max_keys,
            continuation_token: i.continuation_token.clone(),
            start_after: i.start_after.clone(),
            ..Default::default()
        })
        .await
        .map_err(upstream_bucket)?;
    let raw = gw.policy().passthrough(&i.bucket).is_some();
    let listed = if raw {
        out.contents
    } else {
        with_etags(gw, &i.bucket, out.contents).await
    };
    let fetch_owner = i.fetch_owner == Some(true);
    let contents: Vec<Object> = listed
        .iter()
        .map(|o| object(o, &enc, raw, fetch_owner))
        .collect();
    let common = prefixes(&out.common_prefixes, &enc);
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(i.bucket),
        prefix: enc.s(i.prefix.as_deref()).or(Some(String::new())),
        // An empty delimiter is no delimiter: S3 does not echo it.
        delimiter: enc.s(i.delimiter.as_deref().filter(|d| !d.is_empty())),
        max_keys: Some(i.max_keys.unwrap_or(1000)),
        key_count: Some((contents.len() + common.len()) as i32),
        continuation_token: i.continuation_token,
        next_continuation_token: out.next_continuation_token,
        is_truncated: Some(out.is_truncated.unwrap_or(false)),
        start_after: enc.s(i.start_after.as_deref()),
        encoding_type: enc.ty(),
        contents: Some(contents),
        common_prefixes: Some(common),
        ..Default::default()
    }))
}

pub async fn list_objects(
    gw: &Gateway,
    req: S3Request<ListObjectsInput>,
) -> FrontResult<S3Response<ListObjectsOutput>> {
    let i = req.input;
    let enc = Enc::of(&i.encoding_type);
    let out = gw
        .upstream
        .list_objects(ListRequest {
            bucket: i.bucket.clone(),
            prefix: i.prefix.clone(),
            delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
            max_keys: i.max_keys,
            marker: i.marker.clone(),
            ..Default::default()
        })
        .await
        .map_err(upstream_bucket)?;
    let truncated = out.is_truncated.unwrap_or(false);
    // S3 returns NextMarker only with a delimiter; clients then use the last key.
    let next_marker = out.next_marker.clone().or_else(|| {
        truncated
            .then(|| out.contents.last().and_then(|o| o.key.clone()))
            .flatten()
    });
    let raw = gw.policy().passthrough(&i.bucket).is_some();
    let listed = if raw {
        out.contents
    } else {
        with_etags(gw, &i.bucket, out.contents).await
    };
    let contents: Vec<Object> = listed.iter().map(|o| object(o, &enc, raw, true)).collect();
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(i.bucket),
        prefix: enc.s(i.prefix.as_deref()).or(Some(String::new())),
        // An empty delimiter is no delimiter: S3 does not echo it.
        delimiter: enc.s(i.delimiter.as_deref().filter(|d| !d.is_empty())),
        marker: enc.s(i.marker.as_deref()).or(Some(String::new())),
        max_keys: Some(i.max_keys.unwrap_or(1000)),
        is_truncated: Some(truncated),
        next_marker: enc.s(next_marker.as_deref()),
        encoding_type: enc.ty(),
        common_prefixes: Some(prefixes(&out.common_prefixes, &enc)),
        contents: Some(contents),
        ..Default::default()
    }))
}
