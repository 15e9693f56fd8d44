//! Shared setup of the in-process gateway tests: the embedded default
//! (gateway + real s3s-fs on a temp dir) and an aws-sdk-s3 client for it.
#![allow(dead_code)] // each test binary uses a different subset

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use sealgate::serve::{Options, Running, start};
use std::path::{Path, PathBuf};

/// Client credentials of the test gateway.
pub const AK: &str = "test-access-key";
/// Their secret.
pub const SK: &str = "test-secret-key-0123456789";

/// A running gateway, its provider's directory and the temp dir holding both.
pub struct Env {
    pub _dir: tempfile::TempDir,
    pub data: PathBuf,
    pub gw: Running,
}

/// Starts the embedded default on 127.0.0.1:0 with a fresh key store.
pub async fn gateway() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gw = start(Options {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(data.clone()),
        keys_dir: Some(dir.path().join("keys")),
        client: Some((AK.into(), SK.into())),
        ..Default::default()
    })
    .await
    .unwrap();
    Env {
        _dir: dir,
        data,
        gw,
    }
}

/// A path-style aws-sdk-s3 client.
pub fn client_for(endpoint: String, ak: &str, sk: &str) -> Client {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(ak, sk, None, None, "test"))
        .build();
    Client::from_conf(conf)
}

/// A client of `env`'s gateway with the test credentials.
pub fn client(env: &Env) -> Client {
    client_for(format!("http://{}", env.gw.addr), AK, SK)
}

/// Fails if any file under `dir` contains `marker`.
pub fn assert_no_plaintext(dir: &Path, marker: &[u8]) {
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker),
            "plaintext reached the provider: {}",
            entry.display()
        );
    }
}

/// Every file under `dir`.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
