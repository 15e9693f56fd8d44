//! The admin listener: liveness, readiness that follows the provider, and
//! metrics that move with traffic.

use crate::gw_common;

use aws_sdk_s3::primitives::ByteStream;
use gw_common::{AK, SK, client_for};
use sealgate::serve::{Options, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn value(metrics: &str, line_prefix: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(Options {
        listen: Some("127.0.0.1:0".into()),
        admin_listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        keys_dir: Some(dir.path().join("keys")),
        client: Some((AK.into(), SK.into())),
        ..Default::default()
    })
    .await
    .unwrap();
    let admin = gw.admin_addr.unwrap();
    assert_eq!(get(admin, "/health/live").await.0, 200);
    assert_eq!(get(admin, "/health/ready").await.0, 200);
    let (_, before) = get(admin, "/metrics").await;
    let puts = value(
        &before,
        "sealgate_requests_total{operation=\"PutObject\",status=\"200\"}",
    );

    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket().bucket("metered").send().await.unwrap();
    c.put_object()
        .bucket("metered")
        .key("k")
        .body(ByteStream::from(vec![1u8; 10_000]))
        .send()
        .await
        .unwrap();
    let (status, after) = get(admin, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        value(
            &after,
            "sealgate_requests_total{operation=\"PutObject\",status=\"200\"}"
        ),
        puts + 1,
        "{after}"
    );
    assert!(
        value(&after, "sealgate_received_bytes_total") >= 10_000,
        "{after}"
    );
    assert!(
        value(&after, "sealgate_request_duration_seconds_count") >= 2,
        "{after}"
    );
    assert_eq!(
        value(
            &after,
            "sealgate_requests_total{operation=\"CreateBucket\",status=\"200\"}"
        ),
        1,
        "{after}"
    );
    assert!(
        value(
            &after,
            "sealgate_upstream_requests_total{operation=\"PutObject\",outcome=\"2xx\"}"
        ) >= 1,
        "{after}"
    );
    assert_eq!(get(admin, "/nope").await.0, 404);
    gw.shutdown().await;
    // The admin listener stops with the gateway (after the drain).
    let mut closed = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(admin).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(closed, "the admin listener outlived the gateway");

    // Readiness follows the provider: stopped, not ready; started again,
    // ready again. A switchable relay stands in front of a real s3s-fs.
    let (uak, usk) = ("relay-up-ak", "relay-up-secret-0123456789");
    let up = sealgate::serve::embedded::start(&dir.path().join("up"), uak, usk)
        .await
        .unwrap();
    let (relayed, on) = switchable_relay(up).await;
    let cfg = dir.path().join("relayed.toml");
    let registry = dir.path().join("exceptions.jsonl");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nkeys_dir = {:?}\n[upstream]\nendpoint = \"http://{relayed}\"\naccess_key = \"{uak}\"\nsecret_key = \"{usk}\"\n[policy]\nregistry = {registry:?}\n[[credentials]]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n",
            dir.path().join("keys")
        ),
    )
    .unwrap();
    let gw = start(Options {
        config: Some(cfg),
        ..Default::default()
    })
    .await
    .unwrap();
    let admin = gw.admin_addr.unwrap();
    assert_eq!(get(admin, "/health/ready").await.0, 200);
    on.send(false).unwrap();
    let (status, body) = get(admin, "/health/ready").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("upstream"), "{body}");
    assert_eq!(
        get(admin, "/health/live").await.0,
        200,
        "alive while not ready"
    );
    let (_, m) = get(admin, "/metrics").await;
    assert!(
        value(
            &m,
            "sealgate_upstream_requests_total{operation=\"ListBuckets\",outcome=\"transport\"}"
        ) >= 1,
        "{m}"
    );
    on.send(true).unwrap();
    let (status, body) = get(admin, "/health/ready").await;
    assert_eq!(status, 200, "{body}");
    // A damaged exception registry is not ready either.
    std::fs::write(&registry, "{not a registry line\n").unwrap();
    let (status, body) = get(admin, "/health/ready").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("exception registry"), "{body}");
    std::fs::remove_file(&registry).unwrap();
    assert_eq!(get(admin, "/health/ready").await.0, 200);
    gw.shutdown().await;
}

/// A TCP relay to `to` that can be switched off (every connection, open or
/// new, is dropped) and on again: a provider outage without losing its data.
async fn switchable_relay(
    to: std::net::SocketAddr,
) -> (std::net::SocketAddr, tokio::sync::watch::Sender<bool>) {
    let (tx, rx) = tokio::sync::watch::channel(true);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = l.accept().await else {
                continue;
            };
            let mut rx = rx.clone();
            if !*rx.borrow() {
                drop(inbound);
                continue;
            }
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = rx.wait_for(|on| !*on) => {}
                }
            });
        }
    });
    (addr, tx)
}
