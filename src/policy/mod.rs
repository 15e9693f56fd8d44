//! Policy and exceptions: which buckets may hold unencrypted data, and the
//! formal decisions (exceptions) that allow it.
//!
//! Encryption is the default for every bucket. Passthrough needs a
//! registered, unexpired, unrevoked exception, kept in an append-only,
//! hash-chained, authenticated registry (docs/EXCEPTIONS.md).

pub mod registry;
pub mod report;

use crate::config::PolicyConfig;
use crate::keys::KeyStore;
use chrono::{DateTime, Utc};
use registry::{Allowance, Exception, Registry, State};
use std::path::PathBuf;

/// A passthrough bucket (or pattern) and the exception it relies on.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Bucket name or pattern.
    pub bucket: String,
    /// Exception id.
    pub exception: String,
}

/// The bucket policy in force: every bucket is encrypted except those a
/// rule names, and a rule holds only while its exception does.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    registry: PathBuf,
    rules: Vec<Rule>,
    /// Each rule with its exception as verified at load.
    in_force: Vec<(Rule, Exception)>,
}

/// Why `exception` does not allow unencrypted writes to `bucket` at `now`.
fn refuse(reg: &Registry, rule: &Rule, now: DateTime<Utc>) -> Option<String> {
    let id = &rule.exception;
    let Some((e, _)) = reg.exceptions.get(id) else {
        return Some(format!(
            "bucket {:?} names exception {id}, which is not in the registry",
            rule.bucket
        ));
    };
    match reg.state(id, now) {
        Some(State::Active) => {}
        Some(s) => {
            return Some(format!(
                "bucket {:?} names exception {id}, which is {s} (valid {} to {})",
                rule.bucket, e.starts, e.expires
            ));
        }
        None => return Some(format!("exception {id} vanished")),
    }
    if !e.allows.contains(&Allowance::UnencryptedWrites) {
        return Some(format!(
            "exception {id} does not allow unencrypted-writes (bucket {:?})",
            rule.bucket
        ));
    }
    if !covers(e, &rule.bucket) {
        return Some(format!(
            "exception {id} does not cover bucket {:?} (it covers {})",
            rule.bucket,
            e.buckets.join(", ")
        ));
    }
    None
}

/// Whether the exception's buckets include `bucket` (a name it matches, or
/// an identical pattern).
fn covers(e: &Exception, bucket: &str) -> bool {
    e.buckets
        .iter()
        .any(|p| p == bucket || (!bucket.contains('*') && registry::matches(p, bucket)))
}

impl Policy {
    /// Checks every passthrough rule against the registry; refuses (with
    /// the exact reason) an unknown, revoked, expired, not-yet-valid or
    /// non-covering exception, and a damaged registry. Logs a formal
    /// exception record per rule.
    pub fn load(cfg: &PolicyConfig, keys: &KeyStore, now: DateTime<Utc>) -> Result<Policy, String> {
        let rules: Vec<Rule> = cfg
            .passthrough
            .iter()
            .map(|r| Rule {
                bucket: r.bucket.clone(),
                exception: r.exception.clone(),
            })
            .collect();
        if rules.is_empty() {
            return Ok(Policy {
                registry: cfg.registry.clone(),
                rules,
                in_force: Vec::new(),
            });
        }
        let reg = Registry::load(&cfg.registry, keys).map_err(|e| e.to_string())?;
        let mut in_force = Vec::new();
        for rule in &rules {
            if let Some(why) = refuse(&reg, rule, now) {
                return Err(why);
            }
            in_force.push((rule.clone(), reg.exceptions[&rule.exception].0.clone()));
        }
        Ok(Policy {
            registry: cfg.registry.clone(),
            rules,
            in_force,
        })
    }

    /// Writes the formal exception record of every passthrough bucket (to
    /// the tracing log, hence the audit log): call once the audit log is
    /// attached, at start and at each reload.
    pub fn announce(&self) {
        for (rule, e) in &self.in_force {
            tracing::warn!(
                target: "sealgate::security",
                event = "exception_in_force",
                exception = %e.id,
                bucket = %rule.bucket,
                approver = %e.approver,
                decision = %e.decision_ref,
                expires = %e.expires,
                instance = %std::process::id(),
                "bucket passes data through unencrypted under a registered exception"
            );
        }
    }

    /// The rule that makes `bucket` passthrough, if any.
    pub fn passthrough(&self, bucket: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| registry::matches(&r.bucket, bucket))
    }

    /// The active exception, if any, that allows reading objects not in
    /// sealgate's format (stored before the gateway) in `bucket`; re-reads
    /// the registry, so revocations and expiry apply at once.
    pub fn legacy_reads(
        &self,
        keys: &KeyStore,
        bucket: &str,
        now: DateTime<Utc>,
    ) -> Result<Exception, String> {
        let reg = Registry::load(&self.registry, keys).map_err(|e| e.to_string())?;
        reg.exceptions
            .values()
            .find(|(e, _)| {
                e.allows.contains(&Allowance::LegacyReads)
                    && reg.state(&e.id, now) == Some(State::Active)
                    && covers(e, bucket)
            })
            .map(|(e, _)| e.clone())
            .ok_or_else(|| {
                format!("no active exception allows reading legacy plaintext in bucket {bucket}")
            })
    }

    /// Re-reads the registry and checks the rule's exception still holds
    /// now: an exception revoked or expired while the gateway runs stops
    /// passthrough at its next write. Returns the exception, or why not.
    pub fn authorize_write(
        &self,
        rule: &Rule,
        keys: &KeyStore,
        now: DateTime<Utc>,
    ) -> Result<Exception, String> {
        let reg = Registry::load(&self.registry, keys).map_err(|e| e.to_string())?;
        if let Some(why) = refuse(&reg, rule, now) {
            return Err(why);
        }
        Ok(reg.exceptions[&rule.exception].0.clone())
    }
}
