//! IDLE (RFC 2177); the connection runs the exchange (see `connection::idle`).

use crate::out::{Next, Reply};

pub(crate) fn run() -> Reply {
    Reply::ok("IDLE").then(Next::Idle)
}
