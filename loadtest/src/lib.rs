//! Yubin's load generator and the small IMAP wire client it (and the end-to-end tests) use.

pub mod bigbox;
pub mod client;
pub mod corpus;
pub mod fetch;
pub mod mailmix;
pub mod probe;
pub mod stats;
pub mod workload;
