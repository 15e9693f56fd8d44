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
pub mod writer;

pub use writer::Recorder;

use crate::chain::{self, Chain, Purpose};
use crate::format::{KekLookup, KeyId};
use crate::keys::KeyStore;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

use crate::telemetry::security::TARGET;

/// A line without its MAC: what the MAC covers, in this order.
#[derive(serde::Serialize)]
struct Body<'a> {
    seq: u64,
    time: &'a DateTime<Utc>,
    prev: &'a str,
    key: &'a str,
    event: &'a serde_json::Map<String, serde_json::Value>,
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

impl Line {
    fn body(&self) -> Body<'_> {
        Body {
            seq: self.seq,
            time: &self.time,
            prev: &self.prev,
            key: &self.key,
            event: &self.event,
        }
    }
}

impl chain::Record for Line {
    fn link(&self) -> chain::Link<'_> {
        chain::Link {
            seq: self.seq,
            time: self.time,
            prev: &self.prev,
            key: &self.key,
            mac: &self.mac,
        }
    }

    fn signed_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body()).expect("serializable")
    }
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
    /// A record could not be written (full disk, I/O error, writer gone):
    /// whatever it would authorise is refused.
    #[error("audit log unavailable: {0}")]
    Unavailable(String),
}

struct Tail {
    file: std::fs::File,
    seq: u64,
    last_hash: [u8; 32],
    /// Bytes of verified, complete lines.
    len: u64,
    /// A failed append left bytes that could not be cut back yet.
    dirty: bool,
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

/// Longest line accepted when reading a log: verification streams the file
/// line by line, so memory stays bounded whatever the log's size.
pub const MAX_LINE: usize = 1 << 20;

/// The head of the chain after an append (or at open): the sequence number
/// and SHA-256 of the last line. An off-host anchor records these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Lines in the log.
    pub seq: u64,
    /// SHA-256 of the last line's bytes (zeros for an empty log).
    pub hash: [u8; 32],
}

/// The result of streaming through a log.
struct Scan {
    lines: u64,
    last_hash: [u8; 32],
    /// Length of the verified, `\n`-terminated lines.
    good_len: u64,
    /// An unterminated final line (an interrupted write), if any.
    torn: Option<Vec<u8>>,
}

/// Streams through the log verifying every line with bounded memory;
/// `None` when the file does not exist.
fn scan(path: &Path, keys: &impl KekLookup) -> Result<Option<Scan>, AuditError> {
    use std::io::{BufRead, Read};
    let io = |source| AuditError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let damaged = |line: u64, why: String| AuditError::Damaged {
        path: path.to_owned(),
        line: line as usize,
        why,
    };
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, file);
    let mut s = Scan {
        lines: 0,
        last_hash: [0; 32],
        good_len: 0,
        torn: None,
    };
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(io)?;
        if n == 0 {
            break;
        }
        let no = s.lines + 1;
        let Some(raw) = buf.strip_suffix(b"\n") else {
            if n > MAX_LINE {
                return Err(damaged(
                    no,
                    format!("longer than {MAX_LINE} bytes: not an audit record"),
                ));
            }
            s.torn = Some(std::mem::take(&mut buf));
            break;
        };
        let mut chain = Chain::at(s.lines, s.last_hash);
        chain
            .verify_next::<Line>(raw, Purpose::Audit, "an audit record", keys, |_, _| Ok(()))
            .map_err(|why| damaged(no, why))?;
        s.last_hash = chain.last_hash;
        s.lines = chain.lines;
        s.good_len += n as u64;
    }
    Ok(Some(s))
}

/// Checks every line (streaming, bounded memory); returns (lines, hash of
/// the last line). An unterminated last line is damage here; only
/// [`AuditLog::open`] repairs it (and records that it did).
pub fn verify(path: &Path, keys: &impl KekLookup) -> Result<(u64, [u8; 32]), AuditError> {
    match scan(path, keys)? {
        None => Ok((0, [0; 32])),
        Some(s) if s.torn.is_some() => Err(AuditError::Damaged {
            path: path.to_owned(),
            line: s.lines as usize + 1,
            why: "the last line is cut short (no line end)".into(),
        }),
        Some(s) => Ok((s.lines, s.last_hash)),
    }
}

/// Every line of a log, verified first (for reports).
pub fn read_verified(
    path: &Path,
    keys: &impl KekLookup,
) -> Result<Vec<serde_json::Value>, AuditError> {
    use std::io::BufRead;
    verify(path, keys)?;
    let io = |source| AuditError::Io {
        path: path.to_owned(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut out = Vec::new();
    for l in std::io::BufReader::new(f).lines() {
        if let Ok(v) = serde_json::from_str(&l.map_err(io)?) {
            out.push(v);
        }
    }
    Ok(out)
}

impl AuditLog {
    /// Verifies an existing log (a damaged log refuses to open, naming the
    /// line) and opens it for appending under the store's active key.
    ///
    /// One damage is repaired rather than refused: an unterminated final
    /// line, which only an interrupted write (crash, full disk) leaves and
    /// which is no authenticated record. It is cut off, and the first line
    /// appended is an `audit_log_repaired` record with its length and
    /// SHA-256. Every other damage refuses to open.
    pub fn open(path: &Path, keys: &KeyStore) -> Result<AuditLog, AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_owned(),
            source,
        };
        let scanned = scan(path, keys)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let (seq, last_hash, len, torn) = match scanned {
            Some(s) => (s.lines, s.last_hash, s.good_len, s.torn),
            None => (0, [0; 32], 0, None),
        };
        if torn.is_some() {
            file.set_len(len).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let kek = keys.active();
        let log = AuditLog {
            path: path.to_owned(),
            key_id: kek.id(),
            key: zeroize::Zeroizing::new(*kek.secret()),
            tail: Mutex::new(Tail {
                file,
                seq,
                last_hash,
                len,
                dirty: false,
            }),
        };
        if let Some(t) = torn {
            let mut m = serde_json::Map::new();
            m.insert("event".into(), "audit_log_repaired".into());
            m.insert("severity".into(), "warn".into());
            m.insert("line".into(), (seq + 1).into());
            m.insert("removed_bytes".into(), (t.len() as u64).into());
            m.insert(
                "removed_sha256".into(),
                hex::encode(Sha256::digest(&t)).into(),
            );
            m.insert(
                "message".into(),
                "an unterminated last line (interrupted write) was cut off at open".into(),
            );
            log.append(m)?;
            tracing::warn!(path = %path.display(), line = seq + 1, removed_bytes = t.len(), "audit log: cut off an unterminated last line left by an interrupted write; recorded as audit_log_repaired");
        }
        Ok(log)
    }

    /// The chain head now.
    pub fn head(&self) -> Head {
        let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        Head {
            seq: tail.seq,
            hash: tail.last_hash,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event (one write + fsync) and returns the new chain
    /// head. A write or fsync that fails is cut back to the last good
    /// length, so the file stays verifiable; the chain is unchanged.
    pub fn append(
        &self,
        event: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Head, AuditError> {
        self.append_all(vec![event])
    }

    /// Appends several events with one write + fsync (all or none).
    pub fn append_all(
        &self,
        events: Vec<serde_json::Map<String, serde_json::Value>>,
    ) -> Result<Head, AuditError> {
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        if tail.dirty {
            // A previous failure could not cut its bytes back: retry first.
            let len = tail.len;
            tail.file.set_len(len).map_err(io)?;
            tail.dirty = false;
        }
        let mut chain = Chain::at(tail.seq, tail.last_hash);
        let mut out = Vec::new();
        for event in events {
            let mut line = Line {
                seq: chain.next_seq(),
                time: Utc::now(),
                prev: chain.prev(),
                key: self.key_id.to_string(),
                event,
                mac: String::new(),
            };
            line.mac = Chain::mac(Purpose::Audit, &self.key, &line.body());
            chain.push(&line, &mut out);
        }
        let good_len = tail.len;
        let appended = chain::Locked::acquire(&mut tail.file)
            .map_err(io)?
            .append(good_len, &out);
        if let Err(failed) = appended {
            tail.dirty = !failed.cut_back;
            return Err(io(failed.error));
        }
        tail.seq = chain.lines;
        tail.len += out.len() as u64;
        tail.last_hash = chain.last_hash;
        Ok(Head {
            seq: tail.seq,
            hash: tail.last_hash,
        })
    }
}

/// A `tracing` layer writing every `sealgate::security` event to the audit
/// log once one is attached (through the bounded [`writer`], off the
/// request threads), and counting it in the metrics (`/metrics`).
#[derive(Clone, Default)]
pub struct AuditLayer {
    recorder: Recorder,
    metrics: Arc<crate::telemetry::Metrics>,
    webhook: Arc<OnceLock<webhook::Webhook>>,
}

impl std::fmt::Debug for AuditLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLayer")
            .field("recorder", &self.recorder)
            .finish_non_exhaustive()
    }
}

impl AuditLayer {
    /// A layer counting into `metrics`.
    pub fn with_metrics(metrics: Arc<crate::telemetry::Metrics>) -> AuditLayer {
        AuditLayer {
            metrics,
            ..Default::default()
        }
    }

    /// Also sends incidents to a webhook; later calls are ignored.
    pub fn attach_webhook(&self, w: webhook::Webhook) {
        let _ = self.webhook.set(w);
    }

    /// The metrics this layer counts security events into.
    pub fn metrics(&self) -> Arc<crate::telemetry::Metrics> {
        self.metrics.clone()
    }

    /// The attached log's chain head, if a log is attached (for anchors).
    pub fn head(&self) -> Option<(PathBuf, u64, [u8; 32])> {
        let (path, head) = self.recorder.writer.get()?.head()?;
        Some((path, head.seq, head.hash))
    }

    /// Attaches the log and starts its writer thread; later calls are
    /// ignored.
    pub fn attach(&self, log: AuditLog) {
        if self.recorder.writer.get().is_none() {
            let _ = self
                .recorder
                .writer
                .set(writer::Writer::start(log, self.metrics.clone(), {
                    // Anchor each new head off the host as it is written
                    // (docs/INCIDENTS.md §Anchors).
                    let webhook = self.webhook.clone();
                    Box::new(move |path: &Path, head: &Head| {
                        if let Some(w) = webhook.get() {
                            w.offer(&anchor::chain_head(path, head.seq, &head.hash), None);
                        }
                    })
                }));
        }
    }

    /// The handle for authorising records (shares this layer's writer).
    pub fn recorder(&self) -> Recorder {
        self.recorder.clone()
    }
}

thread_local! {
    /// Set while emitting an event already written durably by [`Recorder`].
    static RECORDED: Cell<bool> = const { Cell::new(false) };
}

/// Emits, inside `f`, `tracing` events that [`Recorder::durable`] has
/// already written: the layer counts them and offers them to the webhook
/// but does not append them again.
pub fn already_recorded<R>(f: impl FnOnce() -> R) -> R {
    RECORDED.with(|r| r.set(true));
    let out = f();
    RECORDED.with(|r| r.set(false));
    out
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

/// Who a request span belongs to (its access key, else its address), for
/// the per-client rate limits of events that do not name an access key.
struct Client(String);

impl<S> tracing_subscriber::Layer<S> for AuditLayer
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        if attrs.metadata().name() != "request" {
            return;
        }
        let mut f = Fields(serde_json::Map::new());
        attrs.record(&mut f);
        let client = match (
            f.0.get("access_key").and_then(|v| v.as_str()),
            f.0.get("client_ip").and_then(|v| v.as_str()),
        ) {
            (Some(ak), _) if !ak.is_empty() => ak.to_owned(),
            (_, Some(ip)) => format!("ip:{ip}"),
            _ => return,
        };
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Client(client));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
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
        let client = ctx.event_scope(event).and_then(|scope| {
            scope
                .from_root()
                .find_map(|s| s.extensions().get::<Client>().map(|c| c.0.clone()))
        });
        if let Some(w) = self.webhook.get() {
            w.offer(&f.0, client.as_deref());
        }
        if RECORDED.with(Cell::get) {
            return;
        }
        if let Some(w) = self.recorder.writer.get() {
            w.offer(f.0, client);
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
            if !why.contains("cut short") {
                assert!(AuditLog::open(&path, &keys).is_err());
            }
        }
    }

    /// A torn (unterminated) last line, as a crash or a full disk leaves,
    /// is cut off at open and the cut recorded; the log verifies after.
    #[test]
    fn a_torn_last_line_is_cut_off_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let kd = dir.path().join("keys");
        KeyStore::generate(&kd, false).unwrap();
        let keys = KeyStore::load(&kd).unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, &keys).unwrap();
        for _ in 0..2 {
            log.append(serde_json::Map::new()).unwrap();
        }
        let head = log.head();
        drop(log);
        let mut text = std::fs::read(&path).unwrap();
        let good = text.len();
        text.extend_from_slice(b"{\"seq\":3,\"time\":\"2026-");
        std::fs::write(&path, &text).unwrap();
        assert!(verify(&path, &keys).is_err());
        let log = AuditLog::open(&path, &keys).unwrap();
        let after = log.head();
        assert_eq!(after.seq, 3);
        drop(log);
        assert_eq!(verify(&path, &keys).unwrap().0, 3);
        let all = read_verified(&path, &keys).unwrap();
        let rec = &all[2]["event"];
        assert_eq!(rec["event"], "audit_log_repaired");
        assert_eq!(rec["removed_bytes"], (text.len() - good) as u64);
        assert_eq!(all[2]["prev"], hex::encode(head.hash));
        // A damaged terminated line is never "repaired".
        let mut bad = std::fs::read(&path).unwrap();
        bad.extend_from_slice(b"garbage\n");
        std::fs::write(&path, &bad).unwrap();
        assert!(AuditLog::open(&path, &keys).is_err());
    }

    /// Over the per-access-key limit, client-triggerable events are
    /// counted and summarised; authorising records are never limited.
    #[tokio::test]
    async fn events_over_the_rate_limit_are_summarised_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let kd = dir.path().join("keys");
        KeyStore::generate(&kd, false).unwrap();
        let keys = KeyStore::load(&kd).unwrap();
        let path = dir.path().join("audit.jsonl");
        let layer = AuditLayer::default();
        layer.attach(AuditLog::open(&path, &keys).unwrap());
        let w = layer.recorder.writer.get().unwrap();
        let n = 500u64;
        for _ in 0..n {
            let mut m = serde_json::Map::new();
            m.insert("event".into(), "bad_upload_id".into());
            m.insert("access_key".into(), "noisy".into());
            w.offer(m, None);
        }
        let mut m = serde_json::Map::new();
        m.insert("event".into(), "exception_used".into());
        m.insert("access_key".into(), "noisy".into());
        layer.recorder().durable(m).await.unwrap();
        // The next tick writes the summary.
        let t = std::time::Instant::now();
        let (written, summarised) = loop {
            let all = read_verified(&path, &keys).unwrap();
            let written = all
                .iter()
                .filter(|l| l["event"]["event"] == "bad_upload_id")
                .count() as u64;
            let summarised: u64 = all
                .iter()
                .filter(|l| l["event"]["event"] == "audit_events_suppressed")
                .map(|l| l["event"]["count"].as_u64().unwrap())
                .sum();
            if written + summarised == n || t.elapsed().as_secs() > 5 {
                break (written, summarised);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        assert!(written < n / 2, "{written}");
        assert_eq!(written + summarised, n);
        let all = read_verified(&path, &keys).unwrap();
        assert!(all.iter().any(|l| l["event"]["event"] == "exception_used"));
        assert!(layer.metrics().render().contains("audit_suppressed"));
    }
}
