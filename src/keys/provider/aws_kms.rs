//! AWS KMS as a key provider, through the AWS SDK for Rust.
//!
//! A KEK is sent to `Encrypt` under the configured KMS key and kept as the
//! ciphertext blob KMS returns (base64 in the key file); its key id goes
//! along as the encryption context `{"sealgate": "sealgate-kek/1 <id>"}`,
//! which KMS authenticates and records in CloudTrail. Unwrapping is
//! `Decrypt` with the same context and the key named, so a blob made under
//! another KMS key is refused rather than decrypted with it. The KMS key
//! never leaves KMS. Credentials and region come from the usual AWS chain
//! (environment, shared config and credentials files with an optional
//! profile, web identity, ECS and EC2 instance roles).

use super::{KeyProvider, ProviderError, chain, run};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_smithy_runtime_api::client::endpoint::error::ResolveEndpointError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::time::Duration;
use zeroize::Zeroizing;

/// The encryption-context key under which the wrapping's context is sent.
const CONTEXT_KEY: &str = "sealgate";

/// `[aws_kms]` in `provider.toml`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsKmsConfig {
    /// The KMS key: its id, ARN, alias (`alias/sealgate-root`) or alias
    /// ARN. Recorded in each key file; a file wrapped under another is
    /// refused.
    pub key_id: String,
    /// The region; otherwise the chain's (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// A profile of the shared config files; otherwise the chain's.
    pub profile: Option<String>,
    /// Another endpoint (a VPC endpoint, a KMS-compatible server):
    /// `https://`, or `http://` to a loopback address only.
    pub endpoint_url: Option<String>,
    /// Seconds a call may take before the provider counts as unreachable.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_timeout() -> u64 {
    10
}

/// A KMS key as a [`KeyProvider`].
pub struct AwsKms {
    cfg: AwsKmsConfig,
}

impl AwsKms {
    /// Checks the settings; nothing is sent yet.
    pub fn new(cfg: AwsKmsConfig) -> Result<AwsKms, ProviderError> {
        if let Some(url) = &cfg.endpoint_url {
            super::check_address("aws_kms endpoint_url", url)?;
        }
        if cfg.key_id.trim().is_empty() {
            return Err(ProviderError::Credentials {
                path: super::PROVIDER_FILE.into(),
                reason: "aws_kms key_id is empty".into(),
            });
        }
        Ok(AwsKms { cfg })
    }

    /// What errors name as the provider's address.
    fn address(&self) -> String {
        match (&self.cfg.endpoint_url, &self.cfg.region) {
            (Some(u), _) => u.clone(),
            (None, Some(r)) => format!("AWS KMS in {r}"),
            (None, None) => "AWS KMS".into(),
        }
    }

    /// A client for one call. Made per call, on that call's runtime: an SDK
    /// client's connection pool must not outlive the runtime that made it
    /// (each call runs on a runtime of its own, see [`run`]).
    async fn client(&self) -> Result<aws_sdk_kms::Client, ProviderError> {
        let timeout = Duration::from_secs(self.cfg.timeout_secs);
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(timeout)
                    .operation_timeout(timeout)
                    .build(),
            );
        if let Some(r) = &self.cfg.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(p) = &self.cfg.profile {
            loader = loader.profile_name(p);
        }
        let shared = loader.load().await;
        if shared.region().is_none() {
            return Err(ProviderError::Credentials {
                path: super::PROVIDER_FILE.into(),
                reason: "aws_kms: no region (set region, AWS_REGION or the profile's region)"
                    .into(),
            });
        }
        let mut conf = aws_sdk_kms::config::Builder::from(&shared);
        // Only provider.toml says where keys are sent: AWS_ENDPOINT_URL,
        // AWS_ENDPOINT_URL_KMS and a profile's endpoint_url are not taken
        // (they could send every new KEK to a plain-http endpoint).
        conf.set_endpoint_url(self.cfg.endpoint_url.clone());
        Ok(aws_sdk_kms::Client::from_conf(conf.build()))
    }

    /// An SDK error as what the operator must check.
    fn classify<E>(&self, e: SdkError<E, aws_sdk_kms::config::http::HttpResponse>) -> ProviderError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let address = self.address();
        let code = e.code().unwrap_or_default().to_owned();
        let message = e.message().unwrap_or_default().to_owned();
        let status = e.raw_response().map(|r| r.status().as_u16());
        let words = if message.is_empty() {
            code.clone()
        } else {
            format!("{code}: {message}")
        };
        match &e {
            SdkError::TimeoutError(_) => {
                return ProviderError::Unreachable {
                    address,
                    cause: format!("no answer within {} s", self.cfg.timeout_secs),
                };
            }
            // Credentials are resolved before the request is sent, and
            // their failures surface here too: none to be found, or a
            // configuration that cannot give any, is the operator's to fix
            // (a refusal); the instance role's or STS's endpoint timing out
            // or failing is an outage like KMS's own.
            SdkError::DispatchFailure(_) => {
                let endpoint = source_of::<ResolveEndpointError>(&e).is_some();
                return match source_of::<CredentialsError>(&e) {
                    // Only a credential source that did not answer in time
                    // is an outage; any answer it gave (an STS or SSO
                    // refusal, a failing credential_process) fails closed.
                    Some(CredentialsError::ProviderTimedOut(_)) => ProviderError::Unreachable {
                        address,
                        cause: chain(&e),
                    },
                    Some(_) => ProviderError::Credentials {
                        path: super::PROVIDER_FILE.into(),
                        reason: format!("aws_kms: {}", chain(&e)),
                    },
                    // A region or endpoint the SDK cannot resolve is the
                    // configuration's to fix.
                    None if endpoint => ProviderError::Credentials {
                        path: super::PROVIDER_FILE.into(),
                        reason: format!("aws_kms: {}", chain(&e)),
                    },
                    None => ProviderError::Unreachable {
                        address,
                        cause: chain(&e),
                    },
                };
            }
            SdkError::ConstructionFailure(_) => {
                return ProviderError::Credentials {
                    path: super::PROVIDER_FILE.into(),
                    reason: format!("aws_kms: {}", chain(&e)),
                };
            }
            _ => {}
        }
        match code.as_str() {
            "NotFoundException" => ProviderError::UnknownKey {
                address,
                key: self.cfg.key_id.clone(),
            },
            "DisabledException" | "KMSInvalidStateException" => ProviderError::Disabled {
                address,
                key: self.cfg.key_id.clone(),
                message: words,
            },
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignature"
            | "InvalidClientTokenId"
            | "ExpiredTokenException"
            | "MissingAuthenticationToken" => ProviderError::Denied {
                address,
                message: words,
            },
            "InvalidCiphertextException" | "IncorrectKeyException" => ProviderError::NotUnwrapped {
                address,
                message: words,
            },
            "ThrottlingException"
            | "KMSInternalException"
            | "DependencyTimeoutException"
            | "ServiceUnavailableException"
            | "InternalFailure" => ProviderError::Unavailable {
                address,
                status: status.unwrap_or(503),
                message: words,
            },
            _ => match status {
                Some(s @ 500..=599) => ProviderError::Unavailable {
                    address,
                    status: s,
                    message: words,
                },
                Some(s) => ProviderError::Refused {
                    address,
                    status: s,
                    message: words,
                },
                None => ProviderError::BadAnswer {
                    address,
                    reason: chain(&e),
                },
            },
        }
    }
}

/// The error of type `T` behind `e` (itself or a source), if any.
fn source_of<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(found) = c.downcast_ref::<T>() {
            return Some(found);
        }
        cur = c.source();
    }
    None
}

impl KeyProvider for AwsKms {
    fn kind(&self) -> &'static str {
        "aws_kms"
    }

    fn key_name(&self) -> &str {
        &self.cfg.key_id
    }

    fn wrap(&self, key: &[u8; 32], context: &str) -> Result<String, ProviderError> {
        let blob = run(async {
            let c = self.client().await?;
            c.encrypt()
                .key_id(&self.cfg.key_id)
                .plaintext(Blob::new(key.to_vec()))
                .encryption_context(CONTEXT_KEY, context)
                .send()
                .await
                .map_err(|e| self.classify(e))
        })?
        .ciphertext_blob
        .ok_or_else(|| ProviderError::BadAnswer {
            address: self.address(),
            reason: "Encrypt returned no ciphertext".into(),
        })?;
        Ok(B64.encode(blob.as_ref()))
    }

    fn destroy(&self) -> Result<String, ProviderError> {
        // KMS deletes keys only after a waiting period (7 to 30 days);
        // the shortest is asked for, and the key is unusable from now on.
        run(async {
            let c = self.client().await?;
            // ScheduleKeyDeletion takes no alias: resolve it to the key.
            let key = c
                .describe_key()
                .key_id(&self.cfg.key_id)
                .send()
                .await
                .map_err(|e| self.classify(e))?
                .key_metadata
                .map(|m| m.key_id)
                .ok_or_else(|| ProviderError::BadAnswer {
                    address: self.address(),
                    reason: "DescribeKey returned no key".into(),
                })?;
            let scheduled = c
                .schedule_key_deletion()
                .key_id(&key)
                .pending_window_in_days(7)
                .send()
                .await;
            if let Err(e) = scheduled {
                match self.classify(e) {
                    // Already pending deletion (or gone): confirmed below.
                    ProviderError::Disabled { .. } | ProviderError::UnknownKey { .. } => {}
                    other => return Err(other),
                }
            }
            let meta = c
                .describe_key()
                .key_id(&key)
                .send()
                .await
                .map_err(|e| self.classify(e))?
                .key_metadata;
            let state = meta.as_ref().and_then(|m| m.key_state.clone());
            let when = meta.as_ref().and_then(|m| m.deletion_date);
            match state {
                Some(aws_sdk_kms::types::KeyState::PendingDeletion) => Ok(format!(
                    "{}: KMS key {} is PendingDeletion, deleted for good at {}; until then no Decrypt succeeds (CancelKeyDeletion would undo it)",
                    self.address(),
                    key,
                    when.map(|d| d.to_string())
                        .unwrap_or_else(|| "an unstated time".into())
                )),
                other => Err(ProviderError::BadAnswer {
                    address: self.address(),
                    reason: format!(
                        "after ScheduleKeyDeletion the key is {other:?}, not PendingDeletion"
                    ),
                }),
            }
        })
    }

    fn unwrap(&self, wrapped: &str, context: &str) -> Result<Zeroizing<[u8; 32]>, ProviderError> {
        let blob = B64
            .decode(wrapped)
            .map_err(|_| ProviderError::NotUnwrapped {
                address: self.address(),
                message: "the ciphertext is not base64".into(),
            })?;
        let plaintext = run(async {
            let c = self.client().await?;
            c.decrypt()
                .key_id(&self.cfg.key_id)
                .ciphertext_blob(Blob::new(blob))
                .encryption_context(CONTEXT_KEY, context)
                .send()
                .await
                .map_err(|e| self.classify(e))
        })?
        .plaintext
        .map(|b| Zeroizing::new(b.into_inner()))
        .ok_or_else(|| ProviderError::BadAnswer {
            address: self.address(),
            reason: "Decrypt returned no plaintext".into(),
        })?;
        let mut key = Zeroizing::new([0u8; 32]);
        if plaintext.len() != 32 {
            return Err(ProviderError::BadAnswer {
                address: self.address(),
                reason: format!("{} bytes, not a 32-byte key", plaintext.len()),
            });
        }
        key.copy_from_slice(&plaintext);
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kms::error::ErrorMetadata;
    use aws_sdk_kms::operation::decrypt::DecryptError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;

    fn kms() -> AwsKms {
        AwsKms::new(AwsKmsConfig {
            key_id: "alias/root".into(),
            region: Some("eu-central-1".into()),
            profile: None,
            endpoint_url: None,
            timeout_secs: 3,
        })
        .unwrap()
    }

    /// What KMS's answer `code` with `status` is taken for.
    fn answer(code: &str, status: u16) -> ProviderError {
        let err = DecryptError::generic(ErrorMetadata::builder().code(code).message("m").build());
        let raw = Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        kms().classify(SdkError::service_error(err, raw))
    }

    #[test]
    fn each_kms_error_is_named_and_only_outages_are_borne() {
        use ProviderError as P;
        for (code, status) in [
            ("DisabledException", 400),
            ("KMSInvalidStateException", 400),
        ] {
            let e = answer(code, status);
            assert!(matches!(e, P::Disabled { .. }), "{code}: {e}");
            assert!(!e.is_outage(), "{code}");
        }
        assert!(matches!(
            answer("NotFoundException", 400),
            P::UnknownKey { .. }
        ));
        for code in [
            "AccessDeniedException",
            "UnrecognizedClientException",
            "InvalidSignatureException",
            "ExpiredTokenException",
        ] {
            assert!(matches!(answer(code, 400), P::Denied { .. }), "{code}");
        }
        for code in ["InvalidCiphertextException", "IncorrectKeyException"] {
            assert!(
                matches!(answer(code, 400), P::NotUnwrapped { .. }),
                "{code}"
            );
        }
        for (code, status) in [
            ("ThrottlingException", 400),
            ("KMSInternalException", 500),
            ("DependencyTimeoutException", 503),
            ("SomethingNew", 502),
        ] {
            let e = answer(code, status);
            assert!(matches!(e, P::Unavailable { .. }), "{code}: {e}");
            assert!(e.is_outage(), "{code}");
        }
        assert!(matches!(
            answer("SomethingNew", 400),
            P::Refused { status: 400, .. }
        ));
        let io = kms().classify(SdkError::<DecryptError, _>::dispatch_failure(
            ConnectorError::io("connection refused".into()),
        ));
        assert!(
            matches!(io, P::Unreachable { .. }) && io.is_outage(),
            "{io}"
        );
        let late = kms().classify(SdkError::<DecryptError, _>::timeout_error("late"));
        assert!(matches!(late, P::Unreachable { .. }), "{late}");
        // The credential chain: nothing to be found is the operator's to
        // fix; the instance role's endpoint timing out is an outage.
        let creds = kms().classify(SdkError::<DecryptError, _>::dispatch_failure(
            ConnectorError::other(
                Box::new(CredentialsError::not_loaded("no credentials in the chain")),
                None,
            ),
        ));
        assert!(matches!(creds, P::Credentials { .. }), "{creds}");
        assert!(!creds.is_outage());
        let imds = kms().classify(SdkError::<DecryptError, _>::dispatch_failure(
            ConnectorError::other(
                Box::new(CredentialsError::provider_timed_out(Duration::from_secs(1))),
                None,
            ),
        ));
        assert!(
            matches!(imds, P::Unreachable { .. }) && imds.is_outage(),
            "{imds}"
        );
        let sts = kms().classify(SdkError::<DecryptError, _>::dispatch_failure(
            ConnectorError::other(
                Box::new(CredentialsError::provider_error(
                    "AccessDenied: not allowed to assume the role",
                )),
                None,
            ),
        ));
        assert!(
            matches!(sts, P::Credentials { .. }) && !sts.is_outage(),
            "{sts}"
        );
        let gone = kms().classify(SdkError::<DecryptError, _>::dispatch_failure(
            ConnectorError::user("dispatch task gone".into()),
        ));
        assert!(gone.is_outage(), "{gone}");
    }

    #[test]
    fn keys_cross_only_tls_or_loopback() {
        let cfg = |url: &str| {
            AwsKms::new(AwsKmsConfig {
                key_id: "k".into(),
                region: None,
                profile: None,
                endpoint_url: Some(url.into()),
                timeout_secs: 3,
            })
        };
        assert!(cfg("https://kms.eu-central-1.amazonaws.com").is_ok());
        assert!(cfg("http://127.0.0.1:5000").is_ok());
        let e = cfg("http://kms.example").err().unwrap().to_string();
        assert!(e.contains("aws_kms endpoint_url"), "{e}");
    }
}
