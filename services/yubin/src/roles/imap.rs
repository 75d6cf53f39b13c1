//! `yubin imap`: a stateless IMAP front-end. Metadata through the meta service's gRPC API, bodies
//! in S3; any node serves any user.

use crate::cli::ImapArgs;
use crate::config::{self, BodyCacheSettings, ConnectionLimits};
use crate::http;
use crate::roles::bind;
use crate::service_auth::GrpcAuth;
use anyhow::Context;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use yubin_blob::S3BlobStore;
use yubin_meta::GrpcMetaClient;
use yubin_meta_api::{Authenticator, MailStore};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImapSettings {
    #[serde(default = "default_meta")]
    meta_url: String,
    /// The shared secret of the gRPC link between roles (`service_auth`).
    #[serde(default)]
    grpc_secret_file: Option<PathBuf>,
    #[serde(default)]
    grpc_insecure: bool,
    #[serde(default = "default_bucket")]
    s3_bucket: String,
    #[serde(default = "default_imap")]
    imap_listen: String,
    #[serde(default)]
    imaps_listen: Option<String>,
    #[serde(default = "default_http")]
    http_listen: String,
    #[serde(default)]
    tls_cert: Option<PathBuf>,
    #[serde(default)]
    tls_key: Option<PathBuf>,
    #[serde(default)]
    allow_plaintext_auth: bool,
    #[serde(default)]
    spool_dir: Option<PathBuf>,
    #[serde(default)]
    limits: ConnectionLimits,
    #[serde(default)]
    body_cache: BodyCacheSettings,
    /// Accounts allowed to SETQUOTA (RFC 9208 §4.1).
    #[serde(default)]
    quota_admins: Vec<String>,
}

fn default_meta() -> String {
    "http://127.0.0.1:50051".into()
}
fn default_bucket() -> String {
    "yubin".into()
}
fn default_imap() -> String {
    "127.0.0.1:1143".into()
}
fn default_http() -> String {
    "127.0.0.1:8081".into()
}

impl ImapSettings {
    fn grpc_auth(&self) -> GrpcAuth<'_> {
        GrpcAuth {
            secret_file: self.grpc_secret_file.as_ref(),
            insecure: self.grpc_insecure,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        config::check_addr("imap_listen", &self.imap_listen)?;
        config::check_quota_admins(&self.quota_admins)?;
        if let Some(a) = &self.imaps_listen {
            config::check_addr("imaps_listen", a)?;
        }
        config::check_addr("http_listen", &self.http_listen)?;
        self.grpc_auth().validate()?;
        config::check_tls_pair(&self.tls_cert, &self.tls_key)?;
        if self.s3_bucket.is_empty() {
            anyhow::bail!("--s3-bucket must not be empty");
        }
        self.body_cache.validate()?;
        self.limits.validate()
    }
}

pub async fn run(args: ImapArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let settings: ImapSettings = config::load(&args, args.config.as_deref())?;
    settings.validate()?;
    let secret = settings.grpc_auth().secret("imap")?;
    let meta = Arc::new(
        GrpcMetaClient::connect(&settings.meta_url, secret.as_ref())
            .await
            .context("connecting to the metadata service")?,
    );
    let mail: Arc<dyn MailStore> = meta.clone();
    let auth: Arc<dyn Authenticator> = meta.clone();
    let s3 = Arc::new(
        S3BlobStore::from_env(settings.s3_bucket.clone())
            .await
            .context("configuring S3")?,
    );
    // Bodies this node reads or writes stay in its cache; readiness still asks S3 itself.
    let blobs = settings.body_cache.wrap(s3.clone())?;
    let tls = match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => config::reloading_tls(cert, key, &shutdown)?,
        _ => {
            // STARTTLS must work even on a node set up without a certificate, so clients never
            // have to send passwords in the clear; a self-signed one is no substitute for a real
            // certificate, hence the warning.
            tracing::warn!("no --tls-cert/--tls-key given: using a self-signed certificate");
            yubin_imap::tls::self_signed_server_config(&["localhost".to_string()])?
        }
    };
    if let Some(dir) = &settings.spool_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let imap_config = settings.limits.imap_config(
        "localhost",
        settings.allow_plaintext_auth,
        settings.spool_dir.clone(),
        settings.quota_admins.clone(),
    );
    let server = yubin_imap::ImapServer::with_timeouts(
        mail.clone(),
        auth.clone(),
        blobs,
        Some(tls),
        imap_config,
        settings.limits.timeouts(),
    );
    follow_bearer_support(server.clone(), auth, shutdown.clone());

    let mut tasks = JoinSet::new();
    // The HTTP port stays up until the IMAP listeners have drained (metrics, a 503 readiness).
    let serving = tokio_util::task::TaskTracker::new();
    let imap = bind("imap", &settings.imap_listen).await?;
    tasks.spawn(serving.track_future(server.clone().serve(imap, false, shutdown.clone())));
    if let Some(addr) = &settings.imaps_listen {
        let imaps = bind("imaps", addr).await?;
        tasks.spawn(serving.track_future(server.clone().serve(imaps, true, shutdown.clone())));
    }
    serving.close();
    let http_listener = bind("http", &settings.http_listen).await?;
    let probe_meta = meta.clone();
    let probe_s3 = s3.clone();
    let ready: http::ReadinessCheck = Arc::new(move || {
        let (meta, s3) = (probe_meta.clone(), probe_s3.clone());
        Box::pin(async move {
            meta.ping().await.map_err(|e| format!("meta: {e}"))?;
            s3.ping().await.map_err(|e| format!("s3: {e}"))
        })
    });
    let app = http::router(ready, axum::Router::new());
    tasks.spawn(http::serve_until(http_listener, app, async move {
        serving.wait().await
    }));
    super::wait_all(tasks, shutdown).await
}

/// Offers OAUTHBEARER and XOAUTH2 when meta validates bearer tokens: asks until meta answers
/// (it may start after this node), then again every minute in case its configuration changed.
fn follow_bearer_support(
    server: Arc<yubin_imap::ImapServer>,
    auth: Arc<dyn Authenticator>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let wait = match auth.accepts_bearer_tokens().await {
                Ok(enabled) => {
                    server.set_bearer_auth(enabled);
                    std::time::Duration::from_secs(60)
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot ask meta for its authentication mechanisms yet");
                    std::time::Duration::from_secs(2)
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    });
}
