//! Structured logs of the real binary: `--log-json` gives one JSON object
//! per line, plain (no terminal colours) when stderr is a file, with the
//! request id the client received on the lines its request logged.

use crate::gw_common;

use aws_sdk_s3::operation::RequestId;
use gw_common::{client_for, spawn_embedded};
use std::process::Stdio;

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_the_clients_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = d.join("sealgate.log");
    let mut gw = spawn_embedded(
        d,
        ("log-ak", "log-secret-key-0123456789"),
        &["--log-json"],
        &[("SEALGATE_LOG", "info")],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let addr = gw.addr.clone();
    let wrong = client_for(format!("http://{addr}"), "log-ak", "wrong-secret");
    let e = wrong.list_buckets().send().await.unwrap_err();
    let id = e
        .request_id()
        .expect("x-amz-request-id on an error")
        .to_owned();
    assert_eq!(id.len(), 16, "{id}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let _ = gw.child.kill();
    let _ = gw.child.wait();

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains('\u{1b}'), "colour codes in a log file");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert!(
        records.iter().any(|r| r["fields"]["startup_ms"].is_u64()),
        "start time is logged: {text}"
    );
    let mine: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["span"]["request_id"] == id.as_str())
        .collect();
    assert!(
        mine.iter()
            .any(|r| r["fields"]["message"] == "client authentication failed"),
        "no line of request {id}: {text}"
    );
}
