//! NOOP (RFC 3501 §6.1.2): the catch-up after every command does the work; NOOP forces it.

use crate::out::Reply;

pub(crate) fn run() -> Reply {
    Reply::ok("NOOP completed")
}
