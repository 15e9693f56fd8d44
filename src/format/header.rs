//! The part header: 212 bytes at the start of every part stream
//! (FORMAT.md §Part header). Fixed size, so size arithmetic stays pure.
//!
//! ```text
//! off  len  field
//!   0    8  magic "SEALGATE"
//!   8    1  version (1)
//!   9    1  algorithm id
//!  10    1  segment size exponent (16)
//!  11    1  flags (0)
//!  12   16  KEK id
//!  28   12  wrap nonce
//!  40   48  wrapped DEK (32) + tag (16)
//!  88   16  object id
//! 104    4  part number (u32 BE)
//! 108    8  part plaintext length (u64 BE)
//! 116   32  stream salt
//! 148   32  name binding tag
//! 180   32  key commitment
//! ```

use super::aead::{KEY_LEN, SegmentCipher};
use super::envelope::{Dek, Envelope};
use super::{FormatError, kdf};

/// The magic bytes every sealgate part starts with. Never change.
pub const MAGIC: &[u8; 8] = b"SEALGATE";
/// Total header length. Never change: bump the version.
pub const HEADER_LEN: usize = 212;
/// Length of the object-level prefix ([`Envelope`]).
pub const ENVELOPE_LEN: usize = 104;
/// Header bytes that form the start of the DEK-wrap associated data.
pub const WRAP_AAD_PREFIX_LEN: usize = 28;
/// Header bytes covered by the content-key and commitment derivation.
pub const KDF_CONTEXT_LEN: usize = 148;
/// Largest plaintext a single part stream may carry (2^50 bytes = 1 PiB),
/// far above S3's 5 TiB object limit; keeps all size arithmetic in `u64`.
pub const MAX_PART_PLAINTEXT: u64 = 1 << 50;
/// Largest part number S3 allows.
pub const MAX_PART_NUMBER: u32 = 10_000;

/// One parsed part header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHeader {
    /// Object-level fields, shared by every part.
    pub envelope: Envelope,
    /// S3 part number (1 for a single PUT).
    pub part_number: u32,
    /// Plaintext bytes in this part.
    pub plaintext_len: u64,
    /// Fresh random salt of this part stream (this upload attempt).
    pub stream_salt: [u8; 32],
    /// Binds the object to the bucket/key it was written under.
    pub binding_tag: [u8; 32],
    /// Key commitment of this part stream.
    pub commitment: [u8; 32],
}

impl PartHeader {
    /// Builds a header for a new part stream and returns the content cipher.
    pub fn new(
        envelope: Envelope,
        dek: &Dek,
        binding_tag: [u8; 32],
        part_number: u32,
        plaintext_len: u64,
        stream_salt: [u8; 32],
    ) -> Result<(PartHeader, SegmentCipher), FormatError> {
        check_part_number(part_number)?;
        check_len(plaintext_len)?;
        let mut h = PartHeader {
            envelope,
            part_number,
            plaintext_len,
            stream_salt,
            binding_tag,
            commitment: [0; 32],
        };
        let (key, commit) = h.derive(dek);
        h.commitment = commit;
        let cipher = SegmentCipher::new(h.envelope.algorithm, &key);
        Ok((h, cipher))
    }

    fn derive(&self, dek: &Dek) -> (zeroize::Zeroizing<[u8; KEY_LEN]>, [u8; 32]) {
        let bytes = self.to_bytes();
        kdf::part_keys(dek.bytes(), &self.stream_salt, &bytes[..KDF_CONTEXT_LEN])
    }

    /// Checks the key commitment and returns the content cipher. Must succeed
    /// before any segment of this part is decrypted.
    pub fn verify(&self, dek: &Dek) -> Result<SegmentCipher, FormatError> {
        let (key, commit) = self.derive(dek);
        if !kdf::ct_eq(&commit, &self.commitment) {
            return Err(FormatError::CommitmentMismatch);
        }
        Ok(SegmentCipher::new(self.envelope.algorithm, &key))
    }

    /// Encodes the 212 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..ENVELOPE_LEN].copy_from_slice(&self.envelope.to_bytes());
        b[104..108].copy_from_slice(&self.part_number.to_be_bytes());
        b[108..116].copy_from_slice(&self.plaintext_len.to_be_bytes());
        b[116..148].copy_from_slice(&self.stream_salt);
        b[148..180].copy_from_slice(&self.binding_tag);
        b[180..212].copy_from_slice(&self.commitment);
        b
    }

    /// Parses 212 header bytes (syntax only; see [`PartHeader::verify`]).
    pub fn parse(b: &[u8]) -> Result<PartHeader, FormatError> {
        let envelope = Envelope::parse(b)?;
        if b.len() < HEADER_LEN {
            return Err(FormatError::TruncatedHeader {
                got: b.len(),
                need: HEADER_LEN,
            });
        }
        let part_number = u32::from_be_bytes(b[104..108].try_into().expect("4 bytes"));
        check_part_number(part_number)?;
        let plaintext_len = u64::from_be_bytes(b[108..116].try_into().expect("8 bytes"));
        check_len(plaintext_len)?;
        let mut h = PartHeader {
            envelope,
            part_number,
            plaintext_len,
            stream_salt: [0; 32],
            binding_tag: [0; 32],
            commitment: [0; 32],
        };
        h.stream_salt.copy_from_slice(&b[116..148]);
        h.binding_tag.copy_from_slice(&b[148..180]);
        h.commitment.copy_from_slice(&b[180..212]);
        Ok(h)
    }
}

fn check_part_number(n: u32) -> Result<(), FormatError> {
    if (1..=MAX_PART_NUMBER).contains(&n) {
        Ok(())
    } else {
        Err(FormatError::InvalidPartNumber(n))
    }
}

fn check_len(len: u64) -> Result<(), FormatError> {
    if len <= MAX_PART_PLAINTEXT {
        Ok(())
    } else {
        Err(FormatError::PartTooLarge(len))
    }
}
