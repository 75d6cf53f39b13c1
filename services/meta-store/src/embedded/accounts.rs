//! Accounts, aliases and domains: the `AccountStore` and `AddressBook` calls.

use std::ops::Bound;

use async_trait::async_trait;
use redb::ReadableTable;
use yubin_meta_api::{
    AccountStore, Alias, ChangeKind, Domain, MetaError, MetaResult, QuotaLimits, QuotaUsage,
    UserId, UserRecord,
};

use super::EmbeddedStore;
use super::tables::*;
use crate::accounts::{self, AddressBook, check_domain, normalize_address, normalize_domain};
use crate::names::INBOX;

#[async_trait]
impl AccountStore for EmbeddedStore {
    async fn create_user(&self, name: &str, password_hash: &str) -> MetaResult<UserRecord> {
        let name = normalize_login(name)?;
        let hash = password_hash.to_string();
        self.write(move |w| {
            if w.user_names.get(name.as_str()).map_err(db_err)?.is_some() {
                return Err(MetaError::AlreadyExists(format!("user {name}")));
            }
            let id = w
                .meta
                .get("next_user_id")
                .map_err(db_err)?
                .map_or(0, |g| g.value())
                + 1;
            w.meta.insert("next_user_id", id).map_err(db_err)?;
            let row = UserRow {
                name: name.clone(),
                password_hash: hash.clone(),
                disabled: false,
            };
            w.users
                .insert(id, encode(&row)?.as_slice())
                .map_err(db_err)?;
            w.user_names.insert(name.as_str(), id).map_err(db_err)?;
            w.put_usage(id, &QuotaUsage::default())?;
            w.id_by_name(id, INBOX)?;
            Ok(UserRecord {
                id: UserId(id),
                name: name.clone(),
                password_hash: hash.clone(),
                disabled: false,
            })
        })
        .await
    }

    async fn user_by_name(&self, name: &str) -> MetaResult<Option<UserRecord>> {
        let name = yubin_meta_api::normalize_login_name(name);
        self.read(
            move |r| match r.user_names.get(name.as_str()).map_err(db_err)? {
                Some(g) => r.user(g.value()),
                None => Ok(None),
            },
        )
        .await
    }

    async fn set_password_hash(&self, user: UserId, password_hash: &str) -> MetaResult<()> {
        let hash = password_hash.to_string();
        self.write(move |w| {
            let mut row: UserRow = match w.users.get(user.0).map_err(db_err)? {
                Some(g) => decode(g.value())?,
                None => return Err(MetaError::NotFound(format!("user {user}"))),
            };
            row.password_hash = hash.clone();
            w.users
                .insert(user.0, encode(&row)?.as_slice())
                .map_err(db_err)?;
            // Sessions opened with the old password end on every node.
            w.emit(user.0, 0, 0, ChangeKind::AccountRevoked);
            Ok(())
        })
        .await
    }

    async fn list_users(&self) -> MetaResult<Vec<UserRecord>> {
        self.read(|r| {
            let mut out = Vec::new();
            for item in r.users.iter().map_err(db_err)? {
                let (k, _) = item.map_err(db_err)?;
                if let Some(u) = r.user(k.value())? {
                    out.push(u);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn list_users_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> MetaResult<Vec<UserRecord>> {
        let after = after.map(str::to_lowercase);
        self.read(move |r| {
            let start = match &after {
                Some(a) => Bound::Excluded(a.as_str()),
                None => Bound::Unbounded,
            };
            let mut out = Vec::new();
            for item in r
                .user_names
                .range::<&str>((start, Bound::Unbounded))
                .map_err(db_err)?
                .take(limit)
            {
                let (_, id) = item.map_err(db_err)?;
                if let Some(u) = r.user(id.value())? {
                    out.push(u);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn user_by_id(&self, user: UserId) -> MetaResult<Option<UserRecord>> {
        self.read(move |r| r.user(user.0)).await
    }

    async fn set_disabled(&self, user: UserId, disabled: bool) -> MetaResult<()> {
        self.write(move |w| {
            let mut row = w.user_row(user.0)?;
            row.disabled = disabled;
            if disabled {
                // A disabled account's sessions end on every node.
                w.emit(user.0, 0, 0, ChangeKind::AccountRevoked);
            }
            w.put_user_row(user.0, &row)
        })
        .await
    }

    async fn delete_user(&self, user: UserId) -> MetaResult<()> {
        let u = user.0;
        // One write transaction: the account is either entirely there or entirely gone.
        self.write(move |w| {
            let row = w.user_row(u)?;
            let mut boxes = Vec::new();
            for item in w
                .mailbox_names
                .range::<(u64, &str)>((u, "")..(u + 1, ""))
                .map_err(db_err)?
            {
                let (k, v) = item.map_err(db_err)?;
                boxes.push((k.value().1.to_string(), v.value()));
            }
            for (name, id) in &boxes {
                let highest = w.mbox(u, *id)?.highest_modseq;
                w.drop_mailbox(u, *id, name)?;
                // Sessions still open on the account learn their mailboxes are gone.
                w.emit(u, *id, highest, ChangeKind::MailboxList);
            }
            let mut addresses = Vec::new();
            for item in w
                .user_aliases
                .range::<(u64, &str)>((u, "")..(u + 1, ""))
                .map_err(db_err)?
            {
                addresses.push(item.map_err(db_err)?.0.value().1.to_string());
            }
            for a in &addresses {
                w.aliases.remove(a.as_str()).map_err(db_err)?;
                w.user_aliases.remove((u, a.as_str())).map_err(db_err)?;
            }
            w.subscriptions
                .retain_in::<(u64, &str), _>((u, "")..(u + 1, ""), |_, _| false)
                .map_err(db_err)?;
            // The account's server entries (its mailboxes' went with them above).
            w.forget_metadata(u, 0)?;
            w.metadata_bytes.remove(u).map_err(db_err)?;
            w.user_names.remove(row.name.as_str()).map_err(db_err)?;
            w.users.remove(u).map_err(db_err)?;
            w.user_seq.remove(u).map_err(db_err)?;
            w.quotas.remove(u).map_err(db_err)?;
            w.forget_index_state(u)?;
            w.deleted_users.insert(u, 1).map_err(db_err)?;
            w.emit(u, 0, 0, ChangeKind::AccountRevoked);
            Ok(())
        })
        .await?;
        // The account's index goes with it.
        if let Some(ft) = &self.full_text {
            ft.indexes
                .drop_user(user)
                .await
                .map_err(crate::fulltext::index_err)?;
        }
        Ok(())
    }

    async fn set_quota(&self, user: UserId, limits: QuotaLimits) -> MetaResult<()> {
        let u = user.0;
        self.write(move |w| {
            w.user_row(u)?;
            let mut usage = w.usage(u)?;
            usage.limits = limits;
            w.put_usage(u, &usage)
        })
        .await
    }

    async fn put_alias(&self, alias: &Alias) -> MetaResult<()> {
        let address = normalize_address(&alias.address)?;
        let target = alias.target.0;
        self.write(move |w| {
            w.user_row(target)?;
            if w.user_names
                .get(address.as_str())
                .map_err(db_err)?
                .is_some()
            {
                return Err(MetaError::AlreadyExists(format!("account {address}")));
            }
            let previous = w
                .aliases
                .insert(address.as_str(), target)
                .map_err(db_err)?
                .map(|g| g.value());
            if let Some(old) = previous.filter(|old| *old != target) {
                w.user_aliases
                    .remove((old, address.as_str()))
                    .map_err(db_err)?;
            }
            w.user_aliases
                .insert((target, address.as_str()), 0)
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn delete_alias(&self, address: &str) -> MetaResult<()> {
        let address = address.trim().to_lowercase();
        self.write(move |w| {
            let target = w
                .aliases
                .remove(address.as_str())
                .map_err(db_err)?
                .map(|g| g.value())
                .ok_or_else(|| MetaError::NotFound(format!("alias {address}")))?;
            w.user_aliases
                .remove((target, address.as_str()))
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn list_aliases(&self) -> MetaResult<Vec<Alias>> {
        self.read(|r| {
            let mut out = Vec::new();
            for item in r.aliases.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                out.push(Alias {
                    address: k.value().to_string(),
                    target: UserId(v.value()),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn put_domain(&self, domain: &Domain) -> MetaResult<()> {
        let name = normalize_domain(&domain.name)?;
        let alias_of = domain
            .alias_of
            .as_deref()
            .map(normalize_domain)
            .transpose()?;
        self.write(move |w| {
            let mut all = Vec::new();
            for item in w.domains.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                all.push((k.value().to_string(), v.value().to_string()));
            }
            check_domain(&all, &name, alias_of.as_deref())?;
            w.domains
                .insert(name.as_str(), alias_of.as_deref().unwrap_or(""))
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn delete_domain(&self, name: &str) -> MetaResult<()> {
        let name = name.trim().to_ascii_lowercase();
        self.write(move |w| {
            let mut aliased_by = None;
            for item in w.domains.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                if v.value() == name {
                    aliased_by = Some(k.value().to_string());
                }
            }
            if let Some(alias) = aliased_by {
                return Err(MetaError::Invalid(format!(
                    "domain {name} is the target of alias domain {alias}; delete that first"
                )));
            }
            if w.domains.remove(name.as_str()).map_err(db_err)?.is_none() {
                return Err(MetaError::NotFound(format!("domain {name}")));
            }
            Ok(())
        })
        .await
    }

    async fn list_domains(&self) -> MetaResult<Vec<Domain>> {
        self.read(|r| {
            let mut out = Vec::new();
            for item in r.domains.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                out.push(Domain {
                    name: k.value().to_string(),
                    alias_of: Some(v.value().to_string()).filter(|a| !a.is_empty()),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn resolve_address(&self, address: &str) -> MetaResult<Option<UserId>> {
        accounts::resolve(self, address).await
    }
}

#[async_trait]
impl AddressBook for EmbeddedStore {
    async fn account(&self, name: &str) -> MetaResult<Option<(UserId, bool)>> {
        let name = name.to_string();
        self.read(
            move |r| match r.user_names.get(name.as_str()).map_err(db_err)? {
                Some(g) => Ok(r.user(g.value())?.map(|u| (u.id, u.disabled))),
                None => Ok(None),
            },
        )
        .await
    }

    async fn alias(&self, address: &str) -> MetaResult<Option<(UserId, bool)>> {
        let address = address.to_string();
        self.read(
            move |r| match r.aliases.get(address.as_str()).map_err(db_err)? {
                // An alias whose account vanished resolves to nothing, like a disabled one.
                Some(g) => Ok(Some(
                    r.user(g.value())?
                        .map_or((UserId(g.value()), true), |u| (u.id, u.disabled)),
                )),
                None => Ok(None),
            },
        )
        .await
    }

    async fn domain(&self, name: &str) -> MetaResult<Option<Option<String>>> {
        let name = name.to_string();
        self.read(move |r| {
            Ok(r.domains
                .get(name.as_str())
                .map_err(db_err)?
                .map(|g| Some(g.value().to_string()).filter(|a| !a.is_empty())))
        })
        .await
    }

    async fn has_domains(&self) -> MetaResult<bool> {
        self.read(|r| Ok(r.domains.first().map_err(db_err)?.is_some()))
            .await
    }
}

/// Login names are case-insensitive and stored lower-cased (see `UserRecord::name`).
pub(crate) fn normalize_login(name: &str) -> MetaResult<String> {
    let n = yubin_meta_api::normalize_login_name(name);
    if n.is_empty() || n.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(MetaError::Invalid(format!("invalid user name {name:?}")));
    }
    Ok(n)
}
