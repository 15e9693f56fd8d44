//! OpenBao / HashiCorp Vault Transit as a key provider, through the
//! `vaultrs` client.
//!
//! A KEK is sent to `transit/encrypt/<key>` and kept as the ciphertext
//! Transit returns; its key id goes along as `associated_data`, which
//! Transit's AES-GCM keys authenticate. Unwrapping is
//! `transit/decrypt/<key>` with the same context. Transit's root key never
//! leaves it. Credentials: a token file, an AppRole (role id and a secret
//! id file), or `BAO_TOKEN` / `VAULT_TOKEN`.

use super::{KeyProvider, ProviderError, chain, run};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::path::PathBuf;
use std::time::Duration;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use zeroize::Zeroizing;

/// `[transit]` in `provider.toml`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitConfig {
    /// The server, e.g. `https://bao.example:8200`.
    pub address: String,
    /// Where the Transit engine is mounted.
    #[serde(default = "default_mount")]
    pub mount: String,
    /// The Transit key that wraps this store's keys.
    pub key: String,
    /// A file holding the token (mode 0600, ours).
    pub token_file: Option<PathBuf>,
    /// AppRole login instead of a token.
    pub approle: Option<AppRole>,
    /// CA certificate(s) to trust for the server's TLS certificate (PEM).
    pub ca_file: Option<PathBuf>,
    /// Vault Enterprise / OpenBao namespace.
    pub namespace: Option<String>,
    /// Seconds a call may take before the provider counts as unreachable.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

/// AppRole credentials.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRole {
    /// Where the AppRole method is mounted.
    #[serde(default = "default_approle_mount")]
    pub mount: String,
    /// The role id (not secret).
    pub role_id: String,
    /// A file holding the secret id (mode 0600, ours).
    pub secret_id_file: PathBuf,
}

fn default_mount() -> String {
    "transit".into()
}

fn default_approle_mount() -> String {
    "approle".into()
}

fn default_timeout() -> u64 {
    10
}

/// How the provider logs in.
enum Login {
    Token(Zeroizing<String>),
    AppRole {
        mount: String,
        role_id: String,
        secret_id: Zeroizing<String>,
    },
}

/// A Transit key as a [`KeyProvider`].
pub struct Transit {
    cfg: TransitConfig,
    login: Login,
    /// The token of this provider's AppRole login, once logged in (a
    /// provider lives for one load of the store).
    session: std::sync::Mutex<Option<Zeroizing<String>>>,
}

impl Transit {
    /// Reads the credentials; nothing is sent yet.
    pub fn new(cfg: TransitConfig) -> Result<Transit, ProviderError> {
        let read = |path: &PathBuf, what: &str| {
            crate::config::secret(&None, &Some(path.clone()), what)
                .map_err(|e| ProviderError::Credentials {
                    path: path.clone(),
                    reason: e.to_string(),
                })
                .map(|s| Zeroizing::new(s.unwrap_or_default()))
        };
        let login = match (&cfg.token_file, &cfg.approle) {
            (Some(_), Some(_)) => {
                return Err(ProviderError::Credentials {
                    path: super::PROVIDER_FILE.into(),
                    reason: "give token_file or [transit.approle], not both".into(),
                });
            }
            (Some(p), None) => Login::Token(read(p, "transit token_file")?),
            (None, Some(a)) => Login::AppRole {
                mount: a.mount.clone(),
                role_id: a.role_id.clone(),
                secret_id: read(&a.secret_id_file, "transit approle secret_id_file")?,
            },
            (None, None) => {
                match std::env::var("BAO_TOKEN").or_else(|_| std::env::var("VAULT_TOKEN")) {
                    Ok(t) => Login::Token(Zeroizing::new(t)),
                    Err(_) => {
                        return Err(ProviderError::Credentials {
                        path: super::PROVIDER_FILE.into(),
                        reason: "no credentials: set token_file or [transit.approle], or BAO_TOKEN / VAULT_TOKEN".into(),
                    });
                    }
                }
            }
        };
        super::check_address("transit address", &cfg.address)?;
        Ok(Transit {
            cfg,
            login,
            session: std::sync::Mutex::new(None),
        })
    }

    /// A client logged in with this provider's credentials.
    async fn client(&self) -> Result<VaultClient, ProviderError> {
        // Every setting is given: vaultrs would otherwise take VAULT_ADDR,
        // VAULT_CACERT, VAULT_CAPATH, VAULT_CLIENT_CERT and, worst,
        // VAULT_SKIP_VERIFY from the environment. Certificates are always
        // verified.
        let mut settings = VaultClientSettingsBuilder::default();
        settings
            .address(&self.cfg.address)
            .timeout(Some(Duration::from_secs(self.cfg.timeout_secs)))
            .verify(true)
            .identity(None)
            .ca_certs(
                self.cfg
                    .ca_file
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            );
        match &self.login {
            Login::Token(t) => settings.token(t.as_str()),
            // A token from this load's AppRole login, or none yet (then
            // the login below), never the environment's.
            Login::AppRole { .. } => settings.token(
                self.session
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_deref()
                    .map_or("", |s| s.as_str()),
            ),
        };
        if let Some(ns) = &self.cfg.namespace {
            settings.namespace(Some(ns.clone()));
        }
        let settings = settings.build().map_err(|e| ProviderError::BadAnswer {
            address: self.cfg.address.clone(),
            reason: format!("settings refused: {e}"),
        })?;
        let mut client = VaultClient::new(settings).map_err(|e| self.classify(e))?;
        if let Login::AppRole {
            mount,
            role_id,
            secret_id,
        } = &self.login
            && self
                .session
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none()
        {
            // A wrong role or secret id is a 400 to AppRole: still a
            // refusal of the credentials.
            let auth = vaultrs::auth::approle::login(&client, mount, role_id, secret_id)
                .await
                .map_err(|e| match self.classify(e) {
                    ProviderError::Refused {
                        status: 400,
                        message,
                        address,
                    } => ProviderError::Denied { address, message },
                    other => other,
                })?;
            vaultrs::client::Client::set_token(&mut client, &auth.client_token);
            // One login per load of the store, not one per key.
            *self.session.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Zeroizing::new(auth.client_token));
        }
        Ok(client)
    }

    /// A `vaultrs` error as what the operator must check.
    fn classify(&self, e: ClientError) -> ProviderError {
        let address = self.cfg.address.clone();
        match e {
            ClientError::APIError { code, errors } => {
                let message = errors.join("; ");
                let lower = message.to_ascii_lowercase();
                match code {
                    503 if lower.contains("sealed") => ProviderError::Sealed { address },
                    // Standby nodes, failovers, rate limits: the provider is
                    // there but cannot answer now.
                    429 | 500..=599 => ProviderError::Unavailable {
                        address,
                        status: code,
                        message,
                    },
                    401 | 403 => ProviderError::Denied { address, message },
                    400 | 404
                        if lower.contains("key not found") || lower.contains("no existing key") =>
                    {
                        ProviderError::UnknownKey {
                            address,
                            key: self.cfg.key.clone(),
                        }
                    }
                    _ => ProviderError::Refused {
                        address,
                        status: code,
                        message,
                    },
                }
            }
            ClientError::RestClientError { source } => ProviderError::Unreachable {
                address,
                cause: chain(&source),
            },
            other => ProviderError::BadAnswer {
                address,
                reason: chain(&other),
            },
        }
    }
}

impl Drop for Transit {
    /// An AppRole login's token is revoked when the load that made it is
    /// done: it could unwrap every key until its TTL, and nothing needs it
    /// any more (the next load logs in again).
    fn drop(&mut self) {
        let logged_in = self
            .session
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if !logged_in {
            return;
        }
        // The client carries the login's token (no new login).
        let revoked = run(async {
            let c = self.client().await?;
            vaultrs::token::revoke_self(&c)
                .await
                .map_err(|e| self.classify(e))
        });
        if let Err(why) = revoked {
            tracing::warn!(provider = "transit", error = %why, "the AppRole login's token could not be revoked; it lapses at its TTL");
        }
    }
}

impl KeyProvider for Transit {
    fn kind(&self) -> &'static str {
        "transit"
    }

    fn key_name(&self) -> &str {
        &self.cfg.key
    }

    fn wrap(&self, key: &[u8; 32], context: &str) -> Result<String, ProviderError> {
        let plaintext = Zeroizing::new(B64.encode(key));
        let aad = B64.encode(context);
        run(async {
            let c = self.client().await?;
            // Transit creates a missing key on encrypt when the policy
            // allows it: a misspelt name must not make a new root key.
            vaultrs::transit::key::read(&c, &self.cfg.mount, &self.cfg.key)
                .await
                .map_err(|e| match self.classify(e) {
                    ProviderError::Refused { status: 404, .. } => ProviderError::UnknownKey {
                        address: self.cfg.address.clone(),
                        key: self.cfg.key.clone(),
                    },
                    other => other,
                })?;
            let mut opts = vaultrs::api::transit::requests::EncryptDataRequest::builder();
            opts.associated_data(aad);
            vaultrs::transit::data::encrypt(
                &c,
                &self.cfg.mount,
                &self.cfg.key,
                &plaintext,
                Some(&mut opts),
            )
            .await
            .map(|r| r.ciphertext)
            .map_err(|e| self.classify(e))
        })
    }

    fn destroy(&self) -> Result<String, ProviderError> {
        run(async {
            let c = self.client().await?;
            let gone = |e: ClientError| match self.classify(e) {
                ProviderError::Refused { status: 404, .. } => Ok(()),
                other => Err(other),
            };
            let mut opts =
                vaultrs::api::transit::requests::UpdateKeyConfigurationRequest::builder();
            opts.deletion_allowed(true);
            let existed = match vaultrs::transit::key::update(
                &c,
                &self.cfg.mount,
                &self.cfg.key,
                Some(&mut opts),
            )
            .await
            {
                Ok(()) => true,
                Err(e) => {
                    gone(e)?;
                    false
                }
            };
            if existed {
                vaultrs::transit::key::delete(&c, &self.cfg.mount, &self.cfg.key)
                    .await
                    .or_else(gone)?;
            }
            // Proof by asking: the key must be unknown now.
            match vaultrs::transit::key::read(&c, &self.cfg.mount, &self.cfg.key).await {
                Ok(_) => Err(ProviderError::BadAnswer {
                    address: self.cfg.address.clone(),
                    reason: "the key is still there after DELETE".into(),
                }),
                Err(e) => {
                    gone(e)?;
                    Ok(format!(
                        "{}: transit key {:?} on mount {:?} {}; a read of it now answers 404",
                        self.cfg.address,
                        self.cfg.key,
                        self.cfg.mount,
                        if existed {
                            "deleted (deletion_allowed set, DELETE accepted)"
                        } else {
                            "was already absent"
                        }
                    ))
                }
            }
        })
    }

    fn unwrap(&self, wrapped: &str, context: &str) -> Result<Zeroizing<[u8; 32]>, ProviderError> {
        let aad = B64.encode(context);
        let plaintext = run(async {
            let c = self.client().await?;
            let mut opts = vaultrs::api::transit::requests::DecryptDataRequest::builder();
            opts.associated_data(aad);
            vaultrs::transit::data::decrypt(
                &c,
                &self.cfg.mount,
                &self.cfg.key,
                wrapped,
                Some(&mut opts),
            )
            .await
            .map(|r| Zeroizing::new(r.plaintext))
            .map_err(|e| match self.classify(e) {
                ProviderError::Refused {
                    status: 400,
                    message,
                    address,
                } => ProviderError::NotUnwrapped { address, message },
                other => other,
            })
        })?;
        let bytes = Zeroizing::new(B64.decode(plaintext.as_bytes()).map_err(|_| {
            ProviderError::BadAnswer {
                address: self.cfg.address.clone(),
                reason: "the plaintext is not base64".into(),
            }
        })?);
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != 32 {
            return Err(ProviderError::BadAnswer {
                address: self.cfg.address.clone(),
                reason: format!("{} bytes, not a 32-byte key", bytes.len()),
            });
        }
        key.copy_from_slice(&bytes);
        Ok(key)
    }
}
