//! ENABLE (RFC 5161). The one enableable extension is IMAP4rev2 (RFC 9051 §6.3.1); names the
//! server does not know, or that were enabled before, are ignored as RFC 5161 §3.1 requires, and
//! `* ENABLED` lists only what this command switched on.

use crate::out::{Out, Reply};
use crate::session::Session;

pub(crate) fn run(s: &mut Session, out: &mut Out<'_>, requested: &[String]) -> Reply {
    let mut enabled: Vec<&str> = Vec::new();
    for cap in requested {
        // The receiver upper-cases capability names.
        if cap == "IMAP4REV2" && !s.rev2 {
            s.rev2 = true;
            enabled.push("IMAP4rev2");
        }
    }
    tracing::debug!(requested = ?requested, enabled = ?enabled, "enable");
    let mut line = String::from("* ENABLED");
    for e in &enabled {
        line.push(' ');
        line.push_str(e);
    }
    out.line(&line);
    Reply::ok("ENABLE completed")
}
