//! Errors of the key store. Each names the file and says how to fix it.

use crate::format::KeyId;
use std::path::PathBuf;

/// Why the key store could not be read or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key store directory does not exist.
    #[error(
        "key store {dir} does not exist; create it with `sealgate keys generate --keys-dir {dir}`"
    )]
    MissingDir {
        /// Directory looked for.
        dir: PathBuf,
    },
    /// The directory holds no key files.
    #[error(
        "key store {dir} holds no keys; create one with `sealgate keys generate --keys-dir {dir}`"
    )]
    Empty {
        /// Directory read.
        dir: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A key file is readable or writable by group or others.
    #[error(
        "{path} has mode {mode:04o}: key files must be readable by their owner only; fix with `chmod 600 {path}`"
    )]
    InsecurePermissions {
        /// Offending file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key store directory can be written by group or others, who
    /// could then plant a key or replace ACTIVE.
    #[error(
        "keys directory {dir} is writable by group or others (mode {mode:04o}): anyone who can write it can plant a key; run `chmod 700 {dir}`"
    )]
    InsecureDir {
        /// The directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// ACTIVE or a revocation record can be written by group or others.
    #[error(
        "{path} is writable by group or others (mode {mode:04o}): anyone who can write it can change which keys are used; run `chmod 600 {path}`"
    )]
    WritableFile {
        /// Offending file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A file or the directory of the store belongs to another user: it may
    /// have been planted, so it is not trusted.
    #[error(
        "{path} is owned by uid {owner}, not by the user sealgate runs as (uid {euid}) or root: a file another user planted is not trusted; check it, then run `chown {euid} {path}` or remove it (or, if uid {owner} owns the store, run sealgate as that user)"
    )]
    ForeignOwner {
        /// Offending file or directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The gateway's effective uid.
        euid: u32,
    },
    /// A key file or ACTIVE file could not be parsed.
    #[error("{path}: malformed: {reason}")]
    Malformed {
        /// Offending file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Two files hold the same key id.
    #[error("duplicate key id {id} in {first} and {second}; remove one of them")]
    Duplicate {
        /// The repeated id.
        id: KeyId,
        /// First file.
        first: PathBuf,
        /// Second file.
        second: PathBuf,
    },
    /// No ACTIVE file.
    #[error(
        "{dir}/ACTIVE is missing: name the active key with `sealgate keys activate ID --keys-dir {dir}`"
    )]
    NoActive {
        /// Directory read.
        dir: PathBuf,
    },
    /// ACTIVE (or an activation request) names a key the store lacks.
    #[error("key {id} is not in key store {dir}")]
    ActiveUnknown {
        /// Directory read.
        dir: PathBuf,
        /// The id named.
        id: KeyId,
    },
    /// A revoked key cannot wrap new objects.
    #[error(
        "key {id} is revoked ({reason}); make another key active first (`sealgate keys rotate` or `keys activate`)"
    )]
    ActiveRevoked {
        /// Key id.
        id: KeyId,
        /// The revocation's reason.
        reason: String,
    },
    /// A revocation names a key the store does not hold.
    #[error("{path}: revokes key {id}, which is not in the key store")]
    RevokedUnknown {
        /// The revocation file.
        path: PathBuf,
        /// Key id.
        id: KeyId,
    },
    /// The key is already revoked.
    #[error("key {id} is already revoked ({path})")]
    AlreadyRevoked {
        /// Key id.
        id: KeyId,
        /// The existing revocation file.
        path: PathBuf,
    },
    /// The store's key provider did not wrap or unwrap a key.
    #[error("{path}: {provider}: {source}")]
    Provider {
        /// The key file.
        path: PathBuf,
        /// The provider and its root key.
        provider: String,
        /// What the provider said.
        #[source]
        source: super::provider::ProviderError,
    },
    /// A provider unwrapped a key file to bytes that are not the key that
    /// was wrapped (its check value differs): refused, so that no object is
    /// written under a key someone else chose.
    #[error(
        "{path}: the key the provider returned for {id} fails the file's check value; is provider.toml pointing at the right server?"
    )]
    CheckFailed {
        /// The key file.
        path: PathBuf,
        /// The key id.
        id: KeyId,
    },
    /// The OS random source failed.
    #[error("random number generator failed")]
    Random,
    /// A key domain name that cannot be one.
    #[error(
        "{name:?} is not a key domain name: use 1 to 63 of a-z, 0-9 and -, not starting with -"
    )]
    BadDomain {
        /// The name given.
        name: String,
    },
    /// The policy or a command names a domain the store lacks.
    #[error(
        "key domain {name:?} is not in key store {dir} (create it: sealgate keys generate --domain {name})"
    )]
    UnknownDomain {
        /// The domain.
        name: String,
        /// The store.
        dir: PathBuf,
    },
    /// The domain was destroyed: nothing can be written under it, and what
    /// it wrapped is gone.
    #[error(
        "key domain {name:?} was destroyed ({since}, exception {exception}); its keys are gone"
    )]
    DomainDestroyed {
        /// The domain.
        name: String,
        /// When the destruction began.
        since: String,
        /// The erasure exception.
        exception: String,
    },
    /// A domain cannot be destroyed with evidence as it is set up.
    #[error("key domain {name:?} cannot be destroyed: {reason}")]
    NotDestroyable {
        /// The domain.
        name: String,
        /// Why not.
        reason: String,
    },
}

impl KeyError {
    /// The store's provider is out of reach (see
    /// [`super::provider::ProviderError::is_outage`]).
    pub fn is_provider_outage(&self) -> bool {
        matches!(self, KeyError::Provider { source, .. } if source.is_outage())
    }

    /// The store's provider answered and refused a key: a wrong or revoked
    /// credential, a key it lacks or will not unwrap, or other key bytes
    /// than were wrapped. Keys held are withdrawn.
    pub fn is_provider_refusal(&self) -> bool {
        match self {
            KeyError::Provider { source, .. } => !source.is_outage(),
            KeyError::CheckFailed { .. } => true,
            _ => false,
        }
    }
}
