//! COMPRESS (RFC 4978 §3); the connection switches both directions to DEFLATE right after the
//! tagged OK (see `crate::deflate`).

use crate::out::{Next, Reply};
use crate::session::Session;

pub(crate) fn run(s: &Session, mechanism: &str) -> Reply {
    if s.compressed {
        // RFC 4978 §3: a second COMPRESS is refused with this code whatever its mechanism.
        return Reply::no("Compression is already active").code("COMPRESSIONACTIVE");
    }
    if mechanism != "DEFLATE" {
        // RFC 4978 §3: an unknown mechanism is a tagged BAD.
        return Reply::bad(format!("Unknown compression mechanism {mechanism}"));
    }
    Reply::ok("DEFLATE active").then(Next::Compress)
}
