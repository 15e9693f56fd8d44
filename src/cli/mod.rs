//! The `sealgate` command line. The only module that prints to the terminal.
//!
//! Errors are printed with their whole `source()` chain so an administrator
//! sees which file or key failed and why; the exit code is non-zero.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod config_check;
mod erase;
mod exception;
mod inventory;
mod objects;
mod serve;

use crate::format::KeyId;
use crate::keys::KeyStore;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "sealgate",
    version,
    about = "S3 encryption gateway: keys, offline encrypt/decrypt, inspection"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage the local key store (key-encryption keys).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Manage the registry of formal decisions allowing unencrypted storage.
    Exception {
        #[command(subcommand)]
        action: exception::ExceptionAction,
    },
    /// Validate a configuration without starting: keys, secrets and their
    /// permissions, upstream, TLS; prints each bucket's effective mode.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Check the audit log's chain and authentication.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Run the S3 endpoint. Without --config: the embedded default (a local S3 server in ./data).
    Serve(serve::ServeArgs),
    /// Encrypt a file into the sealgate object format, bound to a bucket and key.
    Encrypt(objects::EncryptArgs),
    /// Decrypt a stored object (e.g. a backup copy) with the key store alone.
    Decrypt(objects::DecryptArgs),
    /// Show the header fields and sizes of a stored object; needs no keys.
    Inspect(objects::InspectArgs),
}

/// Where the key store is: `--keys-dir`, `SEALGATE_KEYS_DIR`, or `./keys`.
#[derive(Debug, clap::Args)]
pub struct KeysDir {
    /// Key store directory.
    #[arg(long = "keys-dir", env = "SEALGATE_KEYS_DIR", default_value = "keys")]
    pub keys_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Every key and where its provider keeps the root key, as JSON for auditors.
    Inventory {
        #[command(flatten)]
        dir: KeysDir,
        /// The cryptoperiod to flag the active key against (the gateway's key_max_age_days).
        #[arg(long = "max-age-days", env = "SEALGATE_KEY_MAX_AGE_DAYS")]
        max_age_days: Option<u64>,
    },
    /// Create a key. The store's first key becomes active; later keys only with --activate.
    Generate {
        #[command(flatten)]
        dir: KeysDir,
        /// In this key domain (created if new: `<keys>/domains/<domain>/`).
        #[arg(long)]
        domain: Option<String>,
        /// Make the new key the active one.
        #[arg(long)]
        activate: bool,
    },
    /// List key ids, creation dates and which key is active (never secrets).
    List {
        #[command(flatten)]
        dir: KeysDir,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a key and make it active; older keys keep decrypting.
    Rotate {
        #[command(flatten)]
        dir: KeysDir,
        /// In this key domain.
        #[arg(long)]
        domain: Option<String>,
    },
    /// Wrap the store's plain key files with its provider (provider.toml):
    /// same ids, objects keep opening; the files then hold no key.
    Wrap {
        #[command(flatten)]
        dir: KeysDir,
        /// The key domain's keys instead of the store's own.
        #[arg(long)]
        domain: Option<String>,
    },
    /// Revoke a key: from --at (default now) on, objects wrapped with it are
    /// refused and each attempt is a security event. Not the active key.
    Revoke {
        /// Key id (32 hex digits).
        id: String,
        /// Why (kept in the revocation record).
        #[arg(long)]
        reason: String,
        /// When the revocation takes effect (RFC 3339); later than now
        /// schedules an expiry.
        #[arg(long)]
        at: Option<String>,
        #[command(flatten)]
        dir: KeysDir,
    },
    /// Destroy a key domain (crypto-shredding) under a registered erasure
    /// exception: its provider root key and wrapped keys go, every object
    /// under them becomes unreadable everywhere; writes an erasure
    /// certificate (docs/KEYS.md §Erasure).
    Destroy(erase::DestroyArgs),
    /// Make an existing key the active one.
    Activate {
        /// Key id (32 hex digits).
        id: String,
        #[command(flatten)]
        dir: KeysDir,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Check everything the gateway would load at start; exit 1 on any problem.
    Check {
        /// Configuration file (default: SEALGATE_CONFIG, or the SEALGATE_*
        /// environment alone when SEALGATE_UPSTREAM_ENDPOINT is set).
        #[arg(long, env = "SEALGATE_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Verify every line of an audit log, and optionally that it (and the
    /// exception registry) still holds every head anchored off the host.
    Verify {
        /// The audit log file.
        #[arg(long = "audit-log", env = "SEALGATE_AUDIT_LOG")]
        audit_log: PathBuf,
        /// Anchors kept off the host: a directory of files (or one file) of
        /// `chain_head` / `registry_verified` records, one JSON object per
        /// line, as the webhook sent them (docs/INCIDENTS.md §Anchors).
        #[arg(long)]
        anchors: Option<PathBuf>,
        /// Also check the exception registry against every
        /// `registry_verified` record in the log and the anchors.
        #[arg(long)]
        registry: Option<PathBuf>,
        /// With `--anchors s3://BUCKET/PREFIX`: the configuration whose
        /// `[upstream]` reaches the provider holding the anchors.
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        dir: KeysDir,
    },
}

/// Parses arguments, runs the command and turns errors into exit code 1.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut said = e.to_string();
            eprintln!("error: {said}");
            let mut source = e.source();
            while let Some(s) = source {
                // Errors that already quote their cause are not repeated.
                let cause = s.to_string();
                if !said.contains(&cause) {
                    eprintln!("  caused by: {cause}");
                    said = cause;
                }
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

fn dispatch(cli: Cli) -> CliResult {
    match cli.command {
        Command::Keys { action } => keys(action),
        Command::Exception { action } => exception::run(action),
        Command::Config {
            action: ConfigAction::Check { config },
        } => config_check(config),
        Command::Audit {
            action:
                AuditAction::Verify {
                    audit_log,
                    anchors,
                    registry,
                    config,
                    dir,
                },
        } => {
            let keys = KeyStore::load(&dir.keys_dir)?;
            let (n, _) = crate::audit::verify(&audit_log, &keys)?;
            println!(
                "{}: {n} records, chain and authentication intact",
                audit_log.display()
            );
            // Anchors in a bucket are fetched to a temporary directory first.
            let fetched = match anchors.as_deref().and_then(|a| a.to_str()) {
                Some(url) if url.starts_with("s3://") => {
                    Some(fetch_anchors(url, config.as_deref())?)
                }
                _ => None,
            };
            let anchors = match &fetched {
                Some(dir) => Some(dir.path().to_owned()),
                None => anchors,
            };
            audit_anchors(&audit_log, anchors.as_deref(), registry.as_deref(), &keys)
        }
        Command::Serve(a) => serve::serve(a),
        Command::Encrypt(a) => objects::encrypt(a),
        Command::Decrypt(a) => objects::decrypt(a),
        Command::Inspect(a) => objects::inspect(a),
    }
}

/// Downloads every object under `s3://BUCKET/PREFIX` (the write-once
/// anchors) through the provider that `config` names.
fn fetch_anchors(
    url: &str,
    config: Option<&std::path::Path>,
) -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    let rest = url.strip_prefix("s3://").unwrap_or(url);
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let path = config.ok_or(
        "--anchors s3://… needs --config FILE (its [upstream] reaches the provider holding the anchors)",
    )?;
    let mut cfg = crate::config::Config::load(path)?;
    cfg.apply_env(|k| std::env::var(k).ok())?;
    let dir = tempfile::tempdir()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let up = crate::upstream::Upstream::connect(&cfg.upstream, None).await?;
        let failed = |e: crate::upstream::UpstreamError| format!("{url}: {e}");
        let mut token = None;
        let mut n = 0usize;
        loop {
            let page = up
                .list_objects_v2(crate::upstream::ListRequest {
                    bucket: bucket.to_owned(),
                    prefix: Some(prefix.to_owned()),
                    continuation_token: token,
                    ..Default::default()
                })
                .await
                .map_err(failed)?;
            for key in page.contents.iter().filter_map(|o| o.key.as_deref()) {
                let got = up
                    .get_object(crate::upstream::GetRequest {
                        bucket: bucket.to_owned(),
                        key: key.to_owned(),
                        ..Default::default()
                    })
                    .await
                    .map_err(failed)?;
                let bytes = got.body.collect().await.map_err(failed)?;
                n += 1;
                std::fs::write(
                    dir.path().join(format!("{n:08}-{}", key.replace('/', "_"))),
                    bytes,
                )?;
            }
            match page.next_continuation_token {
                Some(t) if page.is_truncated == Some(true) => token = Some(t),
                _ => break,
            }
        }
        println!("fetched {n} anchor object(s) from {url}");
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(dir)
}

/// `audit verify --anchors / --registry`: the log (already verified) and
/// the registry against the heads anchored off the host.
fn audit_anchors(
    log: &std::path::Path,
    anchors: Option<&std::path::Path>,
    registry: Option<&std::path::Path>,
    keys: &KeyStore,
) -> CliResult {
    use crate::audit::anchor;
    let (heads, mut reg_heads) = match anchors {
        Some(dir) => anchor::read(dir)?,
        None => (Vec::new(), Vec::new()),
    };
    if let Some(dir) = anchors {
        anchor::check("audit log", log, &anchor::line_hashes(log)?, &heads)?;
        let top = heads.iter().map(|a| a.seq).max().unwrap_or(0);
        println!(
            "{}: holds all {} anchored heads from {} (latest anchored line {top})",
            log.display(),
            heads.len(),
            dir.display()
        );
    }
    let Some(reg) = registry else { return Ok(()) };
    // The registry heads the (verified, anchored) log recorded.
    for (i, v) in crate::audit::read_verified(log, keys)?.iter().enumerate() {
        let e = &v["event"];
        if e["event"] != anchor::REGISTRY_VERIFIED {
            continue;
        }
        if let (Some(seq), Some(hash)) = (e["seq"].as_u64(), e["hash"].as_str()) {
            reg_heads.push(anchor::Anchor {
                seq,
                hash: hash.to_owned(),
                from: format!("{} line {}", log.display(), i + 1),
            });
        }
    }
    let text = std::fs::read(reg).unwrap_or_default();
    crate::policy::registry::Registry::parse(&text, reg, keys)?;
    anchor::check("registry", reg, &anchor::line_hashes(reg)?, &reg_heads)?;
    println!(
        "{}: holds every verified head recorded ({} records)",
        reg.display(),
        reg_heads.len()
    );
    Ok(())
}

fn config_check(path: Option<PathBuf>) -> CliResult {
    use crate::config::Config;
    let env = |k: &str| std::env::var(k).ok();
    let cfg = match &path {
        Some(p) => {
            let mut c = Config::load(p)?;
            c.apply_env(env)?;
            c
        }
        None => Config::from_env(env).map_err(|e| {
            format!("{e} (give --config FILE; the embedded default needs no configuration)")
        })?,
    };
    let findings = config_check::check(&cfg);
    for f in &findings {
        println!("{} {}", if f.ok { "ok  " } else { "FAIL" }, f.message);
    }
    let failed = findings.iter().filter(|f| !f.ok).count();
    if failed > 0 {
        return Err(format!("{failed} problem(s) found").into());
    }
    println!("configuration is valid");
    Ok(())
}

/// The store directory a key command acts on: the store's own, or a key
/// domain's.
fn store_dir(dir: &KeysDir, domain: Option<&str>) -> Result<PathBuf, crate::keys::KeyError> {
    match domain {
        None => Ok(dir.keys_dir.clone()),
        Some(d) => crate::keys::domain::dir(&dir.keys_dir, d),
    }
}

/// [`store_dir`] of a domain that must exist already.
fn existing_store_dir(
    dir: &KeysDir,
    domain: Option<&str>,
) -> Result<PathBuf, crate::keys::KeyError> {
    let d = store_dir(dir, domain)?;
    match domain {
        Some(name) if !d.is_dir() => Err(crate::keys::KeyError::UnknownDomain {
            name: name.to_owned(),
            dir: dir.keys_dir.clone(),
        }),
        _ => Ok(d),
    }
}

/// The directory (the store's own, or a domain's) holding key `id`.
fn holder_dir(dir: &KeysDir, id: KeyId) -> Result<PathBuf, crate::keys::KeyError> {
    let store = KeyStore::load(&dir.keys_dir)?;
    Ok(store
        .dir_of(&id)
        .map(Path::to_owned)
        .unwrap_or_else(|| dir.keys_dir.clone()))
}

fn keys(action: KeysAction) -> CliResult {
    match action {
        KeysAction::Generate {
            dir,
            activate,
            domain,
        } => {
            let target = store_dir(&dir, domain.as_deref())?;
            let id = KeyStore::generate(&target, activate)?;
            // The whole store must still load (ids unique across domains).
            let active = KeyStore::load(&dir.keys_dir)?
                .active_in(domain.as_deref())?
                .id()
                == id;
            println!(
                "generated key {id}{}",
                if active { " (active)" } else { "" }
            );
            println!("in {}", target.display());
            eprintln!(
                "IMPORTANT: back up {} now. Objects encrypted under these keys cannot be read without them (docs/KEYS.md).",
                dir.keys_dir.display()
            );
        }
        KeysAction::List { dir, json } => {
            let store = KeyStore::load(&dir.keys_dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&store.list())?);
            } else {
                println!(
                    "{:<32}  {:<20}  {:>8}  {:<6}  {:<12}  {:<28}  STATE",
                    "ID", "CREATED", "AGE", "ACTIVE", "DOMAIN", "PROVIDER"
                );
                for k in store.list() {
                    let state = match (&k.destroyed, &k.revoked) {
                        (Some(d), _) => format!("destroyed {d}"),
                        (None, Some(r)) => format!("revoked {r}"),
                        (None, None) => String::new(),
                    };
                    println!(
                        "{:<32}  {:<20}  {:>7}d  {:<6}  {:<12}  {:<28}  {}",
                        k.id,
                        k.created,
                        k.age_days,
                        if k.active { "*" } else { "" },
                        k.domain.as_deref().unwrap_or("-"),
                        k.provider,
                        state
                    );
                }
            }
        }
        KeysAction::Destroy(args) => erase::run(args)?,
        KeysAction::Inventory { dir, max_age_days } => {
            println!("{}", inventory::render(&dir.keys_dir, max_age_days)?);
        }
        KeysAction::Wrap { dir, domain } => {
            let target = existing_store_dir(&dir, domain.as_deref())?;
            let ids = KeyStore::wrap_plain(&target)?;
            for id in &ids {
                println!("wrapped key {id}");
            }
            println!(
                "{} key(s) wrapped; every key in {} is now kept only as its provider wrapped it",
                ids.len(),
                target.display()
            );
        }
        KeysAction::Rotate { dir, domain } => {
            let id = KeyStore::rotate(&existing_store_dir(&dir, domain.as_deref())?)?;
            KeyStore::load(&dir.keys_dir)?;
            println!("rotated: key {id} is now active; older keys still decrypt");
            eprintln!(
                "IMPORTANT: back up {} again: it holds a new key.",
                dir.keys_dir.display()
            );
        }
        KeysAction::Revoke {
            id,
            reason,
            at,
            dir,
        } => {
            let parsed = KeyId::from_hex(&id)
                .ok_or_else(|| format!("{id:?} is not a key id (32 hex digits)"))?;
            let at = match at {
                Some(t) => chrono::DateTime::parse_from_rfc3339(&t)
                    .map_err(|e| format!("--at {t:?}: not an RFC 3339 time: {e}"))?
                    .with_timezone(&chrono::Utc),
                None => chrono::Utc::now(),
            };
            if reason.trim().is_empty() {
                return Err("--reason must say why the key is revoked".into());
            }
            let path = KeyStore::revoke(
                &holder_dir(&dir, parsed)?,
                parsed,
                &crate::keys::Revocation { at, reason },
            )?;
            println!(
                "key {parsed} revoked from {}; record {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                path.display()
            );
            eprintln!(
                "Objects wrapped with this key are refused once running gateways reload their keys (SIGHUP or restart)."
            );
        }
        KeysAction::Activate { id, dir } => {
            let parsed = KeyId::from_hex(&id)
                .ok_or_else(|| format!("{id:?} is not a key id (32 hex digits)"))?;
            KeyStore::activate(&holder_dir(&dir, parsed)?, parsed)?;
            println!("key {parsed} is now active");
        }
    }
    Ok(())
}
