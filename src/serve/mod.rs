//! Runs the S3 endpoint: builds the s3s service (auth, grants, optional
//! virtual-host domain) around the [`Gateway`], accepts HTTP/1.1
//! connections (over TLS when configured) and shuts down gracefully.
//!
//! [`start`] returns once listening, so tests run the real server in-process
//! on `127.0.0.1:0`; the CLI prints the endpoint and waits.

pub mod background;
pub mod client_ip;
#[cfg(feature = "embedded")]
pub mod embedded;
pub(crate) mod gate;
pub mod host;
pub mod idle_body;
pub mod listener;
pub mod tls;
pub mod write_timeout;

use crate::auth::Grants;
use crate::config::{Config, ConfigError, secret};
use crate::format::{OsRandom, RandomSource};
use crate::front::Gateway;
use crate::keys::{KeyError, KeyStore};
use crate::upstream::Upstream;
use listener::{ServeSettings, accept_loop, bind};
use s3s::service::S3ServiceBuilder;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Configuration problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Key store problem.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The bucket policy or exception registry does not allow starting.
    #[error("policy: {0}")]
    Policy(#[from] crate::policy::PolicyError),
    /// The TLS certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The audit log cannot be opened or is damaged.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// No configuration was given and this build has no embedded provider
    /// (built without the `embedded` cargo feature).
    #[error(
        "no configuration given, and this build has no embedded provider (cargo feature `embedded`): give --config FILE or set SEALGATE_UPSTREAM_ENDPOINT"
    )]
    NoEmbeddedProvider,
    /// A socket or directory could not be used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// OS error.
        source: std::io::Error,
    },
}

/// How to run: from a config file, or the embedded default.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Config file; `None` runs the embedded default.
    pub config: Option<PathBuf>,
    /// Overrides the listen address.
    pub listen: Option<String>,
    /// Overrides the key store directory.
    pub keys_dir: Option<PathBuf>,
    /// Data directory of the embedded upstream.
    pub data_dir: Option<PathBuf>,
    /// Client credentials (access key, secret); generated when absent in the embedded default.
    pub client: Option<(String, String)>,
    /// Serve HTTPS with this certificate and key (PEM files); overrides the config.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Address of the admin listener (health, metrics); overrides the config.
    pub admin_listen: Option<String>,
    /// Metrics to update (the CLI shares them with its log layer); created when absent.
    pub metrics: Option<Arc<crate::telemetry::Metrics>>,
    /// The audit log: verified and attached before the listener opens.
    pub audit_log: Option<PathBuf>,
    /// The audit layer installed in the tracing subscriber (the CLI's);
    /// created when absent (then only authorising records reach the log).
    pub audit: Option<crate::audit::AuditLayer>,
    /// Provider buckets only sealgate uses besides the state bucket (the
    /// audit-anchor bucket): no client grant, not even `*`, reaches them.
    pub reserved_buckets: Vec<String>,
}

/// A running gateway.
pub struct Running {
    /// Address the S3 endpoint listens on.
    pub addr: SocketAddr,
    /// Whether the endpoint speaks HTTPS.
    pub tls: bool,
    /// The key store in use.
    pub keys_dir: PathBuf,
    /// Where the admin listener (health, metrics) listens, if enabled.
    pub admin_addr: Option<SocketAddr>,
    /// The gateway's metrics.
    pub metrics: Arc<crate::telemetry::Metrics>,
    /// The active key's cryptoperiod (`key_max_age_days`), if set.
    pub key_max_age_days: Option<u64>,
    /// The bucket policy in force (swap it to reload).
    pub policy: Arc<crate::policy::PolicyCell>,
    /// Client credentials, when the embedded default made or took them.
    pub client: Option<(String, String)>,
    /// Key id generated on this start (first run of the embedded default).
    pub generated_key: Option<String>,
    /// Where the embedded upstream keeps its files.
    pub data_dir: Option<PathBuf>,
    /// The embedded upstream's address and credentials (access key, secret),
    /// for tests and benchmarks that compare with the provider directly.
    pub upstream: Option<(SocketAddr, String, String)>,
    /// The key store in use (reload it on SIGHUP).
    pub keys: Arc<crate::keys::KeyCell>,
    /// The TLS certificate and key in use (reload them on SIGHUP).
    pub tls_files: Option<Arc<tls::TlsFiles>>,
    /// The provider client (for write-once audit anchors).
    pub provider: Upstream,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// The admin listener, stopped once the S3 endpoint has drained (so
    /// health and metrics stay up during the drain).
    admin_task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (up to the grace
    /// period) and waits.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        if let Some(admin) = self.admin_task {
            admin.abort();
        }
    }

    /// Waits until the server stops (it never does on its own).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// Signals shutdown without waiting.
    pub fn trigger_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut b = vec![0u8; len];
    OsRandom.fill(&mut b).expect("OS random source");
    b.iter()
        .map(|x| ALPHABET[(*x as usize) % ALPHABET.len()] as char)
        .collect()
}

/// Re-reads the configuration file and the exception registry and returns
/// the policy they now give (for SIGHUP); the caller keeps the old policy
/// when this fails.
pub fn reload_policy(
    config: &std::path::Path,
    keys_dir: &std::path::Path,
    keys: &KeyStore,
) -> Result<crate::policy::Policy, String> {
    let mut cfg = Config::load(config).map_err(|e| e.to_string())?;
    cfg.apply_env(|k| std::env::var(k).ok())
        .map_err(|e| e.to_string())?;
    let places = crate::policy::Located::all(&cfg.upstream, keys_dir).map_err(|e| e.to_string())?;
    crate::policy::Policy::load(&cfg.policy, &places, keys, chrono::Utc::now())
        .map_err(|e| e.to_string())
}

/// Starts the gateway and returns once it is listening.
pub async fn start(opts: Options) -> Result<Running, ServeError> {
    let LoadedConfig {
        cfg,
        data_dir,
        embedded_upstream,
    } = load_config(&opts).await?;
    let ClientGrants {
        grants,
        shown_client,
    } = client_grants(&cfg, &opts, data_dir.is_some())?;
    let keys_dir = opts.keys_dir.clone().unwrap_or(cfg.keys_dir.clone());
    let (key_cell, generated_key) = open_keys(&keys_dir, data_dir.is_some())?;
    let keys = key_cell.get();
    let metrics = opts.metrics.clone().unwrap_or_default();
    let upstream = Upstream::connect(&cfg.upstream, Some(metrics.clone())).await?;
    let places = crate::policy::Located::all(&cfg.upstream, &keys_dir)?;
    let policy = Arc::new(crate::policy::PolicyCell::new(crate::policy::Policy::load(
        &cfg.policy,
        &places,
        &keys,
        chrono::Utc::now(),
    )?));
    // The audit log is verified (streaming) and attached before anything
    // listens: no request is served that its record could miss.
    let audit = opts
        .audit
        .clone()
        .unwrap_or_else(|| crate::audit::AuditLayer::with_metrics(metrics.clone()));
    if let Some(path) = &opts.audit_log {
        audit.attach(crate::audit::AuditLog::open(path, &keys)?);
    }
    policy.get().announce();
    key_cell.announce_erasures();
    let ready = crate::admin::Readiness {
        upstream: upstream.clone(),
        policy: policy.clone(),
        keys: key_cell.clone(),
        audit: audit.recorder(),
    };
    let admin_listen = opts.admin_listen.clone().or(cfg.admin_listen.clone());
    let (admin_addr, admin_task) = start_admin(admin_listen, &metrics, ready).await?;
    let provider = upstream.clone();
    let gateway = Gateway::new(upstream, key_cell.clone(), cfg.algorithm()?, policy.clone())
        .with_audit(audit.recorder());

    let service = s3_service(gateway, grants, cfg.domain.as_deref())?;

    let tls_files = load_tls(&opts, &cfg)?;
    let tls = tls_files.as_ref().map(|t| t.acceptor()).transpose()?;
    let listen = opts.listen.clone().unwrap_or(cfg.listen.clone());
    let (listener, addr) = bind(&listen, "").await?;
    let (shutdown, stop) = watch::channel(false);
    let https = tls.is_some();
    let settings = serve_settings(&cfg, tls, stop, metrics.clone(), key_cell.clone())?;
    let task = tokio::spawn(accept_loop(listener, service, settings));
    tracing::info!(%addr, tls = https, "sealgate listening");
    Ok(Running {
        addr,
        tls: https,
        keys_dir: keys_dir.clone(),
        admin_addr,
        metrics,
        key_max_age_days: cfg.key_max_age_days,
        policy,
        client: shown_client,
        generated_key,
        data_dir,
        upstream: embedded_upstream,
        tls_files,
        keys: key_cell,
        provider,
        shutdown,
        task,
        admin_task,
    })
}

/// The key store in `keys_dir`, shared by reference with whatever reloads
/// it. On the embedded default (`embedded`) a directory without keys gets
/// a first key, whose id is returned to be shown.
fn open_keys(
    keys_dir: &std::path::Path,
    embedded: bool,
) -> Result<(Arc<crate::keys::KeyCell>, Option<String>), ServeError> {
    let mut generated_key = None;
    if embedded && !has_keys(keys_dir) {
        generated_key = Some(KeyStore::generate(keys_dir, false)?.to_string());
    }
    let cell = crate::keys::KeyCell::new(KeyStore::load(keys_dir)?);
    Ok((Arc::new(cell), generated_key))
}

/// The admin listener (metrics, health, readiness), when one is
/// configured: its bound address and its task.
async fn start_admin(
    listen: Option<String>,
    metrics: &Arc<crate::telemetry::Metrics>,
    ready: crate::admin::Readiness,
) -> Result<(Option<SocketAddr>, Option<tokio::task::JoinHandle<()>>), ServeError> {
    let Some(listen) = listen else {
        return Ok((None, None));
    };
    let (l, a) = bind(&listen, " for the admin listener").await?;
    let task = tokio::spawn(crate::admin::serve(l, metrics.clone(), Arc::new(ready)));
    Ok((Some(a), Some(task)))
}

/// The S3 endpoint's certificate and key, from the options or the
/// configuration, when it speaks HTTPS.
fn load_tls(opts: &Options, cfg: &Config) -> Result<Option<Arc<tls::TlsFiles>>, ServeError> {
    let files = opts
        .tls
        .clone()
        .or(cfg.tls.clone().map(|t| (t.cert_file, t.key_file)));
    Ok(match files {
        Some((cert, key)) => Some(tls::TlsFiles::load(&cert, &key)?),
        None => None,
    })
}

/// The configuration `start` runs with: from the file, from the
/// environment alone, or the embedded default.
struct LoadedConfig {
    cfg: Config,
    /// The embedded upstream's data directory (embedded default only).
    data_dir: Option<PathBuf>,
    /// The embedded upstream's address and credentials (embedded default only).
    embedded_upstream: Option<(SocketAddr, String, String)>,
}

/// Loads the configuration file (with `SEALGATE_*` overrides), or one
/// from the environment alone, or starts the embedded default.
async fn load_config(opts: &Options) -> Result<LoadedConfig, ServeError> {
    let from = |cfg| LoadedConfig {
        cfg,
        data_dir: None,
        embedded_upstream: None,
    };
    match &opts.config {
        Some(path) => {
            let mut cfg = Config::load(path)?;
            cfg.apply_env(|k| std::env::var(k).ok())?;
            Ok(from(cfg))
        }
        None if std::env::var_os("SEALGATE_UPSTREAM_ENDPOINT").is_some() => {
            Ok(from(Config::from_env(|k| std::env::var(k).ok())?))
        }
        None => start_embedded(opts).await,
    }
}

/// The embedded default: a real S3 server (s3s-fs) in-process, storing
/// under the data directory, with fresh credentials.
#[cfg(feature = "embedded")]
async fn start_embedded(opts: &Options) -> Result<LoadedConfig, ServeError> {
    let data = opts
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("data"));
    let (ak, sk) = (random_token(20), random_token(40));
    let addr = embedded::start(&data, &ak, &sk).await?;
    let mut cfg = embedded_config(addr, ak.clone(), sk.clone());
    // Settings the embedded default has too (TLS, admin, limits) follow the
    // environment as with a file.
    cfg.apply_env(|k| std::env::var(k).ok())?;
    Ok(LoadedConfig {
        cfg,
        data_dir: Some(data),
        embedded_upstream: Some((addr, ak, sk)),
    })
}

/// Without the `embedded` feature there is nothing to start.
#[cfg(not(feature = "embedded"))]
async fn start_embedded(_: &Options) -> Result<LoadedConfig, ServeError> {
    Err(ServeError::NoEmbeddedProvider)
}

/// The embedded default's configuration, before environment overrides:
/// the in-process s3s-fs at `addr` with its credentials.
#[cfg(feature = "embedded")]
fn embedded_config(addr: SocketAddr, ak: String, sk: String) -> Config {
    Config {
        listen: "127.0.0.1:7070".into(),
        keys_dir: PathBuf::from("keys"),
        key_max_age_days: None,
        domain: None,
        tls: None,
        admin_listen: None,
        algorithm: crate::format::Algorithm::Aes256Gcm.name().into(),
        upstream: crate::config::UpstreamConfig {
            endpoint: format!("http://{addr}"),
            region: "us-east-1".into(),
            path_style: true,
            access_key: Some(ak),
            secret_key: Some(sk),
            secret_key_file: None,
            ca_file: None,
            jurisdiction: Some("LOCAL".into()),
            connect_timeout_secs: 10,
            read_timeout_secs: 60,
            state_bucket: None,
        },
        credentials: vec![],
        policy: Default::default(),
        shutdown_grace_secs: crate::config::DEFAULT_SHUTDOWN_GRACE_SECS,
        header_timeout_secs: 30,
        body_timeout_secs: 60,
        write_timeout_secs: crate::config::DEFAULT_WRITE_TIMEOUT_SECS,
        max_connections: crate::config::DEFAULT_MAX_CONNECTIONS,
        security: Default::default(),
    }
}

/// Who may call the gateway, and the credential to show the operator.
struct ClientGrants {
    grants: Grants,
    /// Given on the command line or generated (embedded default without
    /// credentials): printed at start.
    shown_client: Option<(String, String)>,
}

/// The grants of `[[credentials]]` and of a command-line client; the
/// embedded default without either gets a generated client. The state
/// bucket and the reserved buckets are no client's.
fn client_grants(cfg: &Config, opts: &Options, embedded: bool) -> Result<ClientGrants, ServeError> {
    let mut grants = Grants::default();
    let mut shown_client = None;
    for c in &cfg.credentials {
        let sk = secret(&c.secret_key, &c.secret_key_file, "credentials.secret_key")?.ok_or_else(
            || {
                ConfigError::Invalid(format!(
                    "credentials for {}: secret_key missing",
                    c.access_key
                ))
            },
        )?;
        grants.add(c.access_key.clone(), sk, c.buckets.clone());
    }
    if let Some((ak, sk)) = opts.client.clone() {
        grants.add(ak.clone(), sk.clone(), vec!["*".into()]);
        shown_client = Some((ak, sk));
    } else if grants.is_empty() {
        if !embedded {
            return Err(ConfigError::Invalid(
                "no client credentials: add [[credentials]] or set SEALGATE_ACCESS_KEY and SEALGATE_SECRET_KEY".into(),
            )
            .into());
        }
        let (ak, sk) = (random_token(20), random_token(40));
        grants.add(ak.clone(), sk.clone(), vec!["*".into()]);
        shown_client = Some((ak, sk));
    }

    for own in cfg
        .upstream
        .state_bucket
        .iter()
        .chain(&opts.reserved_buckets)
    {
        grants.reserve(own.clone());
    }
    Ok(ClientGrants {
        grants,
        shown_client,
    })
}

/// The S3 service: s3s with sealgate's limits, the grants as its auth and
/// access checks, and virtual-host addressing under `domain`.
fn s3_service(
    gateway: Gateway,
    grants: Grants,
    domain: Option<&str>,
) -> Result<s3s::service::S3Service, ServeError> {
    let mut builder = S3ServiceBuilder::new(gateway);
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        s3_limits(),
    ))));
    builder.set_auth(grants.clone());
    builder.set_access(grants);
    if let Some(domain) = domain {
        builder
            .set_host(host::GatewayHost::new([domain.to_owned()]).map_err(ConfigError::Invalid)?);
    }
    Ok(builder.build())
}

/// How the S3 listener serves its connections, from the configuration:
/// TLS, the stop signal, timeouts, limits, trusted proxies, and the
/// failed-authentication watch.
fn serve_settings(
    cfg: &Config,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: watch::Receiver<bool>,
    metrics: Arc<crate::telemetry::Metrics>,
    keys: Arc<crate::keys::KeyCell>,
) -> Result<ServeSettings, ServeError> {
    use std::time::Duration;
    let proxies = client_ip::TrustedProxies::parse(&cfg.security.trusted_proxies)
        .map_err(crate::config::ConfigError::Invalid)?;
    let auth_failures = Arc::new(crate::auth::failures::FailureWatch::new(
        cfg.security.auth_failure_threshold,
        Duration::from_secs(cfg.security.auth_failure_window_secs),
    ));
    Ok(ServeSettings {
        tls,
        stop: Some(stop),
        metrics: Some(metrics),
        grace: Some(Duration::from_secs(cfg.shutdown_grace_secs)),
        header_timeout: Some(Duration::from_secs(cfg.header_timeout_secs.max(1))),
        auth_failures: Some(auth_failures),
        body_timeout: Some(Duration::from_secs(cfg.body_timeout_secs.max(1))),
        write_timeout: Some(Duration::from_secs(cfg.write_timeout_secs.max(1))),
        max_connections: Some(cfg.max_connections.max(1)),
        proxies: Some(Arc::new(proxies)),
        keys: Some(keys),
    })
}

/// s3s's limits for this gateway: XML bodies as S3 allows them
/// ([`gate::XML_MAX_BODY`]), and browser-form uploads (refused before s3s
/// sees them, `gate.rs`) capped at nothing as a second line.
fn s3_limits() -> s3s::config::S3Config {
    let mut c = s3s::config::S3Config::default();
    c.xml_max_body_size = gate::XML_MAX_BODY;
    c.post_object_max_file_size = 0;
    c.form_max_field_size = 8 << 10;
    c.form_max_fields_size = 64 << 10;
    c.form_max_parts = 32;
    c
}

fn has_keys(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut d| {
            d.any(|e| {
                e.is_ok_and(|e| {
                    e.path()
                        .extension()
                        .is_some_and(|x| x == crate::keys::KEY_EXT)
                })
            })
        })
        .unwrap_or(false)
}
