//! `sealgate exception …` as an administrator uses it: the real binary, a
//! real key store and registry file.

use std::path::Path;
use std::process::Command;

fn sealgate(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sealgate"))
        .args(args)
        .env("SEALGATE_KEYS_DIR", dir.join("keys"))
        .env("SEALGATE_REGISTRY", dir.join("exceptions.jsonl"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

const REGISTER: &[&str] = &[
    "exception",
    "register",
    "--id",
    "EX-2026-001",
    "--approver",
    "CISO Jane Doe",
    "--decision",
    "Security board minutes 2026-11-02 item 4",
    "--reason",
    "public web assets",
    "--risk",
    "low: already public",
    "--classification",
    "public",
    "--bucket",
    "www-assets",
    "--allow",
    "unencrypted-writes",
    "--starts",
    "2026-01-01",
    "--expires",
    "2099-01-01",
];

#[test]
fn register_list_revoke_verify_and_detect_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(sealgate(d, &["keys", "generate"]).0);
    let (ok, out) = sealgate(d, REGISTER);
    assert!(ok, "{out}");
    let (ok, out) = sealgate(d, &["exception", "list"]);
    assert!(
        ok && out.contains("EX-2026-001") && out.contains("active"),
        "{out}"
    );
    let (ok, out) = sealgate(d, &["exception", "show", "EX-2026-001"]);
    assert!(ok && out.contains("Security board minutes"), "{out}");

    // Bad input: refused with a precise message, registry unchanged.
    let before = std::fs::read(d.join("exceptions.jsonl")).unwrap();
    let mut bad_date = REGISTER.to_vec();
    bad_date[3] = "EX-2026-002";
    *bad_date.last_mut().unwrap() = "2099-13-45";
    let (ok, out) = sealgate(d, &bad_date);
    assert!(!ok && out.contains("is not a date"), "{out}");
    let mut backwards = REGISTER.to_vec();
    backwards[3] = "EX-2026-002";
    *backwards.last_mut().unwrap() = "2025-01-01";
    let (ok, out) = sealgate(d, &backwards);
    assert!(!ok && out.contains("not after start"), "{out}");
    let (ok, out) = sealgate(d, REGISTER);
    assert!(!ok && out.contains("already exists"), "{out}");
    assert_eq!(std::fs::read(d.join("exceptions.jsonl")).unwrap(), before);

    let (ok, out) = sealgate(
        d,
        &[
            "exception",
            "revoke",
            "EX-2026-001",
            "--by",
            "DPO",
            "--reason",
            "holds customer data now",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = sealgate(d, &["exception", "list"]);
    assert!(ok && out.contains("revoked"), "{out}");
    let (ok, out) = sealgate(d, &["exception", "verify"]);
    assert!(ok && out.contains("2 records"), "{out}");

    // Moving the expiry by hand is detected, naming the line.
    let text = std::fs::read_to_string(d.join("exceptions.jsonl")).unwrap();
    std::fs::write(
        d.join("exceptions.jsonl"),
        text.replacen("2099-01-01", "2199-01-01", 1),
    )
    .unwrap();
    let (ok, out) = sealgate(d, &["exception", "verify"]);
    assert!(
        !ok && out.contains("line 1") && out.contains("authentication failed"),
        "{out}"
    );
}
