//! Size and range arithmetic (FORMAT.md §Sizes, §Ranges). Pure functions:
//! a listing can report plaintext sizes without fetching anything, and a
//! ranged read knows which ciphertext bytes to fetch before it fetches them.

use super::FormatError;
use super::SEGMENT_LEN;
use super::aead::TAG_LEN;
use super::header::{HEADER_LEN, MAX_PART_PLAINTEXT};

const S: u64 = SEGMENT_LEN as u64;
const T: u64 = TAG_LEN as u64;
const H: u64 = HEADER_LEN as u64;
/// Ciphertext bytes of one full segment.
pub const SEGMENT_CT_LEN: u64 = S + T;

/// Segments in a part of `p` plaintext bytes: `max(1, ceil(p / 64 KiB))`.
/// An empty part still has one (empty, final) segment so that stripping the
/// body of an empty object is detected.
pub fn segment_count(p: u64) -> u64 {
    p.div_ceil(S).max(1)
}

/// Plaintext bytes in segment `i` of a part of `p` bytes.
pub fn segment_plaintext_len(p: u64, i: u64) -> u64 {
    let n = segment_count(p);
    debug_assert!(i < n);
    if i + 1 < n { S } else { p - (n - 1) * S }
}

/// Ciphertext length of one part (header included) holding `p` plaintext bytes.
pub fn part_ciphertext_len(p: u64) -> u64 {
    H + p + T * segment_count(p)
}

/// Inverse of [`part_ciphertext_len`]; rejects lengths no plaintext produces.
pub fn part_plaintext_len(c: u64) -> Result<u64, FormatError> {
    let bad = FormatError::InvalidCiphertextLength(c);
    let x = c.checked_sub(H).ok_or(bad.clone())?;
    let full = x / SEGMENT_CT_LEN;
    let rem = x % SEGMENT_CT_LEN;
    let p = if rem == 0 {
        // Ends exactly on a full segment; zero segments is impossible.
        if full == 0 {
            return Err(bad);
        }
        full * S
    } else if rem > T || (rem == T && full == 0) {
        // A non-empty partial last segment, or the empty object's lone segment.
        full * S + rem - T
    } else {
        return Err(bad);
    };
    if p > MAX_PART_PLAINTEXT || part_ciphertext_len(p) != c {
        return Err(bad);
    }
    Ok(p)
}

/// Plaintext length of an object from what a listing shows: its ciphertext
/// length and its part count (`parts` = 1 for a single PUT, N for an ETag
/// ending in `-N`).
///
/// Exact when every part but the last holds a multiple of 64 KiB (true of
/// the aws CLI, boto3, rclone and s5cmd defaults: 8, 8, 5 and 50 MiB): the
/// segments of such parts concatenate like one stream, so only the N−1 extra
/// headers need subtracting. FORMAT.md §Sizes states what happens otherwise.
pub fn object_plaintext_len(c: u64, parts: u32) -> Result<u64, FormatError> {
    if parts == 0 {
        return Err(FormatError::InvalidCiphertextLength(c));
    }
    let extra = H * u64::from(parts - 1);
    let single = c
        .checked_sub(extra)
        .ok_or(FormatError::InvalidCiphertextLength(c))?;
    part_plaintext_len(single)
}

/// A client byte range as S3 accepts it in a `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (inclusive).
    FromTo(u64, u64),
    /// `bytes=a-`.
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Resolves against an object of `len` bytes into a half-open interval
    /// `[start, end)`, with S3's rules: an end past the object is clamped; a
    /// start at or past the end, or an empty suffix, is not satisfiable (416).
    pub fn resolve(self, len: u64) -> Result<(u64, u64), FormatError> {
        let r = match self {
            ByteRange::FromTo(a, b) if a <= b && a < len => (a, b.saturating_add(1).min(len)),
            ByteRange::From(a) if a < len => (a, len),
            ByteRange::Suffix(n) if n > 0 && len > 0 => (len - n.min(len), len),
            _ => return Err(FormatError::RangeNotSatisfiable),
        };
        Ok(r)
    }
}

/// The segments of one part that cover a plaintext interval, and where they
/// sit in the part's ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSpan {
    /// First segment index needed.
    pub first_segment: u64,
    /// Last segment index needed (inclusive).
    pub last_segment: u64,
    /// Offset of the first needed byte, from the start of the part (header included).
    pub ciphertext_start: u64,
    /// Offset one past the last needed byte, from the start of the part.
    pub ciphertext_end: u64,
    /// Plaintext bytes to drop from the start of the first segment.
    pub skip: u64,
    /// Plaintext bytes to return.
    pub len: u64,
}

/// Which segments of a part of `p` bytes cover plaintext `[start, end)`.
pub fn part_span(p: u64, start: u64, end: u64) -> Result<SegmentSpan, FormatError> {
    if start >= end || end > p {
        return Err(FormatError::RangeNotSatisfiable);
    }
    let first = start / S;
    let last = (end - 1) / S;
    let ct_start = H + first * SEGMENT_CT_LEN;
    let ct_end = H + last * SEGMENT_CT_LEN + segment_plaintext_len(p, last) + T;
    Ok(SegmentSpan {
        first_segment: first,
        last_segment: last,
        ciphertext_start: ct_start,
        ciphertext_end: ct_end,
        skip: start - first * S,
        len: end - start,
    })
}

/// Where part `index` (0-based) of a multipart object starts, assuming the
/// uniform layout every mainstream client produces: all parts but the last
/// hold `first_part_len` bytes (aligned to 64 KiB or not). Returns (ciphertext offset, plaintext offset,
/// plaintext length of that part) or `None` when the layout cannot be uniform.
///
/// A reader must confirm the guess with the header it finds at that offset
/// (part length, part number, envelope) and fall back to walking the headers
/// when it does not match; FORMAT.md §Ranges.
pub fn uniform_part_position(
    first_part_len: u64,
    parts: u32,
    total_ciphertext: u64,
    index: u32,
) -> Option<(u64, u64, u64)> {
    if index >= parts {
        return None;
    }
    let stride = part_ciphertext_len(first_part_len);
    let before = stride.checked_mul(u64::from(parts - 1))?;
    let last_ct = total_ciphertext.checked_sub(before)?;
    let last_len = part_plaintext_len(last_ct).ok()?;
    let len = if index + 1 == parts {
        last_len
    } else {
        first_part_len
    };
    Some((
        stride * u64::from(index),
        first_part_len * u64::from(index),
        len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_holds_at_boundaries() {
        for p in [0, 1, S - 1, S, S + 1, 3 * S, 3 * S + 7, 5 << 20, 8 << 20] {
            let c = part_ciphertext_len(p);
            assert_eq!(part_plaintext_len(c), Ok(p), "p={p}");
        }
    }

    #[test]
    fn impossible_lengths_rejected() {
        // Too short for a header and an empty segment.
        for c in [0, H, H + T - 1, H + 1] {
            assert!(part_plaintext_len(c).is_err(), "c={c}");
        }
        // A partial last segment with no plaintext in it.
        assert!(part_plaintext_len(H + SEGMENT_CT_LEN + T).is_err());
    }

    #[test]
    fn multipart_sizes_invert_for_aligned_parts() {
        for (part, n, last) in [
            (8u64 << 20, 4u32, 123u64),
            (5 << 20, 10, 5 << 20),
            (50 << 20, 2, 1),
        ] {
            let total_p = part * u64::from(n - 1) + last;
            let c = part_ciphertext_len(part) * u64::from(n - 1) + part_ciphertext_len(last);
            assert_eq!(object_plaintext_len(c, n), Ok(total_p));
        }
    }

    #[test]
    fn a_completion_record_keeps_the_listing_formula_exact() {
        // Version 3: a record is one more part of exactly H bytes, so the
        // formula over the stored part count still inverts.
        for (part, n, last) in [(8u64 << 20, 2u32, 8u64 << 20), (5 << 20, 3, 6 << 20)] {
            let total_p = part * u64::from(n - 1) + last;
            let c = part_ciphertext_len(part) * u64::from(n - 1) + part_ciphertext_len(last) + H;
            assert_eq!(object_plaintext_len(c, n + 1), Ok(total_p));
        }
    }

    #[test]
    fn ranges_follow_s3_rules() {
        assert_eq!(ByteRange::FromTo(0, 9).resolve(5), Ok((0, 5)));
        assert_eq!(ByteRange::From(4).resolve(5), Ok((4, 5)));
        assert_eq!(ByteRange::Suffix(2).resolve(5), Ok((3, 5)));
        assert_eq!(ByteRange::Suffix(9).resolve(5), Ok((0, 5)));
        assert!(ByteRange::From(5).resolve(5).is_err());
        assert!(ByteRange::Suffix(0).resolve(5).is_err());
        assert!(ByteRange::FromTo(3, 2).resolve(5).is_err());
        assert!(ByteRange::Suffix(1).resolve(0).is_err());
    }

    #[test]
    fn span_covers_only_needed_segments() {
        let p = 10 * S + 5;
        let sp = part_span(p, S + 3, 2 * S + 1).unwrap();
        assert_eq!((sp.first_segment, sp.last_segment), (1, 2));
        assert_eq!(sp.ciphertext_start, H + SEGMENT_CT_LEN);
        assert_eq!(sp.ciphertext_end, H + 3 * SEGMENT_CT_LEN);
        assert_eq!((sp.skip, sp.len), (3, S - 2));
        let last = part_span(p, p - 1, p).unwrap();
        assert_eq!(last.ciphertext_end, part_ciphertext_len(p));
    }

    #[test]
    fn uniform_positions() {
        let part = 8u64 << 20;
        let total = part_ciphertext_len(part) * 2 + part_ciphertext_len(100);
        assert_eq!(
            uniform_part_position(part, 3, total, 2),
            Some((2 * part_ciphertext_len(part), 2 * part, 100))
        );
        assert_eq!(uniform_part_position(part, 3, total, 3), None);
        // Unaligned parts (6,000,000 bytes) are uniform too.
        let (p, last) = (6_000_000u64, 77u64);
        let total = part_ciphertext_len(p) * 2 + part_ciphertext_len(last);
        assert_eq!(
            uniform_part_position(p, 3, total, 2),
            Some((2 * part_ciphertext_len(p), 2 * p, last))
        );
        // A stored size too small for the layout.
        assert_eq!(uniform_part_position(p, 3, part_ciphertext_len(p), 1), None);
    }
}
