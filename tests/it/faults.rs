//! Provider faults, through a fault-injecting HTTP proxy between sealgate
//! and a real s3s-fs (tests/it/gw_common/fault_proxy.rs).
//!
//! What must hold, case by case:
//! - a read whose provider answer is cut, corrupted or stalled ends in a
//!   client-visible error, never in short or wrong data taken as complete;
//! - a read that fails before any byte reached the client (error status,
//!   dropped answer, stalled headers) is retried with backoff and succeeds;
//! - an upload is never replayed by sealgate; interrupted at any point it
//!   leaves the previous object or the new one, whole — never a partial or
//!   mixed one — and the client's own retry succeeds;
//! - a multipart completion interrupted at each of its provider requests
//!   leaves no object or the whole one, and can be completed afterwards;
//! - sealgate keeps serving other requests throughout (a background reader
//!   verifies another object the whole time).

use crate::gw_common;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use gw_common::fault_proxy::{self, Fault, Faults, Rule};
use gw_common::security::events;
use gw_common::{
    AK, SK, Suite, client_for, client_no_retry, complete_upload, gateway_config_with, upload_part,
    upload_parts,
};
use sealgate::serve::{Options, Running, embedded, start};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const BUCKET: &str = "faults";
/// The gateway's provider read timeout in this test (seconds).
const READ_TIMEOUT: u64 = 3;

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed) ^ (i >> 16) as u8)
        .collect()
}

async fn read_all(c: &Client, key: &str) -> Result<Vec<u8>, String> {
    gw_common::try_get_bytes(c, BUCKET, key).await
}

/// Reads `key` within a generous bound, so a hang is a failure, not a
/// stuck test.
async fn read_bounded(c: &Client, key: &str) -> Result<Vec<u8>, String> {
    tokio::time::timeout(Duration::from_secs(60), read_all(c, key))
        .await
        .map_err(|_| "the read hung".to_owned())?
}

/// The read must succeed with exactly `want`.
async fn expect_data(c: &Client, key: &str, want: &[u8]) -> Result<u64, String> {
    let got = read_bounded(c, key).await?;
    if got != want {
        return Err(format!(
            "read {} bytes, not the {} written",
            got.len(),
            want.len()
        ));
    }
    Ok(want.len() as u64)
}

/// The read must fail (the client must not take it as complete).
async fn expect_failure(c: &Client, key: &str) -> Result<u64, String> {
    match read_bounded(c, key).await {
        Ok(v) => Err(format!(
            "a faulty read returned {} bytes as complete",
            v.len()
        )),
        Err(e) if e == "the read hung" => Err(e),
        Err(_) => Ok(0),
    }
}

/// The object must be one of `allowed`, whole, or absent when `absent_ok`.
async fn expect_one_of(
    c: &Client,
    key: &str,
    allowed: &[&[u8]],
    absent_ok: bool,
) -> Result<u64, String> {
    match read_bounded(c, key).await {
        Ok(v) if allowed.contains(&v.as_slice()) => Ok(v.len() as u64),
        Ok(v) => Err(format!(
            "a partial or mixed object ({} bytes) is visible",
            v.len()
        )),
        Err(e) if absent_ok && e.contains("NoSuchKey") => Ok(0),
        Err(e) => Err(format!("the object does not read back: {e}")),
    }
}

fn metric(gw: &Running, name: &str) -> u64 {
    gw.metrics
        .render()
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn put(c: &Client, key: &str, body: &[u8]) -> Result<(), String> {
    c.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

/// A gateway in front of s3s-fs through a fault-injecting proxy, with
/// another object read and verified the whole time (its own case at the
/// end of every test: "other requests served throughout").
struct Rig {
    _dir: tempfile::TempDir,
    gw: Running,
    faults: Arc<Faults>,
    c: Client,
    once: Client,
    suite: Suite,
    control_len: u64,
    stop: Arc<AtomicBool>,
    ok_reads: Arc<AtomicU64>,
    bad_reads: Arc<AtomicU64>,
    reader: tokio::task::JoinHandle<()>,
}

/// Each test is one group of cases; its summary line names the group
/// (tests/run.sh adds the groups up into the suite's one line).
async fn rig(suite: &'static str) -> Rig {
    events(); // capture security events from here on
    let dir = tempfile::tempdir().unwrap();
    let (uak, usk) = ("faults-up", "faults-up-secret-0123456789");
    let up = embedded::start(&dir.path().join("up"), uak, usk)
        .await
        .unwrap();
    let faults = Arc::new(Faults::default());
    let via = fault_proxy::start(up, faults.clone()).await;
    let cfg = gateway_config_with(
        dir.path(),
        via,
        (uak, usk),
        "",
        &format!("read_timeout_secs = {READ_TIMEOUT}\n"),
    );
    let gw = start(Options {
        config: Some(cfg),
        ..Default::default()
    })
    .await
    .unwrap();
    let endpoint = format!("http://{}", gw.addr);
    let c = client_for(endpoint.clone(), AK, SK);
    let once = client_no_retry(endpoint, AK, SK);
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    let suite = Suite::new(suite);

    // Another object is read and verified the whole time.
    let control = data(300_000, 9);
    put(&c, "control", &control).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok_reads, bad_reads) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let reader = {
        let (c, control, stop) = (c.clone(), control.clone(), stop.clone());
        let (ok_reads, bad_reads) = (ok_reads.clone(), bad_reads.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match read_all(&c, "control").await {
                    Ok(v) if v == control => ok_reads.fetch_add(1, Ordering::SeqCst),
                    _ => bad_reads.fetch_add(1, Ordering::SeqCst),
                };
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    Rig {
        _dir: dir,
        gw,
        faults,
        c,
        once,
        suite,
        control_len: control.len() as u64,
        stop,
        ok_reads,
        bad_reads,
        reader,
    }
}

impl Rig {
    /// The last case (the gateway served the other object throughout),
    /// then the summary line.
    async fn finish(mut self) {
        // Reads go on for a moment at least, however short the test.
        let until = std::time::Instant::now() + Duration::from_secs(60);
        while self.ok_reads.load(Ordering::SeqCst) <= 10
            && self.bad_reads.load(Ordering::SeqCst) == 0
            && std::time::Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop.store(true, Ordering::SeqCst);
        self.reader.await.unwrap();
        let (ok, bad) = (
            self.ok_reads.load(Ordering::SeqCst),
            self.bad_reads.load(Ordering::SeqCst),
        );
        self.suite.verified(ok * self.control_len);
        self.suite.record(
            "other requests served throughout",
            if bad == 0 && ok > 10 {
                Ok(0)
            } else {
                Err(format!(
                    "{ok} good and {bad} failed reads of another object"
                ))
            },
        );
        self.gw.shutdown().await;
        self.suite.finish();
    }
}

fn fired(f: &Faults) -> Result<(), String> {
    if f.all_fired() {
        Ok(())
    } else {
        Err("the fault never fired".to_owned())
    }
}

fn count_of(event: &str, key: &str) -> usize {
    let seen = events();
    let seen = seen.lock().unwrap();
    seen.iter().filter(|(e, k)| e == event && k == key).count()
}

fn count(key: &str) -> usize {
    count_of("integrity_failure", key)
}

fn decryption_failures(gw: &Running) -> u64 {
    metric(gw, "sealgate_decryption_failures_total")
}

/// A broken or stalled connection is the provider's network, not
/// tampering: its own event, and no integrity_failure incident.
fn transport_only(
    gw: &Running,
    key: &str,
    before: (usize, usize),
    failures: u64,
) -> Result<u64, String> {
    let mut waited = 0;
    while count_of("upstream_read_failed", key) <= before.1 && waited < 50 {
        std::thread::sleep(Duration::from_millis(20));
        waited += 1;
    }
    if count(key) != before.0 || decryption_failures(gw) != failures {
        Err("a connection failure was reported as integrity_failure".to_owned())
    } else if count_of("upstream_read_failed", key) <= before.1 {
        Err("no upstream_read_failed event for the object".to_owned())
    } else {
        Ok(0)
    }
}

// ---- reads of a single-part object ----
// Each test its own object key: security events are counted per key, and
// the tests of this binary share one process under plain `cargo test`.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_body_cut_mid_stream_is_a_client_error_and_upstream_read_failed() {
    let mut t = rig("provider faults [GET body cut]").await;
    let key = "faults-cut";
    let big = data(1_000_000, 1);
    put(&t.c, key, &big).await.unwrap();
    // Not an incident: never sent to the webhook.
    assert!(!sealgate::audit::webhook::INCIDENTS.contains(&"upstream_read_failed"));
    let before = (count(key), count_of("upstream_read_failed", key));
    let failures = decryption_failures(&t.gw);
    t.faults.next(
        "GET",
        &format!("/faults/{key}"),
        1,
        Fault::CutResponse(300_000),
    );
    let r = expect_failure(&t.c, key).await;
    t.suite.record(
        "GET body cut mid-stream -> client error + upstream_read_failed, no integrity_failure",
        r.and(fired(&t.faults).map(|_| 0))
            .and_then(|_| transport_only(&t.gw, key, before, failures)),
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_body_corrupted_is_a_client_error_and_integrity_failure() {
    let mut t = rig("provider faults [GET body corrupted]").await;
    let key = "faults-corrupt";
    let big = data(1_000_000, 1);
    put(&t.c, key, &big).await.unwrap();
    let reported = count(key);
    t.faults
        .next("GET", &format!("/faults/{key}"), 1, Fault::Corrupt(500_000));
    let r = expect_failure(&t.c, key).await.and_then(|n| {
        if count(key) > reported {
            Ok(n)
        } else {
            Err("no integrity_failure event for the object".into())
        }
    });
    t.suite.record(
        "GET body corrupted -> client error + integrity_failure event",
        r,
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_body_stall_is_aborted_after_the_read_timeout() {
    let mut t = rig("provider faults [GET body stalls]").await;
    let key = "faults-stall";
    let big = data(1_000_000, 1);
    put(&t.c, key, &big).await.unwrap();
    let before = (count(key), count_of("upstream_read_failed", key));
    let failures = decryption_failures(&t.gw);
    t.faults.next(
        "GET",
        &format!("/faults/{key}"),
        1,
        Fault::StallResponse(200_000),
    );
    let r = expect_failure(&t.c, key).await;
    t.suite.record(
        "GET body stalls -> aborted after the read timeout, upstream_read_failed",
        r.and_then(|_| transport_only(&t.gw, key, before, failures)),
    );
    t.finish().await;
}

/// Faults before any byte reached the client: retried (a delay just
/// waits), invisible to the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_faults_before_the_first_byte_are_retried() {
    let mut t = rig("provider faults [GET retried]").await;
    let key = "faults-retried";
    let big = data(1_000_000, 1);
    put(&t.c, key, &big).await.unwrap();
    let retries_before = metric(&t.gw, "sealgate_upstream_retries_total");
    for (what, fault, times) in [
        ("GET 503 SlowDown twice", Fault::Status(503, "SlowDown"), 2),
        (
            "GET 500 InternalError",
            Fault::Status(500, "InternalError"),
            1,
        ),
        ("GET answer dropped", Fault::DropResponse, 1),
        ("GET headers stall", Fault::StallHeaders, 1),
        ("GET delayed 1 s", Fault::Delay(Duration::from_secs(1)), 1),
    ] {
        t.faults
            .next("GET", &format!("/faults/{key}"), times, fault);
        let r = expect_data(&t.once, key, &big).await;
        t.suite.record(
            &format!("{what} -> correct data"),
            r.and_then(|n| fired(&t.faults).map(|()| n)),
        );
        t.faults.clear();
    }
    let retries = metric(&t.gw, "sealgate_upstream_retries_total") - retries_before;
    t.suite.record(
        "retries counted (2 + 1 + 1 + 1 expected)",
        if retries >= 5 {
            Ok(0)
        } else {
            Err(format!("{retries} retries counted"))
        },
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn head_and_list_faults_are_retried() {
    let mut t = rig("provider faults [HEAD and LIST retried]").await;
    let big = data(1_000_000, 1);
    put(&t.c, "big", &big).await.unwrap();
    t.faults.next(
        "HEAD",
        "/faults/big",
        1,
        Fault::Status(500, "InternalError"),
    );
    let r = t
        .once
        .head_object()
        .bucket(BUCKET)
        .key("big")
        .send()
        .await
        .map_err(|e| format!("{e:?}"))
        .and_then(|h| match h.content_length() {
            Some(1_000_000) => Ok(0),
            other => Err(format!("HEAD size {other:?}")),
        });
    t.suite.record("HEAD 500 -> retried, right size", r);
    t.faults
        .next("GET", "/faults?", 1, Fault::Status(503, "SlowDown"));
    let r = t
        .once
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))
        .and_then(|l| match l.key_count() {
            Some(n) if n >= 2 => Ok(0),
            n => Err(format!("listing has {n:?} keys")),
        });
    t.suite.record("LIST 503 -> retried, listing intact", r);
    t.faults.clear();
    t.finish().await;
}

// ---- reads of a multipart object ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multipart_get_cut_or_corrupted_is_a_client_error() {
    let mut t = rig("provider faults [multipart GET]").await;
    let (p1, p2) = (data(5 << 20, 3), data(1 << 20, 4));
    let whole = [p1.as_slice(), p2.as_slice()].concat();
    let u = upload_parts(&t.c, BUCKET, "mp", &[&p1, &p2]).await.unwrap();
    complete_upload(&t.c, BUCKET, "mp", &u).await.unwrap();
    // Header reads are short, so only the whole-object read reaches the
    // fault's offset; the rule stays armed for all of them.
    t.faults
        .next("GET", "/faults/mp", 20, Fault::CutResponse(5_500_000));
    let r = expect_failure(&t.c, "mp").await;
    t.faults.clear();
    t.suite.record("multipart GET body cut -> client error", r);
    t.faults
        .next("GET", "/faults/mp", 20, Fault::Corrupt(5_300_000));
    let r = expect_failure(&t.c, "mp").await;
    t.faults.clear();
    t.suite
        .record("multipart GET body corrupted -> client error", r);
    let r = expect_data(&t.c, "mp", &whole).await;
    t.suite
        .record("multipart GET without faults -> correct data", r);
    t.finish().await;
}

// ---- uploads ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_put_leaves_the_old_or_the_new_object_and_is_not_replayed() {
    let mut t = rig("provider faults [PUT interrupted]").await;
    let (c, once, faults) = (t.c.clone(), t.once.clone(), t.faults.clone());
    let old = data(1_000_000, 5);
    let new = data(1_000_000, 6);
    for (what, fault) in [
        ("PUT cut after 100 kB", Fault::CutRequest(100_000)),
        ("PUT cut before the body", Fault::CutRequest(0)),
        (
            "PUT cut at the last byte",
            Fault::CutRequest(old.len() + 100),
        ),
        (
            "PUT answer dropped after the provider stored it",
            Fault::DropResponse,
        ),
        ("PUT 503 SlowDown", Fault::Status(503, "SlowDown")),
        ("PUT 500 InternalError", Fault::Status(500, "InternalError")),
        (
            "PUT taken by the provider, never answered",
            Fault::SwallowThenStall,
        ),
    ] {
        let key = "upload";
        put(&c, key, &old).await.unwrap();
        let retries_before = metric(&t.gw, "sealgate_upstream_retries_total");
        faults.next("PUT", "/faults/upload", 1, fault);
        let first = tokio::time::timeout(Duration::from_secs(60), put(&once, key, &new)).await;
        let r = async {
            let first = first.map_err(|_| "the upload hung".to_owned())?;
            fired(&faults)?;
            if metric(&t.gw, "sealgate_upstream_retries_total") != retries_before {
                return Err("sealgate replayed the upload upstream".to_owned());
            }
            // Old or new, whole — whatever the outcome said.
            let allowed: &[&[u8]] = if first.is_ok() {
                &[&new]
            } else {
                &[&old, &new]
            };
            let mut n = expect_one_of(&c, key, allowed, false).await?;
            put(&c, key, &new).await?;
            n += expect_data(&c, key, &new).await?;
            Ok(n)
        }
        .await;
        t.suite
            .record(&format!("{what} -> old or new object, retry succeeds"), r);
        faults.clear();
    }
    t.finish().await;
}

/// An upload whose client went silent mid-body is covered by
/// tests/it/slow_clients.rs; a delayed provider is not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delayed_put_is_stored() {
    let mut t = rig("provider faults [PUT delayed]").await;
    let old = data(1_000_000, 5);
    t.faults.next(
        "PUT",
        "/faults/upload",
        1,
        Fault::Delay(Duration::from_secs(1)),
    );
    let r = match put(&t.once, "upload", &old).await {
        Ok(()) => expect_data(&t.c, "upload", &old).await,
        Err(e) => Err(e),
    };
    t.suite.record("PUT delayed 1 s -> stored", r);
    t.faults.clear();
    t.finish().await;
}

// ---- multipart: a part upload cut, then completed ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_part_upload_is_refused_and_its_retry_completes() {
    let mut t = rig("provider faults [UploadPart cut]").await;
    let (c, once, faults) = (t.c.clone(), t.once.clone(), t.faults.clone());
    let (q1, q2) = (data(5 << 20, 7), data(300_000, 8));
    let r = async {
        let mut u = upload_parts(&c, BUCKET, "mpu", &[&q1]).await?;
        faults.next("PUT", "/faults/mpu?", 1, Fault::CutRequest(1_000_000));
        let cut = upload_part(&once, BUCKET, "mpu", &mut u, 2, &q2).await;
        fired(&faults)?;
        if cut.is_ok() {
            return Err("a cut part upload was acknowledged".into());
        }
        upload_part(&c, BUCKET, "mpu", &mut u, 2, &q2).await?;
        complete_upload(&c, BUCKET, "mpu", &u).await?;
        expect_data(&c, "mpu", &[q1.as_slice(), q2.as_slice()].concat()).await
    }
    .await;
    faults.clear();
    t.suite
        .record("UploadPart cut -> refused; retried part completes", r);
    t.finish().await;
}

// ---- multipart completion interrupted at each provider request ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_completion_interrupted_at_each_provider_request_leaves_no_object_or_the_whole_one() {
    let mut t = rig("provider faults [CompleteMultipartUpload interrupted]").await;
    let (c, once, faults) = (t.c.clone(), t.once.clone(), t.faults.clone());
    // First learn which provider requests a completion makes.
    let (m1, m2) = (data(5 << 20, 10), data(1000, 11));
    let want = [m1.as_slice(), m2.as_slice()].concat();
    let u = upload_parts(&c, BUCKET, "steps", &[&m1, &m2])
        .await
        .unwrap();
    faults.take_log();
    complete_upload(&c, BUCKET, "steps", &u).await.unwrap();
    let steps: Vec<_> = faults
        .take_log()
        .into_iter()
        .filter(|s| s.target.starts_with("/faults/steps"))
        .collect();
    assert!(!steps.is_empty(), "a completion made no provider request");
    for (i, step) in steps.iter().enumerate() {
        for fault in [
            Fault::CutRequest(0),
            Fault::Status(500, "InternalError"),
            Fault::DropResponse,
        ] {
            let key = format!("steps-{i}-{}", format!("{fault:?}").len());
            let r = async {
                let u = upload_parts(&c, BUCKET, &key, &[&m1, &m2]).await?;
                faults.arm(Rule {
                    method: match step.method.as_str() {
                        "GET" => "GET",
                        "HEAD" => "HEAD",
                        "POST" => "POST",
                        "PUT" => "PUT",
                        _ => "DELETE",
                    },
                    contains: format!("/faults/{key}"),
                    skip: steps[..i]
                        .iter()
                        .filter(|s| s.method == step.method)
                        .count(),
                    times: 1,
                    fault,
                });
                let first = complete_upload(&once, BUCKET, &key, &u).await;
                fired(&faults)?;
                faults.clear();
                // No object, or the whole one: never part of it.
                let mut n = expect_one_of(&c, &key, &[&want], first.is_err()).await?;
                if first.is_err() {
                    // The client completes again: done, or already done.
                    match complete_upload(&c, BUCKET, &key, &u).await {
                        Ok(()) => {}
                        Err(e) if e.contains("NoSuchUpload") => {}
                        Err(e) => return Err(format!("completing again failed: {e}")),
                    }
                    n += expect_data(&c, &key, &want).await?;
                }
                Ok(n)
            }
            .await;
            faults.clear();
            t.suite.record(
                &format!(
                    "CompleteMultipartUpload, provider request {} of {} ({} {}) {fault:?}",
                    i + 1,
                    steps.len(),
                    step.method,
                    step.target
                        .split('?')
                        .nth(1)
                        .unwrap_or("")
                        .split('&')
                        .filter_map(|kv| kv.split('=').next())
                        .collect::<Vec<_>>()
                        .join("&")
                ),
                r,
            );
        }
    }
    t.finish().await;
}
