//! The audit writer: one dedicated thread owns the open [`AuditLog`] and
//! appends (write + fsync) off the request threads, fed by a bounded queue.
//!
//! Two kinds of records reach it:
//! - **Authorising records** (`exception_used`, `legacy_read`) are sent by
//!   [`Recorder::durable`], which waits for queue room and for the fsync:
//!   the operation they authorise proceeds only once the record is on disk,
//!   and is refused when it cannot be written. They are never rate-limited
//!   or dropped.
//! - **Other security events** come from the `tracing` layer without
//!   waiting. Per access key they are rate-limited ([`RATE_PER_SEC`],
//!   [`BURST`]); an event over the limit, or one that finds the queue full,
//!   is counted (`sealgate_security_events_total{event="audit_suppressed"}`
//!   / `{event="audit_dropped"}`) and summarised in the log once a second
//!   (`audit_events_suppressed`, `audit_events_dropped`), never silently
//!   lost.
//!
//! A failed append leaves the file verifiable ([`AuditLog::append`]); while
//! appends fail the writer reports unhealthy (`/health/ready` is not ready)
//! and retries once a second, writing `audit_log_recovered` (with the count
//! of failed appends) when the log is writable again.

use super::{AuditError, AuditLog, Head};
use crate::telemetry::Metrics;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Records that authorise an operation: written durably before it, never
/// rate-limited or dropped.
pub const AUTHORISING: &[&str] = &["exception_used", "legacy_read"];
/// Sustained client-triggerable events per access key and second.
pub const RATE_PER_SEC: f64 = 10.0;
/// Events per access key allowed in a burst.
pub const BURST: f64 = 50.0;
/// Queue depth.
const QUEUE: usize = 4096;
/// Queued events written with one fsync at most.
const BATCH: usize = 256;
/// Access keys tracked by the rate limiter at most (idle ones are forgotten).
const MAX_TRACKED: usize = 10_000;

type Event = serde_json::Map<String, serde_json::Value>;

enum Job {
    Event(Event),
    Durable(Event, oneshot::Sender<Result<Head, String>>),
    Tick,
}

#[derive(Default)]
struct Shared {
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Events that found the queue full.
    dropped: AtomicU64,
    /// (access key, event) → events over the rate limit, not yet summarised.
    suppressed: Mutex<HashMap<(String, String), u64>>,
    /// Per access key: (tokens, last refill).
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    /// The log's path and chain head after the last append (for anchors).
    head: Mutex<Option<(PathBuf, Head)>>,
}

/// Called on the writer thread with each new chain head.
pub(crate) type OnHead = Box<dyn Fn(&Path, &Head) + Send>;

/// A running writer.
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
}

impl Writer {
    /// Starts the writer thread (and its once-a-second ticker) for `log`.
    pub(crate) fn start(log: AuditLog, metrics: Arc<Metrics>, on_head: OnHead) -> Writer {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        let shared = Arc::new(Shared {
            healthy: AtomicBool::new(true),
            head: Mutex::new(Some((log.path().to_owned(), log.head()))),
            ..Default::default()
        });
        let (sh, m) = (shared.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("sealgate-audit".into())
            .spawn(move || {
                let mut w = Worker {
                    log,
                    shared: sh,
                    metrics: m,
                    failed: 0,
                    failing_since: None,
                    on_head,
                };
                let mut next = None;
                while let Some(job) = next.take().or_else(|| rx.blocking_recv()) {
                    match job {
                        Job::Event(e) => {
                            // Events already queued share one write + fsync.
                            let mut batch = vec![e];
                            while batch.len() < BATCH {
                                match rx.try_recv() {
                                    Ok(Job::Event(e)) => batch.push(e),
                                    Ok(other) => {
                                        next = Some(other);
                                        break;
                                    }
                                    Err(_) => break,
                                }
                            }
                            let _ = w.write(batch);
                        }
                        Job::Durable(e, reply) => {
                            let _ = reply.send(w.write(vec![e]).map_err(|e| e.to_string()));
                        }
                        Job::Tick => w.tick(),
                    }
                }
            })
            .expect("audit writer thread");
        let weak = tx.downgrade();
        std::thread::Builder::new()
            .name("sealgate-audit-tick".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    let Some(tx) = weak.upgrade() else { return };
                    let _ = tx.try_send(Job::Tick);
                }
            })
            .expect("audit ticker thread");
        Writer {
            tx,
            shared,
            metrics,
        }
    }

    /// Queues a security event without waiting; rate-limited per access
    /// key (the event's `access_key`, else `client`: the request's access
    /// key or address).
    pub(crate) fn offer(&self, event: Event, client: Option<String>) {
        let name = event
            .get("event")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let ak = event
            .get("access_key")
            .and_then(|v| v.as_str())
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .or(client)
            .unwrap_or_default();
        if !AUTHORISING.contains(&name.as_str()) && !ak.is_empty() && !self.allow(&ak) {
            *self
                .shared
                .suppressed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry((ak, name))
                .or_default() += 1;
            self.metrics.event("audit_suppressed", None);
            return;
        }
        if self.tx.try_send(Job::Event(event)).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            self.metrics.event("audit_dropped", None);
        }
    }

    fn allow(&self, ak: &str) -> bool {
        let now = Instant::now();
        let mut b = self
            .shared
            .buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if b.len() >= MAX_TRACKED && !b.contains_key(ak) {
            // Forget keys whose bucket has refilled: they lose nothing.
            b.retain(|_, (t, at)| {
                *t + now.duration_since(*at).as_secs_f64() * RATE_PER_SEC < BURST
            });
        }
        let (tokens, at) = b.entry(ak.to_owned()).or_insert((BURST, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * RATE_PER_SEC).min(BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The log's path and chain head after the last append.
    pub(crate) fn head(&self) -> Option<(PathBuf, Head)> {
        self.shared
            .head
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Writes `event` durably (write + fsync, off the request threads) and
    /// waits for it.
    pub(crate) async fn durable(&self, event: Event) -> Result<Head, AuditError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Job::Durable(event, reply))
            .await
            .map_err(|_| AuditError::Unavailable("the audit writer has stopped".into()))?;
        match done.await {
            Ok(Ok(head)) => Ok(head),
            Ok(Err(why)) => Err(AuditError::Unavailable(why)),
            Err(_) => Err(AuditError::Unavailable(
                "the audit writer has stopped".into(),
            )),
        }
    }

    /// Ok while appends succeed; the last error otherwise.
    pub(crate) fn health(&self) -> Result<(), String> {
        if self.shared.healthy.load(Ordering::Acquire) {
            return Ok(());
        }
        Err(self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "audit log not writable".into()))
    }
}

struct Worker {
    log: AuditLog,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    /// Appends failed since the last success.
    failed: u64,
    failing_since: Option<chrono::DateTime<chrono::Utc>>,
    on_head: OnHead,
}

impl Worker {
    fn write(&mut self, events: Vec<Event>) -> Result<Head, AuditError> {
        if self.failed > 0
            && let Err(e) = self.recover()
        {
            // The events are lost with the failed recovery record: counted.
            self.failed += events.len() as u64;
            return Err(e);
        }
        self.append_all(events)
    }

    fn append(&mut self, event: Event) -> Result<Head, AuditError> {
        self.append_all(vec![event])
    }

    fn append_all(&mut self, events: Vec<Event>) -> Result<Head, AuditError> {
        let n = events.len() as u64;
        match self.log.append_all(events) {
            Ok(h) => {
                *self.shared.head.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((self.log.path().to_owned(), h));
                (self.on_head)(self.log.path(), &h);
                Ok(h)
            }
            Err(e) => {
                if self.failed == 0 {
                    self.failing_since = Some(chrono::Utc::now());
                    tracing::error!(path = %self.log.path().display(), error = %e, "audit log write failed: unencrypted writes and legacy reads are refused (503) until it is writable; /health/ready reports not ready");
                }
                self.failed += n;
                self.shared.healthy.store(false, Ordering::Release);
                *self
                    .shared
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) =
                    Some(format!("audit log not writable: {e}"));
                self.metrics.event("audit_write_failed", None);
                Err(e)
            }
        }
    }

    /// After failures: writes the record of the outage first.
    fn recover(&mut self) -> Result<(), AuditError> {
        let mut m = Event::new();
        m.insert("event".into(), "audit_log_recovered".into());
        m.insert("severity".into(), "warn".into());
        m.insert("failed_appends".into(), self.failed.into());
        if let Some(t) = self.failing_since {
            m.insert("since".into(), t.to_rfc3339().into());
        }
        let err = self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(e) = err {
            m.insert("error".into(), e.into());
        }
        self.append(m)?;
        tracing::warn!(path = %self.log.path().display(), failed_appends = self.failed, "audit log writable again");
        self.failed = 0;
        self.failing_since = None;
        self.shared.healthy.store(true, Ordering::Release);
        Ok(())
    }

    /// Once a second: retry after failures, then summarise what was
    /// suppressed or dropped.
    fn tick(&mut self) {
        if self.failed > 0 && self.recover().is_err() {
            return;
        }
        let dropped = self.shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let mut m = Event::new();
            m.insert("event".into(), "audit_events_dropped".into());
            m.insert("severity".into(), "warn".into());
            m.insert("count".into(), dropped.into());
            m.insert(
                "message".into(),
                "security events that found the audit queue full (counted, not written)".into(),
            );
            if self.append(m).is_err() {
                self.shared.dropped.fetch_add(dropped, Ordering::Relaxed);
                return;
            }
        }
        let pending = std::mem::take(
            &mut *self
                .shared
                .suppressed
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let mut left = pending.into_iter();
        while let Some(((ak, name), count)) = left.next() {
            let mut m = Event::new();
            m.insert("event".into(), "audit_events_suppressed".into());
            m.insert("severity".into(), "warn".into());
            m.insert("access_key".into(), ak.clone().into());
            m.insert("suppressed_event".into(), name.clone().into());
            m.insert("count".into(), count.into());
            m.insert(
                "message".into(),
                format!("events over the per-access-key limit ({RATE_PER_SEC}/s, burst {BURST}), summarised").into(),
            );
            if self.append(m).is_err() {
                // Kept for the next tick.
                let mut s = self
                    .shared
                    .suppressed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                for (k, n) in std::iter::once(((ak, name), count)).chain(left) {
                    *s.entry(k).or_default() += n;
                }
                return;
            }
        }
    }
}

/// A handle for writing authorising records, shared with the audit layer:
/// without an attached log it writes nothing and always succeeds.
#[derive(Clone, Default)]
pub struct Recorder {
    pub(super) writer: Arc<OnceLock<Writer>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("attached", &self.writer.get().is_some())
            .finish()
    }
}

impl Recorder {
    /// Writes an authorising record durably before the caller goes on;
    /// Err when it cannot be written (the caller must refuse the operation).
    /// The record is also sent to the tracing log (text/JSON) once written.
    pub async fn durable(&self, event: Event) -> Result<(), AuditError> {
        if let Some(w) = self.writer.get() {
            w.durable(event).await?;
        }
        Ok(())
    }

    /// Whether an audit log is attached.
    pub fn attached(&self) -> bool {
        self.writer.get().is_some()
    }

    /// Ok while the attached log is writable (or none is attached).
    pub fn health(&self) -> Result<(), String> {
        self.writer.get().map_or(Ok(()), Writer::health)
    }
}
