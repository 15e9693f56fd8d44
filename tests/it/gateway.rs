//! The gateway in-process against a real S3 server (s3s-fs on a temp dir),
//! driven by a real S3 client (aws-sdk-s3). Every test checks what the
//! provider stored, not only what the client got back.

use crate::gw_common;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;

use gw_common::{AK, Env, SK, client, client_for, gateway};
use sealgate::serve::{Options, start};
use std::path::Path;

const MARKER: &[u8] = b"PLAINTEXT-MARKER-7f3a";

/// Plaintext with the marker repeated, so a leak would be found on disk.
fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| MARKER[i % MARKER.len()]).collect()
}

fn assert_no_plaintext(dir: &Path) {
    gw_common::assert_no_plaintext(dir, MARKER);
}

async fn get_all(c: &Client, b: &str, k: &str) -> Result<Vec<u8>, String> {
    gw_common::try_get_bytes(c, b, k).await
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_sizes_and_provider_holds_only_ciphertext() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("bucket-one").send().await.unwrap();
    for len in [0usize, 1, 65535, 65536, 65537, 300_000, 1 << 20] {
        let data = body(len);
        let key = format!("obj-{len}");
        let put = c
            .put_object()
            .bucket("bucket-one")
            .key(&key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            get_all(&c, "bucket-one", &key).await.unwrap(),
            data,
            "len {len}"
        );
        let head = c
            .head_object()
            .bucket("bucket-one")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(len as i64));
        assert_eq!(
            head.e_tag(),
            put.e_tag(),
            "ETag must match between PUT and HEAD"
        );
        let stored = std::fs::metadata(env.data.join("bucket-one").join(&key))
            .unwrap()
            .len();
        assert_eq!(
            stored,
            sealgate::format::size::part_ciphertext_len(len as u64)
        );
    }
    assert_no_plaintext(&env.data);
}

#[tokio::test(flavor = "multi_thread")]
async fn file_body_uses_signed_aws_chunked_with_trailer() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("files").send().await.unwrap();
    let tmp = tempfile::NamedTempFile::new().unwrap();
    let data = body(200_001);
    std::fs::write(tmp.path(), &data).unwrap();
    // A file body makes the SDK stream STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER with a CRC32 trailer.
    c.put_object()
        .bucket("files")
        .key("from-file")
        .body(ByteStream::from_path(tmp.path()).await.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(get_all(&c, "files", "from-file").await.unwrap(), data);
    assert_no_plaintext(&env.data);
}

#[tokio::test(flavor = "multi_thread")]
async fn ranges_in_every_form_and_416() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("ranges").send().await.unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    c.put_object()
        .bucket("ranges")
        .key("k")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let n = data.len();
    for (range, want) in [
        ("bytes=0-0", &data[0..1]),
        ("bytes=65530-65545", &data[65530..65546]),
        ("bytes=100-", &data[100..]),
        ("bytes=-7", &data[n - 7..]),
        ("bytes=199990-999999", &data[199_990..]),
    ] {
        let r = c
            .get_object()
            .bucket("ranges")
            .key("k")
            .range(range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.content_length(), Some(want.len() as i64), "{range}");
        let got = r.body.collect().await.unwrap().to_vec();
        assert_eq!(got, want, "{range}");
    }
    let err = c
        .get_object()
        .bucket("ranges")
        .key("k")
        .range("bytes=200000-")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(416));
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_and_headers_round_trip_sealed() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("meta").send().await.unwrap();
    c.put_object()
        .bucket("meta")
        .key("doc")
        .body(ByteStream::from_static(b"x"))
        .metadata("project", "PLAINTEXT-MARKER-7f3a")
        .content_type("application/pdf")
        .content_disposition("attachment; filename=\"a.pdf\"")
        .cache_control("max-age=60")
        .send()
        .await
        .unwrap();
    let h = c
        .head_object()
        .bucket("meta")
        .key("doc")
        .send()
        .await
        .unwrap();
    assert_eq!(
        h.metadata().unwrap().get("project").map(String::as_str),
        Some("PLAINTEXT-MARKER-7f3a")
    );
    assert_eq!(h.content_type(), Some("application/pdf"));
    assert_eq!(
        h.content_disposition(),
        Some("attachment; filename=\"a.pdf\"")
    );
    assert_eq!(h.cache_control(), Some("max-age=60"));
    let g = c
        .get_object()
        .bucket("meta")
        .key("doc")
        .send()
        .await
        .unwrap();
    assert_eq!(g.content_type(), Some("application/pdf"));
    assert_eq!(g.e_tag(), h.e_tag());
    // User metadata is sealed: the marker appears nowhere at the provider.
    assert_no_plaintext(&env.data);
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_that_would_not_fit_once_sealed_gets_metadata_too_large() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("meta-size").send().await.unwrap();
    // The documented budget (docs/FORMAT.md): about 1.2 KB of metadata.
    let fits = "v".repeat(1100);
    c.put_object()
        .bucket("meta-size")
        .key("fits")
        .metadata("m", &fits)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let h = c
        .head_object()
        .bucket("meta-size")
        .key("fits")
        .send()
        .await
        .unwrap();
    assert_eq!(h.metadata().unwrap().get("m"), Some(&fits));
    let err = c
        .put_object()
        .bucket("meta-size")
        .key("too-big")
        .metadata("m", "v".repeat(1500))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("MetadataTooLarge"), "{err:?}");
    assert!(!env.data.join("meta-size").join("too-big").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_report_plaintext_sizes_and_paginate() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("lists").send().await.unwrap();
    for (k, len) in [("a/1", 10usize), ("a/2", 70_000), ("b/3", 0), ("top", 5)] {
        c.put_object()
            .bucket("lists")
            .key(k)
            .body(ByteStream::from(vec![7u8; len]))
            .send()
            .await
            .unwrap();
    }
    let all = c.list_objects_v2().bucket("lists").send().await.unwrap();
    let sizes: Vec<(String, i64)> = all
        .contents()
        .iter()
        .map(|o| (o.key().unwrap().to_owned(), o.size().unwrap()))
        .collect();
    assert_eq!(
        sizes,
        vec![
            ("a/1".into(), 10),
            ("a/2".into(), 70_000),
            ("b/3".into(), 0),
            ("top".into(), 5)
        ]
    );
    let d = c
        .list_objects_v2()
        .bucket("lists")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<&str> = d
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, vec!["a/", "b/"]);
    assert_eq!(d.contents().len(), 1);
    let p1 = c
        .list_objects_v2()
        .bucket("lists")
        .max_keys(2)
        .send()
        .await
        .unwrap();
    assert_eq!(p1.contents().len(), 2);
    assert_eq!(p1.is_truncated(), Some(true));
    let p2 = c
        .list_objects_v2()
        .bucket("lists")
        .max_keys(2)
        .set_continuation_token(p1.next_continuation_token().map(str::to_owned))
        .send()
        .await
        .unwrap();
    assert_eq!(
        p2.contents()
            .iter()
            .filter_map(|o| o.key())
            .collect::<Vec<_>>(),
        vec!["b/3", "top"]
    );
    let after = c
        .list_objects_v2()
        .bucket("lists")
        .start_after("a/2")
        .send()
        .await
        .unwrap();
    assert_eq!(after.contents().len(), 2);
    let v1 = c
        .list_objects()
        .bucket("lists")
        .prefix("a/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        v1.contents()
            .iter()
            .map(|o| o.size().unwrap())
            .collect::<Vec<_>>(),
        vec![10, 70_000]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_signatures_unknown_keys_and_unsigned_requests_never_reach_upstream() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("signed").send().await.unwrap();
    let wrong = client_for(format!("http://{}", env.gw.addr), AK, "not-the-secret");
    let e = wrong
        .put_object()
        .bucket("signed")
        .key("x")
        .body(ByteStream::from_static(b"hi"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"));
    let stranger = client_for(format!("http://{}", env.gw.addr), "nobody", SK);
    let e = stranger
        .list_objects_v2()
        .bucket("signed")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidAccessKeyId"));
    // An unsigned request (plain HTTP, no Authorization).
    let r = raw_http(
        env.gw.addr,
        "PUT /signed/unsigned HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(!env.data.join("signed/x").exists() && !env.data.join("signed/unsigned").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_content_md5_creates_nothing() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("digest").send().await.unwrap();
    c.put_object()
        .bucket("digest")
        .key("keep")
        .body(ByteStream::from_static(b"original"))
        .send()
        .await
        .unwrap();
    let e = c
        .put_object()
        .bucket("digest")
        .key("keep")
        .body(ByteStream::from_static(b"replacement"))
        .content_md5("XrY7u+Ae7tCTyyK7j1rNww==")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("BadDigest"));
    assert_eq!(
        get_all(&c, "digest", "keep").await.unwrap(),
        b"original",
        "a failed PUT must not replace the object"
    );
    let e = c
        .put_object()
        .bucket("digest")
        .key("new")
        .body(ByteStream::from_static(b"data"))
        .checksum_crc32("AAAAAA==")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("BadDigest"));
    assert!(!env.data.join("digest/new").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_tampering_aborts_the_response() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("tamper").send().await.unwrap();
    let data = body(200_000);
    c.put_object()
        .bucket("tamper")
        .key("victim")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let path = env.data.join("tamper/victim");
    let mut stored = std::fs::read(&path).unwrap();
    stored[212 + 65552 + 100] ^= 1; // inside segment 1
    std::fs::write(&path, &stored).unwrap();
    if let Ok(got) = get_all(&c, "tamper", "victim").await {
        panic!("tampered object returned {} bytes as complete", got.len());
    }
    // A range inside the intact segment 0 still reads; one over segment 1 fails.
    let r = c
        .get_object()
        .bucket("tamper")
        .key("victim")
        .range("bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(r.body.collect().await.unwrap().to_vec(), &data[..100]);
    let bad = c
        .get_object()
        .bucket("tamper")
        .key("victim")
        .range("bytes=65536-65600")
        .send()
        .await;
    let failed = match bad {
        Err(_) => true,
        Ok(r) => r.body.collect().await.is_err(),
    };
    assert!(failed, "a range over a tampered segment must fail");
    // Swapping two objects upstream is detected too.
    c.put_object()
        .bucket("tamper")
        .key("other")
        .body(ByteStream::from_static(b"other"))
        .send()
        .await
        .unwrap();
    std::fs::copy(
        env.data.join("tamper/other"),
        env.data.join("tamper/victim"),
    )
    .unwrap();
    assert!(get_all(&c, "tamper", "victim").await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn unsupported_operations_are_not_forwarded() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket()
        .bucket("unsupported")
        .send()
        .await
        .unwrap();
    let e = c
        .get_object_tagging()
        .bucket("unsupported")
        .key("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("NotImplemented"));
    let e = c
        .get_bucket_policy()
        .bucket("unsupported")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("NotImplemented"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bucket_grants_are_enforced() {
    let env = gateway().await;
    let (up, uak, usk) = env.gw.upstream.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sealgate.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
listen = "127.0.0.1:0"
keys_dir = "{keys}"
[upstream]
endpoint = "http://{up}"
access_key = "{uak}"
secret_key = "{usk}"
[[credentials]]
access_key = "alice"
secret_key = "alice-secret"
buckets = ["alpha"]
"#,
            keys = env._dir.path().join("keys").display()
        ),
    )
    .unwrap();
    let gw2 = start(Options {
        config: Some(cfg),
        ..Default::default()
    })
    .await
    .unwrap();
    let admin = client(&env);
    admin.create_bucket().bucket("alpha").send().await.unwrap();
    admin.create_bucket().bucket("beta").send().await.unwrap();
    let alice = client_for(format!("http://{}", gw2.addr), "alice", "alice-secret");
    alice
        .put_object()
        .bucket("alpha")
        .key("k")
        .body(ByteStream::from_static(b"ok"))
        .send()
        .await
        .unwrap();
    let e = alice
        .put_object()
        .bucket("beta")
        .key("k")
        .body(ByteStream::from_static(b"no"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("AccessDenied"));
    assert!(!env.data.join("beta/k").exists());
    // Both gateways share the key store and upstream: stateless data path.
    assert_eq!(get_all(&admin, "alpha", "k").await.unwrap(), b"ok");
}

async fn raw_http(addr: std::net::SocketAddr, req: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A client whose clock is `skew` behind, with SDK retries (and so its
/// automatic clock correction) off.
fn skewed_client(env: &Env, skew: std::time::Duration) -> Client {
    use aws_sdk_s3::config::retry::RetryConfig;
    use aws_smithy_async::time::StaticTimeSource;
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("http://{}", env.gw.addr))
        .force_path_style(true)
        .credentials_provider(Credentials::new(AK, SK, None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .time_source(StaticTimeSource::new(std::time::SystemTime::now() - skew))
        .build();
    Client::from_conf(conf)
}

#[tokio::test(flavor = "multi_thread")]
async fn clock_skew_beyond_15_minutes_is_refused() {
    let env = gateway().await;
    client(&env)
        .create_bucket()
        .bucket("skewed")
        .send()
        .await
        .unwrap();
    let late = skewed_client(&env, std::time::Duration::from_secs(20 * 60));
    let e = late
        .put_object()
        .bucket("skewed")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("RequestTimeTooSkewed"));
    assert!(!env.data.join("skewed/k").exists());
    // Within the window still works.
    let ok = skewed_client(&env, std::time::Duration::from_secs(5 * 60));
    ok.put_object()
        .bucket("skewed")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_keys_get_s3_errors_or_stay_inside_the_bucket() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("keys").send().await.unwrap();
    let long = "k".repeat(1025);
    let e = c
        .put_object()
        .bucket("keys")
        .key(&long)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("KeyTooLongError"));
    for key in ["../escape.txt", "a/../../escape2.txt", "./dot", "a/./b"] {
        let e = c
            .put_object()
            .bucket("keys")
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("InvalidArgument"), "{key}");
        let e = c
            .get_object()
            .bucket("keys")
            .key(key)
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("InvalidArgument"), "{key}");
    }
    // Unusual but harmless names still work.
    for key in ["spaced key ✓.txt", "a..b", ".hidden", "dir/...", "x//y"] {
        c.put_object()
            .bucket("keys")
            .key(key)
            .body(ByteStream::from_static(b"ok"))
            .send()
            .await
            .unwrap();
        assert_eq!(get_all(&c, "keys", key).await.unwrap(), b"ok", "{key}");
    }
    let parent = env.data.parent().unwrap();
    assert!(!parent.join("escape.txt").exists() && !env.data.join("escape.txt").exists());
    assert!(!parent.join("escape2.txt").exists() && !env.data.join("escape2.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn client_breaking_off_mid_upload_creates_nothing() {
    use bytes::Bytes;
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("broken").send().await.unwrap();
    let frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = vec![
        Ok(http_body::Frame::data(Bytes::from(vec![1u8; 100_000]))),
        Err(std::io::Error::other("client went away")),
    ];
    let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
    let r = c
        .put_object()
        .bucket("broken")
        .key("half")
        .content_length(1_000_000)
        .body(ByteStream::from_body_1_x(body))
        .send()
        .await;
    assert!(r.is_err());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !env.data.join("broken/half").exists(),
        "a broken upload must not become visible"
    );
    // The gateway keeps serving.
    c.put_object()
        .bucket("broken")
        .key("after")
        .body(ByteStream::from_static(b"fine"))
        .send()
        .await
        .unwrap();
    assert_eq!(get_all(&c, "broken", "after").await.unwrap(), b"fine");
}
