//! Hostile slow clients: a client that trickles its request headers
//! ("slowloris") loses its connection after `header_timeout_secs`, one that
//! stops sending its body mid-upload loses the request after
//! `body_timeout_secs` (nothing is stored), and connections beyond
//! `max_connections` wait until a slot frees — while other clients are
//! served throughout.

use crate::gw_common;

use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;
use gw_common::{AK, SK, client_for, gateway_config};
use sealgate::serve::{Options, Running, embedded, start};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A gateway in front of a real s3s-fs, with `extra` top-level settings.
async fn gateway_with(extra: &str) -> (tempfile::TempDir, Running) {
    let dir = tempfile::tempdir().unwrap();
    let (uak, usk) = ("slow-up", "slow-up-secret-0123456789");
    let up = embedded::start(&dir.path().join("up"), uak, usk)
        .await
        .unwrap();
    let cfg = gateway_config(dir.path(), up, (uak, usk), extra);
    let gw = start(Options {
        config: Some(cfg),
        ..Default::default()
    })
    .await
    .unwrap();
    (dir, gw)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_trickling_headers_is_cut_off() {
    let (_dir, gw) = gateway_with("header_timeout_secs = 1\n").await;

    // Headers that never end, one byte every 200 ms.
    let mut slow = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let closed = async {
        let mut buf = [0u8; 1024];
        loop {
            if slow.write_all(b"X").await.is_err() {
                return;
            }
            match tokio::time::timeout(Duration::from_millis(200), slow.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => {} // an error response; the close follows
                Err(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the slow client still holds its connection after 10 s");
    let held = started.elapsed();
    assert!(
        held >= Duration::from_millis(900),
        "cut off too early: {held:?}"
    );

    // Meanwhile and after, normal clients are served.
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket()
        .bucket("still-served")
        .send()
        .await
        .unwrap();
    gw.shutdown().await;
}

fn connections(gw: &Running) -> i64 {
    gw.metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("sealgate_connections ")?.parse().ok())
        .unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_sending_its_body_loses_the_request_and_stores_nothing() {
    let (_dir, gw) = gateway_with("body_timeout_secs = 1\n").await;
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket().bucket("slow-body").send().await.unwrap();

    // 64 KiB of a declared 1 MiB body, then silence.
    let first = bytes::Bytes::from(vec![7u8; 65536]);
    let chunks = futures::stream::iter([Ok::<_, std::io::Error>(http_body::Frame::data(first))])
        .chain(futures::stream::pending());
    let body = http_body_util::StreamBody::new(chunks);
    let started = Instant::now();
    let put = c
        .put_object()
        .bucket("slow-body")
        .key("stalled")
        .content_length(1 << 20)
        .body(ByteStream::from_body_1_x(body))
        // The SDK's own stall guard would give up first; this client is
        // the hostile one, so it keeps waiting.
        .customize()
        .config_override(
            aws_sdk_s3::config::Builder::new().stalled_stream_protection(
                aws_sdk_s3::config::StalledStreamProtectionConfig::disabled(),
            ),
        )
        .send();
    let outcome = tokio::time::timeout(Duration::from_secs(20), put)
        .await
        .expect("the stalled upload was still open after 20 s");
    assert!(outcome.is_err(), "a stalled upload was acknowledged");
    let held = started.elapsed();
    assert!(
        held >= Duration::from_millis(900),
        "cut off too early: {held:?}"
    );
    let e = c
        .head_object()
        .bucket("slow-body")
        .key("stalled")
        .send()
        .await
        .expect_err("a stalled upload left an object");
    assert!(format!("{e:?}").contains("NotFound"), "{e:?}");
    // The gateway still takes uploads.
    c.put_object()
        .bucket("slow-body")
        .key("fine")
        .body(ByteStream::from(vec![1u8; 100_000]))
        .send()
        .await
        .unwrap();
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let (_dir, gw) = gateway_with("max_connections = 2\n").await;
    // Two idle connections take both slots.
    let a = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let _b = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while connections(&gw) < 2 {
        assert!(
            Instant::now() < deadline,
            "the idle connections were not taken"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A third client is not served while they are open...
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    let waiting = tokio::spawn(async move { c.create_bucket().bucket("after-limit").send().await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection was served beyond the limit"
    );
    assert_eq!(connections(&gw), 2);
    // ...and is as soon as one closes.
    drop(a);
    tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the waiting client was not served after a slot freed")
        .unwrap()
        .unwrap();
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_declared_body_is_refused_before_it_is_read() {
    let (_dir, gw) = gateway_with("").await;
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket().bucket("oversized").send().await.unwrap();
    // A single PUT declaring 6 GiB (S3's limit is 5 GiB): refused from the
    // headers, without waiting for (or buffering) any of the body.
    let chunks = futures::stream::iter([Ok::<_, std::io::Error>(http_body::Frame::data(
        bytes::Bytes::from(vec![0u8; 1024]),
    ))])
    .chain(futures::stream::pending());
    let put = c
        .put_object()
        .bucket("oversized")
        .key("huge")
        .content_length(6 << 30)
        .body(ByteStream::from_body_1_x(http_body_util::StreamBody::new(
            chunks,
        )))
        .customize()
        .config_override(
            aws_sdk_s3::config::Builder::new().stalled_stream_protection(
                aws_sdk_s3::config::StalledStreamProtectionConfig::disabled(),
            ),
        )
        .send();
    let e = tokio::time::timeout(Duration::from_secs(20), put)
        .await
        .expect("the gateway waited for an oversized body")
        .expect_err("a 6 GiB single PUT was accepted");
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&e),
        Some("EntityTooLarge"),
        "{e:?}"
    );
    let head = c.head_object().bucket("oversized").key("huge").send().await;
    assert!(head.is_err(), "an oversized upload left an object");
    gw.shutdown().await;
}
