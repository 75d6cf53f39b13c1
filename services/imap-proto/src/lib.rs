//! Yubin's IMAP4rev1/IMAP4rev2 grammar: an incremental command receiver and response encoders,
//! with no I/O. The connection feeds bytes in and writes bytes out; this crate only says what the
//! bytes mean and what bytes to write.

mod civil;
pub mod command;
pub mod encode;
mod parse;
pub mod receiver;
mod seqset;

pub use command::*;
pub use parse::catenate::{ImapUrl, parse_imap_url};
pub use receiver::{Limits, LiteralChunk, Received, Receiver};
pub use seqset::merge_ranges;
