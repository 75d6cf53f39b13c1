//! Yubin's IMAP front-end: accepts connections (plain with STARTTLS, or implicit TLS), runs one
//! session per connection over the metadata store, the blob store and the node-wide change
//! notification hub.
//!
//! The front-end is stateless across connections: everything a session knows (its sequence-number
//! view of the selected mailbox, the flags it has reported, the highest MODSEQ it has seen) lives in
//! that connection's task and is rebuilt from the stores on SELECT.
//!
//! Layout:
//! - `server`: [`ImapServer`], [`ImapConfig`], the accept loop, connection limit, shutdown.
//! - `connection`: bytes ↔ receiver ↔ dispatcher; STARTTLS, implicit TLS, IDLE, SASL, timeouts.
//! - `session`: the state enum (`NotAuthenticated`, `Authenticated`, `Selected`, `Logout`) and
//!   its transitions; `gate`: the one table of which command is valid in which state.
//! - `spool`: temporary files for APPEND literals too large to buffer, uploaded from disk.
//! - `cmd::*`: one handler per command, each returning the tagged reply plus the transition.
//! - `selected`: the selected mailbox's sequence-number view and the MODSEQ catch-up that turns
//!   changes into EXISTS / EXPUNGE / FETCH, holding EXPUNGE back where RFC 3501 §7.4.1 says so;
//!   `selected/flags.rs`: the flags and MODSEQs the view knows, which answer flag reads.
//! - `hub`: one change stream per user per node, fanned out to that user's sessions.
//! - `sort_keys`, `threading`: what SORT compares and the THREAD algorithms (RFC 5256), pure
//!   functions bounded against hostile headers.
//! - `names`: modified UTF-7 mailbox names and LIST patterns; `out`: response buffer and replies;
//!   `telemetry`: Prometheus metrics; [`tls`]: rustls configurations.

mod cmd;
mod connection;
mod deflate;
mod gate;
mod hub;
mod names;
mod out;
mod selected;
mod server;
mod session;
mod sort_keys;
mod spool;
mod telemetry;
mod threading;
pub mod tls;

pub use server::{ImapConfig, ImapServer, MetadataLimits, SortThreadLimits, Timeouts};
pub use tls::TlsError;
