//! LOGOUT (RFC 3501 §6.1.3).

use crate::out::{Next, Out, Reply};

pub(crate) fn run(out: &mut Out<'_>) -> Reply {
    out.line("* BYE Logging out");
    Reply::ok("LOGOUT completed").then(Next::Logout)
}
