//! Hostile clients against a real gateway in front of a real s3s-fs: an
//! outsider with no credentials, and clients holding credentials for one
//! bucket only (docs/SECURITY.md §Hostile clients). Every refusal is an S3
//! XML error, and nothing it refused is stored, changed or deleted at the
//! provider.

use crate::gw_common;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use gw_common::{AK, SK, client_for, spawn_embedded};
use sealgate::serve::{Options, Running, embedded, start};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A gateway in front of a real s3s-fs, with three identities: `admin`
/// (every bucket), `alice` (tenant-a only) and `bob` (tenant-b only). The
/// buckets tenant-a, tenant-b and hr-layoffs-2027 exist.
struct Tenants {
    _dir: tempfile::TempDir,
    /// The provider's root directory (bucket = subdirectory).
    data: PathBuf,
    gw: Running,
}

impl Tenants {
    async fn start() -> Tenants {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("up");
        let (uak, usk) = ("hostile-up", "hostile-up-secret-0123456789");
        let up = embedded::start(&data, uak, usk).await.unwrap();
        let keys = dir.path().join("keys");
        sealgate::keys::KeyStore::generate(&keys, false).unwrap();
        let cfg = dir.path().join("sealgate.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"listen = "127.0.0.1:0"
keys_dir = {keys:?}
[upstream]
endpoint = "http://{up}"
access_key = "{uak}"
secret_key = "{usk}"
[[credentials]]
access_key = "admin"
secret_key = "admin-secret-0123456789"
buckets = ["*"]
[[credentials]]
access_key = "alice"
secret_key = "alice-secret-0123456789"
buckets = ["tenant-a"]
[[credentials]]
access_key = "bob"
secret_key = "bob-secret-0123456789"
buckets = ["tenant-b"]
"#
            ),
        )
        .unwrap();
        let gw = start(Options {
            config: Some(cfg),
            ..Default::default()
        })
        .await
        .unwrap();
        let t = Tenants {
            _dir: dir,
            data,
            gw,
        };
        for b in ["tenant-a", "tenant-b", "hr-layoffs-2027"] {
            t.admin().create_bucket().bucket(b).send().await.unwrap();
        }
        t
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.gw.addr)
    }
    fn admin(&self) -> Client {
        client_for(self.endpoint(), "admin", "admin-secret-0123456789")
    }
    fn alice(&self) -> Client {
        client_for(self.endpoint(), "alice", "alice-secret-0123456789")
    }
    fn bob(&self) -> Client {
        client_for(self.endpoint(), "bob", "bob-secret-0123456789")
    }

    /// Stores `body` as bucket/key through the gateway (as admin).
    async fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        self.admin()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .unwrap();
    }

    /// Whether the provider holds bucket/key (the s3s-fs file).
    fn stored(&self, bucket: &str, key: &str) -> bool {
        self.data.join(bucket).join(key).exists()
    }
}

/// Sends `head` (request line and headers, ending in a blank line) and
/// whatever follows, and reads the whole response (the request asks the
/// server to close): (status, body).
async fn raw(addr: std::net::SocketAddr, head: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("no complete response within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The `<Code>` of an S3 XML error body.
fn code(body: &str) -> &str {
    body.split_once("<Code>")
        .and_then(|(_, r)| r.split_once("</Code>"))
        .map_or("", |(c, _)| c)
}

// ---- finding 2: unauthenticated memory exhaustion --------------------------

const BOUNDARY: &str = "sealgateformboundary";

/// The head of an unsigned browser-form upload to /bucket whose body
/// (`form_prefix` + `file_len` bytes + `form_suffix`) would be `len` bytes.
fn form_head(bucket: &str, len: u64) -> String {
    format!(
        "POST /{bucket} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len}\r\n\r\n"
    )
}

fn form_prefix(key: &str) -> String {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n{key}\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
}

fn form_suffix() -> String {
    format!("\r\n--{BOUNDARY}--\r\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_form_uploads_are_refused_before_their_body_is_read() {
    let t = Tenants::start().await;
    // Only the headers of a 100 MiB form: the answer must come without the
    // body (s3s would wait for it, and then buffer it).
    let (status, body) = raw(t.gw.addr, &form_head("tenant-a", 100 << 20)).await;
    assert_eq!(status, 501, "{body}");
    assert_eq!(code(&body), "NotImplemented", "{body}");
    // A complete, small form (unsigned, and signed-looking) stores nothing.
    let form = format!("{}hello{}", form_prefix("planted"), form_suffix());
    let head = form_head("tenant-a", form.len() as u64);
    let (status, body) = raw(t.gw.addr, &format!("{head}{form}")).await;
    assert_eq!((status, code(&body)), (501, "NotImplemented"), "{body}");
    assert!(!t.stored("tenant-a", "planted"));
    // Form keys never reach the provider either (the key escapes the bucket).
    let form = format!(
        "{}hello{}",
        form_prefix("../tenant-b/planted"),
        form_suffix()
    );
    let head = form_head("tenant-a", form.len() as u64);
    let (status, _) = raw(t.gw.addr, &format!("{head}{form}")).await;
    assert_eq!(status, 501);
    assert!(!t.stored("tenant-b", "planted"));
    // All three at the HTTP layer, before s3s or the provider.
    assert_eq!(t.gw.metrics.requests_of("refused", 501), 3);
    // The gateway keeps serving.
    t.put("tenant-a", "after", b"ok").await;
}

/// A key of 1,013 bytes (file names on s3s-fs are at most 255 bytes).
fn long_key(i: usize, c: char) -> String {
    let seg = c.to_string().repeat(200);
    format!("{i:08}/{}", [seg.as_str(); 5].join("/"))
}

#[tokio::test(flavor = "multi_thread")]
async fn xml_bodies_are_capped_at_what_s3_allows() {
    let t = Tenants::start().await;
    t.put("tenant-a", "victim", b"keep me").await;
    let c = t.admin();
    let ident = |k: String| {
        aws_sdk_s3::types::ObjectIdentifier::builder()
            .key(k)
            .build()
            .unwrap()
    };
    // 1,000 keys of 1,024 bytes, the most S3 allows in one request: served.
    let most: Vec<_> = (0..1000).map(|i| ident(long_key(i, 'x'))).collect();
    c.delete_objects()
        .bucket("tenant-a")
        .delete(
            aws_sdk_s3::types::Delete::builder()
                .set_objects(Some(most))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // ~5 MiB of keys, the victim among them: refused before parsing, and
    // nothing is deleted.
    let mut many: Vec<_> = (0..5000).map(|i| ident(long_key(i, 'y'))).collect();
    many.push(ident("victim".into()));
    let e = c
        .delete_objects()
        .bucket("tenant-a")
        .delete(
            aws_sdk_s3::types::Delete::builder()
                .set_objects(Some(many))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.as_service_error()
            .and_then(aws_sdk_s3::error::ProvideErrorMetadata::code),
        Some("MaxMessageLengthExceeded"),
        "{e:?}"
    );
    assert!(t.stored("tenant-a", "victim"));
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Sends one unsigned form upload of `file_len` bytes, ignoring how the
/// server ends it (it may close mid-body).
async fn send_form(addr: String, file_len: usize) {
    let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else {
        return;
    };
    let prefix = form_prefix("big");
    let suffix = form_suffix();
    let len = (prefix.len() + file_len + suffix.len()) as u64;
    if s.write_all(form_head("tenant-a", len).as_bytes())
        .await
        .is_err()
        || s.write_all(prefix.as_bytes()).await.is_err()
    {
        return;
    }
    let chunk = vec![b'z'; 1 << 20];
    let mut left = file_len;
    while left > 0 {
        let n = left.min(chunk.len());
        if s.write_all(&chunk[..n]).await.is_err() {
            return;
        }
        left -= n;
    }
    let _ = s.write_all(suffix.as_bytes()).await;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut sink)).await;
}

/// A real gateway process: 384 MiB of unsigned browser-form uploads (six at
/// once) leave its resident memory where it was.
#[tokio::test(flavor = "multi_thread")]
async fn unsigned_form_uploads_leave_gateway_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn_embedded(dir.path(), (AK, SK), &[], &[], std::process::Stdio::null());
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket().bucket("tenant-a").send().await.unwrap();
    let pid = gw.child.id();
    let before = rss_kib(pid);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    for _ in 0..2 {
        let sends: Vec<_> = (0..3)
            .map(|_| tokio::spawn(send_form(gw.addr.clone(), 64 << 20)))
            .collect();
        for s in sends {
            s.await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let after = rss_kib(pid);
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        peak < before + 48 * 1024,
        "RSS rose from {before} KiB to a peak of {peak} KiB ({after} KiB after)"
    );
    // Nothing stored, and the gateway still serves.
    assert!(!dir.path().join("data/tenant-a/big").exists());
    c.put_object()
        .bucket("tenant-a")
        .key("after")
        .body(ByteStream::from_static(b"ok"))
        .send()
        .await
        .unwrap();
}

// ---- finding 3: legacy and over-long signatures ------------------------------

/// A Signature Version 2 signature of `string_to_sign` with alice's secret.
fn sig_v2(string_to_sign: &str) -> String {
    use aws_lc_rs::hmac;
    use base64::Engine;
    let key = hmac::Key::new(
        hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        b"alice-secret-0123456789",
    );
    base64::engine::general_purpose::STANDARD
        .encode(hmac::sign(&key, string_to_sign.as_bytes()).as_ref())
}

#[tokio::test(flavor = "multi_thread")]
async fn signature_version_2_is_refused() {
    let t = Tenants::start().await;
    t.put("tenant-a", "v2.txt", b"secret").await;
    // A header-signed V2 PUT dated 2001 (V2 signs no payload: replayable
    // with any body).
    let date = "Mon, 01 Jan 2001 00:00:00 GMT";
    let sig = sig_v2(&format!("PUT\n\n\n{date}\n/tenant-a/replayed.txt"));
    let (status, body) = raw(
        t.gw.addr,
        &format!(
            "PUT /tenant-a/replayed.txt HTTP/1.1\r\nHost: x\r\nDate: {date}\r\nAuthorization: AWS alice:{sig}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        ),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "InvalidRequest"), "{body}");
    assert!(body.contains("AWS4-HMAC-SHA256"), "{body}");
    assert!(!t.stored("tenant-a", "replayed.txt"));
    // A presigned V2 URL valid until 2100.
    let expires = 4_102_444_800u64;
    let sig = sig_v2(&format!("GET\n\n\n{expires}\n/tenant-a/v2.txt"));
    let sig: String =
        percent_encoding::utf8_percent_encode(&sig, percent_encoding::NON_ALPHANUMERIC).to_string();
    let (status, body) = raw(
        t.gw.addr,
        &format!(
            "GET /tenant-a/v2.txt?AWSAccessKeyId=alice&Expires={expires}&Signature={sig} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "InvalidRequest"), "{body}");
    assert!(!body.contains("secret"));
    // Both were refused at the HTTP layer, before s3s or the provider.
    assert_eq!(t.gw.metrics.requests_of("refused", 400), 2);
}

/// A SigV4 presigned GET of /tenant-a/key for alice, signed at `at` and
/// valid for `expires`, as a raw request.
fn presigned_v4(
    addr: std::net::SocketAddr,
    key: &str,
    at: std::time::SystemTime,
    expires: Duration,
) -> String {
    use aws_sigv4::http_request::{
        SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
    };
    let identity = aws_credential_types::Credentials::new(
        "alice",
        "alice-secret-0123456789",
        None,
        None,
        "test",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(at)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let url = format!("http://{addr}/tenant-a/{key}");
    let host = addr.to_string();
    let signable = SignableRequest::new(
        "GET",
        &url,
        [("host", host.as_str())].into_iter(),
        SignableBody::UnsignedPayload,
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut req = http::Request::get(&url).body(()).unwrap();
    instructions.apply_to_request_http1x(&mut req);
    format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        req.uri().path_and_query().unwrap()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn presigned_urls_are_valid_for_at_most_seven_days() {
    let t = Tenants::start().await;
    t.put("tenant-a", "shared.txt", b"shared body").await;
    let now = std::time::SystemTime::now();
    let week = Duration::from_secs(604_800);
    // Exactly seven days: served.
    let (status, body) = raw(t.gw.addr, &presigned_v4(t.gw.addr, "shared.txt", now, week)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "shared body");
    // One second more (S3: AuthorizationQueryParametersError), or ten years.
    for expires in [
        week + Duration::from_secs(1),
        Duration::from_secs(315_360_000),
    ] {
        let (status, body) = raw(
            t.gw.addr,
            &presigned_v4(t.gw.addr, "shared.txt", now, expires),
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (400, "AuthorizationQueryParametersError"),
            "{expires:?}: {body}"
        );
    }
    // Expired: signed two hours ago for one hour.
    let (status, body) = raw(
        t.gw.addr,
        &presigned_v4(
            t.gw.addr,
            "shared.txt",
            now - Duration::from_secs(7200),
            Duration::from_secs(3600),
        ),
    )
    .await;
    assert_eq!((status, code(&body)), (403, "AccessDenied"), "{body}");
}

// ---- finding 4: keys escaping their bucket ---------------------------------

fn s3_code<E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug>(
    e: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> String {
    e.as_service_error()
        .and_then(|s| s.code())
        .map_or_else(|| format!("{e:?}"), str::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_cannot_escape_their_bucket_whatever_carries_them() {
    let t = Tenants::start().await;
    t.put("tenant-b", "payroll.csv", b"salaries").await;
    t.put("tenant-a", "mine", b"alice's").await;
    let alice = t.alice();
    let absolute = t.data.join("tenant-b/payroll.csv");
    let absolute = absolute.to_str().unwrap();
    assert!(absolute.starts_with('/'));
    // DeleteObjects body keys: the whole request is refused, so not even
    // alice's own key in it is deleted.
    for evil in [
        "../tenant-b/payroll.csv",
        "a/../../tenant-b/payroll.csv",
        absolute,
    ] {
        let objects = [evil, "mine"]
            .iter()
            .map(|k| {
                aws_sdk_s3::types::ObjectIdentifier::builder()
                    .key(*k)
                    .build()
                    .unwrap()
            })
            .collect();
        let r = alice
            .delete_objects()
            .bucket("tenant-a")
            .delete(
                aws_sdk_s3::types::Delete::builder()
                    .set_objects(Some(objects))
                    .build()
                    .unwrap(),
            )
            .send()
            .await;
        match r {
            Err(e) => assert_eq!(s3_code(&e), "InvalidArgument", "{evil}"),
            Ok(out) => panic!("{evil}: DeleteObjects answered {out:?}"),
        }
        assert!(t.stored("tenant-b", "payroll.csv"), "{evil}");
        assert!(t.stored("tenant-a", "mine"), "{evil}");
    }
    // A key starting with '/' in the path: an absolute path on s3s-fs.
    let planted = t.data.join("tenant-b/planted");
    let e = alice
        .put_object()
        .bucket("tenant-a")
        .key(planted.to_str().unwrap())
        .body(ByteStream::from_static(b"planted"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(s3_code(&e), "InvalidArgument");
    assert!(!planted.exists());
    let e = alice
        .create_multipart_upload()
        .bucket("tenant-a")
        .key(planted.to_str().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(s3_code(&e), "InvalidArgument");
    let e = alice
        .get_object()
        .bucket("tenant-a")
        .key(absolute)
        .send()
        .await
        .unwrap_err();
    assert_eq!(s3_code(&e), "InvalidArgument");
    // ... and as a copy source.
    let e = alice
        .copy_object()
        .bucket("tenant-a")
        .key("stolen")
        .copy_source(format!("tenant-a/{absolute}"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(s3_code(&e), "InvalidArgument");
    assert!(!t.stored("tenant-a", "stolen"));
    // Ordinary keys keep working, in DeleteObjects too.
    alice
        .delete_objects()
        .bucket("tenant-a")
        .delete(
            aws_sdk_s3::types::Delete::builder()
                .objects(
                    aws_sdk_s3::types::ObjectIdentifier::builder()
                        .key("mine")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(!t.stored("tenant-a", "mine"));
    assert!(t.stored("tenant-b", "payroll.csv"));
}

// ---- finding 7: ListBuckets ------------------------------------------------

async fn bucket_names(c: &Client) -> Vec<String> {
    let mut names: Vec<String> = c
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn list_buckets_shows_only_the_granted_buckets() {
    let t = Tenants::start().await;
    assert_eq!(bucket_names(&t.alice()).await, ["tenant-a"]);
    assert_eq!(bucket_names(&t.bob()).await, ["tenant-b"]);
    assert_eq!(
        bucket_names(&t.admin()).await,
        ["hr-layoffs-2027", "tenant-a", "tenant-b"]
    );
}

// ---- finding 11: upload ids ------------------------------------------------

/// The provider's upload id inside a sealgate `sg1.` id (FORMAT.md §Upload
/// ids): what a client can learn, or guess, of another tenant's upload.
fn provider_upload_id(id: &str) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id.strip_prefix("sg1.").unwrap())
        .unwrap();
    String::from_utf8(b[104 + 32..].to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_ids_are_authenticated_for_their_bucket_and_key() {
    let seen = gw_common::security::events();
    let t = Tenants::start().await;
    let (alice, bob) = (t.alice(), t.bob());
    let part = vec![7u8; 1000];
    let mut upload = gw_common::upload_parts(&bob, "tenant-b", "report.bin", &[&part])
        .await
        .unwrap();
    let bare = format!("sgu.{}", provider_upload_id(&upload.id));
    // alice, in her own bucket, presents bob's upload: bare, or his whole id.
    for id in [bare.as_str(), upload.id.as_str()] {
        let e = alice
            .list_parts()
            .bucket("tenant-a")
            .key("report.bin")
            .upload_id(id)
            .send()
            .await
            .unwrap_err();
        assert_eq!(s3_code(&e), "NoSuchUpload", "{id}");
        let e = alice
            .abort_multipart_upload()
            .bucket("tenant-a")
            .key("report.bin")
            .upload_id(id)
            .send()
            .await
            .unwrap_err();
        assert_eq!(s3_code(&e), "NoSuchUpload", "{id}");
    }
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|(ev, key)| ev == "bad_upload_id" && key == "report.bin"),
        "no bad_upload_id event"
    );
    // bob's own id for another key of his is refused too.
    let e = bob
        .list_parts()
        .bucket("tenant-b")
        .key("other.bin")
        .upload_id(&upload.id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(s3_code(&e), "NoSuchUpload");
    // The form ListMultipartUploads lists (authenticated under the store's
    // active key) works for bob's own upload and for nothing else.
    let store = sealgate::keys::KeyStore::load(&t._dir.path().join("keys")).unwrap();
    let provider_id = provider_upload_id(&upload.id);
    let listed_for = |bucket: &str, key: &str| {
        let name = sealgate::format::ObjectName { bucket, key };
        sealgate::format::upload_id::encode_listed(store.active(), name, &provider_id)
    };
    let own = listed_for("tenant-b", "report.bin");
    let listed = bob
        .list_parts()
        .bucket("tenant-b")
        .key("report.bin")
        .upload_id(&own)
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.parts().len(),
        1,
        "a listed id lists its upload's parts"
    );
    // alice cannot forge one for her bucket (she lacks the key), and bob's
    // does not work there.
    for id in [own.as_str(), listed_for("tenant-a", "other.bin").as_str()] {
        let e = alice
            .list_parts()
            .bucket("tenant-a")
            .key("report.bin")
            .upload_id(id)
            .send()
            .await
            .unwrap_err();
        assert_eq!(s3_code(&e), "NoSuchUpload", "{id}");
    }
    // bob's upload is untouched: he lists its part and completes it.
    let parts = bob
        .list_parts()
        .bucket("tenant-b")
        .key("report.bin")
        .upload_id(&upload.id)
        .send()
        .await
        .unwrap();
    assert_eq!(parts.parts().len(), 1);
    gw_common::complete_upload(&bob, "tenant-b", "report.bin", &upload)
        .await
        .unwrap();
    assert_eq!(
        gw_common::get_bytes(&bob, "tenant-b", "report.bin").await,
        part
    );
    // And he can still abort an upload of his own with its id.
    upload = gw_common::upload_parts(&bob, "tenant-b", "draft.bin", &[&part])
        .await
        .unwrap();
    bob.abort_multipart_upload()
        .bucket("tenant-b")
        .key("draft.bin")
        .upload_id(&upload.id)
        .send()
        .await
        .unwrap();
}
