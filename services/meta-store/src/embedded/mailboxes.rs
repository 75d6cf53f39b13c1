//! The mailbox list, subscriptions, quota and METADATA (RFC 5464) of the `MailStore` calls.

use std::collections::BTreeMap;

use redb::ReadableTable;
use yubin_meta_api::{
    AccountStore, ChangeKind, MailboxInfo, MetaError, MetaResult, MetadataDepth, MetadataEntry,
    QuotaLimits, QuotaUsage, SpecialUse, UserId,
};

use super::EmbeddedStore;
use super::tables::*;
use crate::metadata;
use crate::names::{self, INBOX};

pub(super) async fn list_mailboxes(
    s: &EmbeddedStore,
    user: UserId,
) -> MetaResult<Vec<MailboxInfo>> {
    s.ensure_inbox(user).await?;
    let u = user.0;
    s.read(move |r| {
        let mut out = Vec::new();
        for item in r.mailboxes.range((u, 0)..=(u, u64::MAX)).map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let row: MboxRow = decode(v.value())?;
            let id = k.value().1;
            let recent = count_unclaimed(&r.messages, u, id, row.recent_from)?;
            out.push(row.info(id, recent));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    })
    .await
}

pub(super) async fn list_subscriptions(s: &EmbeddedStore, user: UserId) -> MetaResult<Vec<String>> {
    let u = user.0;
    s.read(move |r| {
        let mut out = Vec::new();
        for item in r.subscriptions.range((u, "")..).map_err(db_err)? {
            let (k, _) = item.map_err(db_err)?;
            let (ku, name) = k.value();
            if ku != u {
                break;
            }
            out.push(name.to_string());
        }
        Ok(out)
    })
    .await
}

pub(super) async fn set_subscribed(
    s: &EmbeddedStore,
    user: UserId,
    name: &str,
    subscribed: bool,
) -> MetaResult<()> {
    let name = names::checked(name)?;
    let u = user.0;
    s.write_user(user, move |w| {
        let changed = if subscribed {
            w.subscriptions
                .insert((u, name.as_str()), 0)
                .map_err(db_err)?
                .is_none()
        } else {
            w.subscriptions
                .remove((u, name.as_str()))
                .map_err(db_err)?
                .is_some()
        };
        if changed {
            w.emit(u, 0, 0, ChangeKind::MailboxList);
        }
        Ok(())
    })
    .await
}

pub(super) async fn create_mailbox(
    s: &EmbeddedStore,
    user: UserId,
    name: &str,
    special_use: Option<SpecialUse>,
) -> MetaResult<MailboxInfo> {
    let name = names::for_create(name)?;
    let (u, limits) = (user.0, s.limits);
    s.write_user(user, move |w| {
        if w.id_by_name(u, &name)?.is_some() {
            return Err(MetaError::AlreadyExists(format!("mailbox {name}")));
        }
        w.check_mailbox_room(&limits, u, &name, 1)?;
        w.create_superiors(u, &name)?;
        let (id, row) = w.create_mbox(u, &name, special_use)?;
        // A new mailbox holds no message, so none is unclaimed.
        Ok(row.info(id, 0))
    })
    .await
}

pub(super) async fn delete_mailbox(s: &EmbeddedStore, user: UserId, name: &str) -> MetaResult<()> {
    let name = names::checked(name)?;
    if name == INBOX {
        return Err(MetaError::Invalid("INBOX cannot be deleted".into()));
    }
    let u = user.0;
    s.write_user(user, move |w| {
        let id = w.id_by_name_req(u, &name)?;
        let row = w.mbox(u, id)?;
        w.credit(u, row.size, u64::from(row.exists))?;
        w.drop_mailbox(u, id, &name)?;
        w.emit(u, id, row.highest_modseq, ChangeKind::MailboxList);
        Ok(())
    })
    .await
}

pub(super) async fn rename_mailbox(
    s: &EmbeddedStore,
    user: UserId,
    from: &str,
    to: &str,
) -> MetaResult<()> {
    let from = names::checked(from)?;
    let to = names::checked(to)?;
    if to == from || names::is_inferior(&to, &from) {
        return Err(MetaError::Invalid(format!(
            "cannot rename {from} to {to}: a mailbox cannot become its own inferior"
        )));
    }
    let (u, limits) = (user.0, s.limits);
    s.write_user(user, move |w| {
        let src = w.id_by_name_req(u, &from)?;
        if w.id_by_name(u, &to)?.is_some() {
            return Err(MetaError::AlreadyExists(format!("mailbox {to}")));
        }
        if from == INBOX {
            // RFC 3501 §6.3.5: renaming INBOX moves its messages to a new mailbox and
            // leaves INBOX empty; INBOX's inferiors stay where they are.
            w.check_mailbox_room(&limits, u, &to, 1)?;
            w.create_superiors(u, &to)?;
            let (dst, _) = w.create_mbox(u, &to, None)?;
            w.transfer(u, src, None, dst, true, &limits)?;
            return Ok(());
        }
        // The moved mailboxes keep their number; only missing superiors of `to` are new.
        w.check_mailbox_room(&limits, u, &to, 0)?;
        let mut moving: Vec<(String, u64)> = Vec::new();
        for item in w.mailbox_names.range((u, "")..).map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let (ku, name) = k.value();
            if ku != u {
                break;
            }
            if name == from || names::is_inferior(name, &from) {
                moving.push((name.to_string(), v.value()));
            }
        }
        for (name, _) in &moving {
            let target = names::renamed(name, &from, &to);
            if read_mbox_id(&*w.mailbox_names, u, &target)?.is_some() {
                return Err(MetaError::AlreadyExists(format!("mailbox {target}")));
            }
        }
        for (name, id) in &moving {
            let target = names::renamed(name, &from, &to);
            w.mailbox_names.remove((u, name.as_str())).map_err(db_err)?;
            w.mailbox_names
                .insert((u, target.as_str()), *id)
                .map_err(db_err)?;
            let mut row = w.mbox(u, *id)?;
            row.name = target;
            w.put_mbox(u, *id, &row)?;
            w.emit(u, *id, row.highest_modseq, ChangeKind::MailboxList);
        }
        w.create_superiors(u, &to)?;
        Ok(())
    })
    .await
}

pub(super) async fn mailbox_status(
    s: &EmbeddedStore,
    user: UserId,
    name: &str,
) -> MetaResult<MailboxInfo> {
    let name = names::checked(name)?;
    if name == INBOX {
        s.ensure_inbox(user).await?;
    }
    let u = user.0;
    s.read(move |r| {
        let id = r.id_by_name(u, &name)?;
        let row = r.mbox(u, id)?;
        let recent = count_unclaimed(&r.messages, u, id, row.recent_from)?;
        Ok(row.info(id, recent))
    })
    .await
}

pub(super) async fn set_account_quota(
    s: &EmbeddedStore,
    user: UserId,
    limits: QuotaLimits,
) -> MetaResult<()> {
    AccountStore::set_quota(s, user, limits).await
}

pub(super) async fn quota(s: &EmbeddedStore, user: UserId) -> MetaResult<QuotaUsage> {
    let u = user.0;
    s.read(move |r| {
        if r.users.get(u).map_err(db_err)?.is_none() {
            return Err(MetaError::NotFound(format!("user {user}")));
        }
        read_usage(&r.quotas, &r.mailboxes, u)
    })
    .await
}

pub(super) async fn get_metadata(
    s: &EmbeddedStore,
    user: UserId,
    mailbox: Option<&str>,
    entries: &[String],
    depth: MetadataDepth,
) -> MetaResult<Vec<MetadataEntry>> {
    metadata::check_names(entries.iter().map(String::as_str))?;
    let name = mailbox.map(names::checked).transpose()?;
    let entries = entries.to_vec();
    let u = user.0;
    s.read(move |r| {
        let m = match &name {
            Some(name) => r.id_by_name(u, name)?,
            None => 0,
        };
        let mut out = BTreeMap::new();
        for requested in &entries {
            // Every descendant `requested/...` sorts below `requested0` ('0' follows '/').
            let end = format!("{requested}0");
            for item in r
                .metadata
                .range::<(u64, u64, &str)>((u, m, requested.as_str())..(u, m, end.as_str()))
                .map_err(db_err)?
            {
                let (k, v) = item.map_err(db_err)?;
                let entry = k.value().2;
                if depth.selects(requested, entry) {
                    out.insert(entry.to_string(), v.value().to_vec());
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|(name, value)| MetadataEntry { name, value })
            .collect())
    })
    .await
}

pub(super) async fn set_metadata(
    s: &EmbeddedStore,
    user: UserId,
    mailbox: Option<&str>,
    entries: &[(String, Option<Vec<u8>>)],
    max_entries: u32,
) -> MetaResult<()> {
    metadata::check_names(entries.iter().map(|(n, _)| n.as_str()))?;
    let name = mailbox.map(names::checked).transpose()?;
    let entries = entries.to_vec();
    let (u, limits) = (user.0, s.limits);
    s.write_user(user, move |w| {
        let m = match &name {
            Some(name) => w.id_by_name_req(u, name)?,
            None => 0,
        };
        let mut added = false;
        // Bytes (name and value) written minus bytes removed, for the account's budget.
        let mut delta: i64 = 0;
        for (entry, value) in &entries {
            let old = match value {
                Some(v) => w
                    .metadata
                    .insert((u, m, entry.as_str()), v.as_slice())
                    .map_err(db_err)?
                    .map(|old| old.value().len()),
                None => w
                    .metadata
                    .remove((u, m, entry.as_str()))
                    .map_err(db_err)?
                    .map(|old| old.value().len()),
            };
            added |= value.is_some() && old.is_none();
            let now = value.as_ref().map_or(0, |v| entry.len() + v.len());
            delta += now as i64 - old.map_or(0, |o| entry.len() + o) as i64;
        }
        // Only growth is refused: with a lowered limit, removing entries still works.
        // Returning an error drops the transaction: nothing was written.
        if added {
            let mut count = 0u64;
            for item in w
                .metadata
                .range::<(u64, u64, &str)>((u, m, "")..(u, m + 1, ""))
                .map_err(db_err)?
            {
                item.map_err(db_err)?;
                count += 1;
            }
            if count > u64::from(max_entries) {
                return Err(metadata::too_many(max_entries));
            }
        }
        let held = w.metadata_bytes_of(u)?;
        let now = held.saturating_add_signed(delta);
        if delta > 0 && now > limits.max_metadata_bytes_per_account {
            return Err(limits.too_much_metadata());
        }
        w.set_metadata_bytes(u, now)
    })
    .await
}

impl EmbeddedStore {
    /// Makes sure INBOX exists ("created on first use") before a read that lists or opens it.
    pub(super) async fn ensure_inbox(&self, user: UserId) -> MetaResult<()> {
        let u = user.0;
        let exists = self
            .read(move |r| Ok(read_mbox_id(&r.mailbox_names, u, INBOX)?.is_some()))
            .await?;
        if !exists {
            self.write_user(user, move |w| w.id_by_name(u, INBOX).map(|_| ()))
                .await?;
        }
        Ok(())
    }
}
