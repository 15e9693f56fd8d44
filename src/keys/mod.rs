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

pub mod domain;
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
    /// The key domain it belongs to; absent for the store's own keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// When it was destroyed with its domain, and under which exception.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destroyed: Option<String>,
}

/// All keys of one store, loaded and checked.
#[derive(Debug)]
pub struct KeyStore {
    dir: PathBuf,
    keys: Vec<StoredKey>,
    active: KeyId,
    revoked: HashMap<KeyId, Revocation>,
    /// The key domains inside the store, by name (none inside a domain).
    domains: Vec<(String, Domain)>,
}

/// A key domain as loaded.
#[derive(Debug)]
enum Domain {
    Live(KeyStore),
    Destroyed(domain::Tombstone),
}

/// Who decided a key domain's destruction: the registered erasure
/// exception, checked by the caller (the policy).
#[derive(Debug, Clone)]
pub struct ErasureDecision {
    /// The exception's id.
    pub exception: String,
    /// Its approver.
    pub approver: String,
    /// Its decision reference.
    pub decision_ref: String,
}

impl KeyStore {
    /// Loads and checks every key in `dir` and in each of its key domains
    /// ([`domain`]); key ids must be unique across all of them.
    pub fn load(dir: &Path) -> Result<KeyStore, KeyError> {
        let mut root = Self::load_one(dir)?;
        let mut seen: HashMap<KeyId, PathBuf> = root
            .keys
            .iter()
            .map(|k| (k.kek.id(), k.path.clone()))
            .collect();
        let mut note = |id: KeyId, path: PathBuf| match seen.get(&id) {
            Some(first) => Err(KeyError::Duplicate {
                id,
                first: first.clone(),
                second: path,
            }),
            None => {
                seen.insert(id, path);
                Ok(())
            }
        };
        for (name, d) in domain::list(dir)? {
            if let Some(t) = domain::read_tombstone(&d, &name)? {
                for id in t.ids() {
                    note(id, d.join(domain::TOMBSTONE_FILE))?;
                }
                root.domains.push((name, Domain::Destroyed(t)));
                continue;
            }
            if d.join(domain::DOMAINS_DIR).exists() {
                return Err(KeyError::Malformed {
                    path: d.join(domain::DOMAINS_DIR),
                    reason: "key domains do not nest: move it to the store's own domains/".into(),
                });
            }
            let store = Self::load_one(&d)?;
            for k in &store.keys {
                note(k.kek.id(), k.path.clone())?;
            }
            root.domains.push((name, Domain::Live(store)));
        }
        Ok(root)
    }

    /// Loads the keys of `dir` alone (a store without its domains).
    fn load_one(dir: &Path) -> Result<KeyStore, KeyError> {
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
            domains: Vec::new(),
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
        // A destroyed domain stays destroyed: its name is not reused.
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(t) = domain::read_tombstone(dir, &name)? {
            return Err(KeyError::DomainDestroyed {
                name: t.domain,
                since: t.started,
                exception: t.exception,
            });
        }
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

    /// Every key, the domains' too, oldest first, without secrets.
    pub fn list(&self) -> Vec<KeyInfo> {
        let mut v = self.list_one(None);
        for (name, d) in &self.domains {
            match d {
                Domain::Live(store) => v.extend(store.list_one(Some(name))),
                Domain::Destroyed(t) => v.extend(t.keys.iter().map(|k| {
                    KeyInfo {
                        id: k.id.clone(),
                        created: k.created.clone(),
                        active: false,
                        revoked: None,
                        age_days: DateTime::parse_from_rfc3339(&k.created)
                            .map(|c| (Utc::now() - c.with_timezone(&Utc)).num_days())
                            .unwrap_or(0),
                        provider: t.provider.clone(),
                        domain: Some(name.clone()),
                        destroyed: Some(format!(
                            "{} (exception {})",
                            t.completed.as_deref().unwrap_or(&t.started),
                            t.exception
                        )),
                    }
                })),
            }
        }
        v.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        v
    }

    fn list_one(&self, domain: Option<&str>) -> Vec<KeyInfo> {
        self.keys
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
                domain: domain.map(str::to_owned),
                destroyed: None,
            })
            .collect()
    }

    /// The key new objects of key domain `domain` are wrapped with (the
    /// store's own active key for `None`). A destroyed or missing domain
    /// is refused: nothing may be written under it.
    pub fn active_in(&self, domain: Option<&str>) -> Result<&Kek, KeyError> {
        match domain {
            None => Ok(self.active()),
            Some(name) => Ok(self.domain_store(name)?.active()),
        }
    }

    /// The live store of key domain `name`.
    fn domain_store(&self, name: &str) -> Result<&KeyStore, KeyError> {
        match self.domains.iter().find(|(n, _)| n == name) {
            Some((_, Domain::Live(s))) => Ok(s),
            Some((_, Domain::Destroyed(t))) => Err(KeyError::DomainDestroyed {
                name: name.to_owned(),
                since: t.started.clone(),
                exception: t.exception.clone(),
            }),
            None => Err(KeyError::UnknownDomain {
                name: name.to_owned(),
                dir: self.dir.clone(),
            }),
        }
    }

    /// The names of the key domains, live and destroyed, in name order.
    pub fn domain_names(&self) -> impl Iterator<Item = &str> {
        self.domains.iter().map(|(n, _)| n.as_str())
    }

    /// Whether key domain `name` exists (live or destroyed).
    pub fn has_domain(&self, name: &str) -> bool {
        self.domains.iter().any(|(n, _)| n == name)
    }

    /// The erasure record of key domain `name`, if it was destroyed.
    pub fn tombstone(&self, name: &str) -> Option<&domain::Tombstone> {
        self.domains.iter().find_map(|(n, d)| match d {
            Domain::Destroyed(t) if n == name => Some(t),
            _ => None,
        })
    }

    /// Every destroyed domain's erasure record.
    pub fn tombstones(&self) -> impl Iterator<Item = &domain::Tombstone> {
        self.domains.iter().filter_map(|(_, d)| match d {
            Domain::Destroyed(t) => Some(t),
            Domain::Live(_) => None,
        })
    }

    /// Each live store's active key (the store's own first, then each
    /// domain's), with its domain and creation time: what cryptoperiods
    /// apply to.
    pub fn actives(&self) -> Vec<(Option<&str>, KeyId, DateTime<Utc>)> {
        let mut v = vec![(None, self.active, self.active_created())];
        for (name, d) in &self.domains {
            if let Domain::Live(s) = d {
                v.push((Some(name.as_str()), s.active, s.active_created()));
            }
        }
        v
    }

    /// The active keys (the store's own, each live domain's) older than
    /// `max_age_days` at `now`: their cryptoperiod for wrapping new
    /// objects is over. Each with its domain and age in whole days.
    pub fn overdue_actives(
        &self,
        max_age_days: u64,
        now: DateTime<Utc>,
    ) -> Vec<(Option<&str>, KeyId, i64)> {
        let max =
            chrono::Duration::days(i64::try_from(max_age_days).unwrap_or(i64::MAX / 86_400_000));
        self.actives()
            .into_iter()
            .filter(|(_, _, created)| now - *created > max)
            .map(|(d, id, created)| (d, id, (now - created).num_days()))
            .collect()
    }

    /// The store (the root, or a live domain's) holding key `id`.
    fn holder(&self, id: &KeyId) -> Option<&KeyStore> {
        std::iter::once(self)
            .chain(self.domains.iter().filter_map(|(_, d)| match d {
                Domain::Live(s) => Some(s),
                Domain::Destroyed(_) => None,
            }))
            .find(|s| s.keys.iter().any(|k| k.kek.id() == *id))
    }

    /// The directory of the store (the root, or a domain's) holding key
    /// `id`: where `keys activate` and `keys revoke` act.
    pub fn dir_of(&self, id: &KeyId) -> Option<&Path> {
        self.holder(id).map(|s| s.dir.as_path())
    }

    /// Destroys key domain `name` of the store at `root` (crypto-shredding,
    /// docs/KEYS.md §Erasure): the erasure record first, then the root key
    /// at the domain's provider, then the wrapped key files; the completed
    /// record. Only a domain whose keys are wrapped by a provider root key
    /// of its own can be destroyed: plain key files, or a root key another
    /// domain shares, would outlive the destruction (backups, other hosts)
    /// or erase more than the domain. Run again after an interruption, it
    /// finishes what was begun; on a finished domain it returns the record.
    pub fn destroy_domain(
        root: &Path,
        name: &str,
        decision: &ErasureDecision,
    ) -> Result<domain::Tombstone, KeyError> {
        let d = domain::dir(root, name)?;
        if !d.is_dir() {
            return Err(KeyError::UnknownDomain {
                name: name.to_owned(),
                dir: root.to_owned(),
            });
        }
        let mut t = match domain::read_tombstone(&d, name)? {
            Some(t) if t.completed.is_some() => return Ok(t),
            Some(t) => t,
            None => {
                let store = Self::load(root)?;
                let dom = store.domain_store(name)?;
                let refuse = |reason: String| KeyError::NotDestroyable {
                    name: name.to_owned(),
                    reason,
                };
                let Some(mine) = provider::describe(&d)? else {
                    return Err(refuse(
                        "its keys are plain files, and copies of them (backups, other hosts) would outlive a destruction here: give the domain a provider.toml with a root key of its own, `sealgate keys wrap --domain`, then destroy it".into(),
                    ));
                };
                let same = |o: &provider::Description| {
                    o.kind == mine.kind
                        && o.root_key == mine.root_key
                        && o.location == mine.location
                };
                for (other, dir) in
                    std::iter::once(("the store itself", root.to_owned())).chain(
                        store.domains.iter().filter(|(n, _)| n != name).filter_map(
                            |(n, x)| match x {
                                Domain::Live(s) => Some((n.as_str(), s.dir.clone())),
                                Domain::Destroyed(_) => None,
                            },
                        ),
                    )
                {
                    if provider::describe(&dir)?.is_some_and(|o| same(&o)) {
                        return Err(refuse(format!(
                            "its provider root key {:?} also wraps the keys of {other}: destroying it would erase those too; give each domain a root key of its own",
                            mine.root_key
                        )));
                    }
                }
                let t = domain::Tombstone {
                    format: domain::ERASURE_FORMAT.into(),
                    domain: name.to_owned(),
                    keys: dom
                        .keys
                        .iter()
                        .map(|k| domain::ErasedKey {
                            id: k.kek.id().to_string(),
                            created: k.created.to_rfc3339_opts(SecondsFormat::Secs, true),
                        })
                        .collect(),
                    provider: format!("{} key {:?} at {}", mine.kind, mine.root_key, mine.location),
                    exception: decision.exception.clone(),
                    approver: decision.approver.clone(),
                    decision_ref: decision.decision_ref.clone(),
                    started: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
                    completed: None,
                    receipts: Vec::new(),
                };
                // The record that authorises the destruction comes first:
                // from here the domain's keys are gone for every loader.
                domain::write_tombstone(&d, &t)?;
                t
            }
        };
        let p = provider::open(&d)?.ok_or_else(|| KeyError::NotDestroyable {
            name: name.to_owned(),
            reason: format!(
                "{} is gone, so its root key cannot be destroyed now; restore it and run again",
                d.join(provider::PROVIDER_FILE).display()
            ),
        })?;
        let receipt = p.destroy().map_err(|source| KeyError::Provider {
            path: d.join(provider::PROVIDER_FILE),
            provider: t.provider.clone(),
            source,
        })?;
        t.receipts.push(receipt);
        let n = domain::remove_key_files(&d)?;
        t.receipts.push(format!(
            "{n} wrapped key file(s) removed from {}",
            d.display()
        ));
        t.completed = Some(Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true));
        domain::write_tombstone(&d, &t)?;
        Ok(t)
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
        self.holder(id)?
            .keys
            .iter()
            .map(|k| &k.kek)
            .find(|k| k.id() == *id)
    }

    fn destroyed(&self, id: &KeyId) -> Option<String> {
        let t = self.tombstones().find(|t| t.ids().contains(id))?;
        Some(format!(
            "destroyed with key domain {:?} (begun {}, exception {})",
            t.domain, t.started, t.exception
        ))
    }

    fn revoked(&self, id: &KeyId) -> Option<String> {
        let r = self.holder(id)?.revoked.get(id)?;
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
    /// Destroyed domains already reported by [`KeyCell::announce_erasures`].
    announced: std::sync::Mutex<std::collections::HashSet<String>>,
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
            announced: std::sync::Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Reports each destroyed key domain of the store in force once per
    /// process, as a security event (hence in the audit log): at start,
    /// and when a reload finds a domain destroyed since. The destruction
    /// itself is recorded by its erasure record and certificate; this is
    /// the gateway's acknowledgement that it no longer holds the keys.
    pub fn announce_erasures(&self) {
        let store = self.get();
        let mut seen = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        for t in store.tombstones() {
            if seen.insert(t.domain.clone()) {
                let ids: Vec<&str> = t.keys.iter().map(|k| k.id.as_str()).collect();
                tracing::warn!(
                    target: crate::telemetry::security::TARGET,
                    event = "key_domain_destroyed",
                    domain = %t.domain,
                    key_ids = %ids.join(","),
                    exception = %t.exception,
                    approver = %t.approver,
                    started = %t.started,
                    completed = t.completed.as_deref().unwrap_or("(interrupted: run keys destroy again)"),
                    "key domain destroyed: its objects are unreadable; this gateway holds none of its keys"
                );
            }
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
