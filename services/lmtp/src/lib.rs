//! Yubin's LMTP delivery service (RFC 2033): the MTA (Postfix, Exim) hands over mail for local
//! recipients, and each accepted recipient gets its own copy stored like an IMAP APPEND — body
//! in the blob store first, then one `MailStore::append` — with a reply per recipient.
//!
//! Extensions: PIPELINING (RFC 2920), 8BITMIME (RFC 6152), ENHANCEDSTATUSCODES (RFC 2034),
//! SIZE (RFC 1870), CHUNKING (RFC 3030, `BDAT`). There is no authentication: LMTP is spoken on a
//! trusted network between the MTA and this service, binds to loopback by default, and answers
//! only clients from its allowed networks ([`allow`]; loopback by default).
//!
//! Layout:
//! - [`proto`]: the wire protocol with no I/O (its own crate, `yubin-lmtp-proto`, so that it can
//!   be fuzzed without the rest) — command lines, `DATA` dot-unstuffing and end marker, `BDAT`
//!   chunks, line-length limit.
//! - `connection`: bytes ↔ receiver ↔ the session state machine (LHLO, MAIL, RCPT, DATA/BDAT).
//! - `body`: the message of a transaction, in memory or spooled to disk when large.
//! - `deliver`: per-recipient copies with `Return-Path`/`Delivered-To`, blob first, then
//!   metadata; error mapping to reply codes.
//! - [`address`]: recipient addresses, `+detail` sub-addressing and account lookup names (also
//!   in `yubin-lmtp-proto`).
//! - [`allow`]: the networks clients may connect from ([`ClientNetwork`]).
//! - `server`: [`LmtpServer`], [`LmtpConfig`], the accept loop, limits, shutdown.

pub mod allow;
pub use yubin_lmtp_proto::address;
mod body;
mod connection;
mod deliver;
pub use yubin_lmtp_proto as proto;
mod reply;
mod server;
mod telemetry;

pub use allow::{ClientNetwork, NetworkError};
pub use server::{LmtpConfig, LmtpServer, OverQuotaReply};
