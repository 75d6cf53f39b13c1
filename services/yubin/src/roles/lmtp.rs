//! `yubin lmtp`: delivery from the MTA over LMTP (RFC 2033). Recipients are resolved and
//! messages committed through the meta service's gRPC API, bodies go to S3; any number of nodes
//! can run behind the MTA, like front-ends.
//!
//! LMTP has no authentication: whoever can connect can deliver to any account. The listener
//! binds to loopback by default and answers only clients in `lmtp_allow` (loopback by default);
//! on a network, name the MTA's network there and keep the port reachable by the MTA only.

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
    #[serde(default = "default_lmtp_allow")]
    lmtp_allow: Vec<String>,
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

/// Loopback only, like Postfix's `mynetworks_style = host`: LMTP on a network needs the MTA's
/// network named.
pub fn default_lmtp_allow() -> Vec<String> {
    yubin_lmtp::ClientNetwork::loopback()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The `lmtp_allow` setting as networks; an empty list would refuse every MTA.
pub fn allowed_clients(list: &[String]) -> anyhow::Result<Vec<yubin_lmtp::ClientNetwork>> {
    if list.is_empty() {
        anyhow::bail!("lmtp_allow must name at least one network (the MTA's)");
    }
    list.iter()
        .map(|n| n.parse().map_err(|e| anyhow::anyhow!("lmtp_allow: {e}")))
        .collect()
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
        allowed_clients(&self.lmtp_allow)?;
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
    warn_if_exposed(&settings.lmtp_listen, &settings.lmtp_allow);
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
        yubin_lmtp::LmtpConfig {
            allowed_clients: allowed_clients(&settings.lmtp_allow)?,
            ..settings
                .lmtp
                .lmtp_config("localhost", settings.spool_dir.clone())
        },
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

/// LMTP trusts whoever it lets in; say who that is when it listens beyond this machine.
pub fn warn_if_exposed(addr: &str, allow: &[String]) {
    if !super::is_loopback(addr) {
        tracing::warn!(
            %addr,
            allow = %allow.join(","),
            "lmtp listens beyond loopback and has no authentication: every client in lmtp_allow \
             can deliver to any account, so keep that list to the MTA's network"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lmtp_allow_is_a_non_empty_list_of_networks() {
        let default = allowed_clients(&default_lmtp_allow()).expect("default");
        assert!(default.iter().any(|n| n.contains([127, 0, 0, 1].into())));
        assert!(!default.iter().any(|n| n.contains([10, 0, 0, 1].into())));
        let list = ["10.0.0.0/8".to_string(), "fd00::/8".to_string()];
        assert_eq!(allowed_clients(&list).expect("valid").len(), 2);
        assert!(allowed_clients(&[]).is_err());
        assert!(allowed_clients(&["10.1.2.3/8".to_string()]).is_err());
        assert!(allowed_clients(&["mta.example".to_string()]).is_err());
    }
}
