//! Crash safety: `kill -9` of the gateway while single PUTs and multipart
//! uploads are in flight. After a restart on the same provider and keys,
//! every write the client saw acknowledged reads back byte-identical, and
//! every unacknowledged one is either absent or complete and intact — never
//! partial, never failing authentication.
//!
//! Twice: with the embedded default (the provider runs inside the gateway
//! process and dies with it; its disk survives), and with the provider as
//! its own process that lives on while the gateway is killed and restarted
//! (the deployment shape: a gateway in front of a remote provider).

use crate::gw_common;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use gw_common::{
    Process, Suite, client_for, complete_upload, gateway_config, get_bytes, spawn_configured,
    spawn_embedded, upload_parts,
};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const AK: &str = "crash-ak";
const SK: &str = "crash-secret-key-0123456789";
const BUCKET: &str = "crash";

fn payload(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(7) ^ seed.wrapping_mul(131)) as u8)
        .collect()
}

/// One write: a single PUT or a two-part multipart upload.
async fn write(c: &Client, key: &str, data: &[u8]) -> Result<(), String> {
    if data.len() < 6 * 1024 * 1024 {
        return c
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(data.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:?}"));
    }
    let split = 5 * 1024 * 1024;
    let u = upload_parts(c, BUCKET, key, &[&data[..split], &data[split..]]).await?;
    complete_upload(c, BUCKET, key, &u).await
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_with_the_embedded_provider_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    // The embedded default keeps its provider in-process, so a crash kills
    // the provider too; the data directory (the provider's disk) survives.
    let spawn = || spawn_embedded(dir.path(), (AK, SK), &[], &[], Stdio::null());
    crash_and_restart("crash (embedded provider)", spawn).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_in_front_of_a_live_provider_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    // The provider (a real s3s-fs) lives in this test process and keeps
    // running while the gateway process is killed and restarted.
    let (uak, usk) = ("crash-up", "crash-up-secret-0123456789");
    let up = sealgate::serve::embedded::start(&dir.path().join("up"), uak, usk)
        .await
        .unwrap();
    let cfg = gateway_config(dir.path(), up, (uak, usk), "");
    // gateway_config's client credentials are gw_common's; this suite
    // signs with its own, so add them.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("{text}[[credentials]]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n"),
    )
    .unwrap();
    crash_and_restart("crash (separate provider)", || spawn_configured(&cfg)).await;
}

/// Writes concurrently through a gateway from `spawn`, kills it with
/// SIGKILL mid-flight, restarts it with `spawn`, and checks every write.
async fn crash_and_restart(name: &'static str, spawn: impl Fn() -> Process) {
    let mut suite = Suite::new(name);
    let gw = spawn();
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket().bucket(BUCKET).send().await.unwrap();

    // 24 writers: small and large single PUTs and multipart uploads.
    let sizes = [1_000, 200_000, 3 * 1024 * 1024, 7 * 1024 * 1024];
    let acked: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
    let mut tasks = Vec::new();
    let mut all = HashMap::new();
    for i in 0..24 {
        let key = format!("obj-{i}");
        let data = payload(sizes[i % sizes.len()], i);
        all.insert(key.clone(), data.clone());
        let (c, acked) = (c.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            if write(&c, &key, &data).await.is_ok() {
                acked.lock().unwrap().insert(key, data);
            }
        }));
    }
    // Let some finish, then kill -9 in the middle of the rest.
    let mut waited = 0;
    while acked.lock().unwrap().len() < 4 && waited < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    let mut gw = gw;
    assert!(
        Command::new("kill")
            .args(["-KILL", &gw.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let _ = gw.child.wait();
    for t in tasks {
        let _ = t.await;
    }
    drop(gw);
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty(), "no write finished before the crash");
    assert!(
        acked.len() < all.len(),
        "the kill came after every write had finished"
    );

    // Restart on the same provider data and keys.
    let gw = spawn();
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    let mut absent = 0;
    let mut complete = 0;
    for (key, data) in &all {
        match c.get_object().bucket(BUCKET).key(key).send().await {
            Ok(r) => {
                let got = r
                    .body
                    .collect()
                    .await
                    .unwrap_or_else(|e| panic!("{key}: stored object fails to read: {e}"))
                    .to_vec();
                assert!(
                    &got == data,
                    "{key}: read back {} bytes, differing",
                    got.len()
                );
                complete += 1;
            }
            Err(e) => {
                assert!(
                    !acked.contains_key(key),
                    "{key}: acknowledged write lost: {e:?}"
                );
                assert_eq!(
                    aws_sdk_s3::error::ProvideErrorMetadata::code(&e),
                    Some("NoSuchKey"),
                    "{key}: neither absent nor intact: {e:?}"
                );
                absent += 1;
            }
        }
    }
    assert_eq!(complete + absent, all.len());
    assert!(complete >= acked.len());
    let bytes = |keys: &mut dyn Iterator<Item = &String>| -> u64 {
        keys.map(|k| all[k].len() as u64).sum()
    };
    suite.record(
        &format!(
            "{} acknowledged writes read back byte-identical",
            acked.len()
        ),
        Ok(bytes(&mut acked.keys())),
    );
    suite.record(
        &format!(
            "{} unacknowledged writes: {} absent, {} complete, none partial",
            all.len() - acked.len(),
            absent,
            complete - acked.len()
        ),
        Ok(0),
    );
    // A client retrying an unacknowledged write succeeds cleanly.
    for (key, data) in &all {
        if !acked.contains_key(key) {
            write(&c, key, data).await.unwrap();
            assert!(get_bytes(&c, BUCKET, key).await == *data, "{key}: retry");
        }
    }
    suite.record(
        "client retries of unacknowledged writes succeed",
        Ok(bytes(&mut all.keys().filter(|k| !acked.contains_key(*k)))),
    );
    drop(gw);
    suite.finish();
}
