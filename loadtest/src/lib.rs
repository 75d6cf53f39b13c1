//! Yubin's load generator and the small IMAP wire client it (and the end-to-end tests) use.

pub mod client;
pub mod workload;
