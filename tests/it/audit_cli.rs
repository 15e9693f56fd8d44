//! The audit log end to end: the real binary with `--audit-log`, a stored
//! object altered at the provider, the GET aborted, the incident recorded in
//! the hash-chained log, and `sealgate audit verify` checking it.

use crate::gw_common;

use aws_sdk_s3::primitives::ByteStream;
use gw_common::{client_for, get_bytes, spawn_embedded};
use std::process::{Command, Stdio};

#[tokio::test(flavor = "multi_thread")]
async fn tampering_at_the_provider_is_recorded_in_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let audit = d.join("audit.jsonl");
    let (hook, received) = gw_common::webhook::receiver("incidents").await;
    let gw = spawn_embedded(
        d,
        ("audit-ak", "audit-secret-key-0123"),
        &[
            "--audit-log",
            audit.to_str().unwrap(),
            "--incident-webhook",
            &hook,
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[("SEALGATE_AUTH_FAILURE_THRESHOLD", "3")],
        Stdio::null(),
    );
    let (addr, admin) = (gw.addr.clone(), gw.admin.clone().unwrap());
    let c = client_for(
        format!("http://{addr}"),
        "audit-ak",
        "audit-secret-key-0123",
    );
    c.create_bucket().bucket("audited").send().await.unwrap();
    c.put_object()
        .bucket("audited")
        .key("ledger")
        .body(ByteStream::from(vec![7u8; 200_000]))
        .send()
        .await
        .unwrap();
    c.put_object()
        .bucket("audited")
        .key("archive")
        .body(ByteStream::from(vec![9u8; 1000]))
        .send()
        .await
        .unwrap();
    // The provider flips one byte of the stored ciphertext.
    let stored = d.join("data").join("audited").join("ledger");
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[100_000] ^= 1;
    std::fs::write(&stored, bytes).unwrap();
    for _ in 0..2 {
        let got = match c.get_object().bucket("audited").key("ledger").send().await {
            Ok(r) => r.body.collect().await.map(|b| b.to_vec()),
            Err(e) => Err(aws_sdk_s3::primitives::ByteStreamError::from(
                std::io::Error::other(e.to_string()),
            )),
        };
        assert!(got.is_err(), "a tampered object must not be returned");
    }
    // The incident also reached the operator's webhook, as JSON.
    let mut waited = 0;
    while !received
        .lock()
        .unwrap()
        .iter()
        .any(|b| b.contains("\"integrity_failure\"") && b.contains("ledger"))
    {
        assert!(
            waited < 100,
            "no incident at the webhook: {:?}",
            received.lock().unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    // Three requests signed with a wrong secret: refused, counted, and at
    // the threshold (3 here) one incident, naming the address and key.
    let wrong = client_for(format!("http://{addr}"), "audit-ak", "not-the-secret");
    for _ in 0..3 {
        let e = wrong
            .get_object()
            .bucket("audited")
            .key("ledger")
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            aws_sdk_s3::error::ProvideErrorMetadata::code(&e),
            Some("SignatureDoesNotMatch"),
            "{e:?}"
        );
    }
    let mut waited = 0;
    while !received.lock().unwrap().iter().any(|b| {
        b.contains("\"auth_failures\"") && b.contains("127.0.0.1") && b.contains("audit-ak")
    }) {
        assert!(
            waited < 100,
            "no auth_failures incident at the webhook: {:?}",
            received.lock().unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    // The key that wrapped "archive" is rotated out and revoked; after
    // SIGHUP the gateway refuses to open it, and says so as an incident.
    let keys_dir = d.join("keys");
    let old = std::fs::read_to_string(keys_dir.join("ACTIVE"))
        .unwrap()
        .trim()
        .to_owned();
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sealgate"))
            .args(args)
            .arg("--keys-dir")
            .arg(&keys_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    cli(&["keys", "rotate"]);
    cli(&["keys", "revoke", &old, "--reason", "backup tape lost"]);
    assert!(cli(&["keys", "list"]).contains("backup tape lost"));
    assert!(
        Command::new("kill")
            .args(["-HUP", &gw.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let mut waited = 0;
    let refusal = loop {
        match c.get_object().bucket("audited").key("archive").send().await {
            Ok(_) => {
                assert!(waited < 100, "the revoked key still opens objects");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                waited += 1;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&refusal),
        Some("AccessDenied"),
        "{refusal:?}"
    );
    let mut waited = 0;
    while !received.lock().unwrap().iter().any(|b| {
        b.contains("\"revoked_key_used\"")
            && b.contains("backup tape lost")
            && b.contains("archive")
    }) {
        assert!(
            waited < 100,
            "no revoked_key_used incident at the webhook: {:?}",
            received.lock().unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    // HEAD unwraps the data key too (for the sealed metadata): refused alike.
    let head = c
        .head_object()
        .bucket("audited")
        .key("archive")
        .send()
        .await
        .expect_err("HEAD answered for an object under a revoked key");
    assert_eq!(
        head.raw_response().map(|r| r.status().as_u16()),
        Some(403),
        "{head:?}"
    );
    // The refusal is not mistaken for a legacy (unencrypted) object.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !received
            .lock()
            .unwrap()
            .iter()
            .any(|b| b.contains("legacy_read") && b.contains("archive")),
        "{:?}",
        received.lock().unwrap()
    );
    // New writes use the new key and read back.
    c.put_object()
        .bucket("audited")
        .key("after-rotation")
        .body(ByteStream::from(vec![3u8; 1000]))
        .send()
        .await
        .unwrap();
    let back = get_bytes(&c, "audited", "after-rotation").await;
    assert_eq!(back, vec![3u8; 1000]);
    // Counted in the metrics too.
    let metrics = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&admin).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    assert!(
        metrics.contains("sealgate_security_events_total{event=\"integrity_failure\"} 2"),
        "{metrics}"
    );
    for want in [
        "sealgate_decryption_failures_total 4",
        "sealgate_security_events_total{event=\"revoked_key_used\"} 2",
        "sealgate_auth_failures_total 3",
        "sealgate_security_events_total{event=\"auth_failures\"} 1",
        "sealgate_requests_total{operation=\"unauthenticated\",status=\"403\"} 3",
        "sealgate_requests_total{operation=\"PutObject\",status=\"200\"} 3",
        "sealgate_upstream_requests_total{operation=\"PutObject\",outcome=\"2xx\"} 3",
    ] {
        assert!(metrics.contains(want), "{want} missing:\n{metrics}");
    }
    // Routine records are not sent.
    assert!(
        !received
            .lock()
            .unwrap()
            .iter()
            .any(|b| b.contains("gateway_started"))
    );
    drop(gw);

    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(log.contains("\"gateway_started\""), "{log}");
    assert!(
        log.lines().any(|l| l.contains("\"integrity_failure\"")
            && l.contains("\"ledger\"")
            && l.contains("\"severity\":\"error\"")),
        "{log}"
    );
    let verify = |expect_ok: bool| {
        let out = Command::new(env!("CARGO_BIN_EXE_sealgate"))
            .args(["audit", "verify", "--audit-log"])
            .arg(&audit)
            .arg("--keys-dir")
            .arg(d.join("keys"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), expect_ok, "{text}");
        text
    };
    assert!(verify(true).contains("intact"));
    // Removing an incident line by hand is detected (a line followed by
    // others: the chain has no anchor after its last line, docs/INCIDENTS.md).
    let first = log
        .lines()
        .position(|l| l.contains("integrity_failure"))
        .unwrap();
    assert!(first + 1 < log.lines().count());
    let kept: Vec<&str> = log
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != first)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&audit, kept.join("\n") + "\n").unwrap();
    assert!(verify(false).contains("line"));
}
