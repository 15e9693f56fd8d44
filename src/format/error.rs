//! Errors of the object format layer.
//!
//! Every variant names the condition an auditor or operator needs to see. The
//! gateway maps all integrity variants to one client-facing code (no decryption
//! oracle); the precise variant goes to the audit log.

use super::KeyId;

/// Why an object could not be sealed or opened.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// The bytes do not start with the sealgate magic: not a sealgate object
    /// (for example data stored before the gateway was introduced).
    #[error("not a sealgate object (magic bytes missing)")]
    NotSealed,
    /// A header is shorter than [`super::header::HEADER_LEN`].
    #[error("header truncated: {got} of {need} bytes")]
    TruncatedHeader {
        /// Bytes available.
        got: usize,
        /// Bytes required.
        need: usize,
    },
    /// The format version byte is not one this build can read.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// The algorithm byte names no known AEAD.
    #[error("unknown algorithm id {0:#04x}")]
    UnknownAlgorithm(u8),
    /// The segment-size byte differs from the one version 1 fixes.
    #[error("unsupported segment size exponent {0}")]
    UnsupportedSegmentSize(u8),
    /// Reserved flag bits are set.
    #[error("unsupported header flags {0:#04x}")]
    UnsupportedFlags(u8),
    /// A part declares more plaintext than the format allows.
    #[error("part plaintext length {0} exceeds the format limit")]
    PartTooLarge(u64),
    /// A part number outside 1..=10000.
    #[error("invalid part number {0}")]
    InvalidPartNumber(u32),
    /// The header names a key-encryption key the key store does not hold.
    #[error("unknown key id {0}")]
    UnknownKey(KeyId),
    /// The header names a key the store holds but that is revoked.
    #[error("key {id} is {why}")]
    RevokedKey {
        /// Key id.
        id: KeyId,
        /// When and why it was revoked.
        why: String,
    },
    /// The header names a key that was destroyed on purpose (its key
    /// domain was crypto-shredded): the object can never be read again.
    #[error("key {id} was {why}")]
    DestroyedKey {
        /// Key id.
        id: KeyId,
        /// When, with which domain and under which exception.
        why: String,
    },
    /// The wrapped data key did not authenticate under the named key.
    #[error("data key unwrap failed (wrong key or tampered envelope)")]
    UnwrapFailed,
    /// The key commitment does not match: the header was altered or the
    /// ciphertext belongs to another key.
    #[error("key commitment mismatch (tampered header or wrong data key)")]
    CommitmentMismatch,
    /// The object is not bound to the bucket and key it was read from.
    #[error("object is not bound to this bucket/key (object swapped or moved)")]
    BindingMismatch,
    /// A segment failed authentication.
    #[error("segment {segment} of part {part} failed authentication")]
    SegmentAuth {
        /// Part number.
        part: u32,
        /// Segment index within the part.
        segment: u64,
    },
    /// The stream ended before the final segment of a part.
    #[error("ciphertext truncated inside part {part}")]
    Truncated {
        /// Part number.
        part: u32,
    },
    /// Bytes follow the last part, or a part carries more data than its
    /// header declares.
    #[error("unexpected data after the end of part {part}")]
    TrailingData {
        /// Part number.
        part: u32,
    },
    /// Parts of one object disagree on the envelope, or are out of order.
    #[error("part {part} does not belong to this object or is out of order")]
    PartMismatch {
        /// Part number found.
        part: u32,
    },
    /// The writer was given more or fewer bytes than it declared.
    #[error("plaintext length mismatch: declared {declared}, got {got}")]
    LengthMismatch {
        /// Length declared in the header.
        declared: u64,
        /// Length actually supplied.
        got: u64,
    },
    /// A ciphertext length that no plaintext length produces.
    #[error("impossible ciphertext length {0}")]
    InvalidCiphertextLength(u64),
    /// A version-3 object whose stored parts end without a part that ends
    /// the object: trailing parts were removed, or it was cut short.
    #[error("object has no completion commitment after part {part} (trailing parts removed?)")]
    CompletionMissing {
        /// The last part found.
        part: u32,
    },
    /// A completion record (or a part that ends the object) disagrees with
    /// the parts or the size the object has.
    #[error("completion commitment disagrees with the object: {0}")]
    CompletionMismatch(&'static str),
    /// A version-3 part kind byte this reader does not know.
    #[error("unknown part kind {0:#04x}")]
    UnknownPartKind(u8),
    /// A byte range outside the object.
    #[error("range not satisfiable")]
    RangeNotSatisfiable,
    /// The sealed metadata blob is malformed or failed authentication.
    #[error("sealed metadata invalid: {0}")]
    Metadata(&'static str),
    /// The operating system's random source failed.
    #[error("random number generator failed")]
    Random,
}

impl FormatError {
    /// True for errors that mean stored data was altered (possible tampering by
    /// the provider), as opposed to unsupported or misconfigured input.
    pub fn is_integrity_failure(&self) -> bool {
        matches!(
            self,
            FormatError::UnwrapFailed
                | FormatError::CommitmentMismatch
                | FormatError::BindingMismatch
                | FormatError::SegmentAuth { .. }
                | FormatError::Truncated { .. }
                | FormatError::TrailingData { .. }
                | FormatError::PartMismatch { .. }
                | FormatError::InvalidCiphertextLength(_)
                | FormatError::TruncatedHeader { .. }
                | FormatError::Metadata(_)
                | FormatError::CompletionMissing { .. }
                | FormatError::CompletionMismatch(_)
                | FormatError::UnknownPartKind(_)
        )
    }
}
