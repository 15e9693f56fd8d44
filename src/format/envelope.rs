//! Envelope encryption: a fresh data key (DEK) per object, wrapped by a
//! key-encryption key (KEK) from the local key store (FORMAT.md §Envelope).
//!
//! The wrap uses AES-256-GCM under a per-object key derived from the KEK and
//! the object id, with the header's identifying fields as associated data, so
//! changing the algorithm, key id or object id makes the unwrap fail.

use super::aead::{KEY_LEN, NONCE_LEN, SegmentCipher, TAG_LEN};
use super::header::{ENVELOPE_LEN, MAGIC, WRAP_AAD_PREFIX_LEN};
use super::is_known_version;
use super::{Algorithm, FORMAT_VERSION, FormatError, KeyId, RandomSource, SEGMENT_SHIFT, kdf};
use zeroize::Zeroizing;

/// A key-encryption key: lives in the key store, never leaves the gateway.
///
/// No `Debug`/`Display` of the secret; zeroized on drop.
pub struct Kek {
    id: KeyId,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl Kek {
    /// Wraps raw key bytes under an id.
    pub fn new(id: KeyId, key: Zeroizing<[u8; KEY_LEN]>) -> Self {
        Kek { id, key }
    }

    /// The key's id (public).
    pub fn id(&self) -> KeyId {
        self.id
    }

    pub(crate) fn secret(&self) -> &[u8; KEY_LEN] {
        &self.key
    }
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Finds key-encryption keys by id; implemented by the key store.
pub trait KekLookup {
    /// The key with this id, if the store holds it.
    fn kek(&self, id: &KeyId) -> Option<&Kek>;

    /// Why the key must not be used now (revoked), if so.
    fn revoked(&self, _id: &KeyId) -> Option<String> {
        None
    }

    /// Why the key no longer exists (destroyed on purpose: crypto-shredded),
    /// if so: reading under it is then refused as erased, not as unknown.
    fn destroyed(&self, _id: &KeyId) -> Option<String> {
        None
    }
}

impl KekLookup for Kek {
    fn kek(&self, id: &KeyId) -> Option<&Kek> {
        (self.id == *id).then_some(self)
    }
}

impl KekLookup for [Kek] {
    fn kek(&self, id: &KeyId) -> Option<&Kek> {
        self.iter().find(|k| k.id == *id)
    }
}

/// A per-object data key. Never stored unwrapped; zeroized on drop.
pub struct Dek(pub(crate) Zeroizing<[u8; KEY_LEN]>);

impl Dek {
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

/// The object-level part of every part header: algorithm, KEK id, wrapped
/// DEK and object id. Identical in all parts of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Format version (header byte 8): [`super::FORMAT_V1`] or [`super::FORMAT_V3`].
    pub version: u8,
    /// Content AEAD of the object.
    pub algorithm: Algorithm,
    /// Which KEK wrapped the DEK.
    pub kek_id: KeyId,
    /// Nonce of the DEK wrap.
    pub wrap_nonce: [u8; NONCE_LEN],
    /// The DEK encrypted under the wrap key, followed by its tag.
    pub wrapped_dek: [u8; KEY_LEN + TAG_LEN],
    /// Random per-object id; salt of the wrap and binding keys.
    pub object_id: [u8; 16],
}

impl Envelope {
    /// Starts a new object: draws a DEK, object id and wrap nonce, and wraps
    /// the DEK under `kek`.
    pub fn create(
        kek: &Kek,
        algorithm: Algorithm,
        rng: &mut dyn RandomSource,
    ) -> Result<(Envelope, Dek), FormatError> {
        Envelope::create_version(kek, algorithm, FORMAT_VERSION, rng)
    }

    /// [`Envelope::create`] for a given format version: only the test
    /// vectors write an older version, to re-seal what was pinned.
    pub fn create_version(
        kek: &Kek,
        algorithm: Algorithm,
        version: u8,
        rng: &mut dyn RandomSource,
    ) -> Result<(Envelope, Dek), FormatError> {
        if !is_known_version(version) {
            return Err(FormatError::UnsupportedVersion(version));
        }
        let mut dek = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill(dek.as_mut())?;
        let mut object_id = [0u8; 16];
        rng.fill(&mut object_id)?;
        let mut wrap_nonce = [0u8; NONCE_LEN];
        rng.fill(&mut wrap_nonce)?;
        let mut env = Envelope {
            version,
            algorithm,
            kek_id: kek.id(),
            wrap_nonce,
            wrapped_dek: [0u8; KEY_LEN + TAG_LEN],
            object_id,
        };
        let mut buf = *dek;
        let wk = kdf::wrap_key(kek.secret(), &object_id);
        let tag = SegmentCipher::new(Algorithm::Aes256Gcm, &wk).seal(
            wrap_nonce,
            &env.wrap_aad(),
            &mut buf,
        );
        env.wrapped_dek[..KEY_LEN].copy_from_slice(&buf);
        env.wrapped_dek[KEY_LEN..].copy_from_slice(&tag);
        Ok((env, Dek(dek)))
    }

    /// Unwraps the DEK with the KEK the envelope names.
    pub fn open(&self, keys: &(impl KekLookup + ?Sized)) -> Result<Dek, FormatError> {
        if let Some(why) = keys.destroyed(&self.kek_id) {
            return Err(FormatError::DestroyedKey {
                id: self.kek_id,
                why,
            });
        }
        let kek = keys
            .kek(&self.kek_id)
            .ok_or(FormatError::UnknownKey(self.kek_id))?;
        if let Some(why) = keys.revoked(&self.kek_id) {
            return Err(FormatError::RevokedKey {
                id: self.kek_id,
                why,
            });
        }
        let wk = kdf::wrap_key(kek.secret(), &self.object_id);
        let mut buf = Zeroizing::new([0u8; KEY_LEN]);
        buf.copy_from_slice(&self.wrapped_dek[..KEY_LEN]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&self.wrapped_dek[KEY_LEN..]);
        SegmentCipher::new(Algorithm::Aes256Gcm, &wk)
            .open(self.wrap_nonce, &self.wrap_aad(), buf.as_mut(), &tag)
            .map_err(|_| FormatError::UnwrapFailed)?;
        Ok(Dek(buf))
    }

    /// Associated data of the wrap: header bytes 0..28 followed by the object id.
    fn wrap_aad(&self) -> [u8; WRAP_AAD_PREFIX_LEN + 16] {
        let bytes = self.to_bytes();
        let mut aad = [0u8; WRAP_AAD_PREFIX_LEN + 16];
        aad[..WRAP_AAD_PREFIX_LEN].copy_from_slice(&bytes[..WRAP_AAD_PREFIX_LEN]);
        aad[WRAP_AAD_PREFIX_LEN..].copy_from_slice(&self.object_id);
        aad
    }

    /// Encodes header bytes 0..104 (FORMAT.md §Part header).
    pub fn to_bytes(&self) -> [u8; ENVELOPE_LEN] {
        let mut b = [0u8; ENVELOPE_LEN];
        b[0..8].copy_from_slice(MAGIC);
        b[8] = self.version;
        b[9] = self.algorithm.id();
        b[10] = SEGMENT_SHIFT;
        b[11] = 0;
        b[12..28].copy_from_slice(&self.kek_id.0);
        b[28..40].copy_from_slice(&self.wrap_nonce);
        b[40..88].copy_from_slice(&self.wrapped_dek);
        b[88..104].copy_from_slice(&self.object_id);
        b
    }

    /// Parses and checks header bytes 0..104. Checks are syntactic; nothing
    /// is authenticated until [`Envelope::open`].
    pub fn parse(b: &[u8]) -> Result<Envelope, FormatError> {
        if b.len() < ENVELOPE_LEN {
            if !MAGIC.starts_with(&b[..b.len().min(MAGIC.len())]) {
                return Err(FormatError::NotSealed);
            }
            return Err(FormatError::TruncatedHeader {
                got: b.len(),
                need: ENVELOPE_LEN,
            });
        }
        if &b[0..8] != MAGIC {
            return Err(FormatError::NotSealed);
        }
        if !is_known_version(b[8]) {
            return Err(FormatError::UnsupportedVersion(b[8]));
        }
        let algorithm = Algorithm::from_id(b[9])?;
        if b[10] != SEGMENT_SHIFT {
            return Err(FormatError::UnsupportedSegmentSize(b[10]));
        }
        if b[11] != 0 {
            return Err(FormatError::UnsupportedFlags(b[11]));
        }
        let mut env = Envelope {
            version: b[8],
            algorithm,
            kek_id: KeyId([0; 16]),
            wrap_nonce: [0; NONCE_LEN],
            wrapped_dek: [0; KEY_LEN + TAG_LEN],
            object_id: [0; 16],
        };
        env.kek_id.0.copy_from_slice(&b[12..28]);
        env.wrap_nonce.copy_from_slice(&b[28..40]);
        env.wrapped_dek.copy_from_slice(&b[40..88]);
        env.object_id.copy_from_slice(&b[88..104]);
        Ok(env)
    }

    /// The binding tag of this object's DEK for `name` (FORMAT.md §Name binding).
    pub fn binding_tag(&self, dek: &Dek, name: super::ObjectName<'_>) -> [u8; 32] {
        kdf::binding_tag(dek.bytes(), &self.object_id, name)
    }

    /// Checks a binding tag (from the inline header or from S3 metadata after
    /// a server-side copy) against the name the object was read under.
    pub fn check_binding(
        &self,
        dek: &Dek,
        name: super::ObjectName<'_>,
        tag: &[u8; 32],
    ) -> Result<(), FormatError> {
        if kdf::ct_eq(&self.binding_tag(dek, name), tag) {
            Ok(())
        } else {
            Err(FormatError::BindingMismatch)
        }
    }
}
