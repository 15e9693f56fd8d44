//! Records that authorise unencrypted storage or reads (`exception_used`,
//! `legacy_read`) against a real gateway process and a real s3s-fs
//! provider: written durably before what they authorise, refused (503, nothing
//! stored or served) when the audit log cannot take them, attached before
//! the listener opens; registry lines under a revoked key refused; legacy
//! reads only in buckets the configuration names (issue 14, finding 5).

use crate::gw_common;
use crate::gw_common::process::{Serving, bin, serve_command, start};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use chrono::Utc;
use gw_common::client_for;
use sealgate::keys::KeyStore;
use sealgate::policy::registry::{Allowance, Exception, Registry};
use sealgate::serve::embedded;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const UAK: &str = "ar-upstream";
const USK: &str = "ar-upstream-secret-0123";
const AK: &str = "ar-client";
const SK: &str = "ar-client-secret-0123";

fn exception(id: &str, bucket: &str, allows: Allowance) -> Exception {
    Exception {
        id: id.into(),
        approver: "CISO".into(),
        decision_ref: "minutes 2026-11-02 item 4".into(),
        reason: "test".into(),
        risk: "low".into(),
        classification: "public".into(),
        buckets: vec![bucket.into()],
        allows: vec![allows],
        domains: vec![],
        starts: Utc::now() - chrono::Duration::days(1),
        expires: Utc::now() + chrono::Duration::days(30),
    }
}

/// Key store and registry in `d`: EX-W (unencrypted-writes, `public-*`)
/// and EX-L (legacy-reads, every bucket).
fn setup(d: &Path) -> KeyStore {
    KeyStore::generate(&d.join("keys"), false).unwrap();
    let keys = KeyStore::load(&d.join("keys")).unwrap();
    let reg = d.join("exceptions.jsonl");
    Registry::register(
        &reg,
        &keys,
        exception("EX-W", "public-*", Allowance::UnencryptedWrites),
    )
    .unwrap();
    Registry::register(&reg, &keys, exception("EX-L", "*", Allowance::LegacyReads)).unwrap();
    keys
}

fn config(d: &Path, upstream: std::net::SocketAddr, listen: &str, extra: &str) -> PathBuf {
    let text = format!(
        "listen = \"{listen}\"\nadmin_listen = \"127.0.0.1:0\"\nkeys_dir = {:?}\n[upstream]\nendpoint = \"http://{upstream}\"\naccess_key = \"{UAK}\"\nsecret_key = \"{USK}\"\n[[credentials]]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n[policy]\nregistry = {:?}\n[[policy.passthrough]]\nbucket = \"public-site\"\nexception = \"EX-W\"\n{extra}",
        d.join("keys"),
        d.join("exceptions.jsonl")
    );
    let p = d.join("sealgate.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs `sealgate serve` (through `wrap`, e.g. `prlimit`), with the audit
/// log `d/audit.jsonl`; Ok once it listens, Err(stderr) when it exits.
fn serve(d: &Path, cfg: &Path, wrap: &[&str]) -> Result<Serving, String> {
    let mut cmd = serve_command(d, cfg, wrap);
    cmd.env("SEALGATE_LOG", "warn");
    start(cmd, true)
}

fn audit_lines(d: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(d.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn recorded(d: &Path, event: &str, key: &str) -> bool {
    audit_lines(d)
        .iter()
        .any(|l| l["event"]["event"] == event && l["event"]["key"] == key)
}

async fn ready(admin: &str) -> u16 {
    let url: http::Uri = format!("http://{admin}/health/ready").parse().unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    client.get(url).await.unwrap().status().as_u16()
}

fn verify_log(d: &Path) {
    let keys = KeyStore::load(&d.join("keys")).unwrap();
    sealgate::audit::verify(&d.join("audit.jsonl"), &keys).unwrap();
}

/// 5(a): a client that disconnects once its body is sent (before the
/// provider answers) still leaves the `exception_used` record of the
/// plaintext object the upload task goes on to store.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_disconnects_after_its_body_still_leaves_a_record() {
    use gw_common::fault_proxy::{self, Fault, Faults};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let up = embedded::start(&data, UAK, USK).await.unwrap();
    let faults = std::sync::Arc::new(Faults::default());
    let proxy = fault_proxy::start(up, faults.clone()).await;
    setup(d);
    let gw = serve(d, &config(d, proxy, "127.0.0.1:0", ""), &[]).unwrap();
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket()
        .bucket("public-site")
        .send()
        .await
        .unwrap();

    // The provider takes 1.5 s to answer; the client gives up after 300 ms.
    faults.next(
        "PUT",
        "/public-site/gone.html",
        1,
        Fault::Delay(Duration::from_millis(1500)),
    );
    let impatient = aws_sdk_s3::Client::from_conf(
        c.config()
            .to_builder()
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_millis(300))
                    .build(),
            )
            .build(),
    );
    let body = b"PLAINTEXT-GONE ".repeat(100);
    let r = impatient
        .put_object()
        .bucket("public-site")
        .key("gone.html")
        .body(ByteStream::from(body.clone()))
        .send()
        .await;
    assert!(r.is_err(), "the client was meant to give up: {r:?}");
    let stored = data.join("public-site/gone.html");
    let t = Instant::now();
    while !stored.exists() && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The upload outlived the request: the plaintext is at the provider ...
    assert_eq!(std::fs::read(&stored).unwrap(), body);
    // ... and so is its record.
    assert!(
        recorded(d, "exception_used", "gone.html"),
        "{:#?}",
        audit_lines(d)
    );
    drop(gw);
    verify_log(d);
}

/// 5(c): with the audit log unwritable (here: the process's file-size
/// limit reached, as on a full disk, partial last write included), every
/// unencrypted write and legacy read is refused with 503 and stores or
/// serves nothing, /health/ready is not ready, the file stays verifiable,
/// and once writable again the outage is recorded and service resumes.
#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_audit_log_refuses_what_it_would_authorise() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        panic!("needs prlimit (util-linux)");
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let up = embedded::start(&data, UAK, USK).await.unwrap();
    let keys = setup(d);
    // A log of about 16 KiB, then room for the start records and a few more.
    {
        let log = sealgate::audit::AuditLog::open(&d.join("audit.jsonl"), &keys).unwrap();
        while std::fs::metadata(d.join("audit.jsonl")).unwrap().len() < 16 * 1024 {
            let mut m = serde_json::Map::new();
            m.insert("event".into(), "filler".into());
            log.append(m).unwrap();
        }
    }
    let limit = std::fs::metadata(d.join("audit.jsonl")).unwrap().len() + 4000;
    let cfg = config(
        d,
        up,
        "127.0.0.1:0",
        "[[policy.legacy_reads]]\nbucket = \"private-site\"\nexception = \"EX-L\"\n",
    );
    // SIGXFSZ ignored (inherited through exec): writes past the limit fail
    // with EFBIG instead of killing the process.
    let fsize = format!("--fsize={limit}:unlimited");
    let gw = serve(
        d,
        &cfg,
        &[
            "bash",
            "-c",
            "trap '' XFSZ; exec prlimit \"$@\"",
            "prlimit",
            &fsize,
            "--",
        ],
    )
    .unwrap();
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    for b in ["public-site", "private-site"] {
        c.create_bucket().bucket(b).send().await.unwrap();
    }
    std::fs::write(data.join("private-site/legacy.txt"), b"LEGACY-PLAINTEXT").unwrap();

    let (mut ok, mut refused) = (Vec::new(), Vec::new());
    for i in 0..40 {
        let key = format!("page-{i}.html");
        let r = c
            .put_object()
            .bucket("public-site")
            .key(&key)
            .body(ByteStream::from(b"PLAINTEXT-PAGE".to_vec()))
            .send()
            .await;
        match r {
            Ok(_) => ok.push(key),
            Err(e) => {
                assert_eq!(e.code(), Some("ServiceUnavailable"), "{e:?}");
                refused.push(key)
            }
        }
    }
    assert!(refused.len() > 30, "{ok:?} {refused:?}");
    for k in &ok {
        assert!(recorded(d, "exception_used", k), "{k} stored unrecorded");
    }
    for k in &refused {
        assert!(!data.join("public-site").join(k).exists(), "{k} stored");
    }
    // Legacy plaintext is not served without its record.
    let e = c
        .get_object()
        .bucket("private-site")
        .key("legacy.txt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ServiceUnavailable"), "{e:?}");
    let admin = gw.admin.clone().unwrap();
    assert_eq!(ready(&admin).await, 503);
    // The failed (partial) appends were cut back: the log verifies.
    verify_log(d);

    // Writable again: ready within a few seconds, the outage recorded.
    let pid = gw.child.id().to_string();
    let st = Command::new("prlimit")
        .args(["--pid", &pid, "--fsize=unlimited:unlimited"])
        .status()
        .unwrap();
    assert!(st.success());
    let t = Instant::now();
    while ready(&admin).await != 200 {
        assert!(t.elapsed() < Duration::from_secs(10), "never ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.put_object()
        .bucket("public-site")
        .key("after.html")
        .body(ByteStream::from_static(b"after"))
        .send()
        .await
        .unwrap();
    let got = c
        .get_object()
        .bucket("private-site")
        .key("legacy.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().to_vec(),
        b"LEGACY-PLAINTEXT"
    );
    drop(gw);
    verify_log(d);
    assert!(recorded(d, "exception_used", "after.html"));
    assert!(recorded(d, "legacy_read", "legacy.txt"));
    let lines = audit_lines(d);
    let rec = lines
        .iter()
        .find(|l| l["event"]["event"] == "audit_log_recovered")
        .expect("outage recorded");
    assert!(rec["event"]["failed_appends"].as_u64().unwrap() >= refused.len() as u64);

    // A crash mid-append leaves a torn last line: the next start cuts it
    // off and records that it did, instead of refusing to start.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(d.join("audit.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"seq\":999,\"time\":\"2026-12-01T").unwrap();
    drop(f);
    let gw = serve(d, &cfg, &[]).expect("starts on a torn last line");
    drop(gw);
    verify_log(d);
    assert!(
        audit_lines(d)
            .iter()
            .any(|l| l["event"]["event"] == "audit_log_repaired"
                && l["event"]["removed_bytes"] == 30),
        "repair recorded"
    );
}

/// A valid audit log of `n` filler events (written in batches).
fn big_log(path: &Path, keys: &KeyStore, n: u64) {
    let log = sealgate::audit::AuditLog::open(path, keys).unwrap();
    let mut left = n;
    while left > 0 {
        let batch = left.min(10_000);
        let events = (0..batch)
            .map(|_| {
                let mut m = serde_json::Map::new();
                m.insert("event".into(), "filler".into());
                m.insert("note".into(), "a line of an old log, long enough to look like a real one: bucket, key, access key and cause".into());
                m
            })
            .collect();
        log.append_all(events).unwrap();
        left -= batch;
    }
}

/// 5(b): with a large audit log, nothing is served before the log is
/// verified and attached: every write answered 200 from the first moment
/// the port accepts has its record. The log is read with bounded memory.
#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_served_before_the_audit_log_is_attached() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let up = embedded::start(&data, UAK, USK).await.unwrap();
    let keys = setup(d);
    std::fs::create_dir_all(data.join("public-site")).unwrap();
    big_log(&d.join("audit.jsonl"), &keys, 150_000);
    let size = std::fs::metadata(d.join("audit.jsonl")).unwrap().len();
    assert!(size > 40 << 20, "{size}");
    verify_log(d);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let cfg = config(d, up, &listen, "");
    let c = aws_sdk_s3::Client::from_conf(
        client_for(format!("http://{listen}"), AK, SK)
            .config()
            .to_builder()
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build(),
    );
    let hammer = tokio::spawn(async move {
        let mut ok = Vec::new();
        let t = Instant::now();
        let mut i = 0;
        while t.elapsed() < Duration::from_secs(60) && ok.len() < 20 {
            i += 1;
            let key = format!("early-{i}");
            let r = c
                .put_object()
                .bucket("public-site")
                .key(&key)
                .body(ByteStream::from_static(b"EARLY"))
                .send()
                .await;
            match r {
                Ok(_) => ok.push(key),
                Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
        ok
    });
    let gw = serve(d, &cfg, &[]).unwrap();
    let ok = hammer.await.unwrap();
    assert!(!ok.is_empty());
    // Peak memory stays well below the log's size (it is streamed).
    let status = std::fs::read_to_string(format!("/proc/{}/status", gw.child.id())).unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    drop(gw);
    let lines = audit_lines(d);
    for k in &ok {
        assert!(
            lines
                .iter()
                .any(|l| l["event"]["event"] == "exception_used" && l["event"]["key"] == *k),
            "{k} answered 200 with no record (of {} early writes)",
            ok.len()
        );
    }
    assert!(
        hwm_kib * 1024 < size,
        "peak RSS {hwm_kib} KiB for a log of {size} bytes"
    );
}

/// 5(d): a line authenticated by a key revoked before its time (appended
/// by whoever still holds that key) is refused: the registry does not
/// load, the gateway does not start on it, `exception verify` names it.
#[tokio::test(flavor = "multi_thread")]
async fn registry_lines_under_a_revoked_key_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let up = embedded::start(&d.join("data"), UAK, USK).await.unwrap();
    let kd = d.join("keys");
    let old = KeyStore::generate(&kd, false).unwrap();
    // The old key's holder keeps a copy of it.
    let stolen = d.join("stolen-keys");
    std::fs::create_dir_all(&stolen).unwrap();
    for e in std::fs::read_dir(&kd).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, stolen.join(p.file_name().unwrap())).unwrap();
    }
    let reg = d.join("exceptions.jsonl");
    let keys = KeyStore::load(&kd).unwrap();
    Registry::register(
        &reg,
        &keys,
        exception("EX-W", "public-*", Allowance::UnencryptedWrites),
    )
    .unwrap();
    KeyStore::rotate(&kd).unwrap();
    // Revocation times are kept to the second.
    std::thread::sleep(Duration::from_millis(1100));
    KeyStore::revoke(
        &kd,
        old,
        &sealgate::keys::Revocation {
            at: Utc::now(),
            reason: "holder left".into(),
        },
    )
    .unwrap();
    let cfg = config(d, up, "127.0.0.1:0", "");
    drop(serve(d, &cfg, &[]).expect("starts before the forged line"));

    // After the revocation, the old key's holder appends an exception.
    let thief = KeyStore::load(&stolen).unwrap();
    Registry::register(
        &reg,
        &thief,
        exception("EX-EVIL", "*", Allowance::LegacyReads),
    )
    .unwrap();

    let keys = KeyStore::load(&kd).unwrap();
    let err = Registry::load(&reg, &keys).unwrap_err().to_string();
    assert!(
        err.contains("line 2") && err.contains("revoked") && err.contains(&old.to_string()),
        "{err}"
    );
    let err = serve(d, &cfg, &[]).expect_err("must not start");
    assert!(err.contains("line 2") && err.contains("revoked"), "{err}");
    let out = Command::new(bin())
        .args(["exception", "verify"])
        .env("SEALGATE_KEYS_DIR", &kd)
        .env("SEALGATE_REGISTRY", &reg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("revoked"));
}

/// Legacy reads need the bucket named in the configuration: an active
/// legacy-reads exception for every bucket in the registry alone does not
/// let the provider's plaintext through.
#[tokio::test(flavor = "multi_thread")]
async fn a_registry_line_alone_does_not_downgrade_reads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let up = embedded::start(&data, UAK, USK).await.unwrap();
    setup(d); // EX-L allows legacy-reads in "*"
    let gw = serve(d, &config(d, up, "127.0.0.1:0", ""), &[]).unwrap();
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket().bucket("vault").send().await.unwrap();
    c.put_object()
        .bucket("vault")
        .key("doc")
        .body(ByteStream::from_static(b"real secret"))
        .send()
        .await
        .unwrap();
    // The provider replaces the sealed object with plaintext of its own.
    std::fs::write(data.join("vault/doc"), b"PROVIDER-CHOSEN").unwrap();
    std::fs::write(data.join("vault/planted"), b"PROVIDER-PLANTED").unwrap();
    for k in ["doc", "planted"] {
        let e = c
            .get_object()
            .bucket("vault")
            .key(k)
            .send()
            .await
            .unwrap_err();
        assert_ne!(e.code(), None, "{e:?}");
        let head = c.head_object().bucket("vault").key(k).send().await;
        assert!(head.is_err(), "{head:?}");
    }
    drop(gw);
    assert!(!recorded(d, "legacy_read", "planted"));

    // Named in the configuration: read, and recorded.
    let cfg = config(
        d,
        up,
        "127.0.0.1:0",
        "[[policy.legacy_reads]]\nbucket = \"vault\"\nexception = \"EX-L\"\n",
    );
    let gw = serve(d, &cfg, &[]).unwrap();
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    let got = c
        .get_object()
        .bucket("vault")
        .key("planted")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().to_vec(),
        b"PROVIDER-PLANTED"
    );
    drop(gw);
    assert!(recorded(d, "legacy_read", "planted"));
    assert!(
        audit_lines(d)
            .iter()
            .any(|l| l["event"]["event"] == "exception_in_force"
                && l["event"]["scope"] == "legacy-reads"
                && l["event"]["bucket"] == "vault")
    );
    // A rule naming an exception that does not allow legacy reads: no start.
    let cfg = config(
        d,
        up,
        "127.0.0.1:0",
        "[[policy.legacy_reads]]\nbucket = \"vault\"\nexception = \"EX-W\"\n",
    );
    let err = serve(d, &cfg, &[]).expect_err("must not start");
    assert!(err.contains("does not allow legacy-reads"), "{err}");
}

/// 12: a client triggering security events at request rate (garbage upload
/// ids) is rate-limited per access key: the events over the limit are
/// counted and summarised in the log, none silently lost.
#[tokio::test(flavor = "multi_thread")]
async fn client_triggered_events_are_rate_limited_and_summarised() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let up = embedded::start(&d.join("data"), UAK, USK).await.unwrap();
    setup(d);
    let gw = serve(d, &config(d, up, "127.0.0.1:0", ""), &[]).unwrap();
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket().bucket("noisy").send().await.unwrap();
    let n = 200u64;
    for i in 0..n {
        let e = c
            .upload_part()
            .bucket("noisy")
            .key("k")
            .part_number(1)
            .upload_id(format!("sg1.garbage{i}"))
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("NoSuchUpload"), "{e:?}");
    }
    // Summaries are written once a second.
    let t = Instant::now();
    let (written, summarised) = loop {
        let lines = audit_lines(d);
        let written = lines
            .iter()
            .filter(|l| l["event"]["event"] == "bad_upload_id")
            .count() as u64;
        let summarised: u64 = lines
            .iter()
            .filter(|l| {
                l["event"]["event"] == "audit_events_suppressed"
                    && l["event"]["suppressed_event"] == "bad_upload_id"
                    && l["event"]["access_key"] == AK
            })
            .map(|l| l["event"]["count"].as_u64().unwrap())
            .sum();
        if written + summarised >= n || t.elapsed() > Duration::from_secs(10) {
            break (written, summarised);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(written < n * 3 / 4, "{written} of {n} written one by one");
    assert_eq!(written + summarised, n);
    let metrics = {
        let url: http::Uri = format!("http://{}/metrics", gw.admin.clone().unwrap())
            .parse()
            .unwrap();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Empty<bytes::Bytes>>();
        let r = client.get(url).await.unwrap();
        use http_body_util::BodyExt;
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    };
    assert!(
        metrics.contains("event=\"audit_suppressed\""),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("security"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(gw);
    verify_log(d);
}

/// A passthrough PutObject forwards If-None-Match: * (found dropped by an
/// attack review): the conditional write does not overwrite.
#[tokio::test(flavor = "multi_thread")]
async fn passthrough_put_keeps_its_write_conditions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let up = embedded::start(&d.join("data"), UAK, USK).await.unwrap();
    setup(d);
    let gw = serve(d, &config(d, up, "127.0.0.1:0", ""), &[]).unwrap();
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket()
        .bucket("public-site")
        .send()
        .await
        .unwrap();
    c.put_object()
        .bucket("public-site")
        .key("index.html")
        .body(ByteStream::from_static(b"first"))
        .send()
        .await
        .unwrap();
    let r = c
        .put_object()
        .bucket("public-site")
        .key("index.html")
        .if_none_match("*")
        .body(ByteStream::from_static(b"second"))
        .send()
        .await;
    let body = c
        .get_object()
        .bucket("public-site")
        .key("index.html")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert!(
        r.is_err() && &body[..] == b"first",
        "If-None-Match: * ignored: put answered {:?}, object now {:?}",
        r.map(|_| "200"),
        String::from_utf8_lossy(&body)
    );
}

/// CompleteMultipartUpload honours If-Match (found dropped by an attack
/// review): a completion conditional on an ETag the object no longer has
/// is refused and the object stays.
#[tokio::test(flavor = "multi_thread")]
async fn complete_multipart_upload_honours_if_match() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let up = embedded::start(&d.join("data"), UAK, USK).await.unwrap();
    setup(d);
    let gw = serve(d, &config(d, up, "127.0.0.1:0", ""), &[]).unwrap();
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket().bucket("enc").send().await.unwrap();
    c.put_object()
        .bucket("enc")
        .key("k")
        .body(ByteStream::from_static(b"current"))
        .send()
        .await
        .unwrap();
    let up = c
        .create_multipart_upload()
        .bucket("enc")
        .key("k")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap().to_owned();
    let p = c
        .upload_part()
        .bucket("enc")
        .key("k")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"replacement"))
        .send()
        .await
        .unwrap();
    let r = c
        .complete_multipart_upload()
        .bucket("enc")
        .key("k")
        .upload_id(&id)
        .if_match("\"0123456789abcdef0123456789abcdef-1\"")
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .parts(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(1)
                        .e_tag(p.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await;
    let body = c
        .get_object()
        .bucket("enc")
        .key("k")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert!(
        r.is_err() && &body[..] == b"current",
        "If-Match ignored: complete answered {:?}, object now {:?}",
        r.map(|_| "200"),
        String::from_utf8_lossy(&body)
    );
}
