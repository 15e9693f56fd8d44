//! The integration tests: one binary, one module per suite (the model is
//! s3s's tests/aws/main.rs). Each module was a separate test binary before
//! issue 16; its name is unchanged, so `cargo nextest run -E 'test(/^faults::/)'`
//! or `cargo test --test it faults::` runs one suite, and a test's full name
//! (`faults::upstream_reset_mid_get`, say) runs one case. docs/TESTING.md
//! lists where each suite lives and how to drive it.
//!
//! Shared helpers: `common` (format tests) and `gw_common` (a gateway over
//! s3s-fs, clients, processes, the fault proxy, security-event capture).

mod common;
mod gw_common;

mod admin;
mod audit_cli;
mod audit_records;
mod aws_kms;
mod checksums;
mod client_ip;
mod config_cli;
mod copy_conditional;
mod crash;
mod cryptoperiod;
mod exception_cli;
mod faults;
mod format_roundtrip;
mod format_tamper;
mod fuzz_corpus;
mod gateway;
mod hostile_clients;
mod key_store_trust;
mod load;
mod logging;
mod multipart;
mod multipart_ranges;
mod passthrough;
mod pkcs11;
mod protections;
mod provider_refusals;
mod provider_tamper;
mod registry_history;
mod s3_details;
mod s3_edges;
mod shutdown;
mod slow_clients;
mod smuggling;
mod tls;
mod transit;
mod vectors;
mod write_timeout;
