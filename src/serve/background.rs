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
