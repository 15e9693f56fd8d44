//! Passthrough buckets under registered exceptions, with the real binary:
//! plaintext reaches the provider only in a bucket whose exception is in
//! force, every such write leaves an audit record, and a revoked or expired
//! exception stops passthrough at the next write.

use crate::gw_common;
use crate::gw_common::process::{Serving, sealgate, serve_command, start};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use gw_common::client_for;
use sealgate::serve::embedded;
use std::path::Path;
use std::process::Command;

const UAK: &str = "pt-upstream";
const USK: &str = "pt-upstream-secret-0123";
const AK: &str = "pt-client";
const SK: &str = "pt-client-secret-0123";

fn register(d: &Path, id: &str, bucket: &str, expires: &str) {
    let (ok, out) = sealgate(
        d,
        &[
            "exception",
            "register",
            "--id",
            id,
            "--approver",
            "CISO",
            "--decision",
            "minutes 2026-11-02 item 4",
            "--reason",
            "public assets",
            "--risk",
            "low",
            "--classification",
            "public",
            "--bucket",
            bucket,
            "--allow",
            "unencrypted-writes",
            "--starts",
            "2026-01-01",
            "--expires",
            expires,
        ],
    );
    assert!(ok, "{out}");
}

fn config(d: &Path, upstream: std::net::SocketAddr, rules: &[(&str, &str)]) -> std::path::PathBuf {
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\nkeys_dir = {:?}\n[upstream]\nendpoint = \"http://{upstream}\"\naccess_key = \"{UAK}\"\nsecret_key = \"{USK}\"\n[[credentials]]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n[policy]\nregistry = {:?}\n",
        d.join("keys"),
        d.join("exceptions.jsonl")
    );
    for (b, e) in rules {
        text += &format!("[[policy.passthrough]]\nbucket = \"{b}\"\nexception = \"{e}\"\n");
    }
    let p = d.join("sealgate.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Starts the gateway (exceptions re-checked every second); Err(its
/// output) when it refuses.
fn serve(d: &Path, cfg: &Path) -> Result<Serving, String> {
    let mut cmd = serve_command(d, cfg, &[]);
    cmd.env("SEALGATE_EXCEPTION_WATCH_SECS", "1");
    start(cmd, false)
}

#[tokio::test(flavor = "multi_thread")]
async fn passthrough_only_under_an_exception_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let up = embedded::start(&data, UAK, USK).await.unwrap();
    assert!(sealgate(d, &["keys", "generate"]).0);

    // Refused at start: unknown exception, one that does not cover the bucket.
    let err = serve(d, &config(d, up, &[("public-site", "EX-404")])).unwrap_err();
    assert!(
        err.contains("EX-404") && err.contains("not in the registry"),
        "{err}"
    );
    register(d, "EX-1", "public-*", "2099-01-01");
    let err = serve(d, &config(d, up, &[("secret-site", "EX-1")])).unwrap_err();
    assert!(err.contains("does not cover bucket"), "{err}");

    let gw = serve(d, &config(d, up, &[("public-site", "EX-1")])).unwrap();
    let addr = gw.addr.clone();
    let c = client_for(format!("http://{addr}"), AK, SK);
    for b in ["public-site", "private-site"] {
        c.create_bucket().bucket(b).send().await.unwrap();
    }
    let body = b"PLAINTEXT-PUBLIC-PAGE ".repeat(1000);
    let mut request_ids = Vec::new();
    for b in ["public-site", "private-site"] {
        let out = c
            .put_object()
            .bucket(b)
            .key("index.html")
            .content_type("text/html")
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        use aws_sdk_s3::operation::RequestId;
        request_ids.push(out.request_id().expect("x-amz-request-id").to_owned());
    }
    // Byte for byte plaintext in the passthrough bucket; never in the other.
    assert_eq!(
        std::fs::read(data.join("public-site/index.html")).unwrap(),
        body
    );
    let sealed = std::fs::read(data.join("private-site/index.html")).unwrap();
    assert!(!sealed.windows(21).any(|w| w == b"PLAINTEXT-PUBLIC-PAGE"));
    for b in ["public-site", "private-site"] {
        let got = c
            .get_object()
            .bucket(b)
            .key("index.html")
            .send()
            .await
            .unwrap();
        assert_eq!(got.content_length(), Some(body.len() as i64));
        assert_eq!(got.body.collect().await.unwrap().to_vec(), body, "{b}");
        let l = c.list_objects_v2().bucket(b).send().await.unwrap();
        assert_eq!(l.contents()[0].size(), Some(body.len() as i64), "{b}");
    }
    // Not supported in passthrough buckets: refused, not done another way.
    let mp = c
        .create_multipart_upload()
        .bucket("public-site")
        .key("big")
        .send()
        .await;
    assert_eq!(mp.unwrap_err().code(), Some("NotImplemented"));

    // Data stored before the gateway (not in its format) in an encrypted
    // bucket: refused, until an exception allows legacy reads there.
    std::fs::write(
        data.join("private-site/legacy.txt"),
        b"written before sealgate",
    )
    .unwrap();
    let err = c
        .get_object()
        .bucket("private-site")
        .key("legacy.txt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidObjectState"), "{err:?}");
    let (ok, out) = sealgate(
        d,
        &[
            "exception",
            "register",
            "--id",
            "EX-L",
            "--approver",
            "CISO",
            "--decision",
            "migration plan 7",
            "--reason",
            "read archive during migration",
            "--risk",
            "medium",
            "--classification",
            "internal",
            "--bucket",
            "private-site",
            "--allow",
            "legacy-reads",
            "--starts",
            "2026-01-01",
            "--expires",
            "2099-01-01",
        ],
    );
    assert!(ok, "{out}");
    // The registry line alone does not downgrade reads: the configuration
    // must name the bucket under [[policy.legacy_reads]] too.
    let err = c
        .get_object()
        .bucket("private-site")
        .key("legacy.txt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidObjectState"), "{err:?}");
    let cfg = config(d, up, &[("public-site", "EX-1")]);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text += "[[policy.legacy_reads]]\nbucket = \"private-site\"\nexception = \"EX-L\"\n";
    std::fs::write(&cfg, text).unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &gw.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let t = std::time::Instant::now();
    let got = loop {
        match c
            .get_object()
            .bucket("private-site")
            .key("legacy.txt")
            .send()
            .await
        {
            Ok(g) => break g,
            Err(e) if t.elapsed() < std::time::Duration::from_secs(10) => {
                assert_eq!(e.code(), Some("InvalidObjectState"), "{e:?}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => panic!("legacy read never allowed: {e:?}"),
        }
    };
    assert_eq!(
        got.body.collect().await.unwrap().to_vec(),
        b"written before sealgate"
    );

    // Revoked while running: the next write is refused, naming the exception.
    let (ok, out) = sealgate(
        d,
        &[
            "exception",
            "revoke",
            "EX-1",
            "--by",
            "DPO",
            "--reason",
            "no longer public",
        ],
    );
    assert!(ok, "{out}");
    let err = c
        .put_object()
        .bucket("public-site")
        .key("late.html")
        .body(ByteStream::from_static(b"late"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"));
    assert!(
        err.message().unwrap_or("").contains("EX-1")
            && err.message().unwrap_or("").contains("revoked"),
        "{err:?}"
    );
    assert!(!data.join("public-site/late.html").exists());
    gw.stop();

    // ... and the gateway does not start on it any more.
    let err = serve(d, &config(d, up, &[("public-site", "EX-1")])).unwrap_err();
    assert!(err.contains("EX-1") && err.contains("revoked"), "{err}");

    // The audit log holds the formal record, the use and the denial.
    let audit = std::fs::read_to_string(d.join("audit.jsonl")).unwrap();
    for want in [
        "exception_in_force",
        "exception_used",
        "exception_denied",
        "legacy_read_denied",
        "\"legacy_read\"",
    ] {
        assert!(audit.contains(want), "{want} missing:\n{audit}");
    }
    // The usage record cites the request id the client got.
    assert!(
        audit.lines().any(|l| l.contains("exception_used")
            && l.contains("index.html")
            && l.contains(AK)
            && l.contains(&format!("\"request_id\":\"{}\"", request_ids[0]))),
        "{request_ids:?}\n{audit}"
    );
    let (ok, out) = sealgate(
        d,
        &[
            "audit",
            "verify",
            "--audit-log",
            d.join("audit.jsonl").to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}");

    // The auditor's report: state and use of each exception.
    let audit_path = d.join("audit.jsonl");
    let (ok, md) = sealgate(
        d,
        &[
            "exception",
            "report",
            "--audit-log",
            audit_path.to_str().unwrap(),
        ],
    );
    assert!(ok, "{md}");
    let row = md.lines().find(|l| l.starts_with("| EX-1 |")).expect(&md);
    assert!(
        row.contains("revoked") && row.contains("| 1 | 22000 | 1 |"),
        "{row}"
    );
    let (ok, html) = sealgate(
        d,
        &[
            "exception",
            "report",
            "--format",
            "html",
            "--audit-log",
            audit_path.to_str().unwrap(),
        ],
    );
    assert!(
        ok && html.contains("<svg") && html.contains("EX-1"),
        "{html}"
    );

    // A tampered registry stops the gateway from starting.
    register(d, "EX-2", "public-*", "2099-01-01");
    let reg = std::fs::read_to_string(d.join("exceptions.jsonl")).unwrap();
    std::fs::write(
        d.join("exceptions.jsonl"),
        reg.replace("2099-01-01", "2199-01-01"),
    )
    .unwrap();
    let err = serve(d, &config(d, up, &[("public-site", "EX-2")])).unwrap_err();
    assert!(
        err.contains("line") && err.contains("authentication failed"),
        "{err}"
    );

    // Restoring the registry from its (intact) backup makes it usable again.
    std::fs::write(d.join("exceptions.jsonl"), &reg).unwrap();

    // An exception that expires while the gateway runs stops passthrough then.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    register(d, "EX-3", "fleeting-*", &soon);
    let gw = serve(d, &config(d, up, &[("fleeting-site", "EX-3")])).unwrap();
    let addr = gw.addr.clone();
    let c = client_for(format!("http://{addr}"), AK, SK);
    c.create_bucket()
        .bucket("fleeting-site")
        .send()
        .await
        .unwrap();
    c.put_object()
        .bucket("fleeting-site")
        .key("a")
        .body(ByteStream::from_static(b"in time"))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let err = c
        .put_object()
        .bucket("fleeting-site")
        .key("b")
        .body(ByteStream::from_static(b"too late"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"));
    assert!(err.message().unwrap_or("").contains("expired"), "{err:?}");
    assert!(!data.join("fleeting-site/b").exists());
    gw.stop();
    // The moment it lapsed was recorded, not only the refused write.
    let audit = std::fs::read_to_string(d.join("audit.jsonl")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("exception_lapsed") && l.contains("EX-3") && l.contains("expired")),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_bucket_policy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let up = embedded::start(&data, UAK, USK).await.unwrap();
    assert!(sealgate(d, &["keys", "generate"]).0);
    register(d, "EX-R", "public-*", "2099-01-01");
    let cfg = config(d, up, &[("public-site", "EX-R")]);
    let gw = serve(d, &cfg).unwrap();
    let addr = gw.addr.clone();
    let c = client_for(format!("http://{addr}"), AK, SK);
    c.create_bucket()
        .bucket("public-site")
        .send()
        .await
        .unwrap();
    let put = |key: &'static str| {
        let c = c.clone();
        async move {
            c.put_object()
                .bucket("public-site")
                .key(key)
                .body(ByteStream::from_static(b"PLAINTEXT-RELOAD-CHECK"))
                .send()
                .await
                .unwrap();
        }
    };
    let hup = |pid: u32| {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
    };
    put("before").await;
    assert_eq!(
        std::fs::read(data.join("public-site/before")).unwrap(),
        b"PLAINTEXT-RELOAD-CHECK"
    );

    // The rule is removed: after SIGHUP the bucket is encrypted again.
    config(d, up, &[]);
    hup(gw.child.id());
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    put("after").await;
    let stored = std::fs::read(data.join("public-site/after")).unwrap();
    assert!(
        !stored.windows(9).any(|w| w == b"PLAINTEXT"),
        "written in plaintext after reload"
    );

    // A configuration that would not start is refused; the policy in force stays.
    config(d, up, &[("public-site", "EX-NOPE")]);
    hup(gw.child.id());
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    put("still").await;
    let stored = std::fs::read(data.join("public-site/still")).unwrap();
    assert!(!stored.windows(9).any(|w| w == b"PLAINTEXT"));
    gw.stop();
    let audit = std::fs::read_to_string(d.join("audit.jsonl")).unwrap();
    assert!(
        audit.contains("policy_reloaded")
            && audit.contains("policy_reload_failed")
            && audit.contains("EX-NOPE"),
        "{audit}"
    );
}

/// GetObjectAttributes of a plaintext object in a passthrough bucket is
/// the provider's to answer (sealgate forwards it); of a sealed object it
/// is sealgate's, and the provider is never asked.
#[tokio::test(flavor = "multi_thread")]
async fn object_attributes_of_passthrough_objects_come_from_the_provider() {
    use gw_common::fault_proxy::{self, Fault, Faults};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let up = embedded::start(&d.join("data"), UAK, USK).await.unwrap();
    let faults = Arc::new(Faults::default());
    let proxy = fault_proxy::start(up, faults.clone()).await;
    assert!(sealgate(d, &["keys", "generate"]).0);
    register(d, "EX-A", "public-*", "2099-01-01");
    let gw = serve(d, &config(d, proxy, &[("public-site", "EX-A")])).unwrap();
    let addr = gw.addr.clone();
    let c = client_for(format!("http://{addr}"), AK, SK);
    for b in ["public-site", "private-site"] {
        c.create_bucket().bucket(b).send().await.unwrap();
        c.put_object()
            .bucket(b)
            .key("page")
            .body(ByteStream::from_static(b"twelve bytes"))
            .send()
            .await
            .unwrap();
    }
    faults.take_log();
    let attrs = |b: &str| {
        c.get_object_attributes()
            .bucket(b)
            .key("page")
            .object_attributes(aws_sdk_s3::types::ObjectAttributes::ObjectSize)
            .send()
    };
    // The provider's own answer comes back (s3s-fs has no
    // GetObjectAttributes: here an error the proxy injects stands for it).
    faults.next(
        "GET",
        "/public-site/page?attributes",
        1,
        Fault::Status(400, "InvalidArgument"),
    );
    let err = attrs("public-site").await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidArgument"), "{err:?}");
    assert!(faults.all_fired(), "not forwarded to the provider");
    // A sealed object: sealgate answers, and never forwards the request.
    let a = attrs("private-site").await.unwrap();
    assert_eq!(a.object_size(), Some(12));
    let log = faults.take_log();
    assert!(
        !log.iter()
            .any(|s| s.target.contains("private-site/page?attributes")),
        "{log:?}"
    );
    gw.stop();
}
