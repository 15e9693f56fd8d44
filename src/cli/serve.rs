//! `sealgate serve`: start the gateway, print how to use it, wait for a signal.

use super::CliResult;
use crate::serve::{Options, start};
use std::path::PathBuf;

/// Arguments of `sealgate serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Without it, sealgate runs the embedded default.
    #[arg(long, env = "SEALGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:7070).
    #[arg(long, env = "SEALGATE_LISTEN")]
    listen: Option<String>,
    /// Data directory of the embedded upstream (default ./data).
    #[arg(long = "data-dir", env = "SEALGATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Key store directory (default ./keys, or keys_dir from the config).
    #[arg(long = "keys-dir", env = "SEALGATE_KEYS_DIR")]
    keys_dir: Option<PathBuf>,
    /// Client access key (with --secret-key / SEALGATE_SECRET_KEY).
    #[arg(
        long = "access-key",
        env = "SEALGATE_ACCESS_KEY",
        hide_env_values = true
    )]
    access_key: Option<String>,
    /// Client secret key.
    #[arg(
        long = "secret-key",
        env = "SEALGATE_SECRET_KEY",
        hide_env_values = true
    )]
    secret_key: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long = "tls-cert", env = "SEALGATE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) for --tls-cert.
    #[arg(long = "tls-key", env = "SEALGATE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Append security events to this hash-chained, authenticated audit log
    /// (one file per instance; `sealgate audit verify` checks it).
    #[arg(long = "audit-log", env = "SEALGATE_AUDIT_LOG")]
    audit_log: Option<PathBuf>,
    /// Every --anchor-every-secs, write the audit log's chain head once
    /// (If-None-Match: *) to this bucket at the provider; give it Object
    /// Lock there (docs/INCIDENTS.md §Anchors).
    #[arg(
        long = "anchor-bucket",
        env = "SEALGATE_ANCHOR_BUCKET",
        requires = "audit_log"
    )]
    anchor_bucket: Option<String>,
    /// Key prefix of the anchors (one prefix per audit log).
    #[arg(
        long = "anchor-prefix",
        env = "SEALGATE_ANCHOR_PREFIX",
        default_value = "sealgate-anchors/"
    )]
    anchor_prefix: String,
    /// Seconds between anchors (only when the head moved).
    #[arg(
        long = "anchor-every-secs",
        env = "SEALGATE_ANCHOR_EVERY_SECS",
        default_value_t = 300
    )]
    anchor_every_secs: u64,
    /// Also lock each anchor (Object Lock, COMPLIANCE) for this many days.
    #[arg(long = "anchor-retain-days", env = "SEALGATE_ANCHOR_RETAIN_DAYS")]
    anchor_retain_days: Option<u32>,
    /// POST security incidents as JSON to this http:// URL (docs/INCIDENTS.md).
    #[arg(long = "incident-webhook", env = "SEALGATE_INCIDENT_WEBHOOK")]
    incident_webhook: Option<String>,
    /// Serve /health/live, /health/ready and /metrics on this address.
    #[arg(long = "admin-listen", env = "SEALGATE_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long = "log-json", env = "SEALGATE_LOG_JSON")]
    log_json: bool,
}

pub(super) fn serve(a: ServeArgs) -> CliResult {
    // Start time is measured from here (docs/OPERATIONS.md §Start time).
    let began = std::time::Instant::now();
    let audit = init_logging(a.log_json);
    let client = match (a.access_key, a.secret_key) {
        (Some(ak), Some(sk)) => Some((ak, sk)),
        (None, None) => None,
        _ => return Err("set both SEALGATE_ACCESS_KEY and SEALGATE_SECRET_KEY, or neither".into()),
    };
    let embedded = a.config.is_none();
    let config_path = a.config.clone();
    let opts = Options {
        config: a.config,
        listen: a.listen,
        keys_dir: a.keys_dir.clone(),
        data_dir: a.data_dir,
        client,
        tls: a.tls_cert.zip(a.tls_key),
        admin_listen: a.admin_listen.clone(),
        metrics: Some(audit.metrics()),
        audit_log: a.audit_log.clone(),
        audit: Some(audit.clone()),
        // Anchors protect the audit log from the host; a client that could
        // write there could pre-empt them (write-once slots).
        reserved_buckets: a.anchor_bucket.iter().cloned().collect(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        if let Some(url) = &a.incident_webhook {
            audit.attach_webhook(crate::audit::webhook::Webhook::start(url, audit.metrics())?);
        }
        // Verifies and attaches the audit log, and records the exceptions
        // in force, before the listener opens.
        let running = start(opts).await?;
        if a.audit_log.is_some() {
            tracing::info!(target: "sealgate::security", event = "gateway_started", addr = %running.addr, "audit log opened");
        }
        tracing::info!(startup_ms = began.elapsed().as_millis() as u64, addr = %running.addr, "sealgate ready: keys, policy and registry loaded, listening");
        if let Some(id) = &running.generated_key {
            let dir = a.keys_dir.unwrap_or_else(|| PathBuf::from("keys"));
            tracing::warn!(key_id = %id, keys_dir = %dir.display(), "generated a key-encryption key: BACK IT UP NOW, without it nothing stored through sealgate can be read (docs/KEYS.md)");
            if !a.log_json {
                // Stderr stays pure JSON lines with --log-json.
                eprintln!("\n*** generated key-encryption key {id} in {} ***", dir.display());
                eprintln!("*** BACK IT UP NOW: without it, nothing stored through sealgate can be read (docs/KEYS.md) ***\n");
            }
        }
        let scheme = if running.tls { "https" } else { "http" };
        println!("sealgate is listening on {scheme}://{}", running.addr);
        if let Some(admin) = running.admin_addr {
            println!("admin (health, metrics) on http://{admin}");
        }
        if let Some(d) = running.data_dir.as_ref().filter(|_| embedded) {
            println!("embedded upstream: s3s-fs storing ciphertext in {}", d.display());
        }
        if let Some((ak, sk)) = &running.client {
            println!("\nuse it with:");
            println!("  export AWS_ACCESS_KEY_ID={ak}");
            println!("  export AWS_SECRET_ACCESS_KEY={sk}");
            println!("  export AWS_DEFAULT_REGION=us-east-1");
            println!("  aws --endpoint-url {scheme}://{} s3 mb s3://demo", running.addr);
        }
        // SIGHUP re-reads the TLS certificate and key, the key store, the
        // configuration's bucket policy and the exception registry; whatever fails to load
        // keeps its previous version.
        let reload = {
            let (cell, keys_dir, tls, keys) = (running.policy.clone(), running.keys_dir.clone(), running.tls_files.clone(), running.keys.clone());
            tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
                while hup.recv().await.is_some() {
                    if let Some(tls) = &tls {
                        match tls.reload() {
                            Ok(()) => tracing::info!("TLS certificate and key reloaded; new connections use them"),
                            Err(why) => tracing::error!(reason = %why, "TLS reload refused; the previous certificate stays in use"),
                        }
                    }
                    match keys.reload() {
                        Ok(()) => tracing::warn!(target: "sealgate::security", event = "keys_reloaded", active = %keys.get().active().id(), "key store reloaded (new active key, revocations)"),
                        Err(why) => tracing::error!(target: "sealgate::security", event = "keys_reload_failed", reason = %why, "key store reload refused; the previous keys stay in use"),
                    }
                    let Some(path) = &config_path else { continue };
                    match crate::serve::reload_policy(path, &keys_dir) {
                        Ok(p) => {
                            cell.set(p);
                            tracing::warn!(target: "sealgate::security", event = "policy_reloaded", "bucket policy and exception registry reloaded");
                            cell.get().announce();
                        }
                        Err(why) => {
                            tracing::error!(target: "sealgate::security", event = "policy_reload_failed", reason = %why, "reload refused; the previous policy stays in force");
                        }
                    }
                }
            })
        };
        // Write-once anchors of the audit head at the provider.
        let anchors = a.anchor_bucket.clone().map(|bucket| {
            let (layer, client) = (audit.clone(), running.provider.client.clone());
            let (prefix, every, retain) = (a.anchor_prefix.clone(), a.anchor_every_secs.max(1), a.anchor_retain_days);
            tokio::spawn(async move {
                let mut last = None;
                loop {
                    if let Some((path, seq, hash)) = layer.head().filter(|h| h.1 > 0 && last != Some(h.1)) {
                        let record = crate::audit::anchor::chain_head(&path, seq, &hash);
                        match crate::audit::anchor::put_once(&client, &bucket, &prefix, &record, retain).await {
                            Ok(_) => last = Some(seq),
                            Err(why) => tracing::warn!(target: "sealgate::security", event = "anchor_failed", bucket = %bucket, reason = %why, "the audit chain head could not be anchored at the provider; retrying next period"),
                        }
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(every)).await;
                }
            })
        });
        // Records the moment an exception in force expires or is revoked
        // (writes are refused from then on whether or not this runs).
        let watch = {
            // The keys in force (as enforcement uses them), not a fresh
            // read of the directory every round.
            let (cell, keys) = (running.policy.clone(), running.keys.clone());
            let every = std::env::var("SEALGATE_EXCEPTION_WATCH_SECS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(30u64);
            tokio::spawn(async move {
                let mut reported = std::collections::HashSet::new();
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(every)).await;
                    for (exception, bucket, why) in cell.get().lapsed(&keys.get(), chrono::Utc::now()) {
                        if reported.insert((exception.clone(), bucket.clone())) {
                            tracing::warn!(target: "sealgate::security", event = "exception_lapsed", %exception, %bucket, reason = %why, "an exception in force no longer holds; unencrypted writes are refused");
                        }
                    }
                }
            })
        };
        wait_for_signal().await;
        if let Some(t) = anchors {
            t.abort();
        }
        watch.abort();
        reload.abort();
        tracing::info!("shutting down: no new connections; finishing in-flight requests");
        running.shutdown().await;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

/// Installs the log subscriber (text or JSON, filtered by SEALGATE_LOG) and
/// the audit layer, which writes once a log is attached.
fn init_logging(json: bool) -> crate::audit::AuditLayer {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::prelude::*;
    let filter = EnvFilter::try_from_env("SEALGATE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,s3s=warn,aws=warn"));
    let audit = crate::audit::AuditLayer::default();
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    // Security events reach the audit log whatever the display filter says.
    let registry = tracing_subscriber::registry().with(audit.clone());
    if json {
        registry.with(fmt.json().with_filter(filter)).init();
    } else {
        registry.with(fmt.with_filter(filter)).init();
    }
    audit
}
