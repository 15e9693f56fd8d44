//! Full-object checksums of the plaintext (x-amz-checksum-*): which ones a
//! PutObject carries, how they are kept in the sealed metadata, and how
//! they are returned (HEAD/GET with ChecksumMode, GetObjectAttributes).
//!
//! They describe plaintext, so they live only inside the sealed metadata
//! blob (FORMAT.md §Sealed metadata), never in clear at the provider, and
//! only values sealgate verified against the plaintext are stored.

use s3s::dto::{Checksum, ChecksumMode, ChecksumType};
use std::collections::BTreeMap;

/// The algorithms S3 knows, by their lower-case names (as in
/// `x-amz-checksum-NAME`), with the length of their base64 value.
pub(crate) const ALGORITHMS: &[(&str, usize)] = &[
    ("crc32", 8),
    ("crc32c", 8),
    ("crc64nvme", 12),
    ("sha1", 28),
    ("sha256", 44),
];

/// The field of `c` for algorithm `name` (any case).
pub(crate) fn field<'a>(c: &'a mut Checksum, name: &str) -> &'a mut Option<String> {
    match name.to_ascii_lowercase().as_str() {
        "crc32" => &mut c.checksum_crc32,
        "crc32c" => &mut c.checksum_crc32c,
        "crc64nvme" => &mut c.checksum_crc64nvme,
        "sha1" => &mut c.checksum_sha1,
        "sha256" => &mut c.checksum_sha256,
        other => unreachable!("unknown checksum algorithm {other}"),
    }
}

/// The values of `c`, by algorithm name (what the sealed metadata holds).
pub(crate) fn to_map(c: &Checksum) -> BTreeMap<String, String> {
    let mut c = c.clone();
    ALGORITHMS
        .iter()
        .filter_map(|(name, _)| field(&mut c, name).take().map(|v| ((*name).to_owned(), v)))
        .collect()
}

/// The stored checksums as S3 returns them, with their type: FULL_OBJECT
/// (every value sealgate stores describes the whole object). `None` when
/// the object has none.
pub(crate) fn from_map(m: &BTreeMap<String, String>) -> Option<Checksum> {
    let mut c = Checksum::default();
    for (name, _) in ALGORITHMS {
        if let Some(v) = m.get(*name) {
            *field(&mut c, name) = Some(v.clone());
        }
    }
    let any = ALGORITHMS.iter().any(|(name, _)| m.contains_key(*name));
    any.then(|| Checksum {
        checksum_type: Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT)),
        ..c
    })
}

/// Algorithms whose value a request announces for its trailer
/// (`x-amz-trailer: x-amz-checksum-NAME`), known only after the body.
pub(crate) fn announced_in_trailer(headers: &http::HeaderMap) -> Vec<&'static str> {
    let trailer = headers
        .get("x-amz-trailer")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    ALGORITHMS
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| {
            trailer
                .split(',')
                .any(|t| t.trim().strip_prefix("x-amz-checksum-") == Some(name))
        })
        .collect()
}

/// `m` with a placeholder of the right length for each algorithm in
/// `pending`: sealed, it is as large as the blob will be once the trailer's
/// values are known (to check the metadata budget before the upload).
pub(crate) fn with_placeholders(
    m: &BTreeMap<String, String>,
    pending: &[&str],
) -> BTreeMap<String, String> {
    let mut m = m.clone();
    for (name, len) in ALGORITHMS {
        if pending.contains(name) {
            m.entry((*name).to_owned())
                .or_insert_with(|| "A".repeat(*len));
        }
    }
    m
}

/// Whether a GetObject/HeadObject asked for checksums.
pub(crate) fn enabled(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED))
}

/// Sets the checksum fields of a GetObject, HeadObject or PutObject output
/// (they share the field names) from the stored checksums.
macro_rules! apply_checksums {
    ($out:expr, $stored:expr) => {{
        if let Some(c) = super::checksums::from_map($stored) {
            $out.checksum_crc32 = c.checksum_crc32;
            $out.checksum_crc32c = c.checksum_crc32c;
            $out.checksum_crc64nvme = c.checksum_crc64nvme;
            $out.checksum_sha1 = c.checksum_sha1;
            $out.checksum_sha256 = c.checksum_sha256;
            $out.checksum_type = c.checksum_type;
        }
    }};
}
pub(crate) use apply_checksums;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_round_trip_through_the_sealed_map() {
        let c = Checksum {
            checksum_crc32: Some("AAAAAA==".into()),
            checksum_sha256: Some("x".repeat(44)),
            ..Default::default()
        };
        let m = to_map(&c);
        assert_eq!(m.len(), 2);
        let back = from_map(&m).unwrap();
        assert_eq!(back.checksum_crc32, c.checksum_crc32);
        assert_eq!(back.checksum_sha256, c.checksum_sha256);
        assert_eq!(
            back.checksum_type.as_ref().map(|t| t.as_str()),
            Some("FULL_OBJECT")
        );
        assert!(from_map(&BTreeMap::new()).is_none());
    }

    #[test]
    fn trailer_announcements_and_placeholders() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-amz-trailer",
            "X-Amz-Checksum-CRC64NVME, x-amz-checksum-sha1"
                .parse()
                .unwrap(),
        );
        assert_eq!(announced_in_trailer(&h), vec!["crc64nvme", "sha1"]);
        let m = with_placeholders(&BTreeMap::new(), &["sha1"]);
        assert_eq!(m["sha1"].len(), 28);
        assert!(announced_in_trailer(&http::HeaderMap::new()).is_empty());
    }
}
