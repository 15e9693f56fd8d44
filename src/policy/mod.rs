//! Policy and exceptions: which buckets may hold unencrypted data, and the
//! formal decisions (exceptions) that allow it.
//!
//! Encryption is the default for every bucket. Passthrough needs a
//! registered, unexpired, unrevoked exception, kept in an append-only,
//! hash-chained, authenticated registry (docs/EXCEPTIONS.md).

pub mod registry;
