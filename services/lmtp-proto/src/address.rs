//! Mailbox addresses of `RCPT TO` and the names an account is looked up by.
//!
//! `local+detail@domain` is sub-addressing (RFC 5233): the account is that of `local@domain`, and
//! the detail names a folder to deliver into when the account has one by that name.

/// The separator between the local part and its detail (RFC 5233 §1 uses `+`).
pub const DETAIL_SEPARATOR: char = '+';

/// A parsed `local@domain` (or a bare local part such as `postmaster`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The local part without quotes and escapes; its case is kept (RFC 5321 §2.4), account
    /// lookup ignores it.
    pub local: String,
    /// The domain, lower-cased; `None` for a bare local part.
    pub domain: Option<String>,
}

impl Address {
    /// Parses the text between `<` and `>`; `None` when it is not a mailbox.
    pub fn parse(text: &str) -> Option<Address> {
        let (local, rest) = if let Some(quoted) = text.strip_prefix('"') {
            // RFC 5321 §4.1.2 Quoted-string: backslash escapes one character.
            let mut local = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => local.push(chars.next()?.1),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => local.push(c),
                }
            }
            (local, &quoted[end?..])
        } else {
            match text.rfind('@') {
                Some(at) => (text[..at].to_string(), &text[at..]),
                None => (text.to_string(), ""),
            }
        };
        if local.is_empty() || local.chars().any(|c| c.is_control()) {
            return None;
        }
        let domain = match rest.strip_prefix('@') {
            Some(d) => {
                let valid = !d.is_empty()
                    && d.chars().all(|c| {
                        c.is_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':' | '_')
                    });
                if !valid {
                    return None;
                }
                Some(d.to_lowercase())
            }
            None if rest.is_empty() => None,
            None => return None,
        };
        if !text.starts_with('"') && local.contains(['@', '"', ' ']) {
            return None;
        }
        Some(Address { local, domain })
    }

    /// The local part without its `+detail`, and the detail when there is a non-empty one.
    pub fn split_detail(&self) -> (&str, Option<&str>) {
        match self.local.split_once(DETAIL_SEPARATOR) {
            Some((base, detail)) if !base.is_empty() => {
                (base, Some(detail).filter(|d| !d.is_empty()))
            }
            _ => (&self.local, None),
        }
    }

    /// The address the account is resolved by: the recipient without its detail. The metadata
    /// service maps it (`Authenticator::lookup`: account names, aliases, alias domains, the
    /// local part alone for the installation's domains).
    pub fn lookup_name(&self) -> String {
        let (base, _) = self.split_detail();
        match &self.domain {
            Some(domain) => format!("{base}@{domain}"),
            None => base.to_string(),
        }
    }

    /// The `+detail`, if any.
    pub fn detail(&self) -> Option<&str> {
        self.split_detail().1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Option<Address> {
        Address::parse(s)
    }

    #[test]
    fn addresses_parse() {
        assert_eq!(
            parse("Bob@Example.COM"),
            Some(Address {
                local: "Bob".into(),
                domain: Some("example.com".into())
            })
        );
        assert_eq!(
            parse("\"john \\\"jd\\\" doe\"@example.com"),
            Some(Address {
                local: "john \"jd\" doe".into(),
                domain: Some("example.com".into())
            })
        );
        assert_eq!(
            parse("postmaster"),
            Some(Address {
                local: "postmaster".into(),
                domain: None
            })
        );
        for bad in [
            "",
            "@example.com",
            "a@",
            "a@@b",
            "a@b c",
            "\"open@x",
            "a\"b@x",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn detail_is_split_off_for_lookup() {
        let a = parse("alice+Lists@example.com").expect("parses");
        assert_eq!(a.split_detail(), ("alice", Some("Lists")));
        assert_eq!(a.lookup_name(), "alice@example.com");
        let plain = parse("alice@example.com").expect("parses");
        assert_eq!(plain.detail(), None);
        // An empty detail is no detail; a leading "+" is part of the name.
        assert_eq!(
            parse("alice+@x").expect("parses").split_detail(),
            ("alice", None)
        );
        assert_eq!(parse("+x@y").expect("parses").split_detail(), ("+x", None));
        assert_eq!(parse("bob").expect("parses").lookup_name(), "bob");
    }
}
