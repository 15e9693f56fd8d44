//! Key store and secret-file trust with the real binary (issue 14, finding
//! 10): `sealgate serve` refuses to start on a keys directory others can
//! write, on a key planted by another user (even one named ACTIVE), and on
//! a client secret file others can read, each time naming the file and the
//! fix; a SIGHUP reload refuses a planted key and keeps the keys in force.
//! The tests run as root (CI does): files given to uid 12345 are another
//! user's; root's own files are the gateway's.

use crate::gw_common;

use gw_common::client_for;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const AK: &str = "trust-ak";
const SK: &str = "trust-secret-key-0123456789";
const OTHER_UID: u32 = 12345;

/// The binary under test; `SEALGATE_TEST_BIN` names a copy set apart when
/// several worktrees share one target directory.
fn bin() -> std::path::PathBuf {
    std::env::var_os("SEALGATE_TEST_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_sealgate").into())
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs `sealgate serve` (embedded default on `dir`, or `--config cfg`)
/// and expects it to exit without listening; returns its stderr.
fn refused(dir: &Path, config: Option<&Path>) -> String {
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    match config {
        Some(cfg) => {
            cmd.arg("--config").arg(cfg);
        }
        None => {
            cmd.arg("--data-dir")
                .arg(dir.join("data"))
                .arg("--keys-dir")
                .arg(dir.join("keys"))
                .env("SEALGATE_ACCESS_KEY", AK)
                .env("SEALGATE_SECRET_KEY", SK);
        }
    }
    let mut child = cmd
        .env_remove("SEALGATE_CONFIG")
        .env_remove("SEALGATE_UPSTREAM_ENDPOINT")
        .env_remove("SEALGATE_KEYS_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            let mut out = String::new();
            child.stdout.take().unwrap().read_to_string(&mut out).ok();
            panic!("the gateway started: {out}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "exit {status}");
    assert!(
        !out.contains("sealgate is listening"),
        "it listened before refusing: {out}"
    );
    err
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Copies a fresh key from another store into `keys` as a file owned by
/// `uid`, and names it in ACTIVE; returns its path and id.
fn plant_key(keys: &Path, uid: u32) -> (std::path::PathBuf, String) {
    let elsewhere = tempfile::tempdir().unwrap();
    let other = elsewhere.path().join("keys");
    let id = sealgate::keys::KeyStore::generate(&other, false)
        .unwrap()
        .to_string();
    let path = keys.join(format!("{id}.kek"));
    std::fs::copy(other.join(format!("{id}.kek")), &path).unwrap();
    chmod(&path, 0o600);
    std::os::unix::fs::chown(&path, Some(uid), Some(uid)).unwrap();
    (path, id)
}

#[test]
fn serve_refuses_a_keys_dir_others_can_write() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    sealgate::keys::KeyStore::generate(&keys, false).unwrap();
    for mode in [0o777, 0o770] {
        chmod(&keys, mode);
        let err = refused(dir.path(), None);
        let k = keys.display();
        assert!(
            err.contains(&format!(
                "keys directory {k} is writable by group or others (mode {mode:04o})"
            )) && err.contains(&format!("run `chmod 700 {k}`")),
            "{err}"
        );
    }
    // The provider (the embedded default's data dir) got nothing.
    assert!(
        gw_common::walk(&dir.path().join("data")).is_empty(),
        "objects were written"
    );
}

#[test]
fn serve_refuses_a_planted_active_key_owned_by_another_user() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    sealgate::keys::KeyStore::generate(&keys, false).unwrap();
    let (path, id) = plant_key(&keys, OTHER_UID);
    std::fs::write(keys.join("ACTIVE"), format!("{id}\n")).unwrap();
    let err = refused(dir.path(), None);
    let p = path.display();
    assert!(
        err.contains(&format!(
            "{p} is owned by uid 12345, not by the user sealgate runs as (uid 0) or root"
        )) && err.contains(&format!("chown 0 {p}")),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_client_secret_file_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys = d.join("keys");
    sealgate::keys::KeyStore::generate(&keys, false).unwrap();
    let secret = d.join("app.secret");
    std::fs::write(&secret, format!("{SK}\n")).unwrap();
    chmod(&secret, 0o644);
    let cfg = d.join("sealgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nkeys_dir = {keys:?}\n[upstream]\nendpoint = \"http://127.0.0.1:9\"\naccess_key = \"u\"\nsecret_key = \"us\"\n[[credentials]]\naccess_key = \"{AK}\"\nsecret_key_file = {secret:?}\n"
        ),
    )
    .unwrap();
    let err = refused(d, Some(&cfg));
    let s = secret.display();
    assert!(
        err.contains(&format!(
            "{s} is readable or writable by group or others (mode 644); run chmod 600 {s}"
        )),
        "{err}"
    );
    if is_root() {
        chmod(&secret, 0o600);
        std::os::unix::fs::chown(&secret, Some(OTHER_UID), None).unwrap();
        let err = refused(d, Some(&cfg));
        assert!(err.contains(&format!("{s} is owned by uid 12345")), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_refuses_a_planted_key_and_keeps_the_keys_in_force() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let original = sealgate::keys::KeyStore::generate(&keys, false)
        .unwrap()
        .to_string();
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--keys-dir")
        .arg(&keys)
        .env("SEALGATE_ACCESS_KEY", AK)
        .env("SEALGATE_SECRET_KEY", SK)
        .env_remove("SEALGATE_CONFIG")
        .env_remove("SEALGATE_UPSTREAM_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let addr = loop {
        let l = lines.next().expect("gateway exited").unwrap();
        if let Some(a) = l.strip_prefix("sealgate is listening on http://") {
            break a.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let mut gw = gw_common::Process {
        child,
        addr,
        admin: None,
    };
    let stderr = gw.child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let log = log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                log.lock().unwrap().push_str(&(l + "\n"));
            }
        });
    }
    let (path, id) = plant_key(&keys, OTHER_UID);
    std::fs::write(keys.join("ACTIVE"), format!("{id}\n")).unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &gw.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    while !log.lock().unwrap().contains("keys_reload_failed") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no keys_reload_failed: {}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        log.lock()
            .unwrap()
            .contains(&format!("{} is owned by uid 12345", path.display())),
        "{}",
        log.lock().unwrap()
    );
    // New objects are still wrapped under the original key, not the planted one.
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket().bucket("trust").send().await.unwrap();
    c.put_object()
        .bucket("trust")
        .key("k")
        .body(b"after the refused reload".to_vec().into())
        .send()
        .await
        .unwrap();
    let stored = std::fs::read(dir.path().join("data/trust/k")).unwrap();
    let out = Command::new(bin())
        .arg("inspect")
        .arg(dir.path().join("data/trust/k"))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(&original) && !shown.contains(&id),
        "{shown} ({} bytes)",
        stored.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_key_others_can_read_is_refused_at_start_and_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_file, key_file) = (d.join("server.pem"), d.join("server.key"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.key_pair.serialize_pem()).unwrap();
    chmod(&key_file, 0o644);
    let opts = sealgate::serve::Options {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(d.join("data")),
        keys_dir: Some(d.join("keys")),
        client: Some((AK.into(), SK.into())),
        tls: Some((cert_file.clone(), key_file.clone())),
        ..Default::default()
    };
    let err = match sealgate::serve::start(opts.clone()).await {
        Ok(_) => panic!("started with a world-readable TLS key"),
        Err(e) => e.to_string(),
    };
    let k = key_file.display();
    assert!(
        err.contains(&format!(
            "tls.key_file: {k} is readable or writable by group or others (mode 644); run chmod 600 {k}"
        )),
        "{err}"
    );
    // Fixed, it starts; loosened again, SIGHUP's reload refuses it and the
    // certificate in use stays.
    chmod(&key_file, 0o600);
    let gw = sealgate::serve::start(opts).await.unwrap();
    let tls = gw.tls_files.clone().unwrap();
    tls.reload().unwrap();
    chmod(&key_file, 0o640);
    let err = tls.reload().unwrap_err().to_string();
    assert!(err.contains("run chmod 600"), "{err}");
    gw.shutdown().await;
}
