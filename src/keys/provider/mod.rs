//! Key providers: where a key store's key-encryption keys are wrapped when
//! they are not kept as plain files (docs/KEYS.md §Providers).
//!
//! A store whose directory holds `provider.toml` keeps each KEK only in a
//! form the provider wrapped: the key file carries the provider's
//! ciphertext, never the key. Loading the store asks the provider to
//! unwrap each key once; requests then use the keys in memory, so the
//! provider is off the data path. The key id is the wrapping's
//! authenticated context, so a ciphertext moved to another key file does
//! not unwrap, and a check value in the file proves the unwrapped bytes are
//! the key that was wrapped (a provider answering with other bytes is
//! refused, not used for new objects).
//!
//! Providers: OpenBao / HashiCorp Vault Transit ([`transit`]), AWS KMS
//! ([`aws_kms`]) and PKCS#11 tokens ([`pkcs11`]). Every provider
//! implements [`KeyProvider`].

pub mod aws_kms;
pub mod pkcs11;
pub mod transit;

use super::KeyError;
use super::file::read_control_file;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The file in a store directory that names its provider.
pub const PROVIDER_FILE: &str = "provider.toml";

/// Why a provider did not wrap or unwrap a key. Each says what to check.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Nothing answered at the provider's address (or the connection or
    /// TLS handshake failed).
    #[error("{address} is unreachable: {cause}")]
    Unreachable {
        /// The provider's address.
        address: String,
        /// What failed.
        cause: String,
    },
    /// The provider refused the credentials (a wrong or expired token, a
    /// policy without this key, a wrong AppRole secret).
    #[error(
        "{address} refused the credentials ({message}): check them (the token, AppRole or AWS credentials) and the key's policy"
    )]
    Denied {
        /// The provider's address.
        address: String,
        /// The provider's words.
        message: String,
    },
    /// The provider is there but cannot answer now (a standby node, a
    /// failover, a rate limit: 429 or 5xx).
    #[error("{address} cannot answer now ({status}: {message})")]
    Unavailable {
        /// The provider's address.
        address: String,
        /// HTTP status.
        status: u16,
        /// The provider's words.
        message: String,
    },
    /// The provider is sealed and cannot use any key until it is unsealed.
    #[error("{address} is sealed: unseal it, then reload sealgate's keys")]
    Sealed {
        /// The provider's address.
        address: String,
    },
    /// The provider has no key of that name.
    #[error("{address} has no key {key:?} (create it, or fix `key` in {PROVIDER_FILE})")]
    UnknownKey {
        /// The provider's address.
        address: String,
        /// The key's name at the provider.
        key: String,
    },
    /// The provider holds the key but will not use it: disabled, or
    /// scheduled for deletion.
    #[error(
        "{address} will not use key {key:?} ({message}): it is disabled or scheduled for deletion"
    )]
    Disabled {
        /// The provider's address.
        address: String,
        /// The key's name at the provider.
        key: String,
        /// The provider's words.
        message: String,
    },
    /// The PKCS#11 module shows no token with the configured label or
    /// slot.
    #[error("{address}: no such token (list them: pkcs11-tool -L, or softhsm2-util --show-slots)")]
    NoToken {
        /// The module and the token asked for.
        address: String,
    },
    /// The root key could leave the provider (a PKCS#11 key that is
    /// extractable or not sensitive): refused, a root key must not.
    #[error(
        "{address}: key {key:?} can be exported (CKA_EXTRACTABLE, or not CKA_SENSITIVE); make the root key non-extractable and sensitive"
    )]
    Exportable {
        /// The provider.
        address: String,
        /// The key's name at the provider.
        key: String,
    },
    /// A refusal without an HTTP status (a PKCS#11 return value).
    #[error("{address} refused: {message}")]
    Rejected {
        /// The provider.
        address: String,
        /// The provider's words.
        message: String,
    },
    /// The provider refused to unwrap this ciphertext: it was not made by
    /// this key for this key id, or it was altered.
    #[error(
        "{address} refused to unwrap it ({message}): the ciphertext does not belong to this key id or was altered"
    )]
    NotUnwrapped {
        /// The provider's address.
        address: String,
        /// The provider's words.
        message: String,
    },
    /// Any other refusal, with the provider's status and words.
    #[error("{address} answered {status}: {message}")]
    Refused {
        /// The provider's address.
        address: String,
        /// HTTP status.
        status: u16,
        /// The provider's words.
        message: String,
    },
    /// The provider's answer was not what its API promises.
    #[error("{address} answered something that is not a key: {reason}")]
    BadAnswer {
        /// The provider's address.
        address: String,
        /// What was wrong.
        reason: String,
    },
    /// The credentials could not be read.
    #[error("{path}: {reason}")]
    Credentials {
        /// The file.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
}

/// A service that wraps and unwraps 32-byte keys under a root key it never
/// releases, authenticating a context with each.
pub trait KeyProvider: Send + Sync {
    /// What the key files record as the provider (`"transit"`).
    fn kind(&self) -> &'static str;
    /// The root key's name at the provider, recorded in each key file.
    fn key_name(&self) -> &str;
    /// Wraps `key` with `context` authenticated; the provider's ciphertext.
    fn wrap(&self, key: &[u8; 32], context: &str) -> Result<String, ProviderError>;
    /// Unwraps what [`KeyProvider::wrap`] made with the same context.
    fn unwrap(&self, wrapped: &str, context: &str) -> Result<Zeroizing<[u8; 32]>, ProviderError>;
    /// Destroys the root key at the provider, so that nothing it wrapped
    /// can be unwrapped again anywhere (crypto-shredding, docs/KEYS.md
    /// §Erasure); the provider's confirmation, for the erasure
    /// certificate. A root key already gone is confirmed as such, so an
    /// interrupted destruction can be run again.
    fn destroy(&self) -> Result<String, ProviderError> {
        Err(ProviderError::Rejected {
            address: self.kind().into(),
            message: "sealgate cannot destroy this provider's root keys yet: destroy it with the provider's own tools".into(),
        })
    }
}

/// `provider.toml`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderFile {
    /// Seconds between the gateway's re-checks of its keys at the provider.
    #[serde(default = "default_recheck")]
    recheck_secs: u64,
    /// Seconds the gateway keeps serving with keys it holds while the
    /// provider is out of reach (unreachable or sealed).
    #[serde(default = "default_grace")]
    outage_grace_secs: u64,
    /// Where the provider keeps the root key (`EU`, `US`, …), checked
    /// against `policy.allowed_jurisdictions`; for AWS KMS derived from
    /// the region when not given.
    jurisdiction: Option<String>,
    /// OpenBao / Vault Transit.
    transit: Option<transit::TransitConfig>,
    /// AWS KMS.
    aws_kms: Option<aws_kms::AwsKmsConfig>,
    /// A PKCS#11 token.
    pkcs11: Option<pkcs11::Pkcs11Config>,
}

fn default_recheck() -> u64 {
    60
}

fn default_grace() -> u64 {
    900
}

/// How often a running gateway re-checks its keys at the provider, and for
/// how long an outage of the provider is borne.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Between re-checks.
    pub recheck: std::time::Duration,
    /// How long after the last successful check keys stay usable while
    /// the provider is out of reach. A refusal (the key disabled, the
    /// token revoked) withdraws them at the next re-check instead.
    pub grace: std::time::Duration,
}

/// `provider.toml` of the store in `dir`, checked and parsed.
fn read(dir: &Path) -> Result<Option<(PathBuf, ProviderFile)>, KeyError> {
    let path = dir.join(PROVIDER_FILE);
    if !path.exists() {
        return Ok(None);
    }
    // Whoever could edit it could point the store at a provider of their
    // own: it is a control file (ours, not writable by others), checked on
    // the file actually read.
    let text = read_control_file(&path)?;
    let file: ProviderFile = toml::from_str(&text).map_err(|e| KeyError::Malformed {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if file.recheck_secs == 0 || file.outage_grace_secs < file.recheck_secs {
        return Err(KeyError::Malformed {
            path,
            reason: "recheck_secs must be at least 1 and outage_grace_secs at least recheck_secs"
                .into(),
        });
    }
    Ok(Some((path, file)))
}

/// The re-check schedule of the store in `dir`, when it has a provider.
pub fn schedule(dir: &Path) -> Result<Option<Schedule>, KeyError> {
    Ok(read(dir)?.map(|(_, f)| Schedule {
        recheck: std::time::Duration::from_secs(f.recheck_secs),
        grace: std::time::Duration::from_secs(f.outage_grace_secs),
    }))
}

/// What [`jurisdiction`] answers for a provider that declares none and
/// has no region to derive it from.
pub const UNDECLARED: &str = "UNDECLARED";

/// Where the provider of the store in `dir` keeps its root key, when the
/// store has a provider: `jurisdiction` of `provider.toml`, else the AWS
/// KMS region's (`eu-central-1` → `EU`), else [`UNDECLARED`].
pub fn jurisdiction(dir: &Path) -> Result<Option<String>, KeyError> {
    Ok(read(dir)?.map(|(_, f)| {
        let region = f.aws_kms.as_ref().and_then(|k| k.region.as_deref());
        // AWS's own endpoint unless another is named (then the region's
        // name is that server's).
        let aws = f.aws_kms.as_ref().is_some_and(|k| {
            k.endpoint_url
                .as_deref()
                .is_none_or(crate::config::is_aws_endpoint)
        });
        match (f.jurisdiction.as_deref(), region) {
            (Some(j), _) if !j.trim().is_empty() => j.trim().to_ascii_uppercase(),
            (_, Some(r)) => crate::config::region_jurisdiction(r, aws),
            _ => UNDECLARED.to_owned(),
        }
    }))
}

/// What the inventory says of a store's provider (`sealgate keys
/// inventory`): no secret, only where and which.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Description {
    /// `transit`, `aws_kms` or `pkcs11`.
    pub kind: &'static str,
    /// The root key's name at the provider.
    pub root_key: String,
    /// Where the provider is: an address, a region or endpoint, a module
    /// and token.
    pub location: String,
    /// Its jurisdiction (see [`jurisdiction`]).
    pub jurisdiction: String,
}

/// The provider of the store in `dir`, described, when it has one.
pub fn describe(dir: &Path) -> Result<Option<Description>, KeyError> {
    let Some(jurisdiction) = jurisdiction(dir)? else {
        return Ok(None);
    };
    let Some((_, f)) = read(dir)? else {
        return Ok(None);
    };
    let (kind, root_key, location) = if let Some(t) = &f.transit {
        (
            "transit",
            t.key.clone(),
            format!("{} (mount {})", t.address, t.mount),
        )
    } else if let Some(k) = &f.aws_kms {
        let at = match (&k.endpoint_url, &k.region) {
            (Some(u), _) => u.clone(),
            (None, Some(r)) => format!("AWS KMS in {r}"),
            (None, None) => "AWS KMS in the credential chain's region".into(),
        };
        ("aws_kms", k.key_id.clone(), at)
    } else if let Some(p) = &f.pkcs11 {
        let token = match (&p.token_label, p.slot) {
            (Some(l), _) => format!("token {l:?}"),
            (None, Some(s)) => format!("slot {s}"),
            (None, None) => "no token".into(),
        };
        (
            "pkcs11",
            p.key_label.clone(),
            format!("{token} of {}", p.module.display()),
        )
    } else {
        return Ok(None);
    };
    Ok(Some(Description {
        kind,
        root_key,
        location,
        jurisdiction,
    }))
}

/// The provider of the store in `dir`, when it has one.
pub(crate) fn open(dir: &Path) -> Result<Option<Box<dyn KeyProvider>>, KeyError> {
    let Some((path, file)) = read(dir)? else {
        return Ok(None);
    };
    let malformed = |reason: String| KeyError::Malformed {
        path: path.clone(),
        reason,
    };
    // Credentials that cannot be read (a token, secret id or PIN file
    // removed or made readable by others) refuse the keys: a running
    // gateway withdraws them at once rather than bearing it as an outage.
    let refused = |kind: &str, source: ProviderError| KeyError::Provider {
        path: path.clone(),
        provider: kind.to_owned(),
        source,
    };
    let provider: Box<dyn KeyProvider> = match (file.transit, file.aws_kms, file.pkcs11) {
        (Some(cfg), None, None) => {
            Box::new(transit::Transit::new(cfg).map_err(|e| refused("transit", e))?)
        }
        (None, Some(cfg), None) => {
            Box::new(aws_kms::AwsKms::new(cfg).map_err(|e| refused("aws_kms", e))?)
        }
        (None, None, Some(cfg)) => {
            Box::new(pkcs11::Pkcs11Provider::new(cfg).map_err(|e| refused("pkcs11", e))?)
        }
        (None, None, None) => {
            return Err(malformed(
                "names no provider: add a [transit], [aws_kms] or [pkcs11] section".into(),
            ));
        }
        _ => {
            return Err(malformed(
                "names more than one provider: keep one of [transit], [aws_kms] and [pkcs11]"
                    .into(),
            ));
        }
    };
    Ok(Some(provider))
}

impl ProviderError {
    /// The provider is out of reach (unreachable, sealed): keys already
    /// held stay usable for the outage grace.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            ProviderError::Unreachable { .. }
                | ProviderError::Sealed { .. }
                | ProviderError::Unavailable { .. }
                // A token that went missing (unplugged, its network HSM
                // unreachable) is out of reach, not refusing.
                | ProviderError::NoToken { .. }
        )
    }
}

/// A provider's address must be an `https://` URL, or `http://` to a
/// loopback address (a local agent or a test server): credentials and
/// unwrapped keys cross this connection. `what` names the setting.
fn check_address(what: &str, address: &str) -> Result<(), ProviderError> {
    let bad = |reason: &str| ProviderError::Credentials {
        path: PROVIDER_FILE.into(),
        reason: format!("{what} {address:?}: {reason}"),
    };
    let uri: http::Uri = address.parse().map_err(|_| bad("not a URL"))?;
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") => {
            let loopback = host == "localhost"
                || host
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(bad(
                    "plain http:// only to a loopback address; use https://",
                ))
            }
        }
        _ => Err(bad("expected an https:// URL")),
    }
}

/// An error and its sources, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Runs one provider exchange to its end on a thread of its own, so that
/// the store can be loaded from synchronous code (the CLI) and from inside
/// the gateway's runtime alike. It happens when keys are loaded, never per
/// request.
fn run<T: Send>(
    f: impl std::future::Future<Output = Result<T, ProviderError>> + Send,
) -> Result<T, ProviderError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| ProviderError::BadAnswer {
                    address: String::new(),
                    reason: format!("no runtime for the provider call: {e}"),
                })?
                .block_on(f)
        })
        .join()
        .unwrap_or_else(|_| {
            Err(ProviderError::BadAnswer {
                address: String::new(),
                reason: "the provider call panicked".into(),
            })
        })
    })
}

/// The authenticated context a key id's wrapping carries.
pub(crate) fn context(id: &crate::format::KeyId) -> String {
    format!("sealgate-kek/1 {id}")
}

/// A provider error as the key store reports it: the key file and the
/// provider named.
pub(crate) fn failed(path: &Path, provider: &dyn KeyProvider, source: ProviderError) -> KeyError {
    KeyError::Provider {
        path: path.to_owned(),
        provider: format!("{} key {:?}", provider.kind(), provider.key_name()),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_provider_file_parses() {
        let f: ProviderFile =
            toml::from_str(include_str!("../../../keys/provider.toml.example")).unwrap();
        assert_eq!((f.recheck_secs, f.outage_grace_secs), (60, 900));
        let t = f.transit.unwrap();
        assert_eq!(
            (t.key.as_str(), t.mount.as_str()),
            ("sealgate-root", "transit")
        );

        // Its commented alternatives, each taken instead.
        let sample = include_str!("../../../keys/provider.toml.example");
        let section = |head: &str| -> ProviderFile {
            let text: String = sample
                .lines()
                .skip_while(|l| *l != head)
                .take_while(|l| *l != "#")
                .map(|l| l.trim_start_matches("# ").to_owned() + "\n")
                .collect();
            toml::from_str(&text).unwrap()
        };
        let kms = section("# [aws_kms]").aws_kms.unwrap();
        assert_eq!(kms.key_id, "alias/sealgate-root");
        let p11 = section("# [pkcs11]").pkcs11.unwrap();
        assert_eq!(p11.key_label, "sealgate-root");
    }

    #[test]
    fn the_key_providers_jurisdiction_is_declared_or_derived_from_the_kms_region() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(jurisdiction(dir.path()).unwrap(), None);
        let p = dir.path().join(PROVIDER_FILE);
        let write = |text: &str| std::fs::write(&p, text).unwrap();
        write("[aws_kms]\nkey_id = \"k\"\nregion = \"eu-central-1\"\n");
        assert_eq!(jurisdiction(dir.path()).unwrap().as_deref(), Some("EU"));
        write("jurisdiction = \"ch\"\n[aws_kms]\nkey_id = \"k\"\nregion = \"eu-central-1\"\n");
        assert_eq!(jurisdiction(dir.path()).unwrap().as_deref(), Some("CH"));
        write("[transit]\naddress = \"https://bao.example\"\nkey = \"k\"\n");
        assert_eq!(
            jurisdiction(dir.path()).unwrap().as_deref(),
            Some(UNDECLARED)
        );
    }

    #[test]
    fn unreadable_credentials_refuse_the_keys_rather_than_count_as_an_outage() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(PROVIDER_FILE),
            format!(
                "[pkcs11]\nmodule = \"/x.so\"\ntoken_label = \"t\"\nkey_label = \"k\"\npin_file = {:?}\n",
                dir.path().join("gone")
            ),
        )
        .unwrap();
        let err = open(dir.path()).err().unwrap();
        assert!(err.is_provider_refusal(), "{err}");
        assert!(!err.is_provider_outage(), "{err}");
    }

    #[test]
    fn a_grace_shorter_than_the_recheck_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(PROVIDER_FILE);
        std::fs::write(
            &p,
            "recheck_secs = 60\noutage_grace_secs = 10\n[transit]\naddress = \"http://a\"\nkey = \"k\"\n",
        )
        .unwrap();
        let err = schedule(dir.path()).unwrap_err().to_string();
        assert!(err.contains("outage_grace_secs"), "{err}");
    }

    #[test]
    fn a_provider_file_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(PROVIDER_FILE);
        std::fs::write(
            &p,
            "[transit]\naddress = \"http://127.0.0.1:1\"\nkey = \"k\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = schedule(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::WritableFile { .. }), "{err}");
    }

    #[test]
    fn tokens_and_keys_cross_only_tls_or_loopback() {
        for ok in [
            "https://bao.example:8200",
            "http://127.0.0.1:8200",
            "http://localhost:8200",
            "http://[::1]:8200",
        ] {
            assert!(check_address("transit address", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://bao.example:8200",
            "http://10.0.0.5:8200",
            "ftp://x",
            "not a url",
        ] {
            let e = check_address("transit address", bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("transit address"), "{bad}: {e}");
        }
    }
}
