//! Gateway configuration: one TOML file, overridable by environment
//! variables (`SEALGATE_*`), with secrets allowed from the environment.
//!
//! Without a file, `sealgate serve` runs the embedded default: a real S3
//! server (s3s-fs) in-process on a local data directory.

use crate::format::Algorithm;
use std::path::{Path, PathBuf};

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Parser message (names line and key).
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A file holding a secret is not its owner's alone.
    #[error("{what}: {path} {problem}")]
    InsecureSecretFile {
        /// The setting naming the file.
        what: String,
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the S3 endpoint listens on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Key store directory.
    #[serde(default = "default_keys_dir")]
    pub keys_dir: PathBuf,
    /// Cryptoperiod of the active key, in days: past it, `config check`
    /// fails, the gateway reports `key_past_cryptoperiod` and /metrics shows
    /// the key's age (rotate with `sealgate keys rotate`). Unset: no limit.
    #[serde(default)]
    pub key_max_age_days: Option<u64>,
    /// Domain for virtual-host-style addressing (`bucket.DOMAIN`); path-style always works.
    #[serde(default)]
    pub domain: Option<String>,
    /// Content algorithm for new objects.
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
    /// Serve HTTPS with this certificate and key (PEM); plain HTTP when absent.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Address of the admin listener (`/health/live`, `/health/ready`,
    /// `/metrics`); disabled when absent.
    #[serde(default)]
    pub admin_listen: Option<String>,
    /// Seconds in-flight requests may run after SIGTERM before the process
    /// exits anyway (keep it below the orchestrator's kill timeout).
    #[serde(default = "default_grace")]
    pub shutdown_grace_secs: u64,
    /// Seconds a client may take to send a request's headers before the
    /// connection is closed (slow-header "slowloris" clients).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Seconds a request body may go without a byte arriving, while
    /// sealgate waits for one, before the request fails (slow-body clients).
    #[serde(default = "default_body_timeout")]
    pub body_timeout_secs: u64,
    /// Seconds a response may wait for the client to read it (no byte
    /// taken) before the connection is closed and the upstream stream
    /// dropped (clients that stop reading).
    #[serde(default = "default_write_timeout")]
    pub write_timeout_secs: u64,
    /// Client connections served at once; further ones wait in the
    /// kernel's accept queue until a slot frees (bounds memory and tasks).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Thresholds for security events.
    #[serde(default)]
    pub security: SecurityConfig,
    /// The provider sealgate forwards ciphertext to.
    pub upstream: UpstreamConfig,
    /// Client credentials.
    #[serde(default)]
    pub credentials: Vec<ClientCredential>,
    /// Which buckets may pass data through unencrypted, and under which
    /// registered exception (docs/EXCEPTIONS.md). Every other bucket is encrypted.
    #[serde(default)]
    pub policy: PolicyConfig,
}

/// When repeated failures become a security event.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Failed client authentications from one address within the window
    /// that raise an `auth_failures` event; 0 disables the event.
    #[serde(default = "default_auth_threshold")]
    pub auth_failure_threshold: u32,
    /// The window, in seconds.
    #[serde(default = "default_auth_window")]
    pub auth_failure_window_secs: u64,
    /// Load balancers and proxies (addresses or networks) whose
    /// `X-Forwarded-For` names the client, for logs and `auth_failures`.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            auth_failure_threshold: default_auth_threshold(),
            auth_failure_window_secs: default_auth_window(),
            trusted_proxies: Vec::new(),
        }
    }
}

fn default_auth_threshold() -> u32 {
    20
}

fn default_auth_window() -> u64 {
    60
}

fn default_header_timeout() -> u64 {
    30
}

fn default_body_timeout() -> u64 {
    60
}

/// Default of `write_timeout_secs`.
pub const DEFAULT_WRITE_TIMEOUT_SECS: u64 = 60;

fn default_write_timeout() -> u64 {
    DEFAULT_WRITE_TIMEOUT_SECS
}

/// Default of `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}

fn default_connect_timeout() -> u64 {
    10
}

fn default_read_timeout() -> u64 {
    60
}

/// Default of `shutdown_grace_secs`: below Kubernetes' 30 s kill timeout.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 25;

fn default_grace() -> u64 {
    DEFAULT_SHUTDOWN_GRACE_SECS
}

/// Bucket policy.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The exception registry file.
    #[serde(default = "default_registry")]
    pub registry: PathBuf,
    /// Passthrough buckets, each naming the exception that allows it.
    #[serde(default)]
    pub passthrough: Vec<PassthroughRule>,
    /// Encrypted buckets (or patterns) in which objects not in sealgate's
    /// format may be read, each naming the registered exception (allowing
    /// `legacy-reads`) that permits it: a registry line alone never
    /// downgrades reads.
    #[serde(default)]
    pub legacy_reads: Vec<PassthroughRule>,
    /// Jurisdictions the provider may be in (e.g. `["EU"]`); empty: no
    /// restriction. A provider outside them needs `data_location_exception`.
    #[serde(default)]
    pub allowed_jurisdictions: Vec<String>,
    /// The registered exception (allowing `data-location`) under which the
    /// provider may be outside the allowed jurisdictions.
    #[serde(default)]
    pub data_location_exception: Option<String>,
    /// Where the registry's verified state is kept (default
    /// `<registry>.verified`; docs/EXCEPTIONS.md §Verified state).
    #[serde(default)]
    pub registry_state: Option<PathBuf>,
    /// Approver public keys (`ed25519:<hex>`, or files holding one) whose
    /// signatures on exceptions are trusted.
    #[serde(default)]
    pub approver_keys: Vec<String>,
    /// Exceptions are in force only when signed by one of `approver_keys`.
    #[serde(default)]
    pub require_approver_signature: bool,
    /// Buckets (or patterns) whose new objects are wrapped by a key
    /// domain's active key instead of the store's own (docs/KEYS.md
    /// §Domains); the first rule matching a bucket applies.
    #[serde(default)]
    pub key_domains: Vec<KeyDomainRule>,
}

/// A `[[policy.key_domains]]` rule.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyDomainRule {
    /// Bucket name or pattern (`*` wildcard).
    pub bucket: String,
    /// The key domain (`<keys>/domains/<domain>/`).
    pub domain: String,
}

/// Parses `[security] trusted_proxies`: addresses (`10.0.0.5`) and
/// networks (`10.0.0.0/8`).
pub fn trusted_proxy_networks(list: &[String]) -> Result<Vec<ipnet::IpNet>, String> {
    use ipnet::IpNet;
    list.iter()
        .map(|s| {
            let s = s.trim();
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "trusted_proxies: {s:?} is not an IP address or network (e.g. 10.0.0.0/8)"
                    )
                })
        })
        .collect()
}

/// The default verified-state file of a registry: `<registry>.verified`
/// (`policy.registry_state` when unset).
pub fn verified_state_path(registry: &Path) -> PathBuf {
    let mut s = registry.as_os_str().to_owned();
    s.push(".verified");
    PathBuf::from(s)
}

impl PolicyConfig {
    /// The registry's verified-state file.
    pub fn state_path(&self) -> PathBuf {
        self.registry_state
            .clone()
            .unwrap_or_else(|| verified_state_path(&self.registry))
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            registry: default_registry(),
            passthrough: Vec::new(),
            legacy_reads: Vec::new(),
            allowed_jurisdictions: Vec::new(),
            data_location_exception: None,
            registry_state: None,
            approver_keys: Vec::new(),
            require_approver_signature: false,
            key_domains: Vec::new(),
        }
    }
}

/// One bucket (or pattern) and the exception that allows it (passthrough,
/// or legacy reads).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassthroughRule {
    /// Bucket name or pattern (`*` wildcard).
    pub bucket: String,
    /// The registered exception that allows it.
    pub exception: String,
}

fn default_registry() -> PathBuf {
    "exceptions.jsonl".into()
}

/// The upstream S3 provider.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Endpoint URL (`https://…` or `http://…`).
    pub endpoint: String,
    /// Where the provider stores data, e.g. `EU`, `US`, `CH`. Unset: `EU`
    /// for `eu-*` regions, else the region's first label in capitals.
    #[serde(default)]
    pub jurisdiction: Option<String>,
    /// Region used for signing.
    #[serde(default = "default_region")]
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual-host.
    #[serde(default = "yes")]
    pub path_style: bool,
    /// Access key; when absent, the standard AWS environment variables and
    /// credential chain are used.
    #[serde(default)]
    pub access_key: Option<String>,
    /// Secret key (prefer `secret_key_file` or the environment).
    #[serde(default)]
    pub secret_key: Option<String>,
    /// File holding the secret key.
    #[serde(default)]
    pub secret_key_file: Option<PathBuf>,
    /// PEM bundle of CA certificates to trust for an `https://` endpoint, in
    /// addition to the system roots (e.g. a private CA in front of on-site
    /// storage).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Seconds to establish a connection to the provider.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Seconds the provider may take to start answering a request that
    /// carries no upload, and may leave a download without a byte while
    /// sealgate waits for one, and may take to answer an upload once its
    /// last byte is queued; a stalled provider then fails the request
    /// (reads are retried) instead of holding it forever.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_secs: u64,
    /// A provider bucket that only sealgate uses, for the small records
    /// that let ListMultipartUploads list the very upload ids clients were
    /// given (docs/FORMAT.md §Upload ids). No client can reach it, whatever
    /// its grants. Unset: listed uploads carry the `sgl.` form instead.
    #[serde(default)]
    pub state_bucket: Option<String>,
}

/// The gateway's own TLS certificate.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain (PEM), leaf first.
    pub cert_file: PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// One client identity.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCredential {
    /// Access key the client signs with.
    pub access_key: String,
    /// Secret key (or `secret_key_file`).
    #[serde(default)]
    pub secret_key: Option<String>,
    /// File holding the secret key.
    #[serde(default)]
    pub secret_key_file: Option<PathBuf>,
    /// Buckets this key may use; `*` for all.
    #[serde(default = "all_buckets")]
    pub buckets: Vec<String>,
}

fn default_listen() -> String {
    "127.0.0.1:7070".into()
}
fn default_keys_dir() -> PathBuf {
    "keys".into()
}
fn default_algorithm() -> String {
    Algorithm::Aes256Gcm.name().into()
}
fn default_region() -> String {
    "us-east-1".into()
}
fn yes() -> bool {
    true
}
fn all_buckets() -> Vec<String> {
    vec!["*".into()]
}

impl UpstreamConfig {
    /// The provider's declared (or region-derived) jurisdiction.
    pub fn jurisdiction(&self) -> String {
        match &self.jurisdiction {
            Some(j) => j.trim().to_ascii_uppercase(),
            None => region_jurisdiction(&self.region, is_aws_endpoint(&self.endpoint)),
        }
    }
}

/// Whether `endpoint` is AWS's own (so its region names are AWS's).
pub fn is_aws_endpoint(endpoint: &str) -> bool {
    let host = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(endpoint)
        .split(['/', ':'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")
}

/// The jurisdiction of a region. For AWS's regions (`aws`) from a table:
/// `EU` for those in the European Union, otherwise the country as an ISO
/// 3166 code (a region's first label is not one: `sa-east-1` is in
/// Brazil, not Saudi Arabia; `eu-west-2` is London, GB). Other providers
/// name their regions their own way (Wasabi's `ap-northeast-2` is Osaka),
/// so for them, and for AWS regions the table does not know, the first
/// label in capitals (`US` for `us-east-1`, `DEFAULT` for Ceph's
/// `default`): declare `jurisdiction` for those.
pub fn region_jurisdiction(region: &str, aws: bool) -> String {
    let r = region.trim().to_ascii_lowercase();
    let first_label = || r.split('-').next().unwrap_or("").to_ascii_uppercase();
    if !aws {
        return first_label();
    }
    let known = [
        ("eusc-", "EU"),
        ("eu-west-2", "GB"),
        ("eu-central-2", "CH"),
        ("eu-", "EU"),
        ("us-", "US"),
        ("ca-", "CA"),
        ("mx-", "MX"),
        ("sa-east-", "BR"),
        ("af-south-", "ZA"),
        ("il-central-", "IL"),
        ("me-south-", "BH"),
        ("me-central-", "AE"),
        ("ap-east-2", "TW"),
        ("ap-east-", "HK"),
        ("ap-south-", "IN"),
        ("ap-northeast-2", "KR"),
        ("ap-northeast-", "JP"),
        ("ap-southeast-1", "SG"),
        ("ap-southeast-3", "ID"),
        ("ap-southeast-5", "MY"),
        ("ap-southeast-6", "NZ"),
        ("ap-southeast-7", "TH"),
        ("ap-southeast-", "AU"),
        ("cn-", "CN"),
    ];
    known
        .iter()
        .find(|(prefix, _)| r.starts_with(prefix))
        .map_or_else(first_label, |(_, j)| (*j).to_owned())
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and checks configuration text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        cfg.algorithm()?;
        trusted_proxy_networks(&cfg.security.trusted_proxies).map_err(ConfigError::Invalid)?;
        Ok(cfg)
    }

    /// Builds a configuration from environment variables alone (for
    /// containers): `SEALGATE_UPSTREAM_ENDPOINT` must be set; everything
    /// else takes its default or its `SEALGATE_*` value.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let endpoint = env("SEALGATE_UPSTREAM_ENDPOINT").ok_or_else(|| {
            ConfigError::Invalid("no config file and SEALGATE_UPSTREAM_ENDPOINT unset".into())
        })?;
        let mut cfg: Config = toml::from_str(&format!(
            "[upstream]\nendpoint = {}\n",
            toml::Value::String(endpoint)
        ))
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        cfg.apply_env(env)?;
        Ok(cfg)
    }

    /// Overrides settings from `SEALGATE_*` environment variables (see
    /// docs/CONFIG.md); `env` looks a variable up, so tests need not touch
    /// the process environment.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let path = |v: String| Some(PathBuf::from(v));
        if let Some(v) = env("SEALGATE_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = env("SEALGATE_KEYS_DIR") {
            self.keys_dir = PathBuf::from(v);
        }
        if let Some(v) = env("SEALGATE_DOMAIN") {
            self.domain = Some(v).filter(|d| !d.is_empty());
        }
        if let Some(v) = env("SEALGATE_ADMIN_LISTEN") {
            self.admin_listen = Some(v).filter(|a| !a.is_empty());
        }
        if let Some(v) = env("SEALGATE_REGISTRY") {
            self.policy.registry = PathBuf::from(v);
        }
        if let Some(v) = env("SEALGATE_REGISTRY_STATE") {
            self.policy.registry_state =
                Some(PathBuf::from(v)).filter(|p| !p.as_os_str().is_empty());
        }
        if let Some(v) = env("SEALGATE_ALGORITHM") {
            self.algorithm = v;
        }
        let number = |name: &str, v: String| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| ConfigError::Invalid(format!("{name}={v:?}: expected a whole number")))
        };
        if let Some(v) = env("SEALGATE_KEY_MAX_AGE_DAYS") {
            self.key_max_age_days = Some(number("SEALGATE_KEY_MAX_AGE_DAYS", v)?);
        }
        if let Some(v) = env("SEALGATE_SHUTDOWN_GRACE_SECS") {
            self.shutdown_grace_secs = number("SEALGATE_SHUTDOWN_GRACE_SECS", v)?;
        }
        if let Some(v) = env("SEALGATE_HEADER_TIMEOUT_SECS") {
            self.header_timeout_secs = number("SEALGATE_HEADER_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = env("SEALGATE_TRUSTED_PROXIES") {
            self.security.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = env("SEALGATE_BODY_TIMEOUT_SECS") {
            self.body_timeout_secs = number("SEALGATE_BODY_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = env("SEALGATE_WRITE_TIMEOUT_SECS") {
            self.write_timeout_secs = number("SEALGATE_WRITE_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = env("SEALGATE_MAX_CONNECTIONS") {
            self.max_connections =
                usize::try_from(number("SEALGATE_MAX_CONNECTIONS", v)?).unwrap_or(usize::MAX);
        }
        if let Some(v) = env("SEALGATE_UPSTREAM_CONNECT_TIMEOUT_SECS") {
            self.upstream.connect_timeout_secs =
                number("SEALGATE_UPSTREAM_CONNECT_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = env("SEALGATE_UPSTREAM_READ_TIMEOUT_SECS") {
            self.upstream.read_timeout_secs = number("SEALGATE_UPSTREAM_READ_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = env("SEALGATE_AUTH_FAILURE_THRESHOLD") {
            self.security.auth_failure_threshold =
                u32::try_from(number("SEALGATE_AUTH_FAILURE_THRESHOLD", v)?).unwrap_or(u32::MAX);
        }
        if let Some(v) = env("SEALGATE_AUTH_FAILURE_WINDOW_SECS") {
            self.security.auth_failure_window_secs =
                number("SEALGATE_AUTH_FAILURE_WINDOW_SECS", v)?;
        }
        match (env("SEALGATE_TLS_CERT"), env("SEALGATE_TLS_KEY")) {
            (Some(c), Some(k)) => {
                self.tls = Some(TlsConfig {
                    cert_file: c.into(),
                    key_file: k.into(),
                });
            }
            (None, None) => {}
            _ => {
                return Err(ConfigError::Invalid(
                    "set both SEALGATE_TLS_CERT and SEALGATE_TLS_KEY, or neither".into(),
                ));
            }
        }
        let u = &mut self.upstream;
        if let Some(v) = env("SEALGATE_UPSTREAM_ENDPOINT") {
            u.endpoint = v;
        }
        if let Some(v) = env("SEALGATE_UPSTREAM_REGION") {
            u.region = v;
        }
        if let Some(v) = env("SEALGATE_UPSTREAM_PATH_STYLE") {
            u.path_style = match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" => false,
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "SEALGATE_UPSTREAM_PATH_STYLE={v:?}: expected true or false"
                    )));
                }
            };
        }
        if let Some(v) = env("SEALGATE_UPSTREAM_ACCESS_KEY") {
            u.access_key = Some(v);
        }
        if let Some(v) = env("SEALGATE_UPSTREAM_SECRET_KEY") {
            u.secret_key = Some(v);
            u.secret_key_file = None;
        }
        if let Some(v) = env("SEALGATE_UPSTREAM_SECRET_KEY_FILE") {
            u.secret_key_file = path(v);
            u.secret_key = None;
        }
        if let Some(v) = env("SEALGATE_UPSTREAM_CA_FILE") {
            u.ca_file = path(v);
        }
        if let Some(v) = env("SEALGATE_UPSTREAM_STATE_BUCKET") {
            u.state_bucket = Some(v).filter(|v| !v.is_empty());
        }
        self.algorithm()?;
        Ok(())
    }

    /// The configured content algorithm.
    pub fn algorithm(&self) -> Result<Algorithm, ConfigError> {
        Algorithm::from_name(&self.algorithm).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "algorithm {:?}: expected AES-256-GCM or ChaCha20-Poly1305",
                self.algorithm
            ))
        })
    }
}

/// The effective uid of this process: whose files the key store and
/// secret files may hold.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether a file owned by `uid` is trusted: the process's own, or root's
/// (root can write any file anyway), as OpenSSH's StrictModes has it.
pub(crate) fn trusted_owner(uid: u32) -> bool {
    uid == euid() || uid == 0
}

/// Checks that a file holding a secret (`what` names the setting) is
/// neither readable nor writable by group or others, and is owned by the
/// user sealgate runs as (or root). `serve` (at start and on SIGHUP, for the
/// files it re-reads) and `config check` both apply it.
pub fn check_secret_file(what: &str, path: &Path) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    check_secret_meta(what, path, &meta)
}

/// A secret file's text (trailing newline removed), checked as
/// [`check_secret_file`] does on the file actually opened, so that a file
/// swapped in between the check and the read is not trusted.
fn read_secret_file(what: &str, path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let read = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            // A file we may not read says more through its owner and mode.
            if let Ok(meta) = std::fs::metadata(path) {
                check_secret_meta(what, path, &meta)?;
            }
            return Err(read(e));
        }
    };
    let meta = f.metadata().map_err(read)?;
    check_secret_meta(what, path, &meta)?;
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(read)?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

fn check_secret_meta(what: &str, path: &Path, meta: &std::fs::Metadata) -> Result<(), ConfigError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let bad = |problem: String| ConfigError::InsecureSecretFile {
        what: what.to_owned(),
        path: path.to_owned(),
        problem,
    };
    if !trusted_owner(meta.uid()) {
        let euid = euid();
        return Err(bad(format!(
            "is owned by uid {}, not by the user sealgate runs as (uid {euid}) or root; check it, then run chown {euid} {} (or run sealgate as uid {})",
            meta.uid(),
            path.display(),
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(bad(format!(
            "is readable or writable by group or others (mode {mode:o}); run chmod 600 {}",
            path.display()
        )));
    }
    Ok(())
}

/// Reads a secret given inline or in a file (trailing newline removed); the
/// file must pass [`check_secret_file`] (checked on the descriptor read).
pub fn secret(
    inline: &Option<String>,
    file: &Option<PathBuf>,
    what: &str,
) -> Result<Option<String>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError::Invalid(format!(
            "{what}: give the secret inline or in a file, not both"
        ))),
        (Some(s), None) => Ok(Some(s.clone())),
        (None, Some(p)) => read_secret_file(what, p).map(Some),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut cfg: Config = toml::from_str(
            "listen = \"127.0.0.1:1\"\n[upstream]\nendpoint = \"http://a\"\nsecret_key_file = \"/x\"\n",
        )
        .unwrap();
        cfg.apply_env(env(&[
            ("SEALGATE_LISTEN", "0.0.0.0:9"),
            ("SEALGATE_DOMAIN", "s3.example"),
            ("SEALGATE_ALGORITHM", "ChaCha20-Poly1305"),
            ("SEALGATE_TLS_CERT", "/c.pem"),
            ("SEALGATE_TLS_KEY", "/k.pem"),
            ("SEALGATE_UPSTREAM_ENDPOINT", "https://b"),
            ("SEALGATE_UPSTREAM_REGION", "eu-central-1"),
            ("SEALGATE_UPSTREAM_PATH_STYLE", "false"),
            ("SEALGATE_UPSTREAM_ACCESS_KEY", "ak"),
            ("SEALGATE_UPSTREAM_SECRET_KEY", "sk"),
            ("SEALGATE_UPSTREAM_CA_FILE", "/ca.pem"),
            ("SEALGATE_SHUTDOWN_GRACE_SECS", "7"),
            ("SEALGATE_AUTH_FAILURE_THRESHOLD", "3"),
            ("SEALGATE_AUTH_FAILURE_WINDOW_SECS", "120"),
            ("SEALGATE_BODY_TIMEOUT_SECS", "5"),
            ("SEALGATE_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.9"),
            ("SEALGATE_MAX_CONNECTIONS", "64"),
            ("SEALGATE_UPSTREAM_CONNECT_TIMEOUT_SECS", "2"),
            ("SEALGATE_UPSTREAM_READ_TIMEOUT_SECS", "9"),
        ]))
        .unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:9");
        assert_eq!(cfg.shutdown_grace_secs, 7);
        assert_eq!(cfg.security.auth_failure_threshold, 3);
        assert_eq!(cfg.security.auth_failure_window_secs, 120);
        assert_eq!((cfg.body_timeout_secs, cfg.max_connections), (5, 64));
        assert_eq!(cfg.security.trusted_proxies, ["10.0.0.0/8", "192.0.2.9"]);
        assert_eq!(cfg.upstream.connect_timeout_secs, 2);
        assert_eq!(cfg.upstream.read_timeout_secs, 9);
        let e = cfg
            .clone()
            .apply_env(env(&[("SEALGATE_SHUTDOWN_GRACE_SECS", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("SEALGATE_SHUTDOWN_GRACE_SECS") && e.contains("whole number"),
            "{e}"
        );
        assert_eq!(cfg.domain.as_deref(), Some("s3.example"));
        assert_eq!(cfg.algorithm().unwrap(), Algorithm::ChaCha20Poly1305);
        let tls = cfg.tls.unwrap();
        assert_eq!(tls.cert_file, PathBuf::from("/c.pem"));
        let u = cfg.upstream;
        assert_eq!(u.endpoint, "https://b");
        assert_eq!(u.region, "eu-central-1");
        assert!(!u.path_style);
        assert_eq!(u.access_key.as_deref(), Some("ak"));
        // The inline secret from the environment replaces the file.
        assert_eq!(u.secret_key.as_deref(), Some("sk"));
        assert_eq!(u.secret_key_file, None);
        assert_eq!(u.ca_file, Some(PathBuf::from("/ca.pem")));
    }

    #[test]
    fn the_example_config_parses_with_its_optional_sections_enabled() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sealgate.example.toml");
        let cfg = Config::load(&path).unwrap();
        assert_eq!(cfg.credentials.len(), 2);
        // Uncommenting every optional setting must still give a valid file.
        let text = std::fs::read_to_string(&path).unwrap();
        let enabled: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.starts_with('[') || rest.contains(" = ") => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let cfg: Config = toml::from_str(&enabled).unwrap();
        assert!(cfg.tls.is_some() && cfg.domain.is_some() && cfg.upstream.ca_file.is_some());
        assert!(enabled.contains("\n[security]\nauth_failure_threshold = 20"));
        assert_eq!(cfg.shutdown_grace_secs, DEFAULT_SHUTDOWN_GRACE_SECS);
        assert_eq!(cfg.security.auth_failure_window_secs, 60);
        assert_eq!((cfg.body_timeout_secs, cfg.max_connections), (60, 1024));
        assert_eq!(cfg.upstream.read_timeout_secs, 60);
        assert!(enabled.contains("\nmax_connections = 1024"));
        assert!(enabled.contains("\nread_timeout_secs = 60"));
    }

    #[test]
    fn jurisdiction_is_declared_or_derived_from_the_region() {
        let mut u: UpstreamConfig =
            toml::from_str("endpoint = \"https://x\"\nregion = \"eu-central-1\"\n").unwrap();
        assert_eq!(u.jurisdiction(), "EU");
        u.region = "us-east-1".into();
        assert_eq!(u.jurisdiction(), "US");
        u.jurisdiction = Some("ch".into());
        assert_eq!(u.jurisdiction(), "CH");
        // A region's first label is not a country code.
        for (region, j) in [
            ("sa-east-1", "BR"),
            ("af-south-1", "ZA"),
            ("me-central-1", "AE"),
            ("ap-northeast-2", "KR"),
            ("ap-northeast-1", "JP"),
            ("ap-southeast-2", "AU"),
            ("ap-southeast-1", "SG"),
            ("eusc-de-east-1", "EU"),
            ("us-gov-west-1", "US"),
            ("eu-west-2", "GB"),
            ("eu-central-2", "CH"),
            ("eu-west-1", "EU"),
            ("ap-east-2", "TW"),
            ("ap-southeast-6", "NZ"),
            ("default", "DEFAULT"),
        ] {
            assert_eq!(region_jurisdiction(region, true), j, "{region}");
        }
        // Other providers' region names are their own.
        assert_eq!(region_jurisdiction("ap-northeast-2", false), "AP");
        assert!(is_aws_endpoint("https://s3.eu-central-1.amazonaws.com"));
        assert!(is_aws_endpoint(
            "https://kms.cn-north-1.amazonaws.com.cn:443/"
        ));
        assert!(!is_aws_endpoint("https://s3.wasabisys.com"));
        assert!(!is_aws_endpoint("http://127.0.0.1:9000"));
    }

    #[test]
    fn environment_alone_needs_an_endpoint_and_rejects_nonsense() {
        assert!(Config::from_env(env(&[])).is_err());
        let cfg = Config::from_env(env(&[("SEALGATE_UPSTREAM_ENDPOINT", "http://u:9")])).unwrap();
        assert_eq!(cfg.upstream.endpoint, "http://u:9");
        assert_eq!(cfg.listen, "127.0.0.1:7070");
        for bad in [
            &[
                ("SEALGATE_UPSTREAM_ENDPOINT", "http://u"),
                ("SEALGATE_UPSTREAM_PATH_STYLE", "maybe"),
            ][..],
            &[
                ("SEALGATE_UPSTREAM_ENDPOINT", "http://u"),
                ("SEALGATE_TLS_CERT", "/c"),
            ][..],
            &[
                ("SEALGATE_UPSTREAM_ENDPOINT", "http://u"),
                ("SEALGATE_ALGORITHM", "DES"),
            ][..],
        ] {
            let err = Config::from_env(env(bad)).unwrap_err().to_string();
            assert!(
                err.contains("SEALGATE_") || err.contains("algorithm"),
                "{err}"
            );
        }
    }

    #[test]
    fn secret_files_must_be_their_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("client.secret");
        std::fs::write(&f, "s3cret\n").unwrap();
        let set =
            |m: u32| std::fs::set_permissions(&f, std::fs::Permissions::from_mode(m)).unwrap();
        set(0o600);
        let read = || secret(&None, &Some(f.clone()), "credentials app");
        assert_eq!(read().unwrap().as_deref(), Some("s3cret"));
        for m in [0o640, 0o604, 0o620] {
            set(m);
            let err = read().unwrap_err().to_string();
            assert!(
                err.contains(&format!("credentials app: {} is readable or writable by group or others (mode {m:o}); run chmod 600 {}", f.display(), f.display())),
                "{err}"
            );
        }
        set(0o600);
        if euid() == 0 {
            std::os::unix::fs::chown(&f, Some(12345), None).unwrap();
            let err = read().unwrap_err().to_string();
            assert!(
                err.contains("is owned by uid 12345")
                    && err.contains(&format!("chown 0 {}", f.display())),
                "{err}"
            );
        }
    }
}
