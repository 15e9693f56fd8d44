//! Every key derivation of the format, in one place (FORMAT.md §Key schedule).
//!
//! All derivations are HKDF-SHA256 (RFC 5869) or HMAC-SHA256 with ASCII
//! labels that start with `sealgate/v1/` (or `sealgate/v3/` for what
//! version 3 added), so no two uses share an output.

use super::ObjectName;
use super::aead::KEY_LEN;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Label for the per-object wrapping key derived from a KEK.
pub const LABEL_WRAP: &[u8] = b"sealgate/v1/wrap";
/// Label prefix for the content key of a part stream.
pub const LABEL_CONTENT: &[u8] = b"sealgate/v1/content";
/// Label prefix for the key commitment of a part stream.
pub const LABEL_COMMIT: &[u8] = b"sealgate/v1/commit";
/// Label for the name-binding MAC key.
pub const LABEL_BINDING: &[u8] = b"sealgate/v1/binding";
/// Domain prefix of the name-binding MAC input.
pub const LABEL_NAME: &[u8] = b"sealgate/v1/name";
/// Label for the sealed-metadata key.
pub const LABEL_METADATA: &[u8] = b"sealgate/v1/metadata";
/// Label prefix for the commitment of a completion record (version 3).
pub const LABEL_COMPLETION: &[u8] = b"sealgate/v3/completion";
/// Label for the sealed-metadata key of metadata blob version 2.
pub const LABEL_METADATA_V2: &[u8] = b"sealgate/v3/metadata";
/// Domain prefix of the name a version-2 metadata blob is bound to.
pub const LABEL_METADATA_NAME: &[u8] = b"sealgate/v3/metadata-name";
/// Label for the MAC key of upload ids as ListMultipartUploads lists them,
/// and the domain prefix of their MAC input.
pub const LABEL_LISTED_UPLOAD_ID: &[u8] = b"sealgate/v3/listed-upload-id";
/// Label for the exception-registry MAC key.
pub const LABEL_REGISTRY: &[u8] = b"sealgate/v1/registry";
/// Label for the audit-log MAC key.
pub const LABEL_AUDIT: &[u8] = b"sealgate/v1/audit";
/// Label for the multipart upload-id MAC key and its MAC input.
pub const LABEL_UPLOAD_ID: &[u8] = b"sealgate/v1/upload-id";

fn hkdf(ikm: &[u8], salt: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; KEY_LEN]> {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    hk.expand_multi_info(info, out.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

/// Per-object key that wraps the data key: HKDF(KEK, salt = object id, "sealgate/v1/wrap").
pub fn wrap_key(kek: &[u8; KEY_LEN], object_id: &[u8; 16]) -> Zeroizing<[u8; KEY_LEN]> {
    hkdf(kek, object_id, &[LABEL_WRAP])
}

/// Content key and key commitment of one part stream.
///
/// `context` is the header prefix up to and including the stream salt, so any
/// change to a header field changes both outputs.
pub fn part_keys(
    dek: &[u8; KEY_LEN],
    stream_salt: &[u8; 32],
    context: &[u8],
) -> (Zeroizing<[u8; KEY_LEN]>, [u8; 32]) {
    let content = hkdf(dek, stream_salt, &[LABEL_CONTENT, context]);
    let commit = hkdf(dek, stream_salt, &[LABEL_COMMIT, context]);
    (content, *commit)
}

/// Commitment of a completion record: HKDF(DEK, salt = record salt,
/// "sealgate/v3/completion" ‖ context), where `context` is header bytes
/// 0..148 (envelope, kind, part number, total length, salt).
pub fn completion_commitment(dek: &[u8; KEY_LEN], salt: &[u8; 32], context: &[u8]) -> [u8; 32] {
    *hkdf(dek, salt, &[LABEL_COMPLETION, context])
}

/// The 32-byte tag that binds an object (its data key) to a bucket and key.
pub fn binding_tag(dek: &[u8; KEY_LEN], object_id: &[u8; 16], name: ObjectName<'_>) -> [u8; 32] {
    let k = hkdf(dek, object_id, &[LABEL_BINDING]);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(k.as_ref()).expect("any key length");
    mac.update(LABEL_NAME);
    mac.update(&(name.bucket.len() as u32).to_be_bytes());
    mac.update(name.bucket.as_bytes());
    mac.update(&(name.key.len() as u32).to_be_bytes());
    mac.update(name.key.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Key that seals one metadata blob: HKDF(DEK, salt = blob salt, "sealgate/v1/metadata" ‖ object id).
pub fn metadata_key(
    dek: &[u8; KEY_LEN],
    blob_salt: &[u8; 32],
    object_id: &[u8; 16],
) -> Zeroizing<[u8; KEY_LEN]> {
    hkdf(dek, blob_salt, &[LABEL_METADATA, object_id])
}

/// Key that seals a version-2 metadata blob:
/// HKDF(DEK, salt = blob salt, "sealgate/v3/metadata" ‖ object id).
pub fn metadata_key_v2(
    dek: &[u8; KEY_LEN],
    blob_salt: &[u8; 32],
    object_id: &[u8; 16],
) -> Zeroizing<[u8; KEY_LEN]> {
    hkdf(dek, blob_salt, &[LABEL_METADATA_V2, object_id])
}

/// Associated data of a version-2 metadata blob: the label, then the bucket
/// and key it is stored under, each length-prefixed.
pub fn metadata_name_aad(name: ObjectName<'_>) -> Vec<u8> {
    let mut aad =
        Vec::with_capacity(LABEL_METADATA_NAME.len() + 8 + name.bucket.len() + name.key.len());
    aad.extend_from_slice(LABEL_METADATA_NAME);
    for field in [name.bucket.as_bytes(), name.key.as_bytes()] {
        aad.extend_from_slice(&(field.len() as u32).to_be_bytes());
        aad.extend_from_slice(field);
    }
    aad
}

/// The tag that authenticates a multipart upload id: HMAC-SHA256 under
/// HKDF(DEK, salt = object id, "sealgate/v1/upload-id") over the label, the
/// name and the provider's upload id (each length-prefixed).
pub fn upload_id_tag(
    dek: &[u8; KEY_LEN],
    object_id: &[u8; 16],
    name: ObjectName<'_>,
    upstream_id: &str,
) -> [u8; 32] {
    let k = hkdf(dek, object_id, &[LABEL_UPLOAD_ID]);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(k.as_ref()).expect("any key length");
    mac.update(LABEL_UPLOAD_ID);
    for field in [
        name.bucket.as_bytes(),
        name.key.as_bytes(),
        upstream_id.as_bytes(),
    ] {
        mac.update(&(field.len() as u32).to_be_bytes());
        mac.update(field);
    }
    mac.finalize().into_bytes().into()
}

/// The tag of a listed upload id: HMAC-SHA256 under
/// HKDF(KEK, salt = empty, "sealgate/v3/listed-upload-id") over the label,
/// the bucket, the key and the provider's upload id (each length-prefixed).
pub fn listed_upload_id_tag(
    kek: &[u8; KEY_LEN],
    name: ObjectName<'_>,
    upstream_id: &str,
) -> [u8; 32] {
    let k = hkdf(kek, &[], &[LABEL_LISTED_UPLOAD_ID]);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(k.as_ref()).expect("any key length");
    mac.update(LABEL_LISTED_UPLOAD_ID);
    for field in [
        name.bucket.as_bytes(),
        name.key.as_bytes(),
        upstream_id.as_bytes(),
    ] {
        mac.update(&(field.len() as u32).to_be_bytes());
        mac.update(field);
    }
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 of one exception-registry line under
/// HKDF(KEK, salt = empty, "sealgate/v1/registry").
pub fn registry_mac(kek: &[u8; KEY_LEN], line: &[u8]) -> [u8; 32] {
    chain_mac(LABEL_REGISTRY, kek, line)
}

/// HMAC-SHA256 of one audit-log line under
/// HKDF(KEK, salt = empty, "sealgate/v1/audit").
pub fn audit_mac(kek: &[u8; KEY_LEN], line: &[u8]) -> [u8; 32] {
    chain_mac(LABEL_AUDIT, kek, line)
}

fn chain_mac(label: &[u8], kek: &[u8; KEY_LEN], line: &[u8]) -> [u8; 32] {
    let k = hkdf(kek, &[], &[label]);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(k.as_ref()).expect("any key length");
    mac.update(label);
    mac.update(line);
    mac.finalize().into_bytes().into()
}

/// Constant-time equality for tags and commitments.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
