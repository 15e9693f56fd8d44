//! Runs the S3 endpoint: builds the s3s service (auth, grants, optional
//! virtual-host domain) around the [`Gateway`], accepts HTTP/1.1 and HTTP/2
//! connections and shuts down gracefully.
//!
//! [`start`] returns once listening, so tests run the real server in-process
//! on `127.0.0.1:0`; the CLI prints the endpoint and waits.

pub mod embedded;

use crate::auth::Grants;
use crate::config::{Config, ConfigError, UpstreamConfig, secret};
use crate::format::{Algorithm, OsRandom, RandomSource};
use crate::front::Gateway;
use crate::keys::{KeyError, KeyStore};
use crate::upstream::Upstream;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::host::MultiDomain;
use s3s::service::S3ServiceBuilder;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
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
}

/// A running gateway.
pub struct Running {
    /// Address the S3 endpoint listens on.
    pub addr: SocketAddr,
    /// Client credentials, when the embedded default made or took them.
    pub client: Option<(String, String)>,
    /// Key id generated on this start (first run of the embedded default).
    pub generated_key: Option<String>,
    /// Where the embedded upstream keeps its files.
    pub data_dir: Option<PathBuf>,
    /// The embedded upstream's address and credentials (access key, secret),
    /// for tests and benchmarks that compare with the provider directly.
    pub upstream: Option<(SocketAddr, String, String)>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (up to 10 s) and waits.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
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

/// Starts the gateway and returns once it is listening.
pub async fn start(opts: Options) -> Result<Running, ServeError> {
    let mut generated_key = None;
    let mut upstream_info = None;
    let mut grants = Grants::default();
    let mut shown_client = None;
    let (cfg, data_dir) = match &opts.config {
        Some(path) => (Config::load(path)?, None),
        None => {
            // Embedded default: a real S3 server (s3s-fs) in-process.
            let data = opts
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("data"));
            let (ak, sk) = (random_token(20), random_token(40));
            let addr = embedded::start(&data, &ak, &sk).await?;
            upstream_info = Some((addr, ak.clone(), sk.clone()));
            let cfg = Config {
                listen: "127.0.0.1:7070".into(),
                keys_dir: PathBuf::from("keys"),
                domain: None,
                algorithm: Algorithm::Aes256Gcm.name().into(),
                upstream: UpstreamConfig {
                    endpoint: format!("http://{addr}"),
                    region: "us-east-1".into(),
                    path_style: true,
                    access_key: Some(ak),
                    secret_key: Some(sk),
                    secret_key_file: None,
                },
                credentials: vec![],
            };
            (cfg, Some(data))
        }
    };
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
        if opts.config.is_some() {
            return Err(ConfigError::Invalid(
                "no client credentials: add [[credentials]] or set SEALGATE_ACCESS_KEY and SEALGATE_SECRET_KEY".into(),
            )
            .into());
        }
        let (ak, sk) = (random_token(20), random_token(40));
        grants.add(ak.clone(), sk.clone(), vec!["*".into()]);
        shown_client = Some((ak, sk));
    }

    let keys_dir = opts.keys_dir.clone().unwrap_or(cfg.keys_dir.clone());
    if opts.config.is_none() && !has_keys(&keys_dir) {
        generated_key = Some(KeyStore::generate(&keys_dir, false)?.to_string());
    }
    let keys = Arc::new(KeyStore::load(&keys_dir)?);
    let upstream = Upstream::connect(&cfg.upstream).await?;
    let gateway = Gateway::new(upstream, keys, cfg.algorithm()?);

    let mut b = S3ServiceBuilder::new(gateway);
    b.set_auth(grants.clone());
    b.set_access(grants);
    if let Some(domain) = &cfg.domain {
        b.set_host(
            MultiDomain::new([domain.as_str()])
                .map_err(|e| ConfigError::Invalid(format!("domain {domain:?}: {e}")))?,
        );
    }
    let service = b.build();

    let listen = opts.listen.clone().unwrap_or(cfg.listen.clone());
    let (listener, addr) = bind(&listen, "").await?;
    let (shutdown, stop) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, service, Some(stop)));
    tracing::info!(%addr, "sealgate listening");
    Ok(Running {
        addr,
        client: shown_client,
        generated_key,
        data_dir,
        upstream: upstream_info,
        shutdown,
        task,
    })
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

/// Binds `listen`; `what` names the listener in the error.
pub(crate) async fn bind(
    listen: &str,
    what: &str,
) -> Result<(TcpListener, SocketAddr), ServeError> {
    let io = |source| ServeError::Io {
        what: format!("cannot listen on {listen}{what}"),
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    Ok((listener, addr))
}

/// Serves `service` (HTTP/1.1 and HTTP/2) on `listener` until `stop` fires,
/// then lets in-flight connections finish for up to 10 s. Without `stop` it
/// serves until the runtime ends.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    service: s3s::service::S3Service,
    mut stop: Option<watch::Receiver<bool>>,
) {
    let http = ConnBuilder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let stopped = async {
            match stop.as_mut() {
                Some(s) => {
                    let _ = s.changed().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let socket = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(cause = %e, "accept failed");
                    continue;
                }
            },
            () = stopped => break,
        };
        let _ = socket.set_nodelay(true);
        let conn = http.serve_connection(TokioIo::new(socket), service.clone());
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(std::time::Duration::from_secs(10)) => {
            tracing::warn!("in-flight requests did not finish within 10 s; closing");
        }
    }
}
