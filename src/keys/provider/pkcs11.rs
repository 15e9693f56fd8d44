//! PKCS#11 tokens (HSMs) as a key provider, through the `cryptoki` crate.
//!
//! A KEK is encrypted inside the token with AES-256-GCM (`CKM_AES_GCM`)
//! under an AES key the token holds and will not export (`CKA_SENSITIVE`,
//! not `CKA_EXTRACTABLE`: a key the token would reveal is refused). The
//! key id is the GCM additional authenticated data, so a ciphertext moved
//! to another key file does not decrypt. The nonce is 12 bytes from the
//! token's random generator; the key file keeps
//! `pkcs11:v1:<base64 of nonce ‖ ciphertext ‖ 16-byte tag>`.
//!
//! The module (the vendor's `.so`) is loaded and initialised once per
//! process and never finalised: PKCS#11 allows one initialisation per
//! process, and a running gateway re-reads its store every `recheck_secs`.
//! Each load of the store opens one session, logs in with the PIN from
//! `pin_file`, and closes the session when done.

use super::{KeyProvider, ProviderError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::path::PathBuf;
use std::sync::Mutex;
use zeroize::Zeroizing;

/// What a wrapped key's ciphertext starts with.
const PREFIX: &str = "pkcs11:v1:";
const NONCE_LEN: usize = 12;
const TAG_BITS: u64 = 128;

/// `[pkcs11]` in `provider.toml`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// The vendor's PKCS#11 module, e.g.
    /// `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token, by its label (preferred: slot numbers can change).
    pub token_label: Option<String>,
    /// The token, by its slot id.
    pub slot: Option<u64>,
    /// The label of the AES key that wraps this store's keys.
    pub key_label: String,
    /// A file holding the user PIN (mode 0600, ours).
    pub pin_file: PathBuf,
}

/// Modules loaded and initialised in this process, by path.
static MODULES: Mutex<Vec<(PathBuf, Pkcs11)>> = Mutex::new(Vec::new());

/// PINs a token refused, by token (module and label or slot): not tried
/// again by this process (until `pin_file` holds another PIN), since every
/// wrong try counts toward the token locking its user PIN, which only its
/// security officer can undo. (A refused PIN is a wrong one: keeping it in
/// memory reveals nothing of the right one.)
static REFUSED_PINS: Mutex<Vec<(String, Zeroizing<String>)>> = Mutex::new(Vec::new());

/// The token's AES key as a [`KeyProvider`].
pub struct Pkcs11Provider {
    cfg: Pkcs11Config,
    pin: Zeroizing<String>,
    /// This load's session, logged in, and the key's handle in it.
    session: Mutex<Option<(Session, ObjectHandle)>>,
}

impl Pkcs11Provider {
    /// Reads the PIN and checks the settings; the module is not loaded yet.
    pub fn new(cfg: Pkcs11Config) -> Result<Pkcs11Provider, ProviderError> {
        if cfg.token_label.is_some() == cfg.slot.is_some() {
            return Err(ProviderError::Credentials {
                path: super::PROVIDER_FILE.into(),
                reason: "pkcs11: give token_label or slot (one of them)".into(),
            });
        }
        let pin = crate::config::secret(&None, &Some(cfg.pin_file.clone()), "pkcs11 pin_file")
            .map_err(|e| ProviderError::Credentials {
                path: cfg.pin_file.clone(),
                reason: e.to_string(),
            })?
            .unwrap_or_default();
        Ok(Pkcs11Provider {
            cfg,
            pin: Zeroizing::new(pin),
            session: Mutex::new(None),
        })
    }

    /// What errors name as the provider's address.
    fn address(&self) -> String {
        let token = match (&self.cfg.token_label, self.cfg.slot) {
            (Some(l), _) => format!("token {l:?}"),
            (None, Some(s)) => format!("slot {s}"),
            (None, None) => "no token".into(),
        };
        format!("PKCS#11 {token} of {}", self.cfg.module.display())
    }

    /// The module, loaded and initialised once per process.
    fn module(&self) -> Result<Pkcs11, ProviderError> {
        let mut modules = MODULES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, m)) = modules.iter().find(|(p, _)| *p == self.cfg.module) {
            return Ok(m.clone());
        }
        let unloadable = |e: P11Error| ProviderError::Unreachable {
            address: self.address(),
            cause: format!("the module cannot be loaded: {}", super::chain(&e)),
        };
        let m = Pkcs11::new(&self.cfg.module).map_err(unloadable)?;
        match m.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            // Another user of the module in this process initialised it.
            Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => {
                // classify may take MODULES itself.
                drop(modules);
                return Err(self.classify(e));
            }
        }
        modules.push((self.cfg.module.clone(), m.clone()));
        Ok(m)
    }

    /// The configured token's slot.
    fn slot(&self, m: &Pkcs11) -> Result<Slot, ProviderError> {
        let slots = m.get_slots_with_token().map_err(|e| self.classify(e))?;
        let found = match (&self.cfg.token_label, self.cfg.slot) {
            (Some(label), _) => {
                let mut found = Vec::new();
                for s in slots {
                    let info = m.get_token_info(s).map_err(|e| self.classify(e))?;
                    if info.label().trim_end() == label {
                        found.push(s);
                    }
                }
                if found.len() > 1 {
                    return Err(ProviderError::Rejected {
                        address: self.address(),
                        message: format!(
                            "{} tokens are labelled {label:?}; name the slot instead",
                            found.len()
                        ),
                    });
                }
                found.pop()
            }
            (None, Some(id)) => slots.into_iter().find(|s| s.id() == id),
            (None, None) => None,
        };
        found.ok_or_else(|| ProviderError::NoToken {
            address: self.address(),
        })
    }

    /// Runs `f` with this load's session, logged in, and the key.
    fn with_key<T>(
        &self,
        f: impl FnOnce(&Session, ObjectHandle) -> Result<T, P11Error>,
    ) -> Result<T, ProviderError> {
        let mut held = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_none() {
            *held = Some(self.open()?);
        }
        let (session, key) = held.as_ref().expect("opened above");
        f(session, *key).map_err(|e| self.classify(e))
    }

    /// A session on the token, logged in, and the key's handle.
    fn open(&self) -> Result<(Session, ObjectHandle), ProviderError> {
        let m = self.module()?;
        let slot = self.slot(&m)?;
        let session = m.open_ro_session(slot).map_err(|e| self.classify(e))?;
        let refused_before = REFUSED_PINS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|(token, pin)| *token == self.address() && pin.as_str() == self.pin.as_str());
        if refused_before {
            return Err(ProviderError::Denied {
                address: self.address(),
                message: "the token refused this PIN before; it is not tried again (each try counts toward locking the token): put the right PIN in pin_file".into(),
            });
        }
        let pin = AuthPin::from(self.pin.as_str());
        match session.login(UserType::User, Some(&pin)) {
            // The login state is the application's, shared by its sessions.
            Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => {
                if let P11Error::Pkcs11(RvError::PinIncorrect | RvError::PinLocked, _) = e {
                    let mut refused = REFUSED_PINS.lock().unwrap_or_else(|e| e.into_inner());
                    refused.push((self.address(), self.pin.clone()));
                }
                return Err(self.classify(e));
            }
        }
        // Only a private token object: a public one could be planted by
        // anyone who can open a session, without the PIN.
        let keys = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Label(self.cfg.key_label.as_bytes().to_vec()),
            ])
            .map_err(|e| self.classify(e))?;
        let key = match keys.as_slice() {
            [] => {
                return Err(ProviderError::UnknownKey {
                    address: self.address(),
                    key: self.cfg.key_label.clone(),
                });
            }
            [one] => *one,
            many => {
                return Err(ProviderError::Rejected {
                    address: self.address(),
                    message: format!(
                        "{} AES keys are labelled {:?}; label the root key uniquely",
                        many.len(),
                        self.cfg.key_label
                    ),
                });
            }
        };
        // Each of these must be answered and be what a key that never left
        // the token has (a value of true is asked for where possible, so a
        // zero-filled answer fails closed); and 32 bytes long.
        let attrs = session
            .get_attributes(
                key,
                &[
                    AttributeType::Sensitive,
                    AttributeType::AlwaysSensitive,
                    AttributeType::NeverExtractable,
                    AttributeType::Extractable,
                    AttributeType::ValueLen,
                ],
            )
            .map_err(|e| self.classify(e))?;
        let has = |want: &dyn Fn(&Attribute) -> bool| attrs.iter().any(want);
        let kept_inside = has(&|a| matches!(a, Attribute::Sensitive(true)))
            && has(&|a| matches!(a, Attribute::AlwaysSensitive(true)))
            && has(&|a| matches!(a, Attribute::NeverExtractable(true)))
            && has(&|a| matches!(a, Attribute::Extractable(false)));
        if !has(&|a| matches!(a, Attribute::ValueLen(l) if u64::from(*l) == 32)) {
            return Err(ProviderError::Rejected {
                address: self.address(),
                message: format!("key {:?} is not an AES-256 key", self.cfg.key_label),
            });
        }
        if !kept_inside {
            return Err(ProviderError::Exportable {
                address: self.address(),
                key: self.cfg.key_label.clone(),
            });
        }
        Ok((session, key))
    }

    /// A PKCS#11 error as what the operator must check.
    fn classify(&self, e: P11Error) -> ProviderError {
        let address = self.address();
        let P11Error::Pkcs11(rv, function) = &e else {
            return ProviderError::BadAnswer {
                address,
                reason: super::chain(&e),
            };
        };
        let message = format!("{function}: {rv:?}");
        // SoftHSM2 answers a failed GCM tag with CKR_GENERAL_ERROR.
        if matches!(function, cryptoki::context::Function::Decrypt)
            && matches!(rv, RvError::GeneralError)
        {
            return ProviderError::NotUnwrapped { address, message };
        }
        match rv {
            RvError::PinIncorrect
            | RvError::PinInvalid
            | RvError::PinLenRange
            | RvError::PinExpired
            | RvError::PinLocked
            | RvError::UserPinNotInitialized => ProviderError::Denied { address, message },
            RvError::EncryptedDataInvalid
            | RvError::EncryptedDataLenRange
            | RvError::DataInvalid
            | RvError::DataLenRange => ProviderError::NotUnwrapped { address, message },
            // The token or the path to it is down: an outage.
            RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::SessionCount
            | RvError::UserNotLoggedIn
            | RvError::DeviceRemoved
            | RvError::DeviceError
            | RvError::DeviceMemory
            | RvError::HostMemory
            | RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::FunctionFailed => ProviderError::Unreachable {
                address,
                cause: message,
            },
            // Something else in the process finalised the module: forget
            // it, so the next load initialises it again.
            RvError::CryptokiNotInitialized => {
                MODULES
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|(p, _)| *p != self.cfg.module);
                ProviderError::Unreachable {
                    address,
                    cause: message,
                }
            }
            _ => ProviderError::Rejected { address, message },
        }
    }
}

impl KeyProvider for Pkcs11Provider {
    fn kind(&self) -> &'static str {
        "pkcs11"
    }

    fn key_name(&self) -> &str {
        &self.cfg.key_label
    }

    fn wrap(&self, key: &[u8; 32], context: &str) -> Result<String, ProviderError> {
        let (nonce, sealed) = self.with_key(|session, handle| {
            let mut iv = [0u8; NONCE_LEN];
            session.generate_random_slice(&mut iv)?;
            let params = GcmParams::new(&mut iv, context.as_bytes(), TAG_BITS.into())?;
            let sealed = session.encrypt(&Mechanism::AesGcm(params), handle, key)?;
            // Some tokens (FIPS mode) choose the IV themselves and write it
            // back here: keep what the token used, not what was asked.
            Ok((iv, sealed))
        })?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", B64.encode(blob)))
    }

    fn unwrap(&self, wrapped: &str, context: &str) -> Result<Zeroizing<[u8; 32]>, ProviderError> {
        let not_ours = |why: &str| ProviderError::NotUnwrapped {
            address: self.address(),
            message: why.into(),
        };
        let blob = wrapped
            .strip_prefix(PREFIX)
            .and_then(|b| B64.decode(b).ok())
            .ok_or_else(|| not_ours("not a pkcs11:v1: ciphertext"))?;
        if blob.len() != NONCE_LEN + 32 + 16 {
            return Err(not_ours("the ciphertext has the wrong length"));
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let plain = self.with_key(|session, handle| {
            let mut iv = [0u8; NONCE_LEN];
            iv.copy_from_slice(nonce);
            let params = GcmParams::new(&mut iv, context.as_bytes(), TAG_BITS.into())?;
            session
                .decrypt(&Mechanism::AesGcm(params), handle, sealed)
                .map(Zeroizing::new)
        })?;
        if plain.len() != 32 {
            return Err(ProviderError::BadAnswer {
                address: self.address(),
                reason: format!("{} bytes, not a 32-byte key", plain.len()),
            });
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&plain);
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki::context::Function;

    fn token() -> Pkcs11Provider {
        Pkcs11Provider {
            cfg: Pkcs11Config {
                module: "/usr/lib/softhsm/libsofthsm2.so".into(),
                token_label: Some("t".into()),
                slot: None,
                key_label: "k".into(),
                pin_file: "/nonexistent".into(),
            },
            pin: Zeroizing::new(String::new()),
            session: Mutex::new(None),
        }
    }

    #[test]
    fn a_failing_token_is_an_outage_and_a_refusal_is_not() {
        use ProviderError as P;
        let t = token();
        let rv = |rv, f| t.classify(P11Error::Pkcs11(rv, f));
        for r in [
            RvError::TokenNotPresent,
            RvError::DeviceRemoved,
            RvError::DeviceError,
            RvError::SessionHandleInvalid,
        ] {
            let e = rv(r, Function::OpenSession);
            assert!(matches!(e, P::Unreachable { .. }) && e.is_outage(), "{e}");
        }
        for r in [
            RvError::PinIncorrect,
            RvError::PinLocked,
            RvError::PinExpired,
        ] {
            let e = rv(r, Function::Login);
            assert!(matches!(e, P::Denied { .. }) && !e.is_outage(), "{e}");
        }
        let e = rv(RvError::GeneralError, Function::Decrypt);
        assert!(matches!(e, P::NotUnwrapped { .. }), "{e}");
        let e = rv(RvError::KeyFunctionNotPermitted, Function::EncryptInit);
        assert!(matches!(e, P::Rejected { .. }) && !e.is_outage(), "{e}");
    }

    #[test]
    fn one_token_is_named_by_label_or_slot() {
        let both = Pkcs11Provider::new(Pkcs11Config {
            slot: Some(0),
            ..token().cfg
        });
        let e = both.err().unwrap().to_string();
        assert!(e.contains("token_label or slot"), "{e}");
    }
}
