//! Policy and exceptions: which buckets may hold unencrypted data, and the
//! formal decisions (exceptions) that allow it.
//!
//! Encryption is the default for every bucket. Passthrough needs a
//! registered, unexpired, unrevoked exception, kept in an append-only,
//! hash-chained, authenticated registry (docs/EXCEPTIONS.md).

pub mod approval;
pub mod registry;
pub mod report;
pub mod verified;

use crate::config::PolicyConfig;
use crate::keys::KeyStore;
use crate::telemetry::security::TARGET as SECURITY;
use chrono::{DateTime, Utc};
use registry::{Allowance, Exception, Registry, RegistryError, State};
use std::path::PathBuf;

/// Why the policy refuses: a configuration that cannot start, or an
/// exception that does not (or no longer) allow what is asked. The texts
/// are the operator's (CLI output, logs, S3 messages) and stay as they are.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// An entry of `policy.approver_keys` is not a public key.
    #[error("policy.approver_keys: {0}")]
    ApproverKeys(#[source] approval::ApprovalError),
    /// Signatures are required but no approver key is trusted.
    #[error("policy.require_approver_signature is set but policy.approver_keys lists no key")]
    NoApproverKeys,
    /// The exception registry cannot be read or does not verify.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Signatures are required and the exception has none.
    #[error("exception {id} is not signed by an approver (policy.require_approver_signature)")]
    Unsigned {
        /// The exception.
        id: String,
    },
    /// The exception's signer is not a trusted approver.
    #[error("exception {id} is signed by {key}, which is not among policy.approver_keys")]
    UntrustedSigner {
        /// The exception.
        id: String,
        /// The key that signed it.
        key: String,
    },
    /// A bucket's exception is not approved ([`PolicyError::Unsigned`] or
    /// [`PolicyError::UntrustedSigner`]).
    #[error("bucket {bucket:?}: {why}")]
    BucketUnapproved {
        /// The bucket (or pattern) of the rule.
        bucket: String,
        /// Why the approval fails.
        why: Box<PolicyError>,
    },
    /// A rule names an exception the registry lacks.
    #[error("bucket {bucket:?} names exception {id}, which is not in the registry")]
    NotRegistered {
        /// The bucket (or pattern) of the rule.
        bucket: String,
        /// The exception.
        id: String,
    },
    /// A rule's exception is revoked, expired or not yet valid.
    #[error(
        "bucket {bucket:?} names exception {id}, which is {state} (valid {starts} to {expires})"
    )]
    NotActive {
        /// The bucket (or pattern) of the rule.
        bucket: String,
        /// The exception.
        id: String,
        /// Its state now.
        state: State,
        /// Its start.
        starts: DateTime<Utc>,
        /// Its expiry.
        expires: DateTime<Utc>,
    },
    /// The registry has no state for an exception it lists.
    #[error("exception {id} vanished")]
    Vanished {
        /// The exception.
        id: String,
    },
    /// A rule's exception does not allow what the rule uses it for.
    #[error("exception {id} does not allow {allowance} (bucket {bucket:?})")]
    NotAllowed {
        /// The exception.
        id: String,
        /// The allowance missing (`unencrypted-writes`, `legacy-reads`).
        allowance: &'static str,
        /// The bucket (or pattern) of the rule.
        bucket: String,
    },
    /// A rule's exception does not cover its bucket.
    #[error("exception {id} does not cover bucket {bucket:?} (it covers {covers})")]
    NotCovered {
        /// The exception.
        id: String,
        /// The bucket (or pattern) of the rule.
        bucket: String,
        /// The buckets it covers, comma-separated.
        covers: String,
    },
    /// A `[[policy.legacy_reads]]` rule is refused.
    #[error("legacy_reads: {0}")]
    LegacyReads(Box<PolicyError>),
    /// The provider (or the key provider) is outside the allowed
    /// jurisdictions and no exception is named for it.
    #[error(
        "the {what}'s jurisdiction {jurisdiction} is not among the allowed ({allowed}); storing data or keys there needs policy.data_location_exception naming a registered data-location exception"
    )]
    OutsideJurisdiction {
        /// What is outside: `provider` or `key provider`.
        what: &'static str,
        /// Its jurisdiction.
        jurisdiction: String,
        /// The allowed ones, comma-separated.
        allowed: String,
    },
    /// A `[[policy.key_domains]]` rule names a domain the key store lacks.
    #[error(
        "policy.key_domains: bucket {bucket:?} names key domain {domain:?}, which is not in the key store (create it: sealgate keys generate --domain {domain})"
    )]
    UnknownDomain {
        /// The rule's bucket (or pattern).
        bucket: String,
        /// The domain.
        domain: String,
    },
    /// The exception named for destroying a key domain does not allow it.
    #[error("exception {id} does not allow destroying key domain {domain:?}: {reason}")]
    Erasure {
        /// The exception.
        id: String,
        /// The domain.
        domain: String,
        /// Why not.
        reason: String,
    },
    /// `policy.data_location_exception` names an exception the registry lacks.
    #[error("data_location_exception {id} is not in the registry")]
    LocationNotRegistered {
        /// The exception.
        id: String,
    },
    /// The data-location exception is not approved.
    #[error("data_location_exception: {0}")]
    LocationUnapproved(Box<PolicyError>),
    /// The data-location exception is revoked, expired or not yet valid.
    #[error("data_location_exception {id} is {state}")]
    LocationNotActive {
        /// The exception.
        id: String,
        /// Its state now.
        state: State,
    },
    /// The data-location exception does not allow data-location.
    #[error("exception {id} does not allow data-location")]
    LocationNotAllowed {
        /// The exception.
        id: String,
    },
    /// The data-location exception does not cover every bucket.
    #[error(
        "exception {id} must cover every bucket (bucket \"*\") to allow the provider's location"
    )]
    LocationNotEveryBucket {
        /// The exception.
        id: String,
    },
    /// The data-location exception the provider depends on has expired.
    #[error(
        "the provider is outside the allowed jurisdictions and exception {id} expired at {expires}"
    )]
    LocationExpired {
        /// The exception.
        id: String,
        /// When it expired.
        expires: DateTime<Utc>,
    },
    /// A legacy read in a bucket no `[[policy.legacy_reads]]` rule names.
    #[error("bucket {bucket} is not named under [[policy.legacy_reads]] in the configuration")]
    NotLegacyBucket {
        /// The bucket.
        bucket: String,
    },
}

/// The policy in force, shared by every request and swapped whole on
/// reload (SIGHUP): a request sees either the old or the new policy.
#[derive(Debug, Default)]
pub struct PolicyCell(std::sync::RwLock<std::sync::Arc<Policy>>);

impl PolicyCell {
    /// A cell holding `p`.
    pub fn new(p: Policy) -> Self {
        PolicyCell(std::sync::RwLock::new(std::sync::Arc::new(p)))
    }
    /// The policy now.
    pub fn get(&self) -> std::sync::Arc<Policy> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// Replaces the policy.
    pub fn set(&self, p: Policy) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(p);
    }
}

/// A passthrough bucket (or pattern) and the exception it relies on.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Bucket name or pattern.
    pub bucket: String,
    /// Exception id.
    pub exception: String,
}

/// Permission to send one plaintext body to the provider, for a bucket
/// whose passthrough exception was checked just now: the upstream's write
/// API takes plaintext only with one (`upstream::UploadBody::plaintext`),
/// and its field is private, so the only way to get one is
/// [`Policy::authorize_write`] succeeding. Outside this module it cannot be
/// built:
///
/// ```compile_fail
/// let grant = sealgate::policy::PassthroughGrant { exception: "EX-1".into() };
/// ```
///
/// ```compile_fail
/// let grant: sealgate::policy::PassthroughGrant = Default::default();
/// ```
#[derive(Debug)]
pub struct PassthroughGrant {
    exception: String,
}

impl PassthroughGrant {
    /// The exception the write goes under.
    pub fn exception(&self) -> &str {
        &self.exception
    }
}

/// The bucket policy in force: every bucket is encrypted except those a
/// rule names, and a rule holds only while its exception does.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    registry: PathBuf,
    /// The registry's verified-state file (docs/EXCEPTIONS.md §Verified state).
    state: PathBuf,
    /// The registry's last line as verified at load: (seq, SHA-256 hex).
    head: Option<(u64, String)>,
    rules: Vec<Rule>,
    /// Buckets where legacy (not sealgate-format) objects may be read, and
    /// the exception each relies on.
    legacy: Vec<Rule>,
    /// Each legacy-reads rule with its exception as verified at load.
    legacy_in_force: Vec<(Rule, Exception)>,
    /// Each rule with its exception as verified at load.
    in_force: Vec<(Rule, Exception)>,
    /// The exception allowing a provider outside the allowed jurisdictions.
    data_location: Option<Exception>,
    /// Whose signatures an exception needs (docs/EXCEPTIONS.md §Approver signatures).
    approvers: Approvers,
    /// Buckets (or patterns) and the key domain each one's objects use.
    domains: Vec<(String, String)>,
}

/// The approver keys a policy trusts, and whether exceptions need one's
/// signature to be in force.
#[derive(Debug, Clone, Default)]
struct Approvers {
    keys: Vec<ed25519_dalek::VerifyingKey>,
    required: bool,
}

impl Approvers {
    fn from_config(cfg: &PolicyConfig) -> Result<Approvers, PolicyError> {
        let keys =
            approval::parse_trusted(&cfg.approver_keys).map_err(PolicyError::ApproverKeys)?;
        if cfg.require_approver_signature && keys.is_empty() {
            return Err(PolicyError::NoApproverKeys);
        }
        Ok(Approvers {
            keys,
            required: cfg.require_approver_signature,
        })
    }

    /// Why exception `id` is not in force under this requirement, if so.
    /// The signature itself was verified when the registry was read.
    fn refuse(&self, reg: &Registry, id: &str) -> Option<PolicyError> {
        if !self.required {
            return None;
        }
        let Some(a) = reg.approval(id) else {
            return Some(PolicyError::Unsigned { id: id.to_owned() });
        };
        match approval::parse_public(&a.key) {
            Ok(k) if self.keys.contains(&k) => None,
            _ => Some(PolicyError::UntrustedSigner {
                id: id.to_owned(),
                key: a.key.clone(),
            }),
        }
    }
}

/// Why `exception` does not allow unencrypted writes to `bucket` at `now`.
fn refuse(
    reg: &Registry,
    rule: &Rule,
    approvers: &Approvers,
    now: DateTime<Utc>,
) -> Option<PolicyError> {
    refuse_for(reg, rule, approvers, now, Allowance::UnencryptedWrites)
}

/// Why the rule's exception does not allow `what` in its bucket at `now`.
fn refuse_for(
    reg: &Registry,
    rule: &Rule,
    approvers: &Approvers,
    now: DateTime<Utc>,
    what: Allowance,
) -> Option<PolicyError> {
    let id = &rule.exception;
    let Some((e, _)) = reg.exceptions.get(id) else {
        return Some(PolicyError::NotRegistered {
            bucket: rule.bucket.clone(),
            id: id.clone(),
        });
    };
    if let Some(why) = approvers.refuse(reg, id) {
        return Some(PolicyError::BucketUnapproved {
            bucket: rule.bucket.clone(),
            why: Box::new(why),
        });
    }
    match reg.state(id, now) {
        Some(State::Active) => {}
        Some(s) => {
            return Some(PolicyError::NotActive {
                bucket: rule.bucket.clone(),
                id: id.clone(),
                state: s,
                starts: e.starts,
                expires: e.expires,
            });
        }
        None => return Some(PolicyError::Vanished { id: id.clone() }),
    }
    if !e.allows.contains(&what) {
        let name = match what {
            Allowance::UnencryptedWrites => "unencrypted-writes",
            Allowance::LegacyReads => "legacy-reads",
            Allowance::DataLocation => "data-location",
            Allowance::Erasure => "erasure",
        };
        return Some(PolicyError::NotAllowed {
            id: id.clone(),
            allowance: name,
            bucket: rule.bucket.clone(),
        });
    }
    if !covers(e, &rule.bucket) {
        return Some(PolicyError::NotCovered {
            id: id.clone(),
            bucket: rule.bucket.clone(),
            covers: e.buckets.join(", "),
        });
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

/// Where something the gateway relies on keeps the organisation's data or
/// keys: the storage provider, and the key store's provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// `provider` or `key provider`.
    pub what: &'static str,
    /// Its jurisdiction (`EU`, `US`, …, upper case).
    pub jurisdiction: String,
}

impl Located {
    /// The storage provider (`upstream`) and, when the key store in
    /// `keys_dir` has one, its key provider.
    pub fn all(
        upstream: &crate::config::UpstreamConfig,
        keys_dir: &std::path::Path,
    ) -> Result<Vec<Located>, crate::keys::KeyError> {
        let mut v = vec![Located {
            what: "provider",
            jurisdiction: upstream.jurisdiction(),
        }];
        // The store's provider and every live key domain's.
        let mut dirs = vec![keys_dir.to_owned()];
        dirs.extend(crate::keys::domain::live_dirs(keys_dir)?);
        for dir in dirs {
            if let Some(j) = crate::keys::provider::jurisdiction(&dir)? {
                v.push(Located {
                    what: "key provider",
                    jurisdiction: j,
                });
            }
        }
        Ok(v)
    }

    /// The storage provider alone, in `jurisdiction`.
    pub fn provider(jurisdiction: &str) -> Vec<Located> {
        vec![Located {
            what: "provider",
            jurisdiction: jurisdiction.trim().to_ascii_uppercase(),
        }]
    }
}

impl Policy {
    /// Checks every passthrough rule against the registry; refuses (with
    /// the exact reason) an unknown, revoked, expired, not-yet-valid or
    /// non-covering exception, and a damaged registry. Logs a formal
    /// exception record per rule.
    pub fn load(
        cfg: &PolicyConfig,
        places: &[Located],
        keys: &KeyStore,
        now: DateTime<Utc>,
    ) -> Result<Policy, PolicyError> {
        let rules: Vec<Rule> = cfg
            .passthrough
            .iter()
            .map(|r| Rule {
                bucket: r.bucket.clone(),
                exception: r.exception.clone(),
            })
            .collect();
        let legacy: Vec<Rule> = cfg
            .legacy_reads
            .iter()
            .map(|r| Rule {
                bucket: r.bucket.clone(),
                exception: r.exception.clone(),
            })
            .collect();
        // The first place outside the allowed jurisdictions, if any: one
        // data-location exception covers them all.
        let outside = places.iter().find(|p| {
            !cfg.allowed_jurisdictions.is_empty()
                && (p.jurisdiction == crate::keys::provider::UNDECLARED
                    || !cfg
                        .allowed_jurisdictions
                        .iter()
                        .any(|j| j.eq_ignore_ascii_case(&p.jurisdiction)))
        });
        let state = cfg.state_path();
        let approvers = Approvers::from_config(cfg)?;
        let mut domains = Vec::new();
        for r in &cfg.key_domains {
            // A destroyed domain is still known: its buckets' writes are
            // refused and its objects read as erased.
            if !keys.has_domain(&r.domain) {
                return Err(PolicyError::UnknownDomain {
                    bucket: r.bucket.clone(),
                    domain: r.domain.clone(),
                });
            }
            domains.push((r.bucket.clone(), r.domain.clone()));
        }
        if rules.is_empty() && legacy.is_empty() && outside.is_none() {
            return Ok(Policy {
                registry: cfg.registry.clone(),
                state,
                approvers,
                domains,
                ..Policy::default()
            });
        }
        let reg = Registry::load_at(&cfg.registry, &state, keys)?;
        let mut in_force = Vec::new();
        for rule in &rules {
            if let Some(why) = refuse(&reg, rule, &approvers, now) {
                return Err(why);
            }
            in_force.push((rule.clone(), reg.exceptions[&rule.exception].0.clone()));
        }
        let mut legacy_in_force = Vec::new();
        for rule in &legacy {
            if let Some(why) = refuse_for(&reg, rule, &approvers, now, Allowance::LegacyReads) {
                return Err(PolicyError::LegacyReads(Box::new(why)));
            }
            legacy_in_force.push((rule.clone(), reg.exceptions[&rule.exception].0.clone()));
        }
        let data_location = if let Some(place) = outside {
            let allowed = cfg.allowed_jurisdictions.join(", ");
            let Some(id) = &cfg.data_location_exception else {
                return Err(PolicyError::OutsideJurisdiction {
                    what: place.what,
                    jurisdiction: place.jurisdiction.clone(),
                    allowed,
                });
            };
            let Some((e, _)) = reg.exceptions.get(id) else {
                return Err(PolicyError::LocationNotRegistered { id: id.clone() });
            };
            if let Some(why) = approvers.refuse(&reg, id) {
                return Err(PolicyError::LocationUnapproved(Box::new(why)));
            }
            match reg.state(id, now) {
                Some(State::Active) => {}
                Some(s) => {
                    return Err(PolicyError::LocationNotActive {
                        id: id.clone(),
                        state: s,
                    });
                }
                None => return Err(PolicyError::Vanished { id: id.clone() }),
            }
            if !e.allows.contains(&Allowance::DataLocation) {
                return Err(PolicyError::LocationNotAllowed { id: id.clone() });
            }
            if !e.buckets.iter().any(|b| b == "*") {
                return Err(PolicyError::LocationNotEveryBucket { id: id.clone() });
            }
            Some(e.clone())
        } else {
            None
        };
        Ok(Policy {
            registry: cfg.registry.clone(),
            state,
            head: reg.head(),
            rules,
            legacy,
            legacy_in_force,
            in_force,
            data_location,
            approvers,
            domains,
        })
    }

    /// The registered exception `id`, checked as the formal decision to
    /// destroy key domain `domain` now (docs/KEYS.md §Erasure): in the
    /// verified registry, signed when the policy requires signatures,
    /// active, allowing `erasure` and naming the domain.
    pub fn erasure(
        cfg: &PolicyConfig,
        keys: &KeyStore,
        id: &str,
        domain: &str,
        now: DateTime<Utc>,
    ) -> Result<Exception, PolicyError> {
        let refuse = |reason: String| PolicyError::Erasure {
            id: id.to_owned(),
            domain: domain.to_owned(),
            reason,
        };
        let approvers = Approvers::from_config(cfg)?;
        let reg = Registry::load_at(&cfg.registry, &cfg.state_path(), keys)?;
        let Some((e, _)) = reg.exceptions.get(id) else {
            return Err(refuse(format!(
                "it is not in the registry {}",
                cfg.registry.display()
            )));
        };
        if let Some(why) = approvers.refuse(&reg, id) {
            return Err(refuse(why.to_string()));
        }
        match reg.state(id, now) {
            Some(State::Active) => {}
            Some(s) => return Err(refuse(format!("it is {s}"))),
            None => return Err(PolicyError::Vanished { id: id.to_owned() }),
        }
        if !e.allows.contains(&Allowance::Erasure) {
            return Err(refuse("it does not allow erasure".into()));
        }
        if !e.domains.iter().any(|d| d == domain) {
            return Err(refuse(format!(
                "it names the domains {:?}, not this one",
                e.domains
            )));
        }
        Ok(e.clone())
    }

    /// The key domain whose active key wraps new objects of `bucket`
    /// (`None`: the store's own), by the first `[[policy.key_domains]]`
    /// rule matching it.
    pub fn domain_for(&self, bucket: &str) -> Option<&str> {
        self.domains
            .iter()
            .find(|(b, _)| registry::matches(b, bucket))
            .map(|(_, d)| d.as_str())
    }

    /// The exception under which the provider may be outside the allowed
    /// jurisdictions, if one is needed.
    pub fn data_location_exception(&self) -> Option<&str> {
        self.data_location.as_ref().map(|e| e.id.as_str())
    }

    /// Whether new data may be written to the provider now: refused once a
    /// data-location exception it depends on has expired.
    pub fn check_location(&self, now: DateTime<Utc>) -> Result<(), PolicyError> {
        match &self.data_location {
            Some(e) if now >= e.expires => Err(PolicyError::LocationExpired {
                id: e.id.clone(),
                expires: e.expires,
            }),
            _ => Ok(()),
        }
    }

    /// Writes the formal exception record of every passthrough bucket (to
    /// the tracing log, hence the audit log): call once the audit log is
    /// attached, at start and at each reload.
    pub fn announce(&self) {
        if let Some((seq, hash)) = &self.head {
            tracing::info!(
                target: SECURITY,
                event = "registry_verified",
                registry = %self.registry.display(),
                seq = *seq,
                hash = %hash,
                "exception registry verified up to this line at load"
            );
        }
        if let Some(e) = &self.data_location {
            tracing::warn!(
                target: SECURITY,
                event = "exception_in_force",
                exception = %e.id,
                bucket = "*",
                scope = "data-location",
                approver = %e.approver,
                decision = %e.decision_ref,
                expires = %e.expires,
                instance = %std::process::id(),
                "the provider is outside the allowed jurisdictions under a registered exception"
            );
        }
        for (rule, e) in &self.legacy_in_force {
            tracing::warn!(
                target: SECURITY,
                event = "exception_in_force",
                exception = %e.id,
                bucket = %rule.bucket,
                scope = "legacy-reads",
                approver = %e.approver,
                decision = %e.decision_ref,
                expires = %e.expires,
                instance = %std::process::id(),
                "objects not in sealgate's format may be read in this encrypted bucket under a registered exception"
            );
        }
        for (rule, e) in &self.in_force {
            tracing::warn!(
                target: SECURITY,
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

    /// The exceptions this policy relies on that no longer hold at `now`
    /// (expired, revoked, registry damaged): (exception, bucket, why).
    pub fn lapsed(&self, keys: &KeyStore, now: DateTime<Utc>) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for rule in &self.rules {
            if let Err(why) = self.authorize_write(rule, keys, now) {
                out.push((rule.exception.clone(), rule.bucket.clone(), why.to_string()));
            }
        }
        if let (Some(e), Err(why)) = (&self.data_location, self.check_location(now)) {
            out.push((e.id.clone(), "*".into(), why.to_string()));
        }
        out
    }

    /// Whether the exception registry still reads and verifies (for
    /// readiness): a damaged registry is an incident, not a quiet state.
    pub fn registry_ok(&self, keys: &KeyStore) -> Result<(), PolicyError> {
        Registry::load_at(&self.registry, &self.state, keys)?;
        Ok(())
    }

    /// The rule that makes `bucket` passthrough, if any.
    pub fn passthrough(&self, bucket: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| registry::matches(&r.bucket, bucket))
    }

    /// The exception that allows reading objects not in sealgate's format
    /// (stored before the gateway) in `bucket`: only a bucket the
    /// configuration names under `[[policy.legacy_reads]]`, and only while
    /// the exception that rule names is active, allows `legacy-reads` and
    /// covers the bucket. Re-reads the registry, so revocations and expiry
    /// apply at once; a registry line alone never allows anything.
    pub fn legacy_reads(
        &self,
        keys: &KeyStore,
        bucket: &str,
        now: DateTime<Utc>,
    ) -> Result<Exception, PolicyError> {
        let Some(rule) = self
            .legacy
            .iter()
            .find(|r| registry::matches(&r.bucket, bucket))
        else {
            return Err(PolicyError::NotLegacyBucket {
                bucket: bucket.to_owned(),
            });
        };
        let reg = Registry::load_at(&self.registry, &self.state, keys)?;
        let probe = Rule {
            bucket: bucket.to_owned(),
            exception: rule.exception.clone(),
        };
        if let Some(why) = refuse_for(&reg, &probe, &self.approvers, now, Allowance::LegacyReads) {
            return Err(why);
        }
        Ok(reg.exceptions[&rule.exception].0.clone())
    }

    /// Re-reads the registry and checks the rule's exception still holds
    /// now: an exception revoked or expired while the gateway runs stops
    /// passthrough at its next write. Returns the exception and the grant
    /// one plaintext upload needs, or why not.
    pub fn authorize_write(
        &self,
        rule: &Rule,
        keys: &KeyStore,
        now: DateTime<Utc>,
    ) -> Result<(Exception, PassthroughGrant), PolicyError> {
        let reg = Registry::load_at(&self.registry, &self.state, keys)?;
        if let Some(why) = refuse(&reg, rule, &self.approvers, now) {
            return Err(why);
        }
        let grant = PassthroughGrant {
            exception: rule.exception.clone(),
        };
        Ok((reg.exceptions[&rule.exception].0.clone(), grant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry::Allowance;

    fn setup(
        buckets: &[&str],
        expires_in_days: i64,
    ) -> (tempfile::TempDir, PolicyConfig, KeyStore) {
        let dir = tempfile::tempdir().unwrap();
        let kd = dir.path().join("keys");
        KeyStore::generate(&kd, false).unwrap();
        let keys = KeyStore::load(&kd).unwrap();
        let registry = dir.path().join("exceptions.jsonl");
        Registry::register(
            &registry,
            &keys,
            Exception {
                id: "EX-LOC".into(),
                approver: "DPO".into(),
                decision_ref: "GDPR basis: SCCs, board 2026-10".into(),
                reason: "US provider".into(),
                risk: "medium".into(),
                classification: "internal".into(),
                buckets: buckets.iter().map(|b| (*b).to_owned()).collect(),
                allows: vec![Allowance::DataLocation],
                domains: vec![],
                starts: Utc::now() - chrono::Duration::days(1),
                expires: Utc::now() + chrono::Duration::days(expires_in_days),
            },
        )
        .unwrap();
        let cfg = PolicyConfig {
            registry,
            passthrough: vec![],
            legacy_reads: vec![],
            allowed_jurisdictions: vec!["EU".into()],
            data_location_exception: None,
            ..PolicyConfig::default()
        };
        (dir, cfg, keys)
    }

    #[test]
    fn key_domain_rules_name_domains_the_store_has() {
        let dir = tempfile::tempdir().unwrap();
        let kd = dir.path().join("keys");
        KeyStore::generate(&kd, false).unwrap();
        KeyStore::generate(&crate::keys::domain::dir(&kd, "hr").unwrap(), false).unwrap();
        let keys = KeyStore::load(&kd).unwrap();
        let rule = |bucket: &str, domain: &str| crate::config::KeyDomainRule {
            bucket: bucket.into(),
            domain: domain.into(),
        };
        let mut cfg = PolicyConfig {
            registry: dir.path().join("exceptions.jsonl"),
            key_domains: vec![rule("hr-*", "hr"), rule("finance", "finance")],
            ..PolicyConfig::default()
        };
        let now = Utc::now();
        let err = Policy::load(&cfg, &Located::provider("EU"), &keys, now)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("policy.key_domains") && err.contains("\"finance\""),
            "{err}"
        );
        cfg.key_domains.pop();
        cfg.key_domains.push(rule("*", "hr"));
        let p = Policy::load(&cfg, &Located::provider("EU"), &keys, now).unwrap();
        assert_eq!(p.domain_for("hr-files"), Some("hr"));
        // The first matching rule applies.
        cfg.key_domains = vec![rule("hr-*", "hr")];
        let p = Policy::load(&cfg, &Located::provider("EU"), &keys, now).unwrap();
        assert_eq!(p.domain_for("public"), None);
    }

    #[test]
    fn a_provider_outside_the_allowed_jurisdictions_needs_an_exception() {
        let now = Utc::now();
        let (_d, mut cfg, keys) = setup(&["*"], 30);
        assert!(Policy::load(&cfg, &Located::provider("eu"), &keys, now).is_ok());
        let err = Policy::load(&cfg, &Located::provider("US"), &keys, now)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("US") && err.contains("data_location_exception"),
            "{err}"
        );
        cfg.data_location_exception = Some("EX-404".into());
        assert!(
            Policy::load(&cfg, &Located::provider("US"), &keys, now)
                .unwrap_err()
                .to_string()
                .contains("not in the registry")
        );
        cfg.data_location_exception = Some("EX-LOC".into());
        let p = Policy::load(&cfg, &Located::provider("US"), &keys, now).unwrap();
        assert_eq!(p.data_location_exception(), Some("EX-LOC"));
        assert!(p.check_location(now).is_ok());
        let later = now + chrono::Duration::days(31);
        assert!(
            p.check_location(later)
                .unwrap_err()
                .to_string()
                .contains("expired")
        );

        let (_d, mut cfg, keys) = setup(&["backups"], 30);
        cfg.data_location_exception = Some("EX-LOC".into());
        let err = Policy::load(&cfg, &Located::provider("US"), &keys, now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("every bucket"), "{err}");
    }

    #[test]
    fn a_key_provider_outside_the_allowed_jurisdictions_needs_the_exception_too() {
        let now = Utc::now();
        let (_d, mut cfg, keys) = setup(&["*"], 30);
        let mut places = Located::provider("EU");
        places.push(Located {
            what: "key provider",
            jurisdiction: "US".into(),
        });
        let err = Policy::load(&cfg, &places, &keys, now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("the key provider's jurisdiction US"), "{err}");
        places[1].jurisdiction = crate::keys::provider::UNDECLARED.into();
        let err = Policy::load(&cfg, &places, &keys, now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("UNDECLARED"), "{err}");
        // No allowed list contains it, even one that names it.
        cfg.allowed_jurisdictions.push("UNDECLARED".into());
        assert!(Policy::load(&cfg, &places, &keys, now).is_err());
        cfg.allowed_jurisdictions.pop();
        cfg.data_location_exception = Some("EX-LOC".into());
        let p = Policy::load(&cfg, &places, &keys, now).unwrap();
        assert_eq!(p.data_location_exception(), Some("EX-LOC"));
        places[1].jurisdiction = "EU".into();
        cfg.data_location_exception = None;
        assert!(Policy::load(&cfg, &places, &keys, now).is_ok());
    }

    #[test]
    fn policy_error_texts_are_the_operators() {
        let unsigned = PolicyError::Unsigned { id: "EX-1".into() };
        let nested = PolicyError::LegacyReads(Box::new(PolicyError::BucketUnapproved {
            bucket: "logs".into(),
            why: Box::new(unsigned),
        }));
        assert_eq!(
            nested.to_string(),
            "legacy_reads: bucket \"logs\": exception EX-1 is not signed by an approver (policy.require_approver_signature)"
        );
        let e = PolicyError::NotAllowed {
            id: "EX-2".into(),
            allowance: "legacy-reads",
            bucket: "b*".into(),
        };
        assert_eq!(
            e.to_string(),
            "exception EX-2 does not allow legacy-reads (bucket \"b*\")"
        );
        let e = PolicyError::LocationNotEveryBucket { id: "EX-3".into() };
        assert_eq!(
            e.to_string(),
            "exception EX-3 must cover every bucket (bucket \"*\") to allow the provider's location"
        );
    }
}
