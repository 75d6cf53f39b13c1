//! CHECK (RFC 3501 §6.4.1): every write is already durable when acknowledged, so CHECK only
//! catches up like NOOP.

use crate::out::Reply;

pub(crate) fn run() -> Reply {
    Reply::ok("CHECK completed")
}
