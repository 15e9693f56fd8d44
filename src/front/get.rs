//! GetObject and HeadObject: locate, authenticate, decrypt while streaming.
//!
//! A HEAD to the provider gives the stored size, the ETag (part count) and
//! sealgate's metadata: the header (single part) or envelope (multipart), the
//! name binding and the sealed metadata. The data key is unwrapped and the
//! binding checked before any byte is fetched. A ranged GET of a single-part
//! object then fetches only the covering segments. Plaintext goes to the
//! client segment by segment after its tag verified; any failure aborts the
//! response, so a client never takes a short or altered body as complete.

use super::error::{FrontError, FrontResult, format as format_err, upstream_object};
use super::multipart::MIN_PART;
use super::{Gateway, client_etag, etag_parts};
use crate::format::FORMAT_V1;
use crate::format::header::{HEADER_LEN, PartHeader, PartKind};
use crate::format::metadata::{self, ObjectMetadata, StoredMetadata, StoredStart};
use crate::format::size::{
    ByteRange, object_plaintext_len, part_ciphertext_len, part_plaintext_len, part_span,
    uniform_part_position,
};
use crate::format::stream::{NameCheck, ObjectOpener, PartOpener};
use crate::format::{Dek, Envelope, FormatError, ObjectName};
use crate::telemetry::security::TARGET as SECURITY;
use crate::upstream::{Body, GetRequest, ObjectInfo};
use bytes::Bytes;
use s3s::dto::*;
use s3s::{S3Request, S3Response};
use std::collections::HashMap;
use tokio::sync::mpsc;
use tracing::Instrument;

/// Plaintext chunks in flight to the client (backpressure bound).
const QUEUE: usize = 4;

/// Sets user metadata and content headers from the sealed metadata on a
/// GetObject or HeadObject output (both have the same field names).
macro_rules! apply_meta {
    ($out:expr, $m:expr) => {{
        let m: &ObjectMetadata = $m;
        let h = |name: &str| m.headers.get(name).cloned();
        $out.metadata = (!m.user.is_empty()).then(|| m.user.clone().into_iter().collect());
        $out.content_type = h("content-type");
        $out.content_disposition = h("content-disposition");
        $out.cache_control = h("cache-control");
        $out.content_encoding = h("content-encoding");
        $out.content_language = h("content-language");
        $out.website_redirect_location = h("website-redirect-location");
        $out.expires = h("expires").and_then(|v| http_date(&v));
    }};
}

/// A stored object, located and authenticated from its metadata.
pub(super) struct Located {
    pub(super) envelope: Envelope,
    pub(super) dek: Dek,
    /// The 212-byte header of a single-part object.
    pub(super) header: Option<PartHeader>,
    /// Part 1's header of a multipart object (read to size it).
    pub(super) first: Option<PartHeader>,
    pub(super) binding: [u8; 32],
    /// Stored part streams (the ETag's `-N`), a completion record included.
    pub(super) parts: u32,
    /// Stored (ciphertext) size.
    pub(super) stored: u64,
    /// The data parts and the bytes they occupy: `parts` and `stored` less
    /// the completion record, when the object has one (FORMAT.md §Completion).
    pub(super) layout: Layout,
    pub(super) plaintext_len: u64,
    pub(super) upstream_etag: String,
    pub(super) last_modified: Option<Timestamp>,
    /// The provider's storage class, when its HEAD names one.
    pub(super) storage_class: Option<String>,
    pub(super) meta: ObjectMetadata,
}

/// HEADs an object at the provider, unwraps its data key and checks its
/// binding to `bucket`/`key` and its sealed metadata.
pub(super) async fn locate(gw: &Gateway, bucket: &str, key: &str) -> FrontResult<Located> {
    let head = gw
        .upstream
        .head_object(bucket, key)
        .await
        .map_err(upstream_object)?;
    locate_from(gw, bucket, key, head).await
}

/// [`locate`] from a HEAD's answer already at hand.
async fn locate_from(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    head: ObjectInfo,
) -> FrontResult<Located> {
    let ferr = |e| format_err(e, bucket, key);
    let empty = HashMap::new();
    let m = head.metadata.as_ref().unwrap_or(&empty);
    let stored = StoredMetadata::decode(m).map_err(ferr)?;
    let binding = stored.binding;
    let (envelope, header) = match stored.start {
        StoredStart::Header(h) => (h.envelope.clone(), Some(*h)),
        StoredStart::Envelope(e) => (e, None),
    };
    let dek = envelope.open(gw.keys.get().as_ref()).map_err(ferr)?;
    envelope
        .check_binding(&dek, ObjectName { bucket, key }, &binding)
        .map_err(ferr)?;
    let meta = match &stored.sealed {
        Some(s) => metadata::open(&envelope, &dek, ObjectName { bucket, key }, s).map_err(ferr)?,
        // Version 3 always writes sealed metadata: missing means stripped.
        None if metadata::required(&envelope) => {
            return Err(ferr(FormatError::Metadata("sealed metadata missing")));
        }
        None => ObjectMetadata::default(),
    };
    let upstream_etag = head.e_tag.clone().unwrap_or_default();
    let parts = etag_parts(&upstream_etag);
    let stored = u64::try_from(head.content_length.unwrap_or(0)).unwrap_or(0);
    let (plaintext_len, first, layout) = match &header {
        Some(h) => {
            // The size a HEAD reports comes from authenticated bytes only:
            // the header's commitment covers its length and kind.
            h.verify(&dek).map_err(ferr)?;
            // Only part 1 starts an object: the header of a later part put
            // in the stored metadata would pass off the parts from there on as
            // the whole object (leading parts dropped).
            if h.part_number != 1 {
                return Err(ferr(FormatError::PartMismatch {
                    part: h.part_number,
                }));
            }
            if h.envelope.version != FORMAT_V1 && h.kind != PartKind::Last {
                return Err(ferr(FormatError::CompletionMissing { part: 1 }));
            }
            let layout = Layout {
                data_parts: 1,
                data_stored: stored,
                record: false,
            };
            (
                object_plaintext_len(stored, parts).map_err(ferr)?,
                None,
                layout,
            )
        }
        None => {
            let first = part_header_at(gw, bucket, key, &upstream_etag, 0).await?;
            if first.envelope != envelope
                || first.part_number != 1
                || first.kind == PartKind::Completion
            {
                return Err(ferr(FormatError::PartMismatch { part: 1 }));
            }
            first.verify(&dek).map_err(ferr)?;
            let sizes = Sizing {
                name: (bucket, key),
                etag: &upstream_etag,
                dek: &dek,
                first: &first,
                stored,
                parts,
            };
            let (len, layout) = sizes.size(gw).await?;
            (len, Some(first), layout)
        }
    };
    if let Some(h) = &header
        && (parts != 1 || h.plaintext_len != plaintext_len)
    {
        return Err(ferr(FormatError::InvalidCiphertextLength(stored)));
    }
    Ok(Located {
        envelope,
        dek,
        header,
        first,
        stored,
        binding,
        parts,
        layout,
        plaintext_len,
        upstream_etag,
        last_modified: head.last_modified.map(Timestamp::from),
        storage_class: head.storage_class,
        meta,
    })
}

/// Reads the 212-byte part header at ciphertext offset `at` (one small
/// ranged GET, pinned to the object version by `etag`).
pub(super) async fn part_header_at(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    etag: &str,
    at: u64,
) -> FrontResult<PartHeader> {
    read_header_at(gw, bucket, key, etag, at)
        .await?
        .map_err(|e| format_err(e, bucket, key))
}

/// [`part_header_at`], with a malformed header as a value: at a guessed
/// offset it means "not this layout", not tampering.
async fn read_header_at(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    etag: &str,
    at: u64,
) -> FrontResult<Result<PartHeader, FormatError>> {
    let resp = gw
        .upstream
        .get_object(GetRequest {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            range: Some(format!("bytes={at}-{}", at + HEADER_LEN as u64 - 1)),
            if_match: Some(etag.to_owned()),
            if_none_match: None,
        })
        .await
        .map_err(upstream_object)?;
    match resp.body.collect().await {
        Ok(b) => Ok(PartHeader::parse(&b)),
        // The connection failed, not the stored bytes: no tampering alarm.
        Err(e) => Err(provider_read_failed(bucket, key, &e.to_string())),
    }
}

/// Why streaming an object to a client stopped early.
#[derive(Debug)]
enum ReadError {
    /// Stored bytes failed authentication or do not form the object:
    /// possible tampering, reported as `integrity_failure`.
    Stored(FormatError),
    /// The provider's connection broke or went silent: reported as
    /// `upstream_read_failed`, which is not an incident.
    Provider(String),
}

impl From<FormatError> for ReadError {
    fn from(e: FormatError) -> Self {
        ReadError::Stored(e)
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Stored(e) => e.fmt(f),
            ReadError::Provider(cause) => {
                write!(f, "the storage provider's connection failed: {cause}")
            }
        }
    }
}

impl ReadError {
    /// Logs the precise cause (a security event for tampering, a provider
    /// event for a broken connection).
    fn report(self, bucket: &str, key: &str) {
        match self {
            ReadError::Stored(e) => super::error::report_format(&e, bucket, key),
            ReadError::Provider(cause) => report_provider_read_failed(bucket, key, &cause),
        }
    }
}

/// Records a provider connection that failed while an object was being
/// read (`upstream_read_failed`): counted and in the audit log, but not
/// taken for tampering. The client's response is aborted all the same.
fn report_provider_read_failed(bucket: &str, key: &str, cause: &str) {
    tracing::warn!(target: SECURITY, event = "upstream_read_failed", %bucket, %key, %cause, "the storage provider's connection failed while reading an object");
}

/// [`report_provider_read_failed`], for a read that has not answered yet:
/// 503, which clients retry.
fn provider_read_failed(bucket: &str, key: &str, cause: &str) -> FrontError {
    report_provider_read_failed(bucket, key, cause);
    FrontError::Unavailable("the storage provider's connection failed".into())
}

/// One part's share of a ranged read of a multipart object.
struct PartRead {
    /// Ciphertext range to fetch, absolute (inclusive end).
    from: u64,
    to: u64,
    opener: PartOpener,
}

/// Plans a ranged read of a multipart object under the uniform layout: the
/// headers of the parts `[start, end)` touches are fetched and checked
/// (number, length, envelope, binding, commitment) before any data is.
/// `None` when a header does not fit the layout: the caller falls back to
/// walking the whole object, which verifies every part.
async fn plan_multipart_range(
    gw: &Gateway,
    obj: &Located,
    bucket: &str,
    key: &str,
    (start, end): (u64, u64),
) -> FrontResult<Option<Vec<PartRead>>> {
    let ferr = |e| format_err(e, bucket, key);
    let Some(first) = &obj.first else {
        return Ok(None);
    };
    let p1 = first.plaintext_len.max(1);
    let Layout {
        data_parts,
        data_stored,
        record,
    } = obj.layout;
    let last_index = u32::try_from((end - 1) / p1)
        .unwrap_or(u32::MAX)
        .min(data_parts - 1);
    let first_index = u32::try_from(start / p1)
        .unwrap_or(u32::MAX)
        .min(last_index);
    let mut reads = Vec::new();
    for index in first_index..=last_index {
        let Some((ct_off, pt_off, len)) =
            uniform_part_position(first.plaintext_len, data_parts, data_stored, index)
        else {
            return Ok(None);
        };
        let header = if index == 0 {
            first.clone()
        } else {
            match read_header_at(gw, bucket, key, &obj.upstream_etag, ct_off).await? {
                Ok(h) => h,
                Err(_) => return Ok(None),
            }
        };
        // Only the last data part may end the object, and only when no
        // completion record follows it.
        let ends = index + 1 == data_parts && !record && obj.envelope.version != FORMAT_V1;
        if header.part_number != index + 1
            || header.plaintext_len != len
            || header.envelope != obj.envelope
            || header.binding_tag != first.binding_tag
            || header.kind.ends_object() != ends
        {
            return Ok(None);
        }
        let cipher = header.verify(&obj.dek).map_err(ferr)?;
        let (a, b) = (start.max(pt_off) - pt_off, end.min(pt_off + len) - pt_off);
        if a >= b {
            continue;
        }
        let span = part_span(len, a, b).map_err(ferr)?;
        reads.push(PartRead {
            from: ct_off + span.ciphertext_start,
            to: ct_off + span.ciphertext_end - 1,
            opener: PartOpener::for_span(&header, cipher, &span),
        });
    }
    Ok(Some(reads))
}

/// Streams the planned part reads to the client, aborting on any failure.
async fn pump_parts(
    gw: Gateway,
    reads: Vec<PartRead>,
    (bucket, key, etag): (String, String, String),
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let mut out = Vec::new();
    for mut read in reads {
        let resp = gw
            .upstream
            .get_object(GetRequest {
                bucket: bucket.clone(),
                key: key.clone(),
                range: Some(format!("bytes={}-{}", read.from, read.to)),
                if_match: Some(etag.clone()),
                if_none_match: None,
            })
            .await;
        let mut body = match resp {
            Ok(r) => r.body,
            Err(cause) => {
                report_provider_read_failed(&bucket, &key, &cause.to_string());
                let _ = tx
                    .send(Err(std::io::Error::other("sealgate aborted the response")))
                    .await;
                return;
            }
        };
        let result: Result<(), ReadError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| ReadError::Provider(e.to_string()))?;
                out.clear();
                let used = read.opener.push(&chunk, &mut out)?;
                if used < chunk.len() {
                    return Err(FormatError::TrailingData { part: 0 }.into());
                }
                if !out.is_empty() && tx.send(Ok(Bytes::copy_from_slice(&out))).await.is_err() {
                    return Ok(()); // client went away
                }
            }
            Ok(read.opener.finish()?)
        }
        .await;
        if let Err(e) = result {
            let message = format!("sealgate aborted the response: {e}");
            e.report(&bucket, &key);
            let _ = tx.send(Err(std::io::Error::other(message))).await;
            return;
        }
    }
}

/// Where a multipart object's data parts end (FORMAT.md §Completion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    /// Data parts (the stored parts less a completion record).
    pub(super) data_parts: u32,
    /// Bytes the data parts occupy from offset 0.
    pub(super) data_stored: u64,
    /// A completion record follows the data parts.
    pub(super) record: bool,
}

/// What sizing a multipart object needs: its name, version (ETag), data
/// key, part 1's verified header, stored size and stored part count.
struct Sizing<'a> {
    name: (&'a str, &'a str),
    etag: &'a str,
    dek: &'a Dek,
    first: &'a PartHeader,
    stored: u64,
    parts: u32,
}

impl Sizing<'_> {
    fn err(&self, e: FormatError) -> FrontError {
        format_err(e, self.name.0, self.name.1)
    }

    fn v1(&self) -> bool {
        self.first.envelope.version == FORMAT_V1
    }

    /// A header read at `at` that belongs to this object as part `number`:
    /// same envelope and binding, commitment verified. `Ok(None)` when the
    /// bytes there are not a header of this object (a wrong layout guess).
    async fn header(&self, gw: &Gateway, at: u64, number: u32) -> FrontResult<Option<PartHeader>> {
        let (bucket, key) = self.name;
        let Ok(h) = read_header_at(gw, bucket, key, self.etag, at).await? else {
            return Ok(None);
        };
        if h.part_number != number
            || h.envelope != self.first.envelope
            || h.binding_tag != self.first.binding_tag
        {
            return Ok(None);
        }
        // A header of this object whose commitment fails is tampering, not
        // a wrong guess.
        h.verify(self.dek).map_err(|e| self.err(e))?;
        Ok(Some(h))
    }

    /// The exact plaintext size and the data-part layout. Every size comes
    /// from headers whose commitments verified; a version-3 object must end
    /// in a part that ends it (a `Last` data part or a completion record),
    /// so removed trailing parts are refused here, before any byte is sent.
    ///
    /// Under the uniform layout (all data parts but the last of part 1's
    /// size) one more header read settles it: the last data part at its
    /// predicted offset, or the completion record at the end. Any other
    /// layout is sized by walking the part headers.
    async fn size(&self, gw: &Gateway) -> FrontResult<(u64, Layout)> {
        let (first, stored, parts) = (self.first, self.stored, self.parts);
        let h = HEADER_LEN as u64;
        if parts <= 1 {
            if !self.v1() && first.kind != PartKind::Last {
                return Err(self.err(FormatError::CompletionMissing { part: 1 }));
            }
            let len = multipart_plaintext_len(stored, parts, first.plaintext_len)
                .map_err(|e| self.err(e))?;
            let layout = Layout {
                data_parts: 1,
                data_stored: stored,
                record: false,
            };
            return Ok((len, layout));
        }
        if first.kind.ends_object() {
            // Part 1 ended the object, yet the provider says more follow.
            return Err(self.err(FormatError::TrailingData { part: 1 }));
        }
        let stride = part_ciphertext_len(first.plaintext_len);
        // Uniform, no record: the last part sits at (N−1)·stride. In version
        // 3 it must be a `Last` part, hence under 5 MiB.
        let last_at = stride.saturating_mul(u64::from(parts - 1));
        let small_last = stored
            .checked_sub(last_at)
            .and_then(|c| part_plaintext_len(c).ok())
            .is_some_and(|p| self.v1() || p < MIN_PART);
        if small_last
            && last_at + h <= stored
            && let Some(last) = self.header(gw, last_at, parts).await?
            && last.stored_len() == stored - last_at
            && (self.v1() || last.kind == PartKind::Last)
        {
            let layout = Layout {
                data_parts: parts,
                data_stored: stored,
                record: false,
            };
            return Ok((
                u64::from(parts - 1) * first.plaintext_len + last.plaintext_len,
                layout,
            ));
        }
        if !self.v1()
            && stored >= h
            && let Some(record) = self.header(gw, stored - h, parts).await?
            && record.kind == PartKind::Completion
        {
            let layout = Layout {
                data_parts: parts - 1,
                data_stored: stored - h,
                record: true,
            };
            let total = record.plaintext_len;
            let uniform = uniform_part_position(
                first.plaintext_len,
                layout.data_parts,
                layout.data_stored,
                layout.data_parts - 1,
            )
            .is_some_and(|(_, pt_off, len)| pt_off + len == total);
            if !uniform {
                let walked = self.walk(gw, layout).await?;
                if walked != total {
                    return Err(self.err(FormatError::CompletionMismatch(
                        "total length differs from the parts' lengths",
                    )));
                }
            }
            return Ok((total, layout));
        }
        // Not uniform (or a version-1 object): walk the headers.
        let layout = Layout {
            data_parts: parts,
            data_stored: stored,
            record: false,
        };
        Ok((self.walk(gw, layout).await?, layout))
    }

    /// Walks the data parts' headers from part 1, verifying each; returns
    /// the plaintext total. The walk must end exactly at `data_stored`, and
    /// in version 3 its last part must end the object unless a record
    /// follows.
    async fn walk(&self, gw: &Gateway, layout: Layout) -> FrontResult<u64> {
        let (mut at, mut total) = (0u64, 0u64);
        for n in 1..=layout.data_parts {
            let h = if n == 1 {
                self.first.clone()
            } else {
                self.header(gw, at, n)
                    .await?
                    .ok_or_else(|| self.err(FormatError::PartMismatch { part: n }))?
            };
            let last = n == layout.data_parts;
            if h.kind == PartKind::Completion
                || (!last && h.kind.ends_object())
                || (last && !self.v1() && h.kind.ends_object() == layout.record)
            {
                return Err(self.err(if last {
                    FormatError::CompletionMissing { part: n }
                } else {
                    FormatError::TrailingData { part: n }
                }));
            }
            total += h.plaintext_len;
            at += h.stored_len();
        }
        if at != layout.data_stored {
            return Err(self.err(FormatError::InvalidCiphertextLength(self.stored)));
        }
        Ok(total)
    }
}

/// Every stored part header of a located multipart object, in order, the
/// completion record included, each verified (commitment, envelope,
/// binding, numbering, which part ends the object) and together covering
/// exactly the stored bytes. One header read per part after the first.
pub(super) async fn stored_part_headers(
    gw: &Gateway,
    obj: &Located,
    (bucket, key): (&str, &str),
) -> FrontResult<Vec<PartHeader>> {
    let first = obj
        .first
        .as_ref()
        .ok_or_else(|| format_err(FormatError::PartMismatch { part: 1 }, bucket, key))?;
    let sizes = Sizing {
        name: (bucket, key),
        etag: &obj.upstream_etag,
        dek: &obj.dek,
        first,
        stored: obj.stored,
        parts: obj.parts,
    };
    let mut headers = vec![first.clone()];
    let mut at = first.stored_len();
    for n in 2..=obj.parts {
        let h = sizes
            .header(gw, at, n)
            .await?
            .ok_or_else(|| sizes.err(FormatError::PartMismatch { part: n }))?;
        at += h.stored_len();
        headers.push(h);
    }
    let v3 = obj.envelope.version != FORMAT_V1;
    let ends = |i: usize, h: &PartHeader| h.kind.ends_object() == (v3 && i + 1 == headers.len());
    let plain: u64 = headers
        .iter()
        .filter(|h| h.kind != PartKind::Completion)
        .map(|h| h.plaintext_len)
        .sum();
    let record_ok = headers
        .iter()
        .enumerate()
        .all(|(i, h)| h.kind != PartKind::Completion || (i > 0 && h.plaintext_len == plain));
    if at != obj.stored || !headers.iter().enumerate().all(|(i, h)| ends(i, h)) || !record_ok {
        return Err(sizes.err(FormatError::CompletionMismatch(
            "the stored parts do not form a whole object",
        )));
    }
    Ok(headers)
}

/// Plaintext size of a multipart object from its stored size `c`, part count
/// and part 1's plaintext size (FORMAT.md §Sizes): exact when part 1 holds a
/// multiple of 64 KiB (the listing formula), else under the uniform layout
/// every client produces (all parts but the last of part 1's size). A reader
/// walking the object checks the result against the parts it sees.
fn multipart_plaintext_len(c: u64, parts: u32, first: u64) -> Result<u64, FormatError> {
    let bad = FormatError::InvalidCiphertextLength(c);
    if parts <= 1 {
        return if part_ciphertext_len(first) == c {
            Ok(first)
        } else {
            Err(bad)
        };
    }
    if first.is_multiple_of(crate::format::SEGMENT_LEN as u64) {
        return object_plaintext_len(c, parts);
    }
    let others = u64::from(parts - 1);
    let rest = others
        .checked_mul(part_ciphertext_len(first))
        .and_then(|n| c.checked_sub(n))
        .ok_or(bad)?;
    Ok(others * first + part_plaintext_len(rest)?)
}

fn range(r: &Option<Range>) -> Option<ByteRange> {
    r.as_ref().map(|r| match *r {
        Range::Int {
            first,
            last: Some(last),
        } => ByteRange::FromTo(first, last),
        Range::Int { first, last: None } => ByteRange::From(first),
        Range::Suffix { length } => ByteRange::Suffix(length),
    })
}

/// GetObject: refuses part numbers, then dispatches early by what is
/// stored: a passthrough bucket's plaintext, an object not in sealgate's
/// format (only under a legacy-reads exception), or a sealed object.
pub(super) async fn get_object(
    gw: &Gateway,
    req: S3Request<GetObjectInput>,
) -> FrontResult<S3Response<GetObjectOutput>> {
    let access_key = req.credentials.as_ref().map(|c| c.access_key.clone());
    let i = req.input;
    if i.part_number.is_some() {
        return Err(FrontError::NotImplemented(
            "GetObject with partNumber is not supported".into(),
        ));
    }
    if super::passthrough::is_plain(gw, &i.bucket, &i.key).await? {
        return super::passthrough::get_plain(gw, i).await;
    }
    let (located, prefetched) = locate_for_get(gw, &i.bucket, &i.key, i.range.is_none()).await?;
    match located {
        Ok(obj) => get_sealed(gw, &i, obj, prefetched).await,
        Err(e) if e.is_not_sealed() => {
            super::passthrough::legacy_read(
                gw,
                &i.bucket,
                &i.key,
                "GetObject",
                access_key.as_deref(),
            )
            .await?;
            super::passthrough::get_plain(gw, i).await
        }
        Err(e) => Err(e),
    }
}

/// A sealed object's GET once located: its conditions, then the range it
/// asks for, served from the touched parts of a multipart object
/// (FORMAT.md §Ranges) or from one upstream read.
async fn get_sealed(
    gw: &Gateway,
    i: &GetObjectInput,
    obj: Located,
    prefetched: Option<Body>,
) -> FrontResult<S3Response<GetObjectOutput>> {
    let (bucket, key) = (i.bucket.as_str(), i.key.as_str());
    preconditions(
        &obj,
        (i.if_match.as_ref(), i.if_none_match.as_ref()),
        (i.if_modified_since.as_ref(), i.if_unmodified_since.as_ref()),
    )?;
    let (start, end) = match range(&i.range) {
        Some(r) => r
            .resolve(obj.plaintext_len)
            .map_err(|e| format_err(e, bucket, key))?,
        None => (0, obj.plaintext_len),
    };
    let ranged = i.range.is_some();
    // Only the touched parts' headers and covering segments, unless the
    // layout is not uniform (then the single read below).
    if obj.header.is_none()
        && ranged
        && start < end
        && let Some(reads) = plan_multipart_range(gw, &obj, bucket, key, (start, end)).await?
    {
        let rx = spawn_part_reads(gw, &obj, bucket, key, reads);
        return Ok(S3Response::new(sealed_output(i, obj, (start, end), rx)));
    }
    let (upstream_range, plan) = plan_read(&obj, bucket, key, ranged, start, end)?;
    let body = match prefetched {
        Some(body) if upstream_range.is_none() => body,
        _ => fetch_pinned(gw, &obj, bucket, key, upstream_range).await?,
    };
    let rx = spawn_pump(gw, &obj, bucket, key, body, plan);
    Ok(S3Response::new(sealed_output(i, obj, (start, end), rx)))
}

/// The stored bytes `range` of a located object, pinned to the ETag it
/// was located at: the object must not change between HEAD and GET.
async fn fetch_pinned(
    gw: &Gateway,
    obj: &Located,
    bucket: &str,
    key: &str,
    range: Option<String>,
) -> FrontResult<Body> {
    let resp = gw
        .upstream
        .get_object(GetRequest {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            range,
            if_match: Some(obj.upstream_etag.clone()),
            if_none_match: None,
        })
        .await
        .map_err(upstream_object)?;
    Ok(resp.body)
}

/// The GetObject answer for plaintext bytes `start..end` streamed from
/// `rx`: length, range, ETag, the client's metadata and, for a whole
/// object asked with ChecksumMode, its full-object checksums.
fn sealed_output(
    i: &GetObjectInput,
    obj: Located,
    (start, end): (u64, u64),
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> GetObjectOutput {
    let mut out = GetObjectOutput {
        body: Some(StreamingBlob::wrap(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )),
        content_length: Some((end - start) as i64),
        accept_ranges: Some("bytes".into()),
        e_tag: Some(ETag::Strong(client_etag(&obj.upstream_etag))),
        last_modified: obj.last_modified,
        ..Default::default()
    };
    if i.range.is_some() {
        out.content_range = Some(format!(
            "bytes {}-{}/{}",
            start,
            end.saturating_sub(1),
            obj.plaintext_len
        ));
    } else if super::checksums::enabled(i.checksum_mode.as_ref()) {
        // S3 returns a full-object checksum only with the whole object.
        super::checksums::apply_checksums!(out, &obj.meta.checksums);
    }
    apply_meta!(out, &obj.meta);
    out
}

/// Locates an object for a GET. A whole object needs one upstream GET for
/// its body: the response headers carry what the HEAD would (metadata,
/// ETag, length), so the body is returned to be streamed (a multipart
/// object still reads its part headers first, pinned to that ETag). A
/// range takes the HEAD first, to plan what to fetch. The outer error is
/// the provider's refusal of that first request.
async fn locate_for_get(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    whole: bool,
) -> FrontResult<(FrontResult<Located>, Option<Body>)> {
    if !whole {
        return Ok((locate(gw, bucket, key).await, None));
    }
    let download = gw
        .upstream
        .get_object(GetRequest {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            ..Default::default()
        })
        .await
        .map_err(upstream_object)?;
    let located = locate_from(gw, bucket, key, download.info).await;
    Ok((located, Some(download.body)))
}

/// Streams a ranged GET of a multipart object read part by part
/// ([`plan_multipart_range`]): the planned reads run in a task of their
/// own, which feeds the returned channel.
fn spawn_part_reads(
    gw: &Gateway,
    obj: &Located,
    bucket: &str,
    key: &str,
    reads: Vec<PartRead>,
) -> mpsc::Receiver<Result<Bytes, std::io::Error>> {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUE);
    // Spawned work stays in the request's span (its request id).
    tokio::spawn(
        pump_parts(
            gw.clone(),
            reads,
            (bucket.to_owned(), key.to_owned(), obj.upstream_etag.clone()),
            tx,
        )
        .instrument(tracing::Span::current()),
    );
    rx
}

/// What to fetch of a located object and how to open it: a single-part
/// object's covering segments (a range) or whole body (its header checked
/// against the metadata's); a multipart object whole, trimmed to the range.
fn plan_read(
    obj: &Located,
    bucket: &str,
    key: &str,
    ranged: bool,
    start: u64,
    end: u64,
) -> FrontResult<(Option<String>, Plan)> {
    let ferr = |e| format_err(e, bucket, key);
    Ok(match &obj.header {
        Some(h) if ranged && start < end => {
            let span = part_span(obj.plaintext_len, start, end).map_err(ferr)?;
            let cipher = h.verify(&obj.dek).map_err(ferr)?;
            (
                Some(format!(
                    "bytes={}-{}",
                    span.ciphertext_start,
                    span.ciphertext_end - 1
                )),
                Plan::Span(Box::new(PartOpener::for_span(h, cipher, &span))),
            )
        }
        Some(h) => {
            let cipher = h.verify(&obj.dek).map_err(ferr)?;
            (
                None,
                Plan::Whole {
                    expected_header: Box::new(h.to_bytes()),
                    seen: Vec::with_capacity(HEADER_LEN),
                    opener: Box::new(PartOpener::new(h, cipher)),
                },
            )
        }
        None => (
            None,
            Plan::Multipart {
                skip: start,
                take: end - start,
            },
        ),
    })
}

/// Streams `body` through `plan` in a task of its own; the receiver gets
/// plaintext per verified segment, or an error that aborts the response
/// (logged with its precise cause).
fn spawn_pump(
    gw: &Gateway,
    obj: &Located,
    bucket: &str,
    key: &str,
    body: Body,
    plan: Plan,
) -> mpsc::Receiver<Result<Bytes, std::io::Error>> {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUE);
    let keys = gw.keys.get();
    let check = Expected {
        binding: obj.binding,
        parts: obj.parts,
        plaintext_len: obj.plaintext_len,
    };
    let (bucket, key) = (bucket.to_owned(), key.to_owned());
    tokio::spawn(
        async move {
            let name = ObjectName {
                bucket: &bucket,
                key: &key,
            };
            let result = pump(body, plan, keys.as_ref(), name, check, &tx).await;
            if let Err(e) = result {
                // Log with the precise cause, then abort the client's response.
                let message = format!("sealgate aborted the response: {e}");
                e.report(&bucket, &key);
                let _ = tx.send(Err(std::io::Error::other(message))).await;
            }
        }
        .instrument(tracing::Span::current()),
    );
    rx
}

/// What a streamed object must turn out to be: bound to its name by
/// `binding`, and (multipart) of `parts` part streams holding
/// `plaintext_len` bytes, as the HEAD said.
struct Expected {
    binding: [u8; 32],
    parts: u32,
    plaintext_len: u64,
}

enum Plan {
    /// A single-part object, whole: check the body's header against metadata.
    Whole {
        expected_header: Box<[u8; HEADER_LEN]>,
        seen: Vec<u8>,
        opener: Box<PartOpener>,
    },
    /// The covering segments of a single-part object.
    Span(Box<PartOpener>),
    /// A multipart object, whole, trimmed to `[skip, skip + take)`.
    Multipart { skip: u64, take: u64 },
}

async fn pump(
    mut body: Body,
    mut plan: Plan,
    keys: &crate::keys::KeyStore,
    name: ObjectName<'_>,
    expected: Expected,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), ReadError> {
    let mut object = ObjectOpener::new(keys, NameCheck::Tag(name, expected.binding));
    let mut out = Vec::new();
    loop {
        let chunk = match body.next().await {
            Some(Ok(c)) => c,
            Some(Err(e)) => return Err(ReadError::Provider(e.to_string())),
            None => break,
        };
        let mut data: &[u8] = &chunk;
        out.clear();
        match &mut plan {
            Plan::Whole {
                expected_header,
                seen,
                opener,
            } => {
                if seen.len() < HEADER_LEN {
                    let take = (HEADER_LEN - seen.len()).min(data.len());
                    seen.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if seen.len() == HEADER_LEN && seen.as_slice() != expected_header.as_slice() {
                        return Err(FormatError::CommitmentMismatch.into());
                    }
                }
                let used = opener.push(data, &mut out)?;
                if used < data.len() {
                    return Err(FormatError::TrailingData { part: 1 }.into());
                }
            }
            Plan::Span(opener) => {
                let used = opener.push(data, &mut out)?;
                if used < data.len() {
                    return Err(FormatError::TrailingData { part: 1 }.into());
                }
            }
            Plan::Multipart { skip, take } => {
                object.push(data, &mut out)?;
                let s = (*skip).min(out.len() as u64) as usize;
                out.drain(..s);
                *skip -= s as u64;
                out.truncate((*take).min(out.len() as u64) as usize);
                *take -= out.len() as u64;
            }
        }
        if !out.is_empty() && tx.send(Ok(Bytes::copy_from_slice(&out))).await.is_err() {
            return Ok(()); // client went away
        }
    }
    match plan {
        Plan::Whole { opener, seen, .. } => {
            if seen.len() < HEADER_LEN {
                return Err(FormatError::TruncatedHeader {
                    got: seen.len(),
                    need: HEADER_LEN,
                }
                .into());
            }
            Ok(opener.finish()?)
        }
        Plan::Span(opener) => Ok(opener.finish()?),
        Plan::Multipart { .. } => {
            let opened = object.finish()?;
            // Cross-check with what the listing/HEAD said (FORMAT.md §Limits).
            if opened.parts != expected.parts || opened.plaintext_len != expected.plaintext_len {
                return Err(FormatError::Truncated { part: opened.parts }.into());
            }
            Ok(())
        }
    }
}

pub async fn head_object(
    gw: &Gateway,
    req: S3Request<HeadObjectInput>,
) -> FrontResult<S3Response<HeadObjectOutput>> {
    let access_key = req.credentials.as_ref().map(|c| c.access_key.clone());
    let i = req.input;
    if i.part_number.is_some() {
        return Err(FrontError::NotImplemented(
            "HeadObject with partNumber is not supported".into(),
        ));
    }
    if super::passthrough::is_plain(gw, &i.bucket, &i.key).await? {
        return super::passthrough::head_plain(gw, i).await;
    }
    let obj = match locate(gw, &i.bucket, &i.key).await {
        Ok(o) => o,
        Err(e) if e.is_not_sealed() => {
            super::passthrough::legacy_read(
                gw,
                &i.bucket,
                &i.key,
                "HeadObject",
                access_key.as_deref(),
            )
            .await?;
            return super::passthrough::head_plain(gw, i).await;
        }
        Err(e) => return Err(e),
    };
    preconditions(
        &obj,
        (i.if_match.as_ref(), i.if_none_match.as_ref()),
        (i.if_modified_since.as_ref(), i.if_unmodified_since.as_ref()),
    )?;
    let mut out = HeadObjectOutput {
        content_length: Some(obj.plaintext_len as i64),
        accept_ranges: Some("bytes".into()),
        e_tag: Some(ETag::Strong(client_etag(&obj.upstream_etag))),
        last_modified: obj.last_modified,
        ..Default::default()
    };
    if let Some(r) = range(&i.range) {
        let (s, e) = r
            .resolve(obj.plaintext_len)
            .map_err(|e| format_err(e, &i.bucket, &i.key))?;
        out.content_length = Some((e - s) as i64);
    } else if super::checksums::enabled(i.checksum_mode.as_ref()) {
        super::checksums::apply_checksums!(out, &obj.meta.checksums);
    }
    apply_meta!(out, &obj.meta);
    Ok(S3Response::new(out))
}

/// If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since against
/// the ETag and date clients see.
fn preconditions(
    obj: &Located,
    (if_match, if_none_match): (Option<&ETagCondition>, Option<&ETagCondition>),
    (modified_since, unmodified_since): (Option<&Timestamp>, Option<&Timestamp>),
) -> FrontResult<()> {
    use super::conditions::{Outcome, evaluate};
    match evaluate(
        &client_etag(&obj.upstream_etag),
        obj.last_modified.as_ref(),
        if_match,
        if_none_match,
        modified_since,
        unmodified_since,
    ) {
        Outcome::Proceed => Ok(()),
        Outcome::NotModified => {
            // A 304 carries the ETag and date the client validates against.
            let mut h = http::HeaderMap::new();
            if let Ok(v) =
                http::HeaderValue::from_str(&format!("\"{}\"", client_etag(&obj.upstream_etag)))
            {
                h.insert(http::header::ETAG, v);
            }
            if let Some(v) = obj
                .last_modified
                .as_ref()
                .and_then(|t| {
                    let mut b = Vec::new();
                    t.format(TimestampFormat::HttpDate, &mut b).ok()?;
                    String::from_utf8(b).ok()
                })
                .and_then(|v| http::HeaderValue::from_str(&v).ok())
            {
                h.insert(http::header::LAST_MODIFIED, v);
            }
            Err(FrontError::NotModified(h))
        }
        Outcome::Failed => Err(FrontError::PreconditionFailed),
    }
}

fn http_date(v: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::size::part_ciphertext_len as cl;

    #[test]
    fn multipart_sizes_for_aligned_and_unaligned_uniform_parts() {
        // aws CLI: 8 MiB parts; last part shorter.
        let (p, last) = (8u64 << 20, 1_234_567u64);
        assert_eq!(
            multipart_plaintext_len(3 * cl(p) + cl(last), 4, p).unwrap(),
            3 * p + last
        );
        // 5,000,000-byte parts (not a multiple of 64 KiB).
        let p = 5_000_000u64;
        for last in [1u64, 65_536, 4_999_999, 5_000_000] {
            assert_eq!(
                multipart_plaintext_len(2 * cl(p) + cl(last), 3, p).unwrap(),
                2 * p + last,
                "last {last}"
            );
        }
        // One part; and impossible sizes.
        assert_eq!(multipart_plaintext_len(cl(10), 1, 10).unwrap(), 10);
        assert!(multipart_plaintext_len(cl(10) + 1, 1, 10).is_err());
        assert!(multipart_plaintext_len(cl(p), 3, p).is_err());
    }
}
