//! AUTHENTICATE (RFC 3501 §6.2.2, RFC 9051 §6.2.2) with SASL-IR (RFC 4959) and the mechanisms
//! PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login), OAUTHBEARER (RFC 7628) and XOAUTH2
//! (Google's pre-standard form of the same bearer-token exchange).
//!
//! Every mechanism here hands a reusable secret (a password or a bearer token) to the server, so
//! all of them are refused on a connection without TLS unless plaintext authentication is allowed
//! (the LOGINDISABLED policy). The bearer mechanisms are offered only when meta validates tokens.
//!
//! An exchange that needs more than one client message is kept in [`Session::sasl`]; the
//! connection sends [`challenge`] as the continuation request and hands the client's answer to
//! [`finish`].

use crate::cmd::login;
use crate::out::{Next, Out, Reply};
use crate::session::Session;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Where a multi-step exchange stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exchange {
    /// PLAIN without an initial response: the credentials come next.
    Plain,
    /// LOGIN: the user name comes next.
    LoginUser,
    /// LOGIN: the password of `user` comes next.
    LoginPassword { user: String },
    /// OAUTHBEARER or XOAUTH2 without an initial response: the client message comes next.
    Bearer(BearerMechanism),
    /// The token was refused and the error was sent as a challenge; the client's next message
    /// only acknowledges it (RFC 7628 §3.2.3) and the exchange then fails.
    BearerFailed { challenge: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BearerMechanism {
    OAuthBearer,
    XOAuth2,
}

impl BearerMechanism {
    fn label(self) -> &'static str {
        match self {
            BearerMechanism::OAuthBearer => "oauthbearer",
            BearerMechanism::XOAuth2 => "xoauth2",
        }
    }
}

/// The challenge of the continuation request for the exchange in progress, base64 (empty when
/// the mechanism sends none).
pub(crate) fn challenge(s: &Session) -> String {
    match &s.sasl {
        // The draft leaves the prompt text to the server; these are what clients expect.
        Some(Exchange::LoginUser) => STANDARD.encode("Username:"),
        Some(Exchange::LoginPassword { .. }) => STANDARD.encode("Password:"),
        Some(Exchange::BearerFailed { challenge }) => challenge.clone(),
        Some(Exchange::Plain | Exchange::Bearer(_)) | None => String::new(),
    }
}

pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    mechanism: &str,
    initial: Option<&str>,
) -> Reply {
    s.sasl = None;
    let mechanism = mechanism.to_ascii_uppercase();
    let bearer = match mechanism.as_str() {
        "OAUTHBEARER" => Some(BearerMechanism::OAuthBearer),
        "XOAUTH2" => Some(BearerMechanism::XOAuth2),
        _ => None,
    };
    let known = matches!(mechanism.as_str(), "PLAIN" | "LOGIN")
        || (bearer.is_some() && s.server.bearer_auth());
    if !known {
        return Reply::no("Unsupported authentication mechanism");
    }
    if !s.plaintext_auth_allowed() {
        return Reply::no("Authentication is disabled without TLS").code("PRIVACYREQUIRED");
    }
    // RFC 4959 §3: `=` is an empty initial response.
    let initial = match initial {
        None => None,
        Some("=") => Some(Vec::new()),
        Some(b64) => match STANDARD.decode(b64) {
            Ok(bytes) => Some(bytes),
            Err(_) => return Reply::bad("Invalid base64 in the initial response"),
        },
    };
    if let Some(mech) = bearer {
        return match initial {
            Some(msg) => bearer_message(s, out, mech, &msg).await,
            None => continue_with(s, Exchange::Bearer(mech)),
        };
    }
    match (mechanism.as_str(), initial) {
        ("PLAIN", Some(msg)) => plain(s, out, &msg).await,
        ("PLAIN", None) => continue_with(s, Exchange::Plain),
        // draft-murchison-sasl-login §2: an initial response carries the user name.
        ("LOGIN", Some(user)) => login_user(s, out, &user),
        _ => continue_with(s, Exchange::LoginUser),
    }
}

fn continue_with(s: &mut Session, exchange: Exchange) -> Reply {
    s.sasl = Some(exchange);
    Reply::ok("continue").then(Next::SaslContinue)
}

/// Completes (or advances) the exchange with the client's response line to the `+`
/// continuation.
pub(crate) async fn finish(s: &mut Session, out: &mut Out<'_>, line: &[u8]) -> Reply {
    let Some(exchange) = s.sasl.take() else {
        return Reply::bad("No authentication exchange in progress");
    };
    if line == b"*" {
        // RFC 3501 §6.2.2: a cancelled exchange is answered BAD.
        return Reply::bad("Authentication cancelled");
    }
    let Ok(msg) = STANDARD.decode(line) else {
        return Reply::bad("Invalid base64 in the SASL response");
    };
    match exchange {
        Exchange::Plain => plain(s, out, &msg).await,
        Exchange::LoginUser => login_user(s, out, &msg),
        Exchange::LoginPassword { user } => match std::str::from_utf8(&msg) {
            Ok(pass) => login::verify(s, out, "login", &user, pass).await,
            Err(_) => login::failed(s, out),
        },
        Exchange::Bearer(mech) => bearer_message(s, out, mech, &msg).await,
        // Whatever the client answered (it should be a lone %x01), the token was refused.
        Exchange::BearerFailed { .. } => login::failed(s, out),
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
    if !authz.is_empty() && !authz.eq_ignore_ascii_case(authc) {
        return Reply::no("Authorization identity not allowed").code("AUTHORIZATIONFAILED");
    }
    login::verify(s, out, "plain", authc, pass).await
}

/// LOGIN's first client message is the user name; the password is asked for next.
fn login_user(s: &mut Session, out: &mut Out<'_>, msg: &[u8]) -> Reply {
    match std::str::from_utf8(msg) {
        Ok(user) if !user.is_empty() => continue_with(
            s,
            Exchange::LoginPassword {
                user: user.to_string(),
            },
        ),
        _ => login::failed(s, out),
    }
}

/// The client's OAUTHBEARER or XOAUTH2 message: the token is checked by meta. A refused token
/// is answered with the mechanism's error challenge, and the exchange fails after the client's
/// acknowledgement.
async fn bearer_message(
    s: &mut Session,
    out: &mut Out<'_>,
    mech: BearerMechanism,
    msg: &[u8],
) -> Reply {
    let parsed = match mech {
        BearerMechanism::OAuthBearer => parse_oauthbearer(msg),
        BearerMechanism::XOAuth2 => parse_xoauth2(msg),
    };
    let Some(BearerMessage { authzid, token }) = parsed else {
        // A message that cannot be parsed carries no token to complain about: plain failure.
        return login::failed(s, out);
    };
    let result = s
        .server
        .auth
        .authenticate_bearer(&token, authzid.as_deref(), s.client)
        .await;
    match result {
        Err(yubin_meta_api::MetaError::AuthenticationFailed) => {
            metrics::counter!(
                "yubin_imap_auth_total",
                "mechanism" => mech.label(),
                "result" => "failure"
            )
            .increment(1);
            let challenge = STANDARD.encode(match mech {
                // RFC 7628 §3.2.2: the failure is described by a JSON object.
                BearerMechanism::OAuthBearer => r#"{"status":"invalid_token","schemes":"bearer"}"#,
                // Google's XOAUTH2 reports an HTTP-like status in the same place.
                BearerMechanism::XOAuth2 => r#"{"status":"401","schemes":"bearer"}"#,
            });
            continue_with(s, Exchange::BearerFailed { challenge })
        }
        result => login::complete(s, out, mech.label(), result).await,
    }
}

/// What a bearer-token message carries.
#[derive(Debug, PartialEq, Eq)]
struct BearerMessage {
    authzid: Option<String>,
    token: String,
}

/// RFC 7628 §3.1: `gs2-header kvsep *(kvpair) kvsep`, where the GS2 header (RFC 5801 §4) is
/// `cb-flag "," [ "a=" saslname ] ","` and each kvpair is `key "=" value kvsep` with
/// kvsep = %x01; the token is the `auth` pair's `Bearer <token>`.
fn parse_oauthbearer(msg: &[u8]) -> Option<BearerMessage> {
    let msg = std::str::from_utf8(msg).ok()?;
    let (cb_flag, rest) = msg.split_once(',')?;
    // Channel binding is not part of OAUTHBEARER (RFC 7628 §4): "p=" is refused, "n" and "y"
    // (the client supports it but thinks the server does not) are fine.
    if cb_flag != "n" && cb_flag != "y" {
        return None;
    }
    let (authz, rest) = rest.split_once(',')?;
    let authzid = match authz {
        "" => None,
        a => Some(unescape_saslname(a.strip_prefix("a=")?)?),
    };
    let pairs = rest.strip_prefix('\x01')?.strip_suffix("\x01\x01")?;
    let mut token = None;
    for pair in pairs.split('\x01') {
        let (key, value) = pair.split_once('=')?;
        if key == "auth" {
            token = Some(bearer_token(value)?);
        }
    }
    Some(BearerMessage {
        authzid,
        token: token?,
    })
}

/// Google's XOAUTH2: `"user=" user %x01 "auth=Bearer " token %x01 %x01`. The user takes the
/// place of an authzid: it must name the token's account.
fn parse_xoauth2(msg: &[u8]) -> Option<BearerMessage> {
    let msg = std::str::from_utf8(msg).ok()?;
    let pairs = msg.strip_suffix("\x01\x01")?;
    let (mut user, mut token) = (None, None);
    for pair in pairs.split('\x01') {
        let (key, value) = pair.split_once('=')?;
        match key {
            "user" => user = Some(value.to_string()),
            "auth" => token = Some(bearer_token(value)?),
            _ => {}
        }
    }
    Some(BearerMessage {
        authzid: Some(user?).filter(|u| !u.is_empty()),
        token: token?,
    })
}

/// `Bearer <token>` (RFC 6750 §2.1; the scheme name is case-insensitive).
fn bearer_token(value: &str) -> Option<String> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// RFC 5801 §4: in a saslname `,` is sent as `=2C` and `=` as `=3D`; any other `=` is invalid.
fn unescape_saslname(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let escape = rest.get(i..i + 3)?;
        out.push(match escape {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bm(authzid: Option<&str>, token: &str) -> Option<BearerMessage> {
        Some(BearerMessage {
            authzid: authzid.map(str::to_string),
            token: token.to_string(),
        })
    }

    #[test]
    fn oauthbearer_messages() {
        // RFC 7628 §4.1's example.
        let msg = b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01\
                    auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01";
        assert_eq!(
            parse_oauthbearer(msg),
            bm(
                Some("user@example.com"),
                "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="
            )
        );
        assert_eq!(
            parse_oauthbearer(b"n,,\x01auth=bearer abc\x01\x01"),
            bm(None, "abc")
        );
        assert_eq!(
            parse_oauthbearer(b"y,a=a=2Cb=3Dc,\x01auth=Bearer t\x01\x01"),
            bm(Some("a,b=c"), "t")
        );
        for bad in [
            &b"p=tls-unique,,\x01auth=Bearer t\x01\x01"[..],
            b"n,,\x01auth=Bearer t\x01",
            b"n,,\x01host=x\x01\x01",
            b"n,,\x01auth=Basic t\x01\x01",
            b"n,,\x01auth=Bearer \x01\x01",
            b"n,x=y,\x01auth=Bearer t\x01\x01",
            b"n,a=bad=escape,\x01auth=Bearer t\x01\x01",
            b"n,,auth=Bearer t\x01\x01",
            b"\x01",
            b"",
            b"n,,\x01auth=Bearer \xff\x01\x01",
        ] {
            assert_eq!(parse_oauthbearer(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn xoauth2_messages() {
        assert_eq!(
            parse_xoauth2(b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2\x01\x01"),
            bm(Some("someuser@example.com"), "ya29.vF9dft4qmTc2")
        );
        assert_eq!(
            parse_xoauth2(b"user=\x01auth=Bearer t\x01\x01"),
            bm(None, "t")
        );
        for bad in [
            &b"auth=Bearer t\x01\x01"[..],
            b"user=a\x01\x01",
            b"user=a\x01auth=Bearer t\x01",
            b"user=a\x01auth=Bearer t",
        ] {
            assert_eq!(parse_xoauth2(bad), None, "{bad:?}");
        }
    }
}
