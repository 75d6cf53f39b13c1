//! LOGIN (RFC 3501 §6.2.3).

use crate::out::{Next, Out, Reply};
use crate::session::Session;
use yubin_meta_api::{MetaError, MetaResult, UserId};

pub(crate) async fn run(s: &mut Session, out: &mut Out<'_>, user: &[u8], pass: &[u8]) -> Reply {
    if !s.plaintext_auth_allowed() {
        // RFC 3501 §6.2.3 / LOGINDISABLED: refused before looking at the credentials.
        return Reply::no("Plaintext authentication is disabled without TLS")
            .code("PRIVACYREQUIRED");
    }
    let (Ok(user), Ok(pass)) = (std::str::from_utf8(user), std::str::from_utf8(pass)) else {
        return failed(s, out);
    };
    verify(s, out, "login", user, pass).await
}

/// Checks a name and password (with the client's address, which meta throttles on) and produces
/// the reply shared by LOGIN and the password mechanisms of AUTHENTICATE.
pub(crate) async fn verify(
    s: &mut Session,
    out: &mut Out<'_>,
    mechanism: &'static str,
    user: &str,
    pass: &str,
) -> Reply {
    let result = s.server.auth.authenticate(user, pass, s.client).await;
    complete(s, out, mechanism, result).await
}

/// The reply to an authentication attempt that meta has answered; `mechanism` labels the
/// `yubin_imap_auth_total` metric (`login` for the LOGIN command).
pub(crate) async fn complete(
    s: &mut Session,
    out: &mut Out<'_>,
    mechanism: &'static str,
    result: MetaResult<UserId>,
) -> Reply {
    let outcome = match &result {
        Ok(_) => "success",
        Err(MetaError::AuthenticationFailed | MetaError::NotFound(_)) => "failure",
        Err(_) => "error",
    };
    metrics::counter!("yubin_imap_auth_total", "mechanism" => mechanism, "result" => outcome)
        .increment(1);
    match result {
        Ok(id) => {
            match s.server.is_quota_admin(id).await {
                Ok(admin) => s.quota_admin = admin,
                Err(e) => return Reply::meta(&e),
            }
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

/// Counts a failure; past the per-connection limit the connection is closed. The answer is the
/// same whether the name exists, the secret was wrong or meta refused to check because the name
/// or the address is throttled (RFC 5530 AUTHENTICATIONFAILED).
pub(crate) fn failed(s: &mut Session, out: &mut Out<'_>) -> Reply {
    s.auth_failures += 1;
    tracing::info!(failures = s.auth_failures, "authentication failed");
    let reply = Reply::no("Authentication failed").code("AUTHENTICATIONFAILED");
    if s.auth_failures >= s.server.config.max_auth_failures {
        out.line("* BYE Too many authentication failures");
        return reply.then(Next::Disconnect);
    }
    reply
}
