//! [`MailStore`] on Redis: one script per operation, answers checked against the high-water
//! marks (see `rollback`).

use super::*;

/// The high-water view of a mailbox answer.
fn mark_of(info: &MailboxInfo) -> rollback::Mark {
    rollback::Mark {
        uid_validity: info.uid_validity,
        uid_next: info.uid_next,
        highest_modseq: info.highest_modseq,
    }
}

/// The store operations whose answers the high-water marks check (see `rollback`), as read
/// or written once.
impl RedisStore {
    async fn list_once(&self, user: UserId) -> MetaResult<Vec<MailboxInfo>> {
        let mut inv = self.call(&self.scripts.list, user);
        inv.arg(now_secs());
        let mut out = v_array(self.invoke_read(&inv).await?)?
            .into_iter()
            .map(parse_info)
            .collect::<MetaResult<Vec<_>>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn status_once(&self, user: UserId, name: &str) -> MetaResult<MailboxInfo> {
        let mut inv = self.call(&self.scripts.status, user);
        inv.arg(now_secs()).arg(name);
        parse_info(self.invoke_read(&inv).await?)
    }

    async fn select_once(&self, user: UserId, name: &str) -> MetaResult<MailboxSnapshot> {
        let mut inv = self.call(&self.scripts.select, user);
        inv.arg(now_secs()).arg(name).arg(self.snapshot_flags_max);
        snapshot::parse_snapshot(self.invoke_read(&inv).await?, &self.limits)
    }

    async fn append_once(
        &self,
        user: UserId,
        mailbox: &str,
        messages: Vec<NewMessage>,
    ) -> MetaResult<AppendResult> {
        let name = names::checked(mailbox)?;
        // Checked here for the Lua script: the embedded store does the same, before writing.
        for m in &messages {
            m.check_owner(user)?;
        }
        let mut inv = self.call(&self.scripts.append, user);
        inv.arg(now_secs()).arg(&name).arg(messages.len());
        for m in &messages {
            let flags = flags::normalize(&m.flags)?;
            self.limits.check_given(&flags)?;
            let flags = flags.join(" ");
            let index = crate::fulltext::encode_queued(&m.index)?;
            inv.arg(flags)
                .arg(encode_record(m))
                .arg(&m.summary[..])
                .arg(index);
        }
        let mut it = v_array(self.invoke(&inv).await?)?.into_iter();
        let uid_validity = UidValidity(v_num(next(&mut it)?)?);
        let mailbox = MailboxId(v_num(next(&mut it)?)?);
        let uids = it.map(|u| v_num(u).map(Uid)).collect::<MetaResult<_>>()?;
        Ok(AppendResult {
            uid_validity,
            uids,
            mailbox,
        })
    }

    async fn copy_once(
        &self,
        user: UserId,
        source: MailboxId,
        uids: &UidSet,
        destination: &str,
        remove_source: bool,
    ) -> MetaResult<CopyResult> {
        let name = names::checked(destination)?;
        let mut inv = self.call(&self.scripts.copy, user);
        inv.arg(source.0)
            .arg(now_secs())
            .arg(&name)
            .arg(if remove_source { "1" } else { "0" });
        push_ranges(&mut inv, uids);
        let mut it = v_array(self.invoke(&inv).await?)?.into_iter();
        let uid_validity = UidValidity(v_num(next(&mut it)?)?);
        let destination = MailboxId(v_num(next(&mut it)?)?);
        let flat = parse_uids(next(&mut it)?)?;
        let mapping = flat.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        Ok(CopyResult {
            uid_validity,
            mapping,
            destination,
        })
    }
}

#[async_trait]
impl MailStore for RedisStore {
    async fn list_mailboxes(&self, user: UserId) -> MetaResult<Vec<MailboxInfo>> {
        let mut out = self.list_once(user).await?;
        let mut moved = false;
        for info in &out {
            moved |= self.guard(user, info.id, mark_of(info)).await?.is_some();
        }
        if moved {
            // Read again: the moved mailboxes now answer with their new UIDVALIDITY.
            out = self.list_once(user).await?;
        }
        Ok(out)
    }

    async fn list_subscriptions(&self, user: UserId) -> MetaResult<Vec<String>> {
        let mut c = self.conn.clone();
        let mut v: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{}subs", prefix(user)))
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        v.sort();
        Ok(v)
    }

    async fn set_subscribed(&self, user: UserId, name: &str, subscribed: bool) -> MetaResult<()> {
        let name = names::checked(name)?;
        let mut inv = self.call(&self.scripts.subscribe, user);
        inv.arg(&name).arg(if subscribed { "1" } else { "0" });
        self.invoke(&inv).await.map(|_| ())
    }

    async fn create_mailbox(
        &self,
        user: UserId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> MetaResult<MailboxInfo> {
        let name = names::for_create(name)?;
        let mut inv = self.call(&self.scripts.create, user);
        inv.arg(now_secs())
            .arg(&name)
            .arg(special_use.map_or("", SpecialUse::as_imap));
        parse_info(self.invoke(&inv).await?)
    }

    async fn delete_mailbox(&self, user: UserId, name: &str) -> MetaResult<()> {
        let name = names::checked(name)?;
        if name == INBOX {
            return Err(MetaError::Invalid("INBOX cannot be deleted".into()));
        }
        let mut inv = self.call(&self.scripts.delete, user);
        inv.arg(&name);
        self.invoke(&inv).await?;
        self.nudge_indexer(user);
        Ok(())
    }

    async fn rename_mailbox(&self, user: UserId, from: &str, to: &str) -> MetaResult<()> {
        let from = names::checked(from)?;
        let to = names::checked(to)?;
        if to == from || names::is_inferior(&to, &from) {
            return Err(MetaError::Invalid(format!(
                "cannot rename {from} to {to}: a mailbox cannot become its own inferior"
            )));
        }
        let mut inv = self.call(&self.scripts.rename, user);
        inv.arg(now_secs()).arg(&from).arg(&to);
        self.invoke(&inv).await.map(|_| ())
    }

    async fn mailbox_status(&self, user: UserId, name: &str) -> MetaResult<MailboxInfo> {
        let name = names::checked(name)?;
        let info = self.status_once(user, &name).await?;
        if self.guard(user, info.id, mark_of(&info)).await?.is_some() {
            return self.status_once(user, &name).await;
        }
        Ok(info)
    }

    async fn select(&self, user: UserId, name: &str) -> MetaResult<MailboxSnapshot> {
        let name = names::checked(name)?;
        let snapshot = self.select_once(user, &name).await?;
        let info = &snapshot.info;
        if self.guard(user, info.id, mark_of(info)).await?.is_some() {
            return self.select_once(user, &name).await;
        }
        Ok(snapshot)
    }

    async fn append(
        &self,
        user: UserId,
        mailbox: &str,
        messages: Vec<NewMessage>,
    ) -> MetaResult<AppendResult> {
        let mut result = self.append_once(user, mailbox, messages).await?;
        self.nudge_indexer(user);
        result.uid_validity = self
            .validity_after_write(
                user,
                result.mailbox,
                result.uid_validity,
                result.uids.last(),
            )
            .await?;
        Ok(result)
    }

    async fn copy_messages(
        &self,
        user: UserId,
        source: MailboxId,
        uids: &UidSet,
        destination: &str,
        remove_source: bool,
    ) -> MetaResult<CopyResult> {
        let mut result = self
            .copy_once(user, source, uids, destination, remove_source)
            .await?;
        self.nudge_indexer(user);
        let last = result.mapping.last().map(|(_, to)| to);
        result.uid_validity = self
            .validity_after_write(user, result.destination, result.uid_validity, last)
            .await?;
        Ok(result)
    }

    async fn fetch(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: &UidSet,
        with_summary: bool,
    ) -> MetaResult<Vec<MessageRecord>> {
        let mut inv = self.call(&self.scripts.fetch, user);
        inv.arg(mailbox.0).arg(if with_summary { "1" } else { "0" });
        push_ranges(&mut inv, uids);
        Ok(parse_rows(self.invoke_read(&inv).await?, with_summary)?
            .into_iter()
            .map(|r| r.into_record(with_summary))
            .collect())
    }

    async fn store_flags(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: &UidSet,
        op: FlagOp,
        flags: &[String],
        unchanged_since: Option<ModSeq>,
    ) -> MetaResult<StoreResult> {
        let given = flags::normalize(flags)?;
        if op != FlagOp::Remove {
            // Refused before the script runs: this is the cheap, common rejection.
            self.limits.check_given(&given)?;
        }
        let op = match op {
            FlagOp::Add => "add",
            FlagOp::Remove => "remove",
            FlagOp::Replace => "replace",
        };
        let batch = |rest: &UidSet, mode: &str| {
            let mut inv = self.call(&self.scripts.store, user);
            inv.arg(mailbox.0)
                .arg(op)
                .arg(unchanged_since.map_or(String::new(), |m| m.0.to_string()))
                .arg(self.limits.redis_batch_messages)
                .arg(mode)
                .arg(given.len());
            for f in &given {
                inv.arg(f);
            }
            push_ranges(&mut inv, rest);
            inv
        };
        // The script handles a batch of messages per call, so that a STORE over a huge
        // mailbox never holds Redis (which cannot stop a script that has written) for long.
        // A STORE that can add keywords is checked batch by batch before any write: the
        // keyword limits refuse it as a whole (RFC 5530 [LIMIT]) rather than after some
        // batches were written. Its first call writes when the whole set fits in one batch
        // (the common case costs one call) and only checks otherwise. Only a concurrent change
        // between the check and the write can still make a later batch refuse, which leaves
        // the earlier ones stored; RFC 3501 §6.4.6 does not make STORE atomic across messages.
        let mut result = StoreResult {
            updated: Vec::new(),
            modified: Vec::new(),
            highest_modseq: ModSeq(0),
        };
        if op != "remove" && given.iter().any(|f| !is_system_flag(f)) {
            let last = parse_store_batch(self.invoke(&batch(uids, "2")).await?, &mut result)?;
            if last == 0 {
                return Ok(result);
            }
            let mut rest = uids_above(uids, last);
            loop {
                let mut checked = StoreResult {
                    updated: Vec::new(),
                    modified: Vec::new(),
                    highest_modseq: ModSeq(0),
                };
                // Mode 1 only checks the limits and writes nothing: no WAIT.
                let reply = self.invoke_read(&batch(&rest, "1")).await?;
                match parse_store_batch(reply, &mut checked)? {
                    0 => break,
                    last => rest = uids_above(&rest, last),
                }
            }
        }
        let mut rest = uids.clone();
        loop {
            match parse_store_batch(self.invoke(&batch(&rest, "0")).await?, &mut result)? {
                0 => return Ok(result),
                last => rest = uids_above(&rest, last),
            }
        }
    }

    async fn expunge(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: Option<&UidSet>,
    ) -> MetaResult<Vec<Uid>> {
        let mut inv = self.call(&self.scripts.expunge, user);
        inv.arg(mailbox.0)
            .arg(if uids.is_some() { "1" } else { "0" });
        if let Some(set) = uids {
            push_ranges(&mut inv, set);
        }
        let expunged = parse_uids(self.invoke(&inv).await?)?;
        if !expunged.is_empty() {
            self.nudge_indexer(user);
        }
        Ok(expunged)
    }

    async fn search(
        &self,
        user: UserId,
        mailbox: MailboxId,
        key: &SearchKey,
    ) -> MetaResult<Vec<Uid>> {
        // The two flags with their own index answer without a scan (SEARCH UNSEEN / DELETED).
        let indexed = match key {
            SearchKey::NoFlag(f) if f.eq_ignore_ascii_case("\\Seen") => Some("unseen"),
            SearchKey::Flag(f) if f.eq_ignore_ascii_case("\\Deleted") => Some("deleted"),
            _ => None,
        };
        if let Some(mode) = indexed {
            return self.search_index_mode(user, mailbox, mode).await;
        }
        Ok(self
            .scan_matching(user, mailbox, key, search::needs(key))
            .await?
            .0
            .into_iter()
            .map(|m| m.uid)
            .collect())
    }

    async fn search_indexed(
        &self,
        user: UserId,
        mailbox: MailboxId,
        key: &SearchKey,
        projection: &IndexProjection,
    ) -> MetaResult<Vec<IndexedMessage>> {
        self.search_projected(user, mailbox, key, projection).await
    }

    async fn changes_since(
        &self,
        user: UserId,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> MetaResult<Changes> {
        let mut inv = self.call(&self.scripts.changes, user);
        inv.arg(mailbox.0).arg(since.0).arg(now_secs());
        let mut it = v_array(self.invoke_read(&inv).await?)?.into_iter();
        if v_num::<u8>(next(&mut it)?)? == 0 {
            return Ok(Changes {
                highest_modseq: ModSeq(0),
                uid_next: Uid(0),
                exists: 0,
                changed: Vec::new(),
                vanished: Vec::new(),
                mailbox_gone: true,
                log_trimmed: false,
            });
        }
        let highest_modseq = ModSeq(v_num(next(&mut it)?)?);
        let uid_next = Uid(v_num(next(&mut it)?)?);
        let exists = v_num(next(&mut it)?)?;
        let mut changed: Vec<MessageRecord> = parse_rows(next(&mut it)?, false)?
            .into_iter()
            .map(|r| r.into_record(false))
            .collect();
        changed.sort_by_key(|m| m.uid);
        let mut vanished = parse_uids(next(&mut it)?)?;
        vanished.sort_unstable();
        let log_trimmed = v_num::<u8>(next(&mut it)?)? == 1;
        Ok(Changes {
            highest_modseq,
            uid_next,
            exists,
            changed,
            vanished,
            mailbox_gone: false,
            log_trimmed,
        })
    }

    async fn watch(&self, user: UserId) -> MetaResult<ChangeStream> {
        Ok(self.hub.watch(user).await)
    }

    async fn set_account_quota(&self, user: UserId, limits: QuotaLimits) -> MetaResult<()> {
        AccountStore::set_quota(self, user, limits).await
    }

    async fn quota(&self, user: UserId) -> MetaResult<QuotaUsage> {
        let inv = self.call(&self.scripts.quota, user);
        let mut it = v_array(self.invoke_read(&inv).await?)?.into_iter();
        let storage_bytes = v_num(next(&mut it)?)?;
        let messages = v_num(next(&mut it)?)?;
        let limit = |v: Value| -> MetaResult<Option<u64>> {
            let s = v_string(v)?;
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse()
                    .map(Some)
                    .map_err(|_| bad_reply(&format!("quota limit {s:?}")))
            }
        };
        let limits = QuotaLimits {
            storage_bytes: limit(next(&mut it)?)?,
            messages: limit(next(&mut it)?)?,
        };
        Ok(QuotaUsage {
            limits,
            storage_bytes,
            messages,
        })
    }

    async fn claim_recent(
        &self,
        user: UserId,
        mailbox: MailboxId,
        up_to: Uid,
    ) -> MetaResult<UidRange> {
        let mut inv = self.call(&self.scripts.claim_recent, user);
        inv.arg(mailbox.0).arg(up_to.0);
        let mut it = v_array(self.invoke_read(&inv).await?)?.into_iter();
        Ok(UidRange {
            from: Uid(v_num(next(&mut it)?)?),
            to: Uid(v_num(next(&mut it)?)?),
        })
    }

    async fn get_metadata(
        &self,
        user: UserId,
        mailbox: Option<&str>,
        entries: &[String],
        depth: MetadataDepth,
    ) -> MetaResult<Vec<MetadataEntry>> {
        metadata::check_names(entries.iter().map(String::as_str))?;
        let name = mailbox.map(names::checked).transpose()?;
        let mut inv = self.call(&self.scripts.metadata_get, user);
        inv.arg(name.as_deref().unwrap_or(""));
        if depth == MetadataDepth::Zero {
            inv.arg("0");
            for e in entries {
                inv.arg(e);
            }
        } else {
            inv.arg("all");
        }
        let mut out = std::collections::BTreeMap::new();
        let mut it = v_array(self.invoke_read(&inv).await?)?.into_iter();
        while let Some(entry) = it.next() {
            let entry = v_string(entry)?;
            let value = v_bytes(next(&mut it)?)?;
            if entries.iter().any(|r| depth.selects(r, &entry)) {
                out.insert(entry, value);
            }
        }
        Ok(out
            .into_iter()
            .map(|(name, value)| MetadataEntry { name, value })
            .collect())
    }

    async fn set_metadata(
        &self,
        user: UserId,
        mailbox: Option<&str>,
        entries: &[(String, Option<Vec<u8>>)],
        max_entries: u32,
    ) -> MetaResult<()> {
        metadata::check_names(entries.iter().map(|(n, _)| n.as_str()))?;
        let name = mailbox.map(names::checked).transpose()?;
        let mut inv = self.call(&self.scripts.metadata_set, user);
        inv.arg(name.as_deref().unwrap_or("")).arg(max_entries);
        for (entry, value) in entries {
            match value {
                Some(v) => inv.arg(entry).arg("1").arg(v.as_slice()),
                None => inv.arg(entry).arg("0").arg(""),
            };
        }
        self.invoke(&inv).await.map(|_| ())
    }
}
