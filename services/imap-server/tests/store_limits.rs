//! Keyword, mailbox and search-index limits as IMAP clients see them (issue 9): the attacks
//! replayed against a real server, answered with `NO [LIMIT]` (RFC 5530 §3) and no change.

mod common;

use common::*;
use yubin_imap::ImapConfig;
use yubin_meta_store::StoreLimits;

/// A server whose lines may hold the 12 000-flag STORE (80 KiB), so the flag cap, not the line
/// limit, is what refuses it.
async fn server(store_limits: StoreLimits) -> Harness {
    let mut config = ImapConfig {
        allow_plaintext_auth: true,
        ..ImapConfig::default()
    };
    config.limits.max_line = 1024 * 1024;
    start_with(Options {
        config,
        store_limits,
        ..Options::default()
    })
    .await
}

fn flag_list(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("{prefix}{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn fetch_flags(c: &mut Raw) -> Vec<String> {
    c.tagged("F", "FETCH 1:* (FLAGS)")
        .await
        .into_iter()
        .filter(|l| l.starts_with("* "))
        .collect()
}

/// `STORE 1:50 +FLAGS (k0 … k11999)`: refused before the store, nothing changes; a list under
/// the command cap but over the per-message keyword limit is refused by the store, also
/// unchanged.
#[tokio::test]
async fn store_of_twelve_thousand_keywords_is_refused() {
    let h = server(StoreLimits::default()).await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    for i in 0..50 {
        let r = append(
            &mut c,
            "INBOX",
            "",
            format!("Subject: m{i}\r\n\r\nbody\r\n").as_bytes(),
        )
        .await;
        assert!(r.starts_with("A OK"), "{r}");
    }
    c.tagged("S", "SELECT INBOX").await;
    let before = fetch_flags(&mut c).await;
    let r = c
        .tagged(
            "T",
            &format!("STORE 1:50 +FLAGS ({})", flag_list("k", 12_000)),
        )
        .await;
    assert!(last(&r).starts_with("T NO [LIMIT]"), "{}", last(&r));
    let r = c
        .tagged("U", &format!("STORE 1:50 +FLAGS ({})", flag_list("k", 100)))
        .await;
    assert!(last(&r).starts_with("U NO [LIMIT]"), "{}", last(&r));
    assert!(
        !r.iter().any(|l| l.contains("FETCH")),
        "no flag change reported: {r:?}"
    );
    let r = c
        .tagged(
            "V",
            &format!("APPEND INBOX ({}) {{4+}}\r\nx\r\n\r\n", flag_list("k", 100)),
        )
        .await;
    assert!(last(&r).starts_with("V NO [LIMIT]"), "{}", last(&r));
    assert_eq!(fetch_flags(&mut c).await, before, "nothing changed");
    let r = c.tagged("W", "STATUS INBOX (MESSAGES)").await;
    assert!(r[0].contains("MESSAGES 50"), "{r:?}");
}

/// At the mailbox's keyword limit PERMANENTFLAGS leaves out `\*` (RFC 9051 §7.1) and a new
/// keyword is refused; below it `\*` is listed.
#[tokio::test]
async fn permanentflags_drop_the_wildcard_at_the_keyword_limit() {
    let limits = StoreLimits {
        max_keywords_per_message: 16,
        max_keywords_per_mailbox: 32,
        ..StoreLimits::default()
    };
    let h = server(limits).await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let r = append(&mut c, "INBOX", "", b"Subject: x\r\n\r\nbody\r\n").await;
    assert!(r.starts_with("A OK"), "{r}");
    let r = c.tagged("S", "SELECT INBOX").await;
    assert!(
        r.iter()
            .any(|l| l.contains("PERMANENTFLAGS") && l.contains("\\*)")),
        "{r:?}"
    );
    for batch in 0..2 {
        let list = (0..16)
            .map(|i| format!("kw{}", batch * 16 + i))
            .collect::<Vec<_>>()
            .join(" ");
        let r = c.tagged("T", &format!("STORE 1 FLAGS ({list})")).await;
        assert!(last(&r).starts_with("T OK"), "{}", last(&r));
    }
    let r = c.tagged("S", "SELECT INBOX").await;
    let permanent = r
        .iter()
        .find(|l| l.contains("PERMANENTFLAGS"))
        .expect("PERMANENTFLAGS");
    assert!(!permanent.contains("\\*"), "{permanent}");
    assert!(permanent.contains("kw31"), "{permanent}");
    let r = c.tagged("U", "STORE 1 +FLAGS (brand-new)").await;
    assert!(last(&r).starts_with("U NO [LIMIT]"), "{}", last(&r));
    let r = c.tagged("V", "STORE 1 FLAGS (\\Flagged KW0)").await;
    assert!(last(&r).starts_with("V OK"), "{}", last(&r));
}

/// CREATE beyond the mailbox limit gets `NO [LIMIT]` and creates nothing.
#[tokio::test]
async fn create_beyond_the_mailbox_limit_is_refused() {
    let limits = StoreLimits {
        max_mailboxes: 16,
        ..StoreLimits::default()
    };
    let h = server(limits).await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let existing = c.tagged("L", "LIST \"\" *").await.len() - 1;
    for i in existing..16 {
        let r = c.tagged("C", &format!("CREATE box{i}")).await;
        assert!(last(&r).starts_with("C OK"), "{}", last(&r));
    }
    let r = c.tagged("D", "CREATE one-too-many").await;
    assert!(last(&r).starts_with("D NO [LIMIT]"), "{}", last(&r));
    let r = c.tagged("E", "CREATE deep/er").await;
    assert!(last(&r).starts_with("E NO [LIMIT]"), "{}", last(&r));
    let r = c.tagged("L", "LIST \"\" *").await;
    assert_eq!(r.len() - 1, 16, "{r:?}");
}

/// The METADATA attack: many mailboxes, each with entries at the largest value size. The
/// per-mailbox limits alone allowed 10 000 mailboxes × 128 entries × 64 KiB (80 GiB of Redis
/// RAM) to one account; the per-account budget stops growth with `[METADATA TOOMANY]`
/// (RFC 5464 §4.3), and removing entries gives room back.
#[tokio::test]
async fn metadata_spread_over_mailboxes_meets_the_account_budget() {
    let limits = StoreLimits {
        max_metadata_bytes_per_account: 310_000,
        ..StoreLimits::default()
    };
    let h = server(limits).await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let value = "v".repeat(60_000);
    let mut refused = None;
    for i in 0..10 {
        let r = c.tagged("C", &format!("CREATE md{i}")).await;
        assert!(last(&r).starts_with("C OK"), "{}", last(&r));
        let r = c
            .tagged(
                "S",
                &format!(
                    "SETMETADATA md{i} (/private/comment {{{}+}}\r\n{value})",
                    value.len()
                ),
            )
            .await;
        if last(&r).starts_with("S NO [METADATA TOOMANY]") {
            refused = Some(i);
            break;
        }
        assert!(last(&r).starts_with("S OK"), "{}", last(&r));
    }
    // Five values of 60 KB fit in 310 000 bytes with their names; the sixth does not.
    assert_eq!(refused, Some(5));
    let r = c.tagged("G", "GETMETADATA md5 /private/comment").await;
    assert!(
        r.iter().any(|l| l.contains("/private/comment NIL")),
        "the refused value was not stored: {r:?}"
    );
    let r = c
        .tagged("R", "SETMETADATA md0 (/private/comment NIL)")
        .await;
    assert!(last(&r).starts_with("R OK"), "{}", last(&r));
    let r = c
        .tagged(
            "S",
            &format!(
                "SETMETADATA md5 (/private/comment {{{}+}}\r\n{value})",
                value.len()
            ),
        )
        .await;
    assert!(
        last(&r).starts_with("S OK"),
        "room after a removal: {}",
        last(&r)
    );
}

/// A message with megabytes of encoded-word header text is delivered, and SEARCH finds text
/// far past the trigram cap in it (and not text it lacks) by verifying its stored text. The
/// index keeps 64 KiB of one field and 256 KiB of header in all, so the flood is spread over
/// fields: four of ~55 KB (together far more than `MAX_GRAMS_PER_MESSAGE` distinct trigrams),
/// then one of megabytes that the header cap cuts.
#[tokio::test]
async fn header_flood_stays_searchable() {
    let h = server(StoreLimits::default()).await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    // Storing 2 MB of header takes seconds in a debug build on a busy machine.
    c.timeout = std::time::Duration::from_secs(60);
    // Folded encoded-words of pseudo-random text.
    let flood = yubin_meta_store::conformance::gram_flood(2_000_000);
    let mut header = String::new();
    for (n, part) in flood.as_bytes().chunks(55_000).take(5).enumerate() {
        let part = if n < 4 { part } else { flood.as_bytes() };
        let marker = match n {
            0 => "start-marker",
            3 => "middle-marker",
            _ => "filler",
        };
        header.push_str(&format!("X-Flood-{n}: =?utf-8?q?{marker}?="));
        for chunk in part.chunks(60) {
            header.push_str("\r\n =?utf-8?q?");
            header.push_str(std::str::from_utf8(chunk).expect("ascii"));
            header.push_str("?=");
        }
        header.push_str("\r\n");
    }
    let msg = format!("Subject: flood\r\n{header}\r\nbody text\r\n");
    assert!(msg.len() > 2_000_000);
    let r = append(&mut c, "INBOX", "", msg.as_bytes()).await;
    assert!(r.starts_with("A OK"), "{r}");
    let r = append(&mut c, "INBOX", "", b"Subject: plain\r\n\r\nother body\r\n").await;
    assert!(r.starts_with("A OK"), "{r}");
    c.tagged("S", "SELECT INBOX").await;
    for (key, want) in [
        ("HEADER X-Flood-0 start-marker", "* SEARCH 1"),
        ("HEADER X-Flood-3 middle-marker", "* SEARCH 1"),
        ("TEXT middle-marker", "* SEARCH 1"),
        ("TEXT absent-everywhere", "* SEARCH"),
        ("BODY \"other body\"", "* SEARCH 2"),
    ] {
        let r = c.tagged("Q", &format!("SEARCH {key}")).await;
        assert_eq!(r[0].trim_end(), want, "{key}: {r:?}");
    }
    let r = c.tagged("C", "COPY 1 INBOX").await;
    assert!(last(&r).starts_with("C OK"), "{}", last(&r));
    let r = c.tagged("Q", "SEARCH TEXT middle-marker").await;
    assert!(r.iter().any(|l| l.trim_end() == "* SEARCH 1 3"), "{r:?}");
}
