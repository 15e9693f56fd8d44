//! Hostile slow clients: a client that trickles its request headers
//! ("slowloris") loses its connection after `header_timeout_secs`, while
//! other clients are served throughout.

mod gw_common;

use gw_common::{AK, SK, client_for, gateway_config};
use sealgate::serve::{Options, embedded, start};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread")]
async fn a_client_trickling_headers_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (uak, usk) = ("slow-up", "slow-up-secret-0123456789");
    let up = embedded::start(&dir.path().join("up"), uak, usk)
        .await
        .unwrap();
    let cfg = gateway_config(dir.path(), up, (uak, usk), "header_timeout_secs = 1\n");
    let gw = start(Options {
        config: Some(cfg),
        ..Default::default()
    })
    .await
    .unwrap();

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
