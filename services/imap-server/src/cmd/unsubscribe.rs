//! UNSUBSCRIBE (RFC 3501 §6.3.7).

use crate::out::Reply;
use crate::session::Session;

pub(crate) async fn run(s: &mut Session, mailbox: &[u8]) -> Reply {
    crate::cmd::subscribe::set(s, mailbox, false).await
}
