//! Key stores whose keys are wrapped inside a PKCS#11 token (a real
//! SoftHSM2 token, its key made with OpenSC's pkcs11-tool as an
//! administrator would; tests/run.sh installs both): no key on disk, the
//! key id authenticated by the token's AES-GCM, a root key the token would
//! export refused, each way the token can fail named, and a root key
//! removed from the token withdrawing the gateway's keys.

use crate::gw_common;
use crate::gw_common::process::{Serving, bin, serve_command, start};
use crate::gw_common::{key_files, private};
use gw_common::client_for;
use sealgate::serve::embedded;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const UAK: &str = "hsm-upstream";
const USK: &str = "hsm-upstream-secret-0123";
const AK: &str = "hsm-client";
const SK: &str = "hsm-client-secret-0123";
const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "sealgate";
const ROOT: &str = "sealgate-root";
const PIN: &str = "271828";

/// A SoftHSM2 token directory of its own, with one initialised token.
struct Hsm {
    dir: tempfile::TempDir,
}

impl Hsm {
    fn start() -> Hsm {
        assert!(
            Path::new(MODULE).exists(),
            "SoftHSM2 is needed (apt-get install softhsm2 opensc; tests/run.sh does)"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\n",
                dir.path().join("tokens").display()
            ),
        )
        .unwrap();
        let hsm = Hsm { dir };
        hsm.ok(Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", TOKEN])
            .args(["--pin", PIN, "--so-pin", "314159"]));
        hsm
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    /// Runs `cmd` against this token directory; it must succeed.
    fn ok(&self, cmd: &mut Command) -> String {
        let out = cmd.env("SOFTHSM2_CONF", self.conf()).output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `pkcs11-tool` logged in to the token.
    fn tool(&self) -> Command {
        let mut c = Command::new("pkcs11-tool");
        c.args([
            "--module",
            MODULE,
            "--token-label",
            TOKEN,
            "--login",
            "--pin",
            PIN,
        ]);
        c
    }

    /// A new AES-256 key labelled `label`, made in the token (`extra`:
    /// e.g. `--extractable`).
    fn keygen(&self, label: &str, extra: &[&str]) {
        self.ok(self
            .tool()
            .args(["--keygen", "--key-type", "AES:32", "--label", label])
            .args(["--sensitive", "--private"])
            .args(extra));
    }

    fn delete(&self, label: &str) {
        self.ok(self
            .tool()
            .args(["--delete-object", "--type", "secrkey", "--label", label]));
    }
}

/// A store in `d/keys` whose provider is the token's key `key`, with the
/// PIN `pin` in `d/pin` and `extra` settings before the section.
fn provider_store(d: &Path, token: &str, key: &str, pin: &str, extra: &str) {
    let keys = d.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
    private(&d.join("pin"), pin);
    private(
        &keys.join("provider.toml"),
        &format!(
            "{extra}[pkcs11]\nmodule = \"{MODULE}\"\ntoken_label = \"{token}\"\nkey_label = \"{key}\"\npin_file = {:?}\n",
            d.join("pin")
        ),
    );
}

/// `sealgate ARGS` on the store in `d/keys` with the token directory of
/// `hsm`: whether it succeeded, and its stdout and stderr.
fn sealgate(hsm: &Hsm, d: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin())
        .args(args)
        .env("SEALGATE_KEYS_DIR", d.join("keys"))
        .env("SOFTHSM2_CONF", hsm.conf())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `sealgate keys list` must fail; its words.
fn list_err(hsm: &Hsm, d: &Path) -> String {
    let (ok, out) = sealgate(hsm, d, &["keys", "list"]);
    assert!(!ok, "the store loaded: {out}");
    out
}

/// A gateway (the real binary) on the store in `d/keys`, over an embedded
/// provider in `d/data`, with a bucket `hsm`, and a client of it.
async fn serve_store(hsm: &Hsm, d: &Path) -> (Serving, aws_sdk_s3::Client) {
    serve_store_with(hsm, d, false).await
}

/// [`serve_store`], with an admin listener when `admin`.
async fn serve_store_with(hsm: &Hsm, d: &Path, admin: bool) -> (Serving, aws_sdk_s3::Client) {
    let up = embedded::start(&d.join("data"), UAK, USK).await.unwrap();
    let cfg = d.join("sealgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\n{}keys_dir = {:?}\n[upstream]\nendpoint = \"http://{up}\"\naccess_key = \"{UAK}\"\nsecret_key = \"{USK}\"\n[[credentials]]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n",
            if admin { "admin_listen = \"127.0.0.1:0\"\n" } else { "" },
            d.join("keys")
        ),
    )
    .unwrap();
    let mut cmd = serve_command(d, &cfg, &[]);
    cmd.env("SOFTHSM2_CONF", hsm.conf());
    let gw = start(cmd, admin).unwrap();
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket().bucket("hsm").send().await.unwrap();
    (gw, c)
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_wrapped_in_the_token_hold_no_key_on_disk_and_serve_objects() {
    let hsm = Hsm::start();
    hsm.keygen(ROOT, &[]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    provider_store(d, TOKEN, ROOT, PIN, "");
    for _ in 0..2 {
        let (ok, out) = sealgate(&hsm, d, &["keys", "generate"]);
        assert!(ok, "{out}");
    }
    let files = key_files(d);
    assert_eq!(files.len(), 2);
    for (path, json) in &files {
        assert_eq!(json["format"], "sealgate-kek-wrapped/1", "{path:?}");
        assert!(json.get("key").is_none(), "{json}");
        assert_eq!(json["wrapped"]["provider"], "pkcs11");
        assert_eq!(json["wrapped"]["key"], ROOT);
        let ct = json["wrapped"]["ciphertext"].as_str().unwrap();
        assert!(ct.starts_with("pkcs11:v1:"), "{ct}");
    }
    let (ok, out) = sealgate(&hsm, d, &["keys", "list"]);
    assert!(ok, "{out}");
    assert!(out.contains("pkcs11 key \"sealgate-root\""), "{out}");

    let (gw, c) = serve_store(&hsm, d).await;
    gw_common::put_bytes(&c, "hsm", "doc", b"kept in the token").await;
    assert_eq!(
        gw_common::get_bytes(&c, "hsm", "doc").await,
        b"kept in the token"
    );
    drop(gw);

    // The token authenticates the key id: one key's ciphertext in the
    // other's file does not decrypt.
    let (a, mut first) = files[0].clone();
    first["wrapped"]["ciphertext"] = files[1].1["wrapped"]["ciphertext"].clone();
    private(&a, &first.to_string());
    let err = list_err(&hsm, d);
    assert!(err.contains("refused to unwrap"), "{err}");
}

#[test]
fn each_way_the_token_fails_is_named() {
    let hsm = Hsm::start();
    hsm.keygen(ROOT, &[]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    provider_store(d, TOKEN, ROOT, PIN, "");
    let (ok, out) = sealgate(&hsm, d, &["keys", "generate"]);
    assert!(ok, "{out}");

    // A wrong PIN; it is not repeated in the error.
    provider_store(d, TOKEN, ROOT, "999999", "");
    let err = list_err(&hsm, d);
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(err.contains("PinIncorrect"), "{err}");
    assert!(!err.contains("999999") && !err.contains(PIN), "{err}");

    // No such token.
    provider_store(d, "not-there", ROOT, PIN, "");
    let err = list_err(&hsm, d);
    assert!(err.contains("no such token"), "{err}");

    // No such key in the token (a store of its own: a store's files are
    // all under one key).
    let fresh = d.join("misspelt");
    provider_store(&fresh, TOKEN, "misspelt", PIN, "");
    let (ok, err) = sealgate(&hsm, &fresh, &["keys", "generate"]);
    assert!(!ok);
    assert!(err.contains("has no key \"misspelt\""), "{err}");

    // A root key the token would export.
    hsm.keygen("exportable", &["--extractable"]);
    let fresh = d.join("exportable");
    provider_store(&fresh, TOKEN, "exportable", PIN, "");
    let (ok, err) = sealgate(&hsm, &fresh, &["keys", "generate"]);
    assert!(!ok);
    assert!(err.contains("can be exported"), "{err}");

    // A public object (one anyone with a session could plant, without the
    // PIN) is not taken for the root key.
    hsm.ok(hsm.tool().args([
        "--keygen",
        "--key-type",
        "AES:32",
        "--label",
        "public",
        "--sensitive",
    ]));
    let fresh = d.join("public");
    provider_store(&fresh, TOKEN, "public", PIN, "");
    let (ok, err) = sealgate(&hsm, &fresh, &["keys", "generate"]);
    assert!(!ok);
    assert!(err.contains("has no key \"public\""), "{err}");

    // An AES-128 key.
    hsm.ok(hsm.tool().args([
        "--keygen",
        "--key-type",
        "AES:16",
        "--label",
        "short",
        "--sensitive",
        "--private",
    ]));
    let fresh = d.join("short");
    provider_store(&fresh, TOKEN, "short", PIN, "");
    let (ok, err) = sealgate(&hsm, &fresh, &["keys", "generate"]);
    assert!(!ok);
    assert!(err.contains("is not an AES-256 key"), "{err}");

    // Two keys under one label: which one is ambiguous, so neither.
    hsm.keygen("twice", &[]);
    hsm.keygen("twice", &[]);
    let fresh = d.join("twice");
    provider_store(&fresh, TOKEN, "twice", PIN, "");
    let (ok, err) = sealgate(&hsm, &fresh, &["keys", "generate"]);
    assert!(!ok);
    assert!(err.contains("2 AES keys are labelled"), "{err}");

    // A module that is not there.
    provider_store(d, TOKEN, ROOT, PIN, "");
    let settings = d.join("keys/provider.toml");
    let text = std::fs::read_to_string(&settings).unwrap();
    private(
        &settings,
        &text.replace(MODULE, "/usr/lib/no-such-pkcs11-module.so"),
    );
    let err = list_err(&hsm, d);
    assert!(err.contains("the module cannot be loaded"), "{err}");

    // A PIN file others can read.
    provider_store(d, TOKEN, ROOT, PIN, "");
    std::fs::set_permissions(d.join("pin"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = list_err(&hsm, d);
    assert!(err.contains("pin"), "{err}");
    std::fs::set_permissions(d.join("pin"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, out) = sealgate(&hsm, d, &["keys", "list"]);
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_root_key_removed_from_the_token_withdraws_the_gateways_keys() {
    let hsm = Hsm::start();
    hsm.keygen(ROOT, &[]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    provider_store(
        d,
        TOKEN,
        ROOT,
        PIN,
        "recheck_secs = 1\noutage_grace_secs = 60\n",
    );
    let (ok, out) = sealgate(&hsm, d, &["keys", "generate"]);
    assert!(ok, "{out}");
    let (gw, c) = serve_store(&hsm, d).await;
    gw_common::put_bytes(&c, "hsm", "doc", b"until removed").await;

    hsm.delete(ROOT);
    let removed = Instant::now();
    let status = loop {
        let status = match c.get_object().bucket("hsm").key("doc").send().await {
            Ok(_) => 200,
            Err(e) => e.raw_response().map_or(0, |r| r.status().as_u16()),
        };
        if status != 200 || removed.elapsed() > Duration::from_secs(20) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A refusal, far inside the 60 s grace.
    assert_eq!(status, 503);
    let r = c
        .put_object()
        .bucket("hsm")
        .key("after")
        .body(b"x".to_vec().into())
        .send()
        .await;
    assert!(r.is_err());
    assert!(!d.join("data/hsm/after").exists());
    drop(gw);
}

/// A wrong PIN is tried once: each try counts toward the token locking its
/// user PIN, so later re-checks do not log in with it again (readiness
/// says why); the right PIN in pin_file brings the keys back.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_pin_is_not_tried_again_and_the_right_one_restores_the_keys() {
    let hsm = Hsm::start();
    hsm.keygen(ROOT, &[]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    provider_store(
        d,
        TOKEN,
        ROOT,
        PIN,
        "recheck_secs = 1\noutage_grace_secs = 60\n",
    );
    let (ok, out) = sealgate(&hsm, d, &["keys", "generate"]);
    assert!(ok, "{out}");
    let (gw, c) = serve_store_with(&hsm, d, true).await;
    let admin = gw.admin.clone().unwrap();
    gw_common::put_bytes(&c, "hsm", "doc", b"behind a PIN").await;

    private(&d.join("pin"), "000000");
    let deadline = Instant::now() + Duration::from_secs(20);
    let why = loop {
        let (status, why) = gw_common::http::get(&admin, "/health/ready").await;
        if (status != 200 && why.contains("not tried again")) || Instant::now() > deadline {
            break why;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(why.contains("refused this PIN before"), "{why}");
    assert!(!why.contains("000000") && !why.contains(PIN), "{why}");
    let r = c.get_object().bucket("hsm").key("doc").send().await;
    assert!(r.is_err());

    private(&d.join("pin"), PIN);
    let deadline = Instant::now() + Duration::from_secs(20);
    while gw_common::try_get_bytes(&c, "hsm", "doc").await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the right PIN did not restore the keys"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(gw);
}
