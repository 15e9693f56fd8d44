//! The sealgate object format: the bytes the storage provider holds.
//!
//! This module is the cryptographic core and the normative implementation of
//! docs/FORMAT.md. It does no I/O and knows nothing of HTTP or S3 requests:
//! callers push bytes in and get bytes out, so the same code serves the
//! gateway's async streams, the offline `sealgate decrypt` tool and the tests.
//!
//! # Layout
//! - [`aead`]: the AEAD backend behind one small interface (aws-lc-rs, ring
//!   or RustCrypto).
//! - [`kdf`]: every key derivation the format performs (HKDF-SHA256, HMAC).
//! - [`header`]: the fixed 212-byte part header: layout, parse, encode.
//! - [`envelope`]: a fresh data key per object, wrapped by a key-encryption key.
//! - [`stream`]: segmented streaming AEAD: [`stream::PartSealer`],
//!   [`stream::PartOpener`], [`stream::ObjectOpener`].
//! - [`size`]: plaintext ↔ ciphertext size and range arithmetic (pure functions).
//! - [`metadata`]: sealed user metadata carried in S3 metadata.
//!
//! # Invariants
//! - Plaintext leaves an opener only after its segment's tag verified.
//! - Every part stream gets a fresh random salt, hence a fresh content key, so
//!   counter nonces never repeat even when a client re-uploads a part.
//! - The key commitment is checked before any segment is decrypted.

pub mod aead;
pub mod envelope;
pub mod error;
pub mod header;
pub mod kdf;
pub mod metadata;
pub mod size;
pub mod stream;
pub mod upload_id;

pub use envelope::{Dek, Envelope, Kek, KekLookup};
pub use error::FormatError;

use std::fmt;

/// Plaintext bytes per segment. FORMAT.md §Segments. Never change: bump the version.
pub const SEGMENT_LEN: usize = 1 << SEGMENT_SHIFT;
/// log2 of [`SEGMENT_LEN`], as stored in the header.
pub const SEGMENT_SHIFT: u8 = 16;
/// The format version this build writes (FORMAT.md §Versions).
pub const FORMAT_VERSION: u8 = FORMAT_V3;
/// Version 1: no completion commitment (FORMAT.md §Limits). Read forever.
pub const FORMAT_V1: u8 = 1;
/// Version 3: every object's last part is marked (a `Last` data part or a
/// completion record) and sealed metadata is bound to the object's name.
/// Version byte 2 was never issued: the committed vector
/// `fail-unknown-version` pins it as a version no reader knows.
pub const FORMAT_V3: u8 = 3;

/// Whether a reader of this build understands version byte `v`.
pub fn is_known_version(v: u8) -> bool {
    v == FORMAT_V1 || v == FORMAT_V3
}

/// The content AEAD of an object, chosen per bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// AES-256-GCM (default; fastest with AES-NI).
    Aes256Gcm,
    /// ChaCha20-Poly1305 (constant-time without AES hardware).
    ChaCha20Poly1305,
}

impl Algorithm {
    /// The id stored in the header. Never renumber.
    pub fn id(self) -> u8 {
        match self {
            Algorithm::Aes256Gcm => 0x01,
            Algorithm::ChaCha20Poly1305 => 0x02,
        }
    }

    /// Inverse of [`Algorithm::id`].
    pub fn from_id(id: u8) -> Result<Self, FormatError> {
        match id {
            0x01 => Ok(Algorithm::Aes256Gcm),
            0x02 => Ok(Algorithm::ChaCha20Poly1305),
            other => Err(FormatError::UnknownAlgorithm(other)),
        }
    }

    /// The name used in configuration files and test vectors.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Aes256Gcm => "AES-256-GCM",
            Algorithm::ChaCha20Poly1305 => "ChaCha20-Poly1305",
        }
    }

    /// Parses [`Algorithm::name`] (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        [Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305]
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Identifies a key-encryption key: 16 random bytes, shown as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    /// Parses 32 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut id = [0u8; 16];
        hex::decode_to_slice(s, &mut id).ok()?;
        Some(KeyId(id))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// The bucket and key an object is stored under; bound into every object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectName<'a> {
    /// Bucket name.
    pub bucket: &'a str,
    /// Object key.
    pub key: &'a str,
}

/// Source of the random values the format needs (data keys, salts, nonces).
///
/// Production code uses [`OsRandom`]; test vectors replay recorded values.
pub trait RandomSource {
    /// Fills `buf` with unpredictable bytes.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), FormatError>;
}

/// The operating system's CSPRNG (getrandom).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), FormatError> {
        getrandom::getrandom(buf).map_err(|_| FormatError::Random)
    }
}
