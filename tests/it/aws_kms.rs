//! Key stores whose keys are wrapped by AWS KMS (moto's KMS, a real
//! `moto_server` as tests/run.sh installs it): no key on disk, the key id
//! authenticated by KMS as encryption context, each way KMS can fail named
//! for the operator, and a key revoked at KMS withdrawing the gateway's
//! keys within the re-check.

use crate::gw_common;
use crate::gw_common::moto::Moto;
use crate::gw_common::process::{Serving, bin, serve_command, start};
use crate::gw_common::{key_files, private};
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use gw_common::client_for;
use sealgate::serve::embedded;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const UAK: &str = "kms-upstream";
const USK: &str = "kms-upstream-secret-0123";
const AK: &str = "kms-client";
const SK: &str = "kms-client-secret-0123";
const ALIAS: &str = "alias/sealgate-root";
const REGION: &str = "eu-central-1";

/// moto's KMS and a client of it (for the test's own key administration).
struct Kms {
    moto: Moto,
    admin: aws_sdk_kms::Client,
}

impl Kms {
    async fn start() -> Kms {
        let moto = Moto::start().await;
        let conf = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(moto.url())
            .credentials_provider(Credentials::new(
                "kms-admin",
                "kms-admin-secret",
                None,
                None,
                "test",
            ))
            .build();
        Kms {
            moto,
            admin: aws_sdk_kms::Client::from_conf(conf),
        }
    }

    /// A new symmetric key named `alias`; its id.
    async fn create_key(&self, alias: &str) -> String {
        let id = self
            .admin
            .create_key()
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap()
            .key_id;
        self.admin
            .create_alias()
            .alias_name(alias)
            .target_key_id(&id)
            .send()
            .await
            .unwrap();
        id
    }
}

/// A store in `d/keys` whose provider is KMS key `key_id` at `endpoint`,
/// with `extra` settings before the section.
fn provider_store(d: &Path, endpoint: &str, key_id: &str, extra: &str) {
    let keys = d.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
    private(
        &keys.join("provider.toml"),
        &format!(
            "{extra}[aws_kms]\nkey_id = \"{key_id}\"\nregion = \"{REGION}\"\nendpoint_url = \"{endpoint}\"\ntimeout_secs = 3\n"
        ),
    );
}

/// The gateway's AWS credentials, from the environment as the usual chain
/// reads them, and nothing of the host's own AWS settings.
fn aws_env<'a>(cmd: &'a mut Command, d: &Path) -> &'a mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", "kms-gateway")
        .env("AWS_SECRET_ACCESS_KEY", "kms-gateway-secret")
        .env("AWS_CONFIG_FILE", d.join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", d.join("no-aws-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_KMS")
}

/// `sealgate ARGS` on the store in `d/keys` with the gateway's
/// credentials: whether it succeeded, and its stdout and stderr.
fn sealgate(d: &Path, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args).env("SEALGATE_KEYS_DIR", d.join("keys"));
    let out = aws_env(&mut cmd, d).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `sealgate keys list` must fail; its words.
fn list_err(d: &Path) -> String {
    let (ok, out) = sealgate(d, &["keys", "list"]);
    assert!(!ok, "the store loaded: {out}");
    out
}

/// A gateway (the real binary) on the store in `d/keys` over an embedded
/// provider in `d/data`, with a bucket `kms`, and a client of it.
async fn serve_store(d: &Path) -> (Serving, aws_sdk_s3::Client) {
    let up = embedded::start(&d.join("data"), UAK, USK).await.unwrap();
    let cfg = d.join("sealgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nkeys_dir = {:?}\n[upstream]\nendpoint = \"http://{up}\"\naccess_key = \"{UAK}\"\nsecret_key = \"{USK}\"\n[[credentials]]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n",
            d.join("keys")
        ),
    )
    .unwrap();
    let mut cmd = serve_command(d, &cfg, &[]);
    aws_env(&mut cmd, d);
    let gw = start(cmd, false).unwrap();
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket().bucket("kms").send().await.unwrap();
    (gw, c)
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_wrapped_by_kms_hold_no_key_on_disk_and_serve_objects() {
    let kms = Kms::start().await;
    kms.create_key(ALIAS).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    provider_store(d, &kms.moto.url(), ALIAS, "");
    for _ in 0..2 {
        let (ok, out) = sealgate(d, &["keys", "generate"]);
        assert!(ok, "{out}");
    }
    let files = key_files(d);
    assert_eq!(files.len(), 2);
    for (path, json) in &files {
        assert_eq!(json["format"], "sealgate-kek-wrapped/1", "{path:?}");
        assert!(json.get("key").is_none(), "{json}");
        assert_eq!(json["wrapped"]["provider"], "aws_kms");
        assert_eq!(json["wrapped"]["key"], ALIAS);
        let blob = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            json["wrapped"]["ciphertext"].as_str().unwrap(),
        )
        .expect("the ciphertext blob, base64");
        assert!(blob.len() > 32, "{} bytes", blob.len());
    }
    // Two loads (list, then serve) each unwrap both keys: one client, the
    // credential chain walked once per load.
    let (ok, out) = sealgate(d, &["keys", "list"]);
    assert!(ok, "{out}");
    assert!(out.contains("aws_kms"), "{out}");
    // The inventory says where the root key is, and which jurisdiction.
    let (ok, out) = sealgate(d, &["keys", "inventory"]);
    assert!(ok, "{out}");
    let inv: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(inv["provider"]["kind"], "aws_kms", "{inv}");
    assert_eq!(inv["provider"]["root_key"], ALIAS);
    assert_eq!(inv["provider"]["location"], kms.moto.url());
    assert_eq!(inv["provider"]["jurisdiction"], "EU");
    assert_eq!(inv["keys"].as_array().unwrap().len(), 2);

    let (gw, c) = serve_store(d).await;
    gw_common::put_bytes(&c, "kms", "doc", b"kept under KMS").await;
    assert_eq!(
        gw_common::get_bytes(&c, "kms", "doc").await,
        b"kept under KMS"
    );
    let stored = std::fs::read(d.join("data/kms/doc")).unwrap();
    assert!(!stored.windows(14).any(|w| w == b"kept under KMS"));
    drop(gw);

    // KMS authenticates the key id: one key's blob in the other's file is
    // refused by KMS, not unwrapped into the wrong key.
    let (a, mut first) = files[0].clone();
    let (_, second) = &files[1];
    first["wrapped"]["ciphertext"] = second["wrapped"]["ciphertext"].clone();
    private(&a, &first.to_string());
    let err = list_err(d);
    assert!(err.contains("refused to unwrap"), "{err}");
}

/// The KMS's region is a jurisdiction like the storage provider's: a
/// gateway allowed only elsewhere does not start without a data-location
/// exception, and says which of the two is outside.
#[tokio::test(flavor = "multi_thread")]
async fn a_kms_outside_the_allowed_jurisdictions_stops_the_gateway() {
    let kms = Kms::start().await;
    kms.create_key(ALIAS).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    provider_store(d, &kms.moto.url(), ALIAS, "");
    let (ok, out) = sealgate(d, &["keys", "generate"]);
    assert!(ok, "{out}");
    let up = embedded::start(&d.join("data"), UAK, USK).await.unwrap();
    let cfg = d.join("sealgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nkeys_dir = {:?}\n[upstream]\nendpoint = \"http://{up}\"\naccess_key = \"{UAK}\"\nsecret_key = \"{USK}\"\njurisdiction = \"US\"\n[[credentials]]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n[policy]\nallowed_jurisdictions = [\"US\"]\n",
            d.join("keys")
        ),
    )
    .unwrap();
    let mut cmd = serve_command(d, &cfg, &[]);
    aws_env(&mut cmd, d);
    let err = start(cmd, false).unwrap_err();
    assert!(
        err.contains("the key provider's jurisdiction EU is not among the allowed (US)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_way_kms_fails_is_named() {
    let kms = Kms::start().await;
    kms.create_key(ALIAS).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // A key KMS does not have.
    provider_store(d, &kms.moto.url(), "alias/misspelt", "");
    let (ok, out) = sealgate(d, &["keys", "generate"]);
    assert!(!ok);
    assert!(out.contains("has no key \"alias/misspelt\""), "{out}");

    provider_store(d, &kms.moto.url(), ALIAS, "");
    let (ok, out) = sealgate(d, &["keys", "generate"]);
    assert!(ok, "{out}");

    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    provider_store(d, &format!("http://127.0.0.1:{port}"), ALIAS, "");
    let err = list_err(d);
    assert!(err.contains("unreachable"), "{err}");

    // Keys and credentials cross only TLS or loopback.
    provider_store(d, "http://kms.example:80", ALIAS, "");
    let err = list_err(d);
    assert!(err.contains("plain http:// only to a loopback"), "{err}");

    // No credentials anywhere in the chain.
    provider_store(d, &kms.moto.url(), ALIAS, "");
    let out = Command::new(bin())
        .args(["keys", "list"])
        .env("SEALGATE_KEYS_DIR", d.join("keys"))
        .env("AWS_CONFIG_FILE", d.join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", d.join("no-aws-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("credentials"), "{err}");

    // Another KMS key under the configured name: the blob is not its.
    kms.admin
        .delete_alias()
        .alias_name(ALIAS)
        .send()
        .await
        .unwrap();
    kms.create_key(ALIAS).await;
    let err = list_err(d);
    // KMS answers IncorrectKeyException (moto: AccessDeniedException).
    assert!(err.contains("refused"), "{err}");
}

/// A refusal at KMS withdraws the keys at the next re-check, far inside
/// the outage grace. KMS refuses a disabled key with DisabledException;
/// moto does not enforce that on Decrypt, so the revocation here is the
/// alias removed (NotFoundException, as a key deleted at KMS answers).
/// Both are refusals (`aws_kms::tests` maps every KMS error code).
#[tokio::test(flavor = "multi_thread")]
async fn a_key_revoked_at_kms_withdraws_the_gateways_keys_within_the_recheck() {
    let kms = Kms::start().await;
    let key = kms.create_key(ALIAS).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    provider_store(
        d,
        &kms.moto.url(),
        ALIAS,
        "recheck_secs = 1\noutage_grace_secs = 60\n",
    );
    let (ok, out) = sealgate(d, &["keys", "generate"]);
    assert!(ok, "{out}");
    let (gw, c) = serve_store(d).await;
    gw_common::put_bytes(&c, "kms", "doc", b"until revoked").await;

    kms.admin
        .delete_alias()
        .alias_name(ALIAS)
        .send()
        .await
        .unwrap();
    let revoked = Instant::now();
    let status = loop {
        let r = c.get_object().bucket("kms").key("doc").send().await;
        let status = match &r {
            Ok(_) => 200,
            Err(e) => e.raw_response().map_or(0, |r| r.status().as_u16()),
        };
        if status != 200 || revoked.elapsed() > Duration::from_secs(20) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Far inside the 60 s grace: a refusal is not an outage.
    assert_eq!(status, 503);
    assert!(revoked.elapsed() < Duration::from_secs(20));
    let r = c
        .put_object()
        .bucket("kms")
        .key("after")
        .body(b"x".to_vec().into())
        .send()
        .await;
    assert!(r.is_err());
    assert!(!d.join("data/kms/after").exists());

    kms.admin
        .create_alias()
        .alias_name(ALIAS)
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    let restored = Instant::now();
    loop {
        if c.get_object().bucket("kms").key("doc").send().await.is_ok() {
            break;
        }
        assert!(restored.elapsed() < Duration::from_secs(20), "not restored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn destroying_a_kms_key_domain_schedules_the_keys_deletion() {
    let kms = Kms::start().await;
    kms.create_key(ALIAS).await;
    let hr_id = kms.create_key("alias/sealgate-hr").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    provider_store(d, &kms.moto.url(), ALIAS, "");
    let (ok, out) = sealgate(d, &["keys", "generate"]);
    assert!(ok, "{out}");
    let hr = d.join("keys/domains/hr");
    std::fs::create_dir_all(&hr).unwrap();
    for p in [d.join("keys/domains"), hr.clone()] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    private(
        &hr.join("provider.toml"),
        &format!(
            "[aws_kms]\nkey_id = \"alias/sealgate-hr\"\nregion = \"{REGION}\"\nendpoint_url = \"{}\"\ntimeout_secs = 3\n",
            kms.moto.url()
        ),
    );
    let (ok, out) = sealgate(d, &["keys", "generate", "--domain", "hr"]);
    assert!(ok, "{out}");
    let up = embedded::start(&d.join("data"), UAK, USK).await.unwrap();
    let registry = d.join("exceptions.jsonl");
    let cfg = d.join("sealgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "keys_dir = {:?}\n[upstream]\nendpoint = \"http://{up}\"\naccess_key = \"{UAK}\"\nsecret_key = \"{USK}\"\n[policy]\nregistry = {registry:?}\n[[policy.key_domains]]\nbucket = \"hr-*\"\ndomain = \"hr\"\n",
            d.join("keys")
        ),
    )
    .unwrap();
    let reg = registry.to_str().unwrap();
    let (ok, out) = sealgate(
        d,
        &[
            "exception",
            "register",
            "--registry",
            reg,
            "--id",
            "EX-ERASE-HR",
            "--approver",
            "DPO",
            "--decision",
            "request 9",
            "--reason",
            "retention over",
            "--risk",
            "intended",
            "--classification",
            "personal",
            "--bucket",
            "hr-*",
            "--allow",
            "erasure",
            "--domain",
            "hr",
            "--starts",
            "2026-01-01",
            "--expires",
            "2099-01-01",
        ],
    );
    assert!(ok, "{out}");
    let cert = d.join("cert.json");
    let (ok, out) = tokio::task::spawn_blocking({
        let (d, cfg, cert) = (d.to_owned(), cfg.clone(), cert.clone());
        move || {
            sealgate(
                &d,
                &[
                    "keys",
                    "destroy",
                    "--domain",
                    "hr",
                    "--exception",
                    "EX-ERASE-HR",
                    "--certificate",
                    cert.to_str().unwrap(),
                    "--config",
                    cfg.to_str().unwrap(),
                ],
            )
        }
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    let state = kms
        .admin
        .describe_key()
        .key_id(&hr_id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_state;
    assert_eq!(
        state,
        Some(aws_sdk_kms::types::KeyState::PendingDeletion),
        "the domain's KMS key"
    );
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cert).unwrap()).unwrap();
    assert!(
        c["receipts"][0]
            .as_str()
            .unwrap()
            .contains("PendingDeletion"),
        "{c}"
    );
    // The store's own KMS key is untouched and the store still loads.
    let (ok, out) = sealgate(d, &["keys", "list"]);
    assert!(ok && out.contains("destroyed"), "{out}");
}
