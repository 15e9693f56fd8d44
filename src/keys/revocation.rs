//! Key revocation records (docs/KEYS.md §Revocation): one file
//! `<id>.revoked` beside the key, never editing the key file itself.
//!
//! ```json
//! {"format":"sealgate-revocation/1","id":"<32 hex>","revoked":"<RFC 3339>","reason":"<text>"}
//! ```
//!
//! From the `revoked` time on (it may lie in the future: a scheduled
//! expiry), the gateway refuses to unwrap data keys under that key, and each
//! refusal is a `revoked_key_used` security event. Key stores written by
//! earlier versions have no such files and load unchanged.

use super::{KeyError, file};
use crate::format::KeyId;
use chrono::{DateTime, SecondsFormat, Utc};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The `format` value of version-1 revocation files.
pub const REVOCATION_FORMAT: &str = "sealgate-revocation/1";
/// Extension of revocation files.
pub const REVOKED_EXT: &str = "revoked";

/// A key's revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// From when the key must not be used.
    pub at: DateTime<Utc>,
    /// Why (for the audit trail).
    pub reason: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RevocationFile {
    format: String,
    id: String,
    revoked: String,
    reason: String,
}

fn malformed(path: &Path, reason: impl Into<String>) -> KeyError {
    KeyError::Malformed {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Reads every `*.revoked` file in `dir`.
pub(super) fn read_all(dir: &Path) -> Result<Vec<(KeyId, Revocation, PathBuf)>, KeyError> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|source| KeyError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.extension().is_none_or(|e| e != REVOKED_EXT) {
            continue;
        }
        let text = file::read_control_file(&path)?;
        let f: RevocationFile = serde_json::from_str(&text)
            .map_err(|e| malformed(&path, format!("not a revocation file: {e}")))?;
        if f.format != REVOCATION_FORMAT {
            return Err(malformed(
                &path,
                format!("format is {:?}, expected {REVOCATION_FORMAT:?}", f.format),
            ));
        }
        let id =
            KeyId::from_hex(&f.id).ok_or_else(|| malformed(&path, "id must be 32 hex digits"))?;
        if path.file_stem().and_then(|s| s.to_str()) != Some(f.id.as_str()) {
            return Err(malformed(&path, "the file name and the id differ"));
        }
        let at = DateTime::parse_from_rfc3339(&f.revoked)
            .map_err(|e| malformed(&path, format!("revoked is not an RFC 3339 time: {e}")))?
            .with_timezone(&Utc);
        out.push((
            id,
            Revocation {
                at,
                reason: f.reason,
            },
            path,
        ));
    }
    Ok(out)
}

/// Writes `<id>.revoked` (mode 0600), refusing to replace an existing one.
pub(super) fn write(dir: &Path, id: KeyId, r: &Revocation) -> Result<PathBuf, KeyError> {
    let path = dir.join(format!("{id}.{REVOKED_EXT}"));
    let body = serde_json::to_string(&RevocationFile {
        format: REVOCATION_FORMAT.into(),
        id: id.to_string(),
        revoked: r.at.to_rfc3339_opts(SecondsFormat::Secs, true),
        reason: r.reason.clone(),
    })
    .expect("serializable");
    let io = |source| KeyError::Io {
        path: path.clone(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    writeln!(f, "{body}").map_err(io)?;
    f.sync_all().map_err(io)?;
    file::sync_dir(dir)?;
    Ok(path)
}
