//! Approver signatures on exceptions: an Ed25519 signature (ed25519-dalek)
//! by the approver over the exception's canonical bytes, made with a key
//! that never lives on the gateway host (docs/EXCEPTIONS.md §Approver
//! signatures). The registry's HMAC proves a line was written with the
//! gateway's key store; the signature proves the approver decided it.

use super::registry::Exception;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use std::path::{Path, PathBuf};

/// Domain separation: the canonical bytes begin with this line.
pub const CONTEXT: &str = "sealgate/v1/exception-approval\n";
/// Public keys are written `ed25519:<64 hex digits>`.
const PUBLIC_PREFIX: &str = "ed25519:";
/// Private key files hold `sealgate-approver-ed25519:<64 hex digits>`.
const SECRET_PREFIX: &str = "sealgate-approver-ed25519:";

/// An approver's signature over an exception, stored with its register line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The approver's public key, `ed25519:<hex>`.
    pub key: String,
    /// The Ed25519 signature (hex, 64 bytes) over [`request_bytes`].
    pub sig: String,
}

/// Why an approval or an approver key is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// A key or signature that is not what sealgate writes.
    #[error("{0}")]
    Malformed(String),
    /// The signature does not verify over this exception.
    #[error(
        "the approver signature (key {key}) does not verify over exception {id}: it was made over other fields, or altered"
    )]
    BadSignature {
        /// Exception id.
        id: String,
        /// The key it names.
        key: String,
    },
    /// A key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
}

/// The exact bytes an approver signs: [`CONTEXT`] then the exception as
/// compact JSON (fields in declaration order), then `\n`.
pub fn request_bytes(e: &Exception) -> Vec<u8> {
    let mut out = CONTEXT.as_bytes().to_vec();
    out.extend(serde_json::to_vec(e).expect("serializable"));
    out.push(b'\n');
    out
}

/// Reads back the exception from request bytes (for `exception sign`,
/// which signs the canonical bytes of what it read).
pub fn parse_request(bytes: &[u8]) -> Result<Exception, ApprovalError> {
    let body = bytes
        .strip_prefix(CONTEXT.as_bytes())
        .ok_or_else(|| ApprovalError::Malformed("not a sealgate exception request".into()))?;
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    serde_json::from_slice(body)
        .map_err(|e| ApprovalError::Malformed(format!("not a sealgate exception request: {e}")))
}

/// An approver's public key, from `ed25519:<hex>`.
pub fn parse_public(s: &str) -> Result<VerifyingKey, ApprovalError> {
    let bad = || {
        ApprovalError::Malformed(format!(
            "{s:?} is not an approver public key (ed25519: followed by 64 hex digits)"
        ))
    };
    let hex = s.trim().strip_prefix(PUBLIC_PREFIX).ok_or_else(bad)?;
    let bytes: [u8; 32] = hex::decode(hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(bad)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad())
}

/// `ed25519:<hex>` for a public key.
pub fn format_public(k: &VerifyingKey) -> String {
    format!("{PUBLIC_PREFIX}{}", hex::encode(k.as_bytes()))
}

/// Checks the signature over `e`; returns the key it was made with.
pub fn verify(a: &Approval, e: &Exception) -> Result<VerifyingKey, ApprovalError> {
    let key = parse_public(&a.key)?;
    let sig: [u8; 64] = hex::decode(&a.sig)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            ApprovalError::Malformed("the approver signature is not 64 bytes of hex".into())
        })?;
    key.verify(&request_bytes(e), &Signature::from_bytes(&sig))
        .map_err(|_| ApprovalError::BadSignature {
            id: e.id.clone(),
            key: a.key.clone(),
        })?;
    Ok(key)
}

/// Signs `e` (on the approver's own machine).
pub fn sign(key: &SigningKey, e: &Exception) -> Approval {
    Approval {
        key: format_public(&key.verifying_key()),
        sig: hex::encode(key.sign(&request_bytes(e)).to_bytes()),
    }
}

/// Creates a new approver key in `path` (mode 0600, never overwritten);
/// returns its public key.
pub fn generate(path: &Path) -> Result<VerifyingKey, ApprovalError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| ApprovalError::Io {
        path: path.to_owned(),
        source,
    };
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::getrandom(seed.as_mut())
        .map_err(|e| ApprovalError::Malformed(format!("no system randomness: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    let text = zeroize::Zeroizing::new(format!("{SECRET_PREFIX}{}\n", hex::encode(*seed)));
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(key.verifying_key())
}

/// Reads an approver's private key file.
pub fn load_signing(path: &Path) -> Result<SigningKey, ApprovalError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
        ApprovalError::Io {
            path: path.to_owned(),
            source,
        }
    })?);
    let seed: zeroize::Zeroizing<[u8; 32]> = text
        .trim()
        .strip_prefix(SECRET_PREFIX)
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| b.try_into().ok())
        .map(zeroize::Zeroizing::new)
        .ok_or_else(|| {
            ApprovalError::Malformed(format!(
                "{} is not a sealgate approver key (made by `sealgate exception approver-key`)",
                path.display()
            ))
        })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The approver keys a policy trusts: each entry is `ed25519:<hex>` or the
/// path of a file holding one.
pub fn parse_trusted(entries: &[String]) -> Result<Vec<VerifyingKey>, ApprovalError> {
    entries
        .iter()
        .map(|s| {
            if s.trim().starts_with(PUBLIC_PREFIX) {
                parse_public(s)
            } else {
                let text = std::fs::read_to_string(s).map_err(|source| ApprovalError::Io {
                    path: s.into(),
                    source,
                })?;
                parse_public(&text)
            }
        })
        .collect()
}
