//! The local key store: key-encryption keys (KEKs) on disk, by id
//! (docs/KEYS.md).
//!
//! A store is a directory holding one JSON file per key (`<id>.kek`, mode
//! 0600) and a file `ACTIVE` naming the key new objects are wrapped with.
//! Old keys stay and keep decrypting what they wrapped. Loading refuses key
//! files that group or others can read, a directory (or ACTIVE, or a
//! revocation record) that group or others can write, files and a directory
//! owned by another user than the gateway's (or root), malformed files and
//! duplicate ids, naming the file and what to do. Secrets are zeroized when
//! dropped.

mod error;
mod file;
pub mod provider;
mod revocation;

pub use error::KeyError;
pub use revocation::Revocation;

use crate::format::{Kek, KekLookup, KeyId, OsRandom, RandomSource};
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::HashMap;
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
    /// When it is (or will be) revoked, RFC 3339, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

/// All keys of one store, loaded and checked.
#[derive(Debug)]
pub struct KeyStore {
    dir: PathBuf,
    keys: Vec<StoredKey>,
    active: KeyId,
    revoked: HashMap<KeyId, Revocation>,
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
        let mut revoked = HashMap::new();
        for (id, r, path) in revocation::read_all(dir)? {
            if !keys.iter().any(|k| k.kek.id() == id) {
                return Err(KeyError::RevokedUnknown { path, id });
            }
            if id == active {
                return Err(KeyError::ActiveRevoked {
                    id,
                    reason: r.reason,
                });
            }
            revoked.insert(id, r);
        }
        Ok(KeyStore {
            dir: dir.to_owned(),
            keys,
            active,
            revoked,
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
        let provider = provider::open(dir)?;
        // Refuse to add to a store that does not load cleanly.
        let existing = file::read_all_with(dir, provider.as_deref())?;
        let mut id = KeyId([0; 16]);
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill(&mut id.0).map_err(|_| KeyError::Random)?;
        rng.fill(secret.as_mut()).map_err(|_| KeyError::Random)?;
        let created = Utc::now();
        file::write_key(dir, id, &secret, created, provider.as_deref())?;
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

    /// Makes an existing key active; a revoked key cannot be.
    pub fn activate(dir: &Path, id: KeyId) -> Result<(), KeyError> {
        let store = Self::load(dir)?;
        if store.kek(&id).is_none() {
            return Err(KeyError::ActiveUnknown {
                dir: dir.to_owned(),
                id,
            });
        }
        if let Some(r) = store.revoked.get(&id) {
            return Err(KeyError::ActiveRevoked {
                id,
                reason: r.reason.clone(),
            });
        }
        file::write_active(dir, id)
    }

    /// Revokes a key from `at` on (now, or a later time: a scheduled
    /// expiry). From then the gateway refuses to open objects wrapped with
    /// it. The active key cannot be revoked: activate another one first.
    /// Returns the revocation file written.
    pub fn revoke(dir: &Path, id: KeyId, r: &Revocation) -> Result<PathBuf, KeyError> {
        let store = Self::load(dir)?;
        if store.kek(&id).is_none() {
            return Err(KeyError::ActiveUnknown {
                dir: dir.to_owned(),
                id,
            });
        }
        if id == store.active {
            return Err(KeyError::ActiveRevoked {
                id,
                reason: "revocation requested".into(),
            });
        }
        if store.revoked.contains_key(&id) {
            return Err(KeyError::AlreadyRevoked {
                id,
                path: dir.join(format!("{id}.{}", revocation::REVOKED_EXT)),
            });
        }
        revocation::write(dir, id, r)
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
                revoked: self.revoked.get(&k.kek.id()).map(|r| {
                    format!(
                        "{} ({})",
                        r.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                        r.reason
                    )
                }),
            })
            .collect();
        v.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        v
    }

    /// From when key `id` is revoked (possibly a future time), if it is.
    pub fn revoked_at(&self, id: &KeyId) -> Option<DateTime<Utc>> {
        self.revoked.get(id).map(|r| r.at)
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

    fn revoked(&self, id: &KeyId) -> Option<String> {
        let r = self.revoked.get(id)?;
        (r.at <= Utc::now()).then(|| {
            format!(
                "revoked at {}: {}",
                r.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                r.reason
            )
        })
    }
}

/// The key store in force, swapped whole when the gateway reloads it
/// (SIGHUP, or the provider re-check), so requests see either the old or
/// the new store; and whether its keys are withdrawn (the provider refused
/// them, or has been out of reach past its grace), when no request may use
/// them.
#[derive(Debug)]
pub struct KeyCell {
    store: std::sync::RwLock<std::sync::Arc<KeyStore>>,
    withdrawn: std::sync::RwLock<Option<String>>,
}

impl KeyCell {
    /// A cell holding `store`.
    pub fn new(store: KeyStore) -> Self {
        KeyCell {
            store: std::sync::RwLock::new(std::sync::Arc::new(store)),
            withdrawn: std::sync::RwLock::new(None),
        }
    }

    /// The store now in force.
    pub fn get(&self) -> std::sync::Arc<KeyStore> {
        self.store.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the store from its directory; on failure the old one stays.
    pub fn reload(&self) -> Result<(), KeyError> {
        let dir = self.get().dir().to_owned();
        self.replace(KeyStore::load(&dir)?);
        Ok(())
    }

    /// Puts `store` in force; its keys are usable (no longer withdrawn).
    pub fn replace(&self, store: KeyStore) {
        *self.store.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(store);
        *self.withdrawn.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Withdraws the keys: every request is refused (503, with `why`) until
    /// a store is put in force again.
    pub fn withdraw(&self, why: String) {
        *self.withdrawn.write().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    /// Why the keys are withdrawn, if they are.
    pub fn withdrawn(&self) -> Option<String> {
        self.withdrawn
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests;
