//! The client for the storage provider ("upstream"): any S3-compatible
//! endpoint, over HTTPS (rustls, system roots) or HTTP, path-style or
//! virtual-host, with the AWS SDK's retries (exponential backoff, idempotent
//! requests only — streaming uploads are never replayed) and pooled
//! connections.
//!
//! Only ciphertext and sealgate's own metadata pass through here for an
//! encrypted bucket; the front end builds every body from `format` output.
//!
//! Every provider operation is a method of [`Upstream`] taking and giving
//! sealgate's own types (as s3s-fs splits `s3.rs` from `fs.rs`): the front
//! end never sees an SDK type. By family: `object.rs` (HEAD, GET, PUT,
//! DELETE, copy, attributes), `multipart.rs`, `list.rs` (buckets and
//! listings), `state.rs` (upload records), `body.rs` (download and upload
//! bodies).

mod body;
mod keys;
mod list;
mod metrics;
mod multipart;
mod object;
mod state;

pub use body::{Body, UploadBody};
pub use list::{ListPage, ListRequest, ListedObject, ProviderBucket};
pub use multipart::{
    CompleteRequest, Completed, PartCopyRequest, PartRequest, PartsPage, ProviderPart,
    ProviderUpload, UploadsPage, UploadsRequest,
};
pub use object::{
    AttributeParts, Attributes, AttributesRequest, Checksums, Copied, CopyRequest, DeleteFailure,
    DeleteResult, Download, GetRequest, Metadata, ObjectInfo, PutOutput, PutRequest, WriteOnce,
};
pub use state::record_key;

pub use keys::{RestoreKeys, key};

use crate::config::{ConfigError, UpstreamConfig, secret};
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use std::time::Duration;

/// A connected upstream.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// The SDK client (cheap to clone; shares the connection pool),
    /// private: every provider call is a method of this module.
    client: aws_sdk_s3::Client,
    /// How long a download may go without a byte while sealgate waits.
    read_timeout: Duration,
    /// The provider bucket holding sealgate's upload records, if any.
    state_bucket: Option<String>,
}

/// An upstream call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The provider answered with an S3 error.
    #[error("upstream answered {status} {code}: {message}")]
    Service {
        /// HTTP status.
        status: u16,
        /// S3 error code (e.g. `NoSuchKey`).
        code: String,
        /// Provider's message (logged, never sent to clients).
        message: String,
    },
    /// The provider could not be reached, or the exchange broke before an
    /// answer.
    #[error("upstream unreachable: {0}")]
    Transport(String),
    /// The provider did not answer within the connect or read timeout.
    #[error("upstream unreachable: {0}")]
    Timeout(String),
    /// A download's body stopped: the provider's connection broke after
    /// the answer began.
    #[error("{0}")]
    BodyCut(String),
    /// A download's body went silent for the read timeout.
    #[error("no data from the provider for {secs} s")]
    Stalled {
        /// The read timeout, in seconds.
        secs: u64,
    },
    /// The SDK refused to build the request from its input, so nothing was
    /// sent (a value the client gave that the provider client does not
    /// take). The provider neither saw nor refused it.
    #[error("the provider client refused to build the request: {0}")]
    Construction(String),
}

impl UpstreamError {
    /// Classifies any SDK error.
    pub fn from_sdk<E, R>(e: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: HasStatus + std::fmt::Debug,
    {
        match &e {
            SdkError::ServiceError(se) => UpstreamError::Service {
                status: se.raw().status_code(),
                code: se.err().code().unwrap_or("Unknown").to_owned(),
                message: se.err().message().unwrap_or_default().to_owned(),
            },
            SdkError::ConstructionFailure(_) => UpstreamError::Construction(format!(
                "{}",
                aws_smithy_types::error::display::DisplayErrorContext(&e)
            )),
            SdkError::TimeoutError(_) => UpstreamError::Timeout(format!(
                "{}",
                aws_smithy_types::error::display::DisplayErrorContext(&e)
            )),
            _ => UpstreamError::Transport(format!(
                "{}",
                aws_smithy_types::error::display::DisplayErrorContext(&e)
            )),
        }
    }

    /// HTTP status of a service error.
    pub fn status(&self) -> Option<u16> {
        match self {
            UpstreamError::Service { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// S3 code of a service error.
    pub fn code(&self) -> Option<&str> {
        match self {
            UpstreamError::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The provider answered 404 for an object or upload (not for the
    /// bucket: `NoSuchBucket`).
    pub fn is_missing(&self) -> bool {
        self.status() == Some(404) && self.code() != Some("NoSuchBucket")
    }
}

/// Gives access to the HTTP status of a raw response.
pub trait HasStatus {
    /// The status code.
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

impl Upstream {
    /// Builds the client from configuration; credentials from the config
    /// or, when absent, from the standard AWS environment and profile chain.
    /// Every attempt at a provider request is counted in `metrics`.
    pub async fn connect(
        cfg: &UpstreamConfig,
        metrics: Option<std::sync::Arc<crate::telemetry::Metrics>>,
    ) -> Result<Upstream, ConfigError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()))
            .endpoint_url(&cfg.endpoint);
        let secret_key = secret(&cfg.secret_key, &cfg.secret_key_file, "upstream.secret_key")?;
        match (&cfg.access_key, secret_key) {
            (Some(ak), Some(sk)) => {
                loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                    ak.clone(),
                    sk,
                    None,
                    None,
                    "sealgate-config",
                ));
            }
            (None, None) => {}
            _ => {
                return Err(ConfigError::Invalid(
                    "upstream: give both access_key and secret_key, or neither (to use AWS_* environment variables)".into(),
                ));
            }
        }
        if let Some(ca) = &cfg.ca_file {
            loader = loader.http_client(https_client_with_ca(ca)?);
        }
        let shared = loader.load().await;
        let read_timeout = Duration::from_secs(cfg.read_timeout_secs.max(1));
        let mut conf = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(cfg.path_style)
            // Checksums of ciphertext are the provider's business only when
            // it requires them; plaintext checksums are verified by sealgate.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            // A provider that stalls must not hold requests forever: reads
            // time out (and are retried); uploads opt out, see
            // `long_running`.
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs.max(1)))
                    .read_timeout(read_timeout)
                    .build(),
            );
        // Keys the SDK would refuse (whitespace only) travel as placeholders.
        conf = conf.interceptor(RestoreKeys);
        if let Some(m) = metrics {
            conf = conf.interceptor(metrics::UpstreamMetrics(m));
        }
        let conf = conf.build();
        Ok(Upstream {
            client: aws_sdk_s3::Client::from_conf(conf),
            read_timeout,
            state_bucket: cfg.state_bucket.clone(),
        })
    }

    /// How long the provider may stay silent while sealgate waits for it.
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }
}

/// An SDK timestamp as a `time` one.
fn time(t: &aws_smithy_types::DateTime) -> Option<time::OffsetDateTime> {
    let nanos = i128::from(t.secs()) * 1_000_000_000 + i128::from(t.subsec_nanos());
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// Per-request settings for uploads, copies and completions: the provider
/// answers those only after taking the whole body or doing the server-side
/// work, which can rightly take longer than the read timeout, so the SDK
/// must not apply it from the start. Uploads get their own answer timer
/// once the last byte is queued (`front::put::stream_part`); copies and
/// completions are bounded by the client's timeout.
fn long_running() -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::new()
        .timeout_config(TimeoutConfig::builder().disable_read_timeout().build())
}

/// An HTTPS client trusting the system roots plus the CA certificates in
/// `ca_file` (PEM). The file is checked here so a bad bundle stops startup
/// with its name, not the first request.
fn https_client_with_ca(
    ca_file: &std::path::Path,
) -> Result<aws_sdk_s3::config::SharedHttpClient, ConfigError> {
    use aws_smithy_http_client::tls;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(ca_file).map_err(|source| ConfigError::Read {
        path: ca_file.to_owned(),
        source,
    })?;
    let bad = |why: String| {
        ConfigError::Invalid(format!("upstream.ca_file {}: {why}", ca_file.display()))
    };
    let count = CertificateDer::pem_slice_iter(&pem)
        .try_fold(0usize, |n, c| c.map(|_| n + 1))
        .map_err(|e| bad(e.to_string()))?;
    if count == 0 {
        return Err(bad("no PEM certificate found".into()));
    }
    let trust = tls::TrustStore::default()
        .with_native_roots(true)
        .with_pem_certificate(pem);
    let ctx = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(ctx)
        .build_https())
}
