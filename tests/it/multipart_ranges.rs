//! Ranged reads of multipart objects touch only what they need: the test
//! puts a counting TCP relay between the gateway and a real s3s-fs and
//! counts the gateway's upstream requests and the bytes it downloads.
//!
//! The bound (FORMAT.md §Ranges, docs/ARCHITECTURE.md): HEAD + part 1's
//! and the last part's headers (to size the object) + one header per further
//! part the range touches + one data read per touched part.

use crate::gw_common;

use aws_sdk_s3::Client;
use gw_common::{AK, SK, client_for, gateway_config, get_bytes, put_multipart};
use sealgate::serve::{Options, embedded, start};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const UAK: &str = "count-upstream";
const USK: &str = "count-upstream-secret-0123";

#[derive(Default)]
struct Counts {
    /// Request heads seen gateway → provider (GET/HEAD have no body, so
    /// for reads every blank line ends one request).
    requests: AtomicU64,
    /// Bytes provider → gateway.
    down: AtomicU64,
}

/// Relays TCP from a local port to `to`, counting.
async fn relay(to: std::net::SocketAddr, counts: Arc<Counts>) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut a, _) = l.accept().await.unwrap();
            let counts = counts.clone();
            tokio::spawn(async move {
                let mut b = TcpStream::connect(to).await.unwrap();
                let (mut ar, mut aw) = a.split();
                let (mut br, mut bw) = b.split();
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut tail: Vec<u8> = Vec::new();
                    loop {
                        let n = ar.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        tail.extend_from_slice(&buf[..n]);
                        let heads = tail.windows(4).filter(|w| w == b"\r\n\r\n").count();
                        counts.requests.fetch_add(heads as u64, Ordering::SeqCst);
                        let keep = tail.len().saturating_sub(3);
                        tail.drain(..keep);
                        if bw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = bw.shutdown().await;
                };
                let down = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = br.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        counts.down.fetch_add(n as u64, Ordering::SeqCst);
                        if aw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = aw.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    addr
}

fn data(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 253) as u8 ^ (i >> 16) as u8)
        .collect()
}

async fn ranged(c: &Client, key: &str, a: u64, b: u64) -> Vec<u8> {
    c.get_object()
        .bucket("ranges")
        .key(key)
        .range(format!("bytes={a}-{b}"))
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_range_reads_only_the_parts_and_segments_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let up = embedded::start(&dir.path().join("data"), UAK, USK)
        .await
        .unwrap();
    let counts = Arc::new(Counts::default());
    let relayed = relay(up, counts.clone()).await;
    let cfg = gateway_config(dir.path(), relayed, (UAK, USK), "");
    let gw = start(Options {
        config: Some(cfg),
        ..Default::default()
    })
    .await
    .unwrap();
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket().bucket("ranges").send().await.unwrap();

    // Uniform layouts: 5 MiB (aligned) and 6,000,000-byte (unaligned) parts.
    for (key, part) in [("aligned", 5usize << 20), ("unaligned", 6_000_000)] {
        let all = data(part * 3 + 1000);
        let parts: Vec<&[u8]> = all.chunks(part).collect();
        put_multipart(&c, "ranges", key, &parts).await;
        let p = part as u64;
        for (a, b, touched) in [
            (p + 100, p + 199, 1u64),     // inside part 2
            (p - 50, p + 49, 2),          // across parts 1 and 2
            (3 * p + 10, 3 * p + 999, 1), // inside the last part
            (2 * p - 1, 2 * p, 2),        // the two bytes around a boundary
        ] {
            counts.requests.store(0, Ordering::SeqCst);
            counts.down.store(0, Ordering::SeqCst);
            let got = ranged(&c, key, a, b).await;
            assert_eq!(got, all[a as usize..=b as usize], "{key} {a}-{b}");
            let requests = counts.requests.load(Ordering::SeqCst);
            let part1_touched = a < p;
            // HEAD + part 1 and last headers + other touched headers + data reads.
            let bound = 3 + (touched - u64::from(part1_touched)) + touched;
            assert!(
                requests <= bound,
                "{key} {a}-{b}: {requests} upstream requests, bound {bound}"
            );
            let down = counts.down.load(Ordering::SeqCst);
            assert!(
                down < 4 * 65_536 * touched + 16_384,
                "{key} {a}-{b}: downloaded {down} bytes"
            );
        }
    }

    // Non-uniform layouts (parts of different sizes, aligned or not) are
    // sized exactly and read correctly, by walking the part headers.
    for (key, sizes) in [
        ("mixed", vec![5 << 20, 6 << 20, 777]),
        (
            "mixed-unaligned",
            vec![6 << 20, (5 << 20) + 3, 7 << 20, 100_000],
        ),
    ] {
        let all = data(sizes.iter().sum());
        let mut parts = Vec::new();
        let mut at = 0;
        for len in &sizes {
            parts.push(&all[at..at + len]);
            at += len;
        }
        put_multipart(&c, "ranges", key, &parts).await;
        let head = c
            .head_object()
            .bucket("ranges")
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(all.len() as i64), "{key}");
        let n = all.len() as u64;
        assert_eq!(
            ranged(&c, key, n - 500, n - 1).await,
            all[all.len() - 500..],
            "{key}"
        );
        assert_eq!(ranged(&c, key, 0, n - 1).await, all, "{key}");
    }
    // A whole single-part object takes one upstream request: the GET's
    // headers stand in for a HEAD.
    let single = data(300_000);
    c.put_object()
        .bucket("ranges")
        .key("single")
        .body(aws_sdk_s3::primitives::ByteStream::from(single.clone()))
        .send()
        .await
        .unwrap();
    counts.requests.store(0, Ordering::SeqCst);
    assert_eq!(get_bytes(&c, "ranges", "single").await, single);
    assert_eq!(counts.requests.load(Ordering::SeqCst), 1);
    gw.shutdown().await;
}
