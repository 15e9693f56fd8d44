//! Replays the committed fuzz corpus (fuzz/corpus/<target>/) and any saved
//! crash reproducers (fuzz/artifacts/<target>/) through the same entry
//! points the fuzz targets call (sealgate::fuzzing), on every test run and
//! on the stable toolchain: a parser change that breaks on a known input
//! fails here before any fuzzer runs. `.ci/run` then fuzzes each target for
//! a bounded time starting from this corpus (docs/RELIABILITY.md).
//!
//! `SEALGATE_WRITE_SEEDS=1 cargo test --test fuzz_corpus` rewrites the
//! generated seeds (valid upload ids and registry files under the fuzz key).

use sealgate::format::envelope::Envelope;
use sealgate::format::{Algorithm, OsRandom, upload_id};
use sealgate::fuzzing;
use std::path::{Path, PathBuf};

/// A fuzz entry point.
type Entry = fn(&[u8]);

const TARGETS: [(&str, Entry); 5] = [
    ("object", fuzzing::object),
    ("upload_id", fuzzing::upload_id),
    ("request", fuzzing::request),
    ("config", fuzzing::config),
    ("registry", fuzzing::registry),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn every_committed_input_passes_its_target() {
    if std::env::var_os("SEALGATE_WRITE_SEEDS").is_some() {
        write_generated_seeds();
    }
    for (target, entry) in TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(target));
        assert!(
            corpus.len() >= 3,
            "fuzz/corpus/{target} has {} seeds",
            corpus.len()
        );
        let crashes = files(&fuzz_dir().join("artifacts").join(target));
        for f in corpus.iter().chain(&crashes) {
            let data = std::fs::read(f).unwrap();
            let r = std::panic::catch_unwind(|| entry(&data));
            assert!(r.is_ok(), "{target}: {} breaks its target", f.display());
        }
    }
}

/// The seeds must reach past the first checks, or fuzzing starts blind.
#[test]
fn the_seeds_include_inputs_the_parsers_accept() {
    let seeds = |t: &str| files(&fuzz_dir().join("corpus").join(t));
    let kek = fuzzing::kek();
    let opens = seeds("object").iter().any(|f| {
        let d = std::fs::read(f).unwrap();
        d.len() > 1
            && sealgate::format::stream::open_all(
                &kek,
                sealgate::format::stream::NameCheck::Inline(fuzzing::NAME),
                &d[1..],
            )
            .is_ok()
    });
    assert!(opens, "no object seed opens");
    let ids = seeds("upload_id").iter().any(|f| {
        let d = std::fs::read_to_string(f).unwrap_or_default();
        upload_id::decode(&d, fuzzing::NAME, &kek).is_ok()
    });
    assert!(ids, "no upload id seed authenticates");
    let registries = seeds("registry").iter().any(|f| {
        let d = std::fs::read(f).unwrap();
        sealgate::policy::registry::Registry::parse(
            &d,
            Path::new("seed"),
            fuzzing::fuzz_key_store(),
        )
        .is_ok_and(|r| !r.is_empty())
    });
    assert!(registries, "no registry seed verifies");
    let configs = seeds("config").iter().any(|f| {
        let d = std::fs::read_to_string(f).unwrap_or_default();
        sealgate::config::Config::parse(&d, Path::new("seed")).is_ok()
    });
    assert!(configs, "no config seed parses");
}

fn write_generated_seeds() {
    let dir = fuzz_dir().join("corpus");
    let kek = fuzzing::kek();
    for (i, upstream) in ["2~abc", "upload-0001", ""].iter().enumerate() {
        let (env, dek) = Envelope::create(&kek, Algorithm::Aes256Gcm, &mut OsRandom).unwrap();
        let id = upload_id::encode(&env, &dek, fuzzing::NAME, upstream);
        std::fs::write(dir.join("upload_id").join(format!("valid-{i}")), id).unwrap();
    }
    use chrono::TimeZone;
    use sealgate::policy::registry::{Allowance, Exception, Registry};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("exceptions.jsonl");
    for (n, allows) in [
        Allowance::UnencryptedWrites,
        Allowance::LegacyReads,
        Allowance::DataLocation,
    ]
    .into_iter()
    .enumerate()
    {
        Registry::register(
            &path,
            fuzzing::fuzz_key_store(),
            Exception {
                id: format!("EX-SEED-{n}"),
                approver: "CISO".into(),
                decision_ref: "minutes 2026-11-02".into(),
                reason: "seed".into(),
                risk: "low".into(),
                classification: "public".into(),
                buckets: vec!["www-assets".into(), "cdn-*".into()],
                allows: vec![allows],
                domains: vec![],
                starts: chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
                expires: chrono::Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
            },
        )
        .unwrap();
        std::fs::copy(&path, dir.join("registry").join(format!("valid-{n}"))).unwrap();
    }
}
