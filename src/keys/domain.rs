//! Key domains (docs/KEYS.md §Domains): stores of their own inside a key
//! store, one per group of buckets the policy assigns, so that a domain's
//! keys can be rotated, revoked and destroyed without touching another's.
//!
//! A domain `hr` is the directory `<store>/domains/hr/`, laid out like any
//! store (key files, ACTIVE, revocations, its own `provider.toml`). Key ids
//! are unique across the whole store, so an object's header finds its key
//! whatever domain it is in. A destroyed domain keeps only its erasure
//! record, `DESTROYED`, which names the key ids it held: objects under them
//! are then refused as erased, not as tampered.
//!
//! ```json
//! {"format":"sealgate-erasure/1","domain":"hr",
//!  "keys":[{"id":"<32 hex>","created":"<RFC 3339>"}],
//!  "provider":"transit key \"hr\" at https://…","exception":"EX-ERASE-1",
//!  "approver":"…","decision_ref":"…","started":"<RFC 3339>",
//!  "completed":"<RFC 3339>","receipts":["…"]}
//! ```
//!
//! The record is written before the provider is asked to destroy anything,
//! with `completed` absent: from then on the domain's keys are treated as
//! destroyed even if the destruction is interrupted, and running it again
//! finishes it.

use super::{KeyError, file};
use crate::format::KeyId;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The directory of a store that holds its domains.
pub const DOMAINS_DIR: &str = "domains";
/// A destroyed domain's erasure record.
pub const TOMBSTONE_FILE: &str = "DESTROYED";
/// The `format` of version-1 erasure records.
pub const ERASURE_FORMAT: &str = "sealgate-erasure/1";

/// Whether `name` may name a domain: 1 to 63 of `a-z`, `0-9` and `-`,
/// starting with a letter or digit (it is a directory name and appears in
/// logs and certificates).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The directory of domain `name` in the store at `root`.
pub fn dir(root: &Path, name: &str) -> Result<PathBuf, KeyError> {
    if !valid_name(name) {
        return Err(KeyError::BadDomain {
            name: name.to_owned(),
        });
    }
    Ok(root.join(DOMAINS_DIR).join(name))
}

/// The domains of the store at `root`, by name, in name order. Anything in
/// `domains/` that is not a domain directory is refused: it would be
/// ignored otherwise, and a key an admin put there would silently not load.
pub(super) fn list(root: &Path) -> Result<Vec<(String, PathBuf)>, KeyError> {
    let base = root.join(DOMAINS_DIR);
    if !base.exists() {
        return Ok(Vec::new());
    }
    file::check_store_dir(&base)?;
    let mut out = Vec::new();
    for e in fs::read_dir(&base).map_err(file::io(&base))? {
        let e = e.map_err(file::io(&base))?;
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if !valid_name(&name) || !path.is_dir() {
            return Err(KeyError::Malformed {
                path,
                reason: "not a key domain (a directory named with a-z, 0-9 and -): remove it"
                    .into(),
            });
        }
        out.push((name, path));
    }
    out.sort();
    Ok(out)
}

/// The directories of the live (not destroyed) domains of the store at
/// `root`.
pub fn live_dirs(root: &Path) -> Result<Vec<PathBuf>, KeyError> {
    Ok(list(root)?
        .into_iter()
        .filter(|(_, d)| !d.join(TOMBSTONE_FILE).exists())
        .map(|(_, d)| d)
        .collect())
}

/// A domain's erasure record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tombstone {
    /// [`ERASURE_FORMAT`].
    pub format: String,
    /// The domain destroyed.
    pub domain: String,
    /// Every key the domain held.
    pub keys: Vec<ErasedKey>,
    /// The provider whose root key was destroyed.
    pub provider: String,
    /// The registered erasure exception that allowed it.
    pub exception: String,
    /// Who approved it (from the exception).
    pub approver: String,
    /// Where the decision is recorded (from the exception).
    pub decision_ref: String,
    /// When the destruction began (RFC 3339).
    pub started: String,
    /// When it was complete, absent while it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<String>,
    /// What the provider confirmed.
    #[serde(default)]
    pub receipts: Vec<String>,
}

/// A key of a destroyed domain, as its erasure record lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasedKey {
    /// Key id (32 hex digits).
    pub id: String,
    /// When it was created (RFC 3339).
    pub created: String,
}

impl Tombstone {
    /// The key ids, parsed (checked when the record was read).
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys
            .iter()
            .filter_map(|k| KeyId::from_hex(&k.id))
            .collect()
    }
}

/// The erasure record of the domain in `dir`, if it has one.
pub(super) fn read_tombstone(dir: &Path, name: &str) -> Result<Option<Tombstone>, KeyError> {
    let path = dir.join(TOMBSTONE_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text = file::read_control_file(&path)?;
    let bad = |reason: String| KeyError::Malformed {
        path: path.clone(),
        reason,
    };
    let t: Tombstone =
        serde_json::from_str(&text).map_err(|e| bad(format!("not an erasure record: {e}")))?;
    if t.format != ERASURE_FORMAT {
        return Err(bad(format!(
            "format {:?}, expected {ERASURE_FORMAT}",
            t.format
        )));
    }
    if t.domain != name {
        return Err(bad(format!(
            "records domain {:?}, but it is in the directory of {name:?}",
            t.domain
        )));
    }
    // Canonical ids only, so that the record lists each id one way.
    if let Some(k) = t
        .keys
        .iter()
        .find(|k| KeyId::from_hex(&k.id).is_none_or(|id| id.to_string() != k.id))
    {
        return Err(bad(format!("{:?} is not a key id", k.id)));
    }
    Ok(Some(t))
}

/// Writes the erasure record of the domain in `dir` atomically.
pub(super) fn write_tombstone(dir: &Path, t: &Tombstone) -> Result<(), KeyError> {
    let path = dir.join(TOMBSTONE_FILE);
    let tmp = dir.join(format!(".{TOMBSTONE_FILE}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(file::io(&tmp))?;
    let mut text = serde_json::to_string_pretty(t).expect("a record serializes");
    text.push('\n');
    f.write_all(text.as_bytes()).map_err(file::io(&tmp))?;
    f.sync_all().map_err(file::io(&tmp))?;
    fs::rename(&tmp, &path).map_err(file::io(&path))?;
    file::sync_dir(dir)
}

/// Removes the key files of the domain in `dir` (its provider's
/// wrappings: useless once the root key is gone, removed so that nothing
/// looks like a usable key).
pub(super) fn remove_key_files(dir: &Path) -> Result<usize, KeyError> {
    let mut n = 0;
    for e in fs::read_dir(dir).map_err(file::io(dir))? {
        let path = e.map_err(file::io(dir))?.path();
        if path.extension().is_some_and(|x| x == super::KEY_EXT) {
            fs::remove_file(&path).map_err(file::io(&path))?;
            n += 1;
        }
    }
    file::sync_dir(dir)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_are_plain_directory_names() {
        for ok in ["hr", "a", "finance-2027", "0"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-x", "HR", "a/b", "..", ".", "a b", &"x".repeat(64)] {
            assert!(!valid_name(bad), "{bad:?}");
            assert!(dir(Path::new("/k"), bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            dir(Path::new("/k"), "hr").unwrap(),
            Path::new("/k/domains/hr")
        );
    }
}
