//! Response building: the per-command output buffer and the tagged reply a handler returns.

use crate::selected::Selected;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use yubin_blob::BlobError;
use yubin_meta_api::{MetaError, UserId};

/// Untagged data is flushed to the socket once this much is buffered, so a large FETCH never
/// holds more than about this much response in memory.
const FLUSH_AT: usize = 64 * 1024;
/// A client that accepts no bytes for this long is gone (or hostile): the write fails and the
/// connection closes instead of pinning its task and buffers forever.
const WRITE_STALL: Duration = Duration::from_secs(120);

/// The buffered writer handlers write responses into. I/O errors are sticky: after the first one
/// further writes are dropped and the connection sees the error when it finishes the command.
pub(crate) struct Out<'w> {
    buf: Vec<u8>,
    w: &'w mut (dyn AsyncWrite + Unpin + Send),
    failed: Option<io::Error>,
}

impl<'w> Out<'w> {
    pub(crate) fn new(w: &'w mut (dyn AsyncWrite + Unpin + Send)) -> Out<'w> {
        Out {
            buf: Vec::new(),
            w,
            failed: None,
        }
    }

    /// The raw buffer, for encoders that append bytes.
    pub(crate) fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Appends one response line; `CRLF` is added.
    pub(crate) fn line(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// Writes the buffer out if it has grown large (bounded memory for big responses).
    pub(crate) async fn flush_if_large(&mut self) {
        if self.buf.len() >= FLUSH_AT {
            self.flush_inner().await;
        }
    }

    async fn flush_inner(&mut self) {
        if self.failed.is_some() {
            self.buf.clear();
            return;
        }
        crate::telemetry::bytes_out(self.buf.len());
        let buf = std::mem::take(&mut self.buf);
        let r = write_chunks(self.w, &buf).await;
        self.buf = buf;
        self.buf.clear();
        if let Err(e) = r {
            self.failed = Some(e);
        }
    }

    /// Writes what is buffered, then `data` straight to the socket (large literal contents, so
    /// they are never copied into the buffer).
    pub(crate) async fn write_direct(&mut self, data: &[u8]) {
        self.flush_inner().await;
        if self.failed.is_some() {
            return;
        }
        crate::telemetry::bytes_out(data.len());
        if let Err(e) = write_chunks(self.w, data).await {
            self.failed = Some(e);
        }
    }

    /// Writes everything buffered and reports the first I/O error of this output, if any.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.flush_inner().await;
        }
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Appends a tagged completion line.
    pub(crate) fn tagged(&mut self, tag: &str, reply: &Reply) {
        let mut s = String::with_capacity(tag.len() + reply.text.len() + 16);
        s.push_str(tag);
        s.push(' ');
        s.push_str(reply.status.as_str());
        if let Some(code) = &reply.code {
            s.push_str(" [");
            s.push_str(code);
            s.push(']');
        }
        s.push(' ');
        // Texts can quote client input (a mailbox name sent as a literal may hold CR/LF); a
        // response line must never be split by it.
        s.extend(
            reply
                .text
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c }),
        );
        self.line(&s);
    }
}

/// Writes `data` in chunks, each of which must make progress within [`WRITE_STALL`], so a slow
/// but live client can download a large body while a stalled one is cut off.
async fn write_chunks(w: &mut (dyn AsyncWrite + Unpin + Send), data: &[u8]) -> io::Result<()> {
    for chunk in data.chunks(FLUSH_AT) {
        tokio::time::timeout(WRITE_STALL, w.write_all(chunk))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client stopped reading"))??;
    }
    tokio::time::timeout(WRITE_STALL, w.flush())
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client stopped reading"))?
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    No,
    Bad,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
        }
    }
}

/// What the session does after a command: the explicit state transitions and the connection-level
/// modes a command can start.
pub(crate) enum Next {
    Stay,
    /// LOGIN/AUTHENTICATE succeeded.
    Authenticated(UserId),
    /// SELECT/EXAMINE succeeded.
    Selected(Box<Selected>),
    /// CLOSE, UNSELECT, or a failed SELECT (RFC 3501 §6.3.1: no mailbox stays selected).
    Deselect,
    /// STARTTLS: the connection negotiates TLS after writing the tagged OK.
    StartTls,
    /// IDLE: the connection writes `+ idling` and waits for `DONE` (RFC 2177).
    Idle,
    /// AUTHENTICATE without an initial response: a `+` continuation, then one SASL line.
    SaslContinue,
    /// COMPRESS: both directions are DEFLATE streams from the octet after the tagged OK
    /// (RFC 4978 §3).
    Compress,
    /// LOGOUT: `* BYE` has been written; close after the tagged reply.
    Logout,
    /// Close after the tagged reply (too many failures, selected mailbox gone); `* BYE` written.
    Disconnect,
}

/// A tagged completion plus the transition it causes.
pub(crate) struct Reply {
    pub(crate) status: Status,
    pub(crate) code: Option<String>,
    pub(crate) text: String,
    pub(crate) next: Next,
}

impl Reply {
    fn new(status: Status, text: impl Into<String>) -> Reply {
        Reply {
            status,
            code: None,
            text: text.into(),
            next: Next::Stay,
        }
    }

    pub(crate) fn ok(text: impl Into<String>) -> Reply {
        Reply::new(Status::Ok, text)
    }

    pub(crate) fn no(text: impl Into<String>) -> Reply {
        Reply::new(Status::No, text)
    }

    pub(crate) fn bad(text: impl Into<String>) -> Reply {
        Reply::new(Status::Bad, text)
    }

    pub(crate) fn code(mut self, code: impl Into<String>) -> Reply {
        self.code = Some(code.into());
        self
    }

    pub(crate) fn then(mut self, next: Next) -> Reply {
        self.next = next;
        self
    }

    /// The `NO [code]` answer for a metadata error (RFC 5530 response codes).
    pub(crate) fn meta(err: &MetaError) -> Reply {
        match err {
            MetaError::NotFound(_) => Reply::no(err.to_string()).code("NONEXISTENT"),
            MetaError::AlreadyExists(_) => Reply::no(err.to_string()).code("ALREADYEXISTS"),
            MetaError::Invalid(_) => Reply::no(err.to_string()).code("CANNOT"),
            MetaError::OverQuota(_) => Reply::no("Over quota").code("OVERQUOTA"),
            // RFC 5530 §3: LIMIT, a server limit other than quota (keywords, mailboxes).
            MetaError::Limit(_) => Reply::no(err.to_string()).code("LIMIT"),
            MetaError::AuthenticationFailed => {
                Reply::no("Authentication failed").code("AUTHENTICATIONFAILED")
            }
            MetaError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "metadata store unavailable");
                Reply::no("Temporarily unavailable, try again later").code("UNAVAILABLE")
            }
            MetaError::Internal(detail) => {
                tracing::error!(error = %detail, "metadata store internal error");
                Reply::no("Internal server error").code("SERVERBUG")
            }
        }
    }

    /// The `NO [code]` answer for a blob store error.
    pub(crate) fn blob(err: &BlobError) -> Reply {
        match err {
            BlobError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "blob store unavailable");
                Reply::no("Temporarily unavailable, try again later").code("UNAVAILABLE")
            }
            BlobError::NotFound(key) => {
                tracing::error!(key = %key, "message body missing from the blob store");
                Reply::no("Internal server error").code("SERVERBUG")
            }
            BlobError::Other(detail) => {
                tracing::error!(error = %detail, "blob store error");
                Reply::no("Internal server error").code("SERVERBUG")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tagged_lines_cannot_be_split_by_reply_text() {
        let mut sink: Vec<u8> = Vec::new();
        let mut out = Out::new(&mut sink);
        let reply = Reply::meta(&MetaError::NotFound("mailbox a\r\n* OK injected".into()));
        out.tagged("t1", &reply);
        out.flush().await.expect("flush");
        drop(out);
        assert_eq!(
            String::from_utf8(sink).expect("utf8"),
            "t1 NO [NONEXISTENT] mailbox a  * OK injected does not exist\r\n"
        );
    }

    #[tokio::test]
    async fn large_output_is_flushed_early_and_direct_writes_keep_order() {
        let mut sink: Vec<u8> = Vec::new();
        let mut out = Out::new(&mut sink);
        out.line("* first");
        out.write_direct(&[b'x'; 10]).await;
        out.line("");
        for _ in 0..4000 {
            out.line("* 1 FETCH (FLAGS (\\Seen))");
        }
        out.flush_if_large().await;
        assert!(out.buf().is_empty());
        out.flush().await.expect("flush");
        drop(out);
        assert!(sink.starts_with(b"* first\r\nxxxxxxxxxx\r\n* 1 FETCH"));
        assert_eq!(sink.len(), 9 + 10 + 2 + 4000 * 27);
    }
}
