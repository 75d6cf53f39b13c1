//! Per-connection session state and its explicit transitions.

use crate::hub::{Hint, Subscription};
use crate::out::{Next, Out};
use crate::selected::{Selected, SyncMode, SyncOutcome};
use crate::server::ImapServer;
use crate::spool::Spool;
use crate::telemetry::ConnectionGauge;
use std::net::IpAddr;
use std::sync::Arc;
use yubin_meta_api::{ChangeKind, MetaError, UserId};

/// RFC 3501 §3 connection states.
pub(crate) enum SessionState {
    NotAuthenticated,
    Authenticated {
        user: UserId,
    },
    Selected {
        user: UserId,
        mailbox: Box<Selected>,
    },
    Logout,
}

pub(crate) struct Session {
    pub(crate) server: Arc<ImapServer>,
    pub(crate) state: SessionState,
    /// The connection is encrypted (implicit TLS or after STARTTLS).
    pub(crate) tls_active: bool,
    pub(crate) auth_failures: u32,
    /// The client's address: meta throttles failed logins per address too.
    pub(crate) client: Option<IpAddr>,
    /// The SASL exchange in progress (AUTHENTICATE between its continuation requests).
    pub(crate) sasl: Option<crate::cmd::authenticate::Exchange>,
    /// `ENABLE IMAP4rev2` was accepted (RFC 9051 §6.3.1): UTF-8 mailbox names, ESEARCH instead
    /// of SEARCH responses, no `\Recent`. Fixed for the rest of the connection.
    pub(crate) rev2: bool,
    /// CONDSTORE is enabled (RFC 7162 §3.1: by ENABLE or by the first command that uses it);
    /// for the rest of the connection MODSEQ is part of every flag-change FETCH response.
    pub(crate) condstore: bool,
    /// `ENABLE QRESYNC` was accepted (RFC 7162 §3.2.3); implies `condstore`.
    pub(crate) qresync: bool,
    /// COMPRESS=DEFLATE is active (RFC 4978); it stays on for the rest of the connection.
    pub(crate) compressed: bool,
    /// The authenticated account is one of `ImapConfig::quota_admins`: it may SETQUOTA, and
    /// GETQUOTA other accounts' roots (RFC 9208 §4.1, QUOTASET).
    pub(crate) quota_admin: bool,
    /// The user's change hints; present once authenticated.
    hints: Option<Subscription>,
    gauge: ConnectionGauge,
    /// Streamed APPEND literals of the command being received, in order; the connection loop
    /// clears it after every command, which removes the files APPEND did not take.
    pub(crate) spooled: Vec<Spool>,
}

impl Session {
    pub(crate) fn new(
        server: Arc<ImapServer>,
        tls_active: bool,
        client: Option<IpAddr>,
    ) -> Session {
        Session {
            server,
            state: SessionState::NotAuthenticated,
            tls_active,
            auth_failures: 0,
            client,
            sasl: None,
            rev2: false,
            condstore: false,
            qresync: false,
            compressed: false,
            quota_admin: false,
            hints: None,
            gauge: ConnectionGauge::new("not_authenticated", tls_active),
            spooled: Vec::new(),
        }
    }

    /// The authenticated user: the only source of the `UserId` of every store call.
    pub(crate) fn user(&self) -> Option<UserId> {
        match &self.state {
            SessionState::Authenticated { user } | SessionState::Selected { user, .. } => {
                Some(*user)
            }
            SessionState::NotAuthenticated | SessionState::Logout => None,
        }
    }

    pub(crate) fn selected_mut(&mut self) -> Option<(UserId, &mut Selected)> {
        match &mut self.state {
            SessionState::Selected { user, mailbox } => Some((*user, mailbox)),
            _ => None,
        }
    }

    /// Enables CONDSTORE (RFC 7162 §3.1: ENABLE, or the first CONDSTORE enabling command), for
    /// the selected mailbox too. Returns whether it was off before.
    pub(crate) fn enable_condstore(&mut self) -> bool {
        let was_off = !self.condstore;
        self.condstore = true;
        if let Some((_, sel)) = self.selected_mut() {
            sel.condstore = true;
        }
        was_off
    }

    /// Enables QRESYNC (RFC 7162 §3.2.3), which implies CONDSTORE. Returns whether it was off.
    pub(crate) fn enable_qresync(&mut self) -> bool {
        self.enable_condstore();
        let was_off = !self.qresync;
        self.qresync = true;
        if let Some((_, sel)) = self.selected_mut() {
            sel.qresync = true;
        }
        was_off
    }

    /// Whether LOGIN and AUTHENTICATE (every mechanism offered sends a password or a bearer
    /// token) may be used on this connection (LOGINDISABLED).
    pub(crate) fn plaintext_auth_allowed(&self) -> bool {
        self.tls_active || self.server.config.allow_plaintext_auth
    }

    /// STARTTLS is offered when TLS is configured and not active yet.
    pub(crate) fn starttls_available(&self) -> bool {
        !self.tls_active && self.server.tls.is_some()
    }

    /// The capability list for the current state; only what works is listed.
    pub(crate) fn capabilities(&self) -> String {
        self.capability_list(matches!(self.state, SessionState::NotAuthenticated))
    }

    /// The list before (`pre_auth`) or after authentication.
    pub(crate) fn capability_list(&self, pre_auth: bool) -> String {
        // IMAP4rev2 (RFC 9051 §7.2.2) is offered next to IMAP4rev1 and chosen with ENABLE; the
        // extensions rev2 folded into its base are listed for rev1 clients too.
        let mut caps = String::from(
            "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT \
             CHILDREN STATUS=SIZE ESEARCH SEARCHRES LIST-EXTENDED LIST-STATUS SPECIAL-USE \
             CREATE-SPECIAL-USE BINARY QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE CONDSTORE \
             QRESYNC OBJECTID SORT ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES PREVIEW \
             MULTIAPPEND REPLACE CATENATE",
        );
        // RFC 7889 §2: the largest message APPEND accepts, the receiver's literal limit.
        caps.push_str(&format!(
            " APPENDLIMIT={}",
            self.server.config.limits.max_literal
        ));
        if pre_auth {
            if self.starttls_available() {
                caps.push_str(" STARTTLS");
            }
            if self.plaintext_auth_allowed() {
                caps.push_str(" AUTH=PLAIN AUTH=LOGIN");
                if self.server.bearer_auth() {
                    caps.push_str(" AUTH=OAUTHBEARER AUTH=XOAUTH2");
                }
            } else {
                caps.push_str(" LOGINDISABLED");
            }
        } else {
            // RFC 4978: COMPRESS is an authenticated-state command, offered once it can be used.
            caps.push_str(" COMPRESS=DEFLATE");
            // RFC 5464 §1: mailbox entries (METADATA) and server entries (METADATA-SERVER).
            caps.push_str(" METADATA METADATA-SERVER");
            // RFC 9208 §4.1/§7: SETQUOTA is offered to the quota administrators only.
            if self.quota_admin {
                caps.push_str(" QUOTASET");
            }
        }
        caps
    }

    /// Applies a command's transition. Returns false when the connection must close.
    pub(crate) fn apply(&mut self, next: Next) -> bool {
        let open = self.transition(next);
        let state = match self.state {
            SessionState::NotAuthenticated => "not_authenticated",
            SessionState::Authenticated { .. } => "authenticated",
            SessionState::Selected { .. } => "selected",
            SessionState::Logout => "logout",
        };
        self.gauge.set(state, self.tls_active);
        open
    }

    /// Counts the connection as idling in the connections gauge; returns the state to restore.
    pub(crate) fn enter_idle(&mut self) -> &'static str {
        let before = self.gauge.state();
        self.gauge.set("idle", self.tls_active);
        before
    }

    pub(crate) fn restore_gauge(&mut self, state: &'static str) {
        self.gauge.set(state, self.tls_active);
    }

    fn transition(&mut self, next: Next) -> bool {
        match next {
            Next::Stay | Next::StartTls | Next::Idle | Next::SaslContinue => true,
            Next::Compress => {
                self.compressed = true;
                true
            }
            Next::Authenticated(user) => {
                self.hints = Some(self.server.hub.subscribe(user));
                self.state = SessionState::Authenticated { user };
                true
            }
            Next::Selected(mailbox) => {
                if let Some(user) = self.user() {
                    self.state = SessionState::Selected { user, mailbox };
                }
                true
            }
            Next::Deselect => {
                if let SessionState::Selected { user, .. } = self.state {
                    self.state = SessionState::Authenticated { user };
                }
                true
            }
            Next::Logout | Next::Disconnect => {
                self.state = SessionState::Logout;
                false
            }
        }
    }

    /// Waits for the next change hint (never resolves before authentication).
    pub(crate) async fn next_hint(&mut self) -> Hint {
        match &mut self.hints {
            Some(sub) => sub.recv().await,
            None => std::future::pending().await,
        }
    }

    /// Records a hint; true when it concerns the selected mailbox.
    pub(crate) fn on_hint(&mut self, hint: Hint) -> bool {
        if let Hint::Changed(ev) = &hint {
            crate::telemetry::notification_delivered(ev);
        }
        let SessionState::Selected { mailbox, .. } = &mut self.state else {
            return false;
        };
        let relevant = match hint {
            Hint::Resync => true,
            // Mailbox-list changes may be a delete/rename of the selected mailbox, and backends
            // signal "hints were lost" as a list change too.
            Hint::Changed(ev) => ev.mailbox == mailbox.id || ev.kind == ChangeKind::MailboxList,
        };
        if relevant {
            mailbox.dirty = true;
        }
        relevant
    }

    /// Catches the selected mailbox up with the store (see [`Selected::sync`]). When the mailbox
    /// is gone, writes `* BYE` and returns `Next::Disconnect`.
    pub(crate) async fn sync(
        &mut self,
        out: &mut Out<'_>,
        mode: SyncMode,
        force: bool,
    ) -> Result<Next, MetaError> {
        let mail = self.server.mail.clone();
        let Some((user, sel)) = self.selected_mut() else {
            return Ok(Next::Stay);
        };
        // Expunges held back during FETCH/STORE/SEARCH go out at the next point that allows
        // them (RFC 3501 §7.4.1), even when nothing new has happened since.
        let expunges_due = mode.allow_expunge && sel.has_pending_expunges();
        if !(force || sel.dirty || expunges_due) {
            return Ok(Next::Stay);
        }
        match sel.sync(mail.as_ref(), user, out, mode).await? {
            SyncOutcome::Current | SyncOutcome::Deferred => Ok(Next::Stay),
            SyncOutcome::Gone => {
                // Sequence numbers of a deleted mailbox mean nothing any more; there is no
                // rev1 way to drop the selection under the client, so end the connection.
                out.line("* BYE Selected mailbox was deleted by another session");
                Ok(Next::Disconnect)
            }
        }
    }

    /// The catch-up a read answered from the view's flags starts with (FETCH of flags, SEARCH
    /// over flag keys): afterwards the view's flags are the store's as of the catch-up, every
    /// change before it announced to the client (RFC 3501 §7.4.1 lets the server send them
    /// with any command; the caller's `mode` holds EXPUNGE back where it must wait). True when
    /// the view is current; otherwise the caller reads the store as before, and the catch-up
    /// after the command reports what is left (a mailbox deleted behind the session included).
    pub(crate) async fn catch_up_for_read(&mut self, out: &mut Out<'_>, mode: SyncMode) -> bool {
        let mail = self.server.mail.clone();
        let Some((user, sel)) = self.selected_mut() else {
            return false;
        };
        match sel.sync(mail.as_ref(), user, out, mode).await {
            Ok(SyncOutcome::Current) => true,
            Ok(SyncOutcome::Deferred) => false,
            Ok(SyncOutcome::Gone) => {
                sel.dirty = true;
                false
            }
            Err(e) => {
                tracing::debug!(error = %e, "catch-up before a flag read failed");
                sel.dirty = true;
                false
            }
        }
    }
}
