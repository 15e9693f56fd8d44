//! The part header: 212 bytes at the start of every part stream
//! (FORMAT.md §Part header). Fixed size, so size arithmetic stays pure.
//!
//! ```text
//! off  len  field
//!   0    8  magic "SEALGATE"
//!   8    1  version (1 or 3)
//!   9    1  algorithm id
//!  10    1  segment size exponent (16)
//!  11    1  flags (0)
//!  12   16  KEK id
//!  28   12  wrap nonce
//!  40   48  wrapped DEK (32) + tag (16)
//!  88   16  object id
//! 104    4  v1: part number (u32 BE)
//!           v3: part kind (1) + part number (u24 BE)
//! 108    8  part plaintext length (u64 BE); a completion record: the
//!           object's total plaintext length
//! 116   32  stream salt
//! 148   32  name binding tag
//! 180   32  key commitment
//! ```
//!
//! Version 3 adds the part kind (FORMAT.md §Completion): the last part of
//! every object is marked, either as a data part that ends the object or as
//! a 212-byte completion record after the last data part, so a reader knows
//! the object's part count and size from authenticated bytes.

use super::aead::{KEY_LEN, SegmentCipher};
use super::envelope::{Dek, Envelope};
use super::{FORMAT_V1, FormatError, kdf};

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

/// What a part stream is (version 3; every version-1 part is [`PartKind::Data`]).
///
/// The kind is covered by the key commitment, so the provider cannot change
/// it. Never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    /// A data part that is not the object's last: more parts must follow.
    Data,
    /// A data part that ends the object (a single PUT, or a multipart
    /// upload's last part when it is smaller than 5 MiB and so known to be
    /// last when it is written). Its part number is the part count.
    Last,
    /// A completion record: a bare header after the last data part, added
    /// at CompleteMultipartUpload. Its part number is the data part count
    /// plus one and its length field the object's total plaintext length.
    Completion,
}

impl PartKind {
    /// The byte stored at header offset 104 (version 3).
    pub fn id(self) -> u8 {
        match self {
            PartKind::Data => 0x00,
            PartKind::Last => 0x01,
            PartKind::Completion => 0x02,
        }
    }

    fn from_id(id: u8) -> Result<Self, FormatError> {
        match id {
            0x00 => Ok(PartKind::Data),
            0x01 => Ok(PartKind::Last),
            0x02 => Ok(PartKind::Completion),
            other => Err(FormatError::UnknownPartKind(other)),
        }
    }

    /// True for the kinds that end an object.
    pub fn ends_object(self) -> bool {
        !matches!(self, PartKind::Data)
    }
}

/// One parsed part header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHeader {
    /// Object-level fields, shared by every part.
    pub envelope: Envelope,
    /// What this part stream is (always `Data` in version 1).
    pub kind: PartKind,
    /// S3 part number (1 for a single PUT).
    pub part_number: u32,
    /// Plaintext bytes in this part; for a completion record, the object's
    /// total plaintext length.
    pub plaintext_len: u64,
    /// Fresh random salt of this part stream (this upload attempt).
    pub stream_salt: [u8; 32],
    /// Binds the object to the bucket/key it was written under.
    pub binding_tag: [u8; 32],
    /// Key commitment of this part stream.
    pub commitment: [u8; 32],
}

impl PartHeader {
    /// Builds a header for a new data part stream and returns the content
    /// cipher. `kind` must be `Data` or `Last`, and `Data` in version 1.
    pub fn new(
        envelope: Envelope,
        dek: &Dek,
        binding_tag: [u8; 32],
        (part_number, kind): (u32, PartKind),
        plaintext_len: u64,
        stream_salt: [u8; 32],
    ) -> Result<(PartHeader, SegmentCipher), FormatError> {
        check_part_number(part_number)?;
        check_len(plaintext_len)?;
        check_kind(envelope.version, kind)?;
        if kind == PartKind::Completion {
            return Err(FormatError::UnknownPartKind(kind.id()));
        }
        let mut h = PartHeader {
            envelope,
            kind,
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

    /// The completion record of an object whose data parts are `1..part_number`
    /// and hold `total` plaintext bytes (version 3 only).
    pub fn completion(
        envelope: Envelope,
        dek: &Dek,
        binding_tag: [u8; 32],
        part_number: u32,
        total: u64,
        stream_salt: [u8; 32],
    ) -> Result<PartHeader, FormatError> {
        check_part_number(part_number)?;
        check_len(total)?;
        check_kind(envelope.version, PartKind::Completion)?;
        if part_number < 2 {
            return Err(FormatError::InvalidPartNumber(part_number));
        }
        let mut h = PartHeader {
            envelope,
            kind: PartKind::Completion,
            part_number,
            plaintext_len: total,
            stream_salt,
            binding_tag,
            commitment: [0; 32],
        };
        h.commitment = h.derive(dek).1;
        Ok(h)
    }

    fn derive(&self, dek: &Dek) -> (zeroize::Zeroizing<[u8; KEY_LEN]>, [u8; 32]) {
        let bytes = self.to_bytes();
        let context = &bytes[..KDF_CONTEXT_LEN];
        if self.kind == PartKind::Completion {
            // A record has no segments: only its commitment is derived, under
            // a label of its own.
            let commit = kdf::completion_commitment(dek.bytes(), &self.stream_salt, context);
            return (zeroize::Zeroizing::new([0u8; KEY_LEN]), commit);
        }
        kdf::part_keys(dek.bytes(), &self.stream_salt, context)
    }

    /// Checks the key commitment and returns the content cipher. Must succeed
    /// before any segment of this part is decrypted, and before a completion
    /// record's count or length is believed (a record has no segments; its
    /// cipher is never used).
    pub fn verify(&self, dek: &Dek) -> Result<SegmentCipher, FormatError> {
        let (key, commit) = self.derive(dek);
        if !kdf::ct_eq(&commit, &self.commitment) {
            return Err(FormatError::CommitmentMismatch);
        }
        Ok(SegmentCipher::new(self.envelope.algorithm, &key))
    }

    /// Bytes this part stream occupies at the provider, header included.
    pub fn stored_len(&self) -> u64 {
        match self.kind {
            PartKind::Completion => HEADER_LEN as u64,
            _ => super::size::part_ciphertext_len(self.plaintext_len),
        }
    }

    /// Encodes the 212 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..ENVELOPE_LEN].copy_from_slice(&self.envelope.to_bytes());
        b[104..108].copy_from_slice(&self.part_number.to_be_bytes());
        if self.envelope.version != FORMAT_V1 {
            // Part numbers stay below 2^24, so the top byte carries the kind.
            b[104] = self.kind.id();
        }
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
        let mut number = [0u8; 4];
        number.copy_from_slice(&b[104..108]);
        let kind = if envelope.version == FORMAT_V1 {
            PartKind::Data
        } else {
            let kind = PartKind::from_id(number[0])?;
            number[0] = 0;
            kind
        };
        let part_number = u32::from_be_bytes(number);
        check_part_number(part_number)?;
        let plaintext_len = u64::from_be_bytes(b[108..116].try_into().expect("8 bytes"));
        check_len(plaintext_len)?;
        let mut h = PartHeader {
            envelope,
            kind,
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

fn check_kind(version: u8, kind: PartKind) -> Result<(), FormatError> {
    if version == FORMAT_V1 && kind != PartKind::Data {
        return Err(FormatError::UnknownPartKind(kind.id()));
    }
    Ok(())
}

fn check_len(len: u64) -> Result<(), FormatError> {
    if len <= MAX_PART_PLAINTEXT {
        Ok(())
    } else {
        Err(FormatError::PartTooLarge(len))
    }
}
