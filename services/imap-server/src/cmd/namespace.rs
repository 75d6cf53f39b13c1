//! NAMESPACE (RFC 2342): one personal namespace, no shared or other users' namespaces.

use crate::out::{Out, Reply};

pub(crate) fn run(out: &mut Out<'_>) -> Reply {
    out.line("* NAMESPACE ((\"\" \"/\")) NIL NIL");
    Reply::ok("NAMESPACE completed")
}
