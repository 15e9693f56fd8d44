//! The exception registry: an append-only JSON-lines file in which every
//! line is chained to the previous one (SHA-256 of its bytes) and
//! authenticated with an HMAC under a key derived from a local KEK, so an
//! edited, reordered or deleted line is detected (docs/EXCEPTIONS.md).

use super::approval::{self, Approval};
use super::verified::{self, StateError, Verified};
use crate::chain::{self, Chain, Purpose};
use crate::format::KeyId;
use crate::keys::KeyStore;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What an exception allows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Allowance {
    /// Storing new objects unencrypted in the covered buckets.
    UnencryptedWrites,
    /// Reading objects that predate the gateway (not in sealgate's format).
    LegacyReads,
    /// Using an upstream outside the allowed jurisdictions.
    DataLocation,
    /// Destroying a key domain's keys (crypto-shredding), for the domains
    /// the exception names.
    Erasure,
}

impl std::str::FromStr for Allowance {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "unencrypted-writes" => Ok(Allowance::UnencryptedWrites),
            "legacy-reads" => Ok(Allowance::LegacyReads),
            "data-location" => Ok(Allowance::DataLocation),
            "erasure" => Ok(Allowance::Erasure),
            _ => Err(format!(
                "unknown allowance {s:?}: expected unencrypted-writes, legacy-reads, data-location or erasure"
            )),
        }
    }
}

/// A formal decision to allow something encryption would otherwise forbid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    /// Unique id, e.g. `EX-2026-004`.
    pub id: String,
    /// Who approved the decision.
    pub approver: String,
    /// Where the decision is recorded (minutes, ticket).
    pub decision_ref: String,
    /// Why it is needed.
    pub reason: String,
    /// The risk assessment.
    pub risk: String,
    /// Classification of the data concerned.
    pub classification: String,
    /// Bucket names or patterns (`*` matches any run of characters).
    pub buckets: Vec<String>,
    /// What it allows.
    pub allows: Vec<Allowance>,
    /// The key domains an `erasure` exception allows destroying (absent
    /// from records of other kinds, so their signatures are unchanged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// Valid from.
    pub starts: DateTime<Utc>,
    /// Valid until (exclusive).
    pub expires: DateTime<Utc>,
}

/// A revocation: appended, never replacing the original record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// The exception revoked.
    pub id: String,
    /// Who revoked it.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// One registry entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Entry {
    /// A new exception.
    Register(Exception),
    /// An exception revoked.
    Revoke(Revocation),
}

/// One line of the file, without its MAC (the MAC covers exactly these
/// fields, serialized in this order).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    seq: u64,
    time: DateTime<Utc>,
    /// SHA-256 (hex) of the previous line's bytes; 64 zeros for the first.
    prev: String,
    /// The KEK the MAC key derives from.
    key: String,
    entry: Entry,
    /// The approver's signature over a registered exception (absent on
    /// unsigned exceptions and on every line written before signatures
    /// existed, whose bytes are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approval: Option<Approval>,
}

/// A line as stored.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(flatten)]
    body: Body,
    mac: String,
}

impl chain::Record for Line {
    fn link(&self) -> chain::Link<'_> {
        chain::Link {
            seq: self.body.seq,
            time: self.body.time,
            prev: &self.body.prev,
            key: &self.body.key,
            mac: &self.mac,
        }
    }

    fn signed_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body).expect("serializable")
    }
}

/// Why the registry cannot be used or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// A line fails verification: edited, reordered, deleted or cut short.
    #[error("{path} line {line}: {why} (the registry has been altered outside sealgate)")]
    Damaged {
        /// File.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What failed.
        why: String,
    },
    /// A new entry is refused; the registry is unchanged.
    #[error("{0}; the registry is unchanged")]
    Invalid(String),
    /// The registry is shorter than, or forked from, what sealgate last
    /// verified (its verified-state file): lines were removed (e.g. a
    /// revocation) or the file was replaced by another chain.
    #[error(
        "{path}: {why}, but sealgate verified line {seq} (SHA-256 {hash}) on {time} (recorded in {state}): the registry was cut back or replaced, which could revive a revoked exception. Refused: restore the registry from its backup (docs/EXCEPTIONS.md §Verified state)"
    )]
    RolledBack {
        /// File.
        path: PathBuf,
        /// The verified-state file.
        state: PathBuf,
        /// What the registry has instead.
        why: String,
        /// The line verified last.
        seq: u64,
        /// Its SHA-256 (hex).
        hash: String,
        /// When it was verified.
        time: DateTime<Utc>,
    },
    /// The verified-state file cannot be read or written.
    #[error(transparent)]
    State(#[from] StateError),
}

/// An exception's state at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Valid now.
    Active,
    /// Not yet valid.
    Pending,
    /// Past its expiry.
    Expired,
    /// Revoked.
    Revoked,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Active => "active",
            State::Pending => "not yet valid",
            State::Expired => "expired",
            State::Revoked => "revoked",
        })
    }
}

/// A verified registry, folded into its current records.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// Exceptions by id, with their revocation if any.
    pub exceptions: BTreeMap<String, (Exception, Option<Revocation>)>,
    lines: usize,
    last_hash: [u8; 32],
    /// SHA-256 of every line, in order (to find the verified head).
    hashes: Vec<[u8; 32]>,
    /// Approver signatures by exception id, each verified at load.
    approvals: BTreeMap<String, Approval>,
}

impl Registry {
    /// Reads and verifies the whole file (a missing file is an empty
    /// registry), refuses it when it does not contain the line its
    /// verified-state file (`<registry>.verified`) names, and moves that
    /// state forward to the registry's last line.
    pub fn load(path: &Path, keys: &KeyStore) -> Result<Registry, RegistryError> {
        Registry::load_at(path, &crate::config::verified_state_path(path), keys)
    }

    /// [`Registry::load`] with the verified state kept in `state`.
    pub fn load_at(path: &Path, state: &Path, keys: &KeyStore) -> Result<Registry, RegistryError> {
        let reg = Registry::read_checked(path, state, keys)?;
        reg.advance(path, state, None)?;
        Ok(reg)
    }

    /// Verifies the file and checks it against the verified state, without
    /// writing anything (for read-only uses: listings, reports).
    pub fn read_checked(
        path: &Path,
        state: &Path,
        keys: &KeyStore,
    ) -> Result<Registry, RegistryError> {
        let reg = Registry::read(path, keys)?;
        if let Some(v) = verified::read(state)? {
            reg.check(path, state, &v)?;
        }
        Ok(reg)
    }

    /// Refuses a registry that lacks the verified line `v`.
    fn check(&self, path: &Path, state: &Path, v: &Verified) -> Result<(), RegistryError> {
        let why = match self.hashes.get(v.seq as usize - 1) {
            None => format!("the registry has {} line(s)", self.lines),
            Some(h) if hex::encode(h) != v.hash => format!(
                "line {} has SHA-256 {} (another chain)",
                v.seq,
                hex::encode(h)
            ),
            Some(_) => return Ok(()),
        };
        Err(RegistryError::RolledBack {
            path: path.to_owned(),
            state: state.to_owned(),
            why,
            seq: v.seq,
            hash: v.hash.clone(),
            time: v.time,
        })
    }

    /// Moves the verified state forward to this registry's last line, under
    /// the registry's lock (`held`: the caller's locked handle), and records
    /// it (`registry_verified`). A state already at or past it is left.
    fn advance(
        &self,
        path: &Path,
        state: &Path,
        held: Option<&std::fs::File>,
    ) -> Result<(), RegistryError> {
        if self.lines == 0 {
            return Ok(());
        }
        let io = |source| RegistryError::Io {
            path: path.to_owned(),
            source,
        };
        let seq = self.lines as u64;
        let current = verified::read(state)?;
        if current.as_ref().is_some_and(|v| v.seq >= seq) {
            return Ok(());
        }
        let _lock = match held {
            Some(_) => None,
            None => {
                let f = std::fs::File::open(path).map_err(io)?;
                f.lock().map_err(io)?;
                Some(f)
            }
        };
        // Re-read under the lock: another writer may have moved it on.
        let current = verified::read(state)?;
        if let Some(v) = &current {
            if v.seq >= seq {
                return Ok(());
            }
            self.check(path, state, v)?;
        }
        let hash = hex::encode(self.last_hash);
        verified::write(
            state,
            &Verified {
                seq,
                hash: hash.clone(),
                time: Utc::now(),
            },
        )?;
        if current.is_none() && held.is_none() {
            tracing::warn!(
                target: crate::telemetry::security::TARGET,
                event = "registry_state_missing",
                registry = %path.display(),
                state = %state.display(),
                seq,
                "the exception registry had no verified-state file: starting one at its current last line (first use, or the file was removed)"
            );
        }
        tracing::info!(
            target: crate::telemetry::security::TARGET,
            event = "registry_verified",
            registry = %path.display(),
            seq,
            hash = %hash,
            "exception registry verified up to this line; a shorter or forked registry is refused from now on"
        );
        Ok(())
    }

    /// The approver signature of exception `id`, verified at load.
    pub fn approval(&self, id: &str) -> Option<&Approval> {
        self.approvals.get(id)
    }

    /// The last line verified: (sequence, SHA-256 hex), `None` when empty.
    pub fn head(&self) -> Option<(u64, String)> {
        (self.lines > 0).then(|| (self.lines as u64, hex::encode(self.last_hash)))
    }

    /// Reads and verifies the file alone; a missing file is empty.
    fn read(path: &Path, keys: &KeyStore) -> Result<Registry, RegistryError> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Registry::default()),
            Err(source) => {
                return Err(RegistryError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Registry::parse(&text, path, keys)
    }

    /// Verifies and reads registry text; `path` names it in errors.
    pub fn parse(text: &[u8], path: &Path, keys: &KeyStore) -> Result<Registry, RegistryError> {
        let mut reg = Registry::default();
        let damaged = |line: usize, why: String| RegistryError::Damaged {
            path: path.to_owned(),
            line,
            why,
        };
        if !text.is_empty() && !text.ends_with(b"\n") {
            let n = text.split(|b| *b == b'\n').count();
            return Err(damaged(
                n,
                "the last line is cut short (no line end)".into(),
            ));
        }
        // The latest time any line so far carries: once the chain has
        // passed a key's revocation, no later line may use that key.
        let mut latest: Option<DateTime<Utc>> = None;
        for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
            if raw.is_empty() && i + 1 == text.split(|b| *b == b'\n').count() {
                break; // after the final newline
            }
            let n = i + 1;
            let mut chain = Chain::at(reg.lines as u64, reg.last_hash);
            // No line may use a key once the chain has passed its revocation.
            let not_revoked = |id: &KeyId, time: DateTime<Utc>| {
                let seen = latest.map_or(time, |l| l.max(time));
                latest = Some(seen);
                match keys.revoked_at(id).filter(|at| seen >= *at) {
                    Some(at) => Err(format!(
                        "authenticated with key {id}, revoked at {} (this line or an earlier one is dated {}, at or after the revocation)",
                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        seen.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    )),
                    None => Ok(()),
                }
            };
            let line: Line = chain
                .verify_next(
                    raw,
                    Purpose::Registry,
                    "a registry record",
                    keys,
                    not_revoked,
                )
                .map_err(|why| damaged(n, why))?;
            if let Some(a) = &line.body.approval {
                let Entry::Register(e) = &line.body.entry else {
                    return Err(damaged(n, "an approver signature on a revocation".into()));
                };
                approval::verify(a, e).map_err(|why| damaged(n, why.to_string()))?;
                reg.approvals.insert(e.id.clone(), a.clone());
            }
            reg.apply(line.body.entry).map_err(|why| damaged(n, why))?;
            reg.last_hash = chain.last_hash;
            reg.hashes.push(reg.last_hash);
            reg.lines = n;
        }
        Ok(reg)
    }

    fn apply(&mut self, entry: Entry) -> Result<(), String> {
        match entry {
            Entry::Register(e) => {
                if self.exceptions.contains_key(&e.id) {
                    return Err(format!("exception {} registered twice", e.id));
                }
                self.exceptions.insert(e.id.clone(), (e, None));
            }
            Entry::Revoke(r) => match self.exceptions.get_mut(&r.id) {
                Some((_, rev @ None)) => *rev = Some(r),
                Some(_) => return Err(format!("exception {} revoked twice", r.id)),
                None => return Err(format!("revokes unknown exception {}", r.id)),
            },
        }
        Ok(())
    }

    /// Checks a new exception, then appends it (chained, authenticated with
    /// the active key). Nothing is written when a check fails.
    pub fn register(path: &Path, keys: &KeyStore, e: Exception) -> Result<(), RegistryError> {
        Registry::register_at(
            path,
            &crate::config::verified_state_path(path),
            keys,
            e,
            None,
        )
    }

    /// [`Registry::register`] with the verified state kept in `state` and,
    /// optionally, the approver's signature (refused unless it verifies
    /// over exactly this exception).
    pub fn register_at(
        path: &Path,
        state: &Path,
        keys: &KeyStore,
        e: Exception,
        signed: Option<Approval>,
    ) -> Result<(), RegistryError> {
        if let Some(a) = &signed {
            approval::verify(a, &e).map_err(|why| RegistryError::Invalid(why.to_string()))?;
        }
        let bad = |m: String| Err(RegistryError::Invalid(m));
        for (what, v) in [
            ("id", &e.id),
            ("approver", &e.approver),
            ("decision reference", &e.decision_ref),
            ("reason", &e.reason),
            ("risk assessment", &e.risk),
            ("data classification", &e.classification),
        ] {
            if v.trim().is_empty() {
                return bad(format!("the {what} is missing"));
            }
        }
        if e.expires <= e.starts {
            return bad(format!(
                "expiry {} is not after start {}",
                e.expires, e.starts
            ));
        }
        if e.buckets.is_empty() {
            return bad("no bucket given".into());
        }
        if let Some(b) = e.buckets.iter().find(|b| !valid_pattern(b)) {
            return bad(format!(
                "bucket pattern {b:?} is not a bucket name (3-63 of a-z 0-9 . -) with optional *"
            ));
        }
        if e.allows.is_empty() {
            return bad("the exception allows nothing".into());
        }
        if e.allows.contains(&Allowance::Erasure) == e.domains.is_empty() {
            return bad("an erasure exception names the key domains it allows destroying (--domain), and only an erasure exception names any".into());
        }
        if let Some(d) = e
            .domains
            .iter()
            .find(|d| !crate::keys::domain::valid_name(d))
        {
            return bad(format!("{d:?} is not a key domain name"));
        }
        Self::append(path, state, keys, signed, |reg| {
            if reg.exceptions.contains_key(&e.id) {
                return Err(format!("exception {} already exists", e.id));
            }
            Ok(Entry::Register(e))
        })
    }

    /// Appends a revocation of a registered, unrevoked exception.
    pub fn revoke(path: &Path, keys: &KeyStore, r: Revocation) -> Result<(), RegistryError> {
        Registry::revoke_at(path, &crate::config::verified_state_path(path), keys, r)
    }

    /// [`Registry::revoke`] with the verified state kept in `state`.
    pub fn revoke_at(
        path: &Path,
        state: &Path,
        keys: &KeyStore,
        r: Revocation,
    ) -> Result<(), RegistryError> {
        if r.by.trim().is_empty() || r.reason.trim().is_empty() {
            return Err(RegistryError::Invalid(
                "a revocation needs who (--by) and why (--reason)".into(),
            ));
        }
        Self::append(path, state, keys, None, |reg| {
            match reg.exceptions.get(&r.id) {
                None => Err(format!("no exception {}", r.id)),
                Some((_, Some(_))) => Err(format!("exception {} is already revoked", r.id)),
                Some(_) => Ok(Entry::Revoke(r)),
            }
        })
    }

    /// Verifies the file under an exclusive lock, lets `make` build the next
    /// entry from the verified state, appends it with one write + fsync, and
    /// then moves the verified state to the new line. A registry shorter
    /// than or forked from the verified state is refused, not extended.
    fn append(
        path: &Path,
        state: &Path,
        keys: &KeyStore,
        approval: Option<Approval>,
        make: impl FnOnce(&Registry) -> Result<Entry, String>,
    ) -> Result<(), RegistryError> {
        let io = |source| RegistryError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let mut locked = chain::Locked::acquire(&mut file).map_err(io)?;
        let good_len = locked.file().metadata().map_err(io)?.len();
        let mut reg = Registry::read_checked(path, state, keys)?;
        let entry = make(&reg).map_err(RegistryError::Invalid)?;
        let kek = keys.active();
        let mut chain = Chain::at(reg.lines as u64, reg.last_hash);
        let body = Body {
            seq: chain.next_seq(),
            time: Utc::now(),
            prev: chain.prev(),
            key: kek.id().to_string(),
            entry,
            approval,
        };
        let mac = Chain::mac(Purpose::Registry, kek.secret(), &body);
        let mut line = Vec::new();
        chain.push(&Line { body, mac }, &mut line);
        reg.last_hash = chain.last_hash;
        reg.hashes.push(reg.last_hash);
        reg.lines += 1;
        locked
            .append(good_len, &line)
            .map_err(|failed| io(failed.error))?;
        reg.advance(path, state, Some(locked.file()))?;
        Ok(())
    }

    /// The state of exception `id` at `now`.
    pub fn state(&self, id: &str, now: DateTime<Utc>) -> Option<State> {
        let (e, rev) = self.exceptions.get(id)?;
        Some(if rev.is_some() {
            State::Revoked
        } else if now < e.starts {
            State::Pending
        } else if now >= e.expires {
            State::Expired
        } else {
            State::Active
        })
    }

    /// Number of verified lines.
    pub fn len(&self) -> usize {
        self.lines
    }

    /// Whether the registry has no lines.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }
}

/// Bucket-name characters, 3–63 long, with `*` wildcards allowed.
fn valid_pattern(p: &str) -> bool {
    (1..=63).contains(&p.len())
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.*".contains(&b))
        && (p.contains('*') || p.len() >= 3)
}

/// Whether `bucket` matches `pattern` (`*` = any run of characters).
pub fn matches(pattern: &str, bucket: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == bucket,
        Some((head, rest)) => {
            let Some(tail) = bucket.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && matches(rest, &tail[i..]))
        }
    }
}

#[cfg(test)]
mod tests;
