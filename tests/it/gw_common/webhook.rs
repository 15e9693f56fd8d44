//! A local webhook receiver (hyper): collects the bodies POSTed to it and
//! answers 200, for tests of the incident and anchor webhooks.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use std::sync::{Arc, Mutex};

/// The bodies received so far, in order.
pub type Received = Arc<Mutex<Vec<String>>>;

/// Starts a receiver on a free port; its URL ends in `/path`.
pub async fn receiver(path: &str) -> (String, Received) {
    let got: Received = Arc::default();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/{path}", l.local_addr().unwrap());
    let bodies = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let bodies = bodies.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let bodies = bodies.clone();
                        async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            bodies
                                .lock()
                                .unwrap()
                                .push(String::from_utf8_lossy(&body).into_owned());
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(s);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (url, got)
}
