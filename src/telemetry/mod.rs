//! What the gateway tells its operators, as types every layer may use:
//! the counters behind `/metrics` ([`Metrics`]), the id and the S3
//! operation name of a request ([`RequestId`], [`Operation`]), and the
//! `tracing` target and names of security events ([`security`]).
//!
//! It sits just above `format` and below everything else, so the layers
//! that count or cite a request (auth, front, upstream, audit) do so
//! without importing the listener or the admin endpoint that serve them.
//! Nothing here does I/O; the admin listener renders [`Metrics`] on
//! scrape and the audit log subscribes to [`security::TARGET`].

mod metrics;
mod request;
pub mod security;

pub use metrics::{LATENCY_BUCKETS, Metrics};
pub use request::{Operation, RequestId};
