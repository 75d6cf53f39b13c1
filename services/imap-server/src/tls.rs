//! TLS server configurations for STARTTLS and implicit TLS (TLS 1.2 and 1.3 only, ring provider).

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no certificate found in {0}")]
    NoCertificate(PathBuf),
    #[error("no private key found in {0}")]
    NoPrivateKey(PathBuf),
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The ring provider, installed explicitly so the choice never depends on which crypto features
/// other crates in the process happen to enable.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    // TLS 1.0/1.1 are deprecated (RFC 8996); rustls does not implement them anyway, but the
    // version list is spelled out so the policy is visible here.
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn load_server_config(cert_pem: &Path, key_pem: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_bytes = read(cert_pem)?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(cert_bytes.as_slice()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            path: cert_pem.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(cert_pem.to_path_buf()));
    }
    let key_bytes = read(key_pem)?;
    let key = rustls_pemfile::private_key(&mut BufReader::new(key_bytes.as_slice()))
        .map_err(|source| TlsError::Read {
            path: key_pem.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::NoPrivateKey(key_pem.to_path_buf()))?;
    build(certs, key)
}

/// A configuration with a freshly generated self-signed certificate for `hostnames` (dev mode and
/// tests; clients will not trust it without being told to).
pub fn self_signed_server_config(hostnames: &[String]) -> Result<Arc<ServerConfig>, TlsError> {
    let certified = rcgen::generate_simple_self_signed(hostnames.to_vec())?;
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    build(vec![cert], key)
}

/// A self-signed certificate kept in `dir` (`cert.pem`, `key.pem`): made on first use, loaded
/// afterwards, so clients that were told to trust it keep trusting it across restarts.
pub fn persistent_self_signed(
    dir: &Path,
    hostnames: &[String],
) -> Result<Arc<ServerConfig>, TlsError> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if !(cert.exists() && key.exists()) {
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TlsError::Read { path, source }
        };
        std::fs::create_dir_all(dir).map_err(write_err(dir))?;
        let certified = rcgen::generate_simple_self_signed(hostnames.to_vec())?;
        write_private(&key, certified.key_pair.serialize_pem().as_bytes())
            .map_err(write_err(&key))?;
        std::fs::write(&cert, certified.cert.pem()).map_err(write_err(&cert))?;
    }
    load_server_config(&cert, &key)
}

/// Writes a file only its owner can read (a private key).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_config_builds() {
        let config = self_signed_server_config(&["localhost".to_string()]).expect("config");
        assert!(config.alpn_protocols.is_empty());
    }

    #[test]
    fn persistent_self_signed_is_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = dir.path().join("tls");
        persistent_self_signed(&tls, &["localhost".to_string()]).expect("first");
        let first = std::fs::read(tls.join("cert.pem")).expect("cert");
        persistent_self_signed(&tls, &["localhost".to_string()]).expect("second");
        assert_eq!(std::fs::read(tls.join("cert.pem")).expect("cert"), first);
    }

    #[test]
    fn missing_files_are_reported() {
        let err = load_server_config(Path::new("/nonexistent/c.pem"), Path::new("/x/k.pem"));
        assert!(matches!(err, Err(TlsError::Read { .. })));
    }

    #[test]
    fn pem_files_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, certified.cert.pem()).expect("write");
        std::fs::write(&key, certified.key_pair.serialize_pem()).expect("write");
        load_server_config(&cert, &key).expect("load");
        std::fs::write(&key, "nothing").expect("write");
        assert!(matches!(
            load_server_config(&cert, &key),
            Err(TlsError::NoPrivateKey(_))
        ));
    }
}
