//! Committed test vectors (tests/vectors/*.json) pin the format forever.
//!
//! `cargo test --test vectors` checks every committed vector: positive ones
//! must decode to their plaintext and re-seal bit for bit from their recorded
//! inputs; `fail` ones must be rejected. The same files feed the independent
//! Python decoder (tests/interop/decode.py).
//!
//! `cargo test --test vectors -- --ignored write_missing_vectors` writes
//! vectors that do not exist yet. It never rewrites an existing file: a
//! change that would alter a committed vector is a format change and needs a
//! new version.

use crate::common;

use common::pattern;
use sealgate::format::header::{PartHeader, PartKind};
use sealgate::format::metadata::{self, METADATA_V1, METADATA_VERSION, ObjectMetadata};
use sealgate::format::stream::{NameCheck, PartSealer, open_all};
use sealgate::format::{
    Algorithm, Envelope, FORMAT_V1, FORMAT_V3, FormatError, Kek, KeyId, ObjectName, RandomSource,
    SEGMENT_LEN,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const S: usize = SEGMENT_LEN;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KekJson {
    id: String,
    key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartInput {
    part_number: u32,
    stream_salt: String,
    plaintext_len: u64,
    /// Version 3: `data`, `last` or `completion` (absent in version 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
}

impl PartInput {
    fn part_kind(&self) -> PartKind {
        match self.kind.as_deref() {
            None | Some("data") => PartKind::Data,
            Some("last") => PartKind::Last,
            Some("completion") => PartKind::Completion,
            Some(other) => panic!("unknown part kind {other:?}"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Inputs {
    /// Name the object was sealed for (its inline binding).
    bucket: String,
    key: String,
    dek: String,
    object_id: String,
    wrap_nonce: String,
    parts: Vec<PartInput>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MetaVector {
    blob_salt: String,
    plaintext: ObjectMetadata,
    sealed: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Vector {
    vector: String,
    description: String,
    format_version: u8,
    expect: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure: Option<String>,
    algorithm: String,
    keks: Vec<KekJson>,
    /// Name the object is read under.
    bucket: String,
    key: String,
    /// Binding tag from S3 metadata (objects written by a server-side copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    binding: Option<String>,
    inputs: Inputs,
    plaintext_len: u64,
    /// Plaintext in hex; when absent the plaintext is byte i = i mod 251.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plaintext_hex: Option<String>,
    ciphertext: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metadata: Option<MetaVector>,
}

impl Vector {
    fn plaintext(&self) -> Vec<u8> {
        match &self.plaintext_hex {
            Some(h) => hex::decode(h).unwrap(),
            None => pattern(self.plaintext_len as usize),
        }
    }
    fn keks(&self) -> Vec<Kek> {
        self.keks
            .iter()
            .map(|k| {
                let mut key = Zeroizing::new([0u8; 32]);
                hex::decode_to_slice(&k.key, key.as_mut()).unwrap();
                Kek::new(KeyId::from_hex(&k.id).unwrap(), key)
            })
            .collect()
    }
    /// Decodes the vector as the gateway would; any error rejects it.
    fn open(&self) -> Result<(Vec<u8>, Option<ObjectMetadata>), FormatError> {
        let keks = self.keks();
        let name = ObjectName {
            bucket: &self.bucket,
            key: &self.key,
        };
        let check = match &self.binding {
            Some(t) => NameCheck::Tag(name, hex::decode(t).unwrap().try_into().unwrap()),
            None => NameCheck::Inline(name),
        };
        let ct = hex::decode(&self.ciphertext).unwrap();
        let pt = open_all(keks.as_slice(), check, &ct)?;
        let meta = match &self.metadata {
            Some(m) => {
                let env = Envelope::parse(&ct)?;
                let dek = env.open(keks.as_slice())?;
                Some(metadata::open(&env, &dek, name, &m.sealed)?)
            }
            None => None,
        };
        Ok((pt, meta))
    }
}

/// Replays recorded random values in the order the format asks for them.
struct Replay(VecDeque<Vec<u8>>);

impl RandomSource for Replay {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), FormatError> {
        let v = self
            .0
            .pop_front()
            .expect("vector recorded too few random values");
        assert_eq!(
            v.len(),
            buf.len(),
            "recorded random value has the wrong length"
        );
        buf.copy_from_slice(&v);
        Ok(())
    }
}

/// Seals from recorded inputs; returns (ciphertext hex, sealed metadata).
fn seal(
    (alg, version): (Algorithm, u8),
    kek: &Kek,
    inputs: &Inputs,
    parts: &[Vec<u8>],
    meta: Option<(&str, &ObjectMetadata, ObjectName<'_>)>,
) -> (String, Option<String>) {
    let mut rng = Replay(
        [&inputs.dek, &inputs.object_id, &inputs.wrap_nonce]
            .into_iter()
            .chain(inputs.parts.iter().map(|p| &p.stream_salt))
            .chain(meta.as_ref().map(|m| m.0.to_owned()).as_ref())
            .map(|h| hex::decode(h).unwrap())
            .collect(),
    );
    let (env, dek) = Envelope::create_version(kek, alg, version, &mut rng).unwrap();
    let name = ObjectName {
        bucket: &inputs.bucket,
        key: &inputs.key,
    };
    let tag = env.binding_tag(&dek, name);
    let mut out = Vec::new();
    let mut total = 0u64;
    for (p, data) in inputs.parts.iter().zip(parts) {
        if p.part_kind() == PartKind::Completion {
            let mut salt = [0u8; 32];
            rng.fill(&mut salt).unwrap();
            let record =
                PartHeader::completion(env.clone(), &dek, tag, p.part_number, total, salt).unwrap();
            out.extend_from_slice(&record.to_bytes());
            continue;
        }
        let (mut s, h) = PartSealer::start(
            &env,
            &dek,
            tag,
            (p.part_number, p.part_kind()),
            data.len() as u64,
            &mut rng,
        )
        .unwrap();
        out.extend_from_slice(&h);
        s.push(data, &mut out).unwrap();
        s.finish(&mut out).unwrap();
        total += data.len() as u64;
    }
    let blob_version = if version == FORMAT_V1 {
        METADATA_V1
    } else {
        METADATA_VERSION
    };
    // The metadata is bound to the name it is read under (a copy's own).
    let sealed = meta.map(|(_, m, read_as)| {
        metadata::seal_version(&env, &dek, read_as, m, blob_version, &mut rng).unwrap()
    });
    assert!(
        rng.0.is_empty(),
        "vector recorded more random values than used"
    );
    (hex::encode(out), sealed)
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn load_all() -> Vec<Vector> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            serde_json::from_slice(&std::fs::read(p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

#[test]
fn committed_vectors_decode_and_reseal_exactly() {
    let vectors = load_all();
    let ok = vectors.iter().filter(|v| v.expect == "ok").count();
    let fail = vectors.iter().filter(|v| v.expect == "fail").count();
    assert!(
        ok >= 14 && fail >= 20,
        "expected the full committed set, found {ok} ok and {fail} fail"
    );
    for alg in ["AES-256-GCM", "ChaCha20-Poly1305"] {
        assert!(
            vectors
                .iter()
                .any(|v| v.algorithm == alg && v.expect == "ok"),
            "no {alg} vector"
        );
    }
    for v in &vectors {
        match v.expect.as_str() {
            "ok" => {
                let (pt, meta) = v.open().unwrap_or_else(|e| panic!("{}: {e}", v.vector));
                assert_eq!(pt, v.plaintext(), "{}: plaintext", v.vector);
                assert_eq!(pt.len() as u64, v.plaintext_len);
                assert_eq!(
                    meta.as_ref(),
                    v.metadata.as_ref().map(|m| &m.plaintext),
                    "{}: metadata",
                    v.vector
                );
                // Re-seal from the recorded inputs: the bytes must be identical.
                let alg = Algorithm::from_name(&v.algorithm).unwrap();
                let keks = v.keks();
                let kek = keks
                    .iter()
                    .find(|k| v.ciphertext[24..56] == k.id().to_string())
                    .unwrap();
                let parts = split_parts(&v.plaintext(), &v.inputs.parts);
                let (ct, sealed) = seal(
                    (alg, v.format_version),
                    kek,
                    &v.inputs,
                    &parts,
                    v.metadata.as_ref().map(|m| {
                        let read_as = ObjectName {
                            bucket: &v.bucket,
                            key: &v.key,
                        };
                        (m.blob_salt.as_str(), &m.plaintext, read_as)
                    }),
                );
                assert_eq!(
                    ct, v.ciphertext,
                    "{}: re-sealed ciphertext differs: the format changed",
                    v.vector
                );
                assert_eq!(
                    sealed,
                    v.metadata.as_ref().map(|m| m.sealed.clone()),
                    "{}: sealed metadata differs",
                    v.vector
                );
            }
            "fail" => {
                let err = v
                    .open()
                    .expect_err(&format!("{}: damaged vector was accepted", v.vector));
                assert_eq!(
                    Some(category(&err)),
                    v.failure.as_deref(),
                    "{}: failed for another reason: {err}",
                    v.vector
                );
            }
            other => panic!("{}: unknown expect {other:?}", v.vector),
        }
    }
}

/// The failure category a vector names (shared wording with decode.py).
fn category(e: &FormatError) -> &'static str {
    match e {
        FormatError::NotSealed => "not sealed",
        FormatError::TruncatedHeader { .. } => "truncated header",
        FormatError::UnsupportedVersion(_) => "unsupported version",
        FormatError::UnknownAlgorithm(_) => "unknown algorithm",
        FormatError::UnknownKey(_) => "unknown key",
        FormatError::UnwrapFailed => "unwrap failed",
        FormatError::CommitmentMismatch => "commitment mismatch",
        FormatError::BindingMismatch => "binding mismatch",
        FormatError::SegmentAuth { .. } => "segment authentication",
        FormatError::Truncated { .. } => "truncated",
        FormatError::TrailingData { .. } => "trailing data",
        FormatError::PartMismatch { .. } => "part mismatch",
        FormatError::Metadata(_) => "metadata authentication",
        FormatError::CompletionMissing { .. } => "completion missing",
        FormatError::CompletionMismatch(_) => "completion mismatch",
        FormatError::UnknownPartKind(_) => "unknown part kind",
        _ => "other",
    }
}

fn split_parts(pt: &[u8], parts: &[PartInput]) -> Vec<Vec<u8>> {
    let mut off = 0;
    parts
        .iter()
        .map(|p| {
            let d = pt[off..off + p.plaintext_len as usize].to_vec();
            off += p.plaintext_len as usize;
            d
        })
        .collect()
}

// ---------------------------------------------------------------- generator

/// Deterministic "random" bytes for a vector: SHA-256(name ‖ label), cut.
fn det(name: &str, label: &str, len: usize) -> String {
    let d = Sha256::digest(format!("sealgate test vector/{name}/{label}"));
    let mut v = d.to_vec();
    while v.len() < len {
        v.extend_from_slice(&Sha256::digest(&v));
    }
    hex::encode(&v[..len])
}

fn kek_json(name: &str) -> KekJson {
    KekJson {
        id: det(name, "kek-id", 16),
        key: det(name, "kek", 32),
    }
}

struct Spec<'a> {
    name: &'a str,
    description: &'a str,
    alg: Algorithm,
    parts: Vec<Vec<u8>>,
    text: bool,
    sealed_for: (&'a str, &'a str),
    meta: Option<ObjectMetadata>,
    /// Format version; version 3 marks the last data part, or adds a
    /// completion record when `record` is set.
    version: u8,
    record: bool,
}

fn build(spec: Spec<'_>) -> Vector {
    let kj = kek_json("primary");
    let kek = Vector {
        keks: vec![kj.clone()],
        ..blank()
    }
    .keks()
    .remove(0);
    let inputs = Inputs {
        bucket: spec.sealed_for.0.into(),
        key: spec.sealed_for.1.into(),
        dek: det(spec.name, "dek", 32),
        object_id: det(spec.name, "object-id", 16),
        wrap_nonce: det(spec.name, "wrap-nonce", 12),
        parts: spec
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| PartInput {
                part_number: i as u32 + 1,
                stream_salt: det(spec.name, &format!("stream-salt-{}", i + 1), 32),
                plaintext_len: p.len() as u64,
                kind: (spec.version != FORMAT_V1).then(|| {
                    if i + 1 == spec.parts.len() && !spec.record {
                        "last".into()
                    } else {
                        "data".into()
                    }
                }),
            })
            .chain(spec.record.then(|| PartInput {
                part_number: spec.parts.len() as u32 + 1,
                stream_salt: det(spec.name, "completion-salt", 32),
                plaintext_len: 0,
                kind: Some("completion".into()),
            }))
            .collect(),
    };
    let mut spec = spec;
    if spec.record {
        spec.parts.push(Vec::new());
    }
    let blob_salt = det(spec.name, "metadata-salt", 32);
    let (ct, sealed) = seal(
        (spec.alg, spec.version),
        &kek,
        &inputs,
        &spec.parts,
        spec.meta.as_ref().map(|m| {
            let read_as = ObjectName {
                bucket: spec.sealed_for.0,
                key: spec.sealed_for.1,
            };
            (blob_salt.as_str(), m, read_as)
        }),
    );
    let pt = spec.parts.concat();
    Vector {
        vector: spec.name.into(),
        description: spec.description.into(),
        format_version: spec.version,
        expect: "ok".into(),
        failure: None,
        algorithm: spec.alg.name().into(),
        keks: vec![kj],
        bucket: spec.sealed_for.0.into(),
        key: spec.sealed_for.1.into(),
        binding: None,
        inputs,
        plaintext_len: pt.len() as u64,
        plaintext_hex: spec.text.then(|| hex::encode(&pt)),
        ciphertext: ct,
        metadata: spec.meta.map(|m| MetaVector {
            blob_salt,
            plaintext: m,
            sealed: sealed.unwrap(),
        }),
    }
}

fn blank() -> Vector {
    Vector {
        vector: String::new(),
        description: String::new(),
        format_version: 1,
        expect: "ok".into(),
        failure: None,
        algorithm: String::new(),
        keks: vec![],
        bucket: String::new(),
        key: String::new(),
        binding: None,
        inputs: Inputs {
            bucket: String::new(),
            key: String::new(),
            dek: String::new(),
            object_id: String::new(),
            wrap_nonce: String::new(),
            parts: vec![],
        },
        plaintext_len: 0,
        plaintext_hex: None,
        ciphertext: String::new(),
        metadata: None,
    }
}

fn fail(
    base: &Vector,
    name: &str,
    description: &str,
    failure: &str,
    edit: impl FnOnce(&mut Vector, &mut Vec<u8>),
) -> Vector {
    let mut v = base.clone();
    let mut ct = hex::decode(&v.ciphertext).unwrap();
    edit(&mut v, &mut ct);
    v.ciphertext = hex::encode(ct);
    v.vector = name.into();
    v.description = description.into();
    v.expect = "fail".into();
    v.failure = Some(failure.into());
    v
}

fn all_vectors() -> Vec<Vector> {
    const B: &str = "sealgate-vectors";
    const AES: Algorithm = Algorithm::Aes256Gcm;
    const CHA: Algorithm = Algorithm::ChaCha20Poly1305;
    let one = |name, description, alg, len: usize, text: Option<&[u8]>| {
        build(Spec {
            name,
            description,
            alg,
            parts: vec![text.map(|t| t.to_vec()).unwrap_or_else(|| pattern(len))],
            text: text.is_some(),
            sealed_for: (B, "objects/sample.bin"),
            meta: None,
            version: FORMAT_V1,
            record: false,
        })
    };
    let mut meta = ObjectMetadata::default();
    meta.user.insert("project".into(), "apollo".into());
    meta.headers
        .insert("content-type".into(), "text/plain; charset=utf-8".into());

    let empty = one(
        "aes-256-gcm-empty",
        "Empty object: header and one empty final segment.",
        AES,
        0,
        Some(b""),
    );
    let byte = one(
        "aes-256-gcm-one-byte",
        "One byte of plaintext.",
        AES,
        0,
        Some(b"x"),
    );
    let hello = build(Spec {
        name: "aes-256-gcm-hello-with-metadata",
        description: "Short text with sealed user metadata and content type.",
        alg: AES,
        parts: vec![b"hello, sealgate\n".to_vec()],
        text: true,
        sealed_for: (B, "greetings/hello.txt"),
        meta: Some(meta),
        version: FORMAT_V1,
        record: false,
    });
    let seg_m1 = one(
        "aes-256-gcm-segment-minus-one",
        "65535 bytes: one short final segment.",
        AES,
        S - 1,
        None,
    );
    let seg = one(
        "aes-256-gcm-segment",
        "Exactly 65536 bytes: one full final segment.",
        AES,
        S,
        None,
    );
    let seg_p1 = one(
        "aes-256-gcm-segment-plus-one",
        "65537 bytes: a full segment and a 1-byte final segment.",
        AES,
        S + 1,
        None,
    );
    let three = one(
        "aes-256-gcm-three-segments",
        "2 full segments and a 1000-byte final segment.",
        AES,
        2 * S + 1000,
        None,
    );
    let cha_hello = one(
        "chacha20-poly1305-hello",
        "Short text under ChaCha20-Poly1305.",
        CHA,
        0,
        Some(b"hello, chacha\n"),
    );
    let cha_seg = one(
        "chacha20-poly1305-segment-plus-one",
        "65537 bytes under ChaCha20-Poly1305.",
        CHA,
        S + 1,
        None,
    );
    let multi = build(Spec {
        name: "aes-256-gcm-multipart-3",
        description: "Multipart object: parts of 65536, 65536 and 300 bytes, numbered 1..3.",
        alg: AES,
        parts: vec![
            pattern(S),
            pattern(2 * S)[S..].to_vec(),
            pattern(2 * S + 300)[2 * S..].to_vec(),
        ],
        text: false,
        sealed_for: (B, "big/multipart.bin"),
        meta: None,
        version: FORMAT_V1,
        record: false,
    });
    let cha_multi = build(Spec {
        name: "chacha20-poly1305-multipart-2",
        description: "Multipart object: parts of 131072 and 1 bytes under ChaCha20-Poly1305.",
        alg: CHA,
        parts: vec![pattern(2 * S), pattern(2 * S + 1)[2 * S..].to_vec()],
        text: false,
        sealed_for: (B, "big/multipart-chacha.bin"),
        meta: None,
        version: FORMAT_V1,
        record: false,
    });
    let unicode = build(Spec {
        name: "aes-256-gcm-unicode-key",
        description: "Object key with non-ASCII characters and spaces (binding uses UTF-8 bytes).",
        alg: AES,
        parts: vec![b"r\xc3\xa9sum\xc3\xa9".to_vec()],
        text: true,
        sealed_for: (B, "données/résumé 2026 ✓.pdf"),
        meta: None,
        version: FORMAT_V1,
        record: false,
    });
    // Server-side copy: inline binding names the source, S3 metadata carries
    // the tag for the destination.
    let mut copied = build(Spec {
        name: "aes-256-gcm-copied-object",
        description: "Object copied server-side to archive/copy.txt: read with the binding tag from S3 metadata.",
        alg: AES,
        parts: vec![b"copied without re-encryption\n".to_vec()],
        text: true,
        sealed_for: (B, "original.txt"),
        meta: None,
        version: FORMAT_V1,
        record: false,
    });
    {
        let keks = copied.keks();
        let ct = hex::decode(&copied.ciphertext).unwrap();
        let env = Envelope::parse(&ct).unwrap();
        let dek = env.open(keks.as_slice()).unwrap();
        let dest = ObjectName {
            bucket: "archive",
            key: "copy.txt",
        };
        copied.bucket = "archive".into();
        copied.key = "copy.txt".into();
        copied.binding = Some(hex::encode(env.binding_tag(&dek, dest)));
    }
    let mut rotated = one(
        "aes-256-gcm-rotated-store",
        "Key store with two KEKs; object wrapped by the first.",
        AES,
        0,
        Some(b"old key still decrypts\n"),
    );
    rotated.keks.push(kek_json("rotated-new"));
    rotated.vector = "aes-256-gcm-rotated-store".into();

    let ct_seg = S + 16;
    let h = 212;
    let mut v = vec![
        fail(
            &three,
            "fail-bit-flip-segment",
            "One bit flipped inside segment 1.",
            "segment authentication",
            |_, c| c[h + ct_seg + 100] ^= 0x01,
        ),
        fail(
            &byte,
            "fail-bit-flip-tag",
            "Last bit of the final tag flipped.",
            "segment authentication",
            |_, c| *c.last_mut().unwrap() ^= 0x80,
        ),
        fail(
            &hello,
            "fail-header-commitment",
            "One bit of the key commitment flipped.",
            "commitment mismatch",
            |_, c| c[200] ^= 0x04,
        ),
        fail(
            &byte,
            "fail-header-length-edit",
            "Part plaintext length changed from 1 to 2.",
            "commitment mismatch",
            |_, c| c[115] = 2,
        ),
        fail(
            &byte,
            "fail-header-salt-edit",
            "Stream salt changed.",
            "commitment mismatch",
            |_, c| c[130] ^= 0xff,
        ),
        fail(
            &byte,
            "fail-wrapped-dek",
            "One bit of the wrapped data key flipped.",
            "unwrap failed",
            |_, c| c[50] ^= 0x10,
        ),
        fail(
            &byte,
            "fail-object-id-edit",
            "Object id changed (it salts the wrap key).",
            "unwrap failed",
            |_, c| c[90] ^= 0x01,
        ),
        fail(
            &byte,
            "fail-algorithm-switched",
            "Algorithm byte switched to ChaCha20-Poly1305.",
            "unwrap failed",
            |_, c| c[9] = 0x02,
        ),
        fail(
            &seg_p1,
            "fail-truncated-mid-segment",
            "Last 100 bytes removed.",
            "truncated",
            |_, c| c.truncate(c.len() - 100),
        ),
        fail(
            &three,
            "fail-truncated-at-segment-boundary",
            "Final segment removed whole.",
            "truncated",
            |_, c| c.truncate(h + 2 * ct_seg),
        ),
        fail(
            &empty,
            "fail-empty-body-stripped",
            "Empty object with its lone segment removed.",
            "truncated",
            |_, c| c.truncate(h),
        ),
        fail(
            &byte,
            "fail-appended-byte",
            "One byte appended after the final segment.",
            "trailing data",
            |_, c| c.push(0),
        ),
        fail(
            &seg_p1,
            "fail-appended-copy-of-final-segment",
            "Final segment appended again.",
            "trailing data",
            |_, c| {
                let last = c[c.len() - 17..].to_vec();
                c.extend_from_slice(&last)
            },
        ),
        fail(
            &three,
            "fail-segments-swapped",
            "Segments 0 and 1 exchanged.",
            "segment authentication",
            |_, c| {
                let first = c[h..h + ct_seg].to_vec();
                c.copy_within(h + ct_seg..h + 2 * ct_seg, h);
                c[h + ct_seg..h + 2 * ct_seg].copy_from_slice(&first);
            },
        ),
        fail(
            &byte,
            "fail-wrong-bucket",
            "Read under another bucket.",
            "binding mismatch",
            |v, _| v.bucket = "other-bucket".into(),
        ),
        fail(
            &hello,
            "fail-object-swapped",
            "Bytes of greetings/hello.txt served for objects/sample.bin.",
            "binding mismatch",
            |v, _| v.key = "objects/sample.bin".into(),
        ),
        fail(
            &copied,
            "fail-copied-object-without-binding",
            "Copied object read without its metadata binding tag.",
            "binding mismatch",
            |v, _| v.binding = None,
        ),
        fail(
            &byte,
            "fail-unknown-key",
            "Key store lacks the KEK the header names.",
            "unknown key",
            |v, _| v.keks = vec![kek_json("stranger")],
        ),
        fail(
            &byte,
            "fail-wrong-key",
            "A KEK with the right id but other bytes.",
            "unwrap failed",
            |v, _| v.keks[0].key = det("impostor", "kek", 32),
        ),
        fail(
            &byte,
            "fail-unknown-version",
            "Version byte set to 2.",
            "unsupported version",
            |_, c| c[8] = 2,
        ),
        fail(
            &byte,
            "fail-unknown-algorithm",
            "Algorithm byte set to 0x7f.",
            "unknown algorithm",
            |_, c| c[9] = 0x7f,
        ),
        fail(
            &byte,
            "fail-not-sealed",
            "Plain text, as stored before the gateway existed.",
            "not sealed",
            |_, c| *c = b"plain legacy data".to_vec(),
        ),
        fail(
            &byte,
            "fail-header-truncated",
            "Only the first 100 header bytes.",
            "truncated header",
            |_, c| c.truncate(100),
        ),
        fail(
            &multi,
            "fail-multipart-reordered",
            "Parts stored as 1, 3, 2.",
            "part mismatch",
            |_, c| {
                let p = h + ct_seg;
                *c = [&c[..p], &c[2 * p..], &c[p..2 * p]].concat();
            },
        ),
        fail(
            &multi,
            "fail-multipart-gap",
            "Part 2 removed: parts 1, 3.",
            "part mismatch",
            |_, c| {
                let p = h + ct_seg;
                *c = [&c[..p], &c[2 * p..]].concat();
            },
        ),
        fail(
            &multi,
            "fail-multipart-spliced",
            "Part 2 replaced by part 2 of another object.",
            "part mismatch",
            |_, c| {
                let other = hex::decode(&cha_multi.ciphertext).unwrap();
                let p = h + ct_seg;
                *c = [&c[..p], &other[..p], &c[2 * p..]].concat();
            },
        ),
        fail(
            &hello,
            "fail-metadata-tampered",
            "One character of the sealed metadata changed.",
            "metadata authentication",
            |v, _| {
                let m = v.metadata.as_mut().unwrap();
                let mut b = m.sealed.clone().into_bytes();
                b[10] = if b[10] == b'A' { b'B' } else { b'A' };
                m.sealed = String::from_utf8(b).unwrap();
            },
        ),
    ];
    let mut all = vec![
        empty, byte, hello, seg_m1, seg, seg_p1, three, cha_hello, cha_seg, multi, cha_multi,
        unicode, copied, rotated,
    ];
    all.append(&mut v);
    all.append(&mut v3_vectors(&meta_sample()));
    all
}

fn meta_sample() -> ObjectMetadata {
    let mut meta = ObjectMetadata::default();
    meta.user.insert("project".into(), "apollo".into());
    meta.headers
        .insert("content-type".into(), "text/plain; charset=utf-8".into());
    meta
}

/// Version 3 (FORMAT.md §Completion): the part that ends each object is
/// marked, and sealed metadata is bound to the object's name.
fn v3_vectors(meta: &ObjectMetadata) -> Vec<Vector> {
    const B: &str = "sealgate-vectors";
    let h = 212;
    let ct_seg = S + 16;
    let spec =
        |name, description, alg, parts: Vec<Vec<u8>>, key, meta: Option<ObjectMetadata>, record| {
            build(Spec {
                name,
                description,
                alg,
                parts,
                text: false,
                sealed_for: (B, key),
                meta,
                version: FORMAT_V3,
                record,
            })
        };
    let mut single = spec(
        "v3-aes-256-gcm-single",
        "Version 3 single PUT: part 1 marked last; sealed metadata bound to the name.",
        Algorithm::Aes256Gcm,
        vec![b"hello, version 3\n".to_vec()],
        "greetings/v3.txt",
        Some(meta.clone()),
        false,
    );
    single.plaintext_hex = Some(hex::encode(b"hello, version 3\n"));
    let last = spec(
        "v3-aes-256-gcm-multipart-last",
        "Version 3 multipart: parts of 65536, 65536 and 300 bytes; part 3 (under 5 MiB, so known to be last) is marked last.",
        Algorithm::Aes256Gcm,
        vec![
            pattern(S),
            pattern(2 * S)[S..].to_vec(),
            pattern(2 * S + 300)[2 * S..].to_vec(),
        ],
        "big/v3-last.bin",
        None,
        false,
    );
    let record = spec(
        "v3-aes-256-gcm-multipart-record",
        "Version 3 multipart: parts of 65536 and 131072 bytes, then a completion record (part 3) committing 2 data parts and 196608 bytes.",
        Algorithm::Aes256Gcm,
        vec![pattern(S), pattern(3 * S)[S..].to_vec()],
        "big/v3-record.bin",
        None,
        true,
    );
    let cha_record = spec(
        "v3-chacha20-poly1305-multipart-record",
        "Version 3 multipart under ChaCha20-Poly1305: one data part of 65537 bytes and a completion record.",
        Algorithm::ChaCha20Poly1305,
        vec![pattern(S + 1)],
        "big/v3-record-chacha.bin",
        Some(meta.clone()),
        true,
    );
    // A copy of `single` at another name, with its own (bound) metadata.
    let mut copied = spec(
        "v3-aes-256-gcm-copied-object",
        "Version 3 object copied server-side to archive/v3-copy.txt: binding tag and sealed metadata for the new name.",
        Algorithm::Aes256Gcm,
        vec![b"copied in version 3\n".to_vec()],
        "original-v3.txt",
        None,
        false,
    );
    copied.plaintext_hex = Some(hex::encode(b"copied in version 3\n"));
    let dest = ObjectName {
        bucket: "archive",
        key: "v3-copy.txt",
    };
    {
        let keks = copied.keks();
        let ct = hex::decode(&copied.ciphertext).unwrap();
        let env = Envelope::parse(&ct).unwrap();
        let dek = env.open(keks.as_slice()).unwrap();
        copied.bucket = dest.bucket.into();
        copied.key = dest.key.into();
        copied.binding = Some(hex::encode(env.binding_tag(&dek, dest)));
        let blob_salt = det(&copied.vector, "metadata-salt", 32);
        let mut rng = FixedSalt(hex::decode(&blob_salt).unwrap());
        let sealed = metadata::seal(&env, &dek, dest, meta, &mut rng).unwrap();
        copied.metadata = Some(MetaVector {
            blob_salt,
            plaintext: meta.clone(),
            sealed,
        });
    }
    // Reseal a record with the same salt and a wrong total: its commitment
    // verifies, its claim does not.
    let wrong_total = |v: &mut Vector, c: &mut Vec<u8>| {
        let keks = v.keks();
        let env = Envelope::parse(c).unwrap();
        let dek = env.open(keks.as_slice()).unwrap();
        let at = c.len() - h;
        let old = PartHeader::parse(&c[at..]).unwrap();
        let forged = PartHeader::completion(
            env,
            &dek,
            old.binding_tag,
            old.part_number,
            old.plaintext_len - 1,
            old.stream_salt,
        )
        .unwrap();
        c[at..].copy_from_slice(&forged.to_bytes());
    };
    let fails = vec![
        fail(
            &last,
            "fail-v3-trailing-part-removed",
            "Version 3: the last part (marked last) removed; parts 1 and 2 verify, but nothing ends the object.",
            "completion missing",
            |_, c| c.truncate(2 * (h + ct_seg)),
        ),
        fail(
            &record,
            "fail-v3-record-removed",
            "Version 3: the completion record removed; both data parts verify, but nothing ends the object.",
            "completion missing",
            |_, c| c.truncate(c.len() - h),
        ),
        fail(
            &record,
            "fail-v3-record-and-last-part-removed",
            "Version 3: the record and the last data part removed (the multipart truncation attack).",
            "completion missing",
            |_, c| c.truncate(h + ct_seg),
        ),
        fail(
            &record,
            "fail-v3-record-total-edit",
            "Version 3: the record's total length edited (bytes 108..116).",
            "commitment mismatch",
            |_, c| {
                let at = c.len() - h + 115;
                c[at] ^= 0x01;
            },
        ),
        fail(
            &record,
            "fail-v3-record-wrong-total",
            "Version 3: a record with a valid commitment whose total is one byte short of the parts.",
            "completion mismatch",
            wrong_total,
        ),
        fail(
            &single,
            "fail-v3-kind-edit",
            "Version 3: part 1's kind changed from last to data (covered by the commitment).",
            "commitment mismatch",
            |_, c| c[104] = 0x00,
        ),
        fail(
            &single,
            "fail-v3-unknown-kind",
            "Version 3: part kind byte set to 0x7f.",
            "unknown part kind",
            |_, c| c[104] = 0x7f,
        ),
        fail(
            &last,
            "fail-v3-part-after-last",
            "Version 3: a copy of part 3 (marked last) appended after it.",
            "trailing data",
            |_, c| {
                let p3 = c[2 * (h + ct_seg)..].to_vec();
                c.extend_from_slice(&p3);
            },
        ),
        fail(
            &copied,
            "fail-v3-metadata-of-another-name",
            "Version 3: the copy read with the sealed metadata of its source (same data key, other name): the stored-XSS swap.",
            "metadata authentication",
            |v, c| {
                let keks = v.keks();
                let env = Envelope::parse(c).unwrap();
                let dek = env.open(keks.as_slice()).unwrap();
                let source = ObjectName {
                    bucket: B,
                    key: "original-v3.txt",
                };
                let mut rng = FixedSalt(vec![7; 32]);
                let m = v.metadata.as_mut().unwrap();
                m.sealed = metadata::seal(&env, &dek, source, &m.plaintext, &mut rng).unwrap();
            },
        ),
        fail(
            &single,
            "fail-v3-metadata-unbound-blob",
            "Version 3: the sealed metadata replaced by a version-1 (unbound) blob under the same data key.",
            "metadata authentication",
            |v, c| {
                let keks = v.keks();
                let env = Envelope::parse(c).unwrap();
                let dek = env.open(keks.as_slice()).unwrap();
                let name = ObjectName {
                    bucket: B,
                    key: "greetings/v3.txt",
                };
                let mut rng = FixedSalt(vec![9; 32]);
                let m = v.metadata.as_mut().unwrap();
                m.sealed =
                    metadata::seal_version(&env, &dek, name, &m.plaintext, METADATA_V1, &mut rng)
                        .unwrap();
            },
        ),
    ];
    let mut all = vec![single, last, record, cha_record, copied];
    all.extend(fails);
    all
}

/// A random source that hands out one recorded salt.
struct FixedSalt(Vec<u8>);

impl RandomSource for FixedSalt {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), FormatError> {
        buf.copy_from_slice(&self.0[..buf.len()]);
        Ok(())
    }
}

#[test]
fn generator_matches_committed_vectors() {
    // Every vector the generator knows must be committed and identical, so
    // the generator can never drift from the files silently.
    for v in all_vectors() {
        let path = dir().join(format!("{}.json", v.vector));
        let committed: Vector = serde_json::from_slice(
            &std::fs::read(&path).unwrap_or_else(|_| panic!("{} is not committed", path.display())),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&committed).unwrap(),
            serde_json::to_value(&v).unwrap(),
            "{}",
            v.vector
        );
    }
}

#[test]
#[ignore = "writes new vector files; run by hand when adding vectors"]
fn write_missing_vectors() {
    for v in all_vectors() {
        let path = dir().join(format!("{}.json", v.vector));
        if !path.exists() {
            std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
        }
    }
}
