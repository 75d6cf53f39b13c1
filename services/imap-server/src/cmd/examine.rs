//! EXAMINE (RFC 3501 §6.3.2): SELECT, read-only.

use crate::out::{Out, Reply};
use crate::session::Session;
use yubin_imap_proto::SelectParams;

pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    mailbox: &[u8],
    params: &SelectParams,
) -> Reply {
    crate::cmd::select::run(s, out, mailbox, params, true).await
}
