//! The one place that decides which command is allowed in which state (RFC 3501 §6).

use crate::out::Reply;
use crate::session::SessionState;
use yubin_imap_proto::CommandBody;

/// `Err` carries the `BAD` answer for a command not valid in this state.
pub(crate) fn check(state: &SessionState, body: &CommandBody) -> Result<(), Reply> {
    use CommandBody as C;
    let any = matches!(body, C::Capability | C::Noop | C::Logout | C::Id(_));
    let not_authenticated = matches!(body, C::StartTls | C::Authenticate { .. } | C::Login { .. });
    let authenticated = matches!(
        body,
        C::Enable(_)
            | C::Namespace
            | C::Select { .. }
            | C::Examine { .. }
            | C::Create { .. }
            | C::Delete { .. }
            | C::Rename { .. }
            | C::Subscribe { .. }
            | C::Unsubscribe { .. }
            | C::List { .. }
            | C::Lsub { .. }
            | C::Status { .. }
            | C::Append { .. }
            | C::Idle
            | C::GetQuota { .. }
            | C::GetQuotaRoot { .. }
            | C::SetQuota { .. }
            | C::Compress { .. }
            | C::GetMetadata { .. }
            | C::SetMetadata { .. }
    );
    let allowed = any
        || match state {
            SessionState::NotAuthenticated => not_authenticated,
            SessionState::Authenticated { .. } => authenticated,
            // Selected state allows the authenticated commands too (RFC 3501 §6.4), except
            // ENABLE, which is valid only before a mailbox is selected (RFC 5161 §3.1, RFC 9051
            // §6.3.1): an extension must not change the rules under an open selection.
            SessionState::Selected { .. } => !not_authenticated && !matches!(body, C::Enable(_)),
            SessionState::Logout => false,
        };
    if allowed {
        return Ok(());
    }
    let text = match state {
        SessionState::NotAuthenticated => "Authenticate first",
        SessionState::Authenticated { .. } if !not_authenticated => "Select a mailbox first",
        SessionState::Selected { .. } if matches!(body, C::Enable(_)) => {
            "ENABLE is only valid before a mailbox is selected"
        }
        SessionState::Logout => "Logging out",
        _ => "Already authenticated",
    };
    Err(Reply::bad(format!(
        "{} not allowed now: {text}",
        body.name()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use yubin_meta_api::UserId;

    #[test]
    fn states_gate_commands() {
        let na = SessionState::NotAuthenticated;
        let au = SessionState::Authenticated { user: UserId(1) };
        assert!(check(&na, &CommandBody::Capability).is_ok());
        assert!(check(&na, &CommandBody::Namespace).is_err());
        assert!(check(&na, &CommandBody::StartTls).is_ok());
        assert!(check(&au, &CommandBody::StartTls).is_err());
        assert!(check(&au, &CommandBody::Idle).is_ok());
        assert!(check(&au, &CommandBody::Check).is_err());
        assert!(check(&au, &CommandBody::Expunge { uids: None }).is_err());
        assert!(check(&au, &CommandBody::Enable(vec![])).is_ok());
        assert!(check(&au, &CommandBody::GetQuotaRoot { mailbox: vec![] }).is_ok());
        assert!(check(&na, &CommandBody::GetQuota { root: vec![] }).is_err());
    }
}
