//! History the host administrator might rewrite (issue 14, finding 6), with
//! the real binary: a registry cut back below, or forked from, the line
//! sealgate last verified is refused by the CLI and by a running gateway
//! (docs/EXCEPTIONS.md §Verified state).

mod gw_common;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use gw_common::client_for;
use sealgate::serve::embedded;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const UAK: &str = "hist-upstream";
const USK: &str = "hist-upstream-secret-0123";
const AK: &str = "hist-client";
const SK: &str = "hist-client-secret-0123";

/// The binary under test: `SEALGATE_TEST_BIN` when set (a copy kept apart
/// from a target directory that other builds share), else Cargo's.
fn bin() -> String {
    std::env::var("SEALGATE_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_sealgate").into())
}

fn sealgate(d: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin())
        .args(args)
        .env("SEALGATE_KEYS_DIR", d.join("keys"))
        .env("SEALGATE_REGISTRY", d.join("exceptions.jsonl"))
        .env_remove("SEALGATE_REGISTRY_STATE")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn register_args<'a>(id: &'a str, bucket: &'a str) -> Vec<&'a str> {
    vec![
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
        "2099-01-01",
    ]
}

fn register(d: &Path, id: &str, bucket: &str) {
    let (ok, out) = sealgate(d, &register_args(id, bucket));
    assert!(ok, "{out}");
}

fn revoke(d: &Path, id: &str) {
    let (ok, out) = sealgate(
        d,
        &[
            "exception",
            "revoke",
            id,
            "--by",
            "DPO",
            "--reason",
            "ended",
        ],
    );
    assert!(ok, "{out}");
}

/// Removes the registry's last line, as an administrator could by hand.
fn drop_last_line(d: &Path) {
    let p = d.join("exceptions.jsonl");
    let text = std::fs::read_to_string(&p).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&p, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
}

#[test]
fn a_registry_cut_back_below_its_verified_line_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(sealgate(d, &["keys", "generate"]).0);
    register(d, "EX-1", "www-assets");
    revoke(d, "EX-1");
    let (ok, out) = sealgate(d, &["exception", "verify"]);
    assert!(ok && out.contains("verified up to line 2"), "{out}");
    let state = std::fs::read_to_string(d.join("exceptions.jsonl.verified")).unwrap();
    assert!(state.contains("\"seq\":2"), "{state}");

    // The revocation is removed by hand: the chain alone still verifies,
    // and EX-1 would be active again.
    drop_last_line(d);
    for args in [
        &["exception", "verify"][..],
        &["exception", "list"][..],
        &["exception", "show", "EX-1"][..],
    ] {
        let (ok, out) = sealgate(d, args);
        assert!(
            !ok && out.contains("the registry has 1 line(s)")
                && out.contains("verified line 2")
                && out.contains("exceptions.jsonl.verified")
                && out.contains("restore the registry from its backup"),
            "{args:?}: {out}"
        );
    }
    // Nothing is appended to a cut-back registry.
    let before = std::fs::read(d.join("exceptions.jsonl")).unwrap();
    let (ok, out) = sealgate(d, &register_args("EX-2", "www-assets"));
    assert!(!ok && out.contains("verified line 2"), "{out}");
    assert_eq!(std::fs::read(d.join("exceptions.jsonl")).unwrap(), before);
    // An emptied or deleted registry is refused alike.
    std::fs::remove_file(d.join("exceptions.jsonl")).unwrap();
    let (ok, out) = sealgate(d, &["exception", "list"]);
    assert!(!ok && out.contains("the registry has 0 line(s)"), "{out}");
}

#[test]
fn a_registry_forked_from_its_verified_line_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(sealgate(d, &["keys", "generate"]).0);
    register(d, "EX-1", "www-assets");
    // The same key store builds another chain of the same length elsewhere.
    let other = tempfile::tempdir().unwrap();
    let o = other.path();
    std::fs::create_dir(o.join("keys")).unwrap();
    for f in std::fs::read_dir(d.join("keys")).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::copy(&f, o.join("keys").join(f.file_name().unwrap())).unwrap();
        }
    }
    register(o, "EX-9", "*");
    std::fs::copy(o.join("exceptions.jsonl"), d.join("exceptions.jsonl")).unwrap();
    let (ok, out) = sealgate(d, &["exception", "verify"]);
    assert!(
        !ok && out.contains("line 1 has SHA-256") && out.contains("another chain"),
        "{out}"
    );
}

#[test]
fn a_registry_from_before_the_verified_state_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(sealgate(d, &["keys", "generate"]).0);
    register(d, "EX-1", "www-assets");
    register(d, "EX-2", "cdn-*");
    // As written by a version without the state file: same bytes, no state.
    std::fs::remove_file(d.join("exceptions.jsonl.verified")).unwrap();
    let (ok, out) = sealgate(d, &["exception", "verify"]);
    assert!(
        ok && out.contains("2 records") && out.contains("verified up to line 2"),
        "{out}"
    );
    assert!(d.join("exceptions.jsonl.verified").exists());
    // A state file kept elsewhere (a registry on a read-only volume).
    let elsewhere = d.join("state-elsewhere");
    let out = Command::new(bin())
        .args(["exception", "verify", "--registry-state"])
        .arg(&elsewhere)
        .env("SEALGATE_KEYS_DIR", d.join("keys"))
        .env("SEALGATE_REGISTRY", d.join("exceptions.jsonl"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        std::fs::read_to_string(&elsewhere)
            .unwrap()
            .contains("\"seq\":2")
    );
}

fn config(d: &Path, upstream: std::net::SocketAddr) -> std::path::PathBuf {
    let text = format!(
        "listen = \"127.0.0.1:0\"\nkeys_dir = {:?}\n[upstream]\nendpoint = \"http://{upstream}\"\naccess_key = \"{UAK}\"\nsecret_key = \"{USK}\"\n[[credentials]]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n[policy]\nregistry = {:?}\n[[policy.passthrough]]\nbucket = \"public-site\"\nexception = \"EX-1\"\n",
        d.join("keys"),
        d.join("exceptions.jsonl")
    );
    let p = d.join("sealgate.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Starts the gateway; Ok(child, addr) or Err(its output) when it refuses.
fn serve(d: &Path, cfg: &Path) -> Result<(Child, String), String> {
    let mut child = Command::new(bin())
        .arg("serve")
        .arg("--config")
        .arg(cfg)
        .arg("--audit-log")
        .arg(d.join("audit.jsonl"))
        .env_remove("SEALGATE_ACCESS_KEY")
        .env_remove("SEALGATE_SECRET_KEY")
        .env_remove("SEALGATE_REGISTRY_STATE")
        .env("SEALGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(a) = l.strip_prefix("sealgate is listening on http://") {
                    std::thread::spawn(move || for _ in lines {});
                    let err = child.stderr.take().unwrap();
                    std::thread::spawn(move || for _ in BufReader::new(err).lines() {});
                    return Ok((child, a.to_owned()));
                }
            }
            _ => {
                let mut err = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
                let _ = child.wait();
                return Err(err);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_revocation_does_not_revive_an_exception_at_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let up = embedded::start(&d.join("data"), UAK, USK).await.unwrap();
    assert!(sealgate(d, &["keys", "generate"]).0);
    register(d, "EX-1", "public-*");
    let (mut child, addr) = serve(d, &config(d, up)).unwrap();
    let c = client_for(format!("http://{addr}"), AK, SK);
    c.create_bucket()
        .bucket("public-site")
        .send()
        .await
        .unwrap();
    let put = |key: &'static str| {
        c.put_object()
            .bucket("public-site")
            .key(key)
            .body(ByteStream::from_static(b"plain page"))
            .send()
    };
    put("before.html").await.unwrap();

    revoke(d, "EX-1");
    let err = put("revoked.html").await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");

    // The administrator deletes the revocation line (no key needed).
    drop_last_line(d);
    let err = put("revived.html").await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");
    assert!(
        err.message().unwrap_or("").contains("verified line 2"),
        "{err:?}"
    );
    assert!(!d.join("data/public-site/revived.html").exists());
    let _ = child.kill();
    let _ = child.wait();

    // Nor after a restart: the gateway refuses to start, saying why.
    let err = serve(d, &config(d, up)).unwrap_err();
    assert!(
        err.contains("the registry has 1 line(s)") && err.contains("verified line 2"),
        "{err}"
    );

    // What was verified is in the audit log.
    let log = std::fs::read_to_string(d.join("audit.jsonl")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("\"registry_verified\"") && l.contains("\"seq\":1")),
        "{log}"
    );
}
