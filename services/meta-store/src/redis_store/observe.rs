//! The one place every Redis command of the store passes through ([`super::Conn`]'s
//! `ConnectionLike` impl calls [`observe`]): a `redis` span per call (a child of the RPC that
//! caused it, so a trace shows meta's Redis round trips) and the Prometheus series
//! `yubin_redis_command_duration_seconds{operation}` and `yubin_redis_errors_total{operation}`.
//!
//! The operation is the script's name for EVALSHA (`append`, `select`, …, registered by
//! [`register_script`]) and the lower-cased command name otherwise (`hget`, `ping`, …).

use redis::{Arg, Cmd, RedisError, RedisFuture, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};
use std::time::Instant;
use tracing::Instrument;

/// SHA1 of a script's text → its name. Process-wide because the hash identifies the text
/// whichever store instance loaded it.
static SCRIPT_NAMES: LazyLock<RwLock<HashMap<String, &'static str>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

/// Names a script for the metrics and spans of its EVALSHA calls.
pub(super) fn register_script(hash: &str, name: &'static str) {
    SCRIPT_NAMES
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(hash.to_string(), name);
    // The error series exists from the start (at 0), so alerts see it before the first failure.
    metrics::counter!("yubin_redis_errors_total", "operation" => name).increment(0);
}

/// The metric label of one command.
pub(super) fn operation(cmd: &Cmd) -> Cow<'static, str> {
    let mut args = cmd.args_iter();
    let name = match args.next() {
        Some(Arg::Simple(name)) => name,
        _ => return Cow::Borrowed("unknown"),
    };
    if name.eq_ignore_ascii_case(b"EVALSHA") {
        if let Some(Arg::Simple(hash)) = args.next()
            && let Ok(hash) = std::str::from_utf8(hash)
            && let Some(name) = SCRIPT_NAMES
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(hash)
        {
            return Cow::Borrowed(name);
        }
        return Cow::Borrowed("evalsha");
    }
    match std::str::from_utf8(name) {
        Ok(name) => Cow::Owned(name.to_ascii_lowercase()),
        Err(_) => Cow::Borrowed("unknown"),
    }
}

/// Times `call` under a `redis` span and counts it as an error when Redis failed. A script's
/// own verdicts (`YNOTFOUND`, `YEXISTS`, … — the prelude's `Y`-prefixed error codes) are
/// answers, not failures; nor is `NOSCRIPT`, which only makes the client load the script.
pub(super) fn observe<'a>(
    operation: Cow<'static, str>,
    call: RedisFuture<'a, Value>,
) -> RedisFuture<'a, Value> {
    let span = tracing::info_span!(
        "redis",
        otel.name = %format_args!("redis {operation}"),
        otel.kind = "client",
        db.system = "redis",
        db.operation = %operation,
    );
    Box::pin(
        async move {
            let started = Instant::now();
            let result = call.await;
            metrics::histogram!("yubin_redis_command_duration_seconds", "operation" => operation.clone())
                .record(started.elapsed().as_secs_f64());
            let failed = match &result {
                Ok(Value::ServerError(e)) => !is_answer(Some(e.code())),
                Ok(_) => false,
                Err(e) => !is_answer(e.code()),
            };
            if failed {
                metrics::counter!("yubin_redis_errors_total", "operation" => operation).increment(1);
            }
            result
        }
        .instrument(span),
    )
}

/// Like [`observe`] for a pipeline, labelled by its first command.
pub(super) fn observe_pipeline<'a>(
    operation: Cow<'static, str>,
    call: RedisFuture<'a, Vec<Value>>,
) -> RedisFuture<'a, Vec<Value>> {
    let span = tracing::info_span!(
        "redis",
        otel.name = %format_args!("redis pipeline {operation}"),
        otel.kind = "client",
        db.system = "redis",
        db.operation = %operation,
    );
    Box::pin(
        async move {
            let started = Instant::now();
            let result = call.await;
            metrics::histogram!("yubin_redis_command_duration_seconds", "operation" => operation.clone())
                .record(started.elapsed().as_secs_f64());
            if result.as_ref().err().is_some_and(|e: &RedisError| !is_answer(e.code())) {
                metrics::counter!("yubin_redis_errors_total", "operation" => operation).increment(1);
            }
            result
        }
        .instrument(span),
    )
}

fn is_answer(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with('Y') || c == "NOSCRIPT")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_named_and_commands_lower_cased() {
        register_script("0123456789abcdef0123456789abcdef01234567", "append");
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha
            .arg("0123456789abcdef0123456789abcdef01234567")
            .arg(1);
        assert_eq!(operation(&evalsha), "append");
        let mut unknown = redis::cmd("EVALSHA");
        unknown.arg("ffff");
        assert_eq!(operation(&unknown), "evalsha");
        assert_eq!(operation(&redis::cmd("HGET")), "hget");
    }

    #[test]
    fn script_verdicts_are_answers_not_failures() {
        assert!(is_answer(Some("YNOTFOUND")));
        assert!(is_answer(Some("NOSCRIPT")));
        assert!(!is_answer(Some("ERR")));
        assert!(!is_answer(None));
    }
}
