//! sealgate: an S3-compatible encryption gateway.
//!
//! Applications point their S3 client at sealgate; sealgate encrypts every
//! object under keys the organization holds locally and forwards only
//! ciphertext to the storage provider, and on reads decrypts and
//! authenticates. See docs/ARCHITECTURE.md for the picture.
//!
//! # Layout
//! - [`format`]: the object format (envelope, segments, sizes); pure, no I/O.
//! - [`keys`]: the local key store on disk (KEKs by id, active key, rotation).
//! - [`cli`]: the `sealgate` command line; the only place that prints.

pub mod admin;
pub mod audit;
pub mod auth;
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
