//! `sealgate config check` with the real binary.

use std::process::Command;

fn check(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sealgate"))
        .args(["config", "check"])
        .args(args)
        .env_remove("SEALGATE_CONFIG")
        .env_remove("SEALGATE_UPSTREAM_ENDPOINT")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_valid_config_passes_and_problems_fail_with_their_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    sealgate::keys::KeyStore::generate(&keys, false).unwrap();
    let secret = dir.path().join("app.secret");
    std::fs::write(&secret, "app-secret\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = dir.path().join("sealgate.toml");
    let text = format!(
        "keys_dir = {keys:?}\n[upstream]\nendpoint = \"https://s3.eu-central-1.amazonaws.com\"\nregion = \"eu-central-1\"\n[[credentials]]\naccess_key = \"app\"\nsecret_key_file = {secret:?}\nbuckets = [\"backups\"]\n"
    );
    std::fs::write(&cfg, &text).unwrap();
    let (ok, out) = check(&["--config", cfg.to_str().unwrap()]);
    assert!(ok && out.contains("configuration is valid"), "{out}");
    assert!(out.contains("every bucket: encrypted"), "{out}");

    // A passthrough bucket needs an exception in force.
    let reg = dir.path().join("exceptions.jsonl");
    let with_policy = format!(
        "{text}[policy]\nregistry = {reg:?}\n[[policy.passthrough]]\nbucket = \"www\"\nexception = \"EX-9\"\n"
    );
    std::fs::write(&cfg, &with_policy).unwrap();
    let (ok, out) = check(&["--config", cfg.to_str().unwrap()]);
    assert!(
        !ok && out.contains("EX-9") && out.contains("not in the registry"),
        "{out}"
    );
    let keys_store = sealgate::keys::KeyStore::load(&keys).unwrap();
    sealgate::policy::registry::Registry::register(
        &reg,
        &keys_store,
        sealgate::policy::registry::Exception {
            id: "EX-9".into(),
            approver: "CISO".into(),
            decision_ref: "minutes".into(),
            reason: "public".into(),
            risk: "low".into(),
            classification: "public".into(),
            buckets: vec!["www".into()],
            allows: vec![sealgate::policy::registry::Allowance::UnencryptedWrites],
            domains: vec![],
            starts: chrono::Utc::now() - chrono::Duration::days(1),
            expires: chrono::Utc::now() + chrono::Duration::days(30),
        },
    )
    .unwrap();
    let (ok, out) = check(&["--config", cfg.to_str().unwrap()]);
    assert!(
        ok && out.contains("bucket www: PASSTHROUGH") && out.contains("EX-9"),
        "{out}"
    );
    std::fs::write(&cfg, &text).unwrap();

    // A world-readable secret file fails, naming the fix.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, out) = check(&["--config", cfg.to_str().unwrap()]);
    assert!(!ok && out.contains("chmod 600"), "{out}");

    // An unknown setting is refused with the file and the key.
    std::fs::write(
        &cfg,
        text.replace("[upstream]", "listn = \"x\"\n[upstream]"),
    )
    .unwrap();
    let (ok, out) = check(&["--config", cfg.to_str().unwrap()]);
    assert!(!ok && out.contains("listn"), "{out}");

    // No configuration at all.
    let (ok, out) = check(&[]);
    assert!(!ok && out.contains("--config"), "{out}");
}
