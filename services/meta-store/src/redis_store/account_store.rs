//! [`AccountStore`] and [`AddressBook`] on Redis: accounts, aliases and domains under the
//! global keys (see the module's key table).

use super::*;

#[async_trait]
impl AccountStore for RedisStore {
    async fn create_user(&self, name: &str, password_hash: &str) -> MetaResult<UserRecord> {
        let name = normalize_login(name)?;
        let mut c = self.conn.clone();
        let taken: Option<u64> = redis::cmd("HGET")
            .arg(USERS)
            .arg(&name)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        if taken.is_some() {
            return Err(MetaError::AlreadyExists(format!("user {name}")));
        }
        let id: u64 = self
            .write_as(redis::cmd("INCR").arg("users:next_id"))
            .await?;
        let user = UserId(id);
        // The account's own keys first, then the name: a crash in between leaves unreachable
        // keys under an unused id, never a name pointing at nothing.
        let mut inv = self.call(&self.scripts.user_create, user);
        inv.arg(now_secs()).arg(&name).arg(password_hash);
        self.invoke(&inv).await?;
        let won: bool = self
            .write_as(redis::cmd("HSETNX").arg(USERS).arg(&name).arg(id))
            .await?;
        if !won {
            let inv = self.call(&self.scripts.user_drop, user);
            self.invoke(&inv).await?;
            return Err(MetaError::AlreadyExists(format!("user {name}")));
        }
        let _: i64 = self
            .write_as(redis::cmd("ZADD").arg(USERS_BY_NAME).arg(0).arg(&name))
            .await?;
        Ok(UserRecord {
            id: user,
            name,
            password_hash: password_hash.to_string(),
            disabled: false,
        })
    }

    async fn user_by_name(&self, name: &str) -> MetaResult<Option<UserRecord>> {
        let mut c = self.conn.clone();
        let id: Option<u64> = redis::cmd("HGET")
            .arg(USERS)
            .arg(yubin_meta_api::normalize_login_name(name))
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        match id {
            Some(id) => self.user_record(id).await,
            None => Ok(None),
        }
    }

    async fn set_password_hash(&self, user: UserId, password_hash: &str) -> MetaResult<()> {
        let mut inv = self.call(&self.scripts.user_password, user);
        inv.arg(password_hash);
        self.invoke(&inv).await.map(|_| ())
    }

    async fn list_users(&self) -> MetaResult<Vec<UserRecord>> {
        let mut c = self.conn.clone();
        let index: Vec<(String, u64)> = redis::cmd("HGETALL")
            .arg(USERS)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        // One HMGET per user, many in flight: on a cluster the users' keys lie in different
        // slots, and a pipeline (or any multi-key command) across slots is refused, so no
        // batching by more than one user at a time.
        let ids: Vec<u64> = index.iter().map(|(_, id)| *id).collect();
        let conn = self.conn.clone();
        let fields: Vec<Vec<Option<String>>> = futures::stream::iter(ids)
            .map(|id| {
                let mut c = conn.clone();
                async move {
                    redis::cmd("HMGET")
                        .arg(format!("{{u:{id}}}:user"))
                        .arg("name")
                        .arg("password_hash")
                        .arg("disabled")
                        .query_async::<Vec<Option<String>>>(&mut c)
                        .await
                        .map_err(redis_err)
                }
            })
            .buffered(LIST_USERS_CONCURRENCY)
            .try_collect()
            .await?;
        let mut out: Vec<UserRecord> = index
            .iter()
            .zip(fields)
            .filter_map(|((_, id), f)| user_from_fields(*id, f))
            .collect();
        out.sort_by_key(|u| u.id);
        Ok(out)
    }

    async fn list_users_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> MetaResult<Vec<UserRecord>> {
        let mut c = self.conn.clone();
        self.index_names().await?;
        let mut cursor = after.map(str::to_lowercase);
        let mut out = Vec::with_capacity(limit.min(1024));
        // A name of a deleted account may linger in the index for a moment (the name is freed
        // before the index entry): such entries are skipped, so a page may need more reads.
        while out.len() < limit {
            let want = limit - out.len();
            let start = cursor.as_ref().map_or("-".to_string(), |a| format!("({a}"));
            let names: Vec<String> = redis::cmd("ZRANGEBYLEX")
                .arg(USERS_BY_NAME)
                .arg(&start)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(want)
                .query_async(&mut c)
                .await
                .map_err(redis_err)?;
            let exhausted = names.len() < want;
            let conn = self.conn.clone();
            let records: Vec<Option<UserRecord>> = futures::stream::iter(names.clone())
                .map(|name| {
                    let store = self.clone();
                    let mut c = conn.clone();
                    async move {
                        let id: Option<u64> = redis::cmd("HGET")
                            .arg(USERS)
                            .arg(&name)
                            .query_async(&mut c)
                            .await
                            .map_err(redis_err)?;
                        match id {
                            Some(id) => store.user_record(id).await,
                            None => Ok(None),
                        }
                    }
                })
                .buffered(LIST_USERS_CONCURRENCY)
                .try_collect()
                .await?;
            out.extend(records.into_iter().flatten());
            match names.last() {
                Some(last) if !exhausted => cursor = Some(last.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn user_by_id(&self, user: UserId) -> MetaResult<Option<UserRecord>> {
        self.user_record(user.0).await
    }

    async fn set_disabled(&self, user: UserId, disabled: bool) -> MetaResult<()> {
        let mut inv = self.call(&self.scripts.user_disable, user);
        inv.arg(if disabled { "1" } else { "0" });
        self.invoke(&inv).await.map(|_| ())
    }

    async fn delete_user(&self, user: UserId) -> MetaResult<()> {
        // Ordered so that every intermediate state is safe (see the module documentation).
        let mut inv = self.call(&self.scripts.user_disable, user);
        inv.arg("1");
        let name = v_string(self.invoke(&inv).await?)?;
        let mut unname = Call::new(&self.scripts.global_unname);
        unname.key(USERS).arg(&name).arg(user.0);
        self.invoke(&unname).await?;
        let mut c = self.conn.clone();
        let _: i64 = self
            .write_as(redis::cmd("ZREM").arg(USERS_BY_NAME).arg(&name))
            .await?;
        let addresses: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{}aliases", prefix(user)))
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        if !addresses.is_empty() {
            let mut unalias = Call::new(&self.scripts.global_unalias);
            unalias.key(ALIASES).arg(user.0);
            for a in &addresses {
                unalias.arg(a);
            }
            self.invoke(&unalias).await?;
        }
        let drop = self.call(&self.scripts.user_drop, user);
        self.invoke(&drop).await?;
        // The account's index goes with it: locally and its published files.
        if let Some(ft) = &self.full_text {
            ft.indexes
                .drop_user(user)
                .await
                .map_err(crate::fulltext::index_err)?;
        }
        Ok(())
    }

    async fn set_quota(&self, user: UserId, limits: QuotaLimits) -> MetaResult<()> {
        let limit = |l: Option<u64>| l.map_or(String::new(), |v| v.to_string());
        let mut inv = self.call(&self.scripts.quota_set, user);
        inv.arg(limit(limits.storage_bytes))
            .arg(limit(limits.messages));
        self.invoke(&inv).await.map(|_| ())
    }

    async fn put_alias(&self, alias: &Alias) -> MetaResult<()> {
        let address = normalize_address(&alias.address)?;
        let mut c = self.conn.clone();
        let account: Option<u64> = redis::cmd("HGET")
            .arg(USERS)
            .arg(&address)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        if account.is_some() {
            return Err(MetaError::AlreadyExists(format!("account {address}")));
        }
        // The account's reverse entry first (it fails when the account does not exist), then
        // the global entry resolution reads.
        let mut inv = self.call(&self.scripts.user_alias, alias.target);
        inv.arg(&address).arg("1");
        self.invoke(&inv).await?;
        let previous: Option<u64> = redis::cmd("HGET")
            .arg(ALIASES)
            .arg(&address)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        let _: i64 = self
            .write_as(
                redis::cmd("HSET")
                    .arg(ALIASES)
                    .arg(&address)
                    .arg(alias.target.0),
            )
            .await?;
        if let Some(old) = previous.filter(|old| *old != alias.target.0) {
            let mut inv = self.call(&self.scripts.user_alias, UserId(old));
            inv.arg(&address).arg("0");
            self.invoke(&inv).await?;
        }
        Ok(())
    }

    async fn delete_alias(&self, address: &str) -> MetaResult<()> {
        let address = address.trim().to_lowercase();
        let mut c = self.conn.clone();
        let target: Option<u64> = redis::cmd("HGET")
            .arg(ALIASES)
            .arg(&address)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        let Some(target) = target else {
            return Err(MetaError::NotFound(format!("alias {address}")));
        };
        let mut unalias = Call::new(&self.scripts.global_unalias);
        unalias.key(ALIASES).arg(target).arg(&address);
        self.invoke(&unalias).await?;
        let mut inv = self.call(&self.scripts.user_alias, UserId(target));
        inv.arg(&address).arg("0");
        self.invoke(&inv).await.map(|_| ())
    }

    async fn list_aliases(&self) -> MetaResult<Vec<Alias>> {
        let mut c = self.conn.clone();
        let all: Vec<(String, u64)> = redis::cmd("HGETALL")
            .arg(ALIASES)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        let mut out: Vec<Alias> = all
            .into_iter()
            .map(|(address, id)| Alias {
                address,
                target: UserId(id),
            })
            .collect();
        out.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(out)
    }

    async fn put_domain(&self, domain: &Domain) -> MetaResult<()> {
        let name = normalize_domain(&domain.name)?;
        let alias_of = domain
            .alias_of
            .as_deref()
            .map(normalize_domain)
            .transpose()?;
        let mut inv = Call::new(&self.scripts.global_domain_put);
        inv.key(DOMAINS)
            .arg(&name)
            .arg(alias_of.as_deref().unwrap_or(""));
        self.invoke(&inv).await.map(|_| ())
    }

    async fn delete_domain(&self, name: &str) -> MetaResult<()> {
        let mut inv = Call::new(&self.scripts.global_domain_delete);
        inv.key(DOMAINS).arg(name.trim().to_ascii_lowercase());
        self.invoke(&inv).await.map(|_| ())
    }

    async fn list_domains(&self) -> MetaResult<Vec<Domain>> {
        let mut c = self.conn.clone();
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(DOMAINS)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        let mut out: Vec<Domain> = all
            .into_iter()
            .map(|(name, alias_of)| Domain {
                name,
                alias_of: Some(alias_of).filter(|a| !a.is_empty()),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn resolve_address(&self, address: &str) -> MetaResult<Option<UserId>> {
        accounts::resolve(self, address).await
    }
}

impl RedisStore {
    /// Fills the paging index `users:by_name` from `users` when it holds fewer names (an
    /// installation from before the index, or a crash between taking a name and indexing it).
    async fn index_names(&self) -> MetaResult<()> {
        let mut c = self.conn.clone();
        let indexed: u64 = redis::cmd("ZCARD")
            .arg(USERS_BY_NAME)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        let named: u64 = redis::cmd("HLEN")
            .arg(USERS)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        if indexed >= named {
            return Ok(());
        }
        let names: Vec<String> = redis::cmd("HKEYS")
            .arg(USERS)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        for chunk in names.chunks(1000) {
            let mut cmd = redis::cmd("ZADD");
            cmd.arg(USERS_BY_NAME);
            for n in chunk {
                cmd.arg(0).arg(n);
            }
            let _: i64 = self.write_as(&cmd).await?;
        }
        Ok(())
    }

    /// The account `id` as (id, disabled), if it exists.
    async fn account_state(&self, id: u64) -> MetaResult<Option<(UserId, bool)>> {
        Ok(self.user_record(id).await?.map(|u| (u.id, u.disabled)))
    }
}

#[async_trait]
impl AddressBook for RedisStore {
    async fn account(&self, name: &str) -> MetaResult<Option<(UserId, bool)>> {
        let mut c = self.conn.clone();
        let id: Option<u64> = redis::cmd("HGET")
            .arg(USERS)
            .arg(name)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        match id {
            Some(id) => self.account_state(id).await,
            None => Ok(None),
        }
    }

    async fn alias(&self, address: &str) -> MetaResult<Option<(UserId, bool)>> {
        let mut c = self.conn.clone();
        let id: Option<u64> = redis::cmd("HGET")
            .arg(ALIASES)
            .arg(address)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        match id {
            // An alias whose account vanished resolves to nothing, like a disabled one.
            Some(id) => Ok(Some(
                self.account_state(id).await?.unwrap_or((UserId(id), true)),
            )),
            None => Ok(None),
        }
    }

    async fn domain(&self, name: &str) -> MetaResult<Option<Option<String>>> {
        let mut c = self.conn.clone();
        let v: Option<String> = redis::cmd("HGET")
            .arg(DOMAINS)
            .arg(name)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        Ok(v.map(|a| Some(a).filter(|a| !a.is_empty())))
    }

    async fn has_domains(&self) -> MetaResult<bool> {
        let mut c = self.conn.clone();
        let n: u64 = redis::cmd("HLEN")
            .arg(DOMAINS)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        Ok(n > 0)
    }
}
