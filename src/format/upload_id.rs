//! The multipart upload id sealgate hands clients (FORMAT.md §Upload ids).
//!
//! sealgate keeps no state between requests, so everything an UploadPart
//! needs travels in the id: the provider's upload id and the object's
//! envelope (whose DEK is wrapped under a local KEK, exactly as stored at the
//! provider). A tag keyed from the DEK binds both to the bucket and key, so a
//! client can neither alter the id nor replay it for another object, and any
//! gateway instance with the key store can check it.

use super::envelope::{Dek, Envelope, KekLookup};
use super::header::ENVELOPE_LEN;
use super::{FormatError, ObjectName, kdf};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

/// Prefix of every sealgate upload id (version 1).
pub const PREFIX: &str = "sg1.";
/// Prefix of a provider upload id as shown by ListMultipartUploads: good
/// for ListParts and AbortMultipartUpload only (it carries no envelope).
pub const BARE_PREFIX: &str = "sgu.";

/// A decoded, authenticated upload id.
pub struct UploadId {
    /// The provider's upload id.
    pub upstream: String,
    /// The object's envelope.
    pub envelope: Envelope,
    /// Its data key, unwrapped.
    pub dek: Dek,
}

/// Encodes the id for an upload of `name`.
pub fn encode(envelope: &Envelope, dek: &Dek, name: ObjectName<'_>, upstream: &str) -> String {
    let tag = kdf::upload_id_tag(dek.bytes(), &envelope.object_id, name, upstream);
    let mut b = Vec::with_capacity(ENVELOPE_LEN + 32 + upstream.len());
    b.extend_from_slice(&envelope.to_bytes());
    b.extend_from_slice(&tag);
    b.extend_from_slice(upstream.as_bytes());
    format!("{PREFIX}{}", B64URL.encode(b))
}

/// Decodes and authenticates an id presented for `name`. Any alteration, or
/// use for another bucket or key, fails.
pub fn decode(
    id: &str,
    name: ObjectName<'_>,
    keys: &(impl KekLookup + ?Sized),
) -> Result<UploadId, FormatError> {
    let bad = FormatError::Metadata("upload id is not valid for this object");
    let b = id
        .strip_prefix(PREFIX)
        .and_then(|s| B64URL.decode(s).ok())
        .ok_or(bad.clone())?;
    if b.len() <= ENVELOPE_LEN + 32 {
        return Err(bad);
    }
    let envelope = Envelope::parse(&b[..ENVELOPE_LEN])?;
    let tag = &b[ENVELOPE_LEN..ENVELOPE_LEN + 32];
    let upstream = std::str::from_utf8(&b[ENVELOPE_LEN + 32..])
        .map_err(|_| bad.clone())?
        .to_owned();
    let dek = envelope.open(keys)?;
    let want = kdf::upload_id_tag(dek.bytes(), &envelope.object_id, name, &upstream);
    if !kdf::ct_eq(tag, &want) {
        return Err(bad);
    }
    Ok(UploadId {
        upstream,
        envelope,
        dek,
    })
}

/// The provider's upload id inside a sealgate id of either form, without
/// authenticating it (for operations that need no key: ListParts, Abort;
/// the provider itself refuses an id that is not for this bucket and key).
pub fn upstream_part(id: &str) -> Option<String> {
    if let Some(s) = id.strip_prefix(BARE_PREFIX) {
        return Some(s.to_owned());
    }
    let b = B64URL.decode(id.strip_prefix(PREFIX)?).ok()?;
    (b.len() > ENVELOPE_LEN + 32)
        .then(|| String::from_utf8(b[ENVELOPE_LEN + 32..].to_vec()).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Algorithm, Kek, KeyId, OsRandom};
    use zeroize::Zeroizing;

    struct One(Kek);
    impl KekLookup for One {
        fn kek(&self, id: &KeyId) -> Option<&Kek> {
            (self.0.id() == *id).then_some(&self.0)
        }
    }

    #[test]
    fn ids_authenticate_and_bind_to_the_name() {
        let keys = One(Kek::new(KeyId([7; 16]), Zeroizing::new([9; 32])));
        let (env, dek) = Envelope::create(&keys.0, Algorithm::Aes256Gcm, &mut OsRandom).unwrap();
        let name = ObjectName {
            bucket: "b",
            key: "k",
        };
        let id = encode(&env, &dek, name, "provider-id~1");
        let back = decode(&id, name, &keys).unwrap();
        assert_eq!(back.upstream, "provider-id~1");
        assert_eq!(back.envelope, env);
        assert_eq!(upstream_part(&id).as_deref(), Some("provider-id~1"));
        assert_eq!(upstream_part("sgu.raw").as_deref(), Some("raw"));

        // Another bucket or key, or any altered character, is refused.
        for other in [
            ObjectName {
                bucket: "b2",
                key: "k",
            },
            ObjectName {
                bucket: "b",
                key: "k2",
            },
        ] {
            assert!(decode(&id, other, &keys).is_err());
        }
        let raw = B64URL.decode(&id[PREFIX.len()..]).unwrap();
        for i in 0..raw.len() {
            let mut m = raw.clone();
            m[i] ^= 1;
            let altered = format!("{PREFIX}{}", B64URL.encode(&m));
            assert!(decode(&altered, name, &keys).is_err(), "byte {i}");
        }
        assert!(decode("sgu.raw", name, &keys).is_err());
        assert!(decode("", name, &keys).is_err());
    }
}
