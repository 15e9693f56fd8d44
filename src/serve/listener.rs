//! Sockets and connections: binding, optional TLS, HTTP/1.1, and graceful
//! shutdown. Shared by the gateway and the embedded upstream.
//!
//! HTTP/1.1 only: it is what S3 and S3 clients speak, and s3s 0.14's HEAD
//! and error responses trip HTTP/2's length checks (an h2 client saw stream
//! resets on HEAD 404 and on ranged GETs).

use super::ServeError;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use s3s::service::S3Service;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests may run after shutdown was requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `listen`; `what` names the listener in the error.
pub(crate) async fn bind(
    listen: &str,
    what: &str,
) -> Result<(TcpListener, SocketAddr), ServeError> {
    let io = |source| ServeError::Io {
        what: format!("cannot listen on {listen}{what}"),
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    Ok((listener, addr))
}

/// Loads a PEM certificate chain and private key into a TLS acceptor
/// (ALPN `http/1.1`). Errors name the file and the problem.
pub fn tls_acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, ServeError> {
    let bad = |file: &Path, why: String| ServeError::Tls(format!("{}: {why}", file.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| bad(cert_file, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert_file, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(cert_file, "no PEM certificate found".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| bad(key_file, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(cert_file, format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `service` (HTTP/1.1, over TLS when `tls` is given) on
/// `listener` until `stop` fires, then lets in-flight connections finish for
/// up to 10 s. Without `stop` it serves until the runtime ends.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    service: S3Service,
    tls: Option<TlsAcceptor>,
    mut stop: Option<watch::Receiver<bool>>,
    metrics: Option<Arc<crate::admin::Metrics>>,
) {
    let http = Arc::new(ConnBuilder::new(TokioExecutor::new()).http1_only());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let stopped = async {
            match stop.as_mut() {
                Some(s) => {
                    let _ = s.changed().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let (socket, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(cause = %e, "accept failed");
                    continue;
                }
            },
            () = stopped => break,
        };
        let _ = socket.set_nodelay(true);
        let (http, watcher, tls) = (http.clone(), graceful.watcher(), tls.clone());
        let svc = service.clone();
        let m = metrics.clone();
        let service = hyper::service::service_fn(move |req| call(svc.clone(), req, m.clone()));
        let conn_metrics = metrics.clone();
        // The handshake runs in the connection's task so a slow client
        // cannot hold up the accept loop.
        tokio::spawn(async move {
            if let Some(m) = &conn_metrics {
                m.connection(1);
            }
            match tls {
                None => {
                    let conn = http.serve_connection(TokioIo::new(socket), service);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
                Some(tls) => {
                    let stream =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(socket)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::info!(%peer, cause = %e, "TLS handshake failed");
                                if let Some(m) = &conn_metrics {
                                    m.connection(-1);
                                }
                                return;
                            }
                            Err(_) => {
                                tracing::info!(%peer, "TLS handshake timed out");
                                if let Some(m) = &conn_metrics {
                                    m.connection(-1);
                                }
                                return;
                            }
                        };
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
            }
            if let Some(m) = &conn_metrics {
                m.connection(-1);
            }
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("in-flight requests did not finish within 10 s; closing");
        }
    }
}

/// Calls the S3 service, closing the connection after a response to an
/// empty-bodied `Expect: 100-continue` request.
///
/// Why: hyper sends `100 Continue` only when a body is read, so such a
/// request gets its final response directly (as RFC 9110 allows). botocore
/// (boto3, aws CLI) then keeps that response's status line cached for the
/// connection and misreads the next response on it, stalling until its read
/// timeout (seen with an empty PUT followed by a small one). A fresh
/// connection resets botocore's state.
async fn call(
    service: S3Service,
    req: http::Request<Incoming>,
    metrics: Option<Arc<crate::admin::Metrics>>,
) -> Result<s3s::HttpResponse, s3s::HttpError> {
    use tracing::Instrument;
    let close = expects_continue(req.headers()) && !has_body(req.headers());
    let started = std::time::Instant::now();
    let method = req.method().as_str().to_owned();
    let bytes_in = content_length(req.headers());
    // One id per request: on every log line inside it (span), in records
    // that cite it, and in the response (x-amz-request-id).
    let id = RequestId::new();
    let mut req = req.map(s3s::Body::from);
    req.extensions_mut().insert(id.clone());
    let span = tracing::info_span!("request", request_id = %id.0);
    let mut resp = service.call(req).instrument(span).await?;
    if let Ok(v) = http::HeaderValue::from_str(&id.0) {
        resp.headers_mut().insert("x-amz-request-id", v);
    }
    if let Some(m) = &metrics {
        m.request(
            &method,
            resp.status().as_u16(),
            started.elapsed().as_secs_f64(),
            bytes_in,
            content_length(resp.headers()),
        );
    }
    if close {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    Ok(resp)
}

/// The id of one client request (16 hex digits), carried in the request's
/// extensions so handlers can cite it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// A fresh random id.
    pub(crate) fn new() -> RequestId {
        use crate::format::RandomSource;
        let mut b = [0u8; 8];
        let _ = crate::format::OsRandom.fill(&mut b);
        RequestId(hex::encode_upper(b))
    }
}

fn content_length(h: &http::HeaderMap) -> u64 {
    h.get("x-amz-decoded-content-length")
        .or_else(|| h.get(http::header::CONTENT_LENGTH))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn expects_continue(h: &http::HeaderMap) -> bool {
    h.get(http::header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

fn has_body(h: &http::HeaderMap) -> bool {
    if h.contains_key(http::header::TRANSFER_ENCODING) {
        return true;
    }
    h.get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn empty_expect_request_is_recognised() {
        let h = headers(&[("expect", "100-Continue"), ("content-length", "0")]);
        assert!(expects_continue(&h) && !has_body(&h));
        let h = headers(&[("expect", "100-continue"), ("content-length", "5")]);
        assert!(has_body(&h));
        let h = headers(&[("expect", "100-continue"), ("transfer-encoding", "chunked")]);
        assert!(has_body(&h));
        assert!(!expects_continue(&headers(&[("content-length", "0")])));
    }
}
