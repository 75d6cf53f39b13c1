//! TLS server configurations for STARTTLS and implicit TLS (TLS 1.2 and 1.3 only, ring provider).
//!
//! A certificate given as files is served through [`ReloadingCert`]: the files are re-read when
//! they change (polled by [`ReloadingCert::watch`]) and new handshakes get the new certificate,
//! so a renewed certificate (ACME, cert-manager) takes effect without a restart. Connections
//! already established keep the session they negotiated.

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

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

/// Parses a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1); the paths
/// only name the files in errors.
fn parse_pem(
    cert_pem: &Path,
    cert_bytes: &[u8],
    key_pem: &Path,
    key_bytes: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(cert_bytes))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            path: cert_pem.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(cert_pem.to_path_buf()));
    }
    let key = rustls_pemfile::private_key(&mut BufReader::new(key_bytes))
        .map_err(|source| TlsError::Read {
            path: key_pem.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::NoPrivateKey(key_pem.to_path_buf()))?;
    Ok((certs, key))
}

/// Loads a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1), read once.
pub fn load_server_config(cert_pem: &Path, key_pem: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let (certs, key) = parse_pem(cert_pem, &read(cert_pem)?, key_pem, &read(key_pem)?)?;
    build(certs, key)
}

/// A certificate chain and key kept in PEM files and re-read when the files change; the
/// [`ResolvesServerCert`] of the configurations it makes, so every handshake gets the
/// certificate in force at that moment.
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The file contents `current` was made from: a reload compares contents rather than
    /// modification times, which a rename over the old file or a Kubernetes secret update (a
    /// symlink swap) may leave unchanged.
    source: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

/// How often [`ReloadingCert::watch`] looks at the files by default.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

impl ReloadingCert {
    /// Reads the files; they must hold a usable certificate and the matching key.
    pub fn load(cert_pem: &Path, key_pem: &Path) -> Result<Arc<ReloadingCert>, TlsError> {
        let source = (read(cert_pem)?, read(key_pem)?);
        let certified = certified_key(cert_pem, &source.0, key_pem, &source.1)?;
        Ok(Arc::new(ReloadingCert {
            cert_path: cert_pem.to_path_buf(),
            key_path: key_pem.to_path_buf(),
            current: RwLock::new(Arc::new(certified)),
            source: Mutex::new(source),
        }))
    }

    /// A server configuration (TLS 1.2 and 1.3) that serves whatever certificate is in force.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(Arc::new(config))
    }

    /// Re-reads the files; when they changed and hold a usable certificate with its key, new
    /// handshakes get it. Returns whether the certificate changed. On error (a file missing or
    /// half-written, the key not matching the certificate yet) the certificate in force stays.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let source = (read(&self.cert_path)?, read(&self.key_path)?);
        let mut in_force = self.source.lock().unwrap_or_else(|e| e.into_inner());
        if *in_force == source {
            return Ok(false);
        }
        let certified = certified_key(&self.cert_path, &source.0, &self.key_path, &source.1)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(certified);
        *in_force = source;
        Ok(true)
    }

    /// Reloads every `interval` until `shutdown`, logging what happens; the task also ends when
    /// nothing else holds this certificate any more.
    pub fn watch(
        self: &Arc<Self>,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                let Some(cert) = weak.upgrade() else { return };
                // File reads are small and rare; a blocking pool hop is not worth it.
                match cert.reload() {
                    Ok(true) => tracing::info!(
                        cert = %cert.cert_path.display(),
                        "tls certificate reloaded"
                    ),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(
                        error = %e,
                        "tls certificate files changed but cannot be used yet; keeping the current one"
                    ),
                }
            }
        })
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// The certificate and key of PEM contents, checked to belong together.
fn certified_key(
    cert_pem: &Path,
    cert_bytes: &[u8],
    key_pem: &Path,
    key_bytes: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let (certs, key) = parse_pem(cert_pem, cert_bytes, key_pem, key_bytes)?;
    // `from_der` refuses a key that does not match the certificate's public key: while a
    // renewal has written one file but not yet the other, the old pair stays in force.
    Ok(CertifiedKey::from_der(certs, key, &provider())?)
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

    #[test]
    fn reloading_cert_swaps_only_a_complete_new_pair() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let first = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        std::fs::write(&cert, first.cert.pem()).expect("write");
        std::fs::write(&key, first.key_pair.serialize_pem()).expect("write");
        let reloading = ReloadingCert::load(&cert, &key).expect("load");
        reloading.server_config().expect("config");
        let served = |r: &ReloadingCert| -> Vec<u8> {
            let current = r.current.read().expect("lock").clone();
            current.end_entity_cert().expect("cert").to_vec()
        };
        assert_eq!(served(&reloading), first.cert.der().to_vec());
        assert!(!reloading.reload().expect("unchanged"));

        let second = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        // The new certificate without its key: refused, the first pair stays.
        std::fs::write(&cert, second.cert.pem()).expect("write");
        assert!(matches!(reloading.reload(), Err(TlsError::Rustls(_))));
        assert_eq!(served(&reloading), first.cert.der().to_vec());
        std::fs::write(&key, second.key_pair.serialize_pem()).expect("write");
        assert!(reloading.reload().expect("reload"));
        assert_eq!(served(&reloading), second.cert.der().to_vec());
        // A file that vanished mid-rotation is an error, not a reason to stop serving.
        std::fs::remove_file(&key).expect("remove");
        assert!(matches!(reloading.reload(), Err(TlsError::Read { .. })));
        assert_eq!(served(&reloading), second.cert.der().to_vec());
    }
}
