//! AUTHENTICATE (RFC 3501 §6.2.2) with the PLAIN mechanism (RFC 4616) and SASL-IR (RFC 4959).

use crate::cmd::login;
use crate::out::{Next, Out, Reply};
use crate::session::Session;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    mechanism: &str,
    initial: Option<&str>,
) -> Reply {
    if !mechanism.eq_ignore_ascii_case("PLAIN") {
        return Reply::no("Unsupported authentication mechanism");
    }
    if !s.plaintext_auth_allowed() {
        return Reply::no("Plaintext authentication is disabled without TLS")
            .code("PRIVACYREQUIRED");
    }
    match initial {
        // RFC 4959 §3: `=` is an empty initial response.
        Some("=") => plain(s, out, b"").await,
        Some(b64) => match STANDARD.decode(b64) {
            Ok(bytes) => plain(s, out, &bytes).await,
            Err(_) => Reply::bad("Invalid base64 in the initial response"),
        },
        None => Reply::ok("continue").then(Next::SaslContinue),
    }
}

/// Completes the exchange with the client's response line to the `+` continuation.
pub(crate) async fn finish(s: &mut Session, out: &mut Out<'_>, line: &[u8]) -> Reply {
    if line == b"*" {
        // RFC 3501 §6.2.2: a cancelled exchange is answered BAD.
        return Reply::bad("Authentication cancelled");
    }
    match STANDARD.decode(line) {
        Ok(bytes) => plain(s, out, &bytes).await,
        Err(_) => Reply::bad("Invalid base64 in the SASL response"),
    }
}

/// `authzid NUL authcid NUL passwd` (RFC 4616 §2). Acting as another user is not offered, so an
/// authzid must be empty or name the authenticating user.
async fn plain(s: &mut Session, out: &mut Out<'_>, msg: &[u8]) -> Reply {
    let mut fields = msg.split(|&b| b == 0);
    let (Some(authz), Some(authc), Some(pass), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return login::failed(s, out);
    };
    let (Ok(authz), Ok(authc), Ok(pass)) = (
        std::str::from_utf8(authz),
        std::str::from_utf8(authc),
        std::str::from_utf8(pass),
    ) else {
        return login::failed(s, out);
    };
    if !authz.is_empty() && authz != authc {
        return Reply::no("Authorization identity not allowed").code("AUTHORIZATIONFAILED");
    }
    login::verify(s, out, authc, pass).await
}
