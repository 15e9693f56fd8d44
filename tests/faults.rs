//! Provider faults through a fault-injecting TCP proxy between sealgate and
//! a real s3s-fs: a response body cut mid-stream reaches the client as an
//! error, never as short data accepted as complete; a 503 SlowDown on a read
//! is retried (idempotent) and succeeds; a 503 on an upload is not replayed,
//! leaves the object absent or intact, and a client retry succeeds. The
//! gateway keeps serving throughout.

mod gw_common;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use gw_common::{AK, SK, client_for, gateway_config, get_bytes};
use sealgate::serve::{Options, embedded, start};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the next response bytes from the provider.
#[derive(Default)]
struct Faults {
    /// When positive: forward this many more response bytes, then cut the
    /// connection.
    cut_after: AtomicI64,
    /// Replace the next response with a 503 SlowDown and close.
    slow_down: AtomicBool,
}

const SLOW_DOWN: &[u8] = b"HTTP/1.1 503 Slow Down\r\ncontent-type: application/xml\r\ncontent-length: 96\r\nconnection: close\r\n\r\n<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>x</Message></Error>";

async fn proxy(to: SocketAddr, faults: Arc<Faults>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut a, _) = l.accept().await.unwrap();
            let faults = faults.clone();
            tokio::spawn(async move {
                let Ok(mut b) = TcpStream::connect(to).await else {
                    return;
                };
                let (mut ar, mut aw) = a.split();
                let (mut br, mut bw) = b.split();
                let up = async {
                    let _ = tokio::io::copy(&mut ar, &mut bw).await;
                    let _ = bw.shutdown().await;
                };
                let down = async {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = br.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        if faults.slow_down.swap(false, Ordering::SeqCst) {
                            let _ = aw.write_all(SLOW_DOWN).await;
                            break;
                        }
                        let left = faults.cut_after.load(Ordering::SeqCst);
                        if left > 0 {
                            let take = (left as usize).min(n);
                            faults.cut_after.fetch_sub(take as i64, Ordering::SeqCst);
                            let _ = aw.write_all(&buf[..take]).await;
                            if take < n || left as usize == take {
                                break; // cut: close mid-response
                            }
                            continue;
                        }
                        if aw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = aw.shutdown().await;
                };
                // Either side ending ends the connection (a cut must not
                // leave the other half open).
                tokio::select! {
                    () = up => {}
                    () = down => {}
                }
            });
        }
    });
    addr
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed))
        .collect()
}

async fn read_all(c: &Client, key: &str) -> Result<Vec<u8>, String> {
    let r = c
        .get_object()
        .bucket("faults")
        .key(key)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    r.body
        .collect()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_faults_end_in_errors_or_retries_never_in_wrong_data() {
    let dir = tempfile::tempdir().unwrap();
    let (uak, usk) = ("faults-up", "faults-up-secret-0123456789");
    let up = embedded::start(&dir.path().join("up"), uak, usk)
        .await
        .unwrap();
    let faults = Arc::new(Faults::default());
    let via = proxy(up, faults.clone()).await;
    let cfg = gateway_config(dir.path(), via, (uak, usk), "");
    let gw = start(Options {
        config: Some(cfg),
        ..Default::default()
    })
    .await
    .unwrap();
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket().bucket("faults").send().await.unwrap();
    let big = data(1_000_000, 1);
    c.put_object()
        .bucket("faults")
        .key("big")
        .body(ByteStream::from(big.clone()))
        .send()
        .await
        .unwrap();

    // 1. The provider's response is cut after 300 kB: the client gets an
    //    error, and whatever it received is a prefix of the object.
    faults.cut_after.store(300_000, Ordering::SeqCst);
    let got = read_all(&c, "big").await;
    assert!(got.is_err(), "a cut response was returned as complete");
    faults.cut_after.store(0, Ordering::SeqCst);
    assert_eq!(get_bytes(&c, "faults", "big").await, big, "serving again");

    // 2. 503 SlowDown on a read: retried by the gateway, the client never
    //    notices.
    let retries = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("sealgate_upstream_retries_total "))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = retries(&gw.metrics.render());
    faults.slow_down.store(true, Ordering::SeqCst);
    assert_eq!(get_bytes(&c, "faults", "big").await, big);
    assert!(!faults.slow_down.load(Ordering::SeqCst), "the fault fired");
    assert!(retries(&gw.metrics.render()) > before, "no retry counted");

    // 3. 503 on an upload: the streamed body is not replayed; the object is
    //    absent or intact, and the client's own retry succeeds.
    let small = data(200_000, 2);
    let retries_before = retries(&gw.metrics.render());
    faults.slow_down.store(true, Ordering::SeqCst);
    let first = c
        .put_object()
        .bucket("faults")
        .key("upload")
        .body(ByteStream::from(small.clone()))
        .send()
        .await;
    assert!(
        !faults.slow_down.swap(false, Ordering::SeqCst),
        "the fault fired"
    );
    // The gateway did not replay the streamed upload: it passed the 503 to
    // the client (whose SDK may retry with its own copy of the body).
    assert_eq!(
        retries(&gw.metrics.render()),
        retries_before,
        "upload replayed upstream"
    );
    assert_eq!(gw.metrics.requests_of("PutObject", 503), 1);
    if first.is_err() {
        match read_all(&c, "upload").await {
            Ok(v) => assert_eq!(v, small, "a failed upload left a different object"),
            Err(e) => assert!(e.contains("NoSuchKey"), "{e}"),
        }
    }
    c.put_object()
        .bucket("faults")
        .key("upload")
        .body(ByteStream::from(small.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(get_bytes(&c, "faults", "upload").await, small);
    gw.shutdown().await;
}
