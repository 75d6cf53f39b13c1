//! ENABLE (RFC 5161). The enableable extensions are IMAP4rev2 (RFC 9051 §6.3.1), CONDSTORE and
//! QRESYNC (RFC 7162 §3.1, §3.2.3; QRESYNC implies CONDSTORE); names the server does not know,
//! or that were enabled before, are ignored as RFC 5161 §3.1 requires, and `* ENABLED` lists
//! only what this command switched on.

use crate::out::{Out, Reply};
use crate::session::Session;

pub(crate) fn run(s: &mut Session, out: &mut Out<'_>, requested: &[String]) -> Reply {
    let mut enabled: Vec<&str> = Vec::new();
    for cap in requested {
        // The receiver upper-cases capability names.
        match cap.as_str() {
            "IMAP4REV2" if !s.rev2 => {
                s.rev2 = true;
                enabled.push("IMAP4rev2");
            }
            "CONDSTORE" if s.enable_condstore() => enabled.push("CONDSTORE"),
            "QRESYNC" if s.enable_qresync() => enabled.push("QRESYNC"),
            _ => {}
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
