//! The one place the AEAD primitive is called.
//!
//! Three interchangeable backends sit behind [`SegmentCipher`]:
//!
//! - `aws-lc-rs` (feature `backend-aws-lc`, the default): the library rustls
//!   and the upstream HTTPS client already use for TLS (post-quantum
//!   X25519MLKEM768 key exchange), so a default build compiles one crypto
//!   library for TLS and the object format.
//! - `ring` (feature `backend-ring`): the earlier default, same API shape.
//! - RustCrypto `aes-gcm` and `chacha20poly1305` (feature
//!   `backend-rustcrypto`): a pure-Rust, independent implementation.
//!
//! Exactly one is compiled. When several features are on, the first in the
//! order aws-lc, ring, RustCrypto wins (so `--features backend-ring` on top of
//! the defaults still uses aws-lc-rs: add `--no-default-features`). Committed
//! test vectors must pass under every backend, which cross-checks them.
//! Nothing here knows about segments or headers: it seals and opens one buffer
//! in place with a separate tag.

use super::Algorithm;
use zeroize::Zeroizing;

/// Length of every AEAD tag used by the format.
pub const TAG_LEN: usize = 16;
/// Length of every AEAD nonce used by the format.
pub const NONCE_LEN: usize = 12;
/// Length of every AEAD key used by the format.
pub const KEY_LEN: usize = 32;

/// Authentication failed; deliberately carries no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFailed;

#[cfg(feature = "backend-aws-lc")]
mod imp {
    use super::*;
    use aws_lc_rs::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

    /// The key schedule lives in an `EVP_AEAD_CTX` allocated by AWS-LC;
    /// dropping it calls `EVP_AEAD_CTX_free`, whose `OPENSSL_free` overwrites
    /// the allocation with zeros before releasing it.
    pub struct Inner(LessSafeKey);

    impl Inner {
        pub fn new(alg: Algorithm, key: &[u8; KEY_LEN]) -> Self {
            let a = match alg {
                Algorithm::Aes256Gcm => &AES_256_GCM,
                Algorithm::ChaCha20Poly1305 => &CHACHA20_POLY1305,
            };
            // Key length is fixed by the type, so this cannot fail.
            Inner(LessSafeKey::new(
                UnboundKey::new(a, key).expect("32-byte key"),
            ))
        }
        pub fn seal(&self, nonce: [u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
            let tag = self
                .0
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    buf,
                )
                .expect("segment length is far below the AEAD limit");
            let mut out = [0u8; TAG_LEN];
            out.copy_from_slice(tag.as_ref());
            out
        }
        pub fn open(
            &self,
            nonce: [u8; NONCE_LEN],
            aad: &[u8],
            buf: &mut [u8],
            tag: &[u8; TAG_LEN],
        ) -> Result<(), AuthFailed> {
            self.0
                .open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    tag,
                    buf,
                )
                .map(|_| ())
                .map_err(|_| AuthFailed)
        }
    }
}

#[cfg(all(feature = "backend-ring", not(feature = "backend-aws-lc")))]
mod imp {
    use super::*;
    use ring::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};

    pub struct Inner(LessSafeKey);

    impl Inner {
        pub fn new(alg: Algorithm, key: &[u8; KEY_LEN]) -> Self {
            let a = match alg {
                Algorithm::Aes256Gcm => &AES_256_GCM,
                Algorithm::ChaCha20Poly1305 => &CHACHA20_POLY1305,
            };
            // Key length is fixed by the type, so this cannot fail.
            Inner(LessSafeKey::new(
                UnboundKey::new(a, key).expect("32-byte key"),
            ))
        }
        pub fn seal(&self, nonce: [u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
            let tag = self
                .0
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    buf,
                )
                .expect("segment length is far below the AEAD limit");
            let mut out = [0u8; TAG_LEN];
            out.copy_from_slice(tag.as_ref());
            out
        }
        pub fn open(
            &self,
            nonce: [u8; NONCE_LEN],
            aad: &[u8],
            buf: &mut [u8],
            tag: &[u8; TAG_LEN],
        ) -> Result<(), AuthFailed> {
            let tag = Tag::from(*tag);
            self.0
                .open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    tag,
                    buf,
                    0..,
                )
                .map(|_| ())
                .map_err(|_| AuthFailed)
        }
    }
}

#[cfg(all(
    feature = "backend-rustcrypto",
    not(any(feature = "backend-aws-lc", feature = "backend-ring"))
))]
mod imp {
    use super::*;
    use aes_gcm::aead::{AeadInPlace, KeyInit};

    pub enum Inner {
        Aes(Box<aes_gcm::Aes256Gcm>),
        ChaCha(Box<chacha20poly1305::ChaCha20Poly1305>),
    }

    impl Inner {
        pub fn new(alg: Algorithm, key: &[u8; KEY_LEN]) -> Self {
            match alg {
                Algorithm::Aes256Gcm => Inner::Aes(Box::new(aes_gcm::Aes256Gcm::new(key.into()))),
                Algorithm::ChaCha20Poly1305 => Inner::ChaCha(Box::new(
                    chacha20poly1305::ChaCha20Poly1305::new(key.into()),
                )),
            }
        }
        pub fn seal(&self, nonce: [u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
            let tag = match self {
                Inner::Aes(c) => c.encrypt_in_place_detached(&nonce.into(), aad, buf),
                Inner::ChaCha(c) => c.encrypt_in_place_detached(&nonce.into(), aad, buf),
            }
            .expect("segment length is far below the AEAD limit");
            tag.into()
        }
        pub fn open(
            &self,
            nonce: [u8; NONCE_LEN],
            aad: &[u8],
            buf: &mut [u8],
            tag: &[u8; TAG_LEN],
        ) -> Result<(), AuthFailed> {
            match self {
                Inner::Aes(c) => c.decrypt_in_place_detached(&nonce.into(), aad, buf, tag.into()),
                Inner::ChaCha(c) => {
                    c.decrypt_in_place_detached(&nonce.into(), aad, buf, tag.into())
                }
            }
            .map_err(|_| AuthFailed)
        }
    }
}

#[cfg(not(any(
    feature = "backend-aws-lc",
    feature = "backend-ring",
    feature = "backend-rustcrypto"
)))]
compile_error!(
    "enable one AEAD backend: feature `backend-aws-lc` (default), `backend-ring` or `backend-rustcrypto`"
);

/// An AEAD key bound to one algorithm, ready to seal or open buffers.
///
/// Built from a derived key that is unique per part stream, so callers can use
/// counter nonces (see docs/FORMAT.md, "Segments").
pub struct SegmentCipher {
    inner: imp::Inner,
}

impl SegmentCipher {
    /// Schedules `key` for `alg`. The caller's copy of `key` stays zeroizable.
    /// The backend's expanded key schedule is zeroed on drop by aws-lc-rs
    /// (AWS-LC's `OPENSSL_free` cleanses every allocation it releases); ring
    /// does not zeroize it, nor does RustCrypto's `aes` crate without its
    /// `zeroize` feature, which this build does not enable (docs/KEYS.md).
    pub fn new(alg: Algorithm, key: &Zeroizing<[u8; KEY_LEN]>) -> Self {
        SegmentCipher {
            inner: imp::Inner::new(alg, key),
        }
    }

    /// Encrypts `buf` in place and returns the tag.
    pub fn seal(&self, nonce: [u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        self.inner.seal(nonce, aad, buf)
    }

    /// Decrypts `buf` in place if `tag` authenticates it. On failure the
    /// contents of `buf` are unspecified and must not be released.
    pub fn open(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AuthFailed> {
        self.inner.open(nonce, aad, buf, tag)
    }
}

/// Name of the backend compiled in, for logs and benchmark reports.
pub const BACKEND: &str = if cfg!(feature = "backend-aws-lc") {
    "aws-lc-rs"
} else if cfg!(feature = "backend-ring") {
    "ring"
} else {
    "rustcrypto"
};
