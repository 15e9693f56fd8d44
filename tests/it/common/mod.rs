//! Helpers shared by the format test binaries.
#![allow(dead_code)]

use sealgate::format::header::PartKind;
use sealgate::format::stream::PartSealer;
use sealgate::format::{Algorithm, Dek, Envelope, FormatError, Kek, KeyId, ObjectName, OsRandom};
use zeroize::Zeroizing;

pub const NAME: ObjectName<'static> = ObjectName {
    bucket: "photos",
    key: "2026/11/cat.jpg",
};

pub fn kek(seed: u8) -> Kek {
    Kek::new(
        KeyId([seed; 16]),
        Zeroizing::new([seed.wrapping_add(1); 32]),
    )
}

/// Deterministic plaintext: byte i is i mod 251 (also used by the vectors).
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Seals `parts` as one object (each slice one part stream, numbered from 1).
pub fn seal_parts(
    kek: &Kek,
    alg: Algorithm,
    name: ObjectName<'_>,
    parts: &[&[u8]],
) -> Result<(Envelope, Dek, Vec<u8>), FormatError> {
    let (env, dek) = Envelope::create(kek, alg, &mut OsRandom)?;
    let tag = env.binding_tag(&dek, name);
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        // Version 3: the last part ends the object.
        let kind = if i + 1 == parts.len() {
            PartKind::Last
        } else {
            PartKind::Data
        };
        let (mut s, h) = PartSealer::start(
            &env,
            &dek,
            tag,
            (i as u32 + 1, kind),
            p.len() as u64,
            &mut OsRandom,
        )?;
        out.extend_from_slice(&h);
        // Feed in uneven chunks to exercise buffering.
        for chunk in p.chunks(7919) {
            s.push(chunk, &mut out)?;
        }
        s.finish(&mut out)?;
    }
    Ok((env, dek, out))
}
