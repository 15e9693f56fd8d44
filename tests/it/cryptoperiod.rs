//! Cryptoperiods: an active key older than `key_max_age_days` fails
//! `config check`, is reported by the gateway (`key_past_cryptoperiod`)
//! and shows its age in /metrics and `keys list`; rotation ends it.

use crate::gw_common::process::{sealgate, serve_command, start};
use sealgate::keys::KeyStore;
use sealgate::serve::embedded;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const UAK: &str = "cp-upstream";
const USK: &str = "cp-upstream-secret-0123";

/// Makes the store's only key `days` old (as if generated then).
fn age_key(d: &Path, days: i64) {
    let store = KeyStore::load(&d.join("keys")).unwrap();
    let path = d.join(format!("keys/{}.kek", store.active().id()));
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let then = chrono::Utc::now() - chrono::Duration::days(days);
    json["created"] = then
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        .into();
    std::fs::write(&path, format!("{json}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn check(cfg: &Path) -> (bool, String) {
    let out = std::process::Command::new(crate::gw_common::process::bin())
        .args(["config", "check", "--config"])
        .arg(cfg)
        .env_remove("SEALGATE_CONFIG")
        .env_remove("SEALGATE_KEY_MAX_AGE_DAYS")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_past_its_cryptoperiod_is_flagged_until_it_is_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(sealgate(d, &["keys", "generate"]).0);
    age_key(d, 400);
    let up = embedded::start(&d.join("data"), UAK, USK).await.unwrap();
    let cfg = d.join("sealgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nkeys_dir = {:?}\nkey_max_age_days = 365\n[upstream]\nendpoint = \"http://{up}\"\naccess_key = \"{UAK}\"\nsecret_key = \"{USK}\"\n[[credentials]]\naccess_key = \"cp-client\"\nsecret_key = \"cp-client-secret-0123\"\n",
            d.join("keys")
        ),
    )
    .unwrap();
    let (ok, out) = check(&cfg);
    assert!(!ok && out.contains("past key_max_age_days = 365"), "{out}");

    let (ok, out) = sealgate(d, &["keys", "list", "--json"]);
    assert!(ok, "{out}");
    let list: serde_json::Value =
        serde_json::from_str(&out[..out.rfind(']').unwrap() + 1]).unwrap();
    assert!(list[0]["age_days"].as_i64().unwrap() >= 400, "{list}");
    assert_eq!(list[0]["provider"], "file");

    let gw = start(serve_command(d, &cfg, &[]), true).unwrap();
    let (_, metrics) = crate::gw_common::http::get(gw.admin.as_deref().unwrap(), "/metrics").await;
    let age: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sealgate_active_key_age_seconds "))
        .unwrap_or_else(|| panic!("no key age in {metrics}"))
        .parse()
        .unwrap();
    assert!(age >= 400 * 86_400, "{age}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let audit = loop {
        let a = std::fs::read_to_string(d.join("audit.jsonl")).unwrap_or_default();
        if a.contains("key_past_cryptoperiod") || std::time::Instant::now() > deadline {
            break a;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(audit.contains("key_past_cryptoperiod"), "{audit}");
    drop(gw);

    // Rotation ends it: the new active key is young.
    assert!(sealgate(d, &["keys", "rotate"]).0);
    let (ok, out) = check(&cfg);
    assert!(
        ok && out.contains("within its cryptoperiod (365 days)"),
        "{out}"
    );
}

/// `keys inventory`: every key with its state and where it is kept, the
/// cryptoperiod flag as `config check` computes it, and no key material.
#[test]
fn the_inventory_lists_every_key_its_state_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(sealgate(d, &["keys", "generate"]).0);
    age_key(d, 400);
    let first = KeyStore::load(&d.join("keys")).unwrap().active().id();
    let (ok, out) = sealgate(d, &["keys", "rotate"]);
    assert!(ok, "{out}");
    let second = KeyStore::load(&d.join("keys")).unwrap().active().id();
    assert!(sealgate(d, &["keys", "generate"]).0);
    let (ok, out) = sealgate(
        d,
        &[
            "keys",
            "revoke",
            &first.to_string(),
            "--reason",
            "compromised laptop",
        ],
    );
    assert!(ok, "{out}");

    let inventory = |max: &str| {
        let out = std::process::Command::new(crate::gw_common::process::bin())
            .args(["keys", "inventory", "--max-age-days", max])
            .env("SEALGATE_KEYS_DIR", d.join("keys"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = inventory("365");
    let inv: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(inv["format"], "sealgate-key-inventory/1");
    assert!(inv["provider"].is_null(), "{inv}");
    let keys = inv["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3, "{inv}");
    let entry = |id: &str| keys.iter().find(|k| k["id"] == id).unwrap().clone();
    let old = entry(&first.to_string());
    assert_eq!(old["state"], "revoked");
    assert!(
        old["revoked"]
            .as_str()
            .unwrap()
            .contains("compromised laptop")
    );
    assert!(old["age_days"].as_i64().unwrap() >= 399);
    let active = entry(&second.to_string());
    assert_eq!(active["state"], "active");
    assert_eq!(active["past_cryptoperiod"], false);
    assert_eq!(active["kept"], "file");
    assert_eq!(
        keys.iter().filter(|k| k["state"] == "retained").count(),
        1,
        "{inv}"
    );
    // No KEK appears in it.
    for f in std::fs::read_dir(d.join("keys")).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|x| x == "kek") {
            let json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            let key = json["key"].as_str().unwrap();
            assert!(!text.contains(key), "the inventory holds a key");
        }
    }
    // The active key flagged once it is past the cryptoperiod.
    let inv: serde_json::Value = serde_json::from_str(&inventory("0")).unwrap();
    let flagged: Vec<_> = inv["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["past_cryptoperiod"] == true)
        .map(|k| k["id"].clone())
        .collect();
    assert_eq!(flagged, vec![serde_json::Value::from(second.to_string())]);
}
