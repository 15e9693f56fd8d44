//! Security events: `tracing` events under [`TARGET`], each with an
//! `event` field naming it. The audit log appends every one of them
//! (docs/INCIDENTS.md), `/metrics` counts them by name, and the webhook
//! sends the incidents among them.

/// The `tracing` target whose events are audited.
pub const TARGET: &str = "sealgate::security";

/// Security events that mean stored data failed to decrypt or
/// authenticate; summed into `sealgate_decryption_failures_total`.
pub const DECRYPTION_FAILURES: [&str; 4] = [
    "integrity_failure",
    "unknown_key",
    "revoked_key_used",
    "bad_upload_id",
];
