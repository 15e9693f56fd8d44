//! The admin listener, separate from the S3 port: `/health/live`,
//! `/health/ready` (keys, registry and the upstream are fine) and `/metrics` in the Prometheus
//! text format (version 0.0.4).
//!
//! Counters are plain atomics updated on the request path; the text is
//! rendered on scrape.

use crate::telemetry::Metrics;

/// Serves the admin endpoints on `listener` until the runtime ends.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    metrics: std::sync::Arc<Metrics>,
    ready: std::sync::Arc<Readiness>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let (metrics, ready) = (metrics.clone(), ready.clone());
        let service =
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let (metrics, ready) = (metrics.clone(), ready.clone());
                async move {
                    Ok::<_, std::convert::Infallible>(
                        route(req.uri().path(), &metrics, &ready).await,
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
    ready: &Readiness,
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
        "/health/ready" => match ready.check().await {
            Ok(()) => reply(200, "text/plain", "ready\n".into()),
            Err(why) => reply(503, "text/plain", format!("not ready: {why}\n")),
        },
        "/metrics" => reply(200, "text/plain; version=0.0.4", metrics.render()),
        _ => reply(404, "text/plain", "not found\n".into()),
    }
}

/// What `/health/ready` checks: the key store (loaded before listening, so
/// it must still be there), the exception registry (re-verified, so a
/// damaged file shows), and the provider (a ListBuckets within 3 s, and
/// the state bucket when one is configured).
pub(crate) struct Readiness {
    pub(crate) upstream: crate::upstream::Upstream,
    pub(crate) policy: std::sync::Arc<crate::policy::PolicyCell>,
    pub(crate) keys: std::sync::Arc<crate::keys::KeyCell>,
    /// Not ready while the audit log cannot be written.
    pub(crate) audit: crate::audit::Recorder,
}

impl Readiness {
    async fn check(&self) -> Result<(), String> {
        self.audit.health()?;
        if let Some(why) = self.keys.withdrawn() {
            return Err(format!("keys withdrawn: {why}"));
        }
        let keys = self.keys.get();
        if !keys.dir().is_dir() {
            return Err(format!("the key store {} is gone", keys.dir().display()));
        }
        self.policy
            .get()
            .registry_ok(&keys)
            .map_err(|e| format!("exception registry: {e}"))?;
        let probe = self.upstream.list_buckets();
        match tokio::time::timeout(std::time::Duration::from_secs(3), probe).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("the provider did not answer within 3 s".into()),
        }
        if let Some(state) = self.upstream.state_bucket() {
            let probe = self.upstream.head_bucket(state);
            match tokio::time::timeout(std::time::Duration::from_secs(3), probe).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(format!(
                        "upstream.state_bucket {state:?}: {e} (create it at the provider for sealgate alone)"
                    ));
                }
                Err(_) => return Err("the provider did not answer within 3 s".into()),
            }
        }
        Ok(())
    }
}
