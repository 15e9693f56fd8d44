//! The admin listener, separate from the S3 port: `/health/live`,
//! `/health/ready` (the upstream answers) and `/metrics` in the Prometheus
//! text format (version 0.0.4).
//!
//! Counters are plain atomics updated on the request path; the text is
//! rendered on scrape.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Upper bounds (seconds) of the request-latency histogram.
pub const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// The gateway's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (method, status) → count.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// Cumulative histogram counts, one per bucket, then +Inf.
    latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    connections: AtomicI64,
    /// Security events (`sealgate::security`) by `event`.
    events: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// Records one finished request.
    pub fn request(&self, method: &str, status: u16, seconds: f64, bytes_in: u64, bytes_out: u64) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((method.to_owned(), status))
            .or_default() += 1;
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= *b {
                self.latency[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency[LATENCY_BUCKETS.len()].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
    }

    /// A connection opened (+1) or closed (-1).
    pub fn connection(&self, delta: i64) {
        self.connections.fetch_add(delta, Ordering::Relaxed);
    }

    /// Counts a security event by name.
    pub fn event(&self, name: &str) {
        *self
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_owned())
            .or_default() += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# HELP sealgate_requests_total S3 requests by HTTP method and status."
        );
        let _ = writeln!(o, "# TYPE sealgate_requests_total counter");
        for ((m, s), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                o,
                "sealgate_requests_total{{method=\"{}\",status=\"{s}\"}} {n}",
                label(m)
            );
        }
        let _ = writeln!(
            o,
            "# HELP sealgate_request_duration_seconds Time to the response head."
        );
        let _ = writeln!(o, "# TYPE sealgate_request_duration_seconds histogram");
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "sealgate_request_duration_seconds_bucket{{le=\"{b}\"}} {}",
                self.latency[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            o,
            "sealgate_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            o,
            "sealgate_request_duration_seconds_sum {}",
            self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(o, "sealgate_request_duration_seconds_count {count}");
        for (name, help, v) in [
            (
                "sealgate_received_bytes_total",
                "Request body bytes announced by clients.",
                self.bytes_in.load(Ordering::Relaxed),
            ),
            (
                "sealgate_sent_bytes_total",
                "Response body bytes announced to clients.",
                self.bytes_out.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let _ = writeln!(
            o,
            "# HELP sealgate_connections Open client connections.\n# TYPE sealgate_connections gauge\nsealgate_connections {}",
            self.connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP sealgate_security_events_total Security events (integrity failures, exception use and denials, ...)."
        );
        let _ = writeln!(o, "# TYPE sealgate_security_events_total counter");
        for (e, n) in self.events.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                o,
                "sealgate_security_events_total{{event=\"{}\"}} {n}",
                label(e)
            );
        }
        o
    }
}

/// Escapes a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves the admin endpoints on `listener` until the runtime ends.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    metrics: std::sync::Arc<Metrics>,
    upstream: crate::upstream::Upstream,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let (metrics, upstream) = (metrics.clone(), upstream.clone());
        let service =
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let (metrics, upstream) = (metrics.clone(), upstream.clone());
                async move {
                    Ok::<_, std::convert::Infallible>(
                        route(req.uri().path(), &metrics, &upstream).await,
                    )
                }
            });
        let conn = http
            .serve_connection(TokioIo::new(socket), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

async fn route(
    path: &str,
    metrics: &Metrics,
    upstream: &crate::upstream::Upstream,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let reply = |status: u16, ctype: &str, body: String| {
        http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, ctype)
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .expect("valid response")
    };
    match path {
        "/health/live" => reply(200, "text/plain", "ok\n".into()),
        "/health/ready" => {
            // Ready when the provider answers; the key store, config and
            // registry were checked before the gateway started listening.
            let probe = upstream.client.list_buckets().send();
            match tokio::time::timeout(std::time::Duration::from_secs(3), probe).await {
                Ok(Ok(_)) => reply(200, "text/plain", "ready\n".into()),
                Ok(Err(e)) => reply(
                    503,
                    "text/plain",
                    format!(
                        "not ready: {}\n",
                        crate::upstream::UpstreamError::from_sdk(e)
                    ),
                ),
                Err(_) => reply(
                    503,
                    "text/plain",
                    "not ready: the provider did not answer within 3 s\n".into(),
                ),
            }
        }
        "/metrics" => reply(200, "text/plain; version=0.0.4", metrics.render()),
        _ => reply(404, "text/plain", "not found\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_move_and_render() {
        let m = Metrics::default();
        m.request("PUT", 200, 0.02, 100, 0);
        m.request("GET", 404, 2.0, 0, 50);
        m.connection(1);
        m.event("integrity_failure");
        let t = m.render();
        assert!(
            t.contains("sealgate_requests_total{method=\"PUT\",status=\"200\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("sealgate_request_duration_seconds_bucket{le=\"0.025\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("sealgate_request_duration_seconds_bucket{le=\"5\"} 2"),
            "{t}"
        );
        assert!(
            t.contains("sealgate_request_duration_seconds_count 2"),
            "{t}"
        );
        assert!(t.contains("sealgate_received_bytes_total 100"), "{t}");
        assert!(t.contains("sealgate_connections 1"), "{t}");
        assert!(
            t.contains("sealgate_security_events_total{event=\"integrity_failure\"} 1"),
            "{t}"
        );
        assert_eq!(label("a\"b\\c"), "a\\\"b\\\\c");
    }
}
