//! Sockets and connections: binding, optional TLS, HTTP/1.1, and graceful
//! shutdown. Shared by the gateway and the embedded upstream.
//!
//! HTTP/1.1 only: it is what S3 and S3 clients speak, and s3s 0.14's HEAD
//! and error responses trip HTTP/2's length checks (an h2 client saw stream
//! resets on HEAD 404 and on ranged GETs).

use super::ServeError;
use super::client_ip::TrustedProxies;
use super::idle_body::IdleBody;
use super::write_timeout::WriteTimeout;
use crate::auth::failures::FailureWatch;
use crate::telemetry::{Operation, RequestId};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use s3s::service::S3Service;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send request headers, by default.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default limit on a request body's silences.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Default limit on a client not reading its response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

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

/// How a listener serves its connections.
#[derive(Default)]
pub(crate) struct ServeSettings {
    /// Terminate TLS with this acceptor.
    pub tls: Option<TlsAcceptor>,
    /// Stop accepting when this fires.
    pub stop: Option<watch::Receiver<bool>>,
    /// Count requests and connections here.
    pub metrics: Option<Arc<crate::telemetry::Metrics>>,
    /// How long in-flight requests may run after `stop` (default 10 s).
    pub grace: Option<Duration>,
    /// Report bursts of failed client authentications.
    pub auth_failures: Option<Arc<FailureWatch>>,
    /// Close connections whose request headers take longer (default 30 s).
    pub header_timeout: Option<Duration>,
    /// Fail requests whose body goes this long without a byte (default 60 s).
    pub body_timeout: Option<Duration>,
    /// Close connections whose client takes no response byte for this
    /// long (default 60 s).
    pub write_timeout: Option<Duration>,
    /// Serve at most this many connections at once (default unlimited).
    pub max_connections: Option<usize>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub proxies: Option<Arc<TrustedProxies>>,
    /// The keys in force: while they are withdrawn every request is
    /// refused (503) before it reaches the service.
    pub keys: Option<Arc<crate::keys::KeyCell>>,
}

/// Serves `service` (HTTP/1.1, over TLS when configured) on `listener`
/// until `stop` fires, then lets in-flight requests finish for up to the
/// grace period. Without `stop` it serves until the runtime ends.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    service: S3Service,
    settings: ServeSettings,
) {
    Listener::new(listener, service, settings).run().await;
}

/// One listening socket and what outlives its connections: the connection
/// limit, the stop signal and the graceful-shutdown watch.
struct Listener {
    socket: TcpListener,
    service: S3Service,
    http: Arc<ConnBuilder<TokioExecutor>>,
    tls: Option<TlsAcceptor>,
    stop: Option<watch::Receiver<bool>>,
    /// Each connection holds a permit; at the limit the listener stops
    /// accepting and further clients wait in the kernel's accept queue.
    slots: Arc<Semaphore>,
    graceful: GracefulShutdown,
    grace: Duration,
    write_timeout: Duration,
    metrics: Option<Arc<crate::telemetry::Metrics>>,
    auth_failures: Option<Arc<FailureWatch>>,
    body_timeout: Duration,
    proxies: Arc<TrustedProxies>,
    keys: Option<Arc<crate::keys::KeyCell>>,
}

impl Listener {
    fn new(socket: TcpListener, service: S3Service, settings: ServeSettings) -> Self {
        let ServeSettings {
            tls,
            stop,
            metrics,
            grace,
            auth_failures,
            header_timeout,
            body_timeout,
            write_timeout,
            max_connections,
            proxies,
            keys,
        } = settings;
        let mut builder = ConnBuilder::new(TokioExecutor::new()).http1_only();
        // hyper enforces the header timeout only with a timer: without one a
        // client trickling header bytes holds its connection forever.
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_timeout.unwrap_or(HEADER_TIMEOUT));
        Self {
            socket,
            service,
            http: Arc::new(builder),
            tls,
            stop,
            slots: Arc::new(Semaphore::new(
                max_connections.unwrap_or(Semaphore::MAX_PERMITS),
            )),
            graceful: GracefulShutdown::new(),
            grace: grace.unwrap_or(DRAIN_TIMEOUT),
            write_timeout: write_timeout.unwrap_or(WRITE_TIMEOUT),
            metrics,
            auth_failures,
            body_timeout: body_timeout.unwrap_or(BODY_TIMEOUT),
            proxies: proxies.unwrap_or_default(),
            keys,
        }
    }

    async fn run(mut self) {
        while let Some((permit, socket, peer)) = self.accept().await {
            self.spawn(permit, socket, peer);
        }
        self.shut_down().await;
    }

    /// The next connection with its slot, or `None` once stopped. The slot
    /// is taken first so that, at the limit, nothing is accepted.
    async fn accept(&mut self) -> Option<(OwnedSemaphorePermit, TcpStream, SocketAddr)> {
        loop {
            let permit = tokio::select! {
                p = self.slots.clone().acquire_owned() => p.ok()?,
                () = stopped(&mut self.stop) => return None,
            };
            tokio::select! {
                r = self.socket.accept() => match r {
                    Ok((socket, peer)) => return Some((permit, socket, peer)),
                    Err(e) => tracing::warn!(cause = %e, "accept failed"),
                },
                () = stopped(&mut self.stop) => return None,
            }
        }
    }

    fn spawn(&self, permit: OwnedSemaphorePermit, socket: TcpStream, peer: SocketAddr) {
        let _ = socket.set_nodelay(true);
        let handler = Handler {
            http: self.http.clone(),
            watcher: self.graceful.watcher(),
            tls: self.tls.clone(),
            write_timeout: self.write_timeout,
            service: self.service.clone(),
            ctx: Arc::new(CallContext {
                keys: self.keys.clone(),
                metrics: self.metrics.clone(),
                auth_failures: self.auth_failures.clone(),
                peer,
                body_timeout: self.body_timeout,
                proxies: self.proxies.clone(),
            }),
        };
        // The handshake runs in the connection's task so a slow client
        // cannot hold up the accept loop.
        tokio::spawn(handler.run(socket, permit));
    }

    async fn shut_down(self) {
        let Self {
            socket,
            graceful,
            grace,
            ..
        } = self;
        // Close the socket now, so new connections are refused (and a load
        // balancer moves on) while in-flight requests finish.
        drop(socket);
        tokio::select! {
            () = graceful.shutdown() => {},
            () = tokio::time::sleep(grace) => {
                tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish within the grace period; closing");
            }
        }
    }
}

/// Resolves when `stop` fires; never without one.
async fn stopped(stop: &mut Option<watch::Receiver<bool>>) {
    match stop {
        Some(s) => {
            let _ = s.changed().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// One accepted connection: TLS if configured, then HTTP/1.1 until the
/// client leaves or graceful shutdown ends it.
struct Handler {
    http: Arc<ConnBuilder<TokioExecutor>>,
    watcher: Watcher,
    tls: Option<TlsAcceptor>,
    write_timeout: Duration,
    service: S3Service,
    ctx: Arc<CallContext>,
}

impl Handler {
    /// Holds the connection's slot until the connection ends, and counts
    /// it as open meanwhile (a failed handshake included).
    async fn run(self, socket: TcpStream, _permit: OwnedSemaphorePermit) {
        let metrics = self.ctx.metrics.clone();
        if let Some(m) = &metrics {
            m.connection(1);
        }
        match self.tls.clone() {
            None => self.serve_http(socket).await,
            Some(tls) => {
                if let Some(stream) = handshake(&tls, socket, self.ctx.peer).await {
                    self.serve_http(stream).await;
                }
            }
        }
        if let Some(m) = &metrics {
            m.connection(-1);
        }
    }

    async fn serve_http<S>(self, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            http,
            watcher,
            write_timeout,
            service,
            ctx,
            ..
        } = self;
        let io = WriteTimeout::new(stream, write_timeout);
        let service =
            hyper::service::service_fn(move |req| call(service.clone(), req, ctx.clone()));
        let conn = http.serve_connection(TokioIo::new(io), service);
        let _ = watcher.watch(conn.into_owned()).await;
    }
}

/// The TLS handshake, bounded so a silent client cannot hold its slot.
async fn handshake(
    tls: &TlsAcceptor,
    socket: TcpStream,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(socket)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::info!(%peer, cause = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// What is known of a request from its head, before the service runs.
struct RequestHead {
    id: RequestId,
    started: std::time::Instant,
    client_ip: IpAddr,
    /// The claimed access key (verified by s3s before any handler runs)
    /// attributes security events to a client for the audit rate limits.
    signed: Option<String>,
    bytes_in: u64,
    expect: bool,
    with_body: bool,
}

/// Calls the S3 service, naming the request in its response and its logs,
/// counting it, and closing the connection where reusing it would confuse
/// the client (see [`closes_connection`]).
async fn call(
    service: S3Service,
    req: http::Request<Incoming>,
    ctx: Arc<CallContext>,
) -> Result<s3s::HttpResponse, s3s::HttpError> {
    use tracing::Instrument;
    let expect = expects_continue(req.headers());
    let with_body = has_body(req.headers());
    let started = std::time::Instant::now();
    let bytes_in = content_length(req.headers());
    let signed = claimed_access_key(&req).map(str::to_owned);
    let client_ip = ctx.proxies.client(ctx.peer.ip(), req.headers());
    // One id per request: on every log line inside it (span), in records
    // that cite it, and in the response (x-amz-request-id).
    let head = RequestHead {
        id: RequestId::new(),
        started,
        client_ip,
        signed,
        bytes_in,
        expect,
        with_body,
    };
    if let Some(e) = super::gate::refusal(&req) {
        return Ok(refuse(req, e, &head, &ctx).await);
    }
    // The reason (provider address, key names, its words) is in the
    // gateway's log and keys_withdrawn event, not for any client.
    if ctx.keys.as_ref().is_some_and(|k| k.withdrawn().is_some()) {
        let e = s3s::s3_error!(
            ServiceUnavailable,
            "sealgate's keys are withdrawn (see the gateway's log)"
        );
        return Ok(refuse(req, e, &head, &ctx).await);
    }
    let operation = Operation::default();
    let (parts, body) = req.into_parts();
    let body = IdleBody::new(body, ctx.body_timeout);
    let body_read = body.finished();
    let mut req = http::Request::from_parts(parts, s3s::Body::http_body(body));
    req.extensions_mut().insert(head.id.clone());
    req.extensions_mut().insert(operation.clone());
    let span = tracing::info_span!(
        "request",
        request_id = %head.id.0,
        client_ip = %head.client_ip,
        access_key = head.signed.as_deref().unwrap_or("")
    );
    let mut resp = service.call(req).instrument(span.clone()).await?;
    stamp(&mut resp, &head.id.0);
    account(&head, &resp, operation.get(), &span, &ctx);
    let unread = !body_read.load(std::sync::atomic::Ordering::Relaxed);
    if closes_connection(&head, unread, resp.status()) {
        close(&mut resp);
    }
    Ok(resp)
}

/// The answer to a request the gate refused from its headers: the body is
/// never handed to the service.
async fn refuse(
    req: http::Request<Incoming>,
    e: s3s::S3Error,
    head: &RequestHead,
    ctx: &CallContext,
) -> s3s::HttpResponse {
    tracing::info!(request_id = %head.id.0, client_ip = %head.client_ip, method = %req.method(), code = %e.code().as_str(), "request refused before its body was read");
    if let Some(m) = &ctx.metrics {
        m.request(
            "refused",
            e.status_code().map_or(500, |s| s.as_u16()),
            head.started.elapsed().as_secs_f64(),
            0,
            0,
        );
    }
    // A small body is read out (and dropped) before the answer: a
    // client still sending when the connection closes gets a broken
    // pipe instead of the error (seen with a 5 MiB DeleteObjects). A
    // large one is not read; the connection closes either way.
    if (1..=DRAIN_MAX).contains(&head.bytes_in) {
        drain(req.into_body(), ctx.body_timeout).await;
    }
    let mut resp = super::gate::response(e, &head.id.0);
    stamp(&mut resp, &head.id.0);
    close(&mut resp);
    resp
}

/// Counts a served request, and reports a failed client authentication.
/// The access check names the operation; a signed request refused before
/// it ran failed authentication (bad signature, unknown key, skew).
fn account(
    head: &RequestHead,
    resp: &s3s::HttpResponse,
    op: Option<&str>,
    span: &tracing::Span,
    ctx: &CallContext,
) {
    let auth_failed =
        op.is_none() && head.signed.is_some() && resp.status() == http::StatusCode::FORBIDDEN;
    if let Some(m) = &ctx.metrics {
        m.request(
            op.unwrap_or(if auth_failed {
                "unauthenticated"
            } else {
                "unknown"
            }),
            resp.status().as_u16(),
            head.started.elapsed().as_secs_f64(),
            head.bytes_in,
            content_length(resp.headers()),
        );
        if auth_failed {
            m.auth_failure();
        }
    }
    if auth_failed {
        let _g = span.enter();
        report_auth_failure(head, ctx);
    }
}

/// Logs a failed authentication, and a security event when one address
/// fails too often (the watch decides).
fn report_auth_failure(head: &RequestHead, ctx: &CallContext) {
    let source = head.client_ip;
    let access_key = head.signed.as_deref().unwrap_or("");
    tracing::info!(client_ip = %source, access_key, "client authentication failed");
    if let Some(count) = ctx
        .auth_failures
        .as_ref()
        .and_then(|w| w.record(source, std::time::Instant::now()))
    {
        tracing::warn!(
            target: crate::telemetry::security::TARGET,
            event = "auth_failures",
            client_ip = %source,
            count,
            access_key,
            "repeated client authentication failures from one address"
        );
    }
}

/// Whether the answer must end the connection (`unread`: the service did
/// not read the body to its end).
///
/// An empty-bodied `Expect: 100-continue` request, and an error to any
/// such request: hyper sends `100 Continue` only when a body is read, so
/// such a request gets its final response directly (as RFC 9110 allows).
/// botocore (boto3, aws CLI) then keeps that response's status line cached
/// for the connection and misreads the next response on it, stalling until
/// its read timeout (seen with an empty PUT followed by a small one). A
/// fresh connection resets botocore's state. With a body, a refusal
/// answered before the body was asked for (KeyTooLongError, an unknown
/// bucket...) leaves the client free not to send it, while hyper may still
/// expect its bytes and read the next request on the connection as that
/// body ("400 Bad Request" to botocore's next call, seen in the e2e suite).
///
/// And without Expect: an error answered before the body was read to its
/// end ends the connection (hyper closes it: the rest of the body would be
/// read as the next request); saying so keeps the client from reusing it
/// for its next request, which would then fail on a closed socket (an
/// SDK's IncompleteMessage after a provider refused a part).
fn closes_connection(head: &RequestHead, unread: bool, status: http::StatusCode) -> bool {
    if status.as_u16() < 300 {
        return head.expect && !head.with_body;
    }
    head.expect || (head.with_body && unread)
}

fn close(resp: &mut s3s::HttpResponse) {
    resp.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
}

/// The largest body a request refused from its headers is read out before
/// the answer (more is never read).
const DRAIN_MAX: u64 = 8 << 20;

/// Reads and drops `body`, at most [`DRAIN_MAX`] bytes, giving up when it
/// stalls for `idle`: nothing is kept.
async fn drain(mut body: Incoming, idle: Duration) {
    use http_body_util::BodyExt;
    let mut seen = 0u64;
    while seen <= DRAIN_MAX {
        match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(Ok(f))) => seen += f.data_ref().map_or(0, |d| d.len() as u64),
            _ => return,
        }
    }
}

/// Names the request in its response, as S3 does: `x-amz-request-id` and
/// `x-amz-id-2` (the host id; sealgate's is the request id too, which is
/// what its logs carry), and, in an XML error body, the `RequestId` and
/// `HostId` elements with the same values, whichever layer wrote the error
/// (the gate, s3s's own checks, the front end). Error bodies are small and
/// already in memory; a streamed body is left alone.
fn stamp(resp: &mut s3s::HttpResponse, id: &str) {
    if let Ok(v) = http::HeaderValue::from_str(id) {
        resp.headers_mut().insert("x-amz-request-id", v.clone());
        resp.headers_mut().insert("x-amz-id-2", v);
    }
    if resp.status().as_u16() < 300 {
        return;
    }
    let Some(body) = resp.body().bytes() else {
        return;
    };
    let Some(open) = std::str::from_utf8(&body)
        .ok()
        .and_then(|t| t.trim_end().strip_suffix("</Error>"))
    else {
        return;
    };
    // `id` is hex: nothing in it needs escaping.
    let mut out = String::with_capacity(body.len() + 2 * id.len() + 40);
    out.push_str(open);
    if !open.contains("<RequestId>") {
        out.push_str(&format!("<RequestId>{id}</RequestId>"));
    }
    if !open.contains("<HostId>") {
        out.push_str(&format!("<HostId>{id}</HostId>"));
    }
    out.push_str("</Error>");
    resp.headers_mut().remove(http::header::CONTENT_LENGTH);
    *resp.body_mut() = s3s::Body::from(out);
}

/// What a connection's requests share.
struct CallContext {
    keys: Option<Arc<crate::keys::KeyCell>>,
    metrics: Option<Arc<crate::telemetry::Metrics>>,
    auth_failures: Option<Arc<FailureWatch>>,
    peer: SocketAddr,
    body_timeout: Duration,
    proxies: Arc<TrustedProxies>,
}

/// The access key a request claims (SigV4 header or presigned query), for
/// reporting only: s3s does the real parsing and verification.
pub(crate) fn claimed_access_key<B>(req: &http::Request<B>) -> Option<&str> {
    let from_header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once("Credential="))
        .map(|(_, rest)| rest);
    let from_query = || {
        req.uri()
            .query()?
            .split('&')
            .find_map(|p| p.strip_prefix("X-Amz-Credential="))
    };
    let cred = from_header.or_else(from_query)?;
    Some(cred.split(['/', '%', ',']).next().unwrap_or(""))
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

    #[test]
    fn connection_close_decisions() {
        let head = |expect, with_body| RequestHead {
            id: RequestId("0".into()),
            started: std::time::Instant::now(),
            client_ip: IpAddr::from([127, 0, 0, 1]),
            signed: None,
            bytes_in: 0,
            expect,
            with_body,
        };
        let (ok, err) = (http::StatusCode::OK, http::StatusCode::NOT_FOUND);
        // Empty-bodied Expect: always; Expect with a body: on an error.
        assert!(closes_connection(&head(true, false), false, ok));
        assert!(!closes_connection(&head(true, true), false, ok));
        assert!(closes_connection(&head(true, true), false, err));
        // No Expect: only an error answered with the body left unread.
        assert!(closes_connection(&head(false, true), true, err));
        assert!(!closes_connection(&head(false, true), false, err));
        assert!(!closes_connection(&head(false, true), true, ok));
        assert!(!closes_connection(&head(false, false), true, err));
    }
}
