//! Counting provider requests as the SDK makes them: every attempt (so
//! retries show), its outcome and how long it took, by S3 operation.
//!
//! An SDK interceptor sees each attempt, including the retries the SDK's
//! retry strategy makes, which a wrapper around our own calls could not.

use crate::telemetry::Metrics;
use aws_sdk_s3::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use std::sync::Arc;
use std::time::Instant;

/// The interceptor feeding [`Metrics::upstream_attempt`].
#[derive(Debug)]
pub(super) struct UpstreamMetrics(pub(super) Arc<Metrics>);

/// When the current attempt was sent.
#[derive(Debug, Clone)]
struct AttemptStarted(Instant);

impl Storable for AttemptStarted {
    type Storer = StoreReplace<Self>;
}

impl Intercept for UpstreamMetrics {
    fn name(&self) -> &'static str {
        "sealgate-upstream-metrics"
    }

    fn read_before_attempt(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state()
            .store_put(AttemptStarted(Instant::now()));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let seconds = cfg
            .load::<AttemptStarted>()
            .map(|s| s.0.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        let operation = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let retry = cfg
            .load::<RequestAttempts>()
            .is_some_and(|a| a.attempts() > 1);
        let outcome = match ctx.response() {
            Some(r) => match r.status().as_u16() {
                200..=299 => "2xx",
                300..=399 => "3xx",
                400..=499 => "4xx",
                _ => "5xx",
            },
            None => "transport",
        };
        // Body bytes the provider announced (what a GET fetched; a HEAD
        // announces the object's length but sends no body).
        let body = ctx
            .response()
            .filter(|_| operation != "HeadObject")
            .and_then(|r| r.headers().get("content-length"))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        self.0.upstream_attempt(&operation, outcome, seconds, retry);
        self.0.upstream_received(body);
        Ok(())
    }
}
