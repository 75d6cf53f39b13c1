//! LOGIN (RFC 3501 §6.2.3).

use crate::out::{Next, Out, Reply};
use crate::session::Session;
use yubin_meta_api::MetaError;

pub(crate) async fn run(s: &mut Session, out: &mut Out<'_>, user: &[u8], pass: &[u8]) -> Reply {
    if !s.plaintext_auth_allowed() {
        // RFC 3501 §6.2.3 / LOGINDISABLED: refused before looking at the credentials.
        return Reply::no("Plaintext authentication is disabled without TLS")
            .code("PRIVACYREQUIRED");
    }
    let (Ok(user), Ok(pass)) = (std::str::from_utf8(user), std::str::from_utf8(pass)) else {
        return failed(s, out);
    };
    verify(s, out, user, pass).await
}

/// Checks credentials and produces the reply shared by LOGIN and AUTHENTICATE.
pub(crate) async fn verify(s: &mut Session, out: &mut Out<'_>, user: &str, pass: &str) -> Reply {
    match s.server.auth.authenticate(user, pass).await {
        Ok(id) => {
            tracing::Span::current().record("user", id.0);
            tracing::info!(user = %id, "authenticated");
            // The capability list changes after login (RFC 3501 §7.2.1 suggests the code).
            let caps = s.capability_list(false);
            Reply::ok("Logged in")
                .code(format!("CAPABILITY {caps}"))
                .then(Next::Authenticated(id))
        }
        Err(MetaError::AuthenticationFailed | MetaError::NotFound(_)) => failed(s, out),
        Err(e) => Reply::meta(&e),
    }
}

/// Counts a failure; past the per-connection limit the connection is closed.
pub(crate) fn failed(s: &mut Session, out: &mut Out<'_>) -> Reply {
    s.auth_failures += 1;
    crate::telemetry::auth_failure();
    tracing::info!(failures = s.auth_failures, "authentication failed");
    let reply = Reply::no("Authentication failed").code("AUTHENTICATIONFAILED");
    if s.auth_failures >= s.server.config.max_auth_failures {
        out.line("* BYE Too many authentication failures");
        return reply.then(Next::Disconnect);
    }
    reply
}
