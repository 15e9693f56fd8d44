//! Sealed metadata (FORMAT.md §Sealed metadata): user metadata
//! (`x-amz-meta-*`) and content headers, encrypted under a key derived from
//! the object's data key and carried base64-encoded in one S3 metadata value.
//!
//! It lives in S3 metadata rather than the inline header because it is
//! variable-length (a fixed header keeps size arithmetic pure) and because a
//! HEAD must be answerable without reading the body.

use super::aead::{NONCE_LEN, SegmentCipher, TAG_LEN};
use super::envelope::{Dek, Envelope};
use super::{FORMAT_V1, FormatError, ObjectName, RandomSource, kdf};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::collections::BTreeMap;

/// Version byte of the sealed metadata blob this build writes. Never change
/// a version's meaning: bump it.
pub const METADATA_VERSION: u8 = 2;
/// Blob version 1: not bound to a name (accepted on version-1 objects only).
pub const METADATA_V1: u8 = 1;

/// The plaintext of a sealed metadata blob (serialized as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectMetadata {
    /// User metadata: `x-amz-meta-NAME` → value, NAME lower-case without prefix.
    #[serde(default)]
    pub user: BTreeMap<String, String>,
    /// Content headers such as `content-type`, lower-case names.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Full-object checksums of the plaintext that sealgate verified when
    /// the object was written: algorithm (`crc32`, `crc32c`, `crc64nvme`,
    /// `sha1`, `sha256`) → the base64 value S3 returns. Returned only to a
    /// client that asks (ChecksumMode, GetObjectAttributes). Omitted when
    /// empty, so blobs without checksums keep their bytes; readers that
    /// predate it ignore the member (FORMAT.md §Sealed metadata).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checksums: BTreeMap<String, String>,
}

/// Encrypts `meta` for the object described by `envelope`, stored under
/// `name`; returns the base64 text to store as the S3 metadata value.
///
/// The blob (version 2) is bound to `name` as associated data, so the
/// provider cannot move it onto a copy of the object stored elsewhere.
pub fn seal(
    envelope: &Envelope,
    dek: &Dek,
    name: ObjectName<'_>,
    meta: &ObjectMetadata,
    rng: &mut dyn RandomSource,
) -> Result<String, FormatError> {
    seal_version(envelope, dek, name, meta, METADATA_VERSION, rng)
}

/// [`seal`] for a given blob version: only the test vectors write version
/// 1, to re-seal what was pinned.
pub fn seal_version(
    envelope: &Envelope,
    dek: &Dek,
    name: ObjectName<'_>,
    meta: &ObjectMetadata,
    version: u8,
    rng: &mut dyn RandomSource,
) -> Result<String, FormatError> {
    let mut salt = [0u8; 32];
    rng.fill(&mut salt)?;
    let (key, aad) = blob_key(envelope, dek, name, version, &salt)?;
    let mut body = serde_json::to_vec(meta).map_err(|_| FormatError::Metadata("cannot encode"))?;
    let tag = SegmentCipher::new(envelope.algorithm, &key).seal([0u8; NONCE_LEN], &aad, &mut body);
    let mut blob = Vec::with_capacity(1 + 32 + body.len() + TAG_LEN);
    blob.push(version);
    blob.extend_from_slice(&salt);
    blob.extend_from_slice(&body);
    blob.extend_from_slice(&tag);
    Ok(STANDARD.encode(blob))
}

fn blob_key(
    envelope: &Envelope,
    dek: &Dek,
    name: ObjectName<'_>,
    version: u8,
    salt: &[u8; 32],
) -> Result<(zeroize::Zeroizing<[u8; 32]>, Vec<u8>), FormatError> {
    match version {
        METADATA_V1 => Ok((
            kdf::metadata_key(dek.bytes(), salt, &envelope.object_id),
            Vec::new(),
        )),
        METADATA_VERSION => Ok((
            kdf::metadata_key_v2(dek.bytes(), salt, &envelope.object_id),
            kdf::metadata_name_aad(name),
        )),
        _ => Err(FormatError::Metadata("unsupported version")),
    }
}

/// Whether an object of this envelope must carry sealed metadata: version
/// 3 always writes a blob, so its absence means the provider stripped it.
pub fn required(envelope: &Envelope) -> bool {
    envelope.version != FORMAT_V1
}

/// Decrypts and authenticates a blob made by [`seal`] for an object read
/// under `name`. Version-1 blobs (not name-bound) are accepted only on
/// version-1 objects.
pub fn open(
    envelope: &Envelope,
    dek: &Dek,
    name: ObjectName<'_>,
    text: &str,
) -> Result<ObjectMetadata, FormatError> {
    let blob = STANDARD
        .decode(text.trim())
        .map_err(|_| FormatError::Metadata("not base64"))?;
    if blob.len() < 1 + 32 + TAG_LEN {
        return Err(FormatError::Metadata("too short"));
    }
    if blob[0] == METADATA_V1 && envelope.version != FORMAT_V1 {
        // A downgrade: version-3 objects are always written with bound blobs.
        return Err(FormatError::Metadata(
            "unbound metadata on a version-3 object",
        ));
    }
    let salt: [u8; 32] = blob[1..33].try_into().expect("32 bytes");
    let (key, aad) = blob_key(envelope, dek, name, blob[0], &salt)?;
    let (body, tag) = blob[33..].split_at(blob.len() - 33 - TAG_LEN);
    let mut body = body.to_vec();
    SegmentCipher::new(envelope.algorithm, &key)
        .open(
            [0u8; NONCE_LEN],
            &aad,
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

/// The S3 metadata sealgate stores with each object: where it starts (the
/// part header of a single-part object, or the envelope of a multipart
/// one), its name binding and its sealed metadata blob. This type owns the
/// key names (`sealgate-hdr`, `-env`, `-bind`, `-meta`) and their encoding
/// (base64, hex); nothing else spells them.
#[derive(Debug, Clone)]
pub struct StoredMetadata {
    /// What the object starts from.
    pub start: StoredStart,
    /// The binding tag for the object's current name.
    pub binding: [u8; 32],
    /// The sealed metadata blob (as [`seal`] made it), if stored.
    pub sealed: Option<String>,
}

/// What a stored object's metadata says it starts from.
#[derive(Debug, Clone)]
pub enum StoredStart {
    /// A single-part object: its 212-byte part header (parsed, not verified).
    Header(Box<super::header::PartHeader>),
    /// A multipart object: its envelope.
    Envelope(Envelope),
}

impl StoredStart {
    /// The object's envelope.
    pub fn envelope(&self) -> &Envelope {
        match self {
            StoredStart::Header(h) => &h.envelope,
            StoredStart::Envelope(e) => e,
        }
    }
}

impl StoredMetadata {
    /// Whether S3 metadata names a sealgate object (a header or an
    /// envelope), whatever the rest holds.
    pub fn names_sealed_object<V>(stored: &std::collections::HashMap<String, V>) -> bool {
        stored.contains_key(META_HEADER) || stored.contains_key(META_ENVELOPE)
    }

    /// Reads sealgate's fields from an object's S3 metadata: the header or
    /// envelope first ([`FormatError::NotSealed`] when neither is there),
    /// then the binding tag ([`FormatError::BindingMismatch`] when missing
    /// or malformed). Nothing is verified here.
    pub fn decode(
        stored: &std::collections::HashMap<String, String>,
    ) -> Result<StoredMetadata, FormatError> {
        let decode = |v: &String| {
            STANDARD
                .decode(v.trim())
                .map_err(|_| FormatError::Metadata("metadata is not base64"))
        };
        let start = match (stored.get(META_HEADER), stored.get(META_ENVELOPE)) {
            (Some(h), _) => {
                StoredStart::Header(Box::new(super::header::PartHeader::parse(&decode(h)?)?))
            }
            (None, Some(e)) => StoredStart::Envelope(Envelope::parse(&decode(e)?)?),
            (None, None) => return Err(FormatError::NotSealed),
        };
        let mut binding = [0u8; 32];
        stored
            .get(META_BINDING)
            .and_then(|t| hex::decode_to_slice(t.trim(), &mut binding).ok())
            .ok_or(FormatError::BindingMismatch)?;
        Ok(StoredMetadata {
            start,
            binding,
            sealed: stored.get(META_SEALED).cloned(),
        })
    }

    /// The S3 metadata for a single-part object whose part header is
    /// `header` (its bytes as written before the body).
    pub fn single_part(
        header: &[u8],
        binding: &[u8; 32],
        sealed: String,
    ) -> std::collections::HashMap<String, String> {
        Self::encode(META_HEADER, STANDARD.encode(header), binding, sealed)
    }

    /// The S3 metadata for a multipart object under `envelope`.
    pub fn multipart(
        envelope: &Envelope,
        binding: &[u8; 32],
        sealed: String,
    ) -> std::collections::HashMap<String, String> {
        Self::encode(
            META_ENVELOPE,
            STANDARD.encode(envelope.to_bytes()),
            binding,
            sealed,
        )
    }

    fn encode(
        start_key: &str,
        start: String,
        binding: &[u8; 32],
        sealed: String,
    ) -> std::collections::HashMap<String, String> {
        std::collections::HashMap::from([
            (start_key.to_owned(), start),
            (META_BINDING.to_owned(), hex::encode(binding)),
            (META_SEALED.to_owned(), sealed),
        ])
    }
}
