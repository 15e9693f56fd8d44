//! Property tests: every kind of damage a provider could do is detected, no
//! plaintext of a damaged segment is ever released, and no input panics.

use crate::common;

use common::*;
use proptest::prelude::*;
use sealgate::format::header::{HEADER_LEN, PartHeader};
use sealgate::format::stream::{NameCheck, ObjectOpener, open_all};
use sealgate::format::{Algorithm, FormatError, Kek, ObjectName, SEGMENT_LEN, metadata, size};
use std::sync::OnceLock;

const S: usize = SEGMENT_LEN;
const CT_SEG: usize = S + 16;

struct Sample {
    kek: Kek,
    pt: Vec<u8>,
    ct: Vec<u8>,
}

/// A 3-segment single-part object and a 3-part multipart object, sealed once.
fn samples() -> &'static (Sample, Sample) {
    static S1: OnceLock<(Sample, Sample)> = OnceLock::new();
    S1.get_or_init(|| {
        let k = kek(42);
        let pt = pattern(2 * S + 777);
        let (_, _, ct) = seal_parts(&k, Algorithm::Aes256Gcm, NAME, &[&pt]).unwrap();
        let single = Sample { kek: k, pt, ct };
        let k = kek(43);
        let parts = [pattern(S), pattern(2 * S), pattern(321)];
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        let (_, _, ct) = seal_parts(&k, Algorithm::ChaCha20Poly1305, NAME, &refs).unwrap();
        let multi = Sample {
            kek: k,
            pt: parts.concat(),
            ct,
        };
        (single, multi)
    })
}

/// Opens `ct` pushing in `chunk`-sized pieces; returns what was released and
/// the result. Released bytes must always be a prefix of the true plaintext.
fn open_chunked(
    k: &Kek,
    name: ObjectName<'_>,
    ct: &[u8],
    chunk: usize,
) -> (Vec<u8>, Result<(), FormatError>) {
    let mut o = ObjectOpener::new(k, NameCheck::Inline(name));
    let mut out = Vec::new();
    for c in ct.chunks(chunk.max(1)) {
        if let Err(e) = o.push(c, &mut out) {
            return (out, Err(e));
        }
    }
    (out, o.finish().map(|_| ()))
}

/// Plaintext offset at which the segment holding ciphertext byte `pos` of a
/// single-part object starts: nothing at or beyond it may be released.
fn damaged_segment_start(pos: usize) -> usize {
    if pos < HEADER_LEN {
        0
    } else {
        (pos - HEADER_LEN) / CT_SEG * S
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bit_flip_is_detected_and_damaged_segment_withheld(pos in 0usize..2 * S + 777 + 212 + 48, bit in 0u8..8, chunk in 1usize..100_000) {
        let s = &samples().0;
        let mut ct = s.ct.clone();
        let pos = pos % ct.len();
        ct[pos] ^= 1 << bit;
        let (out, r) = open_chunked(&s.kek, NAME, &ct, chunk);
        prop_assert!(r.is_err(), "flip at {pos} bit {bit} not detected");
        prop_assert!(out.len() <= damaged_segment_start(pos), "released {} bytes past damaged segment at {pos}", out.len());
        prop_assert_eq!(&out[..], &s.pt[..out.len()]);
    }

    #[test]
    fn any_truncation_is_detected(cut in 0usize..2 * S + 777 + 212 + 48, chunk in 1usize..100_000) {
        let s = &samples().0;
        let cut = cut % s.ct.len();
        let (out, r) = open_chunked(&s.kek, NAME, &s.ct[..cut], chunk);
        prop_assert!(r.is_err(), "truncation to {cut} not detected");
        prop_assert_eq!(&out[..], &s.pt[..out.len()]);
    }

    #[test]
    fn any_appended_data_is_detected(extra in proptest::collection::vec(any::<u8>(), 1..300)) {
        let s = &samples().0;
        let mut ct = s.ct.clone();
        ct.extend_from_slice(&extra);
        prop_assert!(open_all(&s.kek, NameCheck::Inline(NAME), &ct).is_err());
    }

    #[test]
    fn multipart_bit_flips_are_detected(pos in 0usize..(3 * S + 321 + 3 * 212 + 64), bit in 0u8..8) {
        let s = &samples().1;
        let mut ct = s.ct.clone();
        let pos = pos % ct.len();
        ct[pos] ^= 1 << bit;
        let (out, r) = open_chunked(&s.kek, NAME, &ct, 65_000);
        prop_assert!(r.is_err(), "flip at {pos} not detected");
        prop_assert_eq!(&out[..], &s.pt[..out.len()]);
    }

    #[test]
    fn wrong_names_are_rejected(bucket in "[a-z0-9.-]{3,20}", key in "\\PC{0,40}") {
        prop_assume!(bucket != NAME.bucket || key != NAME.key);
        let s = &samples().0;
        let name = ObjectName { bucket: &bucket, key: &key };
        prop_assert_eq!(open_all(&s.kek, NameCheck::Inline(name), &s.ct), Err(FormatError::BindingMismatch));
    }

    #[test]
    fn arbitrary_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600), prefix in any::<bool>()) {
        let s = &samples().0;
        // Either pure noise, or a valid header followed by noise.
        let mut input = if prefix { s.ct[..HEADER_LEN].to_vec() } else { Vec::new() };
        input.extend_from_slice(&data);
        prop_assert!(open_all(&s.kek, NameCheck::Skip, &input).is_err());
        let _ = PartHeader::parse(&data);
        let _ = size::part_plaintext_len(data.len() as u64 * 1_000_003);
        let text = String::from_utf8_lossy(&data);
        let (env, dek) = sealgate::format::Envelope::create(&s.kek, Algorithm::Aes256Gcm, &mut sealgate::format::OsRandom).unwrap();
        prop_assert!(metadata::open(&env, &dek, NAME, &text).is_err());
    }

    #[test]
    fn size_arithmetic_inverts(p in 0u64..(1u64 << 40)) {
        prop_assert_eq!(size::part_plaintext_len(size::part_ciphertext_len(p)), Ok(p));
    }
}

#[test]
fn swapped_segments_are_detected() {
    let s = &samples().0;
    let mut ct = s.ct.clone();
    let (a, b) = (HEADER_LEN, HEADER_LEN + CT_SEG);
    let first: Vec<u8> = ct[a..a + CT_SEG].to_vec();
    ct.copy_within(b..b + CT_SEG, a);
    ct[b..b + CT_SEG].copy_from_slice(&first);
    let (out, r) = open_chunked(&s.kek, NAME, &ct, 4096);
    assert_eq!(
        r,
        Err(FormatError::SegmentAuth {
            part: 1,
            segment: 0
        })
    );
    assert!(out.is_empty());
}

#[test]
fn truncation_at_a_segment_boundary_is_detected() {
    let s = &samples().0;
    let cut = HEADER_LEN + 2 * CT_SEG;
    let (out, r) = open_chunked(&s.kek, NAME, &s.ct[..cut], 4096);
    assert_eq!(r, Err(FormatError::Truncated { part: 1 }));
    assert_eq!(out, &s.pt[..2 * S], "the two intact segments are authentic");
}

#[test]
fn dropping_the_last_segment_and_relabelling_is_impossible() {
    // Without the key an attacker cannot produce a segment with the final flag.
    let s = &samples().0;
    let cut = HEADER_LEN + CT_SEG;
    assert!(open_all(&s.kek, NameCheck::Inline(NAME), &s.ct[..cut]).is_err());
}

#[test]
fn header_only_body_stripped() {
    let k = kek(5);
    let (_, _, ct) = seal_parts(&k, Algorithm::Aes256Gcm, NAME, &[b""]).unwrap();
    assert_eq!(ct.len(), HEADER_LEN + 16);
    assert!(
        open_all(&k, NameCheck::Inline(NAME), &ct)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        open_all(&k, NameCheck::Inline(NAME), &ct[..HEADER_LEN]),
        Err(FormatError::Truncated { part: 1 })
    );
}

#[test]
fn object_swapped_for_another_is_detected() {
    let k = kek(7);
    let other = ObjectName {
        bucket: "photos",
        key: "2026/11/dog.jpg",
    };
    let (_, _, cat) = seal_parts(&k, Algorithm::Aes256Gcm, NAME, &[b"cat"]).unwrap();
    let (_, _, dog) = seal_parts(&k, Algorithm::Aes256Gcm, other, &[b"dog"]).unwrap();
    // The provider serves dog's bytes (header and all) when cat is read.
    assert_eq!(
        open_all(&k, NameCheck::Inline(NAME), &dog),
        Err(FormatError::BindingMismatch)
    );
    assert_eq!(
        open_all(&k, NameCheck::Inline(other), &cat),
        Err(FormatError::BindingMismatch)
    );
}

#[test]
fn unknown_and_wrong_keys_are_typed_errors() {
    let s = &samples().0;
    let stranger = kek(99);
    assert!(matches!(
        open_all(&stranger, NameCheck::Inline(NAME), &s.ct),
        Err(FormatError::UnknownKey(id)) if id == s.kek.id()
    ));
    let impostor = Kek::new(s.kek.id(), zeroize::Zeroizing::new([7u8; 32]));
    assert_eq!(
        open_all(&impostor, NameCheck::Inline(NAME), &s.ct),
        Err(FormatError::UnwrapFailed)
    );
}

#[test]
fn header_field_edits_are_typed_errors() {
    let s = &samples().0;
    let edit = |off: usize, val: u8| {
        let mut ct = s.ct.clone();
        ct[off] = val;
        open_all(&s.kek, NameCheck::Inline(NAME), &ct)
    };
    assert_eq!(edit(0, b'X'), Err(FormatError::NotSealed));
    assert_eq!(edit(8, 2), Err(FormatError::UnsupportedVersion(2)));
    assert_eq!(edit(9, 0x09), Err(FormatError::UnknownAlgorithm(0x09)));
    assert_eq!(
        edit(9, 0x02),
        Err(FormatError::UnwrapFailed),
        "algorithm is bound into the wrap"
    );
    assert_eq!(edit(10, 20), Err(FormatError::UnsupportedSegmentSize(20)));
    assert_eq!(edit(11, 1), Err(FormatError::UnsupportedFlags(1)));
    assert_eq!(
        edit(107, 2),
        Err(FormatError::PartMismatch { part: 2 }),
        "objects start at part 1"
    );
    assert_eq!(
        edit(115, 0),
        Err(FormatError::CommitmentMismatch),
        "length is committed"
    );
    assert_eq!(edit(150, 0), Err(FormatError::BindingMismatch));
}

#[test]
fn multipart_reorder_drop_and_splice_are_detected() {
    let s = &samples().1;
    let p1 = HEADER_LEN + CT_SEG;
    let p2 = HEADER_LEN + 2 * CT_SEG;
    let (a, b, c) = (&s.ct[..p1], &s.ct[p1..p1 + p2], &s.ct[p1 + p2..]);
    let swapped = [a, c, b].concat();
    assert_eq!(
        open_all(&s.kek, NameCheck::Inline(NAME), &swapped),
        Err(FormatError::PartMismatch { part: 3 })
    );
    // Relabelling part 3 as part 2 breaks its commitment.
    let mut relabelled = c.to_vec();
    relabelled[107] = 2;
    assert_eq!(
        open_all(&s.kek, NameCheck::Inline(NAME), &[a, &relabelled].concat()),
        Err(FormatError::CommitmentMismatch)
    );
    let duplicated = [a, b, b, c].concat();
    assert!(open_all(&s.kek, NameCheck::Inline(NAME), &duplicated).is_err());
    // A part of another object under the same key (same part number, same
    // size) spliced in: its envelope differs.
    let parts = [pattern(S), pattern(2 * S), pattern(321)];
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    let (_, _, other) = seal_parts(&s.kek, Algorithm::ChaCha20Poly1305, NAME, &refs).unwrap();
    let spliced = [a, &other[p1..p1 + p2], c].concat();
    assert!(matches!(
        open_all(&s.kek, NameCheck::Inline(NAME), &spliced),
        Err(FormatError::PartMismatch { part: 2 })
    ));
    // Dropping a middle part: numbering must be contiguous.
    let dropped = [a, c].concat();
    assert_eq!(
        open_all(&s.kek, NameCheck::Inline(NAME), &dropped),
        Err(FormatError::PartMismatch { part: 3 })
    );
    // An object must start with part 1.
    assert_eq!(
        open_all(&s.kek, NameCheck::Inline(NAME), &[b, c].concat()),
        Err(FormatError::PartMismatch { part: 2 })
    );
}
