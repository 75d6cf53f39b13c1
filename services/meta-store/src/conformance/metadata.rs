//! METADATA (RFC 5464): entries of the server and of mailboxes.

use yubin_meta_api::{AccountStore, MailStore, MetaError, MetadataDepth, MetadataEntry};

use super::{new_user, s};

fn entries(v: &[(&str, &[u8])]) -> Vec<MetadataEntry> {
    v.iter()
        .map(|(name, value)| MetadataEntry {
            name: name.to_string(),
            value: value.to_vec(),
        })
        .collect()
}

fn set(name: &str, value: &[u8]) -> (String, Option<Vec<u8>>) {
    (name.to_string(), Some(value.to_vec()))
}

/// METADATA (RFC 5464): server and mailbox entries, DEPTH, removal, the entry limit, and
/// entries following their mailbox through RENAME and DELETE.
pub async fn metadata<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-metadata").await;
    let other = new_user(store, "conf-metadata-other").await;
    let get = |mailbox: Option<&'static str>, names: &[&str], depth| {
        let names = s(names);
        async move {
            store
                .get_metadata(user, mailbox, &names, depth)
                .await
                .expect("get_metadata")
        }
    };
    // Server entries; values are binary (literal8, RFC 5464 §5).
    store
        .set_metadata(
            user,
            None,
            &[
                set("/private/comment", b"server note"),
                set("/shared/vendor/x/a", b"\x00\xffbin"),
                set("/shared/vendor/x/a/deep", b"deep"),
                set("/shared/vendor/xy", b"sibling"),
            ],
            10,
        )
        .await
        .expect("set server entries");
    assert_eq!(
        get(
            None,
            &["/private/comment", "/shared/missing"],
            MetadataDepth::Zero
        )
        .await,
        entries(&[("/private/comment", b"server note")]),
        "depth 0 returns the existing requested entries only"
    );
    assert_eq!(
        get(None, &["/shared/vendor/x"], MetadataDepth::One).await,
        entries(&[("/shared/vendor/x/a", b"\x00\xffbin")]),
        "depth 1: children, not grandchildren, not a sibling sharing the prefix"
    );
    assert_eq!(
        get(None, &["/shared"], MetadataDepth::Infinity).await,
        entries(&[
            ("/shared/vendor/x/a", b"\x00\xffbin"),
            ("/shared/vendor/x/a/deep", b"deep"),
            ("/shared/vendor/xy", b"sibling"),
        ]),
        "depth infinity: every descendant, by name"
    );
    assert!(
        store
            .get_metadata(other, None, &s(&["/private/comment"]), MetadataDepth::Zero)
            .await
            .expect("get other")
            .is_empty(),
        "another account sees none of them"
    );
    // Mailbox entries are separate from server entries.
    store
        .set_metadata(
            user,
            Some("INBOX"),
            &[set("/private/comment", b"inbox")],
            10,
        )
        .await
        .expect("set inbox");
    assert_eq!(
        get(Some("inbox"), &["/private/comment"], MetadataDepth::Zero).await,
        entries(&[("/private/comment", b"inbox")]),
        "INBOX is case-insensitive"
    );
    assert_eq!(
        get(None, &["/private/comment"], MetadataDepth::Zero).await,
        entries(&[("/private/comment", b"server note")])
    );
    // NIL removes; replacing a value does not add an entry.
    store
        .set_metadata(
            user,
            None,
            &[
                ("/shared/vendor/xy".to_string(), None),
                set("/private/comment", b"changed"),
                ("/private/never-set".to_string(), None),
            ],
            10,
        )
        .await
        .expect("remove and replace");
    assert_eq!(
        get(
            None,
            &["/shared/vendor/xy", "/private/comment"],
            MetadataDepth::Zero
        )
        .await,
        entries(&[("/private/comment", b"changed")])
    );
    // The limit: three server entries now; a write that would make five is refused entirely.
    let refused = store
        .set_metadata(
            user,
            None,
            &[set("/private/n1", b"1"), set("/private/n2", b"2")],
            4,
        )
        .await;
    assert!(
        matches!(refused, Err(MetaError::OverQuota(_))),
        "too many entries: {refused:?}"
    );
    assert!(
        get(None, &["/private/n1"], MetadataDepth::Zero)
            .await
            .is_empty(),
        "a refused write writes nothing"
    );
    store
        .set_metadata(user, None, &[set("/private/n1", b"1")], 4)
        .await
        .expect("up to the limit");
    store
        .set_metadata(user, None, &[set("/private/n1", b"one")], 4)
        .await
        .expect("replacing at the limit");
    store
        .set_metadata(user, None, &[("/private/n1".to_string(), None)], 1)
        .await
        .expect("removal works under a lowered limit");
    // Bad names and unknown mailboxes.
    assert!(matches!(
        store
            .set_metadata(user, None, &[set("/other/x", b"x")], 10)
            .await,
        Err(MetaError::Invalid(_))
    ));
    assert!(matches!(
        store
            .get_metadata(user, Some("Nope"), &s(&["/private/x"]), MetadataDepth::Zero)
            .await,
        Err(MetaError::NotFound(_))
    ));
    assert!(matches!(
        store
            .set_metadata(user, Some("Nope"), &[set("/private/x", b"x")], 10)
            .await,
        Err(MetaError::NotFound(_))
    ));
    // Entries follow RENAME, go with DELETE, and a re-created mailbox starts empty.
    store
        .create_mailbox(user, "Box", None)
        .await
        .expect("create");
    store
        .set_metadata(user, Some("Box"), &[set("/shared/comment", b"box")], 10)
        .await
        .expect("set box");
    store
        .rename_mailbox(user, "Box", "Moved")
        .await
        .expect("rename");
    assert_eq!(
        get(Some("Moved"), &["/shared/comment"], MetadataDepth::Zero).await,
        entries(&[("/shared/comment", b"box")]),
        "entries follow RENAME"
    );
    store.delete_mailbox(user, "Moved").await.expect("delete");
    store
        .create_mailbox(user, "Moved", None)
        .await
        .expect("recreate");
    assert!(
        get(Some("Moved"), &["/shared"], MetadataDepth::Infinity)
            .await
            .is_empty(),
        "a re-created mailbox starts without entries"
    );
    store
        .set_metadata(user, Some("Moved"), &[set("/shared/comment", b"new")], 1)
        .await
        .expect("the deleted mailbox's entries do not count against the new one");
    // Deleting the account drops its entries (no error, nothing left to read by it).
    store.delete_user(user).await.expect("delete user");
}
