//! The admin API without a token answers only requests addressed to this machine by IP or as
//! `localhost`.
//!
//! Without a token (`yubin dev`, or an operator who relies on the network alone), a web page in
//! a browser on the same machine could otherwise drive the API by DNS rebinding: its own host
//! name, re-pointed at 127.0.0.1, makes the browser send same-origin requests to the API with
//! `Host: attacker.example`. Such a request is refused (403) unless its host is an IP literal or
//! `localhost` / `*.localhost` (RFC 6761 §6.3), which no rebinding name can be. Clients that
//! reach the API by a DNS name must present the token, as every deployment in this repository
//! does.

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;

/// Refuses a request whose host (HTTP/2 `:authority`, else `Host`) is a DNS name other than
/// `localhost`. A request naming no host at all (HTTP/1.0 tools) cannot come from a browser and
/// passes.
pub(crate) async fn require_local_host(request: Request, next: Next) -> Response {
    let host = request
        .uri()
        .authority()
        .map(|a| a.host().to_string())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
    match host {
        Some(host) if !is_local_host(&host) => (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({
                "error": "without an admin token the API answers only requests to an IP address or localhost"
            })),
        )
            .into_response(),
        _ => next.run(request).await,
    }
}

/// Whether `host` (a `Host` header value: a name or IP literal and an optional port) is an IP
/// literal or `localhost`.
pub(crate) fn is_local_host(host: &str) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // `[v6]` or `[v6]:port` (RFC 3986 §3.2.2).
        match rest.split_once(']') {
            Some((v6, "")) => v6,
            Some((v6, port)) if port.strip_prefix(':').is_some_and(is_port) => v6,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name.parse::<IpAddr>().is_ok() || name == "localhost" || name.ends_with(".localhost")
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::is_local_host;

    #[test]
    fn ip_literals_and_localhost_are_local() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "10.1.2.3:80",
            "[::1]",
            "[::1]:8080",
            "localhost",
            "LocalHost:8080",
            "localhost.",
            "admin.localhost:9000",
        ] {
            assert!(is_local_host(host), "{host}");
        }
    }

    #[test]
    fn dns_names_are_not() {
        for host in [
            "attacker.example",
            "attacker.example:8080",
            "127.0.0.1.attacker.example",
            "localhost.attacker.example",
            "[::1",
            "[::1]x",
            "127.0.0.1:80:80",
            "meta:8080",
            "",
        ] {
            assert!(!is_local_host(host), "{host}");
        }
    }
}
