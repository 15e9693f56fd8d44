//! Anchors: the audit log's chain head (line number and SHA-256 of that
//! line), sent off the host as it is written (a `chain_head` record through
//! the incident webhook), so that a log re-chained after an edit (possible
//! for whoever holds the key store) or cut back below an anchored line is
//! detected by `sealgate audit verify --anchors DIR` (docs/INCIDENTS.md
//! §Anchors). The exception registry's verified head (`registry_verified`)
//! is anchored the same way and checked with `--registry`.

use sha2::{Digest, Sha256};
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// The record anchoring the audit log's head.
pub const CHAIN_HEAD: &str = "chain_head";
/// The record anchoring the exception registry's verified head.
pub const REGISTRY_VERIFIED: &str = "registry_verified";
/// Records sent to the webhook as anchors (besides incidents).
pub const ANCHORS: &[&str] = &[CHAIN_HEAD, REGISTRY_VERIFIED];

/// The `chain_head` record for line `seq` with SHA-256 `hash`.
pub fn chain_head(
    log: &Path,
    seq: u64,
    hash: &[u8; 32],
) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("event".into(), CHAIN_HEAD.into());
    m.insert("log".into(), log.display().to_string().into());
    m.insert("seq".into(), seq.into());
    m.insert("hash".into(), hex::encode(hash).into());
    m
}

/// Why a log does not match its anchors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// An anchor file holds something that is not an anchor record.
    #[error("{path} line {line}: not an anchor record ({why})")]
    Malformed {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What failed.
        why: String,
    },
    /// No `chain_head` anchor at all.
    #[error(
        "{0}: no chain_head anchor found (one JSON record per line, as the webhook sends them)"
    )]
    None(PathBuf),
    /// The log (or registry) lacks an anchored line, or has another there.
    #[error(
        "{what} {path}: {why}, but line {seq} with SHA-256 {hash} was anchored off the host ({source_file}): lines were removed, or it was re-chained after an edit"
    )]
    Mismatch {
        /// "audit log" or "registry".
        what: &'static str,
        /// The file checked.
        path: PathBuf,
        /// What it has instead.
        why: String,
        /// Anchored line.
        seq: u64,
        /// Anchored SHA-256 (hex).
        hash: String,
        /// Where the anchor came from.
        source_file: String,
    },
}

/// One anchored (seq, hash) and where it was found.
#[derive(Debug, Clone)]
pub struct Anchor {
    /// Line number.
    pub seq: u64,
    /// SHA-256 (hex) of that line.
    pub hash: String,
    /// File (and line) it was read from.
    pub from: String,
}

/// Anchors read from a directory (every file, one JSON record per line) or
/// a single file: (`chain_head` anchors, `registry_verified` anchors).
pub fn read(dir: &Path) -> Result<(Vec<Anchor>, Vec<Anchor>), AnchorError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| AnchorError::Io { path, source }
    };
    let files: Vec<PathBuf> = if dir.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        v
    } else {
        vec![dir.to_owned()]
    };
    let (mut heads, mut registry) = (Vec::new(), Vec::new());
    for f in files {
        let text = std::fs::read(&f).map_err(io(&f))?;
        for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
            if raw.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let bad = |why: String| AnchorError::Malformed {
                path: f.clone(),
                line: i + 1,
                why,
            };
            let v: serde_json::Value =
                serde_json::from_slice(raw).map_err(|e| bad(e.to_string()))?;
            let target = match v.get("event").and_then(|e| e.as_str()) {
                Some(CHAIN_HEAD) => &mut heads,
                Some(REGISTRY_VERIFIED) => &mut registry,
                _ => continue, // incidents sent to the same receiver
            };
            let seq = v.get("seq").and_then(|s| s.as_u64()).filter(|s| *s > 0);
            let hash = v
                .get("hash")
                .and_then(|h| h.as_str())
                .filter(|h| hex::decode(h).map(|b| b.len()) == Ok(32));
            let (Some(seq), Some(hash)) = (seq, hash) else {
                return Err(bad("no seq or no SHA-256 hash".into()));
            };
            target.push(Anchor {
                seq,
                hash: hash.to_owned(),
                from: format!("{} line {}", f.display(), i + 1),
            });
        }
    }
    if heads.is_empty() {
        return Err(AnchorError::None(dir.to_owned()));
    }
    Ok((heads, registry))
}

/// SHA-256 of every line of a JSON-lines file, streamed.
pub fn line_hashes(path: &Path) -> Result<Vec<[u8; 32]>, AnchorError> {
    let io = |source| AnchorError::Io {
        path: path.to_owned(),
        source,
    };
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut out = Vec::new();
    let mut r = std::io::BufReader::new(f);
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).map_err(io)? == 0 {
            break;
        }
        let raw = line.strip_suffix(b"\n").unwrap_or(&line);
        out.push(Sha256::digest(raw).into());
    }
    Ok(out)
}

/// Checks that `hashes` (of `path`) holds every anchored line.
pub fn check(
    what: &'static str,
    path: &Path,
    hashes: &[[u8; 32]],
    anchors: &[Anchor],
) -> Result<(), AnchorError> {
    for a in anchors {
        let why = match hashes.get(a.seq as usize - 1) {
            None => format!("it has {} line(s)", hashes.len()),
            Some(h) if hex::encode(h) != a.hash => {
                format!("its line {} has SHA-256 {}", a.seq, hex::encode(h))
            }
            Some(_) => continue,
        };
        return Err(AnchorError::Mismatch {
            what,
            path: path.to_owned(),
            why,
            seq: a.seq,
            hash: a.hash.clone(),
            source_file: a.from.clone(),
        });
    }
    Ok(())
}

/// What a write-once anchor upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The anchor object was created.
    Written,
    /// An object of that name already exists and was left as it is
    /// (`If-None-Match: *` answered 412).
    AlreadyThere,
}

/// Where and how often the audit log's chain head is anchored.
#[derive(Debug, Clone)]
pub struct AnchorSchedule {
    /// The provider bucket holding the anchors (Object Lock recommended).
    pub bucket: String,
    /// Key prefix of the anchors (one prefix per audit log).
    pub prefix: String,
    /// Time between anchors (one only when the head moved).
    pub every: std::time::Duration,
    /// Object Lock retention of each anchor, in days.
    pub retain_days: Option<u32>,
}

/// Writes the audit log's chain head (from `layer`) once to the provider
/// every period in which it moved, until the task is dropped; a failed
/// write is logged (`anchor_failed`) and retried next period.
pub async fn keep_anchoring(
    layer: super::AuditLayer,
    provider: crate::upstream::Upstream,
    schedule: AnchorSchedule,
) {
    let AnchorSchedule {
        bucket,
        prefix,
        every,
        retain_days,
    } = schedule;
    let mut anchored = None;
    loop {
        if let Some((path, seq, hash)) = layer.head().filter(|h| h.1 > 0 && anchored != Some(h.1)) {
            let record = chain_head(&path, seq, &hash);
            match put_once(&provider, &bucket, &prefix, &record, retain_days).await {
                Ok(_) => anchored = Some(seq),
                Err(why) => {
                    tracing::warn!(target: crate::telemetry::security::TARGET, event = "anchor_failed", bucket = %bucket, reason = %why, "the audit chain head could not be anchored at the provider; retrying next period")
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Writes `record` (a `chain_head`) once to `bucket` at the provider, as
/// `<prefix><seq, 20 digits>.json`, with `If-None-Match: *` so that no
/// anchor is ever overwritten, and, with `retain_days`, Object Lock in
/// COMPLIANCE mode until then (the bucket must have Object Lock enabled at
/// the provider; s3s-fs ignores it).
pub async fn put_once(
    provider: &crate::upstream::Upstream,
    bucket: &str,
    prefix: &str,
    record: &serde_json::Map<String, serde_json::Value>,
    retain_days: Option<u32>,
) -> Result<Put, String> {
    use crate::upstream::WriteOnce;
    let seq = record.get("seq").and_then(|s| s.as_u64()).unwrap_or(0);
    let key = format!("{prefix}{seq:020}.json");
    let mut body = serde_json::to_vec(record).expect("serializable");
    body.push(b'\n');
    let retain_until = retain_days
        .map(|days| (chrono::Utc::now() + chrono::Duration::days(i64::from(days))).timestamp());
    match provider
        .put_write_once(bucket, &key, "application/json", body, retain_until)
        .await
    {
        Ok(WriteOnce::Written) => Ok(Put::Written),
        Ok(WriteOnce::AlreadyThere) => Ok(Put::AlreadyThere),
        Err(e) => Err(format!("anchor s3://{bucket}/{key}: {e}")),
    }
}
