//! Graceful shutdown of the real binary: SIGTERM while an upload is in
//! flight stops new connections at once, lets the upload finish and be
//! stored, then exits 0; after a restart the object reads back intact.

use crate::gw_common;

use aws_sdk_s3::presigning::PresigningConfig;
use gw_common::{Process, client_for, get_bytes, spawn_embedded};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const AK: &str = "drain-ak";
const SK: &str = "drain-secret-key-0123456789";

fn spawn(dir: &std::path::Path) -> Process {
    spawn_embedded(dir, (AK, SK), &[], &[], Stdio::null())
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_an_upload_lets_it_complete() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = spawn(dir.path());
    let addr = gw.addr.clone();
    let child = &mut gw.child;
    let c = client_for(format!("http://{addr}"), AK, SK);
    c.create_bucket().bucket("drain").send().await.unwrap();
    let url = c
        .put_object()
        .bucket("drain")
        .key("in-flight")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let uri: http::Uri = url.uri().parse().unwrap();
    let data = body(4 * 1024 * 1024 + 17);

    // Start the upload: head and the first MiB.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        uri.path_and_query().unwrap(),
        data.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&data[..1024 * 1024]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // SIGTERM mid-upload.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited with an upload in flight"
    );
    // New connections are no longer accepted.
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "still accepting after SIGTERM"
    );

    // The rest of the body, slowly; the upload completes.
    for chunk in data[1024 * 1024..].chunks(512 * 1024) {
        s.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut resp = Vec::new();
    let mut buf = [0u8; 4096];
    while !resp.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed without a response");
        resp.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&resp).to_string();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    drop(s);

    // Then the process exits on its own, successfully.
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "did not exit after the upload"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");

    // The upload was stored whole: restart on the same data and read it.
    let gw = spawn(dir.path());
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    let got = get_bytes(&c, "drain", "in-flight").await;
    assert!(got == data, "read back {} bytes, differing", got.len());
}
