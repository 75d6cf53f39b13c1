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
    );
    let allowed = any
        || match state {
            SessionState::NotAuthenticated => not_authenticated,
            SessionState::Authenticated { .. } => authenticated,
            // Selected state allows the authenticated commands too (RFC 3501 §6.4).
            SessionState::Selected { .. } => !not_authenticated,
            SessionState::Logout => false,
        };
    if allowed {
        return Ok(());
    }
    let text = match state {
        SessionState::NotAuthenticated => "Authenticate first",
        SessionState::Authenticated { .. } if !not_authenticated => "Select a mailbox first",
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
    }
}
