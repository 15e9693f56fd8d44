//! A client that stops reading a response body has its connection closed
//! after `write_timeout_secs` (and the upstream stream dropped), with the
//! real binary (issue 14, finding 12).

use crate::gw_common;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// The embedded default with a 2 s write timeout. SEALGATE_TEST_BIN
/// overrides Cargo's binary (e.g. a private copy when several checkouts
/// share one target directory).
fn spawn(dir: &std::path::Path) -> Gw {
    use std::io::BufRead;
    let bin = std::env::var("SEALGATE_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_sealgate").into());
    let mut child = std::process::Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--keys-dir")
        .arg(dir.join("keys"))
        .env("SEALGATE_ACCESS_KEY", gw_common::AK)
        .env("SEALGATE_SECRET_KEY", gw_common::SK)
        .env("SEALGATE_WRITE_TIMEOUT_SECS", "2")
        .env("SEALGATE_LOG", "warn")
        .env_remove("SEALGATE_CONFIG")
        .env_remove("SEALGATE_UPSTREAM_ENDPOINT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let l = lines.next().expect("gateway exited").unwrap();
        if let Some(a) = l.strip_prefix("sealgate is listening on http://") {
            break a.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Gw { child, addr }
}

struct Gw {
    child: std::process::Child,
    addr: String,
}

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn(dir.path());
    let c = gw_common::client_for(format!("http://{}", gw.addr), gw_common::AK, gw_common::SK);
    c.create_bucket().bucket("big").send().await.unwrap();
    let size = 64usize << 20;
    c.put_object()
        .bucket("big")
        .key("obj")
        .body(ByteStream::from(vec![7u8; size]))
        .send()
        .await
        .unwrap();
    let url = c
        .get_object()
        .bucket("big")
        .key("obj")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).unwrap())
        .await
        .unwrap();
    let uri: http::Uri = url.uri().parse().unwrap();
    let mut s = std::net::TcpStream::connect(&gw.addr).unwrap();
    write!(
        s,
        "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
        uri.path_and_query().unwrap(),
        uri.authority().unwrap()
    )
    .unwrap();
    let mut head = [0u8; 4096];
    let n = s.read(&mut head).unwrap();
    assert!(
        String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head[..n])
    );
    // Stop reading for longer than the timeout.
    std::thread::sleep(Duration::from_secs(5));
    // Then drain: the gateway has closed the connection, so the body ends
    // (EOF or reset) well short of the object.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut total = n;
    let mut buf = vec![0u8; 1 << 20];
    let t = Instant::now();
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => total += k,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("connection neither closed nor finished: {e} after {total} bytes"),
        }
        assert!(t.elapsed() < Duration::from_secs(30));
    }
    assert!(
        total < size / 2,
        "the stalled response was kept open: {total} of {size} bytes came"
    );
    // The gateway still serves others.
    let got = c
        .head_object()
        .bucket("big")
        .key("obj")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_length(), Some(size as i64));
}
