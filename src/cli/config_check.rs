//! `sealgate config check`: everything a gateway would load at start,
//! checked without starting it, every problem reported (not just the first).

use crate::config::{Config, secret};
use crate::keys::KeyStore;

/// One checked item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Whether it passed.
    pub ok: bool,
    /// What was checked, and the problem when it failed.
    pub message: String,
}

fn ok(m: impl Into<String>) -> Finding {
    Finding {
        ok: true,
        message: m.into(),
    }
}

fn fail(m: impl Into<String>) -> Finding {
    Finding {
        ok: false,
        message: m.into(),
    }
}

/// Checks a loaded configuration: algorithm, key store, secrets and their
/// file permissions and owners (checked where they are read, by
/// [`crate::config::secret`] and the TLS loader, exactly as `serve` checks them),
/// upstream endpoint and CA bundle, TLS files, and states every bucket's
/// effective mode.
pub fn check(cfg: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    match cfg.algorithm() {
        Ok(a) => out.push(ok(format!("algorithm for new objects: {}", a.name()))),
        Err(e) => out.push(fail(e.to_string())),
    }
    let store = KeyStore::load(&cfg.keys_dir);
    out.push(match &store {
        Ok(k) => ok(format!(
            "key store {}: {} key(s), active {}",
            cfg.keys_dir.display(),
            k.list().len(),
            k.active().id()
        )),
        Err(e) => fail(format!("key store: {e}")),
    });
    if let (Ok(k), Some(max)) = (&store, cfg.key_max_age_days) {
        let overdue = k.overdue_actives(max, chrono::Utc::now());
        for (domain, id, age) in &overdue {
            let (what, rotate) = match domain {
                Some(d) => (
                    format!("key domain {d}'s active key"),
                    format!(" --domain {d}"),
                ),
                None => ("active key".to_owned(), String::new()),
            };
            out.push(fail(format!(
                "{what} {id} is {age} days old, past key_max_age_days = {max}: rotate it (sealgate keys rotate{rotate})"
            )));
        }
        if overdue.is_empty() {
            out.push(ok(format!(
                "active key {} is within its cryptoperiod ({max} days){}",
                k.active().id(),
                if k.actives().len() > 1 {
                    ", as is every key domain's"
                } else {
                    ""
                }
            )));
        }
    }
    if let Ok(k) = &store {
        check_key_domains(cfg, k, &mut out);
    }
    check_upstream(cfg, &mut out);
    check_client_credentials(cfg, &mut out);
    check_listener(cfg, &mut out);
    check_bucket_modes(cfg, store.as_ref().ok(), &mut out);
    out
}

/// Each `[[policy.key_domains]]` rule: its domain in the store, live.
fn check_key_domains(cfg: &Config, keys: &KeyStore, out: &mut Vec<Finding>) {
    for r in &cfg.policy.key_domains {
        out.push(match keys.active_in(Some(&r.domain)) {
            Ok(kek) => ok(format!(
                "bucket {}: key domain {} (active key {})",
                r.bucket,
                r.domain,
                kek.id()
            )),
            Err(e @ crate::keys::KeyError::DomainDestroyed { .. }) => ok(format!(
                "bucket {}: {e}; its objects read as erased and writes are refused",
                r.bucket
            )),
            Err(e) => fail(format!("policy.key_domains: bucket {}: {e}", r.bucket)),
        });
    }
}

/// The provider: endpoint, credentials, CA bundle.
fn check_upstream(cfg: &Config, out: &mut Vec<Finding>) {
    let u = &cfg.upstream;
    match url_scheme(&u.endpoint) {
        Some("https") | Some("http") => out.push(ok(format!("upstream endpoint {}", u.endpoint))),
        _ => out.push(fail(format!(
            "upstream.endpoint {:?}: expected an http:// or https:// URL",
            u.endpoint
        ))),
    }
    match (
        &u.access_key,
        secret(&u.secret_key, &u.secret_key_file, "upstream.secret_key"),
    ) {
        (_, Err(e)) => out.push(fail(e.to_string())),
        (Some(_), Ok(Some(_))) => out.push(ok("upstream credentials from the configuration")),
        (None, Ok(None)) => out.push(ok(
            "upstream credentials from the AWS environment/profile chain",
        )),
        _ => out.push(fail(
            "upstream: give both access_key and secret_key, or neither",
        )),
    }
    if let Some(ca) = &u.ca_file {
        out.push(check_ca_file(ca));
    }
}

/// `upstream.ca_file` holds at least one PEM certificate.
fn check_ca_file(ca: &std::path::Path) -> Finding {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = match std::fs::read(ca) {
        Ok(pem) => pem,
        Err(e) => return fail(format!("upstream.ca_file {}: {e}", ca.display())),
    };
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .filter(Result::is_ok)
        .count();
    if certificates > 0 {
        ok(format!(
            "upstream.ca_file {}: {certificates} certificate(s)",
            ca.display()
        ))
    } else {
        fail(format!(
            "upstream.ca_file {}: no PEM certificate found",
            ca.display()
        ))
    }
}

/// `[[credentials]]`: at least one, each with its secret.
fn check_client_credentials(cfg: &Config, out: &mut Vec<Finding>) {
    if cfg.credentials.is_empty() {
        out.push(fail(
            "no client credentials: add [[credentials]] (or set SEALGATE_ACCESS_KEY and SEALGATE_SECRET_KEY when serving)",
        ));
    }
    for c in &cfg.credentials {
        let what = format!("credentials {}", c.access_key);
        match secret(&c.secret_key, &c.secret_key_file, &what) {
            Ok(Some(_)) => out.push(ok(format!("{what}: buckets {}", c.buckets.join(", ")))),
            Ok(None) => out.push(fail(format!("{what}: secret_key missing"))),
            Err(e) => out.push(fail(e.to_string())),
        }
    }
}

/// The S3 listener's TLS files and virtual-host domain, when configured.
fn check_listener(cfg: &Config, out: &mut Vec<Finding>) {
    if let Some(t) = &cfg.tls {
        match crate::serve::tls::tls_acceptor(&t.cert_file, &t.key_file) {
            Ok(_) => out.push(ok(format!("TLS certificate {}", t.cert_file.display()))),
            Err(e) => out.push(fail(e.to_string())),
        }
    }
    if let Some(d) = &cfg.domain {
        match crate::serve::host::GatewayHost::new([d.clone()]) {
            Ok(_) => out.push(ok(format!("virtual-host domain {d}"))),
            Err(e) => out.push(fail(e)),
        }
    }
}

/// The provider's jurisdiction and every bucket's effective mode; the
/// exceptions behind passthrough buckets need the key store (`keys`).
fn check_bucket_modes(cfg: &Config, keys: Option<&KeyStore>, out: &mut Vec<Finding>) {
    let algorithm = cfg.algorithm().map(|a| a.name()).unwrap_or("?");
    let active = keys.map(|k| k.active().id().to_string());
    let encrypted = format!(
        "encrypted ({algorithm}, active key {})",
        active.as_deref().unwrap_or("?")
    );
    let allowed = &cfg.policy.allowed_jurisdictions;
    let places = match crate::policy::Located::all(&cfg.upstream, &cfg.keys_dir) {
        Ok(p) => p,
        Err(e) => return out.push(fail(format!("key provider: {e}"))),
    };
    let is_allowed = |j: &str| {
        j != crate::keys::provider::UNDECLARED && allowed.iter().any(|a| a.eq_ignore_ascii_case(j))
    };
    for place in &places {
        let (what, j) = (place.what, &place.jurisdiction);
        if allowed.is_empty() {
            out.push(ok(format!(
                "{what} jurisdiction {j}; no allowed jurisdictions configured"
            )));
        } else if is_allowed(j) {
            out.push(ok(format!("{what} jurisdiction {j} is allowed")));
        }
    }
    let all_allowed = allowed.is_empty() || places.iter().all(|p| is_allowed(&p.jurisdiction));
    let restricted =
        !cfg.policy.passthrough.is_empty() || !cfg.policy.legacy_reads.is_empty() || !all_allowed;
    if !restricted {
        out.push(ok(format!(
            "every bucket: {encrypted}; no passthrough buckets are configured"
        )));
        return;
    }
    let Some(keys) = keys else {
        out.push(fail(
            "policy: cannot check the passthrough buckets without the key store",
        ));
        return;
    };
    let policy = crate::policy::Policy::load(&cfg.policy, &places, keys, chrono::Utc::now());
    let policy = match policy {
        Ok(p) => p,
        Err(e) => return out.push(fail(format!("policy: {e}"))),
    };
    if let Some(id) = policy.data_location_exception() {
        for place in places.iter().filter(|p| !is_allowed(&p.jurisdiction)) {
            out.push(ok(format!(
                "{} jurisdiction {} is outside the allowed ones, under exception {id}",
                place.what, place.jurisdiction
            )));
        }
    }
    for r in &cfg.policy.passthrough {
        out.push(ok(format!(
            "bucket {}: PASSTHROUGH (unencrypted) under exception {}",
            r.bucket, r.exception
        )));
    }
    for r in &cfg.policy.legacy_reads {
        out.push(ok(format!(
            "bucket {}: legacy (not sealgate-format) objects readable under exception {}",
            r.bucket, r.exception
        )));
    }
    out.push(ok(format!("every other bucket: {encrypted}")));
}

fn url_scheme(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    (!rest.is_empty()).then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn every_problem_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("client.secret");
        std::fs::write(&secret_file, "s3cret\n").unwrap();
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let cfg: Config = toml::from_str(&format!(
            "keys_dir = {:?}\nalgorithm = \"DES\"\ndomain = \"bad domain\"\n[upstream]\nendpoint = \"s3.example.com\"\naccess_key = \"ak\"\n[[credentials]]\naccess_key = \"app\"\nsecret_key_file = {:?}\n[[credentials]]\naccess_key = \"nosecret\"\n",
            dir.path().join("no-keys"),
            secret_file
        ))
        .unwrap();
        let failed: Vec<String> = check(&cfg)
            .into_iter()
            .filter(|f| !f.ok)
            .map(|f| f.message)
            .collect();
        let all = failed.join("\n");
        for want in [
            "algorithm \"DES\"",
            "key store",
            "expected an http:// or https:// URL",
            "give both access_key and secret_key",
            "chmod 600",
            "credentials nosecret: secret_key missing",
            "domain",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
    }
}
