//! The gateway's tasks besides its listeners, started by the command once
//! [`super::start`] returned: the SIGHUP reload and the exception watcher.

use super::Running;
use crate::telemetry::security::TARGET;
use std::path::PathBuf;
use std::time::Duration;
use tokio::task::JoinHandle;

/// On every SIGHUP, re-reads the TLS certificate and key, the key store,
/// and (with a configuration file, `config`) the bucket policy and the
/// exception registry; whatever fails to load keeps its previous version.
pub fn reload_on_hangup(running: &Running, config: Option<PathBuf>) -> JoinHandle<()> {
    let policy = running.policy.clone();
    let keys_dir = running.keys_dir.clone();
    let tls = running.tls_files.clone();
    let keys = running.keys.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangups.recv().await.is_some() {
            if let Some(tls) = &tls {
                match tls.reload() {
                    Ok(()) => {
                        tracing::info!("TLS certificate and key reloaded; new connections use them")
                    }
                    Err(why) => {
                        tracing::error!(reason = %why, "TLS reload refused; the previous certificate stays in use")
                    }
                }
            }
            // The provider's calls block; keep them off the runtime's workers.
            let k = keys.clone();
            let reloaded = tokio::task::spawn_blocking(move || k.reload())
                .await
                .unwrap_or_else(|e| {
                    Err(crate::keys::KeyError::Io {
                        path: k_dir(&keys_dir),
                        source: std::io::Error::other(e.to_string()),
                    })
                });
            match reloaded {
                Ok(()) => {
                    tracing::warn!(target: TARGET, event = "keys_reloaded", active = %keys.get().active().id(), "key store reloaded (new active key, revocations)");
                    keys.announce_erasures();
                }
                Err(why) => {
                    tracing::error!(target: TARGET, event = "keys_reload_failed", reason = %why, "key store reload refused; the previous keys stay in use")
                }
            }
            let Some(path) = &config else { continue };
            // The keys just reloaded (or those in force): the store is not
            // loaded a second time, so its provider is asked once per SIGHUP.
            let (p, d, k) = (path.clone(), keys_dir.clone(), keys.get());
            let policy_reload =
                tokio::task::spawn_blocking(move || super::reload_policy(&p, &d, &k))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
            match policy_reload {
                Ok(p) => {
                    policy.set(p);
                    tracing::warn!(target: TARGET, event = "policy_reloaded", "bucket policy and exception registry reloaded");
                    policy.get().announce();
                }
                Err(why) => {
                    tracing::error!(target: TARGET, event = "policy_reload_failed", reason = %why, "reload refused; the previous policy stays in force");
                }
            }
        }
    })
}

fn k_dir(dir: &std::path::Path) -> PathBuf {
    dir.to_owned()
}

/// Records, every `SEALGATE_EXCEPTION_WATCH_SECS` (default 30), the moment
/// an exception in force expires or is revoked, once per exception and
/// bucket (writes are refused from then on whether or not this runs).
pub fn watch_exceptions(running: &Running) -> JoinHandle<()> {
    // The keys in force (as enforcement uses them), not a fresh read of
    // the directory every round.
    let policy = running.policy.clone();
    let keys = running.keys.clone();
    let every = std::env::var("SEALGATE_EXCEPTION_WATCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30u64);
    tokio::spawn(async move {
        let mut reported = std::collections::HashSet::new();
        loop {
            tokio::time::sleep(Duration::from_secs(every)).await;
            for (exception, bucket, why) in policy.get().lapsed(&keys.get(), chrono::Utc::now()) {
                if reported.insert((exception.clone(), bucket.clone())) {
                    tracing::warn!(target: TARGET, event = "exception_lapsed", %exception, %bucket, reason = %why, "an exception in force no longer holds; unencrypted writes are refused");
                }
            }
        }
    })
}

/// With a key provider (`provider.toml`), re-reads the key store through
/// it every `recheck_secs`: a success puts the fresh keys in force and
/// usable for `outage_grace_secs` more; a refusal (credentials revoked, key
/// disabled or deleted, other key bytes) withdraws them at once; any other
/// failure (the provider unreachable, sealed or unavailable, or the store
/// unreadable) is borne until the grace since the last success ends, then
/// the keys are withdrawn until a re-check succeeds. The deadline itself is
/// enforced by [`crate::keys::KeyCell`] on every request, so a stuck
/// re-check cannot extend it.
pub fn recheck_keys(running: &Running) -> Option<JoinHandle<()>> {
    let keys = running.keys.clone();
    let dir = running.keys_dir.clone();
    let schedule = match crate::keys::provider::schedule(&dir) {
        Ok(Some(s)) => s,
        Ok(None) => return None,
        Err(why) => {
            // start loaded this store, provider.toml included: it changed
            // since. Fail closed.
            tracing::error!(target: TARGET, event = "keys_withdrawn", reason = %why, "the key provider's settings are unreadable; keys withdrawn");
            keys.withdraw(format!(
                "the key provider's settings are unreadable ({why})"
            ));
            return None;
        }
    };
    keys.usable_until(std::time::Instant::now() + schedule.grace);
    Some(tokio::spawn(async move {
        let mut confirmed = std::time::Instant::now();
        // One event per outage: when it is first seen, and when the
        // grace ends.
        let mut failure_reported = false;
        let mut withdrawal_reported = false;
        loop {
            tokio::time::sleep(schedule.recheck).await;
            let generation = keys.generation();
            let d = dir.clone();
            let fresh = tokio::task::spawn_blocking(move || crate::keys::KeyStore::load(&d)).await;
            let why = match fresh {
                Ok(Ok(store)) => {
                    let was = keys.withdrawn();
                    let now = std::time::Instant::now();
                    if keys.confirm(store, generation, Some(now + schedule.grace)) {
                        if let Some(why) = was {
                            tracing::warn!(target: TARGET, event = "keys_restored", previously = %why, "the key provider confirms the keys again; requests are served");
                        }
                        confirmed = now;
                        failure_reported = false;
                        withdrawal_reported = false;
                        keys.announce_erasures();
                    }
                    continue;
                }
                Ok(Err(why)) if why.is_provider_refusal() => {
                    if keys.withdrawn().is_none() {
                        tracing::error!(target: TARGET, event = "keys_withdrawn", reason = %why, "the key provider refused the keys; requests are refused");
                    }
                    keys.withdraw(format!("the key provider refused the keys ({why})"));
                    continue;
                }
                Ok(Err(why)) => why.to_string(),
                Err(task) => format!("the re-check failed: {task}"),
            };
            let out_for = confirmed.elapsed();
            if out_for >= schedule.grace {
                if !withdrawal_reported {
                    withdrawal_reported = true;
                    tracing::error!(target: TARGET, event = "keys_withdrawn", reason = %why, outage_secs = out_for.as_secs(), "the key provider has not confirmed the keys past outage_grace_secs; requests are refused until it does");
                }
                keys.withdraw(format!(
                    "the key provider has been out of reach for {} s ({why})",
                    out_for.as_secs()
                ));
            } else if !failure_reported {
                failure_reported = true;
                tracing::warn!(target: TARGET, event = "key_provider_unreachable", reason = %why, grace_secs = schedule.grace.as_secs(), "the keys cannot be re-checked at the provider; keys held keep serving until the grace ends");
            }
        }
    }))
}

/// Every `SEALGATE_CRYPTOPERIOD_WATCH_SECS` (default 3600), and once at
/// start: keeps `/metrics`' active key age current and, with
/// `key_max_age_days`, reports `key_past_cryptoperiod` once per active key
/// that outlived it (new objects are still wrapped with it until it is
/// rotated).
pub fn watch_cryptoperiod(running: &Running, max_age_days: Option<u64>) -> JoinHandle<()> {
    let keys = running.keys.clone();
    let metrics = running.metrics.clone();
    let every = std::env::var("SEALGATE_CRYPTOPERIOD_WATCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3600u64)
        .max(1);
    // Set before the gateway answers, not when the task first runs: the
    // first scrape must already see it.
    metrics.active_key_created(keys.get().active_created().timestamp());
    tokio::spawn(async move {
        let mut reported = std::collections::HashSet::new();
        loop {
            let store = keys.get();
            metrics.active_key_created(store.active_created().timestamp());
            // Each key domain's active key has the same cryptoperiod.
            let Some(max) = max_age_days else {
                tokio::time::sleep(Duration::from_secs(every)).await;
                continue;
            };
            for (domain, active, age) in store.overdue_actives(max, chrono::Utc::now()) {
                if reported.insert(active) {
                    tracing::warn!(target: TARGET, event = "key_past_cryptoperiod", key_id = %active, domain = domain.unwrap_or("-"), age_days = age, max_age_days = max, "the active key is past its cryptoperiod: rotate it (sealgate keys rotate)");
                }
            }
            tokio::time::sleep(Duration::from_secs(every)).await;
        }
    })
}
