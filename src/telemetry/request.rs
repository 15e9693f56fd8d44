//! Per-request values the listener creates and the layers below read back
//! from the request's extensions.

use std::sync::{Arc, OnceLock};

/// The S3 operation a request resolved to, set by the access check
/// ([`crate::auth::Grants`]) and read back for metrics. Unset when the
/// request never got that far.
#[derive(Debug, Clone, Default)]
pub struct Operation(Arc<OnceLock<String>>);

impl Operation {
    /// Records the operation's name (first call wins).
    pub fn set(&self, name: &str) {
        let _ = self.0.set(name.to_owned());
    }

    /// The recorded name.
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// The id of one client request (16 hex digits), carried in the request's
/// extensions so handlers can cite it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// A fresh random id.
    pub(crate) fn new() -> RequestId {
        use crate::format::RandomSource;
        let mut b = [0u8; 8];
        let _ = crate::format::OsRandom.fill(&mut b);
        RequestId(hex::encode_upper(b))
    }
}
