//! Shared setup of the in-process gateway tests: the embedded default
//! (gateway + real s3s-fs on a temp dir) and an aws-sdk-s3 client for it.
#![allow(dead_code)] // each test binary uses a different subset

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use sealgate::serve::{Options, Running, start};
use std::path::{Path, PathBuf};

pub mod fault_proxy;
pub mod http;
pub mod moto;
pub mod process;
pub mod security;
pub mod webhook;

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
    Client::from_conf(client_config(endpoint, ak, sk).build())
}

fn client_config(endpoint: String, ak: &str, sk: &str) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(ak, sk, None, None, "test"))
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

/// A `sealgate serve` process of the real binary; killed when dropped.
pub struct Process {
    /// The process.
    pub child: std::process::Child,
    /// Address of its S3 endpoint (`host:port`).
    pub addr: String,
    /// Address of its admin listener, when `--admin-listen` was given.
    pub admin: Option<String>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the real binary with the config file `cfg` (quiet logs) and waits
/// until it listens.
pub fn spawn_configured(cfg: &Path) -> Process {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sealgate"))
        .args(["serve", "--config"])
        .arg(cfg)
        .env("SEALGATE_LOG", "warn")
        .env_remove("SEALGATE_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let l = lines.next().expect("gateway exited").unwrap();
        if let Some(a) = l.strip_prefix("sealgate is listening on http://") {
            break a.to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Process {
        child,
        addr,
        admin: None,
    }
}

/// Runs the real binary's embedded default on `dir` (`data/`, `keys/`) with
/// client credentials `ak`/`sk`, extra arguments and environment, and
/// waits until it listens.
pub fn spawn_embedded(
    dir: &Path,
    (ak, sk): (&str, &str),
    args: &[&str],
    envs: &[(&str, &str)],
    stderr: std::process::Stdio,
) -> Process {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sealgate"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--keys-dir")
        .arg(dir.join("keys"))
        .args(args)
        .env("SEALGATE_ACCESS_KEY", ak)
        .env("SEALGATE_SECRET_KEY", sk)
        .env_remove("SEALGATE_CONFIG")
        .env_remove("SEALGATE_UPSTREAM_ENDPOINT")
        .stdout(std::process::Stdio::piped())
        .stderr(stderr);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().expect("gateway exited").unwrap();
    let addr = loop {
        if let Some(a) = next().strip_prefix("sealgate is listening on http://") {
            break a.to_owned();
        }
    };
    let admin = args.contains(&"--admin-listen").then(|| {
        loop {
            if let Some(a) = next().strip_prefix("admin (health, metrics) on http://") {
                break a.to_owned();
            }
        }
    });
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Process { child, addr, admin }
}

/// Stores `body` as an object; the PUT must succeed.
pub async fn put_bytes(c: &Client, bucket: &str, key: &str, body: &[u8]) {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.to_vec().into())
        .send()
        .await
        .unwrap();
}

/// The whole body of an object.
pub async fn get_bytes(c: &Client, bucket: &str, key: &str) -> Vec<u8> {
    try_get_bytes(c, bucket, key).await.unwrap()
}

/// The whole body of an object, or why the request or the body failed.
pub async fn try_get_bytes(c: &Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let r = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    r.body
        .collect()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| format!("{e:?}"))
}

/// A multipart upload of `parts`, in order.
pub async fn put_multipart(c: &Client, bucket: &str, key: &str, parts: &[&[u8]]) {
    let u = upload_parts(c, bucket, key, parts).await.unwrap();
    complete_upload(c, bucket, key, &u).await.unwrap();
}

/// A multipart upload under way: its id and the parts uploaded so far.
pub struct Upload {
    /// The upload id.
    pub id: String,
    /// Parts for the completion, in order.
    pub parts: Vec<aws_sdk_s3::types::CompletedPart>,
}

/// Starts a multipart upload and uploads `parts` as parts 1..N.
pub async fn upload_parts(
    c: &Client,
    bucket: &str,
    key: &str,
    parts: &[&[u8]],
) -> Result<Upload, String> {
    let id = c
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?
        .upload_id()
        .unwrap_or_default()
        .to_owned();
    let mut u = Upload {
        id,
        parts: Vec::new(),
    };
    for (i, p) in parts.iter().enumerate() {
        upload_part(c, bucket, key, &mut u, i as i32 + 1, p).await?;
    }
    Ok(u)
}

/// Uploads part `n` of `u` and records it for the completion.
pub async fn upload_part(
    c: &Client,
    bucket: &str,
    key: &str,
    u: &mut Upload,
    n: i32,
    data: &[u8],
) -> Result<(), String> {
    let out = c
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(&u.id)
        .part_number(n)
        .body(aws_sdk_s3::primitives::ByteStream::from(data.to_vec()))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    u.parts.push(
        aws_sdk_s3::types::CompletedPart::builder()
            .part_number(n)
            .set_e_tag(out.e_tag().map(str::to_owned))
            .build(),
    );
    Ok(())
}

/// Completes `u` with its recorded parts.
pub async fn complete_upload(
    c: &Client,
    bucket: &str,
    key: &str,
    u: &Upload,
) -> Result<(), String> {
    c.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&u.id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(u.parts.clone()))
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

/// Writes `DIR/sealgate.toml` for a gateway on 127.0.0.1:0 in front of the
/// provider at `upstream` (credentials `uak`/`usk`), with a fresh key store
/// in `DIR/keys` and the test client credentials; `extra` is added to the
/// top level (before any table). Returns the config's path.
pub fn gateway_config(
    dir: &Path,
    upstream: std::net::SocketAddr,
    creds: (&str, &str),
    extra: &str,
) -> PathBuf {
    gateway_config_with(dir, upstream, creds, extra, "")
}

/// As [`gateway_config`], with `upstream_extra` added to `[upstream]`.
pub fn gateway_config_with(
    dir: &Path,
    upstream: std::net::SocketAddr,
    (uak, usk): (&str, &str),
    extra: &str,
    upstream_extra: &str,
) -> PathBuf {
    let keys = dir.join("keys");
    sealgate::keys::KeyStore::generate(&keys, false).unwrap();
    let cfg = dir.join("sealgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\n{extra}keys_dir = {keys:?}\n[upstream]\nendpoint = \"http://{upstream}\"\naccess_key = \"{uak}\"\nsecret_key = \"{usk}\"\n{upstream_extra}[[credentials]]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n"
        ),
    )
    .unwrap();
    cfg
}

/// Cases of a reliability suite, run to the end so its one-line summary
/// (printed for `.ci/run` and docs/RELIABILITY.md) counts every failure;
/// `finish` then fails the test if any case failed.
pub struct Suite {
    name: &'static str,
    cases: usize,
    failed: Vec<String>,
    verified: u64,
    /// Every case and whether it held, listed when SEALGATE_LIST_CASES is set.
    log: Vec<String>,
}

impl Suite {
    /// A new suite.
    pub fn new(name: &'static str) -> Suite {
        Suite {
            name,
            cases: 0,
            failed: Vec::new(),
            verified: 0,
            log: Vec::new(),
        }
    }

    /// Records one case: `Ok(bytes verified)` or `Err(why)`.
    pub fn record(&mut self, case: &str, result: Result<u64, String>) {
        self.cases += 1;
        let mark = if result.is_ok() { "ok  " } else { "FAIL" };
        self.log.push(format!("{mark} {case}"));
        match result {
            Ok(n) => self.verified += n,
            Err(e) => self.failed.push(format!("{case}: {e}")),
        }
    }

    /// Adds bytes verified outside a case (e.g. by background readers).
    pub fn verified(&mut self, bytes: u64) {
        self.verified += bytes;
    }

    /// Prints the summary line and fails if any case failed.
    pub fn finish(self) {
        #[allow(clippy::print_stdout)] // the suite's summary, read by .ci/run
        {
            if std::env::var_os("SEALGATE_LIST_CASES").is_some() {
                for line in &self.log {
                    println!("  {}: {line}", self.name);
                }
            }
            println!(
                "reliability: {}: {} cases, {} failed, {:.1} MiB verified",
                self.name,
                self.cases,
                self.failed.len(),
                self.verified as f64 / (1024.0 * 1024.0)
            );
        }
        assert!(
            self.failed.is_empty(),
            "failed cases:\n{}",
            self.failed.join("\n")
        );
    }
}

/// A client that never retries, to see each attempt's own outcome.
pub fn client_no_retry(endpoint: String, ak: &str, sk: &str) -> Client {
    let conf = client_config(endpoint, ak, sk)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

/// Writes `text` to `path` with mode 0600 (a secret or key-store file).
pub fn private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The key files of the store in `d/keys`, parsed, by file name.
pub fn key_files(d: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    let mut files: Vec<_> = std::fs::read_dir(d.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "kek"))
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p, v)
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}
