//! METADATA (RFC 5464) rules shared by both backends.

use yubin_meta_api::{MetaError, MetaResult, is_valid_metadata_entry};

/// `Invalid` unless every name is a well-formed, lower-cased entry name (RFC 5464 §3.2).
pub(crate) fn check_names<'a>(names: impl IntoIterator<Item = &'a str>) -> MetaResult<()> {
    for name in names {
        if !is_valid_metadata_entry(name) {
            return Err(MetaError::Invalid(format!(
                "invalid metadata entry name {name:?}"
            )));
        }
    }
    Ok(())
}

/// The refusal of a write that would leave more than `max` entries on one mailbox or the
/// server; the IMAP front-end answers it with `[METADATA TOOMANY]` (RFC 5464 §4.3).
pub(crate) fn too_many(max: u32) -> MetaError {
    MetaError::OverQuota(format!("more than {max} metadata entries"))
}
