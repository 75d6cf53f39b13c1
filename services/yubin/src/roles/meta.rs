//! `yubin meta`: the metadata service on Redis. Serves gRPC to front-ends and the admin API on
//! its HTTP port.

use crate::cli::MetaArgs;
use crate::config;
use crate::http;
use crate::roles::{bind, is_loopback};
use crate::service_auth::{self, GrpcAuth};
use anyhow::Context;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use yubin_blob::{BlobStore, S3BlobStore};
use yubin_meta::{AdminBackend, admin_router};
use yubin_meta_api::{AccountStore, Authenticator, MailStore};
use yubin_meta_store::{Durability, RedisStore, RollbackSettings, StoreLimits};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaSettings {
    /// One URL, or with `redis_cluster` a comma-separated list of cluster seed nodes.
    #[serde(default = "default_redis")]
    redis_url: String,
    #[serde(default)]
    redis_cluster: bool,
    /// Replicas that must acknowledge each write (WAIT); 0 = off.
    #[serde(default)]
    redis_wait_replicas: u32,
    /// Each write must also be in the AOF (WAITAOF, Redis 7.2).
    #[serde(default)]
    redis_waitaof: bool,
    #[serde(default = "default_wait_timeout_ms")]
    redis_wait_timeout_ms: u64,
    /// Trust that a Redis not reporting its maxmemory-policy does not evict.
    #[serde(default)]
    redis_assume_noeviction: bool,
    /// Mailboxes with a high-water mark (rollback detection).
    #[serde(default = "default_high_water_mailboxes")]
    redis_high_water_mailboxes: usize,
    /// Interval of the failover check; 0 = off.
    #[serde(default = "default_failover_check_ms")]
    redis_failover_check_ms: u64,
    #[serde(default = "default_grpc")]
    grpc_listen: String,
    /// The shared secret of the gRPC link between roles (`service_auth`).
    #[serde(default)]
    grpc_secret_file: Option<PathBuf>,
    #[serde(default)]
    grpc_insecure: bool,
    #[serde(default = "default_http")]
    http_listen: String,
    /// Where the front-ends keep message bodies: deleting an account deletes them too.
    #[serde(default = "default_bucket")]
    s3_bucket: String,
    #[serde(default)]
    store: StoreLimits,
    #[serde(default)]
    auth: config::AuthSettings,
    #[serde(default)]
    index: config::IndexSettings,
}

fn default_bucket() -> String {
    "yubin".into()
}

fn default_high_water_mailboxes() -> usize {
    RollbackSettings::default().high_water_mailboxes
}

fn default_failover_check_ms() -> u64 {
    2_000
}

fn default_wait_timeout_ms() -> u64 {
    1_000
}

fn default_redis() -> String {
    "redis://127.0.0.1:6379".into()
}
fn default_grpc() -> String {
    "127.0.0.1:50051".into()
}
fn default_http() -> String {
    "127.0.0.1:8080".into()
}

impl MetaSettings {
    fn validate(&self) -> anyhow::Result<()> {
        config::check_addr("grpc_listen", &self.grpc_listen)?;
        config::check_addr("http_listen", &self.http_listen)?;
        let urls = self.redis_urls();
        if urls.is_empty() {
            anyhow::bail!("redis_url is empty");
        }
        self.auth.validate()?;
        self.durability()
            .validate()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        self.rollback()
            .validate()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        config::check_store_limits(&self.store)?;
        self.index.validate()?;
        self.grpc_auth().validate()?;
        if self.s3_bucket.is_empty() {
            anyhow::bail!("--s3-bucket must not be empty");
        }
        if urls.len() > 1 && !self.redis_cluster {
            anyhow::bail!("redis_url lists several nodes: set redis_cluster for a Redis Cluster");
        }
        for url in &urls {
            if !url.starts_with("redis://") && !url.starts_with("rediss://") {
                anyhow::bail!("redis_url must start with redis:// or rediss:// (got {url:?})");
            }
        }
        Ok(())
    }

    fn grpc_auth(&self) -> GrpcAuth<'_> {
        GrpcAuth {
            secret_file: self.grpc_secret_file.as_ref(),
            insecure: self.grpc_insecure,
        }
    }

    fn durability(&self) -> Durability {
        Durability {
            wait_replicas: self.redis_wait_replicas,
            waitaof: self.redis_waitaof,
            wait_timeout: std::time::Duration::from_millis(self.redis_wait_timeout_ms),
        }
    }

    fn rollback(&self) -> RollbackSettings {
        RollbackSettings {
            high_water_mailboxes: self.redis_high_water_mailboxes,
            identity_check: std::time::Duration::from_millis(self.redis_failover_check_ms),
        }
    }

    fn redis_urls(&self) -> Vec<String> {
        self.redis_url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect()
    }
}

pub async fn run(args: MetaArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let settings: MetaSettings = config::load(&args, args.config.as_deref())?;
    settings.validate()?;
    // Before connecting anywhere: a role without its secret must not start at all.
    let callers = service_auth::caller_check(settings.grpc_auth().secret("meta")?.as_ref());
    let store = if settings.redis_cluster {
        RedisStore::connect_cluster(&settings.redis_urls())
            .await
            .context("connecting to the redis cluster")?
    } else {
        RedisStore::connect(&settings.redis_url)
            .await
            .context("connecting to redis")?
    };
    // The S3 client connects on first use. Meta reads and writes the published full-text
    // index there (`ix/`) and deletes a deleted account's mail.
    let blobs: Arc<dyn BlobStore> = Arc::new(
        S3BlobStore::from_env(settings.s3_bucket.clone())
            .await
            .context("configuring S3")?,
    );
    let mut index = settings.index.open(None, Some(blobs.clone()))?;
    let store = Arc::new(
        store
            .with_limits(settings.store)
            .with_durability(settings.durability())
            .with_rollback(settings.rollback())
            .with_full_text(index.full_text.clone()),
    );
    index.start_indexer(store.clone(), blobs.clone(), store.clone());
    // An evicting Redis loses mailboxes and UID counters silently: refuse to run on one.
    store
        .check_eviction_policy(settings.redis_assume_noeviction)
        .await
        .context("checking redis maxmemory-policy")?;
    match store.persistence_enabled().await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "redis persistence is off (no AOF, no RDB snapshots): a redis restart loses all mail \
             metadata; use appendonly yes with appendfsync always, or replicas"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot tell whether redis persists data"),
    }
    let accounts: Arc<dyn AccountStore> = store.clone();
    let mail: Arc<dyn MailStore> = store.clone();
    // Failed logins are counted in Redis too, so every meta replica shares one budget.
    let authenticator = Arc::new(
        settings
            .auth
            .authenticator(accounts.clone())?
            .with_shared_counters(store.clone()),
    );
    config::watch_token_keys(authenticator.clone(), shutdown.clone());
    let auth: Arc<dyn Authenticator> = authenticator;

    let token = std::env::var("YUBIN_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    if token.is_none() && !is_loopback(&settings.http_listen) {
        anyhow::bail!("YUBIN_ADMIN_TOKEN must be set when --http-listen is not a loopback address");
    }

    let mut tasks = JoinSet::new();
    let grpc = bind("grpc", &settings.grpc_listen).await?;
    let http_listener = bind("http", &settings.http_listen).await?;
    {
        let (mail, auth, shutdown) = (mail.clone(), auth.clone(), shutdown.clone());
        tasks.spawn(async move {
            yubin_meta::serve_grpc(grpc, mail, auth, callers, shutdown)
                .await
                .map_err(std::io::Error::other)
        });
    }
    let probe = store.clone();
    let ready: http::ReadinessCheck = Arc::new(move || {
        let probe = probe.clone();
        Box::pin(async move { probe.ping().await.map_err(|e| format!("redis: {e}")) })
    });
    let admin = AdminBackend {
        accounts,
        mail: mail.clone(),
        blobs,
    };
    let app = http::router(
        ready,
        admin_router(admin, token, settings.auth.password_params()),
    );
    tasks.spawn(http::serve(http_listener, app, shutdown.clone()));
    let result = super::wait_all(tasks, shutdown).await;
    // Kept to here: a temporary index directory goes when the role ends.
    drop(index);
    result
}
