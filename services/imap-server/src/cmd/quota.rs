//! QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT, and SETQUOTA for quota administrators.
//!
//! Every account has one quota root, named `""`, covering all its mailboxes, with the STORAGE
//! (in units of 1024 octets, RFC 9208 §5.1) and MESSAGE (§5.2) resources of
//! `MailStore::quota`. A resource without a limit is not reported; an account with no limit at
//! all has no quota root (RFC 9208's `quota-list` needs at least one resource). Limits are set by
//! the administrator through the admin API, or with SETQUOTA by the accounts named in
//! `ImapConfig::quota_admins` (they alone see QUOTASET, RFC 9208 §4.1/§7). An administrator
//! names another account's root `#user/<name>`; everyone else may only use their own `""`.

use crate::cmd::mailbox_arg;
use crate::names;
use crate::out::{Out, Reply};
use crate::session::Session;
use yubin_imap_proto::encode;
use yubin_meta_api::{QuotaLimits, QuotaUsage, UserId};

/// The account's quota root.
const ROOT: &str = "";

/// Prefix of another account's quota root, followed by its login name (administrators only).
const USER_ROOT_PREFIX: &[u8] = b"#user/";

/// The account whose quota `root` names, for this session: its own for `""`, another one's for
/// `#user/<name>` when the session is a quota administrator (`NOPERM` otherwise).
async fn root_account(s: &Session, user: UserId, root: &[u8]) -> Result<UserId, Reply> {
    if root == ROOT.as_bytes() {
        return Ok(user);
    }
    if !s.quota_admin {
        return Err(Reply::no("Only your own quota root \"\" is accessible").code("NOPERM"));
    }
    let name = root
        .strip_prefix(USER_ROOT_PREFIX)
        .and_then(|n| std::str::from_utf8(n).ok())
        .filter(|n| !n.is_empty());
    let Some(name) = name else {
        return Err(Reply::no("No such quota root").code("NONEXISTENT"));
    };
    match s.server.auth.lookup(name).await {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(Reply::no("No such quota root").code("NONEXISTENT")),
        Err(e) => Err(Reply::meta(&e)),
    }
}

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

fn quota_line(root: &[u8], list: &str) -> Vec<u8> {
    let mut line = b"* QUOTA ".to_vec();
    encode::string(&mut line, root);
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
    let account = match root_account(s, user, root).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let usage = match s.server.mail.quota(account).await {
        Ok(q) => q,
        Err(e) => return Reply::meta(&e),
    };
    match resources(&usage) {
        Some(list) => {
            out.buf().extend_from_slice(&quota_line(root, &list));
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
        out.buf()
            .extend_from_slice(&quota_line(ROOT.as_bytes(), &list));
    }
    Reply::ok("GETQUOTAROOT completed")
}

/// The limits of a SETQUOTA resource list (RFC 9208 §4.1): STORAGE in units of 1024 octets
/// (§5.1), MESSAGE (§5.2). Resources not named are unlimited afterwards; an empty list removes
/// every limit.
fn limits_from(list: &[(String, u64)]) -> Result<QuotaLimits, Reply> {
    let mut limits = QuotaLimits::default();
    for (resource, limit) in list {
        let (slot, value) = match resource.as_str() {
            "STORAGE" => (
                &mut limits.storage_bytes,
                limit
                    .checked_mul(1024)
                    .ok_or_else(|| Reply::no("STORAGE limit too large"))?,
            ),
            "MESSAGE" => (&mut limits.messages, *limit),
            // RFC 9208 §4.1: a resource the server does not support gets a tagged NO.
            _ => return Err(Reply::no(format!("Unsupported quota resource {resource}"))),
        };
        if slot.replace(value).is_some() {
            return Err(Reply::no(format!("Quota resource {resource} given twice")));
        }
    }
    Ok(limits)
}

/// `SETQUOTA root (resource limit ...)` (RFC 9208 §4.1), for quota administrators only; answers
/// with the root's new QUOTA.
pub(crate) async fn setquota(
    s: &mut Session,
    out: &mut Out<'_>,
    root: &[u8],
    list: &[(String, u64)],
) -> Reply {
    let Some(user) = s.user() else {
        return Reply::bad("Not authenticated");
    };
    if !s.quota_admin {
        return Reply::no("Quotas are set by the administrator").code("NOPERM");
    }
    let account = match root_account(s, user, root).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let limits = match limits_from(list) {
        Ok(l) => l,
        Err(r) => return r,
    };
    if let Err(e) = s.server.mail.set_account_quota(account, limits).await {
        return Reply::meta(&e);
    }
    let usage = match s.server.mail.quota(account).await {
        Ok(q) => q,
        Err(e) => return Reply::meta(&e),
    };
    // Without any limit the root has no resources left to report (RFC 9208 `quota-list`).
    if let Some(list) = resources(&usage) {
        out.buf().extend_from_slice(&quota_line(root, &list));
    }
    Reply::ok("SETQUOTA completed")
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
            quota_line(b"", "(MESSAGE 0 1)"),
            b"* QUOTA \"\" (MESSAGE 0 1)\r\n"
        );
    }

    #[test]
    fn setquota_limits() {
        let list = |l: &[(&str, u64)]| -> Vec<(String, u64)> {
            l.iter().map(|(r, v)| (r.to_string(), *v)).collect()
        };
        assert_eq!(
            limits_from(&list(&[("STORAGE", 10), ("MESSAGE", 5)])).ok(),
            Some(QuotaLimits {
                storage_bytes: Some(10 * 1024),
                messages: Some(5),
            })
        );
        assert_eq!(limits_from(&[]).ok(), Some(QuotaLimits::default()));
        assert!(limits_from(&list(&[("MAILBOX", 1)])).is_err());
        assert!(limits_from(&list(&[("MESSAGE", 1), ("MESSAGE", 2)])).is_err());
        assert!(limits_from(&list(&[("STORAGE", u64::MAX)])).is_err());
    }
}
