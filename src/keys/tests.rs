use super::*;
use crate::config::euid;
use crate::format::stream::{NameCheck, open_all, seal_single};
use crate::format::{Algorithm, Envelope, ObjectName};
use std::os::unix::fs::PermissionsExt;

const NAME: ObjectName<'static> = ObjectName {
    bucket: "b",
    key: "k",
};

fn store() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("keys");
    (t, dir)
}

#[test]
fn generate_then_load_lists_without_secret() {
    let (_t, dir) = store();
    let id = KeyStore::generate(&dir, false).unwrap();
    let s = KeyStore::load(&dir).unwrap();
    assert_eq!(s.active().id(), id);
    let list = s.list();
    assert_eq!(list.len(), 1);
    assert!(list[0].active);
    let mode = fs_mode(&dir.join(format!("{id}.kek")));
    assert_eq!(mode & 0o077, 0, "key file must be private, got {mode:o}");
    let shown = format!("{s:?}");
    let file = std::fs::read_to_string(dir.join(format!("{id}.kek"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert!(
        !shown.contains(v["key"].as_str().unwrap()),
        "Debug must not print the secret"
    );
}

#[test]
fn rotation_keeps_old_keys_decrypting() {
    let (_t, dir) = store();
    let old = KeyStore::generate(&dir, false).unwrap();
    let s = KeyStore::load(&dir).unwrap();
    let (env, dek) = Envelope::create(
        s.active(),
        Algorithm::Aes256Gcm,
        &mut crate::format::OsRandom,
    )
    .unwrap();
    let sealed = seal_single(
        &env,
        &dek,
        NAME,
        b"written under the old key",
        &mut crate::format::OsRandom,
    )
    .unwrap();
    let new = KeyStore::rotate(&dir).unwrap();
    assert_ne!(old, new);
    let s = KeyStore::load(&dir).unwrap();
    assert_eq!(s.active().id(), new);
    assert_eq!(s.list().iter().filter(|k| k.active).count(), 1);
    assert_eq!(
        open_all(&s, NameCheck::Inline(NAME), &sealed).unwrap(),
        b"written under the old key"
    );
}

#[test]
fn second_generate_is_inactive_until_activated() {
    let (_t, dir) = store();
    let first = KeyStore::generate(&dir, false).unwrap();
    let second = KeyStore::generate(&dir, false).unwrap();
    assert_eq!(KeyStore::load(&dir).unwrap().active().id(), first);
    KeyStore::activate(&dir, second).unwrap();
    assert_eq!(KeyStore::load(&dir).unwrap().active().id(), second);
}

#[test]
fn group_readable_key_is_refused_with_fix() {
    let (_t, dir) = store();
    let id = KeyStore::generate(&dir, false).unwrap();
    let path = dir.join(format!("{id}.kek"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = KeyStore::load(&dir).unwrap_err();
    assert!(
        matches!(err, KeyError::InsecurePermissions { mode: 0o640, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("chmod 600") && msg.contains(&path.display().to_string()),
        "{msg}"
    );
}

#[test]
fn malformed_key_file_is_named() {
    let (_t, dir) = store();
    KeyStore::generate(&dir, false).unwrap();
    let bad = dir.join("broken.kek");
    for (content, reason) in [
        ("not json", "not a key file"),
        (
            r#"{"format":"sealgate-kek/1","id":"zz","created":"2026-01-01T00:00:00Z","key":"00"}"#,
            "id must be",
        ),
        (
            r#"{"format":"sealgate-kek/1","id":"000102030405060708090a0b0c0d0e0f","created":"yesterday","key":"00"}"#,
            "RFC 3339",
        ),
        (
            r#"{"format":"sealgate-kek/1","id":"000102030405060708090a0b0c0d0e0f","created":"2026-01-01T00:00:00Z","key":"0102"}"#,
            "64 hex",
        ),
        (
            r#"{"format":"other","id":"","created":"","key":""}"#,
            "format is",
        ),
    ] {
        write_private(&bad, content);
        let err = KeyStore::load(&dir).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, KeyError::Malformed { .. }), "{msg}");
        assert!(msg.contains("broken.kek") && msg.contains(reason), "{msg}");
    }
}

#[test]
fn duplicate_ids_are_refused() {
    let (_t, dir) = store();
    let id = KeyStore::generate(&dir, false).unwrap();
    let body = std::fs::read_to_string(dir.join(format!("{id}.kek"))).unwrap();
    write_private(&dir.join("copy.kek"), &body);
    let err = KeyStore::load(&dir).unwrap_err();
    assert!(
        matches!(err, KeyError::Duplicate { id: d, .. } if d == id),
        "{err}"
    );
}

#[test]
fn missing_dir_empty_store_and_missing_active_are_explained() {
    let (_t, dir) = store();
    assert!(matches!(
        KeyStore::load(&dir),
        Err(KeyError::MissingDir { .. })
    ));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(matches!(KeyStore::load(&dir), Err(KeyError::Empty { .. })));
    KeyStore::generate(&dir, false).unwrap();
    std::fs::remove_file(dir.join(ACTIVE_FILE)).unwrap();
    let err = KeyStore::load(&dir).unwrap_err();
    assert!(matches!(err, KeyError::NoActive { .. }), "{err}");
    std::fs::write(dir.join(ACTIVE_FILE), "000102030405060708090a0b0c0d0e0f\n").unwrap();
    assert!(matches!(
        KeyStore::load(&dir),
        Err(KeyError::ActiveUnknown { .. })
    ));
}

fn write_private(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn fs_mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode()
}

#[test]
fn a_revoked_key_stops_opening_objects_and_the_active_key_cannot_be_revoked() {
    let (_t, dir) = store();
    let old = KeyStore::generate(&dir, false).unwrap();
    let s = KeyStore::load(&dir).unwrap();
    let (env, dek) = Envelope::create(
        s.active(),
        Algorithm::Aes256Gcm,
        &mut crate::format::OsRandom,
    )
    .unwrap();
    let sealed = seal_single(&env, &dek, NAME, b"old", &mut crate::format::OsRandom).unwrap();
    let r = |secs: i64| Revocation {
        at: Utc::now() + chrono::Duration::seconds(secs),
        reason: "laptop lost".into(),
    };
    // The active key is refused, naming the way out.
    let e = KeyStore::revoke(&dir, old, &r(0)).unwrap_err().to_string();
    assert!(e.contains("make another key active first"), "{e}");
    let new = KeyStore::rotate(&dir).unwrap();
    // Scheduled in the future: still opens.
    let path = KeyStore::revoke(&dir, old, &r(3600)).unwrap();
    let s = KeyStore::load(&dir).unwrap();
    assert_eq!(
        open_all(&s, NameCheck::Inline(NAME), &sealed).unwrap(),
        b"old"
    );
    assert!(s.list().iter().any(|k| {
        k.id == old.to_string()
            && k.revoked
                .as_deref()
                .is_some_and(|v| v.contains("laptop lost"))
    }));
    // A second revocation is refused; replacing the record with one in the
    // past takes effect at the next load.
    let e = KeyStore::revoke(&dir, old, &r(0)).unwrap_err().to_string();
    assert!(e.contains("already revoked"), "{e}");
    std::fs::remove_file(&path).unwrap();
    KeyStore::revoke(&dir, old, &r(-1)).unwrap();
    let s = KeyStore::load(&dir).unwrap();
    match open_all(&s, NameCheck::Inline(NAME), &sealed) {
        Err(crate::format::FormatError::RevokedKey { id, why }) => {
            assert_eq!(id, old);
            assert!(why.contains("laptop lost"), "{why}");
        }
        other => panic!("expected RevokedKey, got {other:?}"),
    }
    // A revoked key cannot be made active again.
    let e = KeyStore::activate(&dir, old).unwrap_err().to_string();
    assert!(e.contains("revoked"), "{e}");
    assert_eq!(KeyStore::load(&dir).unwrap().active().id(), new);
}

#[test]
fn broken_revocation_records_are_named() {
    let (_t, dir) = store();
    let id = KeyStore::generate(&dir, false).unwrap();
    // A record revoking the active key (written by hand) stops the load.
    let active_rec = dir.join(format!("{id}.revoked"));
    write_private(
        &active_rec,
        &format!(
            "{{\"format\":\"sealgate-revocation/1\",\"id\":\"{id}\",\"revoked\":\"2026-01-01T00:00:00Z\",\"reason\":\"x\"}}\n"
        ),
    );
    let e = KeyStore::load(&dir).unwrap_err().to_string();
    assert!(e.contains("revoked"), "{e}");
    std::fs::remove_file(&active_rec).unwrap();
    // Unknown key, bad time, wrong file name: each named.
    let other = "0123456789abcdef0123456789abcdef";
    for (name, body, want) in [
        (
            format!("{other}.revoked"),
            format!(
                "{{\"format\":\"sealgate-revocation/1\",\"id\":\"{other}\",\"revoked\":\"2026-01-01T00:00:00Z\",\"reason\":\"x\"}}"
            ),
            "not in the key store",
        ),
        (
            format!("{other}.revoked"),
            format!(
                "{{\"format\":\"sealgate-revocation/1\",\"id\":\"{other}\",\"revoked\":\"yesterday\",\"reason\":\"x\"}}"
            ),
            "RFC 3339",
        ),
        (
            "other.revoked".to_string(),
            format!(
                "{{\"format\":\"sealgate-revocation/1\",\"id\":\"{id}\",\"revoked\":\"2026-01-01T00:00:00Z\",\"reason\":\"x\"}}"
            ),
            "file name and the id differ",
        ),
        (
            "junk.revoked".to_string(),
            "{".to_string(),
            "not a revocation file",
        ),
    ] {
        let p = dir.join(&name);
        write_private(&p, &body);
        let e = KeyStore::load(&dir).unwrap_err().to_string();
        assert!(e.contains(want) && e.contains(&name), "{name}: {e}");
        std::fs::remove_file(&p).unwrap();
    }
    assert!(KeyStore::load(&dir).is_ok());
}

/// Whether files can be given to another user (tests and CI run as root).
fn can_chown() -> bool {
    euid() == 0
}

/// A uid that is neither the test's nor root's.
const OTHER_UID: u32 = 12345;

#[test]
fn a_keys_dir_writable_by_group_or_others_is_refused_with_fix() {
    let (_t, dir) = store();
    KeyStore::generate(&dir, false).unwrap();
    assert_eq!(
        fs_mode(&dir) & 0o777,
        0o700,
        "generate creates the dir 0700"
    );
    for mode in [0o770, 0o707, 0o775, 0o1777] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = KeyStore::load(&dir).unwrap_err();
        assert!(
            matches!(err, KeyError::InsecureDir { mode: m, .. } if m == mode),
            "{err}"
        );
        let msg = err.to_string();
        let d = dir.display().to_string();
        assert!(
            msg.contains(&format!(
                "keys directory {d} is writable by group or others (mode {mode:04o})"
            )) && msg.contains(&format!("run `chmod 700 {d}`")),
            "{msg}"
        );
        // Nor can a key be added to it.
        assert!(matches!(
            KeyStore::generate(&dir, true),
            Err(KeyError::InsecureDir { .. })
        ));
    }
    // Readable by others is fine for the directory (key files are 0600).
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    KeyStore::load(&dir).unwrap();
}

#[test]
fn a_planted_key_owned_by_another_user_is_refused_even_when_active() {
    if !can_chown() {
        return;
    }
    let (_t, dir) = store();
    KeyStore::generate(&dir, false).unwrap();
    // A key made elsewhere, dropped into the store and named ACTIVE.
    let (_t2, other) = store();
    let planted = KeyStore::generate(&other, false).unwrap();
    let path = dir.join(format!("{planted}.kek"));
    std::fs::copy(other.join(format!("{planted}.kek")), &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&path, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
    write_private(&dir.join(ACTIVE_FILE), &format!("{planted}\n"));
    let err = KeyStore::load(&dir).unwrap_err();
    assert!(
        matches!(
            err,
            KeyError::ForeignOwner {
                owner: OTHER_UID,
                euid: 0,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{} is owned by uid 12345", path.display()))
            && msg.contains("(uid 0)")
            && msg.contains(&format!("chown 0 {}", path.display())),
        "{msg}"
    );
    // Given back to the gateway's user it loads (and is the one ACTIVE names).
    std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
    assert_eq!(KeyStore::load(&dir).unwrap().active().id(), planted);
}

#[test]
fn store_control_files_and_dir_owned_or_writable_by_others_are_refused() {
    if !can_chown() {
        return;
    }
    let (_t, dir) = store();
    let old = KeyStore::generate(&dir, false).unwrap();
    KeyStore::rotate(&dir).unwrap();
    let active = dir.join(ACTIVE_FILE);
    // ACTIVE writable by group, then owned by another user.
    std::fs::set_permissions(&active, std::fs::Permissions::from_mode(0o620)).unwrap();
    let err = KeyStore::load(&dir).unwrap_err();
    assert!(matches!(err, KeyError::WritableFile { .. }), "{err}");
    assert!(err.to_string().contains("chmod 600"), "{err}");
    std::fs::set_permissions(&active, std::fs::Permissions::from_mode(0o644)).unwrap();
    KeyStore::load(&dir).unwrap();
    std::os::unix::fs::chown(&active, Some(OTHER_UID), None).unwrap();
    let err = KeyStore::load(&dir).unwrap_err();
    assert!(matches!(err, KeyError::ForeignOwner { .. }), "{err}");
    std::os::unix::fs::chown(&active, Some(0), None).unwrap();
    // A revocation record owned by another user.
    let record = KeyStore::revoke(
        &dir,
        old,
        &Revocation {
            at: Utc::now(),
            reason: "test".into(),
        },
    )
    .unwrap();
    std::os::unix::fs::chown(&record, Some(OTHER_UID), None).unwrap();
    let err = KeyStore::load(&dir).unwrap_err();
    assert!(
        matches!(&err, KeyError::ForeignOwner { path, .. } if *path == record),
        "{err}"
    );
    std::os::unix::fs::chown(&record, Some(0), None).unwrap();
    KeyStore::load(&dir).unwrap();
    // The directory itself owned by another user.
    std::os::unix::fs::chown(&dir, Some(OTHER_UID), None).unwrap();
    let err = KeyStore::load(&dir).unwrap_err();
    assert!(
        matches!(&err, KeyError::ForeignOwner { path, .. } if *path == dir),
        "{err}"
    );
}

#[test]
fn a_world_writable_keys_dir_is_refused_even_through_a_read_only_mount() {
    // A read-only bind mount of a directory others can write elsewhere: the
    // mount flags say read-only, yet another user can still change the store
    // through the original path. Needs mount(8) as root; skipped where the
    // test cannot mount.
    if !can_chown() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let ro = t.path().join("ro");
    KeyStore::generate(&src, false).unwrap();
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o777)).unwrap();
    let bound = std::process::Command::new("mount")
        .args(["--bind", "-o", "ro"])
        .arg(&src)
        .arg(&ro)
        .status()
        .is_ok_and(|s| s.success());
    if !bound {
        return;
    }
    let through_ro = KeyStore::load(&ro).map(|_| ());
    let _ = std::process::Command::new("umount").arg(&ro).status();
    assert!(
        matches!(through_ro, Err(KeyError::InsecureDir { mode: 0o777, .. })),
        "{through_ro:?}"
    );
}

/// A provider that "wraps" by hex-encoding with the context, and can be
/// made to answer with other bytes than it was given.
struct FakeProvider {
    lie: bool,
}

impl super::provider::KeyProvider for FakeProvider {
    fn kind(&self) -> &'static str {
        "transit"
    }
    fn key_name(&self) -> &str {
        "fake"
    }
    fn wrap(
        &self,
        key: &[u8; 32],
        context: &str,
    ) -> Result<String, super::provider::ProviderError> {
        Ok(format!("{context}|{}", hex::encode(key)))
    }
    fn unwrap(
        &self,
        wrapped: &str,
        context: &str,
    ) -> Result<zeroize::Zeroizing<[u8; 32]>, super::provider::ProviderError> {
        let (ctx, key) = wrapped.split_once('|').unwrap();
        assert_eq!(ctx, context, "the key id is the wrapping's context");
        let mut k = zeroize::Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(key, k.as_mut()).unwrap();
        if self.lie {
            k[0] ^= 1;
        }
        Ok(k)
    }
}

#[test]
fn a_provider_answering_with_another_key_is_refused_by_the_check_value() {
    let (_t, dir) = store();
    let honest = FakeProvider { lie: false };
    let id = KeyId([9; 16]);
    let secret = [7u8; 32];
    super::file::ensure_dir(&dir).unwrap();
    super::file::write_key(&dir, id, &secret, chrono::Utc::now(), Some(&honest), false).unwrap();
    let text = std::fs::read_to_string(dir.join(format!("{id}.kek"))).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(json.get("key").is_none(), "{text}");
    assert_eq!(json["format"], "sealgate-kek-wrapped/1", "{text}");
    let keys = super::file::read_all_with(&dir, Some(&honest)).unwrap();
    assert_eq!(keys[0].kek.id(), id);
    let liar = FakeProvider { lie: true };
    let err = super::file::read_all_with(&dir, Some(&liar)).unwrap_err();
    assert!(matches!(err, KeyError::CheckFailed { .. }), "{err}");
    // Without a provider the wrapped file is refused, naming what wrapped it.
    let err = super::file::read_all_with(&dir, None).unwrap_err();
    assert!(err.to_string().contains("no provider.toml"), "{err}");
}

#[test]
fn key_domains_have_their_own_active_key_and_a_destroyed_one_reads_as_erased() {
    let (_t, root) = store();
    let own = KeyStore::generate(&root, false).unwrap();
    let hr_dir = domain::dir(&root, "hr").unwrap();
    let hr = KeyStore::generate(&hr_dir, false).unwrap();
    let s = KeyStore::load(&root).unwrap();
    assert_eq!(s.active_in(None).unwrap().id(), own);
    assert_eq!(s.active_in(Some("hr")).unwrap().id(), hr);
    let e = s.active_in(Some("finance")).unwrap_err().to_string();
    assert!(e.contains("keys generate --domain finance"), "{e}");
    assert!(
        s.list()
            .iter()
            .any(|k| k.id == hr.to_string() && k.domain.as_deref() == Some("hr") && k.active)
    );
    // An object under the domain's key opens through the whole store.
    let (env, dek) = Envelope::create(
        s.active_in(Some("hr")).unwrap(),
        Algorithm::Aes256Gcm,
        &mut crate::format::OsRandom,
    )
    .unwrap();
    let sealed = seal_single(&env, &dek, NAME, b"hr", &mut crate::format::OsRandom).unwrap();
    assert_eq!(
        open_all(&s, NameCheck::Inline(NAME), &sealed).unwrap(),
        b"hr"
    );

    // Plain key files cannot be shredded with evidence: refused, nothing
    // written.
    let decision = ErasureDecision {
        exception: "EX-ERASE".into(),
        approver: "DPO".into(),
        decision_ref: "ticket 7".into(),
    };
    let e = KeyStore::destroy_domain(&root, "hr", &decision)
        .unwrap_err()
        .to_string();
    assert!(e.contains("plain files"), "{e}");
    assert!(!hr_dir.join(domain::TOMBSTONE_FILE).exists());

    // A key id may live in one place only.
    std::fs::copy(
        root.join(format!("{own}.kek")),
        hr_dir.join(format!("{own}.kek")),
    )
    .unwrap();
    let e = KeyStore::load(&root).unwrap_err().to_string();
    assert!(e.contains("duplicate key id"), "{e}");
    std::fs::remove_file(hr_dir.join(format!("{own}.kek"))).unwrap();

    // The erasure record alone (a destruction interrupted before the key
    // files went) already makes the domain's keys gone for every loader.
    let t = domain::Tombstone {
        format: domain::ERASURE_FORMAT.into(),
        domain: "hr".into(),
        keys: vec![domain::ErasedKey {
            id: hr.to_string(),
            created: "2026-01-01T00:00:00Z".into(),
        }],
        provider: "transit key \"hr\" at test".into(),
        exception: "EX-ERASE".into(),
        approver: "DPO".into(),
        decision_ref: "ticket 7".into(),
        started: "2026-12-01T00:00:00Z".into(),
        completed: None,
        receipts: vec![],
    };
    domain::write_tombstone(&hr_dir, &t).unwrap();
    let s = KeyStore::load(&root).unwrap();
    match open_all(&s, NameCheck::Inline(NAME), &sealed) {
        Err(crate::format::FormatError::DestroyedKey { id, why }) => {
            assert_eq!(id, hr);
            assert!(why.contains("\"hr\"") && why.contains("EX-ERASE"), "{why}");
        }
        other => panic!("expected DestroyedKey, got {other:?}"),
    }
    let e = s.active_in(Some("hr")).unwrap_err();
    assert!(
        matches!(e, KeyError::DomainDestroyed { .. }),
        "writes under a destroyed domain are refused: {e}"
    );
    assert!(s.has_domain("hr"));
    assert!(s.list().iter().any(|k| {
        k.id == hr.to_string()
            && k.destroyed
                .as_deref()
                .is_some_and(|d| d.contains("EX-ERASE"))
    }));
    // Its name is not reused.
    let e = KeyStore::generate(&hr_dir, false).unwrap_err().to_string();
    assert!(e.contains("destroyed"), "{e}");
    // The store's own keys are untouched.
    assert_eq!(s.active_in(None).unwrap().id(), own);
    // A record for another domain's directory is refused, not trusted.
    let mut other = t.clone();
    other.domain = "finance".into();
    domain::write_tombstone(&hr_dir, &other).unwrap();
    let e = KeyStore::load(&root).unwrap_err().to_string();
    assert!(e.contains("finance"), "{e}");
}

#[test]
fn only_domain_directories_may_be_in_domains() {
    let (_t, root) = store();
    KeyStore::generate(&root, false).unwrap();
    std::fs::create_dir_all(root.join(domain::DOMAINS_DIR)).unwrap();
    std::fs::write(root.join(domain::DOMAINS_DIR).join("Stray.kek"), "x").unwrap();
    let e = KeyStore::load(&root).unwrap_err().to_string();
    assert!(e.contains("not a key domain"), "{e}");
}

#[test]
fn every_domains_active_key_has_the_cryptoperiod() {
    let (_t, root) = store();
    KeyStore::generate(&root, false).unwrap();
    let hr = KeyStore::generate(&domain::dir(&root, "hr").unwrap(), false).unwrap();
    let s = KeyStore::load(&root).unwrap();
    assert!(s.overdue_actives(30, Utc::now()).is_empty());
    let later = Utc::now() + chrono::Duration::days(31);
    let overdue = s.overdue_actives(30, later);
    assert_eq!(overdue.len(), 2, "{overdue:?}");
    assert!(
        overdue
            .iter()
            .any(|(d, id, age)| *d == Some("hr") && *id == hr && *age >= 30)
    );
    assert!(overdue.iter().any(|(d, _, _)| d.is_none()));
}
