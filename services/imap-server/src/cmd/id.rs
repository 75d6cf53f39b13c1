//! ID (RFC 2971). The client's parameters are logged, not interpreted.

use crate::out::{Out, Reply};

pub(crate) fn run(out: &mut Out<'_>, params: Option<Vec<(String, Option<String>)>>) -> Reply {
    if let Some(params) = params {
        let described: Vec<String> = params
            .iter()
            .take(30)
            .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("NIL")))
            .collect();
        tracing::debug!(client = %described.join(" "), "client id");
    }
    out.line(&format!(
        "* ID (\"name\" \"Yubin\" \"version\" \"{}\")",
        env!("CARGO_PKG_VERSION")
    ));
    Reply::ok("ID completed")
}
