//! The admin listener: liveness, readiness that follows the provider, and
//! metrics that move with traffic.

mod gw_common;

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
        "sealgate_requests_total{method=\"PUT\",status=\"200\"}",
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
            "sealgate_requests_total{method=\"PUT\",status=\"200\"}"
        ),
        puts + 2,
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
    assert_eq!(get(admin, "/nope").await.0, 404);
    gw.shutdown().await;

    // Readiness follows the provider: a dead upstream is not ready.
    let cfg = dir.path().join("dead.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nkeys_dir = {:?}\n[upstream]\nendpoint = \"http://127.0.0.1:9\"\naccess_key = \"a\"\nsecret_key = \"b\"\n[[credentials]]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n",
            dir.path().join("keys")
        ),
    )
    .unwrap();
    let dead = start(Options {
        config: Some(cfg),
        ..Default::default()
    })
    .await
    .unwrap();
    let admin = dead.admin_addr.unwrap();
    assert_eq!(get(admin, "/health/live").await.0, 200);
    let (status, body) = get(admin, "/health/ready").await;
    assert_eq!(status, 503, "{body}");
    dead.shutdown().await;
}
