//! Accounts and the addresses that reach them: users, paging, disabling, deleting, aliases and
//! domains.

use yubin_meta_api::{AccountStore, Alias, Domain, MailStore, MetaError, UserId};

use super::{msg, new_user, unique};

pub async fn users<S: MailStore + AccountStore>(store: &S) {
    let name = unique("Conf-Users");
    let rec = store
        .create_user(&name, "hash-1")
        .await
        .expect("create_user");
    assert_eq!(
        rec.name,
        name.to_lowercase(),
        "users: names are lower-cased"
    );
    assert_eq!(rec.password_hash, "hash-1");
    assert!(!rec.disabled);
    let dup = store.create_user(&name.to_uppercase(), "other").await;
    assert!(
        matches!(dup, Err(MetaError::AlreadyExists(_))),
        "users: duplicate name must be AlreadyExists, got {dup:?}"
    );
    let found = store.user_by_name(&name).await.expect("user_by_name");
    assert_eq!(found.as_ref(), Some(&rec), "users: lookup by name");
    let found = store
        .user_by_name(&name.to_uppercase())
        .await
        .expect("user_by_name");
    assert_eq!(
        found.as_ref().map(|u| u.id),
        Some(rec.id),
        "users: lookup ignores case"
    );
    assert_eq!(
        store.user_by_name(&unique("nobody")).await.expect("lookup"),
        None,
        "users: unknown name"
    );
    store
        .set_password_hash(rec.id, "hash-2")
        .await
        .expect("set_password_hash");
    let found = store
        .user_by_name(&name)
        .await
        .expect("lookup")
        .expect("exists");
    assert_eq!(
        found.password_hash, "hash-2",
        "users: password hash replaced"
    );
    let all = store.list_users().await.expect("list_users");
    assert!(
        all.iter().any(|u| u.id == rec.id && u.name == rec.name),
        "users: listed"
    );
    let other = store
        .create_user(&unique("conf-users"), "h")
        .await
        .expect("create");
    assert_ne!(other.id, rec.id, "users: distinct ids");
    let boxes = store.list_mailboxes(rec.id).await.expect("list");
    assert_eq!(boxes.len(), 1, "users: a new account has exactly INBOX");
    assert_eq!(boxes[0].name, "INBOX");
}

pub async fn users_paging<S: MailStore + AccountStore>(store: &S) {
    let base = unique("conf-page");
    let mut made = Vec::new();
    for suffix in ["c", "a", "e", "b", "d"] {
        let rec = store
            .create_user(&format!("{base}-{suffix}"), "h")
            .await
            .expect("create_user");
        made.push(rec);
    }
    made.sort_by(|a, b| a.name.cmp(&b.name));
    let mut listed = Vec::new();
    let mut after = base.clone();
    loop {
        let page = store
            .list_users_page(Some(&after), 2)
            .await
            .expect("list_users_page");
        assert!(page.len() <= 2, "a page holds at most the limit");
        assert!(
            page.windows(2).all(|w| w[0].name < w[1].name),
            "a page is ordered by name"
        );
        let mine: Vec<_> = page
            .iter()
            .filter(|u| u.name.starts_with(&base))
            .cloned()
            .collect();
        let done = mine.len() < page.len() || page.len() < 2;
        listed.extend(mine);
        match page.last() {
            Some(last) if !done => after = last.name.clone(),
            _ => break,
        }
    }
    assert_eq!(
        listed, made,
        "paging lists every account once, in name order"
    );
    let upper = store
        .list_users_page(Some(&made[1].name.to_uppercase()), 1)
        .await
        .expect("page");
    assert_eq!(
        upper.first().map(|u| &u.name),
        Some(&made[2].name),
        "the cursor ignores case"
    );
    assert!(
        store
            .list_users_page(Some(&base), 0)
            .await
            .expect("page")
            .is_empty()
    );
    let first = store.list_users_page(None, 1).await.expect("first page");
    assert_eq!(first.len(), 1, "paging from the start");
    let by_id = store.user_by_id(made[0].id).await.expect("user_by_id");
    assert_eq!(by_id.as_ref(), Some(&made[0]), "user_by_id");
    assert_eq!(
        store
            .user_by_id(UserId(u64::MAX - 5))
            .await
            .expect("user_by_id"),
        None
    );
}

pub async fn disable_user<S: MailStore + AccountStore>(store: &S) {
    let name = unique("conf-disable");
    let rec = store.create_user(&name, "h").await.expect("create_user");
    assert_eq!(
        store.resolve_address(&name).await.expect("resolve"),
        Some(rec.id)
    );
    store.set_disabled(rec.id, true).await.expect("disable");
    let found = store
        .user_by_name(&name)
        .await
        .expect("lookup")
        .expect("kept");
    assert!(found.disabled, "disabled is stored");
    assert_eq!(
        store.resolve_address(&name).await.expect("resolve"),
        None,
        "a disabled account receives no mail"
    );
    store
        .append(rec.id, "INBOX", vec![msg(rec.id, 1, &[])])
        .await
        .expect("its data stays usable by the store");
    store.set_disabled(rec.id, false).await.expect("enable");
    assert!(
        !store
            .user_by_id(rec.id)
            .await
            .expect("lookup")
            .expect("kept")
            .disabled
    );
    assert_eq!(
        store.resolve_address(&name).await.expect("resolve"),
        Some(rec.id)
    );
    assert_eq!(
        store
            .mailbox_status(rec.id, "INBOX")
            .await
            .expect("status")
            .exists,
        1,
        "disabling keeps the mail"
    );
    assert!(matches!(
        store.set_disabled(UserId(u64::MAX - 9), true).await,
        Err(MetaError::NotFound(_))
    ));
}

pub async fn delete_user<S: MailStore + AccountStore>(store: &S) {
    let name = unique("conf-delete");
    let rec = store.create_user(&name, "h").await.expect("create_user");
    let bystander = new_user(store, "conf-delete-keep").await;
    let user = rec.id;
    store
        .create_mailbox(user, "Projects/2026", None)
        .await
        .expect("create");
    store
        .append(user, "INBOX", vec![msg(user, 1, &[]), msg(user, 2, &[])])
        .await
        .expect("append");
    store
        .append(user, "Projects/2026", vec![msg(user, 3, &[])])
        .await
        .expect("append");
    store
        .append(bystander, "INBOX", vec![msg(bystander, 1, &[])])
        .await
        .expect("append");
    store
        .set_subscribed(user, "Projects", true)
        .await
        .expect("subscribe");
    let address = format!("{}@alias.example", unique("conf-del-alias"));
    store
        .put_alias(&Alias {
            address: address.clone(),
            target: user,
        })
        .await
        .expect("put_alias");
    let kept_alias = format!("{}@alias.example", unique("conf-del-kept"));
    store
        .put_alias(&Alias {
            address: kept_alias.clone(),
            target: bystander,
        })
        .await
        .expect("put_alias");

    store.delete_user(user).await.expect("delete_user");
    assert_eq!(store.user_by_name(&name).await.expect("lookup"), None);
    assert_eq!(store.user_by_id(user).await.expect("lookup"), None);
    assert_eq!(store.resolve_address(&name).await.expect("resolve"), None);
    assert_eq!(
        store.resolve_address(&address).await.expect("resolve"),
        None
    );
    let aliases = store.list_aliases().await.expect("list_aliases");
    assert!(
        !aliases
            .iter()
            .any(|a| a.address == address || a.target == user),
        "the account's aliases are gone"
    );
    assert!(
        aliases.iter().any(|a| a.address == kept_alias),
        "other accounts' aliases stay"
    );
    assert!(
        !store
            .list_users()
            .await
            .expect("list")
            .iter()
            .any(|u| u.id == user)
    );
    let page = store
        .list_users_page(Some(&name[..name.len() - 1]), 10)
        .await
        .expect("page");
    assert!(!page.iter().any(|u| u.id == user), "paging skips it");
    assert!(
        matches!(store.quota(user).await, Err(MetaError::NotFound(_))),
        "no quota record remains"
    );
    assert!(matches!(
        store.delete_user(user).await,
        Err(MetaError::NotFound(_))
    ));

    // The name is free again, for a brand-new account.
    let again = store.create_user(&name, "h2").await.expect("recreate");
    assert_ne!(again.id, user, "ids are never reused");
    let boxes = store.list_mailboxes(again.id).await.expect("list");
    assert_eq!(boxes.len(), 1, "the new account starts with INBOX only");
    assert_eq!((boxes[0].name.as_str(), boxes[0].exists), ("INBOX", 0));
    assert!(
        store
            .list_subscriptions(again.id)
            .await
            .expect("subs")
            .is_empty()
    );
    let q = store.quota(again.id).await.expect("quota");
    assert_eq!((q.storage_bytes, q.messages), (0, 0));
    assert_eq!(
        store
            .mailbox_status(bystander, "INBOX")
            .await
            .expect("status")
            .exists,
        1,
        "other accounts are untouched"
    );
}

pub async fn aliases<S: MailStore + AccountStore>(store: &S) {
    let alice = store
        .create_user(&unique("conf-alias-a"), "h")
        .await
        .expect("create");
    let bob = new_user(store, "conf-alias-b").await;
    let address = format!("{}@Example.ORG", unique("Sales"));
    let lower = address.to_lowercase();
    store
        .put_alias(&Alias {
            address: address.clone(),
            target: alice.id,
        })
        .await
        .expect("put_alias");
    let listed = store.list_aliases().await.expect("list");
    assert!(
        listed.contains(&Alias {
            address: lower.clone(),
            target: alice.id
        }),
        "aliases are stored lower-cased"
    );
    assert_eq!(
        store.resolve_address(&address).await.expect("resolve"),
        Some(alice.id)
    );
    // PUT again re-points the alias.
    store
        .put_alias(&Alias {
            address: lower.clone(),
            target: bob,
        })
        .await
        .expect("re-point");
    assert_eq!(
        store.resolve_address(&lower).await.expect("resolve"),
        Some(bob)
    );
    let listed = store.list_aliases().await.expect("list");
    assert_eq!(
        listed.iter().filter(|a| a.address == lower).count(),
        1,
        "one entry per address"
    );
    // Deleting alice must not take bob's alias with it.
    store.delete_user(alice.id).await.expect("delete alice");
    assert_eq!(
        store.resolve_address(&lower).await.expect("resolve"),
        Some(bob),
        "a re-pointed alias no longer belongs to its old target"
    );

    let nobody = UserId(u64::MAX - 11);
    assert!(matches!(
        store
            .put_alias(&Alias {
                address: format!("{}@example.org", unique("x")),
                target: nobody,
            })
            .await,
        Err(MetaError::NotFound(_))
    ));
    for bad in [
        "no-at-sign",
        "@example.org",
        "a b@example.org",
        "x@exa..mple",
    ] {
        assert!(
            matches!(
                store
                    .put_alias(&Alias {
                        address: bad.into(),
                        target: bob,
                    })
                    .await,
                Err(MetaError::Invalid(_))
            ),
            "invalid alias address {bad:?}"
        );
    }
    let account = store
        .create_user(&format!("{}@example.org", unique("taken")), "h")
        .await
        .expect("create");
    assert!(
        matches!(
            store
                .put_alias(&Alias {
                    address: account.name.clone(),
                    target: bob,
                })
                .await,
            Err(MetaError::AlreadyExists(_))
        ),
        "an alias cannot shadow an account name"
    );
    store.delete_alias(&address).await.expect("delete_alias");
    assert_eq!(store.resolve_address(&lower).await.expect("resolve"), None);
    assert!(matches!(
        store.delete_alias(&lower).await,
        Err(MetaError::NotFound(_))
    ));
}

/// Domains are installation-wide: this check removes every domain it adds, and tests the
/// "no domains configured" rule when the store starts without any (as every suite run does).
pub async fn domains_and_address_resolution<S: MailStore + AccountStore>(store: &S) {
    let local = unique("conf-res");
    let user = store.create_user(&local, "h").await.expect("create").id;
    let other = new_user(store, "conf-res-other").await;
    let d1 = format!("{}.example", unique("conf-d1"));
    let d2 = format!("{}.example", unique("conf-d2"));
    let d3 = format!("{}.example", unique("conf-d3"));
    let foreign = format!("{}.example", unique("conf-foreign"));
    let resolve = |a: String| async move { store.resolve_address(&a).await.expect("resolve") };

    if store.list_domains().await.expect("list").is_empty() {
        assert_eq!(
            resolve(format!("{local}@{foreign}")).await,
            Some(user),
            "with no domains configured the local part names the account"
        );
    }
    assert_eq!(
        resolve(local.to_uppercase()).await,
        Some(user),
        "case-insensitive"
    );
    assert_eq!(resolve(unique("nobody")).await, None);

    store
        .put_domain(&Domain {
            name: d1.to_uppercase(),
            alias_of: None,
        })
        .await
        .expect("put_domain");
    store
        .put_domain(&Domain {
            name: d2.clone(),
            alias_of: Some(d1.clone()),
        })
        .await
        .expect("put alias domain");
    let listed = store.list_domains().await.expect("list");
    assert!(listed.contains(&Domain {
        name: d1.clone(),
        alias_of: None
    }));
    assert!(listed.contains(&Domain {
        name: d2.clone(),
        alias_of: Some(d1.clone())
    }));

    assert_eq!(
        resolve(format!("{local}@{}", d1.to_uppercase())).await,
        Some(user),
        "local part at an own domain"
    );
    assert_eq!(
        resolve(format!("{local}@{d2}")).await,
        Some(user),
        "an alias domain rewrites to its target"
    );
    assert_eq!(
        resolve(format!("{local}@{foreign}")).await,
        None,
        "with domains configured, other domains are not ours"
    );
    // An account whose name is a full address; and an alias, also through the alias domain.
    let full = store
        .create_user(&format!("{}@{d1}", unique("full")), "h")
        .await
        .expect("create");
    assert_eq!(resolve(full.name.to_uppercase()).await, Some(full.id));
    let full_local = full.name.split('@').next().expect("local").to_string();
    assert_eq!(
        resolve(format!("{full_local}@{d2}")).await,
        Some(full.id),
        "an alias domain reaches a full-address account"
    );
    let info = format!("{}@{d1}", unique("info"));
    store
        .put_alias(&Alias {
            address: info.clone(),
            target: other,
        })
        .await
        .expect("alias");
    assert_eq!(resolve(info.clone()).await, Some(other));
    let info_local = info.split('@').next().expect("local").to_string();
    assert_eq!(
        resolve(format!("{info_local}@{d2}")).await,
        Some(other),
        "an alias domain reaches an alias"
    );
    store.set_disabled(user, true).await.expect("disable");
    assert_eq!(
        resolve(format!("{local}@{d1}")).await,
        None,
        "a disabled account resolves to nothing"
    );
    store.set_disabled(user, false).await.expect("enable");

    // No chains, no dangling targets, no self-aliases.
    let refused = [
        Domain {
            name: d3.clone(),
            alias_of: Some(d2.clone()),
        },
        Domain {
            name: d1.clone(),
            alias_of: Some(d3.clone()),
        },
        Domain {
            name: d3.clone(),
            alias_of: Some(d3.clone()),
        },
        Domain {
            name: "bad..domain".into(),
            alias_of: None,
        },
    ];
    for d in &refused {
        assert!(
            matches!(store.put_domain(d).await, Err(MetaError::Invalid(_))),
            "domain {d:?} must be refused"
        );
    }
    store
        .put_domain(&Domain {
            name: d3.clone(),
            alias_of: None,
        })
        .await
        .expect("d3");
    assert!(
        matches!(
            store
                .put_domain(&Domain {
                    name: d1.clone(),
                    alias_of: Some(d3.clone()),
                })
                .await,
            Err(MetaError::Invalid(_))
        ),
        "a domain other domains alias cannot become an alias"
    );
    assert!(
        matches!(store.delete_domain(&d1).await, Err(MetaError::Invalid(_))),
        "the target of an alias domain cannot be deleted first"
    );
    store.delete_domain(&d2).await.expect("delete alias domain");
    store
        .delete_domain(&d1.to_uppercase())
        .await
        .expect("delete d1");
    store.delete_domain(&d3).await.expect("delete d3");
    assert!(matches!(
        store.delete_domain(&d1).await,
        Err(MetaError::NotFound(_))
    ));
    store.delete_alias(&info).await.expect("cleanup alias");
    let listed = store.list_domains().await.expect("list");
    assert!(
        !listed
            .iter()
            .any(|d| d.name == d1 || d.name == d2 || d.name == d3)
    );
}
