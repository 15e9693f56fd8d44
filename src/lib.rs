//! sealgate: an S3-compatible encryption gateway.
//!
//! Applications point their S3 client at sealgate; sealgate encrypts every
//! object under keys the organization holds locally and forwards only
//! ciphertext to the storage provider, and on reads decrypts and
//! authenticates. See docs/ARCHITECTURE.md for the picture.
//!
//! # Layout
//! Top to bottom: a module uses only the modules listed below its own
//! layer (docs/ARCHITECTURE.md draws the same stack; `src/layering.rs`
//! checks it).
//! - [`cli`] (with `fuzzing`, the fuzz targets' entry points): the
//!   `sealgate` command line; the only place that prints.
//! - [`serve`]: listeners (TCP, TLS, HTTP/1.1), the s3s service, graceful
//!   shutdown, the key and policy reload on SIGHUP, background tasks.
//! - [`admin`]: the admin listener (`/health/live`, `/health/ready`,
//!   `/metrics`). [`front`]: `impl S3 for Gateway`, one file per
//!   operation family, and the one mapping of errors to S3 codes.
//! - [`auth`]: client credentials, bucket grants, key checks.
//!   [`audit`]: the hash-chained, authenticated audit log, its writer
//!   thread, webhook and anchors.
//! - [`upstream`]: the provider's S3 client, timeouts, retries, and the
//!   state bucket.
//! - [`policy`]: per-bucket mode, data location, the exception registry.
//! - [`keys`]: the key store (KEKs by id, active key, rotation,
//!   revocations, key domains and their erasure), kept as plain key files
//!   or wrapped by a key provider (`keys::provider`: OpenBao / Vault
//!   Transit, AWS KMS, PKCS#11).
//! - [`config`]: the TOML configuration with `SEALGATE_*` overrides and
//!   secret files.
//! - [`telemetry`]: metrics, request ids, operation names, security-event
//!   names: what the layers above count and cite. `chain` (crate-private):
//!   the hash-chained, MAC'd line format of the audit log and the
//!   exception registry.
//! - [`format`]: the object format (envelope, segments, sizes); pure, no
//!   I/O, uses nothing else of the crate.

pub mod admin;
pub mod audit;
pub mod auth;
mod chain;
pub mod cli;
pub mod config;
pub mod format;
pub mod front;
#[doc(hidden)]
pub mod fuzzing;
pub mod keys;
#[cfg(test)]
mod layering;
pub mod policy;
pub mod serve;
pub mod telemetry;
pub mod upstream;
