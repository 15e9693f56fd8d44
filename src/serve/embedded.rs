//! The embedded upstream of the default mode: s3s-fs, a real S3 server that
//! checks signatures and checksums, serving a local directory on a loopback
//! port. It stores exactly what a cloud provider would: ciphertext. The
//! end-to-end suites run the same server as its own process
//! (`examples/s3s_fs_server.rs`).

use super::ServeError;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use std::net::SocketAddr;
use std::path::Path;

/// Starts s3s-fs on `127.0.0.1:0` over `dir`, requiring the given credentials.
pub async fn start(
    dir: &Path,
    access_key: &str,
    secret_key: &str,
) -> Result<SocketAddr, ServeError> {
    start_at(dir, "127.0.0.1:0", access_key, secret_key, None).await
}

/// Starts s3s-fs on `listen` over `dir`, requiring the given credentials;
/// over HTTPS when `tls` names a PEM certificate chain and key (the
/// end-to-end suites use this to test an HTTPS provider with a private CA).
pub async fn start_at(
    dir: &Path,
    listen: &str,
    access_key: &str,
    secret_key: &str,
    tls: Option<(&Path, &Path)>,
) -> Result<SocketAddr, ServeError> {
    let tls = match tls {
        Some((cert, key)) => Some(super::tls::tls_acceptor(cert, key)?),
        None => None,
    };
    std::fs::create_dir_all(dir).map_err(|source| ServeError::Io {
        what: format!("cannot create data directory {}", dir.display()),
        source,
    })?;
    let fs = s3s_fs::FileSystem::new(dir).map_err(|e| ServeError::Io {
        what: format!("cannot serve {}", dir.display()),
        source: std::io::Error::other(format!("{e:?}")),
    })?;
    let mut b = S3ServiceBuilder::new(fs);
    b.set_auth(SimpleAuth::from_single(access_key, secret_key));
    let service = b.build();
    let (listener, addr) = super::bind(listen, " for the embedded upstream").await?;
    tokio::spawn(super::accept_loop(
        listener,
        service,
        super::ServeSettings {
            tls,
            ..Default::default()
        },
    ));
    Ok(addr)
}
