//! Incident reporting: security events POSTed as JSON to an operator's
//! webhook (docs/INCIDENTS.md), from a bounded queue with retries, so a slow
//! or absent receiver never holds up requests. Events that do not fit the
//! queue are dropped and counted (`sealgate_security_events_total{event="webhook_dropped"}`).

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

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
/// Attempts per event (1 + retries), with 1 s, 2 s, 4 s between them.
const ATTEMPTS: u32 = 4;

/// A handle to the sender task.
#[derive(Clone, Debug)]
pub struct Webhook {
    tx: mpsc::Sender<serde_json::Value>,
    metrics: Arc<crate::admin::Metrics>,
}

impl Webhook {
    /// Starts the sender task for `url` (http://); needs a Tokio runtime.
    pub fn start(url: &str, metrics: Arc<crate::admin::Metrics>) -> Result<Webhook, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("incident webhook {url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "incident webhook {url:?}: only http:// is supported (terminate TLS in a local relay)"
            ));
        }
        let (tx, mut rx) = mpsc::channel::<serde_json::Value>(QUEUE);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
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
        Ok(Webhook { tx, metrics })
    }

    /// Queues an event if it is an incident or an anchor (`chain_head`,
    /// `registry_verified`); never blocks.
    pub fn offer(&self, event: &serde_json::Map<String, serde_json::Value>) {
        let Some(name) = event.get("event").and_then(|v| v.as_str()) else {
            return;
        };
        if !INCIDENTS.contains(&name) && !super::anchor::ANCHORS.contains(&name) {
            return;
        }
        // Anchors never take the second half of the queue: incidents keep
        // room (a skipped anchor only widens the gap between anchored heads).
        if super::anchor::ANCHORS.contains(&name) && self.tx.capacity() < QUEUE / 2 {
            self.metrics.event("anchor_skipped", None);
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

    #[test]
    fn anchors_leave_half_the_queue_to_incidents() {
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let w = Webhook {
            tx,
            metrics: Arc::new(crate::admin::Metrics::default()),
        };
        let anchor = super::super::anchor::chain_head(std::path::Path::new("a"), 1, &[0; 32]);
        for _ in 0..QUEUE {
            w.offer(&anchor);
        }
        let mut incident = serde_json::Map::new();
        incident.insert("event".into(), "integrity_failure".into());
        let room = w.tx.capacity();
        assert!(room >= QUEUE / 2 - 1, "{room}");
        for _ in 0..room {
            w.offer(&incident);
        }
        let mut incidents = 0;
        while let Ok(v) = rx.try_recv() {
            incidents += usize::from(v["event"] == "integrity_failure");
        }
        assert_eq!(incidents, room);
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
