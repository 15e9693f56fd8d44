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
    /// Domain for virtual-host-style addressing (`bucket.DOMAIN`); path-style always works.
    #[serde(default)]
    pub domain: Option<String>,
    /// Content algorithm for new objects.
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
    /// The provider sealgate forwards ciphertext to.
    pub upstream: UpstreamConfig,
    /// Client credentials.
    #[serde(default)]
    pub credentials: Vec<ClientCredential>,
}

/// The upstream S3 provider.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Endpoint URL (`https://…` or `http://…`).
    pub endpoint: String,
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

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        cfg.algorithm()?;
        Ok(cfg)
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

/// Reads a secret given inline or in a file (trailing newline removed).
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
        (None, Some(p)) => std::fs::read_to_string(p)
            .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_owned()))
            .map_err(|source| ConfigError::Read {
                path: p.clone(),
                source,
            }),
        (None, None) => Ok(None),
    }
}
