//! The audit log: an append-only JSON-lines file of security-relevant
//! events, each line chained to the previous one (SHA-256) and
//! authenticated with an HMAC under a key derived from a local KEK
//! ("sealgate/v1/audit"), so edits, deletions and reordering are detected by
//! `sealgate audit verify` (docs/INCIDENTS.md).
//!
//! Events reach it through `tracing`: every event with target
//! `sealgate::security` (integrity failures, unknown keys, altered upload
//! ids, …) is written by [`AuditLayer`], with all its fields. One file per
//! gateway instance; several instances must not share a file.

pub mod anchor;
pub mod webhook;

use crate::format::{KekLookup, KeyId, kdf};
use crate::keys::KeyStore;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// The `tracing` target whose events are audited.
pub const TARGET: &str = "sealgate::security";

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    seq: u64,
    time: DateTime<Utc>,
    prev: String,
    key: String,
    event: serde_json::Map<String, serde_json::Value>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    seq: u64,
    time: DateTime<Utc>,
    prev: String,
    key: String,
    event: serde_json::Map<String, serde_json::Value>,
    mac: String,
}

/// Why the log cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// A line fails verification.
    #[error("{path} line {line}: {why} (the audit log has been altered)")]
    Damaged {
        /// File.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What failed.
        why: String,
    },
}

struct Tail {
    file: std::fs::File,
    seq: u64,
    last_hash: [u8; 32],
}

/// An open audit log, appending under the active key.
pub struct AuditLog {
    path: PathBuf,
    key_id: KeyId,
    key: zeroize::Zeroizing<[u8; 32]>,
    tail: Mutex<Tail>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Checks every line; returns (lines, hash of the last line).
pub fn verify(path: &Path, keys: &impl KekLookup) -> Result<(u64, [u8; 32]), AuditError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, [0; 32])),
        Err(source) => {
            return Err(AuditError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let damaged = |line: usize, why: String| AuditError::Damaged {
        path: path.to_owned(),
        line,
        why,
    };
    let mut last = [0u8; 32];
    let mut n = 0u64;
    let body = text.strip_suffix(b"\n").unwrap_or(&text);
    if !text.is_empty() && !text.ends_with(b"\n") {
        let count = body.split(|b| *b == b'\n').count();
        return Err(damaged(
            count,
            "the last line is cut short (no line end)".into(),
        ));
    }
    if text.is_empty() {
        return Ok((0, last));
    }
    for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
        let no = i + 1;
        let line: Line = serde_json::from_slice(raw)
            .map_err(|e| damaged(no, format!("not an audit record: {e}")))?;
        if line.seq != no as u64 {
            return Err(damaged(
                no,
                format!("sequence number {} where {no} was expected", line.seq),
            ));
        }
        if line.prev != hex::encode(last) {
            return Err(damaged(no, "does not chain to the previous line".into()));
        }
        let id =
            KeyId::from_hex(&line.key).ok_or_else(|| damaged(no, "malformed key id".into()))?;
        let kek = keys.kek(&id).ok_or_else(|| {
            damaged(
                no,
                format!("authenticated with key {id}, which the key store lacks"),
            )
        })?;
        let b = Body {
            seq: line.seq,
            time: line.time,
            prev: line.prev,
            key: line.key,
            event: line.event,
        };
        let want = kdf::audit_mac(kek.secret(), &serde_json::to_vec(&b).expect("serializable"));
        if !kdf::ct_eq(&want, &hex::decode(&line.mac).unwrap_or_default()) {
            return Err(damaged(no, "authentication failed".into()));
        }
        last = Sha256::digest(raw).into();
        n = no as u64;
    }
    Ok((n, last))
}

/// Every line of a log, verified first (for reports).
pub fn read_verified(
    path: &Path,
    keys: &impl KekLookup,
) -> Result<Vec<serde_json::Value>, AuditError> {
    verify(path, keys)?;
    let text = std::fs::read_to_string(path).map_err(|source| AuditError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

impl AuditLog {
    /// Verifies an existing log (a damaged log refuses to open, naming the
    /// line) and opens it for appending under the store's active key.
    pub fn open(path: &Path, keys: &KeyStore) -> Result<AuditLog, AuditError> {
        let (seq, last_hash) = verify(path, keys)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| AuditError::Io {
                path: path.to_owned(),
                source,
            })?;
        let kek = keys.active();
        Ok(AuditLog {
            path: path.to_owned(),
            key_id: kek.id(),
            key: zeroize::Zeroizing::new(*kek.secret()),
            tail: Mutex::new(Tail {
                file,
                seq,
                last_hash,
            }),
        })
    }

    /// The chain head: the last line's number and SHA-256 (for anchors).
    pub fn head(&self) -> (u64, [u8; 32]) {
        let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        (tail.seq, tail.last_hash)
    }

    /// Appends one event (one write + fsync).
    pub fn append(
        &self,
        event: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), AuditError> {
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let body = Body {
            seq: tail.seq + 1,
            time: Utc::now(),
            prev: hex::encode(tail.last_hash),
            key: self.key_id.to_string(),
            event,
        };
        let mac = hex::encode(kdf::audit_mac(
            &self.key,
            &serde_json::to_vec(&body).expect("serializable"),
        ));
        let line = Line {
            seq: body.seq,
            time: body.time,
            prev: body.prev,
            key: body.key,
            event: body.event,
            mac,
        };
        let raw = serde_json::to_vec(&line).expect("serializable");
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        let mut out = raw.clone();
        out.push(b'\n');
        tail.file.write_all(&out).map_err(io)?;
        tail.file.sync_data().map_err(io)?;
        tail.seq = line.seq;
        tail.last_hash = Sha256::digest(&raw).into();
        Ok(())
    }
}

/// A `tracing` layer writing every `sealgate::security` event to the audit
/// log once one is attached (the key store, hence the log, is opened after
/// logging starts), and counting it in the metrics (`/metrics`).
#[derive(Clone, Default)]
pub struct AuditLayer {
    sink: Arc<OnceLock<AuditLog>>,
    metrics: Arc<crate::admin::Metrics>,
    webhook: Arc<OnceLock<webhook::Webhook>>,
}

impl AuditLayer {
    /// Also sends incidents to a webhook; later calls are ignored.
    pub fn attach_webhook(&self, w: webhook::Webhook) {
        let _ = self.webhook.set(w);
    }

    /// The metrics this layer counts security events into.
    pub fn metrics(&self) -> Arc<crate::admin::Metrics> {
        self.metrics.clone()
    }

    /// The attached log's chain head, if a log is attached (for anchors).
    pub fn head(&self) -> Option<(PathBuf, u64, [u8; 32])> {
        let log = self.sink.get()?;
        let (seq, hash) = log.head();
        Some((log.path.clone(), seq, hash))
    }

    /// Attaches the log; later calls are ignored.
    pub fn attach(&self, log: AuditLog) {
        let _ = self.sink.set(log);
    }
}

struct Fields(serde_json::Map<String, serde_json::Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            serde_json::Value::String(format!("{value:?}")),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for AuditLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut f = Fields(serde_json::Map::new());
        f.0.insert(
            "severity".into(),
            event
                .metadata()
                .level()
                .as_str()
                .to_ascii_lowercase()
                .into(),
        );
        event.record(&mut f);
        if let Some(name) = f.0.get("event").and_then(|v| v.as_str()) {
            let exception = f.0.get("exception").and_then(|v| v.as_str());
            self.metrics.event(name, exception);
        }
        if let Some(w) = self.webhook.get() {
            w.offer(&f.0);
        }
        let Some(log) = self.sink.get() else { return };
        if let Err(e) = log.append(f.0) {
            // Not through tracing: that would recurse into this layer.
            let _ = writeln!(std::io::stderr(), "sealgate: audit log write failed: {e}");
        } else if let Some(w) = self.webhook.get() {
            // Anchor the new head off the host (docs/INCIDENTS.md §Anchors).
            let (seq, hash) = log.head();
            w.offer(&anchor::chain_head(&log.path, seq, &hash));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_verify_and_tampering_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let kd = dir.path().join("keys");
        KeyStore::generate(&kd, false).unwrap();
        let keys = KeyStore::load(&kd).unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, &keys).unwrap();
        for i in 0..3 {
            let mut m = serde_json::Map::new();
            m.insert("event".into(), "integrity_failure".into());
            m.insert("n".into(), i.into());
            log.append(m).unwrap();
        }
        drop(log);
        // Reopening continues the chain.
        let log = AuditLog::open(&path, &keys).unwrap();
        log.append(serde_json::Map::new()).unwrap();
        assert_eq!(verify(&path, &keys).unwrap().0, 4);

        let good = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = good.lines().collect();
        for (text, line, why) in [
            (
                good.replacen("\"n\":1", "\"n\":7", 1),
                2,
                "authentication failed",
            ),
            (
                format!("{}\n{}\n", lines[0], lines[2]),
                2,
                "sequence number",
            ),
            (good[..good.len() - 5].to_owned(), 4, "cut short"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = verify(&path, &keys).unwrap_err().to_string();
            assert!(
                err.contains(&format!("line {line}")) && err.contains(why),
                "{err}"
            );
            assert!(AuditLog::open(&path, &keys).is_err());
        }
    }
}
