//! The gateway's counters and their Prometheus text exposition (0.0.4).
//!
//! Hot-path counters are atomics; labelled families use a small map behind a
//! mutex (a few dozen label sets at most: S3 operations × statuses, event
//! names, exception ids). The text is rendered on scrape.

use super::security::DECRYPTION_FAILURES;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Upper bounds (seconds) of the request-latency histogram.
pub const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// A histogram with [`LATENCY_BUCKETS`].
#[derive(Debug, Default)]
struct Histogram {
    /// Cumulative counts, one per bucket, then +Inf.
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, seconds: f64) {
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.counts[LATENCY_BUCKETS.len()].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, o: &mut String, name: &str, help: &str) {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let count = self.counts[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(o, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// A counter family with one string label set per entry.
#[derive(Debug, Default)]
struct Family(Mutex<BTreeMap<Vec<String>, u64>>);

impl Family {
    /// Counts `n` under `labels`; allocates only for a label set not seen
    /// before (it runs on every request; the sets are few).
    fn add(&self, labels: &[&str], n: u64) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, v)) = m
            .iter_mut()
            .find(|(k, _)| k.iter().map(String::as_str).eq(labels.iter().copied()))
        {
            *v += n;
            return;
        }
        m.insert(labels.iter().map(|s| (*s).to_owned()).collect(), n);
    }

    fn get(&self, labels: &[&str]) -> u64 {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key: Vec<String> = labels.iter().map(|s| (*s).to_owned()).collect();
        m.get(&key).copied().unwrap_or(0)
    }

    fn render(&self, o: &mut String, name: &str, help: &str, label_names: &[&str]) {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
        for (values, n) in self.0.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let labels: Vec<String> = label_names
                .iter()
                .zip(values)
                .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                .collect();
            let _ = writeln!(o, "{name}{{{}}} {n}", labels.join(","));
        }
    }
}

/// The gateway's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (S3 operation, status) → count.
    requests: Family,
    latency: Histogram,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    connections: AtomicI64,
    /// Security events (`sealgate::security`) by `event`.
    events: Family,
    /// Writes under each unencrypted-storage exception.
    exception_uses: Family,
    /// Requests to the provider by S3 operation and status class
    /// (`2xx`..`5xx`, or `transport` when no response came).
    upstream: Family,
    upstream_latency: Histogram,
    upstream_retries: AtomicU64,
    upstream_bytes_in: AtomicU64,
    /// Requests refused because their signature or access key was wrong.
    auth_failures: AtomicU64,
    /// When the active key was created (Unix seconds; 0 until known).
    active_key_created: AtomicI64,
}

impl Metrics {
    /// Records one finished client request. `operation` is the S3
    /// operation's name, or `unauthenticated` when the request never got
    /// past signature checks.
    pub fn request(
        &self,
        operation: &str,
        status: u16,
        seconds: f64,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        let code = http::StatusCode::from_u16(status).ok();
        let status_label = code.as_ref().map_or("invalid", http::StatusCode::as_str);
        self.requests.add(&[operation, status_label], 1);
        self.latency.observe(seconds);
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
    }

    /// A connection opened (+1) or closed (-1).
    pub fn connection(&self, delta: i64) {
        self.connections.fetch_add(delta, Ordering::Relaxed);
    }

    /// Counts a security event by name; `exception` is the exception id an
    /// `exception_used` event cites.
    pub fn event(&self, name: &str, exception: Option<&str>) {
        self.events.add(&[name], 1);
        if let (Some(id), "exception_used") = (exception, name) {
            self.exception_uses.add(&[id], 1);
        }
    }

    /// Records one attempt at a provider request: its status class (or
    /// `transport`), how long it took, and whether it was a retry.
    pub fn upstream_attempt(&self, operation: &str, class: &str, seconds: f64, retry: bool) {
        self.upstream.add(&[operation, class], 1);
        self.upstream_latency.observe(seconds);
        if retry {
            self.upstream_retries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts response body bytes announced by the provider.
    pub fn upstream_received(&self, bytes: u64) {
        self.upstream_bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a client request refused for its signature or access key.
    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Records when the key new objects are wrapped with was created, for
    /// `sealgate_active_key_age_seconds`.
    pub fn active_key_created(&self, unix_secs: i64) {
        self.active_key_created.store(unix_secs, Ordering::Relaxed);
    }

    /// How many requests of `operation` ended with `status` (for tests and
    /// the admin tools).
    pub fn requests_of(&self, operation: &str, status: u16) -> u64 {
        self.requests.get(&[operation, &status.to_string()])
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::new();
        self.requests.render(
            &mut o,
            "sealgate_requests_total",
            "Client requests by S3 operation and HTTP status.",
            &["operation", "status"],
        );
        self.latency.render(
            &mut o,
            "sealgate_request_duration_seconds",
            "Time from a client request to its response head.",
        );
        let decrypt: u64 = DECRYPTION_FAILURES
            .iter()
            .map(|e| self.events.get(&[e]))
            .sum();
        for (name, kind, help, v) in [
            (
                "sealgate_received_bytes_total",
                "counter",
                "Request body bytes announced by clients.",
                self.bytes_in.load(Ordering::Relaxed) as i64,
            ),
            (
                "sealgate_sent_bytes_total",
                "counter",
                "Response body bytes announced to clients.",
                self.bytes_out.load(Ordering::Relaxed) as i64,
            ),
            (
                "sealgate_connections",
                "gauge",
                "Open client connections.",
                self.connections.load(Ordering::Relaxed),
            ),
            (
                "sealgate_auth_failures_total",
                "counter",
                "Client requests refused for a bad signature or unknown access key.",
                self.auth_failures.load(Ordering::Relaxed) as i64,
            ),
            (
                "sealgate_decryption_failures_total",
                "counter",
                "Stored objects that failed to decrypt or authenticate (integrity_failure, unknown_key, revoked_key_used, bad_upload_id).",
                decrypt as i64,
            ),
            (
                "sealgate_upstream_received_bytes_total",
                "counter",
                "Response body bytes announced by the provider (what reads fetched).",
                self.upstream_bytes_in.load(Ordering::Relaxed) as i64,
            ),
            (
                "sealgate_upstream_retries_total",
                "counter",
                "Provider requests retried by the gateway (idempotent operations only).",
                self.upstream_retries.load(Ordering::Relaxed) as i64,
            ),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
        let created = self.active_key_created.load(Ordering::Relaxed);
        if created > 0 {
            let name = "sealgate_active_key_age_seconds";
            let age = chrono::Utc::now().timestamp() - created;
            let _ = writeln!(
                o,
                "# HELP {name} Age of the key new objects are wrapped with (compare with key_max_age_days).\n# TYPE {name} gauge\n{name} {age}"
            );
        }
        self.upstream.render(
            &mut o,
            "sealgate_upstream_requests_total",
            "Attempts at provider requests by S3 operation and outcome (status class, or transport for no response).",
            &["operation", "outcome"],
        );
        self.upstream_latency.render(
            &mut o,
            "sealgate_upstream_request_duration_seconds",
            "Time of one attempt at a provider request, to its response head.",
        );
        self.events.render(
            &mut o,
            "sealgate_security_events_total",
            "Security events (integrity failures, exception use and denials, ...).",
            &["event"],
        );
        self.exception_uses.render(
            &mut o,
            "sealgate_exception_uses_total",
            "Writes stored unencrypted, by the exception that allowed them.",
            &["exception"],
        );
        o
    }
}

/// Escapes a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_move_and_render() {
        let m = Metrics::default();
        m.request("PutObject", 200, 0.02, 100, 0);
        m.request("GetObject", 404, 2.0, 0, 50);
        m.connection(1);
        m.event("integrity_failure", None);
        m.event("exception_used", Some("EX-1"));
        m.upstream_attempt("GetObject", "5xx", 0.01, false);
        m.upstream_attempt("GetObject", "2xx", 0.01, true);
        m.auth_failure();
        m.upstream_received(4096);
        let t = m.render();
        for want in [
            "sealgate_requests_total{operation=\"PutObject\",status=\"200\"} 1",
            "sealgate_request_duration_seconds_bucket{le=\"0.025\"} 1",
            "sealgate_request_duration_seconds_bucket{le=\"5\"} 2",
            "sealgate_request_duration_seconds_count 2",
            "sealgate_received_bytes_total 100",
            "sealgate_connections 1",
            "sealgate_security_events_total{event=\"integrity_failure\"} 1",
            "sealgate_decryption_failures_total 1",
            "sealgate_exception_uses_total{exception=\"EX-1\"} 1",
            "sealgate_upstream_requests_total{operation=\"GetObject\",outcome=\"5xx\"} 1",
            "sealgate_upstream_retries_total 1",
            "sealgate_upstream_request_duration_seconds_count 2",
            "sealgate_auth_failures_total 1",
            "sealgate_upstream_received_bytes_total 4096",
        ] {
            assert!(t.contains(want), "{want} missing from\n{t}");
        }
        assert_eq!(m.requests_of("GetObject", 404), 1);
        assert_eq!(label("a\"b\\c"), "a\\\"b\\\\c");
    }
}
