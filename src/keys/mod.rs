//! The local key store: key-encryption keys (KEKs) on disk, by id
//! (docs/KEYS.md).
//!
//! A store is a directory holding one JSON file per key (`<id>.kek`, mode
//! 0600) and a file `ACTIVE` naming the key new objects are wrapped with.
//! Old keys stay and keep decrypting what they wrapped. Loading refuses key
//! files that group or others can read, malformed files and duplicate ids,
//! naming the file and what to do. Secrets are zeroized when dropped.

mod error;
mod file;

pub use error::KeyError;

use crate::format::{Kek, KekLookup, KeyId, OsRandom, RandomSource};
use chrono::{DateTime, SecondsFormat, Utc};
use std::path::{Path, PathBuf};

/// File name of the pointer to the active key.
pub const ACTIVE_FILE: &str = "ACTIVE";
/// Extension of key files.
pub const KEY_EXT: &str = "kek";

/// A key as the store holds it.
#[derive(Debug)]
pub struct StoredKey {
    /// The key itself.
    pub kek: Kek,
    /// When it was generated.
    pub created: DateTime<Utc>,
    /// The file it came from.
    pub path: PathBuf,
}

/// What `keys list` shows about a key: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    /// Key id (32 hex digits).
    pub id: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Whether new objects are wrapped with it.
    pub active: bool,
}

/// All keys of one store, loaded and checked.
#[derive(Debug)]
pub struct KeyStore {
    dir: PathBuf,
    keys: Vec<StoredKey>,
    active: KeyId,
}

impl KeyStore {
    /// Loads and checks every key in `dir`.
    pub fn load(dir: &Path) -> Result<KeyStore, KeyError> {
        let keys = file::read_all(dir)?;
        if keys.is_empty() {
            return Err(KeyError::Empty {
                dir: dir.to_owned(),
            });
        }
        let active = file::read_active(dir)?;
        if !keys.iter().any(|k| k.kek.id() == active) {
            return Err(KeyError::ActiveUnknown {
                dir: dir.to_owned(),
                id: active,
            });
        }
        Ok(KeyStore {
            dir: dir.to_owned(),
            keys,
            active,
        })
    }

    /// Creates a new key in `dir` (creating the directory with mode 0700 if
    /// needed). The first key of a store becomes active; later ones only when
    /// `activate` is set, so a key can be distributed to every replica before
    /// any replica starts using it.
    pub fn generate(dir: &Path, activate: bool) -> Result<KeyId, KeyError> {
        Self::generate_with(dir, activate, &mut OsRandom)
    }

    fn generate_with(
        dir: &Path,
        activate: bool,
        rng: &mut dyn RandomSource,
    ) -> Result<KeyId, KeyError> {
        file::ensure_dir(dir)?;
        // Refuse to add to a store that does not load cleanly.
        let existing = file::read_all(dir)?;
        let mut id = KeyId([0; 16]);
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill(&mut id.0).map_err(|_| KeyError::Random)?;
        rng.fill(secret.as_mut()).map_err(|_| KeyError::Random)?;
        let created = Utc::now();
        file::write_key(dir, id, &secret, created)?;
        if existing.is_empty() || activate {
            file::write_active(dir, id)?;
        }
        Ok(id)
    }

    /// Generates a key and makes it active: new objects use it, objects
    /// wrapped by older keys still open.
    pub fn rotate(dir: &Path) -> Result<KeyId, KeyError> {
        Self::load(dir)?;
        Self::generate(dir, true)
    }

    /// Makes an existing key active.
    pub fn activate(dir: &Path, id: KeyId) -> Result<(), KeyError> {
        let store = Self::load(dir)?;
        if store.kek(&id).is_none() {
            return Err(KeyError::ActiveUnknown {
                dir: dir.to_owned(),
                id,
            });
        }
        file::write_active(dir, id)
    }

    /// The key new objects are wrapped with.
    pub fn active(&self) -> &Kek {
        &self
            .keys
            .iter()
            .find(|k| k.kek.id() == self.active)
            .expect("checked at load")
            .kek
    }

    /// Every key, oldest first, without secrets.
    pub fn list(&self) -> Vec<KeyInfo> {
        let mut v: Vec<KeyInfo> = self
            .keys
            .iter()
            .map(|k| KeyInfo {
                id: k.kek.id().to_string(),
                created: k.created.to_rfc3339_opts(SecondsFormat::Secs, true),
                active: k.kek.id() == self.active,
            })
            .collect();
        v.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        v
    }

    /// The directory this store was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl KekLookup for KeyStore {
    fn kek(&self, id: &KeyId) -> Option<&Kek> {
        self.keys.iter().map(|k| &k.kek).find(|k| k.id() == *id)
    }
}

#[cfg(test)]
mod tests;
