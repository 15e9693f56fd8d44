//! The key store: key-encryption keys (KEKs) by id
//! (docs/KEYS.md).
//!
//! A store is a directory holding one JSON file per key (`<id>.kek`, mode
//! 0600) and a file `ACTIVE` naming the key new objects are wrapped with.
//! Old keys stay and keep decrypting what they wrapped. Loading refuses key
//! files that group or others can read, a directory (or ACTIVE, or a
//! revocation record) that group or others can write, files and a directory
//! owned by another user than the gateway's (or root), malformed files and
//! duplicate ids, naming the file and what to do. Secrets are zeroized when
//! dropped. With `provider.toml` the key files hold only a provider's
//! wrapping of each key ([`provider`]), unwrapped when the store loads.

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
    /// The provider that wrapped it (`transit key "…"`), or `None` for a
    /// plain key file.
    pub provider: Option<String>,
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
    /// Whole days since it was created.
    pub age_days: i64,
    /// Where it is kept: `file`, or the provider that wrapped it.
    pub provider: String,
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
        file::write_key(dir, id, &secret, created, provider.as_deref(), false)?;
        if existing.is_empty() || activate {
            file::write_active(dir, id)?;
        }
        Ok(id)
    }

    /// Wraps every plain key file of a store that has a provider: each is
    /// replaced by the provider's wrapping of the same key (same id, same
    /// creation time), so objects keep opening. Returns the ids wrapped.
    /// The old plain files' bytes may survive on the disk: rotate to a key
    /// that was never plain if that matters (docs/KEYS.md §Providers).
    pub fn wrap_plain(dir: &Path) -> Result<Vec<KeyId>, KeyError> {
        let provider = provider::open(dir)?.ok_or_else(|| KeyError::Malformed {
            path: dir.join(provider::PROVIDER_FILE),
            reason: "missing: a store needs a provider to wrap its keys".into(),
        })?;
        let keys = file::read_all_mode(dir, Some(provider.as_ref()), true)?;
        let mut wrapped = Vec::new();
        for k in keys.iter().filter(|k| k.provider.is_none()) {
            file::write_key(
                dir,
                k.kek.id(),
                k.kek.secret(),
                k.created,
                Some(provider.as_ref()),
                true,
            )?;
            wrapped.push(k.kek.id());
        }
        // What was written must load as the store.
        Self::load(dir)?;
        Ok(wrapped)
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
                age_days: (Utc::now() - k.created).num_days(),
                provider: k.provider.clone().unwrap_or_else(|| "file".into()),
            })
            .collect();
        v.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        v
    }

    /// When the active key was created.
    pub fn active_created(&self) -> DateTime<Utc> {
        self.keys
            .iter()
            .find(|k| k.kek.id() == self.active)
            .expect("checked at load")
            .created
    }

    /// Whether the active key is older than `max_age_days` at `now` (its
    /// cryptoperiod for wrapping new objects is over: rotate); its age in
    /// whole days.
    pub fn active_overdue(&self, max_age_days: u64, now: DateTime<Utc>) -> Option<i64> {
        let age = now - self.active_created();
        let max =
            chrono::Duration::days(i64::try_from(max_age_days).unwrap_or(i64::MAX / 86_400_000));
        (age > max).then(|| age.num_days())
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
/// the new store; and whether its keys may be used. They may not once
/// withdrawn (the provider refused them, or stayed out of reach past its
/// grace) or once the deadline a provider store was last confirmed for has
/// passed — enforced here, when a request asks, not by the re-check task
/// alone.
#[derive(Debug)]
pub struct KeyCell {
    store: std::sync::RwLock<std::sync::Arc<KeyStore>>,
    usable: std::sync::RwLock<Usable>,
}

#[derive(Debug, Default)]
struct Usable {
    withdrawn: Option<String>,
    /// Counts withdrawals: a reload that began before one does not undo it.
    generation: u64,
    /// Keys of a provider store are usable until then.
    until: Option<std::time::Instant>,
}

impl KeyCell {
    /// A cell holding `store`.
    pub fn new(store: KeyStore) -> Self {
        KeyCell {
            store: std::sync::RwLock::new(std::sync::Arc::new(store)),
            usable: std::sync::RwLock::new(Usable::default()),
        }
    }

    /// The store now in force.
    pub fn get(&self) -> std::sync::Arc<KeyStore> {
        self.store.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the store from its directory; on failure the old one stays.
    /// A withdrawal made while it was reading wins.
    pub fn reload(&self) -> Result<(), KeyError> {
        let dir = self.get().dir().to_owned();
        let generation = self.generation();
        let fresh = KeyStore::load(&dir)?;
        self.confirm(fresh, generation, None);
        Ok(())
    }

    /// The withdrawal count, to pass to [`KeyCell::confirm`].
    pub fn generation(&self) -> u64 {
        self.usable
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .generation
    }

    /// Puts `store`, loaded after [`KeyCell::generation`] returned
    /// `generation`, in force and its keys usable (until `until`, when
    /// given) — unless they were withdrawn since: then it is dropped.
    pub fn confirm(
        &self,
        store: KeyStore,
        generation: u64,
        until: Option<std::time::Instant>,
    ) -> bool {
        let mut u = self.usable.write().unwrap_or_else(|e| e.into_inner());
        if u.generation != generation {
            return false;
        }
        *self.store.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(store);
        u.withdrawn = None;
        if until.is_some() {
            u.until = until;
        }
        true
    }

    /// Keys usable until `until` unless confirmed again.
    pub fn usable_until(&self, until: std::time::Instant) {
        self.usable.write().unwrap_or_else(|e| e.into_inner()).until = Some(until);
    }

    /// Withdraws the keys: every request is refused until a store is
    /// confirmed again.
    pub fn withdraw(&self, why: String) {
        let mut u = self.usable.write().unwrap_or_else(|e| e.into_inner());
        u.withdrawn = Some(why);
        u.generation += 1;
    }

    /// Why the keys may not be used now, if they may not.
    pub fn withdrawn(&self) -> Option<String> {
        let u = self.usable.read().unwrap_or_else(|e| e.into_inner());
        if let Some(why) = &u.withdrawn {
            return Some(why.clone());
        }
        match u.until {
            Some(t) if std::time::Instant::now() > t => {
                Some("the key provider has not confirmed the keys within outage_grace_secs".into())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
