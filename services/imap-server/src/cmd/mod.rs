//! One module per command behind one flat dispatcher.

pub(crate) mod append;
pub(crate) mod authenticate;
pub(crate) mod capability;
pub(crate) mod catenate;
pub(crate) mod check;
pub(crate) mod close;
pub(crate) mod compress;
pub(crate) mod copy;
pub(crate) mod create;
pub(crate) mod delete;
pub(crate) mod enable;
pub(crate) mod examine;
pub(crate) mod expunge;
pub(crate) mod fetch;
pub(crate) mod getmetadata;
pub(crate) mod id;
pub(crate) mod idle;
pub(crate) mod list;
pub(crate) mod login;
pub(crate) mod logout;
pub(crate) mod lsub;
pub(crate) mod r#move;
pub(crate) mod namespace;
pub(crate) mod noop;
pub(crate) mod preview;
pub(crate) mod quota;
pub(crate) mod rename;
pub(crate) mod replace;
pub(crate) mod search;
pub(crate) mod select;
pub(crate) mod setmetadata;
pub(crate) mod sort;
pub(crate) mod starttls;
pub(crate) mod status;
pub(crate) mod store;
pub(crate) mod subscribe;
pub(crate) mod thread;
pub(crate) mod unselect;
pub(crate) mod unsubscribe;

use crate::gate;
use crate::names;
use crate::out::{Next, Out, Reply, Status};
use crate::selected::{InvalidSequence, SyncMode};
use crate::session::Session;
use yubin_imap_proto::{CommandBody, SeqBound, SequenceSet};
use yubin_meta_api::UidSet;

/// Runs one command: state gate, handler, then the catch-up that reports what changed elsewhere
/// (with EXPUNGE held back where RFC 3501 §7.4.1 forbids it).
pub(crate) async fn dispatch(
    s: &mut Session,
    out: &mut Out<'_>,
    tag: &str,
    body: CommandBody,
) -> Reply {
    if let Err(reply) = gate::check(&s.state, &body) {
        return reply;
    }
    let (mode, force) = sync_policy(&body);
    let is_expunge = matches!(body, CommandBody::Expunge { .. });
    use CommandBody as C;
    let reply = match body {
        C::Capability => capability::run(s, out),
        C::Noop => noop::run(),
        C::Logout => logout::run(out),
        C::Id(params) => id::run(out, params),
        C::StartTls => starttls::run(s),
        C::Authenticate {
            mechanism,
            initial_response,
        } => authenticate::run(s, out, &mechanism, initial_response.as_deref()).await,
        C::Login { username, password } => login::run(s, out, &username, &password).await,
        C::Enable(caps) => enable::run(s, out, &caps),
        C::Namespace => namespace::run(out),
        C::Select { mailbox, params } => select::run(s, out, &mailbox, &params, false).await,
        C::Examine { mailbox, params } => examine::run(s, out, &mailbox, &params).await,
        C::Create {
            mailbox,
            special_use,
        } => create::run(s, &mailbox, &special_use).await,
        C::Delete { mailbox } => delete::run(s, &mailbox).await,
        C::Rename { from, to } => rename::run(s, &from, &to).await,
        C::Subscribe { mailbox } => subscribe::run(s, &mailbox).await,
        C::Unsubscribe { mailbox } => unsubscribe::run(s, &mailbox).await,
        C::List {
            reference,
            patterns,
            selection,
            returns,
        } => list::run(s, out, &reference, &patterns, &selection, &returns).await,
        C::Lsub { reference, pattern } => lsub::run(s, out, &reference, &pattern).await,
        C::Status { mailbox, items } => status::run(s, out, &mailbox, &items).await,
        C::Append { mailbox, messages } => append::run(s, &mailbox, messages).await,
        C::Idle => idle::run(),
        C::Check => check::run(),
        C::Close => close::run(s).await,
        C::Unselect => unselect::run(),
        C::Expunge { uids } => expunge::run(s, out, uids.as_ref()).await,
        C::Search {
            uid,
            charset,
            returns,
            criteria,
        } => {
            search::run(
                s,
                out,
                tag,
                uid,
                charset.as_deref(),
                returns.as_deref(),
                &criteria,
            )
            .await
        }
        C::Sort {
            uid,
            criteria,
            charset,
            returns,
            search,
        } => {
            sort::run(
                s,
                out,
                tag,
                uid,
                &criteria,
                &charset,
                returns.as_deref(),
                &search,
            )
            .await
        }
        C::Thread {
            uid,
            algorithm,
            charset,
            search,
        } => thread::run(s, out, uid, algorithm, &charset, &search).await,
        C::Fetch {
            uid,
            set,
            items,
            changed_since,
            vanished,
        } => fetch::run(s, out, uid, &set, &items, changed_since, vanished).await,
        C::Store {
            uid,
            set,
            mode,
            silent,
            flags,
            unchanged_since,
        } => store::run(s, out, uid, &set, mode, silent, &flags, unchanged_since).await,
        C::Copy { uid, set, mailbox } => copy::run(s, out, uid, &set, &mailbox).await,
        C::Move { uid, set, mailbox } => r#move::run(s, out, uid, &set, &mailbox).await,
        C::Replace {
            uid,
            target,
            mailbox,
            message,
        } => replace::run(s, out, uid, target, &mailbox, message).await,
        C::GetQuota { root } => quota::getquota(s, out, &root).await,
        C::GetQuotaRoot { mailbox } => quota::getquotaroot(s, out, &mailbox).await,
        C::SetQuota { root, limits } => quota::setquota(s, out, &root, &limits).await,
        C::Compress { mechanism } => compress::run(s, &mechanism),
        C::GetMetadata {
            mailbox,
            options,
            entries,
        } => getmetadata::run(s, out, &mailbox, options, &entries).await,
        C::SetMetadata { mailbox, entries } => setmetadata::run(s, &mailbox, entries).await,
    };
    if !matches!(reply.next, Next::Stay) {
        return reply;
    }
    match s.sync(out, mode, force).await {
        Ok(Next::Disconnect) => reply.then(Next::Disconnect),
        Ok(_) => match s.selected_mut() {
            // RFC 7162 §3.2 (EXPUNGE and UID EXPUNGE): with CONDSTORE on, the tagged OK
            // carries the HIGHESTMODSEQ after the expunge, which untagged EXPUNGE / VANISHED
            // cannot; the catch-up just made every change up to it known to the client.
            Some((_, sel))
                if is_expunge
                    && sel.condstore
                    && reply.status == Status::Ok
                    && reply.code.is_none() =>
            {
                let code = format!("HIGHESTMODSEQ {}", sel.highest_modseq());
                reply.code(code)
            }
            _ => reply,
        },
        Err(e) => {
            // The command itself is done; its answer stands. The next command retries the
            // catch-up from the same MODSEQ, so nothing is lost.
            tracing::warn!(error = %e, "catch-up after command failed");
            reply
        }
    }
}

/// When a command catches up and what the catch-up may send.
fn sync_policy(body: &CommandBody) -> (SyncMode, bool) {
    use CommandBody as C;
    let mode = match body {
        // RFC 3501 §7.4.1: no EXPUNGE while responding to FETCH, STORE or SEARCH, whose
        // sequence numbers the client may be using; COPY/MOVE are held back the same way.
        C::Fetch { uid, .. }
        | C::Store { uid, .. }
        | C::Search { uid, .. }
        | C::Sort { uid, .. }
        | C::Thread { uid, .. }
        | C::Copy { uid, .. }
        | C::Move { uid, .. } => SyncMode::naming_messages(*uid),
        _ => SyncMode {
            allow_expunge: true,
            with_uid: false,
        },
    };
    // NOOP and CHECK are the client's way to poll: always ask the store (hints may be lost).
    // Writes always catch up so the client sees its own change's effects in order.
    let force = matches!(
        body,
        C::Noop
            | C::Check
            | C::Store { .. }
            | C::Copy { .. }
            | C::Move { .. }
            | C::Expunge { .. }
            | C::Append { .. }
            | C::Replace { .. }
    );
    (mode, force)
}

/// Decodes a mailbox argument as this session's protocol version spells names (modified UTF-7
/// in rev1, UTF-8 in rev2), or the BAD answer for an undecodable one.
pub(crate) fn mailbox_arg(s: &Session, raw: &[u8]) -> Result<String, Reply> {
    names::decode(raw, s.rev2).ok_or_else(|| Reply::bad("Invalid mailbox name encoding"))
}

/// A sequence number the session never announced: the session's view changes only when the
/// client is told, so this is a client bug (RFC 5530 `CLIENTBUG`), answered BAD.
pub(crate) fn invalid_sequence(_: InvalidSequence) -> Reply {
    Reply::bad("Invalid message sequence set").code("CLIENTBUG")
}

/// The answer when some messages the client named were expunged by another session and the
/// session cannot announce that yet (RFC 3501 §7.4.1 forbids EXPUNGE during FETCH/STORE/SEARCH):
/// the rest was done; `EXPUNGEISSUED` (RFC 9051 §7.1) tells the client to NOOP and catch up.
pub(crate) fn expunge_issued() -> Reply {
    Reply::no("Some of the requested messages no longer exist").code("EXPUNGEISSUED")
}

/// The BAD answer for a command form whose extension is not advertised.
pub(crate) fn not_supported(what: &str) -> Reply {
    Reply::bad(format!("{what} is not supported"))
}

/// The state-gate guarantees a selection for selected-state commands; this is the answer if that
/// invariant were ever broken, instead of a panic.
pub(crate) fn no_selection() -> Reply {
    Reply::bad("No mailbox selected")
}

/// A UID set as the client wrote it, for matching UIDs that are not in the view (expunged
/// ones, RFC 7162 §3.2.5 known-uids and §3.2.6 VANISHED): `*` stands for every UID above the
/// range's other end. `None` for `$`, which the caller resolves itself.
pub(crate) fn uid_ranges(set: &SequenceSet) -> Option<UidSet> {
    match set {
        SequenceSet::Ranges(ranges) => Some(UidSet::from_ranges(ranges.iter().map(|&(a, b)| {
            let n = |x: SeqBound| match x {
                SeqBound::Number(n) => n,
                SeqBound::Star => u32::MAX,
            };
            (n(a), n(b))
        }))),
        SequenceSet::Saved => None,
    }
}
