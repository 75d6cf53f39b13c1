//! ENABLE (RFC 5161). No ENABLE-able extension (CONDSTORE, QRESYNC, UTF8=ACCEPT, IMAP4rev2) is
//! advertised, so none is enabled: the answer is an empty `* ENABLED`.

use crate::out::{Out, Reply};

pub(crate) fn run(out: &mut Out<'_>, requested: &[String]) -> Reply {
    tracing::debug!(requested = ?requested, "enable");
    out.line("* ENABLED");
    Reply::ok("ENABLE completed")
}
