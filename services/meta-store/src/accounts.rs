//! Account-level rules both backends share: the spelling of addresses and domains, the quota
//! check, and recipient address resolution ([`resolve`]).

use async_trait::async_trait;
use yubin_meta_api::{MetaError, MetaResult, QuotaLimits, QuotaUsage, UserId};

/// Longest address accepted (RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the
/// angle brackets).
const MAX_ADDRESS_LEN: usize = 254;
/// Longest domain name (RFC 1035 §2.3.4).
const MAX_DOMAIN_LEN: usize = 253;

/// A domain name, lower-cased: dot-separated labels of ASCII letters, digits and `-` (IDNs in
/// their punycode form), no empty label, no label starting or ending with `-`.
pub(crate) fn normalize_domain(name: &str) -> MetaResult<String> {
    let d = name.trim().to_ascii_lowercase();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if d.is_empty() || d.len() > MAX_DOMAIN_LEN || !d.split('.').all(label_ok) {
        return Err(MetaError::Invalid(format!("invalid domain name {name:?}")));
    }
    Ok(d)
}

/// A full address `local@domain`, lower-cased, with a valid domain and a local part free of
/// whitespace and control characters.
pub(crate) fn normalize_address(address: &str) -> MetaResult<String> {
    let a = address.trim().to_lowercase();
    let bad = || MetaError::Invalid(format!("invalid address {address:?}: use local@domain"));
    let (local, domain) = a.rsplit_once('@').ok_or_else(bad)?;
    if a.len() > MAX_ADDRESS_LEN
        || local.is_empty()
        || local.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    normalize_domain(domain).map_err(|_| bad())?;
    Ok(a)
}

/// Refuses adding `bytes` and `messages` to `usage` when that would exceed a limit (RFC 9208
/// §5: the server refuses the whole operation; nothing is written).
pub(crate) fn check_quota(usage: &QuotaUsage, bytes: u64, messages: u64) -> MetaResult<()> {
    let QuotaLimits {
        storage_bytes,
        messages: message_limit,
    } = usage.limits;
    if let Some(limit) = storage_bytes
        && usage.storage_bytes.saturating_add(bytes) > limit
    {
        return Err(MetaError::OverQuota(format!(
            "storage limit of {limit} bytes reached"
        )));
    }
    if let Some(limit) = message_limit
        && usage.messages.saturating_add(messages) > limit
    {
        return Err(MetaError::OverQuota(format!(
            "limit of {limit} messages reached"
        )));
    }
    Ok(())
}

/// Whether `name` may become a domain (an alias of `alias_of` when given) next to the `existing`
/// (name, alias_of or "") domains: an alias domain points at a configured domain that is not
/// itself an alias, and a domain other domains alias cannot become an alias (no chains).
pub(crate) fn check_domain(
    existing: &[(String, String)],
    name: &str,
    alias_of: Option<&str>,
) -> MetaResult<()> {
    let Some(target) = alias_of else {
        return Ok(());
    };
    if target == name {
        return Err(MetaError::Invalid(format!(
            "domain {name} cannot be an alias of itself"
        )));
    }
    match existing.iter().find(|(n, _)| n == target) {
        None => {
            return Err(MetaError::Invalid(format!(
                "alias target domain {target} is not configured"
            )));
        }
        Some((_, its_target)) if !its_target.is_empty() => {
            return Err(MetaError::Invalid(format!(
                "alias target domain {target} is itself an alias of {its_target}"
            )));
        }
        Some(_) => {}
    }
    if let Some((alias, _)) = existing.iter().find(|(_, t)| t == name) {
        return Err(MetaError::Invalid(format!(
            "domain {name} is the target of alias domain {alias}, so it cannot be an alias"
        )));
    }
    Ok(())
}

/// What address resolution needs to read from a backend.
#[async_trait]
pub(crate) trait AddressBook: Send + Sync {
    /// The account with this (lower-cased) login name and whether it is disabled.
    async fn account(&self, name: &str) -> MetaResult<Option<(UserId, bool)>>;
    /// The target of the alias for this (lower-cased) address, and whether it is disabled.
    async fn alias(&self, address: &str) -> MetaResult<Option<(UserId, bool)>>;
    /// `Some(alias_of)` when the domain is configured (`alias_of` empty for a real domain).
    async fn domain(&self, name: &str) -> MetaResult<Option<Option<String>>>;
    /// Whether any domain is configured.
    async fn has_domains(&self) -> MetaResult<bool>;
}

/// The rules of [`yubin_meta_api::AccountStore::resolve_address`], over any backend.
pub(crate) async fn resolve(book: &impl AddressBook, address: &str) -> MetaResult<Option<UserId>> {
    let address = address.trim().to_lowercase();
    if address.is_empty() {
        return Ok(None);
    }
    let enabled = |hit: Option<(UserId, bool)>| hit.map(|(id, disabled)| (!disabled).then_some(id));
    // Rules 1 and 2 on the address as given.
    if let Some(found) = enabled(book.account(&address).await?) {
        return Ok(found);
    }
    if let Some(found) = enabled(book.alias(&address).await?) {
        return Ok(found);
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Ok(None);
    };
    if local.is_empty() || domain.is_empty() {
        return Ok(None);
    }
    let mut domain = domain.to_string();
    let mut configured = book.domain(&domain).await?;
    // Rule 3: an alias domain rewrites to its target, once.
    if let Some(Some(target)) = configured.clone() {
        let rewritten = format!("{local}@{target}");
        if let Some(found) = enabled(book.account(&rewritten).await?) {
            return Ok(found);
        }
        if let Some(found) = enabled(book.alias(&rewritten).await?) {
            return Ok(found);
        }
        domain = target;
        configured = book.domain(&domain).await?;
    }
    // Rule 4: the local part alone, for the installation's own domains.
    let local_domain = match configured {
        Some(_) => true,
        None => !book.has_domains().await?,
    };
    if !local_domain {
        return Ok(None);
    }
    Ok(enabled(book.account(local).await?).flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!(normalize_domain(" Example.ORG ").unwrap(), "example.org");
        assert_eq!(
            normalize_domain("xn--bcher-kva.de").unwrap(),
            "xn--bcher-kva.de"
        );
        assert_eq!(normalize_domain("localhost").unwrap(), "localhost");
        for bad in [
            "",
            ".",
            "a..b",
            "-a.b",
            "a-.b",
            "a b",
            "a_b.c",
            "ü.de",
            "a.",
            &"x".repeat(64),
        ] {
            assert!(normalize_domain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(
            normalize_address("Alice@Example.org").unwrap(),
            "alice@example.org"
        );
        assert_eq!(normalize_address("a@b@c.d").unwrap(), "a@b@c.d");
        for bad in [
            "alice",
            "@example.org",
            "alice@",
            "a b@c.d",
            "a@c..d",
            "a\n@c.d",
        ] {
            assert!(normalize_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn quota_check() {
        let usage = QuotaUsage {
            limits: QuotaLimits {
                storage_bytes: Some(100),
                messages: Some(2),
            },
            storage_bytes: 60,
            messages: 1,
        };
        assert!(
            check_quota(&usage, 40, 1).is_ok(),
            "reaching a limit exactly is allowed"
        );
        assert!(matches!(
            check_quota(&usage, 41, 1),
            Err(MetaError::OverQuota(_))
        ));
        assert!(matches!(
            check_quota(&usage, 0, 2),
            Err(MetaError::OverQuota(_))
        ));
        assert!(check_quota(&QuotaUsage::default(), u64::MAX, u64::MAX).is_ok());
    }
}
