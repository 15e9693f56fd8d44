//! The audit log end to end: the real binary with `--audit-log`, a stored
//! object altered at the provider, the GET aborted, the incident recorded in
//! the hash-chained log, and `sealgate audit verify` checking it.

mod gw_common;

use aws_sdk_s3::primitives::ByteStream;
use gw_common::client_for;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test(flavor = "multi_thread")]
async fn tampering_at_the_provider_is_recorded_in_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let audit = d.join("audit.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealgate"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(d.join("data"))
        .arg("--keys-dir")
        .arg(d.join("keys"))
        .arg("--audit-log")
        .arg(&audit)
        .env("SEALGATE_ACCESS_KEY", "audit-ak")
        .env("SEALGATE_SECRET_KEY", "audit-secret-key-0123")
        .env_remove("SEALGATE_CONFIG")
        .env_remove("SEALGATE_UPSTREAM_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let l = lines.next().expect("gateway exited").unwrap();
        if let Some(a) = l.strip_prefix("sealgate is listening on http://") {
            break a.to_owned();
        }
    };
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
    child.kill().unwrap();
    let _ = child.wait();

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
