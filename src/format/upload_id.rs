//! The multipart upload id sealgate hands clients (FORMAT.md §Upload ids).
//!
//! sealgate keeps no state between requests, so everything an UploadPart
//! needs travels in the id: the provider's upload id and the object's
//! envelope (whose DEK is wrapped under a local KEK, exactly as stored at the
//! provider). A tag keyed from the DEK binds both to the bucket and key, so a
//! client can neither alter the id nor replay it for another object, and any
//! gateway instance with the key store can check it.

use super::envelope::{Dek, Envelope, Kek, KekLookup};
use super::header::ENVELOPE_LEN;
use super::{FormatError, KeyId, ObjectName, kdf};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

/// Prefix of every sealgate upload id (version 1).
pub const PREFIX: &str = "sg1.";
/// Prefix of the unauthenticated form listed before format version 3:
/// refused everywhere now (any client could present any provider id).
pub const BARE_PREFIX: &str = "sgu.";
/// Prefix of an upload id as ListMultipartUploads lists it: the provider's
/// id, authenticated for its bucket and key under a local KEK. Good for
/// ListParts and AbortMultipartUpload (cleanup), not for UploadPart or
/// CompleteMultipartUpload (it carries no envelope).
pub const LISTED_PREFIX: &str = "sgl.";

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

/// The listed form of the provider's upload `upstream` for `name`, under
/// `kek` (FORMAT.md §Upload ids).
pub fn encode_listed(kek: &Kek, name: ObjectName<'_>, upstream: &str) -> String {
    let tag = kdf::listed_upload_id_tag(kek.secret(), name, upstream);
    let mut b = Vec::with_capacity(16 + 32 + upstream.len());
    b.extend_from_slice(&kek.id().0);
    b.extend_from_slice(&tag);
    b.extend_from_slice(upstream.as_bytes());
    format!("{LISTED_PREFIX}{}", B64URL.encode(b))
}

/// The provider's upload id inside a full (`sg1.`) or listed (`sgl.`) id,
/// authenticated for `name`; any other id, an altered one, or one for
/// another bucket or key fails.
pub fn decode_upstream(
    id: &str,
    name: ObjectName<'_>,
    keys: &(impl KekLookup + ?Sized),
) -> Result<String, FormatError> {
    let Some(rest) = id.strip_prefix(LISTED_PREFIX) else {
        return decode(id, name, keys).map(|u| u.upstream);
    };
    let bad = FormatError::Metadata("upload id is not valid for this object");
    let b = B64URL.decode(rest).map_err(|_| bad.clone())?;
    if b.len() <= 16 + 32 {
        return Err(bad);
    }
    let mut kek_id = KeyId([0; 16]);
    kek_id.0.copy_from_slice(&b[..16]);
    let kek = keys.kek(&kek_id).ok_or(FormatError::UnknownKey(kek_id))?;
    let upstream = std::str::from_utf8(&b[48..]).map_err(|_| bad.clone())?;
    let want = kdf::listed_upload_id_tag(kek.secret(), name, upstream);
    if !kdf::ct_eq(&b[16..48], &want) {
        return Err(bad);
    }
    Ok(upstream.to_owned())
}

/// The provider's upload id inside a sealgate id, without authenticating
/// it: only for a ListMultipartUploads marker, which selects where a
/// listing resumes and grants nothing.
pub fn upstream_part(id: &str) -> Option<String> {
    if let Some(s) = id.strip_prefix(BARE_PREFIX) {
        // A marker from a listing made before version 3.
        return Some(s.to_owned());
    }
    if let Some(s) = id.strip_prefix(LISTED_PREFIX) {
        let b = B64URL.decode(s).ok()?;
        return (b.len() > 48)
            .then(|| String::from_utf8(b[48..].to_vec()).ok())
            .flatten();
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
    fn listed_ids_authenticate_for_their_name_only() {
        let keys = One(Kek::new(KeyId([3; 16]), Zeroizing::new([4; 32])));
        let name = ObjectName {
            bucket: "b",
            key: "k",
        };
        let id = encode_listed(&keys.0, name, "provider-1");
        assert_eq!(decode_upstream(&id, name, &keys).unwrap(), "provider-1");
        let other = ObjectName {
            bucket: "b2",
            key: "k",
        };
        assert!(decode_upstream(&id, other, &keys).is_err());
        assert!(decode_upstream("sgu.provider-1", name, &keys).is_err());
        let mut forged = id.clone().into_bytes();
        let n = forged.len() - 1;
        forged[n] = if forged[n] == b'A' { b'B' } else { b'A' };
        assert!(decode_upstream(std::str::from_utf8(&forged).unwrap(), name, &keys).is_err());
        assert_eq!(upstream_part(&id).as_deref(), Some("provider-1"));
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
