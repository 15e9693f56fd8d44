//! `sealgate serve`: start the gateway, print how to use it, wait for a signal.

use super::CliResult;
use crate::audit::AuditLayer;
use crate::audit::anchor::{AnchorSchedule, keep_anchoring};
use crate::serve::{Options, Running, background, start};
use crate::telemetry::security::TARGET;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    let client = match (a.access_key.clone(), a.secret_key.clone()) {
        (Some(ak), Some(sk)) => Some((ak, sk)),
        (None, None) => None,
        _ => return Err("set both SEALGATE_ACCESS_KEY and SEALGATE_SECRET_KEY, or neither".into()),
    };
    let opts = options(&a, client, &audit);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(a, opts, audit, began))
}

/// What `start` gets from the arguments; `client` is the client
/// credential given on the command line, if any.
fn options(a: &ServeArgs, client: Option<(String, String)>, audit: &AuditLayer) -> Options {
    Options {
        config: a.config.clone(),
        listen: a.listen.clone(),
        keys_dir: a.keys_dir.clone(),
        data_dir: a.data_dir.clone(),
        client,
        tls: a.tls_cert.clone().zip(a.tls_key.clone()),
        admin_listen: a.admin_listen.clone(),
        metrics: Some(audit.metrics()),
        audit_log: a.audit_log.clone(),
        audit: Some(audit.clone()),
        // Anchors protect the audit log from the host; a client that could
        // write there could pre-empt them (write-once slots).
        reserved_buckets: a.anchor_bucket.iter().cloned().collect(),
    }
}

/// Starts the gateway and its background tasks, tells the operator how to
/// use it, and serves until SIGTERM or Ctrl-C.
async fn run(a: ServeArgs, opts: Options, audit: AuditLayer, began: Instant) -> CliResult {
    if let Some(url) = &a.incident_webhook {
        audit.attach_webhook(crate::audit::webhook::Webhook::start(url, audit.metrics())?);
    }
    // Verifies and attaches the audit log, and records the exceptions in
    // force, before the listener opens.
    let running = start(opts).await?;
    if a.audit_log.is_some() {
        tracing::info!(target: TARGET, event = "gateway_started", addr = %running.addr, "audit log opened");
    }
    tracing::info!(startup_ms = began.elapsed().as_millis() as u64, addr = %running.addr, "sealgate ready: keys, policy and registry loaded, listening");
    if let Some(id) = &running.generated_key {
        let dir = a.keys_dir.clone().unwrap_or_else(|| PathBuf::from("keys"));
        warn_generated_key(id, &dir, a.log_json);
    }
    // Before the listening line, which tests and supervisors take as ready:
    // the first scrape of /metrics already has the key's age.
    let cryptoperiod = background::watch_cryptoperiod(&running, running.key_max_age_days);
    print_how_to_use(&running, a.config.is_none());
    let reload = background::reload_on_hangup(&running, a.config.clone());
    let anchors = a.anchor_bucket.clone().map(|bucket| {
        let schedule = AnchorSchedule {
            bucket,
            prefix: a.anchor_prefix.clone(),
            every: Duration::from_secs(a.anchor_every_secs.max(1)),
            retain_days: a.anchor_retain_days,
        };
        tokio::spawn(keep_anchoring(
            audit.clone(),
            running.provider.clone(),
            schedule,
        ))
    });
    let watch = background::watch_exceptions(&running);
    let recheck = background::recheck_keys(&running);
    wait_for_signal().await;
    cryptoperiod.abort();
    if let Some(t) = recheck {
        t.abort();
    }
    if let Some(t) = anchors {
        t.abort();
    }
    watch.abort();
    reload.abort();
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    running.shutdown().await;
    Ok(())
}

/// A key was generated at start: without a backup nothing stored can be
/// read, so say so in the log and, unless stderr is JSON lines, loudly.
fn warn_generated_key(id: &str, dir: &std::path::Path, log_json: bool) {
    tracing::warn!(key_id = %id, keys_dir = %dir.display(), "generated a key-encryption key: BACK IT UP NOW, without it nothing stored through sealgate can be read (docs/KEYS.md)");
    if !log_json {
        // Stderr stays pure JSON lines with --log-json.
        eprintln!(
            "\n*** generated key-encryption key {id} in {} ***",
            dir.display()
        );
        eprintln!(
            "*** BACK IT UP NOW: without it, nothing stored through sealgate can be read (docs/KEYS.md) ***\n"
        );
    }
}

/// Prints where the gateway listens and, with a generated client
/// credential, how to use it.
fn print_how_to_use(running: &Running, embedded: bool) {
    let scheme = if running.tls { "https" } else { "http" };
    println!("sealgate is listening on {scheme}://{}", running.addr);
    if let Some(admin) = running.admin_addr {
        println!("admin (health, metrics) on http://{admin}");
    }
    if let Some(d) = running.data_dir.as_ref().filter(|_| embedded) {
        println!(
            "embedded upstream: s3s-fs storing ciphertext in {}",
            d.display()
        );
    }
    if let Some((ak, sk)) = &running.client {
        println!("\nuse it with:");
        println!("  export AWS_ACCESS_KEY_ID={ak}");
        println!("  export AWS_SECRET_ACCESS_KEY={sk}");
        println!("  export AWS_DEFAULT_REGION=us-east-1");
        println!(
            "  aws --endpoint-url {scheme}://{} s3 mb s3://demo",
            running.addr
        );
    }
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
fn init_logging(json: bool) -> AuditLayer {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::prelude::*;
    let filter = EnvFilter::try_from_env("SEALGATE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,s3s=warn,aws=warn"));
    let audit = AuditLayer::default();
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
