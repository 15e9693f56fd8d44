//! The registry's verified state: the last (sequence, SHA-256) of the
//! exception registry that sealgate has verified, kept in a small file next
//! to the registry (`<registry>.verified` by default) so that a registry cut
//! back (e.g. its last line, a revocation, removed) or replaced by another
//! chain is refused instead of silently reviving an exception
//! (docs/EXCEPTIONS.md §Verified state).
//!
//! The file is one JSON object, written atomically (temporary file, fsync,
//! rename, fsync of the directory) and only ever moved forward, under the
//! registry's file lock.

use chrono::{DateTime, Utc};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What sealgate last verified of a registry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verified {
    /// The registry line number (`seq`) verified last.
    pub seq: u64,
    /// SHA-256 (hex) of that line's bytes (without its `\n`): the chain head.
    pub hash: String,
    /// When it was first verified.
    pub time: DateTime<Utc>,
}

/// Why the verified state cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The state file could not be read or written.
    #[error(
        "verified-state file {path}: {source} (it must be writable: set [policy] registry_state, or --registry-state, to a writable place)"
    )]
    Io {
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The state file is not what sealgate writes.
    #[error(
        "verified-state file {path} is damaged ({why}); it was altered outside sealgate: compare the registry with its backup before removing this file"
    )]
    Damaged {
        /// File.
        path: PathBuf,
        /// What failed.
        why: String,
    },
}

/// Reads the state; `None` when there is no state file.
pub fn read(path: &Path) -> Result<Option<Verified>, StateError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let v: Verified = serde_json::from_slice(&text).map_err(|e| StateError::Damaged {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    if v.seq == 0 || hex::decode(&v.hash).map(|h| h.len()) != Ok(32) {
        return Err(StateError::Damaged {
            path: path.to_owned(),
            why: "no line number or no SHA-256 hash".into(),
        });
    }
    Ok(Some(v))
}

/// Replaces the state atomically: a temporary file in the same directory,
/// written and fsynced, renamed over the old one, then the directory fsynced.
/// The caller holds the registry's lock.
pub fn write(path: &Path, v: &Verified) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".verified.")
        .tempfile_in(&dir)
        .map_err(io)?;
    let mut text = serde_json::to_vec(v).expect("serializable");
    text.push(b'\n');
    tmp.write_all(&text).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}
