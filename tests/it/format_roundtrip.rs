//! Round trips, sizes, ranges and multipart layouts of the object format.

use crate::common;

use common::*;
use sealgate::format::header::{HEADER_LEN, PartHeader, PartKind};
use sealgate::format::size::{self, ByteRange};
use sealgate::format::stream::{
    NameCheck, ObjectOpener, PartOpener, PartSealer, open_all, seal_single,
};
use sealgate::format::{Algorithm, Envelope, FormatError, OsRandom, SEGMENT_LEN};

const S: usize = SEGMENT_LEN;
const SIZES: &[usize] = &[
    0,
    1,
    15,
    16,
    17,
    S - 1,
    S,
    S + 1,
    2 * S - 1,
    2 * S,
    2 * S + 1,
    7 * S + 4321,
];

#[test]
fn single_part_round_trip_at_every_boundary() {
    let k = kek(1);
    for alg in [Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305] {
        for &len in SIZES {
            let pt = pattern(len);
            let (_, _, ct) = seal_parts(&k, alg, NAME, &[&pt]).unwrap();
            assert_eq!(
                ct.len() as u64,
                size::part_ciphertext_len(len as u64),
                "{alg} len={len}"
            );
            assert_eq!(size::part_plaintext_len(ct.len() as u64), Ok(len as u64));
            assert_eq!(
                open_all(&k, NameCheck::Inline(NAME), &ct).unwrap(),
                pt,
                "{alg} len={len}"
            );
        }
    }
}

#[test]
fn opener_accepts_any_chunking() {
    let k = kek(2);
    let pt = pattern(3 * S + 99);
    let (_, _, ct) = seal_parts(&k, Algorithm::Aes256Gcm, NAME, &[&pt]).unwrap();
    for chunk in [1, 13, HEADER_LEN, S, S + 16, ct.len()] {
        let mut o = ObjectOpener::new(&k, NameCheck::Inline(NAME));
        let mut out = Vec::new();
        for c in ct.chunks(chunk) {
            o.push(c, &mut out).unwrap();
        }
        let opened = o.finish().unwrap();
        assert_eq!(out, pt, "chunk={chunk}");
        assert_eq!((opened.parts, opened.plaintext_len), (1, pt.len() as u64));
    }
}

#[test]
fn multipart_layouts_round_trip_and_sizes_invert() {
    let k = kek(3);
    // Aligned parts like the aws CLI (8 MiB) scaled down to segment multiples,
    // a short last part, and an empty-to-tiny last part.
    let layouts: &[&[usize]] = &[
        &[S, S, 10],
        &[2 * S, 2 * S, 2 * S],
        &[3 * S, 1],
        &[S],
        &[4 * S, 4 * S, 3 * S + 7],
    ];
    for layout in layouts {
        let data: Vec<Vec<u8>> = layout
            .iter()
            .enumerate()
            .map(|(i, &l)| vec![i as u8 + 1; l])
            .collect();
        let parts: Vec<&[u8]> = data.iter().map(|v| v.as_slice()).collect();
        let (_, _, ct) = seal_parts(&k, Algorithm::Aes256Gcm, NAME, &parts).unwrap();
        let total: usize = layout.iter().sum();
        assert_eq!(
            size::object_plaintext_len(ct.len() as u64, layout.len() as u32),
            Ok(total as u64),
            "layout {layout:?}"
        );
        assert_eq!(
            open_all(&k, NameCheck::Inline(NAME), &ct).unwrap(),
            data.concat()
        );
    }
}

#[test]
fn unaligned_middle_parts_still_decrypt_but_listing_size_is_not_exact() {
    // Documented limit (FORMAT.md §Sizes): 5,000,000-byte style parts.
    let k = kek(4);
    let a = pattern(S + 5);
    let b = pattern(100);
    let (_, _, ct) = seal_parts(&k, Algorithm::Aes256Gcm, NAME, &[&a, &b]).unwrap();
    assert_eq!(
        open_all(&k, NameCheck::Inline(NAME), &ct).unwrap(),
        [a.clone(), b].concat()
    );
    assert_ne!(
        size::object_plaintext_len(ct.len() as u64, 2),
        Ok((a.len() + 100) as u64)
    );
}

#[test]
fn every_range_decrypts_exactly_and_touches_only_covering_segments() {
    let k = kek(5);
    let len = 3 * S + 1000;
    let pt = pattern(len);
    let (env, dek, ct) = seal_parts(&k, Algorithm::ChaCha20Poly1305, NAME, &[&pt]).unwrap();
    let header = PartHeader::parse(&ct).unwrap();
    let ranges = [
        ByteRange::FromTo(0, 0),
        ByteRange::FromTo(5, 17),
        ByteRange::FromTo(S as u64 - 1, S as u64),
        ByteRange::FromTo(S as u64, 2 * S as u64 - 1),
        ByteRange::From(2 * S as u64 + 3),
        ByteRange::Suffix(1),
        ByteRange::Suffix(S as u64 + 2),
        ByteRange::FromTo(10, u64::MAX),
    ];
    for r in ranges {
        let (start, end) = r.resolve(len as u64).unwrap();
        let span = size::part_span(len as u64, start, end).unwrap();
        // Give the opener only the covering ciphertext: proves nothing else is read.
        let slice = &ct[span.ciphertext_start as usize..span.ciphertext_end as usize];
        let needed = (span.last_segment - span.first_segment + 1) as usize;
        assert!(slice.len() <= needed * (S + 16), "{r:?} fetched too much");
        let cipher = header.verify(&dek).unwrap();
        let mut o = PartOpener::for_span(&header, cipher, &span);
        let mut out = Vec::new();
        assert_eq!(o.push(slice, &mut out).unwrap(), slice.len());
        o.finish().unwrap();
        assert_eq!(out, &pt[start as usize..end as usize], "{r:?}");
        let _ = &env;
    }
    assert_eq!(
        ByteRange::From(len as u64).resolve(len as u64),
        Err(FormatError::RangeNotSatisfiable)
    );
}

#[test]
fn uniform_layout_finds_parts_from_first_header() {
    let k = kek(6);
    let layout = [2 * S, 2 * S, 2 * S, 77];
    let data: Vec<Vec<u8>> = layout.iter().map(|&l| pattern(l)).collect();
    let parts: Vec<&[u8]> = data.iter().map(|v| v.as_slice()).collect();
    let (_, dek, ct) = seal_parts(&k, Algorithm::Aes256Gcm, NAME, &parts).unwrap();
    let first = PartHeader::parse(&ct).unwrap();
    for i in 0..layout.len() as u32 {
        let (off, pt_off, len) =
            size::uniform_part_position(first.plaintext_len, 4, ct.len() as u64, i).unwrap();
        let h = PartHeader::parse(&ct[off as usize..]).unwrap();
        assert_eq!((h.part_number, h.plaintext_len), (i + 1, len));
        assert_eq!(pt_off, (i as u64) * 2 * S as u64);
        h.verify(&dek).unwrap();
    }
}

#[test]
fn sealer_refuses_wrong_lengths() {
    let k = kek(7);
    let (env, dek) = Envelope::create(&k, Algorithm::Aes256Gcm, &mut OsRandom).unwrap();
    let tag = env.binding_tag(&dek, NAME);
    let (mut s, _) =
        PartSealer::start(&env, &dek, tag, (1, PartKind::Last), 10, &mut OsRandom).unwrap();
    let mut out = Vec::new();
    assert!(matches!(
        s.push(&[0; 11], &mut out),
        Err(FormatError::LengthMismatch { .. })
    ));
    let (mut s, _) =
        PartSealer::start(&env, &dek, tag, (1, PartKind::Last), 10, &mut OsRandom).unwrap();
    s.push(&[0; 9], &mut out).unwrap();
    assert!(matches!(
        s.finish(&mut out),
        Err(FormatError::LengthMismatch {
            declared: 10,
            got: 9
        })
    ));
    assert!(matches!(
        PartSealer::start(&env, &dek, tag, (0, PartKind::Last), 1, &mut OsRandom),
        Err(FormatError::InvalidPartNumber(0))
    ));
}

#[test]
fn reuploading_a_part_never_reuses_a_content_key() {
    // Same object, same part number, same length: the stream salt differs, so
    // the keystream differs (no nonce reuse under one key).
    let k = kek(8);
    let (env, dek) = Envelope::create(&k, Algorithm::Aes256Gcm, &mut OsRandom).unwrap();
    let tag = env.binding_tag(&dek, NAME);
    let seal = |pt: &[u8]| {
        let (mut s, h) = PartSealer::start(
            &env,
            &dek,
            tag,
            (3, PartKind::Data),
            pt.len() as u64,
            &mut OsRandom,
        )
        .unwrap();
        let mut out = h.to_vec();
        s.push(pt, &mut out).unwrap();
        s.finish(&mut out).unwrap();
        out
    };
    let a = seal(&[0u8; 64]);
    let b = seal(&[0u8; 64]);
    assert_ne!(a[116..148], b[116..148], "stream salts must differ");
    assert_ne!(
        a[HEADER_LEN..],
        b[HEADER_LEN..],
        "ciphertexts of equal plaintexts must differ"
    );
}

#[test]
fn metadata_seals_and_rejects_tampering() {
    use sealgate::format::metadata::{self, ObjectMetadata};
    let k = kek(9);
    let (env, dek) = Envelope::create(&k, Algorithm::ChaCha20Poly1305, &mut OsRandom).unwrap();
    let mut m = ObjectMetadata::default();
    m.user.insert("project".into(), "secret-codename".into());
    m.headers.insert("content-type".into(), "image/jpeg".into());
    let text = metadata::seal(&env, &dek, NAME, &m, &mut OsRandom).unwrap();
    assert!(!text.contains("secret"), "metadata must not be readable");
    assert_eq!(metadata::open(&env, &dek, NAME, &text).unwrap(), m);
    // Bound to the name: the same blob on a copy elsewhere is refused.
    let elsewhere = sealgate::format::ObjectName {
        bucket: NAME.bucket,
        key: "copy-elsewhere.jpg",
    };
    assert!(metadata::open(&env, &dek, elsewhere, &text).is_err());
    // Flip one character of the base64.
    let mut bad = text.clone().into_bytes();
    bad[20] = if bad[20] == b'A' { b'B' } else { b'A' };
    assert!(metadata::open(&env, &dek, NAME, std::str::from_utf8(&bad).unwrap()).is_err());
    // Another object's key cannot open it.
    let (env2, dek2) = Envelope::create(&k, Algorithm::ChaCha20Poly1305, &mut OsRandom).unwrap();
    assert!(metadata::open(&env2, &dek2, NAME, &text).is_err());
}

#[test]
fn copied_object_opens_with_metadata_binding_only() {
    let k = kek(10);
    let pt = pattern(1000);
    let (env, dek) = Envelope::create(&k, Algorithm::Aes256Gcm, &mut OsRandom).unwrap();
    let ct = seal_single(&env, &dek, NAME, &pt, &mut OsRandom).unwrap();
    let dest = sealgate::format::ObjectName {
        bucket: "archive",
        key: "cat-copy.jpg",
    };
    let new_tag = env.binding_tag(&dek, dest);
    assert_eq!(
        open_all(&k, NameCheck::Tag(dest, new_tag), &ct).unwrap(),
        pt
    );
    assert_eq!(
        open_all(&k, NameCheck::Inline(dest), &ct),
        Err(FormatError::BindingMismatch),
        "without its metadata tag the copy must not pass as bound to the new name"
    );
    assert_eq!(
        open_all(&k, NameCheck::Tag(NAME, new_tag), &ct),
        Err(FormatError::BindingMismatch)
    );
}

#[test]
fn sealed_checksums_are_an_optional_member_older_readers_ignore() {
    use sealgate::format::metadata::{self, ObjectMetadata};
    // What a reader before the member knew (FORMAT.md §Sealed metadata:
    // readers ignore unknown members).
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Before {
        user: std::collections::BTreeMap<String, String>,
        headers: std::collections::BTreeMap<String, String>,
    }
    let mut m = ObjectMetadata::default();
    m.headers.insert("content-type".into(), "text/plain".into());
    // No checksums: no member, so such blobs (and the committed vectors)
    // keep their exact bytes.
    let json = serde_json::to_value(&m).unwrap();
    assert!(json.get("checksums").is_none(), "{json}");
    // With one: sealed, opened back, and readable by an older reader.
    m.checksums.insert(
        "sha256".into(),
        "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=".into(),
    );
    let json = serde_json::to_vec(&m).unwrap();
    let old: Before = serde_json::from_slice(&json).unwrap();
    assert_eq!(old.headers, m.headers);
    let back: ObjectMetadata = serde_json::from_slice(br#"{"user":{},"headers":{}}"#).unwrap();
    assert!(back.checksums.is_empty());
    let k = kek(11);
    let (env, dek) = Envelope::create(&k, Algorithm::Aes256Gcm, &mut OsRandom).unwrap();
    let text = metadata::seal(&env, &dek, NAME, &m, &mut OsRandom).unwrap();
    assert!(!text.contains("n4bQ"), "checksums must not be readable");
    assert_eq!(metadata::open(&env, &dek, NAME, &text).unwrap(), m);
}
