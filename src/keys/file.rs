//! The on-disk layout of the key store (docs/KEYS.md §Files).
//!
//! ```json
//! {"format":"sealgate-kek/1","id":"<32 hex>","created":"<RFC 3339>","key":"<64 hex>"}
//! ```
//!
//! or, in a store with a provider (`provider.toml`), the key only as the
//! provider wrapped it, and a check value of the key:
//!
//! ```json
//! {"format":"sealgate-kek-wrapped/1","id":"<32 hex>","created":"<RFC 3339>",
//!  "wrapped":{"provider":"transit","key":"<root key name>","ciphertext":"vault:v1:…"},
//!  "check":"<32 hex>"}
//! ```

use super::provider::KeyProvider;
use super::{ACTIVE_FILE, KEY_EXT, KeyError, StoredKey};
use crate::config::{euid, trusted_owner};
use crate::format::{Kek, KeyId};
use chrono::{DateTime, SecondsFormat, Utc};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

/// The `format` value of version-1 key files.
pub const KEY_FILE_FORMAT: &str = "sealgate-kek/1";
/// The `format` value of key files holding a provider's wrapping.
pub const WRAPPED_FILE_FORMAT: &str = "sealgate-kek-wrapped/1";

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: String,
    id: String,
    created: String,
    #[serde(default)]
    key: String,
    wrapped: Option<Wrapped>,
    check: Option<String>,
}

/// A key as a provider wrapped it.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Wrapped {
    /// The provider's kind (`transit`).
    provider: String,
    /// Its root key's name.
    key: String,
    /// Its ciphertext of the KEK.
    ciphertext: String,
}

/// A key's check value: proves that what a provider unwrapped is the key
/// that was wrapped, without revealing it (HMAC-SHA256 of the id under
/// the key, first 16 bytes).
fn check_value(id: KeyId, secret: &[u8; 32]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(b"sealgate-kek-check/1 ");
    mac.update(id.to_string().as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

fn malformed(path: &Path, reason: impl Into<String>) -> KeyError {
    KeyError::Malformed {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

pub(super) fn ensure_dir(dir: &Path) -> Result<(), KeyError> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
    }
    Ok(())
}

/// Refuses a file or directory of the store that another user owns.
pub(super) fn check_owner(path: &Path, meta: &fs::Metadata) -> Result<(), KeyError> {
    if trusted_owner(meta.uid()) {
        Ok(())
    } else {
        Err(KeyError::ForeignOwner {
            path: path.to_owned(),
            owner: meta.uid(),
            euid: euid(),
        })
    }
}

/// A non-secret file of the store (ACTIVE, revocation records,
/// provider.toml): its text, refused when another user owns it or group or
/// others can write it. The check is made on the file actually opened (its
/// metadata from the open descriptor), so that a file swapped in between a
/// check and the read is not trusted.
pub(super) fn read_control_file(path: &Path) -> Result<String, KeyError> {
    use std::io::Read;
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            // A file we may not read says more through its owner and mode.
            if let Ok(meta) = fs::metadata(path) {
                check_control_meta(path, &meta)?;
            }
            return Err(io(path)(e));
        }
    };
    let meta = f.metadata().map_err(io(path))?;
    check_control_meta(path, &meta)?;
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(io(path))?;
    Ok(text)
}

fn check_control_meta(path: &Path, meta: &fs::Metadata) -> Result<(), KeyError> {
    check_owner(path, meta)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(KeyError::WritableFile {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// The store directory must be ours (or root's) and writable by its owner
/// only: whoever else can write it can plant a key or replace ACTIVE. A
/// read-only mount does not waive this: it may be a read-only view of a
/// directory that is writable through another path (a bind mount).
pub(super) fn check_store_dir(dir: &Path) -> Result<(), KeyError> {
    let meta = fs::metadata(dir).map_err(io(dir))?;
    check_owner(dir, &meta)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(KeyError::InsecureDir {
            dir: dir.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Reads every `*.kek` file; fails on the first bad one, naming it.
pub(super) fn read_all(dir: &Path) -> Result<Vec<StoredKey>, KeyError> {
    let provider = super::provider::open(dir)?;
    read_all_with(dir, provider.as_deref())
}

/// [`read_all`] with the store's provider at hand.
pub(super) fn read_all_with(
    dir: &Path,
    provider: Option<&dyn KeyProvider>,
) -> Result<Vec<StoredKey>, KeyError> {
    read_all_mode(dir, provider, false)
}

/// [`read_all_with`]; `plain_too` lets a store with a provider still hold
/// plain key files (only `keys wrap`, which wraps them, reads it so).
pub(super) fn read_all_mode(
    dir: &Path,
    provider: Option<&dyn KeyProvider>,
    plain_too: bool,
) -> Result<Vec<StoredKey>, KeyError> {
    if !dir.is_dir() {
        return Err(KeyError::MissingDir {
            dir: dir.to_owned(),
        });
    }
    check_store_dir(dir)?;
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == KEY_EXT))
        .collect();
    paths.sort();
    let mut keys: Vec<StoredKey> = Vec::new();
    for path in paths {
        let key = read_key(&path, provider, plain_too)?;
        if let Some(prev) = keys.iter().find(|k| k.kek.id() == key.kek.id()) {
            return Err(KeyError::Duplicate {
                id: key.kek.id(),
                first: prev.path.clone(),
                second: path,
            });
        }
        keys.push(key);
    }
    Ok(keys)
}

fn read_key(
    path: &Path,
    provider: Option<&dyn KeyProvider>,
    plain_too: bool,
) -> Result<StoredKey, KeyError> {
    let meta = fs::metadata(path).map_err(io(path))?;
    check_owner(path, &meta)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let bytes = Zeroizing::new(fs::read(path).map_err(io(path))?);
    let mut parsed: KeyFile = serde_json::from_slice(&bytes)
        .map_err(|e| malformed(path, format!("not a key file: {e}")))?;
    if provider.is_some() && !plain_too && parsed.format == KEY_FILE_FORMAT {
        parsed.key.zeroize();
        return Err(malformed(
            path,
            format!(
                "a plain key file in a store with {}: run `sealgate keys wrap` to keep it only as the provider wraps it",
                super::provider::PROVIDER_FILE
            ),
        ));
    }
    let result = check_key(path, &parsed, provider);
    parsed.key.zeroize();
    result
}

fn check_key(
    path: &Path,
    f: &KeyFile,
    provider: Option<&dyn KeyProvider>,
) -> Result<StoredKey, KeyError> {
    if f.format != KEY_FILE_FORMAT && f.format != WRAPPED_FILE_FORMAT {
        return Err(malformed(
            path,
            format!(
                "format is {:?}, expected {KEY_FILE_FORMAT:?} (or {WRAPPED_FILE_FORMAT:?} in a store with a provider)",
                f.format
            ),
        ));
    }
    let id = KeyId::from_hex(&f.id).ok_or_else(|| malformed(path, "id must be 32 hex digits"))?;
    let created = DateTime::parse_from_rfc3339(&f.created)
        .map_err(|e| malformed(path, format!("created is not an RFC 3339 time: {e}")))?
        .with_timezone(&Utc);
    let secret = match f.format.as_str() {
        KEY_FILE_FORMAT if f.wrapped.is_none() && f.check.is_none() => {
            let mut secret = Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(&f.key, secret.as_mut())
                .map_err(|_| malformed(path, "key must be 64 hex digits (32 bytes)"))?;
            secret
        }
        WRAPPED_FILE_FORMAT if f.key.is_empty() => unwrap_key(path, id, f, provider)?,
        other => {
            return Err(malformed(
                path,
                format!(
                    "format is {other:?} with the fields of another; expected {KEY_FILE_FORMAT:?} (\"key\") or {WRAPPED_FILE_FORMAT:?} (\"wrapped\", \"check\")"
                ),
            ));
        }
    };
    if secret.iter().all(|b| *b == 0) {
        return Err(malformed(path, "key is all zeros"));
    }
    Ok(StoredKey {
        kek: Kek::new(id, secret),
        created,
        path: path.to_owned(),
        provider: f
            .wrapped
            .as_ref()
            .map(|w| format!("{} key {:?}", w.provider, w.key)),
    })
}

/// The KEK of a wrapped key file, from the store's provider, proven by the
/// file's check value.
fn unwrap_key(
    path: &Path,
    id: KeyId,
    f: &KeyFile,
    provider: Option<&dyn KeyProvider>,
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let (Some(w), Some(check)) = (&f.wrapped, &f.check) else {
        return Err(malformed(
            path,
            "a wrapped key file needs \"wrapped\" and \"check\"",
        ));
    };
    let Some(p) = provider else {
        return Err(malformed(
            path,
            format!(
                "the key is wrapped by {} key {:?}, but the store has no {}",
                w.provider,
                w.key,
                super::provider::PROVIDER_FILE
            ),
        ));
    };
    if w.provider != p.kind() || w.key != p.key_name() {
        return Err(malformed(
            path,
            format!(
                "the key is wrapped by {} key {:?}; {} names {} key {:?}",
                w.provider,
                w.key,
                super::provider::PROVIDER_FILE,
                p.kind(),
                p.key_name()
            ),
        ));
    }
    let secret = p
        .unwrap(&w.ciphertext, &super::provider::context(&id))
        .map_err(|e| super::provider::failed(path, p, e))?;
    let ok: bool =
        subtle::ConstantTimeEq::ct_eq(check_value(id, &secret).as_bytes(), check.as_bytes()).into();
    if !ok {
        return Err(KeyError::CheckFailed {
            path: path.to_owned(),
            id,
        });
    }
    Ok(secret)
}

pub(super) fn read_active(dir: &Path) -> Result<KeyId, KeyError> {
    let path = dir.join(ACTIVE_FILE);
    if !path.exists() {
        return Err(KeyError::NoActive {
            dir: dir.to_owned(),
        });
    }
    let text = read_control_file(&path)?;
    KeyId::from_hex(text.trim())
        .ok_or_else(|| malformed(&path, "must hold one key id (32 hex digits)"))
}

/// Writes a new key file with mode 0600, never replacing an existing file.
/// With a provider, the file holds the provider's wrapping of the key and
/// its check value, never the key.
pub(super) fn write_key(
    dir: &Path,
    id: KeyId,
    secret: &[u8; 32],
    created: DateTime<Utc>,
    provider: Option<&dyn KeyProvider>,
    replace: bool,
) -> Result<(), KeyError> {
    let path = dir.join(format!("{id}.{KEY_EXT}"));
    let created = created.to_rfc3339_opts(SecondsFormat::Secs, true);
    let body = match provider {
        None => {
            let mut hex_key = Zeroizing::new(hex::encode(secret));
            let body = Zeroizing::new(format!(
                "{{\"format\":\"{KEY_FILE_FORMAT}\",\"id\":\"{id}\",\"created\":\"{created}\",\"key\":\"{}\"}}\n",
                hex_key.as_str()
            ));
            hex_key.zeroize();
            body
        }
        Some(p) => {
            let context = super::provider::context(&id);
            let ciphertext = p
                .wrap(secret, &context)
                .map_err(|e| super::provider::failed(&path, p, e))?;
            // The wrapping is proven to come back as this key before any
            // file is written or replaced: a provider that wraps into
            // something it cannot unwrap must not cost the key.
            let back = p
                .unwrap(&ciphertext, &context)
                .map_err(|e| super::provider::failed(&path, p, e))?;
            if check_value(id, &back) != check_value(id, secret) {
                return Err(KeyError::CheckFailed {
                    path: path.clone(),
                    id,
                });
            }
            let wrapped = Wrapped {
                provider: p.kind().into(),
                key: p.key_name().into(),
                ciphertext,
            };
            let line = serde_json::json!({
                "format": WRAPPED_FILE_FORMAT,
                "id": id.to_string(),
                "created": created,
                "wrapped": wrapped,
                "check": check_value(id, secret),
            });
            Zeroizing::new(format!("{line}\n"))
        }
    };
    // A new key never replaces a file; wrapping an existing key replaces
    // its plain file whole (a temporary file renamed over it).
    let target = if replace {
        dir.join(format!(".{id}.{KEY_EXT}.tmp"))
    } else {
        path.clone()
    };
    if replace {
        let _ = fs::remove_file(&target);
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&target)
        .map_err(io(&target))?;
    f.write_all(body.as_bytes()).map_err(io(&target))?;
    f.sync_all().map_err(io(&target))?;
    if replace {
        fs::rename(&target, &path).map_err(io(&path))?;
    }
    sync_dir(dir)
}

/// Replaces ACTIVE atomically (write a temporary file, then rename).
pub(super) fn write_active(dir: &Path, id: KeyId) -> Result<(), KeyError> {
    let tmp = dir.join(format!(".{ACTIVE_FILE}.tmp"));
    let path = dir.join(ACTIVE_FILE);
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    writeln!(f, "{id}").map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))?;
    sync_dir(dir)
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), KeyError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}
