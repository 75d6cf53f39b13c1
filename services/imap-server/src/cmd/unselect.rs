//! UNSELECT (RFC 3691): like CLOSE without expunging.

use crate::out::{Next, Reply};

pub(crate) fn run() -> Reply {
    Reply::ok("UNSELECT completed").then(Next::Deselect)
}
