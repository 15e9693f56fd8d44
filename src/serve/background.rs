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
            match keys.reload() {
                Ok(()) => {
                    tracing::warn!(target: TARGET, event = "keys_reloaded", active = %keys.get().active().id(), "key store reloaded (new active key, revocations)")
                }
                Err(why) => {
                    tracing::error!(target: TARGET, event = "keys_reload_failed", reason = %why, "key store reload refused; the previous keys stay in use")
                }
            }
            let Some(path) = &config else { continue };
            match super::reload_policy(path, &keys_dir) {
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
/// it every `recheck_secs`: a success puts the fresh keys in force; a
/// refusal (credentials revoked, key disabled or deleted) withdraws the
/// keys at once, so no request is served under them; an outage
/// (unreachable, sealed) is borne for `outage_grace_secs` after the last
/// success, then the keys are withdrawn until the provider answers again.
pub fn recheck_keys(running: &Running) -> Option<JoinHandle<()>> {
    let keys = running.keys.clone();
    let dir = running.keys_dir.clone();
    let schedule = match crate::keys::provider::schedule(&dir) {
        Ok(Some(s)) => s,
        Ok(None) => return None,
        Err(why) => {
            tracing::error!(target: TARGET, event = "keys_reload_failed", reason = %why, "the key provider's settings are unreadable; its keys are not re-checked");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        let mut confirmed = std::time::Instant::now();
        let mut outage_reported = false;
        loop {
            tokio::time::sleep(schedule.recheck).await;
            let d = dir.clone();
            let fresh = tokio::task::spawn_blocking(move || crate::keys::KeyStore::load(&d)).await;
            let Ok(fresh) = fresh else { continue };
            match fresh {
                Ok(store) => {
                    if let Some(why) = keys.withdrawn() {
                        tracing::warn!(target: TARGET, event = "keys_restored", previously = %why, "the key provider answers again; requests are served");
                    }
                    keys.replace(store);
                    confirmed = std::time::Instant::now();
                    outage_reported = false;
                }
                Err(why) if why.is_provider_outage() => {
                    let out_for = confirmed.elapsed();
                    if out_for >= schedule.grace {
                        if keys.withdrawn().is_none() {
                            tracing::error!(target: TARGET, event = "keys_withdrawn", reason = %why, outage_secs = out_for.as_secs(), "the key provider has been out of reach past outage_grace_secs; requests are refused until it answers");
                            keys.withdraw(format!(
                                "the key provider has been out of reach for {} s ({why})",
                                out_for.as_secs()
                            ));
                        }
                    } else if !outage_reported {
                        outage_reported = true;
                        tracing::warn!(target: TARGET, event = "key_provider_unreachable", reason = %why, grace_secs = schedule.grace.as_secs(), "the key provider is out of reach; keys held keep serving until the grace ends");
                    }
                }
                Err(why) if why.is_provider_refusal() => {
                    if keys.withdrawn().is_none() {
                        tracing::error!(target: TARGET, event = "keys_withdrawn", reason = %why, "the key provider refused the keys; requests are refused");
                        keys.withdraw(format!("the key provider refused the keys ({why})"));
                    }
                }
                Err(why) => {
                    tracing::error!(target: TARGET, event = "keys_reload_failed", reason = %why, "key store re-check refused; the previous keys stay in use");
                }
            }
        }
    }))
}
