//! A fault-injecting HTTP proxy for tests, placed between sealgate and a
//! real provider. Requests pass through unchanged (Host kept, so provider
//! signatures still verify) unless an armed rule matches; a rule then
//! delays, answers with an error status, cuts the request mid-body, drops
//! the answer after the provider acted, or cuts, corrupts or stalls the
//! response body. Every request is logged with what was done to it.

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

type Error = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, Error>;

/// What happens to a matching request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Wait, then forward normally.
    Delay(Duration),
    /// Answer with this status and S3 error code; the provider sees nothing.
    Status(u16, &'static str),
    /// Forward only the first N request body bytes, then break both
    /// connections (the provider sees a cut upload, sealgate a reset).
    CutRequest(usize),
    /// Forward the whole request, let the provider act, then close
    /// without answering (the work is done but its answer is lost).
    DropResponse,
    /// Never answer (headers stall).
    StallHeaders,
    /// Take the whole request body, then never answer.
    SwallowThenStall,
    /// Forward N response body bytes, then break the connection.
    CutResponse(usize),
    /// Flip one bit of the response body byte at this offset.
    Corrupt(usize),
    /// Forward N response body bytes, then send nothing more.
    StallResponse(usize),
}

/// Which requests a rule applies to.
pub struct Rule {
    /// HTTP method, e.g. "GET".
    pub method: &'static str,
    /// A substring of the path and query, e.g. "/bucket/key?uploadId".
    pub contains: String,
    /// Matching requests to let through untouched first.
    pub skip: usize,
    /// How many matching requests (after `skip`) get the fault.
    pub times: usize,
    /// The fault.
    pub fault: Fault,
}

/// One request the proxy saw.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
}

/// The proxy's shared state.
#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
    log: Mutex<Vec<Seen>>,
}

impl Faults {
    /// Arms a rule (rules are tried in the order armed).
    pub fn arm(&self, rule: Rule) {
        self.rules.lock().unwrap().push(rule);
    }

    /// Arms `fault` for the next `times` requests with `method` whose path
    /// and query contain `contains`.
    pub fn next(&self, method: &'static str, contains: &str, times: usize, fault: Fault) {
        self.arm(Rule {
            method,
            contains: contains.to_owned(),
            skip: 0,
            times,
            fault,
        });
    }

    /// Whether every armed fault has fired.
    pub fn all_fired(&self) -> bool {
        self.rules.lock().unwrap().iter().all(|r| r.times == 0)
    }

    /// Disarms everything.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// Everything seen so far, and forgets it.
    pub fn take_log(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    fn pick(&self, method: &str, target: &str) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap();
        let fault = rules
            .iter_mut()
            .find(|r| r.method == method && target.contains(&r.contains) && r.times > 0)
            .and_then(|r| {
                if r.skip > 0 {
                    r.skip -= 1;
                    None
                } else {
                    r.times -= 1;
                    Some(r.fault)
                }
            });
        self.log.lock().unwrap().push(Seen {
            method: method.to_owned(),
            target: target.to_owned(),
            fault,
        });
        fault
    }
}

/// Starts the proxy in front of `upstream`; returns its address.
pub async fn start(upstream: SocketAddr, faults: Arc<Faults>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client: Client<HttpConnector, ProxyBody> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let (client, faults) = (client.clone(), faults.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    handle(req, upstream, client.clone(), faults.clone())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), svc)
                    .await;
            });
        }
    });
    addr
}

async fn handle(
    req: http::Request<Incoming>,
    upstream: SocketAddr,
    client: Client<HttpConnector, ProxyBody>,
    faults: Arc<Faults>,
) -> Result<http::Response<ProxyBody>, Error> {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let fault = faults.pick(req.method().as_str(), &target);
    match fault {
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::Status(status, code)) => {
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected</Message></Error>"
            );
            // Answered at once, before the body is read, then the body is
            // read out and dropped, as S3 and RGW do: a provider that
            // closed instead would race the gateway's upload (its answer
            // lost to a reset, docs/COMPATIBILITY.md) and make the case
            // flaky rather than test what the client is told.
            tokio::spawn(async move {
                let _ = req.into_body().collect().await;
            });
            return Ok(http::Response::builder()
                .status(status)
                .header("content-type", "application/xml")
                .body(full(Bytes::from(body)))
                .unwrap());
        }
        Some(Fault::StallHeaders) => std::future::pending::<()>().await,
        Some(Fault::SwallowThenStall) => {
            let _ = req.into_body().collect().await;
            return std::future::pending().await;
        }
        _ => {}
    }
    let (mut parts, body) = req.into_parts();
    parts.uri = format!("http://{upstream}{target}").parse().unwrap();
    let body = match fault {
        Some(Fault::CutRequest(n)) => cut(body, n),
        _ => body.map_err(Error::from).boxed(),
    };
    let resp = client.request(http::Request::from_parts(parts, body)).await;
    if matches!(fault, Some(Fault::CutRequest(_))) {
        // Whatever the provider made of the cut upload, sealgate sees its
        // connection break.
        return Err("injected: request cut".into());
    }
    let resp = resp?;
    let (parts, body) = resp.into_parts();
    let body = match fault {
        Some(Fault::DropResponse) => {
            // Let the provider finish, then lose its answer.
            let _ = body.collect().await;
            return Err("injected: response dropped".into());
        }
        Some(Fault::CutResponse(n)) => cut(body, n),
        Some(Fault::StallResponse(n)) => stall(body, n),
        Some(Fault::Corrupt(at)) => corrupt(body, at),
        _ => body.map_err(Error::from).boxed(),
    };
    Ok(http::Response::from_parts(parts, body))
}

fn full(b: Bytes) -> ProxyBody {
    http_body_util::Full::new(b)
        .map_err(|never| match never {})
        .boxed()
}

/// What a body rewrite does with one chunk.
enum Step {
    /// Send this.
    Pass(Bytes),
    /// Send this, then the fault.
    Last(Bytes),
    /// The fault now.
    Fault,
}

/// The data frames of `body`, each mapped by `f(offset, chunk)`. After a
/// `Last` or `Fault`, the stream ends with `tail`'s error, or goes silent
/// when `tail` gives none.
fn rewrite(
    body: Incoming,
    f: impl FnMut(usize, Bytes) -> Step + Send + Sync + 'static,
    tail: fn() -> Option<Result<Bytes, Error>>,
) -> ProxyBody {
    let frames = body.into_data_stream();
    // State: 0 forwarding, 1 fault next, 2 finished.
    let stream = futures::stream::unfold(
        (frames, f, 0usize, 0u8),
        move |(mut frames, mut f, off, state)| async move {
            let fault = |frames, f, off| async move {
                match tail() {
                    Some(r) => Some((r, (frames, f, off, 2))),
                    None => std::future::pending().await,
                }
            };
            match state {
                2 => return None,
                1 => return fault(frames, f, off).await,
                _ => {}
            }
            match frames.next().await {
                Some(Ok(chunk)) => {
                    let len = chunk.len();
                    match f(off, chunk) {
                        Step::Pass(out) => Some((Ok(out), (frames, f, off + len, 0))),
                        Step::Last(out) => Some((Ok(out), (frames, f, off + len, 1))),
                        Step::Fault => fault(frames, f, off).await,
                    }
                }
                Some(Err(e)) => Some((Err(Error::from(e)), (frames, f, off, 2))),
                None => None,
            }
        },
    );
    BodyExt::boxed(StreamBody::new(stream.map(|r| r.map(Frame::data))))
}

/// Forwards `n` bytes, then breaks the body.
fn cut(body: Incoming, n: usize) -> ProxyBody {
    prefix_then(body, n, || Some(Err("injected: body cut".into())))
}

/// Forwards `n` bytes, then goes silent.
fn stall(body: Incoming, n: usize) -> ProxyBody {
    prefix_then(body, n, || None)
}

fn prefix_then(body: Incoming, n: usize, tail: fn() -> Option<Result<Bytes, Error>>) -> ProxyBody {
    rewrite(
        body,
        move |off, chunk| {
            if off + chunk.len() < n {
                Step::Pass(chunk)
            } else if off < n {
                Step::Last(chunk.slice(..n - off))
            } else {
                Step::Fault
            }
        },
        tail,
    )
}

/// Flips the low bit of the byte at `at`.
fn corrupt(body: Incoming, at: usize) -> ProxyBody {
    rewrite(
        body,
        move |off, chunk| {
            if (off..off + chunk.len()).contains(&at) {
                let mut v = chunk.to_vec();
                v[at - off] ^= 1;
                Step::Pass(Bytes::from(v))
            } else {
                Step::Pass(chunk)
            }
        },
        || None,
    )
}
