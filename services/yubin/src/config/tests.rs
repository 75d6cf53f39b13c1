use super::limits::{MAX_DRAIN_SECONDS, MAX_THREAD_REFERENCES, default_max_line};
use super::*;
use crate::cli::{Cli, Command};
use clap::Parser;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    imap_listen: String,
    #[serde(default)]
    http_listen: Option<String>,
    #[serde(default)]
    limits: ConnectionLimits,
}

fn dev_args(argv: &[&str]) -> crate::cli::DevArgs {
    match Cli::try_parse_from(argv).expect("parse").command {
        Command::Dev(args) => args,
        _ => unreachable!("dev subcommand"),
    }
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(f.path(), text).expect("write");
    f
}

#[test]
fn a_flag_beats_the_file_and_limits_merge_key_by_key() {
    let f = file(
        "imap_listen = \"127.0.0.1:1\"\nhttp_listen = \"127.0.0.1:2\"\n\
         [limits]\nmax_nesting = 7\nmax_connections = 9\n",
    );
    let args = dev_args(&[
        "yubin",
        "dev",
        "--imap-listen",
        "127.0.0.1:3",
        "--max-nesting",
        "5",
    ]);
    let s: Settings = load(&args, Some(f.path())).expect("load");
    assert_eq!(s.imap_listen, "127.0.0.1:3");
    assert_eq!(s.http_listen.as_deref(), Some("127.0.0.1:2"));
    assert_eq!(s.limits.max_nesting, 5);
    assert_eq!(s.limits.max_connections, 9);
    assert_eq!(s.limits.max_line_bytes, default_max_line());
}

#[test]
fn quota_admins_come_from_the_flag_or_the_file() {
    #[derive(Debug, Deserialize)]
    struct WithAdmins {
        #[serde(default)]
        quota_admins: Vec<String>,
    }
    let f = file("quota_admins = [\"root\"]\n");
    let s: WithAdmins = load(&dev_args(&["yubin", "dev"]), Some(f.path())).expect("load");
    assert_eq!(s.quota_admins, ["root"]);
    let args = dev_args(&["yubin", "dev", "--quota-admins", "alice,bob"]);
    let s: WithAdmins = load(&args, Some(f.path())).expect("load");
    assert_eq!(s.quota_admins, ["alice", "bob"]);
    check_quota_admins(&s.quota_admins).expect("valid names");
    let config = ConnectionLimits::default().imap_config("h", false, None, s.quota_admins);
    assert_eq!(config.quota_admins, ["alice", "bob"]);
    assert!(check_quota_admins(&["".to_string()]).is_err());
    assert!(check_quota_admins(&["a b".to_string()]).is_err());
    assert!(check_quota_admins(&["Ann".to_string(), "ann".to_string()]).is_err());
}

#[test]
fn lmtp_limits_merge_from_flags_and_file() {
    #[derive(Debug, Deserialize)]
    struct LmtpSettings {
        #[serde(default)]
        lmtp_listen: Option<String>,
        #[serde(default)]
        lmtp: LmtpLimits,
    }
    let f = file(
        "lmtp_listen = \"127.0.0.1:24\"\n[lmtp]\nmax_recipients = 500\nover_quota = \"temporary\"\n",
    );
    let args = dev_args(&["yubin", "dev", "--lmtp-max-message-bytes", "2048"]);
    let s: LmtpSettings = load(&args, Some(f.path())).expect("load");
    assert_eq!(s.lmtp_listen.as_deref(), Some("127.0.0.1:24"));
    assert_eq!(s.lmtp.max_recipients, 500);
    assert_eq!(s.lmtp.max_message_bytes, 2048);
    assert_eq!(s.lmtp.over_quota, crate::cli::OverQuota::Temporary);
    let config = s.lmtp.lmtp_config("mx", None);
    assert_eq!(config.over_quota, yubin_lmtp::OverQuotaReply::Temporary);
    let args = dev_args(&["yubin", "dev", "--lmtp-over-quota", "permanent"]);
    let s: LmtpSettings = load(&args, Some(f.path())).expect("load");
    assert_eq!(s.lmtp.over_quota, crate::cli::OverQuota::Permanent);
    let f = file("[lmtp]\nmax_recipients = 5\n");
    let s: LmtpSettings = load(&dev_args(&["yubin", "dev"]), Some(f.path())).expect("load");
    assert!(
        s.lmtp.validate().is_err(),
        "RFC 5321 asks for 100 recipients"
    );
    let f = file("[lmtp]\nmax_recipient = 500\n");
    assert!(load::<_, LmtpSettings>(&dev_args(&["yubin", "dev"]), Some(f.path())).is_err());
}

#[test]
fn unknown_keys_are_refused() {
    let f = file("imap_listen = \"127.0.0.1:1\"\nimap_lisen = \"typo\"\n");
    let args = dev_args(&["yubin", "dev"]);
    assert!(load::<_, Settings>(&args, Some(f.path())).is_err());
    let f = file("imap_listen = \"127.0.0.1:1\"\n[limits]\nmax_nestin = 3\n");
    assert!(load::<_, Settings>(&args, Some(f.path())).is_err());
}

#[test]
fn hostile_client_limits_reach_the_front_end() {
    let limits: ConnectionLimits = toml::from_str(
        "max_append_messages = 5\nmax_catenate_parts = 6\nmax_search_keys = 7\n\
         max_search_depth = 8\nmax_connections_per_address = 9\n\
         pre_auth_max_bytes = 2048\nlogin_timeout_seconds = 11\nidle_max_seconds = 600\n\
         literal_min_bytes_per_second = 100\n",
    )
    .expect("parses");
    limits.validate().expect("valid");
    let config = limits.imap_config("h", false, None, Vec::new());
    assert_eq!(
        (
            config.limits.max_append_messages,
            config.limits.max_catenate_parts,
            config.limits.max_search_keys,
            config.limits.max_search_depth,
        ),
        (5, 6, 7, 8)
    );
    assert_eq!(config.max_connections_per_address, 9);
    assert_eq!(config.pre_auth_max_bytes, 2048);
    assert_eq!(limits.timeouts().login, std::time::Duration::from_secs(11));
    assert_eq!(
        limits.timeouts().idle_max,
        std::time::Duration::from_secs(600)
    );
    assert_eq!(limits.timeouts().literal_min_rate, 100);
    for bad in [
        "max_search_depth = 1001",
        "pre_auth_max_bytes = 100",
        "login_timeout_seconds = 0",
        "idle_max_seconds = 59",
        "literal_min_bytes_per_second = 0",
        "max_append_messages = 0",
    ] {
        let limits: ConnectionLimits = toml::from_str(bad).expect("parses");
        assert!(limits.validate().is_err(), "{bad}");
    }
}

#[test]
fn limits_are_validated() {
    let limits = ConnectionLimits {
        idle_keepalive_seconds: 0,
        ..ConnectionLimits::default()
    };
    assert!(limits.validate().is_err());
    assert!(ConnectionLimits::default().validate().is_ok());
    let limits = ConnectionLimits {
        drain_seconds: MAX_DRAIN_SECONDS + 1,
        ..ConnectionLimits::default()
    };
    assert!(limits.validate().is_err());
}

#[test]
fn sort_and_thread_limits_reach_the_front_end() {
    for bad in [
        ConnectionLimits {
            thread_max_references: 0,
            ..ConnectionLimits::default()
        },
        ConnectionLimits {
            thread_max_references: MAX_THREAD_REFERENCES + 1,
            ..ConnectionLimits::default()
        },
        ConnectionLimits {
            sort_max_field_bytes: 255,
            ..ConnectionLimits::default()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
    let f = file(
        "imap_listen = \"127.0.0.1:1\"\n[limits]\nthread_max_references = 16\nsort_max_field_bytes = 1024\n",
    );
    let args = dev_args(&["yubin", "dev", "--thread-max-references", "8"]);
    let s: Settings = load(&args, Some(f.path())).expect("load");
    let config = s.limits.imap_config("localhost", false, None, Vec::new());
    assert_eq!(
        config.sort_thread,
        yubin_imap::SortThreadLimits {
            max_references: 8,
            max_sort_field_bytes: 1024,
        }
    );
    let f = file("imap_listen = \"127.0.0.1:1\"\n");
    let s: Settings = load(&dev_args(&["yubin", "dev"]), Some(f.path())).expect("load");
    assert_eq!(
        s.limits
            .imap_config("localhost", false, None, Vec::new())
            .sort_thread,
        yubin_imap::SortThreadLimits::default()
    );
}

#[test]
fn metadata_limits_come_from_the_flag_or_the_file() {
    let f = file(
        "imap_listen = \"127.0.0.1:1\"\n[limits]\nmetadata_max_entries = 16\n\
         [store]\nmax_metadata_bytes_per_account = 200000\n",
    );
    #[derive(Debug, Deserialize)]
    struct WithStore {
        #[serde(default)]
        limits: ConnectionLimits,
        #[serde(default)]
        store: yubin_meta_store::StoreLimits,
    }
    let args = dev_args(&["yubin", "dev", "--metadata-max-value-bytes", "4096"]);
    let s: WithStore = load(&args, Some(f.path())).expect("load");
    s.limits.validate().expect("valid");
    assert_eq!(
        s.limits
            .imap_config("localhost", false, None, Vec::new())
            .metadata,
        yubin_imap::MetadataLimits {
            max_entry_size: 4096,
            max_entries: 16,
        }
    );
    assert_eq!(s.store.max_metadata_bytes_per_account, 200_000);
    check_store_limits(&s.store).expect("valid store limits");
    let bad = |limits: ConnectionLimits| limits.validate().is_err();
    assert!(bad(ConnectionLimits {
        metadata_max_value_bytes: 10,
        ..ConnectionLimits::default()
    }));
    assert!(bad(ConnectionLimits {
        metadata_max_entries: 0,
        ..ConnectionLimits::default()
    }));
}

#[test]
fn the_drain_window_comes_from_the_flag_or_the_file() {
    let f = file("imap_listen = \"127.0.0.1:1\"\n[limits]\ndrain_seconds = 25\n");
    let s: Settings = load(&dev_args(&["yubin", "dev"]), Some(f.path())).expect("load");
    assert_eq!(s.limits.drain_seconds, 25);
    let args = dev_args(&["yubin", "dev", "--drain-seconds", "3"]);
    let s: Settings = load(&args, Some(f.path())).expect("load");
    let config = s.limits.imap_config("localhost", false, None, Vec::new());
    assert_eq!(config.drain_window, std::time::Duration::from_secs(3));
    let f = file("imap_listen = \"127.0.0.1:1\"\n");
    let s: Settings = load(&dev_args(&["yubin", "dev"]), Some(f.path())).expect("load");
    assert_eq!(s.limits.drain_seconds, 10, "the default");
}

#[test]
fn auth_settings_merge_and_validate() {
    #[derive(Debug, Deserialize)]
    struct WithAuth {
        #[serde(default)]
        auth: AuthSettings,
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "a shared secret of at least thirty-two bytes\n").expect("write");
    let f = file(&format!(
        "[auth]\nargon2_memory_kib = 65536\nauth_cache_seconds = 60\n\
         oauth_issuer = \"https://id.test\"\noauth_hs256_secret_file = {:?}\n",
        secret.display().to_string()
    ));
    let args = dev_args(&["yubin", "dev", "--argon2-iterations", "3"]);
    let s: WithAuth = load(&args, Some(f.path())).expect("load");
    assert_eq!(s.auth.argon2_memory_kib, 65536);
    assert_eq!(s.auth.argon2_iterations, 3);
    assert_eq!(s.auth.argon2_parallelism, 1);
    s.auth.validate().expect("valid");
    let config = s.auth.auth_config();
    assert_eq!(config.cache_ttl, std::time::Duration::from_secs(60));
    assert_eq!(config.user_throttle.max_failures, 10);
    assert!(s.auth.token_settings().expect("tokens").is_some());

    // Defaults without any auth setting: no bearer tokens.
    let s: WithAuth = load(&dev_args(&["yubin", "dev"]), None).expect("load");
    s.auth.validate().expect("defaults are valid");
    assert!(s.auth.token_settings().expect("tokens").is_none());

    let bad = |auth: AuthSettings| auth.validate().is_err();
    assert!(bad(AuthSettings {
        argon2_memory_kib: 4,
        ..AuthSettings::default()
    }));
    assert!(bad(AuthSettings {
        argon2_parallelism: 0,
        ..AuthSettings::default()
    }));
    assert!(bad(AuthSettings {
        auth_max_delay_ms: 60_000,
        ..AuthSettings::default()
    }));
    assert!(bad(AuthSettings {
        oauth_issuer: Some("https://id.test".into()),
        ..AuthSettings::default()
    }));
    assert!(bad(AuthSettings {
        oauth_jwks_file: Some(secret.clone()),
        ..AuthSettings::default()
    }));
    assert!(bad(AuthSettings {
        oauth_issuer: Some("https://id.test".into()),
        oauth_jwks_file: Some(secret.clone()),
        oauth_hs256_secret_file: Some(secret),
        ..AuthSettings::default()
    }));
    let f = file("[auth]\nargon2_memory = 1\n");
    assert!(load::<_, WithAuth>(&dev_args(&["yubin", "dev"]), Some(f.path())).is_err());
}

#[test]
fn body_cache_settings_merge_and_validate() {
    #[derive(Debug, Deserialize)]
    struct WithCache {
        #[serde(default)]
        body_cache: BodyCacheSettings,
    }
    let f = file("[body_cache]\nmemory_bytes = 4096\ndisk_bytes = 1048576\n");
    let args = dev_args(&[
        "yubin",
        "dev",
        "--body-cache-object-max-bytes",
        "2048",
        "--body-cache-dir",
        "cache",
    ]);
    let s: WithCache = load(&args, Some(f.path())).expect("load");
    assert_eq!(s.body_cache.memory_bytes, 4096);
    assert_eq!(s.body_cache.object_max_bytes, 2048);
    assert_eq!(s.body_cache.disk_bytes, 1048576);
    assert_eq!(
        s.body_cache.dir.as_deref(),
        Some(std::path::Path::new("cache"))
    );
    assert!(s.body_cache.validate().is_ok());
    let defaults: WithCache = load(&dev_args(&["yubin", "dev"]), None).expect("load");
    assert!(defaults.body_cache.memory_bytes >= defaults.body_cache.object_max_bytes);
    assert!(defaults.body_cache.validate().is_ok());
    // A disk tier without a memory tier, an object larger than the memory: refused.
    let f = file("[body_cache]\nmemory_bytes = 0\ndir = \"cache\"\n");
    let s: WithCache = load(&dev_args(&["yubin", "dev"]), Some(f.path())).expect("load");
    assert!(s.body_cache.validate().is_err());
    let f = file("[body_cache]\nmemory_bytes = 1000\nobject_max_bytes = 2000\n");
    let s: WithCache = load(&dev_args(&["yubin", "dev"]), Some(f.path())).expect("load");
    assert!(s.body_cache.validate().is_err());
    let f = file("[body_cache]\nsize = 1\n");
    assert!(load::<_, WithCache>(&dev_args(&["yubin", "dev"]), Some(f.path())).is_err());
}
