//! CAPABILITY (RFC 3501 §6.1.1).

use crate::out::{Out, Reply};
use crate::session::Session;

pub(crate) fn run(s: &Session, out: &mut Out<'_>) -> Reply {
    out.line(&format!("* CAPABILITY {}", s.capabilities()));
    Reply::ok("CAPABILITY completed")
}
