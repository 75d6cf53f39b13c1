//! Yubin's IMAP front-end: accepts connections (plain with STARTTLS, or implicit TLS), runs one
//! session per connection over the metadata store, the blob store and the node-wide change
//! notification hub.
//!
//! The front-end is stateless across connections: everything a session knows (its sequence-number
//! view of the selected mailbox, the flags it has reported, the highest MODSEQ it has seen) lives in
//! that connection's task and is rebuilt from the stores on SELECT.

mod cmd;
mod connection;
mod gate;
mod hub;
mod names;
mod out;
mod selected;
mod server;
mod session;
pub mod tls;

pub use server::{ImapConfig, ImapServer};
pub use tls::TlsError;
