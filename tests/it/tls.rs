//! TLS on both sides: the gateway serving HTTPS to an S3 client that trusts
//! a private CA, and the gateway reaching an HTTPS provider (s3s-fs behind a
//! certificate from the same private CA) through `upstream.ca_file`.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::tls;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use sealgate::serve::{Options, ServeError, embedded, start};
use std::path::{Path, PathBuf};

const AK: &str = "tls-client";
const SK: &str = "tls-client-secret-0123456789";
const UAK: &str = "tls-upstream";
const USK: &str = "tls-upstream-secret-0123456789";

/// A private CA and a server certificate for 127.0.0.1 / localhost, written
/// as PEM files; returns (ca, cert, key) paths.
fn test_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "sealgate test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    // A private key is a secret file: sealgate refuses one others can read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&paths.2, std::fs::Permissions::from_mode(0o600)).unwrap();
    paths
}

/// An S3 client that trusts only `ca`.
fn client(endpoint: String, ca: &Path) -> Client {
    let trust = tls::TrustStore::empty().with_pem_certificate(std::fs::read(ca).unwrap());
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(
            tls::TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .unwrap(),
        )
        .build_https();
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .http_client(http)
        .credentials_provider(Credentials::new(AK, SK, None, None, "test"))
        .build();
    Client::from_conf(conf)
}

/// Writes a config for a gateway in front of `upstream`, with or without
/// trusting `ca` for it.
fn config(dir: &Path, upstream: &str, ca: Option<&Path>, tls: Option<(&Path, &Path)>) -> PathBuf {
    let keys = dir.join("keys");
    if !keys.exists() {
        sealgate::keys::KeyStore::generate(&keys, false).unwrap();
    }
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\nkeys_dir = {keys:?}\n\n[upstream]\nendpoint = \"{upstream}\"\naccess_key = \"{UAK}\"\nsecret_key = \"{USK}\"\n"
    );
    if let Some(ca) = ca {
        text += &format!("ca_file = {ca:?}\n");
    }
    if let Some((cert, key)) = tls {
        text += &format!("\n[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n");
    }
    text += &format!("\n[[credentials]]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n");
    let path = dir.join(format!("sealgate-{}.toml", ca.is_some()));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn https_on_both_sides_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_pki(dir.path());
    let data = dir.path().join("data");
    let up = embedded::start_at(&data, "127.0.0.1:0", UAK, USK, Some((&cert, &key)))
        .await
        .unwrap();
    let cfg = config(
        dir.path(),
        &format!("https://localhost:{}", up.port()),
        Some(&ca),
        Some((&cert, &key)),
    );
    let gw = start(Options {
        config: Some(cfg),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(gw.tls);
    let c = client(format!("https://127.0.0.1:{}", gw.addr.port()), &ca);
    c.create_bucket().bucket("tls-bucket").send().await.unwrap();
    let body = b"PLAINTEXT over TLS on both legs ".repeat(5000);
    c.put_object()
        .bucket("tls-bucket")
        .key("k")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let got = c
        .get_object()
        .bucket("tls-bucket")
        .key("k")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .to_vec();
    assert_eq!(got, body);
    let stored = std::fs::read(data.join("tls-bucket").join("k")).unwrap();
    assert!(!stored.windows(9).any(|w| w == b"PLAINTEXT"));

    // Plain HTTP to the TLS port is not served.
    let plain = sealgate_plain_client(gw.addr);
    assert!(plain.list_buckets().send().await.is_err());

    // Certificate rotation: a connection opened before the reload keeps
    // working on it; new handshakes get the new certificate.
    let mut before = raw_tls(gw.addr, &ca).await;
    assert_eq!(raw_request(&mut before).await, 403, "anonymous request");
    let new_pki = dir.path().join("rotated");
    std::fs::create_dir_all(&new_pki).unwrap();
    let (ca2, cert2, key2) = test_pki(&new_pki);
    let old_key = std::fs::read(&key).unwrap();
    std::fs::copy(&cert2, &cert).unwrap();
    // A certificate whose key does not fit is refused; the old pair stays.
    let files = gw.tls_files.clone().expect("TLS files");
    let e = files.reload().unwrap_err().to_string();
    assert!(e.contains("do not fit"), "{e}");
    assert!(
        client(format!("https://127.0.0.1:{}", gw.addr.port()), &ca)
            .list_buckets()
            .send()
            .await
            .is_ok()
    );
    std::fs::copy(&key2, &key).unwrap();
    files.reload().unwrap();
    assert_eq!(
        raw_request(&mut before).await,
        403,
        "the old connection survives"
    );
    let fresh = client(format!("https://127.0.0.1:{}", gw.addr.port()), &ca2);
    assert!(fresh.list_buckets().send().await.is_ok());
    let stale = client(format!("https://127.0.0.1:{}", gw.addr.port()), &ca);
    assert!(
        stale.list_buckets().send().await.is_err(),
        "the old certificate is no longer served"
    );
    assert_ne!(std::fs::read(&key).unwrap(), old_key);
    gw.shutdown().await;
}

/// A TLS connection to `addr` trusting only `ca`.
async fn raw_tls(
    addr: std::net::SocketAddr,
    ca: &Path,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

/// Sends one keep-alive `GET /` and reads the whole response; its status.
async fn raw_request(s: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return head[9..12].parse().unwrap();
            }
        }
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn sealgate_plain_client(addr: std::net::SocketAddr) -> Client {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("http://{addr}"))
        .force_path_style(true)
        .credentials_provider(Credentials::new(AK, SK, None, None, "test"))
        .build();
    Client::from_conf(conf)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_upstream_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_ca, cert, key) = test_pki(dir.path());
    let data = dir.path().join("data");
    let up = embedded::start_at(&data, "127.0.0.1:0", UAK, USK, Some((&cert, &key)))
        .await
        .unwrap();
    // No ca_file: the private CA is not among the system roots.
    let cfg = config(
        dir.path(),
        &format!("https://localhost:{}", up.port()),
        None,
        None,
    );
    let gw = start(Options {
        config: Some(cfg),
        ..Default::default()
    })
    .await
    .unwrap();
    let c = sealgate_plain_client(gw.addr);
    let err = c
        .create_bucket()
        .bucket("never")
        .send()
        .await
        .expect_err("an untrusted provider must not be used");
    let status = err.raw_response().map(|r| r.status().as_u16());
    assert!(
        matches!(status, Some(500..=599)),
        "expected a 5xx, got {status:?}"
    );
    assert!(!data.join("never").exists());
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_tls_files_stop_startup_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_pki(dir.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");

    for (c, k, named) in [
        (&garbage, &key, &garbage),
        (&cert, &missing, &missing),
        // A CA certificate with the server's key: they do not fit.
        (&ca, &key, &ca),
    ] {
        let err = start(Options {
            config: Some(config(dir.path(), "http://127.0.0.1:9", None, None)),
            tls: Some((c.clone(), k.clone())),
            ..Default::default()
        })
        .await
        .err()
        .expect("startup must fail");
        assert!(matches!(err, ServeError::Tls(_)), "{err}");
        assert!(
            err.to_string().contains(&named.display().to_string()),
            "{err}"
        );
    }

    // A bad upstream CA bundle is named too.
    let cfg = config(dir.path(), "https://127.0.0.1:9", Some(&garbage), None);
    let err = start(Options {
        config: Some(cfg),
        ..Default::default()
    })
    .await
    .err()
    .expect("startup must fail");
    assert!(err.to_string().contains("garbage.pem"), "{err}");
}
