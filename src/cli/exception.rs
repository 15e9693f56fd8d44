//! `sealgate exception …`: the registry of formal decisions that allow
//! unencrypted storage (docs/EXCEPTIONS.md).

use super::{CliResult, KeysDir};
use crate::keys::KeyStore;
use crate::policy::approval::{self, Approval};
use crate::policy::registry::{Allowance, Exception, Registry, Revocation};
use chrono::{DateTime, NaiveDate, Utc};
use std::path::PathBuf;

/// Where the registry is.
#[derive(Debug, clap::Args)]
pub struct RegistryFile {
    /// Exception registry file (JSON lines, append-only).
    #[arg(long, env = "SEALGATE_REGISTRY", default_value = "exceptions.jsonl")]
    pub registry: PathBuf,
    /// The registry's verified-state file (default: the registry's path
    /// followed by `.verified`); a registry shorter than or forked from it
    /// is refused.
    #[arg(long = "registry-state", env = "SEALGATE_REGISTRY_STATE")]
    pub registry_state: Option<PathBuf>,
    #[command(flatten)]
    keys: KeysDir,
}

impl RegistryFile {
    fn state(&self) -> PathBuf {
        self.registry_state
            .clone()
            .unwrap_or_else(|| crate::config::verified_state_path(&self.registry))
    }

    /// Verifies, checks against the verified state and moves it forward.
    fn load(&self, keys: &KeyStore) -> Result<Registry, crate::policy::registry::RegistryError> {
        Registry::load_at(&self.registry, &self.state(), keys)
    }

    /// Verifies and checks against the verified state; writes nothing
    /// (list, show and report work on read-only copies).
    fn read(&self, keys: &KeyStore) -> Result<Registry, crate::policy::registry::RegistryError> {
        Registry::read_checked(&self.registry, &self.state(), keys)
    }
}

/// The fields of an exception (for `register` and `request`).
#[derive(Debug, clap::Args)]
pub struct Fields {
    /// Unique id, e.g. EX-2026-004.
    #[arg(long)]
    id: String,
    /// Who approved the decision.
    #[arg(long)]
    approver: String,
    /// Where the decision is recorded (minutes, ticket).
    #[arg(long = "decision")]
    decision_ref: String,
    /// Why it is needed.
    #[arg(long)]
    reason: String,
    /// The risk assessment.
    #[arg(long)]
    risk: String,
    /// Classification of the data concerned.
    #[arg(long)]
    classification: String,
    /// Bucket name or pattern (`*` wildcard); repeat for several.
    #[arg(long = "bucket", required = true)]
    buckets: Vec<String>,
    /// unencrypted-writes, legacy-reads, data-location or erasure; repeat for several.
    #[arg(long = "allow", required = true)]
    allows: Vec<Allowance>,
    /// For an erasure exception: the key domain it allows destroying;
    /// repeat for several.
    #[arg(long = "domain")]
    domains: Vec<String>,
    /// Valid from (YYYY-MM-DD or RFC 3339; default now, except for a
    /// signed exception, whose start must be given).
    #[arg(long, value_parser = parse_time)]
    starts: Option<DateTime<Utc>>,
    /// Valid until (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_parser = parse_time)]
    expires: DateTime<Utc>,
}

impl Fields {
    fn exception(self, starts: DateTime<Utc>) -> Exception {
        Exception {
            id: self.id,
            approver: self.approver,
            decision_ref: self.decision_ref,
            reason: self.reason,
            risk: self.risk,
            classification: self.classification,
            buckets: self.buckets,
            allows: self.allows,
            domains: self.domains,
            starts,
            expires: self.expires,
        }
    }
}

/// Exception subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ExceptionAction {
    /// Record a formal decision allowing unencrypted storage or legacy reads.
    Register {
        #[command(flatten)]
        fields: Fields,
        /// The approver's signature over exactly these fields (made with
        /// `sealgate exception sign` on the approver's machine).
        #[arg(long)]
        signature: Option<PathBuf>,
        #[command(flatten)]
        file: RegistryFile,
    },
    /// Print the exact bytes an approver signs for an exception (the same
    /// fields `register` takes; --starts required).
    Request {
        #[command(flatten)]
        fields: Fields,
    },
    /// On the approver's machine: sign a request with the approver's key;
    /// prints the signature for `register --signature`.
    Sign {
        /// The approver's private key (from `exception approver-key`).
        #[arg(long)]
        key: PathBuf,
        /// The request (from `exception request`).
        request: PathBuf,
    },
    /// On the approver's machine: create an approver key (never copy it to
    /// the gateway host); prints its public key for policy.approver_keys.
    ApproverKey {
        /// Where to write the private key (mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Every exception with its current state.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        file: RegistryFile,
    },
    /// One exception in full, with its revocation if any.
    Show {
        /// Exception id.
        id: String,
        #[command(flatten)]
        file: RegistryFile,
    },
    /// Revoke an exception (appended; the original record stays).
    Revoke {
        /// Exception id.
        id: String,
        /// Who revokes it.
        #[arg(long)]
        by: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        file: RegistryFile,
    },
    /// For an auditor: every exception, its state and its use (counted from
    /// audit logs), as Markdown or HTML with a chart of uses per day.
    Report {
        /// Audit logs to count uses from (each verified first); repeat for
        /// several instances.
        #[arg(long = "audit-log")]
        audit_logs: Vec<PathBuf>,
        /// markdown or html.
        #[arg(long, default_value = "markdown")]
        format: String,
        #[command(flatten)]
        file: RegistryFile,
    },
    /// Check every line's chain and authentication.
    Verify {
        #[command(flatten)]
        file: RegistryFile,
    },
}

/// Dates as YYYY-MM-DD (midnight UTC) or RFC 3339.
fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!("{s:?} is not a date: use YYYY-MM-DD or RFC 3339 (2026-12-31T23:59:59Z)")
        })
}

pub(super) fn run(action: ExceptionAction) -> CliResult {
    match action {
        ExceptionAction::Register {
            fields,
            signature,
            file,
        } => register(fields, signature, &file),
        ExceptionAction::Request { fields } => request(fields),
        ExceptionAction::Sign { key, request } => sign(&key, &request),
        ExceptionAction::ApproverKey { out } => approver_key(&out),
        ExceptionAction::List { json, file } => list(json, &file),
        ExceptionAction::Show { id, file } => show(&id, &file),
        ExceptionAction::Revoke {
            id,
            by,
            reason,
            file,
        } => revoke(Revocation { id, by, reason }, &file),
        ExceptionAction::Report {
            audit_logs,
            format,
            file,
        } => report(&audit_logs, &format, &file),
        ExceptionAction::Verify { file } => verify(&file),
    }
}

/// `exception register`: appends an exception, signed by an approver when
/// `signature` names one (then the fields must be the signed request's).
fn register(fields: Fields, signature: Option<PathBuf>, file: &RegistryFile) -> CliResult {
    let signed = match &signature {
        Some(p) => {
            if fields.starts.is_none() {
                return Err(
                    "a signed exception needs --starts, exactly as in the signed request".into(),
                );
            }
            Some(read_approval(p)?)
        }
        None => None,
    };
    let keys = KeyStore::load(&file.keys.keys_dir)?;
    let id = fields.id.clone();
    let starts = fields.starts.unwrap_or_else(Utc::now);
    Registry::register_at(
        &file.registry,
        &file.state(),
        &keys,
        fields.exception(starts),
        signed.clone(),
    )?;
    match signed {
        Some(a) => println!(
            "registered exception {id} in {}, signed by approver key {}",
            file.registry.display(),
            a.key
        ),
        None => println!("registered exception {id} in {}", file.registry.display()),
    }
    Ok(())
}

/// An approver's signature file, as `exception sign` writes it.
fn read_approval(p: &std::path::Path) -> Result<Approval, String> {
    let text = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_slice::<Approval>(&text).map_err(|e| {
        format!(
            "{}: not a signature from `sealgate exception sign`: {e}",
            p.display()
        )
    })
}

/// `exception request`: the bytes an approver signs, on stdout.
fn request(fields: Fields) -> CliResult {
    let Some(starts) = fields.starts else {
        return Err(
            "a request needs --starts, so that `register --signature` reproduces the signed bytes"
                .into(),
        );
    };
    let bytes = approval::request_bytes(&fields.exception(starts));
    std::io::Write::write_all(&mut std::io::stdout(), &bytes)?;
    Ok(())
}

/// `exception sign`: an approver's signature of a request, on stdout.
fn sign(key: &std::path::Path, request: &std::path::Path) -> CliResult {
    let signing = approval::load_signing(key)?;
    let bytes = std::fs::read(request).map_err(|e| format!("{}: {e}", request.display()))?;
    let e = approval::parse_request(&bytes)?;
    let a = approval::sign(&signing, &e);
    eprintln!(
        "signing exception {} ({}; buckets {}; {} to {}) with {}",
        e.id,
        e.decision_ref,
        e.buckets.join(", "),
        e.starts,
        e.expires,
        a.key
    );
    println!("{}", serde_json::to_string(&a)?);
    Ok(())
}

/// `exception approver-key`: a new approver key pair; the public half on
/// stdout, for policy.approver_keys.
fn approver_key(out: &std::path::Path) -> CliResult {
    let public = approval::generate(out)?;
    println!("{}", approval::format_public(&public));
    eprintln!(
        "approver key written to {}: keep it on this machine, never on the gateway host; list the public key above in policy.approver_keys",
        out.display()
    );
    Ok(())
}

/// `exception list`: every exception and its state now, as JSON or a
/// table.
fn list(json: bool, file: &RegistryFile) -> CliResult {
    let keys = KeyStore::load(&file.keys.keys_dir)?;
    let reg = file.read(&keys)?;
    let now = Utc::now();
    let state = |id: &str| reg.state(id, now).map(|s| s.to_string());
    if json {
        let rows: Vec<_> = reg
            .exceptions
            .values()
            .map(|(e, r)| {
                serde_json::json!({
                    "exception": e,
                    "revocation": r,
                    "state": state(&e.id),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<16} {:<14} {:<11} {:<30} BUCKETS",
        "ID", "STATE", "EXPIRES", "ALLOWS"
    );
    for (e, _) in reg.exceptions.values() {
        let allows: Vec<String> = e
            .allows
            .iter()
            .map(|a| {
                serde_json::to_value(a)
                    .map(|v| v.as_str().unwrap_or("").to_owned())
                    .unwrap_or_default()
            })
            .collect();
        println!(
            "{:<16} {:<14} {:<11} {:<30} {}",
            e.id,
            state(&e.id).unwrap_or_default(),
            e.expires.format("%Y-%m-%d"),
            allows.join(","),
            e.buckets.join(",")
        );
    }
    Ok(())
}

/// `exception show`: one exception, its revocation, approval and state.
fn show(id: &str, file: &RegistryFile) -> CliResult {
    let keys = KeyStore::load(&file.keys.keys_dir)?;
    let reg = file.read(&keys)?;
    let (e, r) = reg
        .exceptions
        .get(id)
        .ok_or_else(|| format!("no exception {id} in {}", file.registry.display()))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "exception": e,
            "revocation": r,
            "approval": reg.approval(id),
            "state": reg.state(id, Utc::now()).map(|s| s.to_string()),
        }))?
    );
    Ok(())
}

/// `exception revoke`: appends a revocation.
fn revoke(revocation: Revocation, file: &RegistryFile) -> CliResult {
    let keys = KeyStore::load(&file.keys.keys_dir)?;
    let id = revocation.id.clone();
    Registry::revoke_at(&file.registry, &file.state(), &keys, revocation)?;
    println!("revoked exception {id}");
    Ok(())
}

/// `exception report`: every exception with its use, tallied from
/// verified audit logs, as Markdown or HTML.
fn report(audit_logs: &[PathBuf], format: &str, file: &RegistryFile) -> CliResult {
    let keys = KeyStore::load(&file.keys.keys_dir)?;
    let reg = file.read(&keys)?;
    let mut lines = Vec::new();
    for log in audit_logs {
        lines.extend(crate::audit::read_verified(log, &keys)?);
    }
    let usage = crate::policy::report::tally(&lines);
    let now = Utc::now();
    match format {
        "markdown" | "md" => print!("{}", crate::policy::report::markdown(&reg, &usage, now)),
        "html" => print!("{}", crate::policy::report::html(&reg, &usage, now)),
        other => return Err(format!("--format {other:?}: expected markdown or html").into()),
    }
    Ok(())
}

/// `exception verify`: the registry's chain and authentication, and the
/// head recorded in the state file.
fn verify(file: &RegistryFile) -> CliResult {
    let keys = KeyStore::load(&file.keys.keys_dir)?;
    let reg = file.load(&keys)?;
    println!(
        "{}: {} records, chain and authentication intact",
        file.registry.display(),
        reg.len()
    );
    if let Some((seq, hash)) = reg.head() {
        println!(
            "verified up to line {seq} (SHA-256 {hash}), recorded in {}",
            file.state().display()
        );
    }
    Ok(())
}
