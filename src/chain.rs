//! The hash-chained, authenticated line format shared by the audit log
//! (`audit`) and the exception registry (`policy::registry`): JSON lines,
//! each carrying its sequence number (from 1), its time, the SHA-256 (hex)
//! of the previous line's bytes (64 zeros for the first), the id of the KEK
//! its MAC key derives from, and an HMAC-SHA256 (`mac`) over the line
//! without its `mac`, under a key derived for the file's purpose
//! (`format::kdf::{audit_mac, registry_mac}`; docs/INCIDENTS.md,
//! docs/EXCEPTIONS.md).
//!
//! Each file keeps its own record types (their fields and order are its
//! bytes on disk); this module checks and extends the chain they form, and
//! appends durably: under an exclusive file lock, one write and an fsync of
//! data and metadata, and a failed append cut back to the last good length
//! so the file stays verifiable.

use crate::format::{KekLookup, KeyId, kdf};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::io::Write;

/// Which file a line belongs to: the MAC key is derived for it, so a line
/// of one never verifies in the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The audit log ("sealgate/v1/audit").
    Audit,
    /// The exception registry.
    Registry,
}

impl Purpose {
    fn mac(self, kek: &[u8; 32], body: &[u8]) -> [u8; 32] {
        match self {
            Purpose::Audit => kdf::audit_mac(kek, body),
            Purpose::Registry => kdf::registry_mac(kek, body),
        }
    }
}

/// A line's place in the chain, as the line states it.
pub(crate) struct Link<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// When it was written.
    pub time: DateTime<Utc>,
    /// SHA-256 (hex) of the previous line.
    pub prev: &'a str,
    /// The KEK id its MAC key derives from.
    pub key: &'a str,
    /// Its MAC (hex).
    pub mac: &'a str,
}

/// A stored line: its link fields and the bytes its MAC covers.
pub(crate) trait Record: serde::de::DeserializeOwned {
    /// The fields that chain and authenticate it.
    fn link(&self) -> Link<'_>;
    /// The line serialized without its `mac`: what the MAC covers.
    fn signed_bytes(&self) -> Vec<u8>;
}

/// The head of a chain: lines so far and the SHA-256 of the last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Chain {
    /// Lines in the chain.
    pub lines: u64,
    /// SHA-256 of the last line's bytes (zeros before the first).
    pub last_hash: [u8; 32],
}

impl Chain {
    /// A chain that continues after `lines` lines, the last hashing to
    /// `last_hash`.
    pub(crate) fn at(lines: u64, last_hash: [u8; 32]) -> Chain {
        Chain { lines, last_hash }
    }

    /// The sequence number of the next line.
    pub(crate) fn next_seq(&self) -> u64 {
        self.lines + 1
    }

    /// The `prev` the next line carries.
    pub(crate) fn prev(&self) -> String {
        hex::encode(self.last_hash)
    }

    /// Verifies `raw` (one line, without its `\n`) as the next line and
    /// moves the head past it. `what` names a record in errors ("an audit
    /// record"); `key_allowed` may refuse the line's key at its time (after
    /// the key is found, before the MAC is checked). The error is why the
    /// line fails.
    pub(crate) fn verify_next<R: Record>(
        &mut self,
        raw: &[u8],
        purpose: Purpose,
        what: &str,
        keys: &impl KekLookup,
        key_allowed: impl FnOnce(&KeyId, DateTime<Utc>) -> Result<(), String>,
    ) -> Result<R, String> {
        let record: R = serde_json::from_slice(raw).map_err(|e| format!("not {what}: {e}"))?;
        let no = self.next_seq();
        let link = record.link();
        if link.seq != no {
            return Err(format!(
                "sequence number {} where {no} was expected",
                link.seq
            ));
        }
        if link.prev != self.prev() {
            return Err("does not chain to the previous line".into());
        }
        let id = KeyId::from_hex(link.key).ok_or("malformed key id")?;
        let kek = keys
            .kek(&id)
            .ok_or_else(|| format!("authenticated with key {id}, which the key store lacks"))?;
        key_allowed(&id, link.time)?;
        let want = purpose.mac(kek.secret(), &record.signed_bytes());
        if !kdf::ct_eq(&want, &hex::decode(link.mac).unwrap_or_default()) {
            return Err("authentication failed".into());
        }
        self.last_hash = Sha256::digest(raw).into();
        self.lines = no;
        Ok(record)
    }

    /// The MAC (hex) of a new line's `body` (its fields without `mac`).
    pub(crate) fn mac(purpose: Purpose, kek: &[u8; 32], body: &impl serde::Serialize) -> String {
        hex::encode(purpose.mac(kek, &serde_json::to_vec(body).expect("serializable")))
    }

    /// Appends a sealed `line` (with its `mac`) to `out` with its `\n` and
    /// moves the head past it.
    pub(crate) fn push(&mut self, line: &impl serde::Serialize, out: &mut Vec<u8>) {
        let raw = serde_json::to_vec(line).expect("serializable");
        self.last_hash = Sha256::digest(&raw).into();
        self.lines += 1;
        out.extend_from_slice(&raw);
        out.push(b'\n');
    }
}

/// A file held under an exclusive lock (`flock`) until dropped: appends
/// and the reads they depend on happen under it, so two writers (gateway
/// and CLI, or two CLI runs) never interleave or fork the chain.
pub(crate) struct Locked<'a>(&'a mut std::fs::File);

impl<'a> Locked<'a> {
    /// Waits for the exclusive lock on `file`.
    pub(crate) fn acquire(file: &'a mut std::fs::File) -> std::io::Result<Locked<'a>> {
        file.lock()?;
        Ok(Locked(file))
    }

    /// The locked file.
    pub(crate) fn file(&self) -> &std::fs::File {
        self.0
    }

    /// Appends `lines` durably: one write, then an fsync of data and
    /// metadata. When the write or fsync fails, the file is cut back to
    /// `good_len` (its length of verified lines); the error says whether
    /// that succeeded.
    pub(crate) fn append(&mut self, good_len: u64, lines: &[u8]) -> Result<(), AppendError> {
        let written = self.0.write_all(lines).and_then(|()| self.0.sync_all());
        written.map_err(|error| AppendError {
            cut_back: self.0.set_len(good_len).is_ok(),
            error,
        })
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // Closing the file releases the lock too; an unlock that fails here
        // leaves it to that.
        self.0.unlock().ok();
    }
}

/// A failed append.
#[derive(Debug)]
pub(crate) struct AppendError {
    /// Why the write or fsync failed.
    pub error: std::io::Error,
    /// Whether the file was cut back to its verified lines.
    pub cut_back: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Kek;

    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Note {
        seq: u64,
        time: DateTime<Utc>,
        prev: String,
        key: String,
        note: String,
        mac: String,
    }

    #[derive(serde::Serialize)]
    struct NoteBody<'a> {
        seq: u64,
        time: &'a DateTime<Utc>,
        prev: &'a str,
        key: &'a str,
        note: &'a str,
    }

    impl Note {
        fn body(&self) -> NoteBody<'_> {
            NoteBody {
                seq: self.seq,
                time: &self.time,
                prev: &self.prev,
                key: &self.key,
                note: &self.note,
            }
        }
    }

    impl Record for Note {
        fn link(&self) -> Link<'_> {
            Link {
                seq: self.seq,
                time: self.time,
                prev: &self.prev,
                key: &self.key,
                mac: &self.mac,
            }
        }
        fn signed_bytes(&self) -> Vec<u8> {
            serde_json::to_vec(&self.body()).unwrap()
        }
    }

    fn sealed(kek: &Kek, purpose: Purpose, notes: &[&str]) -> Vec<u8> {
        let mut chain = Chain::default();
        let mut out = Vec::new();
        for n in notes {
            let mut line = Note {
                seq: chain.next_seq(),
                time: Utc::now(),
                prev: chain.prev(),
                key: kek.id().to_string(),
                note: (*n).into(),
                mac: String::new(),
            };
            line.mac = Chain::mac(purpose, kek.secret(), &line.body());
            chain.push(&line, &mut out);
        }
        out
    }

    fn verify(kek: &Kek, purpose: Purpose, text: &[u8]) -> Result<Chain, String> {
        let mut chain = Chain::default();
        for raw in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            chain.verify_next::<Note>(raw, purpose, "a note", kek, |_, _| Ok(()))?;
        }
        Ok(chain)
    }

    fn kek() -> Kek {
        let id = KeyId::from_hex(&"ab".repeat(16)).unwrap();
        Kek::new(id, zeroize::Zeroizing::new([7; 32]))
    }

    #[test]
    fn a_sealed_chain_verifies_and_its_head_is_the_last_line_hash() {
        let kek = kek();
        let text = sealed(&kek, Purpose::Audit, &["a", "b"]);
        let chain = verify(&kek, Purpose::Audit, &text).unwrap();
        assert_eq!(chain.lines, 2);
        let last = text.split(|b| *b == b'\n').nth(1).unwrap();
        assert_eq!(chain.last_hash, <[u8; 32]>::from(Sha256::digest(last)));
    }

    #[test]
    fn a_line_of_one_purpose_fails_in_the_other() {
        let kek = kek();
        let text = sealed(&kek, Purpose::Audit, &["a"]);
        let err = verify(&kek, Purpose::Registry, &text).unwrap_err();
        assert_eq!(err, "authentication failed");
    }

    #[test]
    fn reordered_or_edited_lines_fail() {
        let kek = kek();
        let text = sealed(&kek, Purpose::Registry, &["a", "b"]);
        let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').take(2).collect();
        let swapped = [lines[1], b"\n", lines[0], b"\n"].concat();
        let err = verify(&kek, Purpose::Registry, &swapped).unwrap_err();
        assert_eq!(err, "sequence number 2 where 1 was expected");
        let edited = String::from_utf8(text.clone())
            .unwrap()
            .replace("\"b\"", "\"c\"");
        let err = verify(&kek, Purpose::Registry, edited.as_bytes()).unwrap_err();
        assert_eq!(err, "authentication failed");
    }
}
