use super::*;
use crate::format::kdf;
use chrono::TimeZone;

fn setup() -> (tempfile::TempDir, PathBuf, KeyStore) {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    KeyStore::generate(&keys_dir, false).unwrap();
    let keys = KeyStore::load(&keys_dir).unwrap();
    let path = dir.path().join("exceptions.jsonl");
    (dir, path, keys)
}

fn exception(id: &str) -> Exception {
    Exception {
        id: id.into(),
        approver: "CISO J. Doe".into(),
        decision_ref: "Board minutes 2026-11-02 §4".into(),
        reason: "public website assets".into(),
        risk: "low: data is public".into(),
        classification: "public".into(),
        buckets: vec!["www-assets".into(), "cdn-*".into()],
        allows: vec![Allowance::UnencryptedWrites],
        domains: vec![],
        starts: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        expires: Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
    }
}

#[test]
fn register_revoke_and_states() {
    let (_d, path, keys) = setup();
    Registry::register(&path, &keys, exception("EX-1")).unwrap();
    Registry::register(&path, &keys, exception("EX-2")).unwrap();
    let reg = Registry::load(&path, &keys).unwrap();
    assert_eq!(reg.len(), 2);
    let mid = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    assert_eq!(reg.state("EX-1", mid), Some(State::Active));
    assert_eq!(
        reg.state("EX-1", Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap()),
        Some(State::Pending)
    );
    assert_eq!(
        reg.state("EX-1", Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()),
        Some(State::Expired)
    );
    Registry::revoke(
        &path,
        &keys,
        Revocation {
            id: "EX-1".into(),
            by: "DPO".into(),
            reason: "bucket now holds customer data".into(),
        },
    )
    .unwrap();
    let reg = Registry::load(&path, &keys).unwrap();
    assert_eq!(reg.state("EX-1", mid), Some(State::Revoked));
    assert_eq!(reg.state("EX-2", mid), Some(State::Active));
    // The original record is still there.
    assert_eq!(reg.exceptions["EX-1"].0, exception("EX-1"));
    assert_eq!(reg.len(), 3);
}

#[test]
fn bad_entries_are_refused_and_change_nothing() {
    let (_d, path, keys) = setup();
    Registry::register(&path, &keys, exception("EX-1")).unwrap();
    let before = std::fs::read(&path).unwrap();
    let mut cases: Vec<(Exception, &str)> = Vec::new();
    let mut e = exception("EX-9");
    e.expires = e.starts;
    cases.push((e, "not after start"));
    let mut e = exception("EX-9");
    e.approver = " ".into();
    cases.push((e, "approver"));
    let mut e = exception("EX-9");
    e.decision_ref = String::new();
    cases.push((e, "decision reference"));
    let mut e = exception("EX-9");
    e.buckets = vec!["Bad_Bucket".into()];
    cases.push((e, "bucket pattern"));
    let mut e = exception("EX-9");
    e.allows.clear();
    cases.push((e, "allows nothing"));
    cases.push((exception("EX-1"), "already exists"));
    for (e, want) in cases {
        let err = Registry::register(&path, &keys, e).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
        assert!(err.contains("unchanged"), "{err}");
    }
    for (id, by, want) in [("EX-7", "x", "no exception"), ("EX-1", "", "needs who")] {
        let err = Registry::revoke(
            &path,
            &keys,
            Revocation {
                id: id.into(),
                by: by.into(),
                reason: "r".into(),
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(want), "{err}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn tampering_is_detected_and_named() {
    let (_d, path, keys) = setup();
    for id in ["EX-1", "EX-2", "EX-3"] {
        Registry::register(&path, &keys, exception(id)).unwrap();
    }
    let good = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let check = |text: String, line: usize, why: &str| {
        std::fs::write(&path, text).unwrap();
        let err = Registry::load(&path, &keys).unwrap_err().to_string();
        assert!(err.contains(&format!("line {line}")), "{err}");
        assert!(err.contains(why), "{err}");
    };
    // An edited expiry date.
    check(
        good.replacen("2027-01-01", "2099-01-01", 2),
        1,
        "authentication failed",
    );
    // A deleted line.
    check(
        format!("{}\n{}\n", lines[0], lines[2]),
        2,
        "sequence number",
    );
    // Reordered lines.
    check(
        format!("{}\n{}\n{}\n", lines[1], lines[0], lines[2]),
        1,
        "sequence number",
    );
    // Cut short mid-line.
    check(good[..good.len() - 20].to_owned(), 3, "cut short");
    // A forged line appended without the key.
    let forged = lines[2].replace("EX-3", "EX-4");
    check(format!("{good}{forged}\n"), 4, "sequence number");
    std::fs::write(&path, &good).unwrap();
    assert_eq!(Registry::load(&path, &keys).unwrap().len(), 3);
}

#[test]
fn patterns() {
    assert!(matches("cdn-*", "cdn-eu"));
    assert!(matches("*-public", "web-public"));
    assert!(matches("a*b*c", "axxbyyc"));
    assert!(!matches("cdn-*", "xcdn-eu"));
    assert!(!matches("www", "www2"));
    assert!(valid_pattern("cdn-*") && valid_pattern("www-assets"));
    assert!(!valid_pattern("ab") && !valid_pattern("UPPER") && !valid_pattern(""));
}

#[test]
fn an_approver_signature_that_does_not_verify_is_refused_at_load() {
    use crate::policy::approval;
    let (_d, path, keys) = setup();
    let approver = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let signed = approval::sign(&approver, &exception("EX-1"));
    let state = crate::config::verified_state_path(&path);
    Registry::register_at(
        &path,
        &state,
        &keys,
        exception("EX-1"),
        Some(signed.clone()),
    )
    .unwrap();
    let reg = Registry::load(&path, &keys).unwrap();
    assert_eq!(reg.approval("EX-1"), Some(&signed));
    // Registration refuses a signature made over other fields.
    let mut other = exception("EX-2");
    let err = Registry::register_at(&path, &state, &keys, other.clone(), Some(signed.clone()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not verify"), "{err}");
    // Someone holding the key store writes a line whose approval was made
    // for another exception (re-authenticated, so only the signature fails).
    other.buckets = vec!["*".into()];
    let text = std::fs::read(&path).unwrap();
    let reg = Registry::parse(&text, &path, &keys).unwrap();
    let kek = keys.active();
    let body = Body {
        seq: 2,
        time: Utc::now(),
        prev: hex::encode(reg.last_hash),
        key: kek.id().to_string(),
        entry: Entry::Register(other),
        approval: Some(signed),
    };
    let mac = hex::encode(kdf::registry_mac(
        kek.secret(),
        &serde_json::to_vec(&body).unwrap(),
    ));
    let mut forged = text.clone();
    forged.extend(serde_json::to_vec(&Line { body, mac }).unwrap());
    forged.push(b'\n');
    let err = Registry::parse(&forged, &path, &keys)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("does not verify"),
        "{err}"
    );
}
