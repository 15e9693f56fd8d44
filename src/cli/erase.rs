//! `sealgate keys destroy`: crypto-shredding a key domain under a
//! registered erasure exception, with a certificate (docs/KEYS.md
//! §Erasure).
//!
//! The order is the point: the exception is checked and the domain's
//! buckets are counted first (nothing is destroyed on any doubt); then the
//! erasure record is written in the key store (from then on every loader
//! treats the domain's keys as gone); then the provider destroys the root
//! key; then the wrapped key files go; then the record is completed and
//! the certificate written. A running gateway logs the destruction as a
//! security event (hence into its audit log) when it next loads its keys.

use super::CliResult;
use crate::config::Config;
use crate::keys::{ErasureDecision, KeyStore};
use std::path::PathBuf;

/// The `format` of erasure certificates.
pub const CERTIFICATE_FORMAT: &str = "sealgate-erasure-certificate/1";

/// Arguments of `sealgate keys destroy`.
#[derive(Debug, clap::Args)]
pub struct DestroyArgs {
    /// The key domain to destroy (`<keys>/domains/<domain>/`).
    #[arg(long)]
    domain: String,
    /// The registered exception (allowing `erasure`, naming the domain)
    /// that is the formal decision to destroy it.
    #[arg(long)]
    exception: String,
    /// Where to write the erasure certificate (JSON).
    #[arg(long)]
    certificate: PathBuf,
    /// Configuration file: its key store, registry, approver keys,
    /// `[[policy.key_domains]]` and the provider to count objects at.
    #[arg(long, env = "SEALGATE_CONFIG")]
    config: PathBuf,
}

/// The certificate: what was destroyed, on whose decision, with what the
/// provider confirmed.
#[derive(Debug, serde::Serialize)]
struct Certificate<'a> {
    format: &'static str,
    domain: &'a str,
    keys: &'a [crate::keys::domain::ErasedKey],
    provider: &'a str,
    receipts: &'a [String],
    exception: &'a str,
    approver: &'a str,
    decision_ref: &'a str,
    reason: &'a str,
    started: &'a str,
    completed: Option<&'a str>,
    buckets: Vec<String>,
    /// Objects listed in those buckets just before the destruction (each
    /// now unreadable if its key was the domain's).
    objects_listed: u64,
}

/// Runs `keys destroy`.
pub fn run(a: DestroyArgs) -> CliResult {
    let mut cfg = Config::load(&a.config)?;
    cfg.apply_env(|k| std::env::var(k).ok())?;
    let keys = KeyStore::load(&cfg.keys_dir)?;
    let now = chrono::Utc::now();
    let (decision, reason) = match keys.tombstone(&a.domain) {
        // Resuming (or certifying again): the decision was checked when
        // the destruction began and is in the record.
        Some(t) => (
            ErasureDecision {
                exception: t.exception.clone(),
                approver: t.approver.clone(),
                decision_ref: t.decision_ref.clone(),
            },
            crate::policy::Policy::erasure(&cfg.policy, &keys, &t.exception, &a.domain, now)
                .map(|e| e.reason)
                .unwrap_or_else(|e| format!("(the exception no longer verifies: {e})")),
        ),
        None => {
            if !keys.has_domain(&a.domain) {
                return Err(crate::keys::KeyError::UnknownDomain {
                    name: a.domain.clone(),
                    dir: cfg.keys_dir.clone(),
                }
                .into());
            }
            let e =
                crate::policy::Policy::erasure(&cfg.policy, &keys, &a.exception, &a.domain, now)?;
            (
                ErasureDecision {
                    exception: e.id,
                    approver: e.approver,
                    decision_ref: e.decision_ref,
                },
                e.reason,
            )
        }
    };
    let buckets: Vec<String> = cfg
        .policy
        .key_domains
        .iter()
        .filter(|r| r.domain == a.domain)
        .map(|r| r.bucket.clone())
        .collect();
    let (listed_buckets, objects) = count(&cfg, &buckets)?;
    let t = KeyStore::destroy_domain(&cfg.keys_dir, &a.domain, &decision)?;
    let cert = Certificate {
        format: CERTIFICATE_FORMAT,
        domain: &t.domain,
        keys: &t.keys,
        provider: &t.provider,
        receipts: &t.receipts,
        exception: &t.exception,
        approver: &t.approver,
        decision_ref: &t.decision_ref,
        reason: &reason,
        started: &t.started,
        completed: t.completed.as_deref(),
        buckets: listed_buckets,
        objects_listed: objects,
    };
    let mut text = serde_json::to_string_pretty(&cert)?;
    text.push('\n');
    std::fs::write(&a.certificate, text)
        .map_err(|e| format!("{}: {e}", a.certificate.display()))?;
    println!(
        "key domain {} destroyed: {} key(s), {} object(s) listed in its buckets can no longer be read; certificate {}",
        t.domain,
        t.keys.len(),
        objects,
        a.certificate.display()
    );
    eprintln!(
        "Running gateways refuse the domain's objects as erased once they reload their keys (SIGHUP, the provider re-check, or restart)."
    );
    Ok(())
}

/// The provider's buckets the patterns match, and how many objects they
/// hold. Fails (before anything is destroyed) when the provider cannot
/// answer: the certificate must not guess.
fn count(
    cfg: &Config,
    patterns: &[String],
) -> Result<(Vec<String>, u64), Box<dyn std::error::Error>> {
    if patterns.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let up = crate::upstream::Upstream::connect(&cfg.upstream, None).await?;
        let counted = |e: crate::upstream::UpstreamError| {
            format!("counting the domain's objects at the provider: {e}")
        };
        let mut names: Vec<String> = up
            .list_buckets()
            .await
            .map_err(counted)?
            .into_iter()
            .filter_map(|b| b.name)
            .filter(|n| {
                patterns
                    .iter()
                    .any(|p| crate::policy::registry::matches(p, n))
            })
            .collect();
        names.sort();
        let mut n = 0u64;
        for bucket in &names {
            let mut token = None;
            loop {
                let page = up
                    .list_objects_v2(crate::upstream::ListRequest {
                        bucket: bucket.clone(),
                        continuation_token: token,
                        ..Default::default()
                    })
                    .await
                    .map_err(counted)?;
                n += page.contents.len() as u64;
                match page.next_continuation_token {
                    Some(t) if page.is_truncated == Some(true) => token = Some(t),
                    _ => break,
                }
            }
        }
        Ok::<_, Box<dyn std::error::Error>>((names, n))
    })
}
