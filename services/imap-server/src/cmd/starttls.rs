//! STARTTLS (RFC 3501 §6.2.1); the connection performs the handshake after the tagged OK.

use crate::out::{Next, Reply};
use crate::session::Session;

pub(crate) fn run(s: &Session) -> Reply {
    if s.tls_active {
        return Reply::bad("TLS is already active");
    }
    if s.compressed {
        // TLS must wrap the compressed stream, never the other way round (RFC 4978 §4).
        return Reply::bad("STARTTLS is not allowed after COMPRESS");
    }
    if !s.starttls_available() {
        return Reply::bad("STARTTLS is not available");
    }
    Reply::ok("Begin TLS negotiation now").then(Next::StartTls)
}
