//! S3 details at the edges (issue 15 point 4), each answered as S3 answers
//! it, through the gateway in front of real providers (the embedded s3s-fs
//! and, where the detail depends on the provider, moto): request ids in
//! error bodies, listing encodings, length-less PUTs, oversized
//! DeleteObjects, copy-source ranges outside the source, odd but legal keys,
//! and provider refusals passed on as the provider's S3 error.

use crate::gw_common;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use gw_common::{AK, SK, client, client_for, gateway};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::time::Duration;

// ---- providers -------------------------------------------------------------

/// A gateway in front of one provider, and what keeps both running.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    c: Client,
    _keep: Box<dyn std::any::Any + Send>,
}

async fn s3s_fs() -> Target {
    let env = gateway().await;
    Target {
        name: "s3s-fs",
        addr: env.gw.addr,
        c: client(&env),
        _keep: Box::new(env),
    }
}

/// A gateway in front of a fresh moto server.
async fn moto() -> Target {
    let moto = gw_common::moto::Moto::start().await;
    let up: SocketAddr = moto.addr;
    let dir = tempfile::tempdir().unwrap();
    let cfg = gw_common::gateway_config(dir.path(), up, ("moto", "moto-secret"), "");
    let gw = sealgate::serve::start(sealgate::serve::Options {
        config: Some(cfg),
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = gw.addr;
    Target {
        name: "moto",
        addr,
        c: client_for(format!("http://{addr}"), AK, SK),
        _keep: Box::new((gw, dir, moto)),
    }
}

// ---- raw signed requests ---------------------------------------------------

/// A request body for [`signed`].
enum Body {
    Empty,
    /// Sent with `Transfer-Encoding: chunked` and no length.
    Chunked(Vec<Vec<u8>>),
}

/// A response: status, headers, body.
struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The text of the first `<tag>` element of the body.
    fn element(&self, tag: &str) -> Option<&str> {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let (_, rest) = self.body.split_once(&open)?;
        rest.split_once(&close).map(|(v, _)| v)
    }
}

/// Sends `method path_and_query` to `addr`, signed with SigV4 in headers
/// (UNSIGNED-PAYLOAD) by `secret`, with `headers` signed too.
async fn signed(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    secret: &str,
    body: Body,
) -> Answer {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity = aws_credential_types::Credentials::new(AK, secret, None, None, "t").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = format!("http://{addr}{path_and_query}");
    let host = addr.to_string();
    let mut all: Vec<(&str, &str)> = vec![
        ("host", host.as_str()),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
    ];
    all.extend_from_slice(headers);
    let signable = SignableRequest::new(
        method,
        &url,
        all.iter().copied(),
        SignableBody::UnsignedPayload,
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut b = http::Request::builder().method(method).uri(path_and_query);
    for (k, v) in &all {
        b = b.header(*k, *v);
    }
    type Boxed = http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>;
    let body: Boxed = match body {
        Body::Empty => http_body_util::Empty::new().boxed(),
        Body::Chunked(chunks) => http_body_util::StreamBody::new(futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok(http_body::Frame::data(bytes::Bytes::from(c)))),
        ))
        .boxed(),
    };
    let mut req = b.body(body).unwrap();
    instructions.apply_to_request_http1x(&mut req);
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = tokio::time::timeout(Duration::from_secs(30), send.send_request(req))
        .await
        .expect("no answer in 30 s")
        .unwrap();
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn code<T, E: ProvideErrorMetadata>(r: &Result<T, E>) -> Option<&str> {
    r.as_ref().err().and_then(|e| e.code())
}

// ---- 1: request ids in error bodies ----------------------------------------

/// Every error body names the request (RequestId = x-amz-request-id) and
/// the host id (HostId = x-amz-id-2), whichever layer refused it: the front
/// end (NoSuchKey), s3s's signature check, and the pre-s3s gate.
#[tokio::test(flavor = "multi_thread")]
async fn error_bodies_carry_the_request_and_host_ids_of_their_response() {
    let t = s3s_fs().await;
    t.c.create_bucket().bucket("ids").send().await.unwrap();
    let cases = [
        ("front end", "/ids/missing", SK, vec![], 404, "NoSuchKey"),
        (
            "signature check",
            "/ids/missing",
            "wrong-secret-0123456789",
            vec![],
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "gate (SigV2 query)",
            "/ids/missing?Signature=x",
            SK,
            vec![],
            400,
            "InvalidRequest",
        ),
    ];
    for (layer, path, secret, headers, status, want) in cases {
        let a = signed(t.addr, "GET", path, &headers, secret, Body::Empty).await;
        assert_eq!(
            (a.status, a.element("Code")),
            (status, Some(want)),
            "{layer}: {}",
            a.body
        );
        let id = a.header("x-amz-request-id").expect("x-amz-request-id");
        assert_eq!(a.element("RequestId"), Some(id), "{layer}: {}", a.body);
        let host = a.header("x-amz-id-2").expect("x-amz-id-2");
        assert!(!host.is_empty());
        assert_eq!(a.element("HostId"), Some(host), "{layer}: {}", a.body);
    }
    // Successful answers carry both headers too.
    let ok = signed(t.addr, "GET", "/ids?list-type=2", &[], SK, Body::Empty).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.header("x-amz-request-id").is_some());
    assert!(ok.header("x-amz-id-2").is_some());
}

// ---- 2: listing encodings --------------------------------------------------

/// Names are listed raw (XML-escaped) unless the client asks for
/// `encoding-type=url`; then Prefix, Delimiter, Key, CommonPrefixes,
/// StartAfter, Marker and NextMarker are URL-encoded, as S3 does.
#[tokio::test(flavor = "multi_thread")]
async fn listings_are_url_encoded_only_when_asked() {
    // moto refuses "\n" in keys (404, directly too): it gets "é" instead.
    for (t, sp, esp) in [(s3s_fs().await, "\n", "%0A"), (moto().await, "é", "%C3%A9")] {
        let c = &t.c;
        let who = t.name;
        let k = |s: &str| s.replace('\n', sp);
        let e = |s: &str| s.replace("%0A", esp);
        c.create_bucket().bucket("enc").send().await.unwrap();
        for key in ["\nnl/one", "\nnl/two", "\nflat&<x>", "plain"] {
            c.put_object()
                .bucket("enc")
                .key(k(key))
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
                .unwrap();
        }
        // ListObjectsV2, raw.
        let l = c
            .list_objects_v2()
            .bucket("enc")
            .prefix(k("\n"))
            .delimiter("/")
            .start_after(k("\n"))
            .send()
            .await
            .unwrap();
        assert_eq!(l.prefix(), Some(k("\n").as_str()), "{who}");
        assert_eq!(l.delimiter(), Some("/"), "{who}");
        assert_eq!(l.start_after(), Some(k("\n").as_str()), "{who}");
        assert_eq!(l.encoding_type(), None, "{who}");
        let keys: Vec<_> = l.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys, [k("\nflat&<x>")], "{who}");
        let prefixes: Vec<_> = l
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .collect();
        assert_eq!(prefixes, [k("\nnl/")], "{who}");
        // ListObjectsV2, encoded.
        let l = c
            .list_objects_v2()
            .bucket("enc")
            .prefix(k("\n"))
            .delimiter("/")
            .start_after(k("\n"))
            .encoding_type(aws_sdk_s3::types::EncodingType::Url)
            .send()
            .await
            .unwrap();
        assert_eq!(l.prefix(), Some(e("%0A").as_str()), "{who}");
        assert_eq!(l.delimiter(), Some("/"), "{who}");
        assert_eq!(l.start_after(), Some(e("%0A").as_str()), "{who}");
        assert_eq!(l.encoding_type().map(|e| e.as_str()), Some("url"), "{who}");
        let keys: Vec<_> = l.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys, [e("%0Aflat%26%3Cx%3E")], "{who}");
        let prefixes: Vec<_> = l
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .collect();
        assert_eq!(prefixes, [e("%0Anl/")], "{who}");
        // ListObjects (v1), raw then encoded, with markers.
        let l = c
            .list_objects()
            .bucket("enc")
            .prefix(k("\n"))
            .marker(k("\n"))
            .max_keys(1)
            .send()
            .await
            .unwrap();
        assert_eq!(
            (l.prefix(), l.marker()),
            (Some(k("\n").as_str()), Some(k("\n").as_str())),
            "{who}"
        );
        assert_eq!(
            l.contents()[0].key(),
            Some(k("\nflat&<x>").as_str()),
            "{who}"
        );
        // (moto's NextMarker is an opaque token of its own.)
        if who == "s3s-fs" {
            assert_eq!(l.next_marker(), Some(k("\nflat&<x>").as_str()), "{who}");
        }
        let l = c
            .list_objects()
            .bucket("enc")
            .prefix(k("\n"))
            .marker(k("\n"))
            .max_keys(1)
            .encoding_type(aws_sdk_s3::types::EncodingType::Url)
            .send()
            .await
            .unwrap();
        assert_eq!(
            (l.prefix(), l.marker()),
            (Some(e("%0A").as_str()), Some(e("%0A").as_str())),
            "{who}"
        );
        assert_eq!(
            l.contents()[0].key(),
            Some(e("%0Aflat%26%3Cx%3E").as_str()),
            "{who}"
        );
        if who == "s3s-fs" {
            assert_eq!(
                l.next_marker(),
                Some(e("%0Aflat%26%3Cx%3E").as_str()),
                "{who}"
            );
        }
        let l = c
            .list_objects()
            .bucket("enc")
            .delimiter(k("\n"))
            .encoding_type(aws_sdk_s3::types::EncodingType::Url)
            .send()
            .await
            .unwrap();
        assert_eq!(l.delimiter(), Some(e("%0A").as_str()), "{who}");
        let prefixes: Vec<_> = l
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .collect();
        assert_eq!(prefixes, [e("%0A")], "{who}");
    }
    // ListMultipartUploads (moto: s3s-fs has none; moto refuses "\n" in
    // keys and ignores delimiters, so no CommonPrefixes here).
    let t = moto().await;
    let c = &t.c;
    c.create_bucket().bucket("enc").send().await.unwrap();
    for k in ["énl/up", "éflat up"] {
        c.create_multipart_upload()
            .bucket("enc")
            .key(k)
            .send()
            .await
            .unwrap();
    }
    let l = c
        .list_multipart_uploads()
        .bucket("enc")
        .prefix("é")
        .key_marker("é")
        .send()
        .await
        .unwrap();
    assert_eq!((l.prefix(), l.key_marker()), (Some("é"), Some("é")));
    assert_eq!(l.encoding_type(), None);
    let mut keys: Vec<_> = l.uploads().iter().filter_map(|u| u.key()).collect();
    keys.sort();
    assert_eq!(keys, ["éflat up", "énl/up"]);
    let l = c
        .list_multipart_uploads()
        .bucket("enc")
        .prefix("é")
        .key_marker("é")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (l.prefix(), l.key_marker()),
        (Some("%C3%A9"), Some("%C3%A9"))
    );
    assert_eq!(l.encoding_type().map(|e| e.as_str()), Some("url"));
    let mut keys: Vec<_> = l.uploads().iter().filter_map(|u| u.key()).collect();
    keys.sort();
    assert_eq!(keys, ["%C3%A9flat%20up", "%C3%A9nl/up"]);
}

// ---- 3: PUT without a length -----------------------------------------------

/// A chunked PUT or UploadPart without Content-Length (and without
/// x-amz-decoded-content-length) gets 411 MissingContentLength, and
/// nothing is stored.
#[tokio::test(flavor = "multi_thread")]
async fn chunked_puts_without_a_length_get_411_and_store_nothing() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("len").send().await.unwrap();
    let body = || Body::Chunked(vec![b"LENGTHLESS-".to_vec(), b"BODY".to_vec()]);
    let a = signed(env.gw.addr, "PUT", "/len/obj", &[], SK, body()).await;
    assert_eq!(
        (a.status, a.element("Code")),
        (411, Some("MissingContentLength")),
        "{}",
        a.body
    );
    assert!(code(&c.head_object().bucket("len").key("obj").send().await).is_some());
    let up = c
        .create_multipart_upload()
        .bucket("len")
        .key("mp")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let path = format!(
        "/len/mp?partNumber=1&uploadId={}",
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
    );
    let a = signed(env.gw.addr, "PUT", &path, &[], SK, body()).await;
    assert_eq!(
        (a.status, a.element("Code")),
        (411, Some("MissingContentLength")),
        "{}",
        a.body
    );
    let parts = c
        .list_parts()
        .bucket("len")
        .key("mp")
        .upload_id(id)
        .send()
        .await
        .unwrap();
    assert!(parts.parts().is_empty(), "{parts:?}");
    assert!(!env.data.join("len").join("obj").exists());
}

// ---- 4: DeleteObjects over 1,000 keys --------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn delete_objects_of_more_than_1000_keys_is_malformed_xml_and_deletes_nothing() {
    for t in [s3s_fs().await, moto().await] {
        let c = &t.c;
        c.create_bucket().bucket("del").send().await.unwrap();
        c.put_object()
            .bucket("del")
            .key("victim")
            .body(ByteStream::from_static(b"keep"))
            .send()
            .await
            .unwrap();
        let mut objects: Vec<_> = (0..1000)
            .map(|i| {
                ObjectIdentifier::builder()
                    .key(format!("k{i}"))
                    .build()
                    .unwrap()
            })
            .collect();
        objects.push(ObjectIdentifier::builder().key("victim").build().unwrap());
        let r = c
            .delete_objects()
            .bucket("del")
            .delete(
                Delete::builder()
                    .set_objects(Some(objects))
                    .build()
                    .unwrap(),
            )
            .send()
            .await;
        assert_eq!(code(&r), Some("MalformedXML"), "{}: {r:?}", t.name);
        let status = r.unwrap_err().raw_response().map(|r| r.status().as_u16());
        assert_eq!(status, Some(400), "{}", t.name);
        c.head_object()
            .bucket("del")
            .key("victim")
            .send()
            .await
            .unwrap();
        // 1,000 keys are served.
        let objects: Vec<_> = (0..1000)
            .map(|i| {
                ObjectIdentifier::builder()
                    .key(format!("k{i}"))
                    .build()
                    .unwrap()
            })
            .collect();
        c.delete_objects()
            .bucket("del")
            .delete(
                Delete::builder()
                    .set_objects(Some(objects))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
}

// ---- 5: UploadPartCopy ranges outside the source ---------------------------

#[tokio::test(flavor = "multi_thread")]
async fn upload_part_copy_refuses_ranges_outside_the_source() {
    for t in [s3s_fs().await, moto().await] {
        let c = &t.c;
        let who = t.name;
        c.create_bucket().bucket("upc").send().await.unwrap();
        c.put_object()
            .bucket("upc")
            .key("src")
            .body(ByteStream::from(vec![7u8; 100]))
            .send()
            .await
            .unwrap();
        let up = c
            .create_multipart_upload()
            .bucket("upc")
            .key("dst")
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap();
        for range in [
            "bytes=100-100",
            "bytes=200-300",
            "bytes=0-100",
            "bytes=50-1000",
            "bytes=0-",
            "bytes=5-2",
            "0-10",
            "bytes=a-b",
        ] {
            let r = c
                .upload_part_copy()
                .bucket("upc")
                .key("dst")
                .upload_id(id)
                .part_number(1)
                .copy_source("upc/src")
                .copy_source_range(range)
                .send()
                .await;
            assert_eq!(code(&r), Some("InvalidArgument"), "{who} {range}: {r:?}");
            let status = r.unwrap_err().raw_response().map(|r| r.status().as_u16());
            assert_eq!(status, Some(400), "{who} {range}");
        }
        let parts = c
            .list_parts()
            .bucket("upc")
            .key("dst")
            .upload_id(id)
            .send()
            .await;
        if let Ok(p) = parts {
            assert!(p.parts().is_empty(), "{who}: {p:?}");
        }
        // The whole source, as its last byte: served.
        let ok = c
            .upload_part_copy()
            .bucket("upc")
            .key("dst")
            .upload_id(id)
            .part_number(1)
            .copy_source("upc/src")
            .copy_source_range("bytes=0-99")
            .send()
            .await
            .unwrap();
        c.complete_multipart_upload()
            .bucket("upc")
            .key("dst")
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .parts(
                        CompletedPart::builder()
                            .part_number(1)
                            .set_e_tag(
                                ok.copy_part_result()
                                    .and_then(|r| r.e_tag())
                                    .map(Into::into),
                            )
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let got = gw_common::get_bytes(c, "upc", "dst").await;
        assert_eq!(got, vec![7u8; 100], "{who}");
    }
}

// ---- 6: presigned URLs -----------------------------------------------------

/// An expired presigned URL is 403 AccessDenied "Request has expired", as
/// on S3. (Over seven days: tests/it/hostile_clients.rs.)
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_presigned_url_is_403_request_has_expired() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("pre").send().await.unwrap();
    c.put_object()
        .bucket("pre")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let cfg = aws_sdk_s3::presigning::PresigningConfig::builder()
        .start_time(std::time::SystemTime::now() - Duration::from_secs(7200))
        .expires_in(Duration::from_secs(3600))
        .build()
        .unwrap();
    let p = c
        .get_object()
        .bucket("pre")
        .key("k")
        .presigned(cfg)
        .await
        .unwrap();
    let uri: http::Uri = p.uri().parse().unwrap();
    let a = signed_less(env.gw.addr, uri.path_and_query().unwrap().as_str()).await;
    assert_eq!(
        (a.status, a.element("Code"), a.element("Message")),
        (403, Some("AccessDenied"), Some("Request has expired")),
        "{}",
        a.body
    );
    assert_eq!(a.element("RequestId"), a.header("x-amz-request-id"));
}

/// A plain GET of `path_and_query` (a presigned URL), unsigned.
async fn signed_less(addr: SocketAddr, path_and_query: &str) -> Answer {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path_and_query)
        .header("host", addr.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

// ---- 7: odd but legal keys ---------------------------------------------------

/// Keys S3 allows, however odd, through every operation on every provider.
/// (Keys starting with "/" or with "." or ".." path segments are refused on
/// purpose, docs/ARCHITECTURE.md; "./" inside a segment is fine.)
/// `longest`: the longest key the provider stores (S3: 1,024 bytes; s3s-fs
/// names a metadata file after the base64 of bucket and key, so a file name
/// limit of 255 bytes caps its keys near 130 bytes: docs/TESTING.md).
fn odd_keys(longest: usize) -> Vec<String> {
    let mut long = String::new();
    for c in "ünï/".chars().cycle() {
        if long.len() + c.len_utf8() > longest - 1 {
            break;
        }
        long.push(c);
    }
    long.push_str(&"x".repeat(longest - long.len()));
    assert_eq!(long.len(), longest);
    [
        " ",
        "  leading",
        "trailing  ",
        " both ",
        "\t",
        "tab\tinside",
        "+",
        "%",
        "%20",
        "a+b c%2Fd",
        "ünïcødé/日本語/😀",
        "a//b",
        "x./y",
        "x../y",
        "..x",
        "dir/ ",
        "~!@$^&*()=[]{};:',<>|`\"",
        "?q=1#frag",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([long])
    .collect()
}

/// A client of `t` that can send whitespace-only keys: the Rust SDK
/// refuses them itself, so the test client uses sealgate's own placeholder
/// form and interceptor (`sealgate::upstream::key`).
fn any_key_client(t: &Target) -> Client {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(format!("http://{}", t.addr))
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            AK, SK, None, None, "t",
        ))
        .interceptor(sealgate::upstream::RestoreKeys)
        .build();
    Client::from_conf(conf)
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_but_legal_keys_work_for_every_operation() {
    for t in [s3s_fs().await, moto().await] {
        let c = &any_key_client(&t);
        let who = t.name;
        c.create_bucket().bucket("odd").send().await.unwrap();
        let longest = if who == "s3s-fs" { 120 } else { 1024 };
        for real in odd_keys(longest) {
            // What the SDK is given; the request names `real`.
            let key = sealgate::upstream::key(&real).into_owned();
            let body = format!("body of {real:?}").into_bytes();
            let r = c
                .put_object()
                .bucket("odd")
                .key(&key)
                .body(ByteStream::from(body.clone()))
                .send()
                .await;
            assert!(r.is_ok(), "{who} PUT {real:?}: {r:?}");
            assert_eq!(
                gw_common::try_get_bytes(c, "odd", &key).await.as_ref(),
                Ok(&body),
                "{who} GET {real:?}"
            );
            let h = c.head_object().bucket("odd").key(&key).send().await;
            assert_eq!(
                h.as_ref().ok().and_then(|h| h.content_length()),
                Some(body.len() as i64),
                "{who} HEAD {real:?}: {h:?}"
            );
            let l = c
                .list_objects_v2()
                .bucket("odd")
                .prefix(&real)
                .send()
                .await
                .unwrap();
            // (s3s-fs stores "a//b" as the file a/b and lists it so: its
            // quirk, docs/TESTING.md; a GET of "a/b" fails its name binding.)
            if !(who == "s3s-fs" && real.contains("//")) {
                assert!(
                    l.contents().iter().any(|o| o.key() == Some(real.as_str())),
                    "{who} LIST {real:?}: {l:?}"
                );
            }
            // Copy there and back.
            let src = format!(
                "odd/{}",
                percent_encoding::utf8_percent_encode(&real, percent_encoding::NON_ALPHANUMERIC)
            );
            let r = c
                .copy_object()
                .bucket("odd")
                .key("copy-target")
                .copy_source(&src)
                .send()
                .await;
            assert!(r.is_ok(), "{who} COPY from {real:?}: {r:?}");
            assert_eq!(
                gw_common::get_bytes(c, "odd", "copy-target").await,
                body,
                "{who} {real:?}"
            );
            let r = c
                .copy_object()
                .bucket("odd")
                .key(&key)
                .copy_source("odd/copy-target")
                .send()
                .await;
            assert!(r.is_ok(), "{who} COPY to {real:?}: {r:?}");
            // Multipart.
            let r = gw_common::upload_parts(c, "odd", &key, &[b"multipart body"]).await;
            let u = r.unwrap_or_else(|e| panic!("{who} multipart {real:?}: {e}"));
            let r = gw_common::complete_upload(c, "odd", &key, &u).await;
            assert!(r.is_ok(), "{who} complete {real:?}: {r:?}");
            assert_eq!(
                gw_common::get_bytes(c, "odd", &key).await,
                b"multipart body",
                "{who} {real:?}"
            );
            let r = c.delete_object().bucket("odd").key(&key).send().await;
            assert!(r.is_ok(), "{who} DELETE {real:?}: {r:?}");
            let h = c.head_object().bucket("odd").key(&key).send().await;
            assert!(h.is_err(), "{who} {real:?} still there after DELETE");
        }
        if who == "s3s-fs" {
            // s3s-fs stores "a//b" as the file a/b: read as "a/b", the
            // object fails its name binding and no plaintext is served.
            c.put_object()
                .bucket("odd")
                .key("a//b")
                .body(ByteStream::from_static(b"sealed for a//b"))
                .send()
                .await
                .unwrap();
            let r = gw_common::try_get_bytes(c, "odd", "a/b").await;
            assert!(r.is_err(), "{r:?}");
        }
    }
}

// ---- 8: provider refusals ----------------------------------------------------

/// (status, code) of an SDK error, as the client saw it.
fn seen<T, E: ProvideErrorMetadata>(
    r: &Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) -> (Option<u16>, Option<String>) {
    match r {
        Ok(_) => (Some(200), None),
        Err(e) => (
            e.raw_response().map(|r| r.status().as_u16()),
            e.as_service_error()
                .and_then(|s| s.code())
                .map(str::to_owned),
        ),
    }
}

/// What a real provider refuses reaches the client with the provider's
/// code and status, never as 500 InternalError.
#[tokio::test(flavor = "multi_thread")]
async fn real_provider_refusals_keep_their_code_and_status() {
    // s3s-fs: a missing bucket, a gone upload.
    let t = s3s_fs().await;
    let c = &t.c;
    let r = c.list_objects_v2().bucket("no-such-bucket").send().await;
    assert_eq!(seen(&r), (Some(404), Some("NoSuchBucket".into())));
    let r = c
        .upload_part()
        .bucket("no-such-bucket")
        .key("k")
        .upload_id("not-an-upload")
        .part_number(1)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(seen(&r), (Some(404), Some("NoSuchUpload".into())));
    c.create_bucket().bucket("real").send().await.unwrap();
    c.put_object()
        .bucket("real")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let r = c.delete_bucket().bucket("real").send().await;
    assert_eq!(seen(&r), (Some(409), Some("BucketNotEmpty".into())));

    // moto: a completion naming a part that is not there, and parts below
    // 5 MiB (moto's ListParts cannot be read by the SDK, so these checks
    // are the provider's own: docs/TESTING.md).
    let t = moto().await;
    let c = &t.c;
    c.create_bucket().bucket("real").send().await.unwrap();
    let mut u = gw_common::upload_parts(c, "real", "mp", &[b"one", b"two"])
        .await
        .unwrap();
    let r = c
        .complete_multipart_upload()
        .bucket("real")
        .key("mp")
        .upload_id(&u.id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(u.parts.clone()))
                .build(),
        )
        .send()
        .await;
    assert_eq!(seen(&r), (Some(400), Some("EntityTooSmall".into())));
    u.parts[0] = CompletedPart::builder()
        .part_number(1)
        .e_tag("\"00000000000000000000000000000000\"")
        .build();
    let r = c
        .complete_multipart_upload()
        .bucket("real")
        .key("mp")
        .upload_id(&u.id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(u.parts.clone()))
                .build(),
        )
        .send()
        .await;
    assert_eq!(seen(&r), (Some(400), Some("InvalidPart".into())));
    assert!(
        c.head_object()
            .bucket("real")
            .key("mp")
            .send()
            .await
            .is_err()
    );
}

/// Refusals a provider may give, injected between sealgate and s3s-fs: the
/// client gets the provider's code and status (its message stays in the
/// gateway's log), except refusals of sealgate's own credentials or
/// signature, which are the gateway's fault (500), and nothing is stored.
#[tokio::test(flavor = "multi_thread")]
async fn injected_provider_refusals_keep_their_code_and_status() {
    use gw_common::fault_proxy::{self, Fault, Faults};
    let dir = tempfile::tempdir().unwrap();
    let (uak, usk) = ("edges-up", "edges-up-secret-0123456789");
    let up = sealgate::serve::embedded::start(&dir.path().join("up"), uak, usk)
        .await
        .unwrap();
    let faults = std::sync::Arc::new(Faults::default());
    let via = fault_proxy::start(up, faults.clone()).await;
    let cfg = gw_common::gateway_config(dir.path(), via, (uak, usk), "");
    let gw = sealgate::serve::start(sealgate::serve::Options {
        config: Some(cfg),
        ..Default::default()
    })
    .await
    .unwrap();
    let c = gw_common::client_no_retry(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket().bucket("inj").send().await.unwrap();
    c.put_object()
        .bucket("inj")
        .key("there")
        .body(ByteStream::from_static(b"stored"))
        .send()
        .await
        .unwrap();
    // Small enough to be sent whole before the refusal arrives: a proxy
    // that answers early and closes makes the kernel reset the connection
    // under a large body, and the answer may be lost (then 503).
    let big = vec![b'z'; 10_000];
    for (status, code, want) in [
        (403, "AccessDenied", (403, "AccessDenied")),
        (400, "InvalidRequest", (400, "InvalidRequest")),
        (409, "OperationAborted", (409, "OperationAborted")),
        (400, "InvalidStorageClass", (400, "InvalidStorageClass")),
        (400, "KeyTooLongError", (400, "KeyTooLongError")),
        (403, "QuotaExceeded", (403, "QuotaExceeded")),
        (403, "SignatureDoesNotMatch", (500, "InternalError")),
        (403, "InvalidAccessKeyId", (500, "InternalError")),
    ] {
        // A PUT the provider refuses.
        faults.next("PUT", "/inj/refused", 1, Fault::Status(status, code));
        let r = c
            .put_object()
            .bucket("inj")
            .key("refused")
            .body(ByteStream::from(big.clone()))
            .send()
            .await;
        assert_eq!(
            seen(&r),
            (Some(want.0), Some(want.1.to_owned())),
            "PUT {status} {code}: {r:?}"
        );
        assert!(faults.all_fired());
        // A GET.
        faults.next("GET", "/inj/there", 1, Fault::Status(status, code));
        let r = c.get_object().bucket("inj").key("there").send().await;
        assert_eq!(
            seen(&r),
            (Some(want.0), Some(want.1.to_owned())),
            "GET {status} {code}: {r:?}"
        );
        faults.clear();
    }
    // A provider's InvalidObjectState (an archived object) is passed on,
    // and is not taken for "not in sealgate's format".
    faults.next(
        "HEAD",
        "/inj/there",
        1,
        Fault::Status(403, "InvalidObjectState"),
    );
    faults.next(
        "GET",
        "/inj/there",
        1,
        Fault::Status(403, "InvalidObjectState"),
    );
    let r = c.get_object().bucket("inj").key("there").send().await;
    assert_eq!(seen(&r).0, Some(403), "{r:?}");
    faults.clear();
    // A HEAD refusal carries no body, so no code: its status tells.
    faults.next("HEAD", "/inj/there", 1, Fault::Status(403, "AccessDenied"));
    let r = c.head_object().bucket("inj").key("there").send().await;
    assert_eq!(seen(&r).0, Some(403), "{r:?}");
    faults.clear();
    assert!(!dir.path().join("up/inj/refused").exists());
    assert_eq!(gw_common::get_bytes(&c, "inj", "there").await, b"stored");
}

#[test]
fn an_sdk_refusal_is_invalid_argument_never_closed_upload() {
    let e = s3s::S3Error::from(sealgate::front::error::upstream_object(
        sealgate::upstream::UpstreamError::Construction("MissingField key".into()),
    ));
    assert_eq!(e.code().as_str(), "InvalidArgument");
    assert_eq!(e.status_code().map(|s| s.as_u16()), Some(400));
}
