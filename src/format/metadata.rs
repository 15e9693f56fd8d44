//! Sealed metadata (FORMAT.md §Sealed metadata): user metadata
//! (`x-amz-meta-*`) and content headers, encrypted under a key derived from
//! the object's data key and carried base64-encoded in one S3 metadata value.
//!
//! It lives in S3 metadata rather than the inline header because it is
//! variable-length (a fixed header keeps size arithmetic pure) and because a
//! HEAD must be answerable without reading the body.

use super::aead::{NONCE_LEN, SegmentCipher, TAG_LEN};
use super::envelope::{Dek, Envelope};
use super::{FormatError, RandomSource, kdf};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::collections::BTreeMap;

/// Version byte of the sealed metadata blob. Never change: bump it.
pub const METADATA_VERSION: u8 = 1;

/// The plaintext of a sealed metadata blob (serialized as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectMetadata {
    /// User metadata: `x-amz-meta-NAME` → value, NAME lower-case without prefix.
    #[serde(default)]
    pub user: BTreeMap<String, String>,
    /// Content headers such as `content-type`, lower-case names.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Encrypts `meta` for the object described by `envelope`; returns the
/// base64 text to store as the S3 metadata value.
pub fn seal(
    envelope: &Envelope,
    dek: &Dek,
    meta: &ObjectMetadata,
    rng: &mut dyn RandomSource,
) -> Result<String, FormatError> {
    let mut salt = [0u8; 32];
    rng.fill(&mut salt)?;
    let key = kdf::metadata_key(dek.bytes(), &salt, &envelope.object_id);
    let mut body = serde_json::to_vec(meta).map_err(|_| FormatError::Metadata("cannot encode"))?;
    let tag = SegmentCipher::new(envelope.algorithm, &key).seal([0u8; NONCE_LEN], &[], &mut body);
    let mut blob = Vec::with_capacity(1 + 32 + body.len() + TAG_LEN);
    blob.push(METADATA_VERSION);
    blob.extend_from_slice(&salt);
    blob.extend_from_slice(&body);
    blob.extend_from_slice(&tag);
    Ok(STANDARD.encode(blob))
}

/// Decrypts and authenticates a blob made by [`seal`].
pub fn open(envelope: &Envelope, dek: &Dek, text: &str) -> Result<ObjectMetadata, FormatError> {
    let blob = STANDARD
        .decode(text.trim())
        .map_err(|_| FormatError::Metadata("not base64"))?;
    if blob.len() < 1 + 32 + TAG_LEN {
        return Err(FormatError::Metadata("too short"));
    }
    if blob[0] != METADATA_VERSION {
        return Err(FormatError::Metadata("unsupported version"));
    }
    let salt: [u8; 32] = blob[1..33].try_into().expect("32 bytes");
    let (body, tag) = blob[33..].split_at(blob.len() - 33 - TAG_LEN);
    let mut body = body.to_vec();
    let key = kdf::metadata_key(dek.bytes(), &salt, &envelope.object_id);
    SegmentCipher::new(envelope.algorithm, &key)
        .open(
            [0u8; NONCE_LEN],
            &[],
            &mut body,
            tag.try_into().expect("tag"),
        )
        .map_err(|_| FormatError::Metadata("authentication failed"))?;
    serde_json::from_slice(&body).map_err(|_| FormatError::Metadata("not valid JSON"))
}

/// S3 metadata key (without `x-amz-meta-`) holding the base64 212-byte part
/// header of a single-part object (FORMAT.md §Where each field lives).
pub const META_HEADER: &str = "sealgate-hdr";
/// S3 metadata key holding the base64 104-byte envelope of a multipart object.
pub const META_ENVELOPE: &str = "sealgate-env";
/// S3 metadata key holding the hex binding tag for the object's current name.
pub const META_BINDING: &str = "sealgate-bind";
/// S3 metadata key holding the sealed metadata blob.
pub const META_SEALED: &str = "sealgate-meta";
