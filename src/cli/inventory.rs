//! `sealgate keys inventory`: every key of a store and where its provider
//! keeps the root key, as one JSON document for auditors
//! (docs/KEYS.md §Inventory). Loading the store first proves that every
//! key listed unwraps and passes its check value now.

use crate::keys::KeyStore;
use crate::keys::provider::{self, Description};
use std::path::Path;

/// The inventory document.
#[derive(Debug, serde::Serialize)]
struct Inventory {
    /// The version of this document's layout.
    format: &'static str,
    /// When it was made, RFC 3339.
    generated: String,
    /// The store directory.
    store: String,
    /// The store's provider, or none: the keys are plain files on this
    /// host (their jurisdiction is the host's).
    provider: Option<Description>,
    /// What a key is and how it is used.
    kek_algorithm: &'static str,
    /// The configured cryptoperiod, if any.
    max_age_days: Option<u64>,
    /// The key domains: each one's provider, or its erasure record.
    domains: Vec<DomainEntry>,
    /// Every key, oldest first.
    keys: Vec<Entry>,
}

/// One key domain.
#[derive(Debug, serde::Serialize)]
struct DomainEntry {
    name: String,
    /// `live` or `destroyed`.
    state: &'static str,
    /// Its provider, when live and wrapped by one.
    provider: Option<Description>,
    /// What was destroyed, when, on whose decision, with the provider's
    /// confirmations.
    #[serde(skip_serializing_if = "Option::is_none")]
    erasure: Option<crate::keys::domain::Tombstone>,
}

/// One key.
#[derive(Debug, serde::Serialize)]
struct Entry {
    id: String,
    created: String,
    age_days: i64,
    /// `active` (wraps new objects of its domain), `retained` (opens older
    /// objects), `revoked` or `destroyed`.
    state: &'static str,
    /// Its key domain; absent for the store's own keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    destroyed: Option<String>,
    /// Where it is kept: `file`, or the provider that wrapped it.
    kept: String,
    /// Older than `max_age_days` (only the active key is held to it: the
    /// others wrap nothing new).
    past_cryptoperiod: bool,
}

const KEK_ALGORITHM: &str = "AES-256 key (32 bytes); wraps each object's data key with AES-256-GCM under HKDF(KEK, object id) (docs/FORMAT.md §Envelope)";

/// The inventory of the store in `dir` as pretty JSON.
pub fn render(dir: &Path, max_age_days: Option<u64>) -> Result<String, Box<dyn std::error::Error>> {
    let store = KeyStore::load(dir)?;
    let described = provider::describe(dir)?;
    // The same test as `config check` and the gateway's watch, for each
    // domain's active key.
    let now = chrono::Utc::now();
    let overdue: Vec<String> = max_age_days
        .map(|m| store.overdue_actives(m, now))
        .unwrap_or_default()
        .into_iter()
        .map(|(_, id, _)| id.to_string())
        .collect();
    let keys = store
        .list()
        .into_iter()
        .map(|k| Entry {
            state: match (&k.destroyed, &k.revoked, k.active) {
                (Some(_), _, _) => "destroyed",
                (None, Some(_), _) => "revoked",
                (None, None, true) => "active",
                (None, None, false) => "retained",
            },
            past_cryptoperiod: k.active && overdue.contains(&k.id),
            id: k.id,
            created: k.created,
            age_days: k.age_days,
            domain: k.domain,
            revoked: k.revoked,
            destroyed: k.destroyed,
            kept: k.provider,
        })
        .collect();
    let mut domains = Vec::new();
    for name in store.domain_names() {
        domains.push(match store.tombstone(name) {
            Some(t) => DomainEntry {
                name: name.to_owned(),
                state: "destroyed",
                provider: None,
                erasure: Some(t.clone()),
            },
            None => DomainEntry {
                name: name.to_owned(),
                state: "live",
                provider: provider::describe(&crate::keys::domain::dir(dir, name)?)?,
                erasure: None,
            },
        });
    }
    let inv = Inventory {
        format: "sealgate-key-inventory/1",
        generated: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        store: dir.display().to_string(),
        provider: described,
        kek_algorithm: KEK_ALGORITHM,
        max_age_days,
        domains,
        keys,
    };
    Ok(serde_json::to_string_pretty(&inv)?)
}
