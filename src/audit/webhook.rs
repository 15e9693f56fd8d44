//! Incident reporting: security events POSTed as JSON to an operator's
//! webhook (docs/INCIDENTS.md), from a bounded queue with retries, so a slow
//! or absent receiver never holds up requests. Events that do not fit the
//! queue are dropped and counted (`sealgate_security_events_total{event="webhook_dropped"}`).
//!
//! One client cannot crowd out the others: each (event, client) pair may
//! send [`PER_CLIENT_BURST`] incidents, then one per [`PER_CLIENT_REFILL`];
//! the rest stay in the audit log and are counted (`webhook_suppressed`).
//! Anchors (the newest chain head, the newest verified registry line) do not
//! use the queue at all: each has one slot that keeps only the newest value,
//! so no flood of incidents can keep a head from leaving the host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Events worth waking someone for; routine records (e.g. `exception_used`)
/// stay in the audit log only.
pub const INCIDENTS: &[&str] = &[
    "integrity_failure",
    "auth_failures",
    "revoked_key_used",
    "keys_reload_failed",
    "unknown_key",
    "bad_upload_id",
    "exception_denied",
    "exception_lapsed",
    "legacy_read_denied",
    "policy_reload_failed",
];

/// Queue depth.
const QUEUE: usize = 1024;
/// Incidents one (event, client) pair may send at once.
pub const PER_CLIENT_BURST: f64 = 5.0;
/// Then one more per this interval.
pub const PER_CLIENT_REFILL: Duration = Duration::from_secs(12);
/// (event, client) pairs tracked before idle ones are forgotten.
const MAX_TRACKED: usize = 4096;
/// Attempts per event (1 + retries), with 1 s, 2 s, 4 s between them.
const ATTEMPTS: u32 = 4;

/// (event, client) → (tokens, last refill).
type Budget = HashMap<(String, String), (f64, Instant)>;

/// A handle to the sender task.
#[derive(Clone, Debug)]
pub struct Webhook {
    tx: mpsc::Sender<serde_json::Value>,
    /// The newest `chain_head` and `registry_verified` anchors.
    anchors: Arc<[watch::Sender<Option<serde_json::Value>>; 2]>,
    budget: Arc<Mutex<Budget>>,
    metrics: Arc<crate::telemetry::Metrics>,
}

impl Webhook {
    /// Starts the sender task for `url` (http://); needs a Tokio runtime.
    pub fn start(url: &str, metrics: Arc<crate::telemetry::Metrics>) -> Result<Webhook, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("incident webhook {url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "incident webhook {url:?}: only http:// is supported (terminate TLS in a local relay)"
            ));
        }
        let (tx, mut rx) = mpsc::channel::<serde_json::Value>(QUEUE);
        let (head_tx, mut head_rx) = watch::channel(None);
        let (reg_tx, mut reg_rx) = watch::channel(None);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
        tokio::spawn(async move {
            loop {
                // The newest anchor of each kind, or the next incident
                // (select! picks fairly among those ready).
                let event = tokio::select! {
                    Ok(()) = head_rx.changed() => head_rx.borrow_and_update().clone(),
                    Ok(()) = reg_rx.changed() => reg_rx.borrow_and_update().clone(),
                    e = rx.recv() => match e {
                        Some(e) => Some(e),
                        None => return,
                    },
                };
                let Some(event) = event else { continue };
                let body = bytes::Bytes::from(serde_json::to_vec(&event).unwrap_or_default());
                for attempt in 0..ATTEMPTS {
                    let req = http::Request::post(uri.clone())
                        .header(http::header::CONTENT_TYPE, "application/json")
                        .body(http_body_util::Full::new(body.clone()))
                        .expect("valid request");
                    match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
                        Ok(Ok(r)) if r.status().is_success() => break,
                        _ if attempt + 1 < ATTEMPTS => {
                            tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                        }
                        _ => {
                            let _ = std::io::Write::write_all(
                                &mut std::io::stderr(),
                                b"sealgate: incident webhook unreachable; event kept in the audit log only\n",
                            );
                        }
                    }
                }
            }
        });
        Ok(Webhook {
            tx,
            anchors: Arc::new([head_tx, reg_tx]),
            budget: Arc::default(),
            metrics,
        })
    }

    /// Whether `client` may send one more `event` now (token bucket).
    fn allow(&self, event: &str, client: &str) -> bool {
        let now = Instant::now();
        let mut b = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        let refill = |t: f64, at: Instant| {
            (t + now.duration_since(at).as_secs_f64() / PER_CLIENT_REFILL.as_secs_f64())
                .min(PER_CLIENT_BURST)
        };
        if b.len() >= MAX_TRACKED {
            b.retain(|_, (t, at)| refill(*t, *at) < PER_CLIENT_BURST);
        }
        let (tokens, at) = b
            .entry((event.to_owned(), client.to_owned()))
            .or_insert((PER_CLIENT_BURST, now));
        *tokens = refill(*tokens, *at);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Queues an event if it is an incident, or keeps it as the newest
    /// anchor (`chain_head`, `registry_verified`); never blocks. `client`
    /// (the request's access key or address, when the event came from a
    /// request) bounds what one client can send.
    pub fn offer(&self, event: &serde_json::Map<String, serde_json::Value>, client: Option<&str>) {
        let Some(name) = event.get("event").and_then(|v| v.as_str()) else {
            return;
        };
        if let Some(slot) = super::anchor::ANCHORS.iter().position(|a| *a == name) {
            let e = payload(event, &chrono::Utc::now().to_rfc3339());
            self.anchors[slot].send_replace(Some(serde_json::Value::Object(e)));
            return;
        }
        if !INCIDENTS.contains(&name) {
            return;
        }
        let who = event
            .get("access_key")
            .and_then(|v| v.as_str())
            .filter(|a| !a.is_empty())
            .or(client)
            .unwrap_or("-");
        if !self.allow(name, who) {
            self.metrics.event("webhook_suppressed", None);
            return;
        }
        let e = payload(event, &chrono::Utc::now().to_rfc3339());
        if self.tx.try_send(serde_json::Value::Object(e)).is_err() {
            self.metrics.event("webhook_dropped", None);
        }
    }
}

/// The JSON an incident is POSTed as: the event's fields plus `time` and
/// `source`. An event field of either name is kept as `event_time` /
/// `event_source` rather than overwritten, so no field is lost.
fn payload(
    event: &serde_json::Map<String, serde_json::Value>,
    now: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let mut e = event.clone();
    for (name, value) in [("time", now), ("source", "sealgate")] {
        if let Some(own) = e.remove(name) {
            e.insert(format!("event_{name}"), own);
        }
        e.insert(name.into(), value.into());
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> (Webhook, mpsc::Receiver<serde_json::Value>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let w = Webhook {
            tx,
            anchors: Arc::new([watch::channel(None).0, watch::channel(None).0]),
            budget: Arc::default(),
            metrics: Arc::new(crate::telemetry::Metrics::default()),
        };
        (w, rx)
    }

    #[test]
    fn anchors_never_take_room_from_incidents_and_keep_the_newest() {
        let (w, mut rx) = hook();
        let mut head_rx = w.anchors[0].subscribe();
        for seq in 1..=2 * QUEUE as u64 {
            w.offer(
                &super::super::anchor::chain_head(std::path::Path::new("a"), seq, &[0; 32]),
                None,
            );
        }
        assert_eq!(w.tx.capacity(), QUEUE, "anchors use no queue room");
        let newest = head_rx.borrow_and_update().clone().unwrap();
        assert_eq!(newest["seq"], 2 * QUEUE as u64, "{newest}");
        let mut incident = serde_json::Map::new();
        incident.insert("event".into(), "integrity_failure".into());
        w.offer(&incident, Some("reader"));
        assert_eq!(rx.try_recv().unwrap()["event"], "integrity_failure");
    }

    #[test]
    fn one_client_cannot_flood_the_webhook() {
        let (w, mut rx) = hook();
        let mut noisy = serde_json::Map::new();
        noisy.insert("event".into(), "bad_upload_id".into());
        for _ in 0..1000 {
            w.offer(&noisy, Some("mallory"));
        }
        let mut sent = 0;
        while rx.try_recv().is_ok() {
            sent += 1;
        }
        assert_eq!(sent, PER_CLIENT_BURST as usize, "one client's burst only");
        // Another client's incident still goes out.
        w.offer(&noisy, Some("alice"));
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn sealgate_fields_never_overwrite_an_event_field() {
        let mut ev = serde_json::Map::new();
        ev.insert("event".into(), "auth_failures".into());
        ev.insert("source".into(), "10.0.0.7".into());
        let p = payload(&ev, "2026-11-29T00:00:00Z");
        assert_eq!(p["source"], "sealgate");
        assert_eq!(p["event_source"], "10.0.0.7");
        assert_eq!(p["time"], "2026-11-29T00:00:00Z");
        assert_eq!(p["event"], "auth_failures");
        assert!(!p.contains_key("event_time"));
    }
}
