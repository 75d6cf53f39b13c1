//! `yubin lmtp`: delivery from the MTA over LMTP (RFC 2033). Recipients are resolved and
//! messages committed through the meta service's gRPC API, bodies go to S3; any number of nodes
//! can run behind the MTA, like front-ends.
//!
//! LMTP has no authentication: whoever can connect can deliver to any account. The listener
//! binds to loopback by default; put it on a network only the MTA can reach.

use crate::cli::LmtpRoleArgs;
use crate::config::{self, LmtpLimits};
use crate::http;
use crate::roles::bind;
use crate::service_auth::GrpcAuth;
use anyhow::Context;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use yubin_blob::{BlobStore, S3BlobStore};
use yubin_meta::GrpcMetaClient;
use yubin_meta_api::{Authenticator, MailStore};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LmtpSettings {
    #[serde(default = "default_meta")]
    meta_url: String,
    /// The shared secret of the gRPC link between roles (`service_auth`).
    #[serde(default)]
    grpc_secret_file: Option<PathBuf>,
    #[serde(default)]
    grpc_insecure: bool,
    #[serde(default = "default_bucket")]
    s3_bucket: String,
    #[serde(default = "default_lmtp")]
    lmtp_listen: String,
    #[serde(default = "default_http")]
    http_listen: String,
    #[serde(default)]
    spool_dir: Option<PathBuf>,
    #[serde(default)]
    lmtp: LmtpLimits,
}

fn default_meta() -> String {
    "http://127.0.0.1:50051".into()
}
fn default_bucket() -> String {
    "yubin".into()
}
/// ARCHITECTURE.md: LMTP listens on 2424 by default, on loopback (no authentication).
pub fn default_lmtp() -> String {
    "127.0.0.1:2424".into()
}
fn default_http() -> String {
    "127.0.0.1:8082".into()
}

impl LmtpSettings {
    fn grpc_auth(&self) -> GrpcAuth<'_> {
        GrpcAuth {
            secret_file: self.grpc_secret_file.as_ref(),
            insecure: self.grpc_insecure,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        config::check_addr("lmtp_listen", &self.lmtp_listen)?;
        config::check_addr("http_listen", &self.http_listen)?;
        self.grpc_auth().validate()?;
        if self.s3_bucket.is_empty() {
            anyhow::bail!("--s3-bucket must not be empty");
        }
        self.lmtp.validate()
    }
}

pub async fn run(args: LmtpRoleArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let settings: LmtpSettings = config::load(&args, args.config.as_deref())?;
    settings.validate()?;
    warn_if_exposed(&settings.lmtp_listen);
    let secret = settings.grpc_auth().secret("lmtp")?;
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
    let blobs: Arc<dyn BlobStore> = s3.clone();
    if let Some(dir) = &settings.spool_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let server = yubin_lmtp::LmtpServer::new(
        mail,
        auth,
        blobs,
        settings
            .lmtp
            .lmtp_config("localhost", settings.spool_dir.clone()),
    );

    let mut tasks = JoinSet::new();
    let listener = bind("lmtp", &settings.lmtp_listen).await?;
    tasks.spawn(server.serve(listener, shutdown.clone()));
    let http_listener = bind("http", &settings.http_listen).await?;
    let (probe_meta, probe_s3) = (meta.clone(), s3.clone());
    let ready: http::ReadinessCheck = Arc::new(move || {
        let (meta, s3) = (probe_meta.clone(), probe_s3.clone());
        Box::pin(async move {
            meta.ping().await.map_err(|e| format!("meta: {e}"))?;
            s3.ping().await.map_err(|e| format!("s3: {e}"))
        })
    });
    let app = http::router(ready, axum::Router::new());
    tasks.spawn(http::serve(http_listener, app, shutdown.clone()));
    super::wait_all(tasks, shutdown).await
}

/// LMTP trusts whoever connects; say so when it listens beyond this machine.
pub fn warn_if_exposed(addr: &str) {
    if !super::is_loopback(addr) {
        tracing::warn!(
            %addr,
            "lmtp listens beyond loopback and has no authentication: only the MTA must be able to reach it"
        );
    }
}
