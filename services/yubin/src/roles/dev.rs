//! `yubin dev`: every role in one process on embedded storage — metadata in a redb file and
//! bodies as files under `--data-dir`. The front-end calls the store directly (no gRPC hop); the
//! gRPC API can still be served so that separate `yubin imap` nodes can join.

use crate::cli::DevArgs;
use crate::config::{self, BodyCacheSettings, ConnectionLimits, LmtpLimits};
use crate::http;
use crate::roles::{bind, is_loopback};
use crate::service_auth::{self, GrpcAuth};
use anyhow::Context;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use yubin_blob::FsBlobStore;
use yubin_meta::{AdminBackend, admin_router};
use yubin_meta_api::{AccountStore, Authenticator, MailStore};
use yubin_meta_store::embedded::GroupCommit;
use yubin_meta_store::{EmbeddedStore, StoreLimits};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DevSettings {
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
    #[serde(default = "default_imap")]
    imap_listen: String,
    #[serde(default = "default_imaps")]
    imaps_listen: String,
    #[serde(default = "default_http")]
    http_listen: String,
    #[serde(default)]
    grpc_listen: Option<String>,
    /// The shared secret of the gRPC link between roles (`service_auth`).
    #[serde(default)]
    grpc_secret_file: Option<PathBuf>,
    #[serde(default)]
    grpc_insecure: bool,
    #[serde(default)]
    tls_cert: Option<PathBuf>,
    #[serde(default)]
    tls_key: Option<PathBuf>,
    #[serde(default)]
    spool_dir: Option<PathBuf>,
    #[serde(default = "default_group_commit_max_calls")]
    group_commit_max_calls: usize,
    #[serde(default = "default_group_commit_max_work_ms")]
    group_commit_max_work_ms: u64,
    #[serde(default)]
    limits: ConnectionLimits,
    #[serde(default)]
    body_cache: BodyCacheSettings,
    #[serde(default)]
    index: config::IndexSettings,
    /// Accounts allowed to SETQUOTA (RFC 9208 §4.1).
    #[serde(default)]
    quota_admins: Vec<String>,
    #[serde(default = "super::lmtp::default_lmtp")]
    lmtp_listen: String,
    #[serde(default = "super::lmtp::default_lmtp_allow")]
    lmtp_allow: Vec<String>,
    #[serde(default)]
    lmtp: LmtpLimits,
    #[serde(default)]
    store: StoreLimits,
    #[serde(default)]
    auth: config::AuthSettings,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("yubin-data")
}
fn default_imap() -> String {
    "127.0.0.1:1143".into()
}
fn default_imaps() -> String {
    "127.0.0.1:1993".into()
}
fn default_http() -> String {
    "127.0.0.1:8080".into()
}

impl DevSettings {
    /// Used only with `grpc_listen`: in-process calls need no secret.
    fn grpc_auth(&self) -> GrpcAuth<'_> {
        GrpcAuth {
            secret_file: self.grpc_secret_file.as_ref(),
            insecure: self.grpc_insecure,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        config::check_addr("imap_listen", &self.imap_listen)?;
        config::check_quota_admins(&self.quota_admins)?;
        config::check_addr("imaps_listen", &self.imaps_listen)?;
        config::check_addr("http_listen", &self.http_listen)?;
        if let Some(g) = &self.grpc_listen {
            config::check_addr("grpc_listen", g)?;
        }
        self.grpc_auth().validate()?;
        config::check_tls_pair(&self.tls_cert, &self.tls_key)?;
        config::check_addr("lmtp_listen", &self.lmtp_listen)?;
        super::lmtp::allowed_clients(&self.lmtp_allow)?;
        self.lmtp.validate()?;
        self.auth.validate()?;
        config::check_store_limits(&self.store)?;
        self.body_cache.validate()?;
        self.index.validate()?;
        if !(1..=4096).contains(&self.group_commit_max_calls) {
            anyhow::bail!("group_commit_max_calls must be between 1 and 4096");
        }
        if self.group_commit_max_work_ms > 1_000 {
            anyhow::bail!("group_commit_max_work_ms must be at most 1000");
        }
        self.limits.validate()
    }
}

fn default_group_commit_max_calls() -> usize {
    GroupCommit::default().max_calls
}
fn default_group_commit_max_work_ms() -> u64 {
    u64::try_from(GroupCommit::default().max_work.as_millis()).unwrap_or(20)
}

/// The demo account `yubin dev` creates on first start (ARCHITECTURE.md).
const DEMO_USER: &str = "demo";
const DEMO_PASSWORD: &str = "demo";

pub async fn run(args: DevArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let settings: DevSettings = config::load(&args, args.config.as_deref())?;
    settings.validate()?;
    // The front-end here calls the store in-process; only a gRPC port for other nodes needs the
    // shared secret, and then exactly as `yubin meta` does.
    let callers = match &settings.grpc_listen {
        Some(_) => Some(service_auth::caller_check(
            settings.grpc_auth().secret("dev --grpc-listen")?.as_ref(),
        )),
        None => None,
    };
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating {}", settings.data_dir.display()))?;

    // The full-text index lives beside the data, published nowhere (one process).
    let mut index = settings
        .index
        .open(Some(&settings.data_dir.join("index")), None)?;
    let store = Arc::new(
        EmbeddedStore::open(settings.data_dir.join("meta.redb"))
            .await
            .context("opening the embedded metadata store")?
            .with_limits(settings.store)
            .with_group_commit(GroupCommit {
                max_calls: settings.group_commit_max_calls,
                max_work: std::time::Duration::from_millis(settings.group_commit_max_work_ms),
            })
            .with_full_text(index.full_text.clone()),
    );
    let blobs = settings
        .body_cache
        .wrap(Arc::new(FsBlobStore::new(settings.data_dir.join("blobs"))))?;
    index.start_indexer(store.clone(), blobs.clone(), store.clone());
    // Texts an earlier run left queued (or a database from before the index) get indexed.
    store.nudge_queued_accounts().await?;
    let accounts: Arc<dyn AccountStore> = store.clone();
    let mail: Arc<dyn MailStore> = store.clone();
    let params = settings.auth.password_params();
    let authenticator = Arc::new(settings.auth.authenticator(accounts.clone())?);
    config::watch_token_keys(authenticator.clone(), shutdown.clone());
    let auth: Arc<dyn Authenticator> = authenticator.clone();

    if accounts.user_by_name(DEMO_USER).await?.is_none() && accounts.list_users().await?.is_empty()
    {
        let hash = params.hash(DEMO_PASSWORD)?;
        accounts.create_user(DEMO_USER, &hash).await?;
        println!("created user {DEMO_USER} with password {DEMO_PASSWORD}");
    }

    let tls = match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => config::reloading_tls(cert, key, &shutdown)?,
        _ => yubin_imap::tls::persistent_self_signed(
            &settings.data_dir.join("tls"),
            &["localhost".to_string()],
        )?,
    };
    // Dev mode allows plaintext login on loopback only (ARCHITECTURE.md, "Protocol").
    let plaintext = is_loopback(&settings.imap_listen);
    // Spool next to the blobs so the final write is on the same file system.
    let spool = settings
        .spool_dir
        .clone()
        .unwrap_or_else(|| settings.data_dir.join("spool"));
    std::fs::create_dir_all(&spool).with_context(|| format!("creating {}", spool.display()))?;
    let imap_config = settings.limits.imap_config(
        "localhost",
        plaintext,
        Some(spool.clone()),
        settings.quota_admins.clone(),
    );
    let server = yubin_imap::ImapServer::with_timeouts(
        mail.clone(),
        auth.clone(),
        blobs.clone(),
        Some(tls),
        imap_config,
        settings.limits.timeouts(),
    );
    server.set_bearer_auth(authenticator.token_validator().is_some());

    let token = std::env::var("YUBIN_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    if token.is_none() && !is_loopback(&settings.http_listen) {
        anyhow::bail!("YUBIN_ADMIN_TOKEN must be set when --http-listen is not a loopback address");
    }

    let mut tasks = JoinSet::new();
    let imap = bind("imap", &settings.imap_listen).await?;
    let imaps = bind("imaps", &settings.imaps_listen).await?;
    let http_listener = bind("http", &settings.http_listen).await?;
    tasks.spawn(server.clone().serve(imap, false, shutdown.clone()));
    tasks.spawn(server.serve(imaps, true, shutdown.clone()));
    // LMTP delivery into the same stores, spooling next to the IMAP spool.
    super::lmtp::warn_if_exposed(&settings.lmtp_listen, &settings.lmtp_allow);
    let lmtp = yubin_lmtp::LmtpServer::new(
        mail.clone(),
        auth.clone(),
        blobs.clone(),
        yubin_lmtp::LmtpConfig {
            allowed_clients: super::lmtp::allowed_clients(&settings.lmtp_allow)?,
            ..settings.lmtp.lmtp_config("localhost", Some(spool))
        },
    );
    let lmtp_listener = bind("lmtp", &settings.lmtp_listen).await?;
    tasks.spawn(lmtp.serve(lmtp_listener, shutdown.clone()));
    let ready: http::ReadinessCheck = Arc::new(|| Box::pin(async { Ok(()) }));
    let admin = AdminBackend {
        accounts: accounts.clone(),
        mail: mail.clone(),
        blobs: blobs.clone(),
    };
    let app = http::router(ready, admin_router(admin, token, params));
    tasks.spawn(http::serve(http_listener, app, shutdown.clone()));
    if let (Some(addr), Some(callers)) = (&settings.grpc_listen, callers) {
        let listener = bind("grpc", addr).await?;
        let (mail, auth, shutdown) = (mail.clone(), auth.clone(), shutdown.clone());
        tasks.spawn(async move {
            yubin_meta::serve_grpc(listener, mail, auth, callers, shutdown)
                .await
                .map_err(std::io::Error::other)
        });
    }
    println!("data in {}", settings.data_dir.display());
    let result = super::wait_all(tasks, shutdown).await;
    drop(index);
    result
}
