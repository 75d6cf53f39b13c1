//! QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT, and SETQUOTA refused.
//!
//! Every account has one quota root, named `""`, covering all its mailboxes, with the STORAGE
//! (in units of 1024 octets, RFC 9208 §5.1) and MESSAGE (§5.2) resources of
//! `MailStore::quota`. A resource without a limit is not reported; an account with no limit at
//! all has no quota root (RFC 9208's `quota-list` needs at least one resource). Limits are set by
//! the administrator through the admin API, so SETQUOTA is refused and QUOTASET not advertised.

use crate::cmd::mailbox_arg;
use crate::names;
use crate::out::{Out, Reply};
use crate::session::Session;
use yubin_imap_proto::encode;
use yubin_meta_api::QuotaUsage;

/// The account's quota root.
const ROOT: &str = "";

/// `(STORAGE used limit MESSAGE used limit)` for the limited resources, or `None` when nothing is
/// limited. STORAGE usage rounds up and its limit down, so a client never computes room that
/// is not there.
fn resources(q: &QuotaUsage) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(limit) = q.limits.storage_bytes {
        parts.push(format!(
            "STORAGE {} {}",
            q.storage_bytes.div_ceil(1024),
            limit / 1024
        ));
    }
    if let Some(limit) = q.limits.messages {
        parts.push(format!("MESSAGE {} {limit}", q.messages));
    }
    (!parts.is_empty()).then(|| format!("({})", parts.join(" ")))
}

fn quota_line(list: &str) -> Vec<u8> {
    let mut line = b"* QUOTA ".to_vec();
    encode::string(&mut line, ROOT.as_bytes());
    line.push(b' ');
    line.extend_from_slice(list.as_bytes());
    line.extend_from_slice(b"\r\n");
    line
}

/// `GETQUOTA root` (RFC 9208 §4.2).
pub(crate) async fn getquota(s: &mut Session, out: &mut Out<'_>, root: &[u8]) -> Reply {
    let Some(user) = s.user() else {
        return Reply::bad("Not authenticated");
    };
    if root != ROOT.as_bytes() {
        return Reply::no("No such quota root").code("NONEXISTENT");
    }
    let usage = match s.server.mail.quota(user).await {
        Ok(q) => q,
        Err(e) => return Reply::meta(&e),
    };
    match resources(&usage) {
        Some(list) => {
            out.buf().extend_from_slice(&quota_line(&list));
            Reply::ok("GETQUOTA completed")
        }
        None => Reply::no("No such quota root").code("NONEXISTENT"),
    }
}

/// `GETQUOTAROOT mailbox` (RFC 9208 §4.3): the mailbox's roots, then each root's QUOTA.
pub(crate) async fn getquotaroot(s: &mut Session, out: &mut Out<'_>, mailbox: &[u8]) -> Reply {
    let Some(user) = s.user() else {
        return Reply::bad("Not authenticated");
    };
    let name = match mailbox_arg(s, mailbox) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if let Err(e) = s.server.mail.mailbox_status(user, &name).await {
        return Reply::meta(&e);
    }
    let usage = match s.server.mail.quota(user).await {
        Ok(q) => q,
        Err(e) => return Reply::meta(&e),
    };
    let list = resources(&usage);
    let mut line = b"* QUOTAROOT ".to_vec();
    // The mailbox as the client named it, in this session's spelling of names.
    names::encode_to(&mut line, &name, s.rev2);
    if list.is_some() {
        line.push(b' ');
        encode::string(&mut line, ROOT.as_bytes());
    }
    line.extend_from_slice(b"\r\n");
    out.buf().extend_from_slice(&line);
    if let Some(list) = list {
        out.buf().extend_from_slice(&quota_line(&list));
    }
    Reply::ok("GETQUOTAROOT completed")
}

/// `SETQUOTA` (RFC 9208 §4.1): quotas are the administrator's, and QUOTASET is not advertised.
pub(crate) fn setquota() -> Reply {
    Reply::no("Quotas are set by the administrator").code("NOPERM")
}

#[cfg(test)]
mod tests {
    use super::*;
    use yubin_meta_api::QuotaLimits;

    #[test]
    fn resource_lists() {
        let mut q = QuotaUsage {
            limits: QuotaLimits {
                storage_bytes: Some(10 * 1024 + 1023),
                messages: None,
            },
            storage_bytes: 1025,
            messages: 3,
        };
        assert_eq!(resources(&q).as_deref(), Some("(STORAGE 2 10)"));
        q.limits.messages = Some(100);
        assert_eq!(
            resources(&q).as_deref(),
            Some("(STORAGE 2 10 MESSAGE 3 100)")
        );
        q.limits = QuotaLimits::default();
        assert_eq!(resources(&q), None);
        assert_eq!(
            quota_line("(MESSAGE 0 1)"),
            b"* QUOTA \"\" (MESSAGE 0 1)\r\n"
        );
    }
}
