//! Hostile-client limits, each test reproducing an attack against a real server: repeated
//! sequence sets and FETCH items, MULTIAPPEND / CATENATE counts, deep SEARCH programs, and what
//! an unauthenticated client may hold (literal sizes, the login deadline, connections per
//! address).

mod common;

use common::*;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use yubin_imap::{ImapConfig, Timeouts};
use yubin_imap_proto::Limits;

fn ok(lines: &[String]) {
    assert!(last(lines).starts_with("T OK"), "{lines:?}");
}

fn with_limits(limits: Limits) -> Options {
    Options {
        config: ImapConfig {
            allow_plaintext_auth: true,
            limits,
            ..ImapConfig::default()
        },
        ..Options::default()
    }
}

/// `n` one-line messages in INBOX, appended with one MULTIAPPEND of non-synchronizing literals.
async fn fill_inbox(c: &mut Raw, n: usize) {
    let mut wire = b"T APPEND INBOX".to_vec();
    for i in 0..n {
        let msg = format!("Subject: m{i}\r\n\r\nbody {i}\r\n");
        wire.extend_from_slice(format!(" {{{}+}}\r\n", msg.len()).as_bytes());
        wire.extend_from_slice(msg.as_bytes());
    }
    wire.extend_from_slice(b"\r\n");
    c.send(&wire).await;
    ok(&c.until_tag("T").await);
}

/// `FETCH 1:*,1:*,…` with 16 000 copies of the range on a 1 000-message mailbox: the ranges
/// are merged before the view is touched, so every message is answered exactly once and the
/// command costs what one `1:*` costs (the old code built 16 million UIDs first).
#[tokio::test]
async fn repeated_sequence_ranges_fetch_each_message_once() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    fill_inbox(&mut c, 1000).await;
    ok(&c.cmd("SELECT INBOX").await);
    let set = vec!["1:*"; 16_000].join(",");
    let started = Instant::now();
    let r = c.cmd(&format!("FETCH {set} (UID)")).await;
    ok(&r);
    assert_eq!(r.len(), 1001, "one response per message");
    for (i, line) in r[..1000].iter().enumerate() {
        assert!(
            line.starts_with(&format!("* {} FETCH (UID ", i + 1)),
            "{line}"
        );
    }
    let r = c
        .cmd(&format!("UID FETCH {set},5:1,999999:* (FLAGS)"))
        .await;
    ok(&r);
    assert_eq!(r.len(), 1001, "UID form too");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

/// Items repeated in one FETCH are computed and answered once; the PEEK and non-PEEK forms of
/// a section are one item (the response names them alike).
#[tokio::test]
async fn repeated_fetch_items_are_answered_once() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let msg = b"Subject: b\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\
Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n";
    assert!(append(&mut c, "INBOX", "", msg).await.starts_with("A OK"));
    ok(&c.cmd("SELECT INBOX").await);
    let items = vec!["BINARY.SIZE[1]"; 2000].join(" ");
    let r = c
        .cmd(&format!(
            "FETCH 1 (FLAGS {items} BINARY.PEEK[1] BINARY[1] FLAGS BODY.PEEK[TEXT] BODY[TEXT])"
        ))
        .await;
    ok(&r);
    let fetch = &r[0];
    assert_eq!(fetch.matches("BINARY.SIZE[1] 11").count(), 1, "{fetch}");
    assert_eq!(fetch.matches("BINARY[1] ").count(), 1, "{fetch}");
    assert_eq!(fetch.matches("BODY[TEXT] ").count(), 1, "{fetch}");
    assert_eq!(fetch.matches("FLAGS").count(), 1, "{fetch}");
    assert!(fetch.contains("\\Seen"), "the non-PEEK form won: {fetch}");
}

#[tokio::test]
async fn multiappend_over_the_message_cap_is_refused() {
    let h = start_with(with_limits(Limits {
        max_append_messages: 3,
        ..Limits::default()
    }))
    .await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    fill_inbox(&mut c, 3).await;
    // A fourth message: refused when its literal is announced, before it is sent.
    c.send(b"T APPEND INBOX {1}\r\na {1}\r\nb {1}\r\nc {1}\r\n")
        .await;
    let r = c.until_tag("T").await;
    assert_eq!(
        last(&r),
        "T BAD [LIMIT] too many messages in one APPEND",
        "{r:?}"
    );
    let r = c.cmd("STATUS INBOX (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS \"INBOX\" (MESSAGES 3)");
}

#[tokio::test]
async fn catenate_over_the_part_cap_is_refused() {
    let h = start_with(with_limits(Limits {
        max_catenate_parts: 4,
        ..Limits::default()
    }))
    .await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    fill_inbox(&mut c, 1).await;
    let url = "URL \"/INBOX/;UID=1\"";
    let r = c
        .cmd(&format!("APPEND INBOX CATENATE ({url} {url} {url} {url})"))
        .await;
    ok(&r);
    let parts = vec![url; 1000].join(" ");
    let r = c.cmd(&format!("APPEND INBOX CATENATE ({parts})")).await;
    assert_eq!(last(&r), "T BAD [LIMIT] too many CATENATE parts", "{r:?}");
    let r = c.cmd("STATUS INBOX (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS \"INBOX\" (MESSAGES 2)");
}

/// 200 nested ORs are a legitimate search; 10 000 nested NOTs are refused with BAD, not a
/// crash.
#[tokio::test]
async fn deep_search_programs() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    fill_inbox(&mut c, 3).await;
    ok(&c.cmd("SELECT INBOX").await);
    let deep = format!("{}SUBJECT m2", "OR SUBJECT nothing ".repeat(200));
    let r = c.cmd(&format!("SEARCH {deep}")).await;
    ok(&r);
    assert_eq!(r[0], "* SEARCH 3");
    let absurd = format!("{}ALL", "NOT ".repeat(10_000));
    let r = c.cmd(&format!("SEARCH {absurd}")).await;
    assert_eq!(
        last(&r),
        "T BAD [LIMIT] search keys nested too deeply",
        "{r:?}"
    );
    ok(&c.cmd("NOOP").await);
}

/// Before login a non-synchronizing literal over the pre-authentication limit is refused when
/// its marker arrives, with nothing of it read: the old code buffered up to 256 KiB (and read
/// megabytes) of it per connection before answering.
#[tokio::test]
async fn pre_auth_literals_are_small() {
    let h = start().await;
    for size in [200 * 1024, 1024 * 1024] {
        let mut c = Raw::connect(h.addr).await;
        c.send(format!("A LOGIN {{{size}+}}\r\n").as_bytes()).await;
        assert_eq!(c.line().await, "A BAD [TOOBIG] literal too large");
        assert_eq!(
            c.line().await,
            "* BYE Cannot recover from the protocol error"
        );
        c.until_closed().await;
    }
    // A synchronizing one is refused without closing, and small literals still work.
    let mut c = Raw::connect(h.addr).await;
    c.send(b"A LOGIN {9000}\r\n").await;
    assert_eq!(c.line().await, "A BAD [TOOBIG] literal too large");
    c.send(b"B LOGIN {5+}\r\nalice {10+}\r\nwonderland\r\n")
        .await;
    let r = c.until_tag("B").await;
    assert!(last(&r).starts_with("B OK"), "{r:?}");
    // After login the configured limits apply.
    let big = "x".repeat(20_000);
    c.send(format!("C SEARCH TEXT {{{}+}}\r\n{big}\r\n", big.len()).as_bytes())
        .await;
    let r = c.until_tag("C").await;
    assert!(
        last(&r).starts_with("C BAD"),
        "no mailbox selected, but parsed: {r:?}"
    );
    assert!(!last(&r).contains("TOOBIG"), "{r:?}");
    // A command line over the pre-auth limit is refused too.
    let mut c = Raw::connect(h.addr).await;
    let r = c.cmd(&format!("LOGIN alice {}", "y".repeat(9000))).await;
    assert_eq!(last(&r), "T BAD [LIMIT] line too long");
}

/// Sends `line` one byte every 300 ms, over and over, never completing a command, until the
/// server closes the connection (its BYE ends the drip with a write error) or 10 s pass; how
/// long that took and what the server said.
async fn drip_until_closed(c: &mut Raw, line: &[u8]) -> (Duration, String) {
    let started = Instant::now();
    let drip = async {
        for b in line.iter().cycle() {
            c.io.get_mut().write_all(&[*b]).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), drip).await;
    let elapsed = started.elapsed();
    (elapsed, c.until_closed().await)
}

/// One byte every 300 ms used to hold a connection forever (the timer restarted at each byte);
/// the login deadline runs from connect whatever arrives.
#[tokio::test]
async fn slow_drip_is_closed_at_the_login_deadline() {
    let h = start_with(Options {
        timeouts: Timeouts {
            login: Duration::from_secs(2),
            ..Timeouts::default()
        },
        ..Options::default()
    })
    .await;
    let mut c = Raw::connect(h.addr).await;
    let (elapsed, rest) = drip_until_closed(&mut c, b"A LOGIN alice wonderlan").await;
    assert!(
        rest.starts_with("* BYE Autologout; not authenticated in time"),
        "{rest:?}"
    );
    assert!(elapsed < Duration::from_secs(6), "closed after {elapsed:?}");
}

/// After login, bytes that do not complete a command do not reset the autologout timer either
/// (RFC 9051 §5.4 counts inactivity in commands).
#[tokio::test]
async fn authenticated_timer_is_reset_by_commands_only() {
    let h = start_with(Options {
        timeouts: Timeouts {
            authenticated: Duration::from_secs(2),
            ..Timeouts::default()
        },
        ..Options::default()
    })
    .await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    ok(&c.cmd("NOOP").await);
    let (elapsed, rest) = drip_until_closed(&mut c, b"A SEARCH SUBJECT hello").await;
    assert!(
        rest.starts_with("* BYE Autologout; idle for too long"),
        "{rest:?}"
    );
    assert!(elapsed < Duration::from_secs(6), "closed after {elapsed:?}");
}

/// The N+1-th connection from one address gets `* BYE` (loopback counts only when asked to,
/// which this test does: every test client is on 127.0.0.1).
#[tokio::test]
async fn connections_per_address_are_capped() {
    let h = start_with(Options {
        config: ImapConfig {
            allow_plaintext_auth: true,
            max_connections_per_address: 3,
            limit_loopback_per_address: true,
            ..ImapConfig::default()
        },
        ..Options::default()
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let c = Raw::connect(h.addr).await;
        assert!(c.greeting.starts_with("* OK"), "{}", c.greeting);
        open.push(c);
    }
    let mut refused = Raw::connect(h.addr).await;
    assert_eq!(
        refused.greeting,
        "* BYE Too many connections from your address"
    );
    refused.until_closed().await;
    // A slot comes back when a connection ends.
    let mut gone = open.pop().expect("one");
    gone.cmd("LOGOUT").await;
    gone.until_closed().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let c = Raw::connect(h.addr).await;
        if c.greeting.starts_with("* OK") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slot never freed: {}",
            c.greeting
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn loopback_is_not_capped_by_default() {
    let h = start_with(Options {
        config: ImapConfig {
            allow_plaintext_auth: true,
            max_connections_per_address: 2,
            ..ImapConfig::default()
        },
        ..Options::default()
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..5 {
        let c = Raw::connect(h.addr).await;
        assert!(c.greeting.starts_with("* OK"), "{}", c.greeting);
        open.push(c);
    }
}

/// An IDLE nobody ends used to last for ever; it now ends at `Timeouts::idle_max` with a BYE
/// (RFC 2177 §3: clients re-issue IDLE within 29 minutes). Keepalives do not extend it.
#[tokio::test]
async fn idle_ends_at_its_maximum_length() {
    let mut opts = with_limits(Limits::default());
    opts.timeouts = Timeouts {
        idle_max: Duration::from_secs(2),
        ..Timeouts::default()
    };
    let h = start_with(opts).await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    ok(&c.cmd("SELECT INBOX").await);
    c.send(b"I IDLE\r\n").await;
    assert_eq!(c.line().await, "+ idling");
    let started = Instant::now();
    let rest = c.until_closed().await;
    assert!(
        rest.contains("* BYE Autologout; IDLE for too long"),
        "{rest:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(8),
        "closed after {elapsed:?}"
    );
}

/// Literals over 1 KiB are streamed and must arrive at 1 000 bytes/s after a second of grace.
fn literal_rate_options() -> Options {
    let mut opts = with_limits(Limits {
        max_buffered_literal: 1024,
        ..Limits::default()
    });
    opts.timeouts = Timeouts {
        literal_min_rate: 1000,
        literal_grace: Duration::from_secs(1),
        ..Timeouts::default()
    };
    opts
}

/// A streamed APPEND literal dripped slower than `literal_min_rate` (one byte just before each
/// inactivity deadline used to hold the connection and its spool file for ever) ends at its
/// allowance with a BYE; nothing is appended.
#[tokio::test]
async fn slow_streamed_literal_is_cut_at_its_minimum_rate() {
    let h = start_with(literal_rate_options()).await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    // 2 000 octets at 1 000/s plus 1 s of grace: 3 s in all, though every read comes well
    // within the inactivity timeout.
    c.send(b"A APPEND INBOX {2000}\r\n").await;
    assert!(c.line().await.starts_with('+'));
    let started = Instant::now();
    let drip = async {
        for _ in 0..2000 {
            c.io.get_mut().write_all(b"x").await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), drip).await;
    let rest = c.until_closed().await;
    assert!(
        rest.starts_with("* BYE Autologout; literal data arrives too slowly"),
        "{rest:?}"
    );
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(8), "closed after {elapsed:?}");
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let lines = c.cmd("STATUS INBOX (MESSAGES)").await;
    assert!(lines[0].contains("MESSAGES 0"), "{lines:?}");
}

/// A literal that arrives at a normal pace is not cut by the rate rule.
#[tokio::test]
async fn streamed_literal_at_a_normal_pace_is_stored() {
    let h = start_with(literal_rate_options()).await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let body = format!("Subject: paced\r\n\r\n{}\r\n", "y".repeat(4000));
    c.send(format!("A APPEND INBOX {{{}}}\r\n", body.len()).as_bytes())
        .await;
    assert!(c.line().await.starts_with('+'));
    for chunk in body.as_bytes().chunks(1000) {
        c.send(chunk).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.send(b"\r\n").await;
    let lines = c.until_tag("A").await;
    assert!(last(&lines).starts_with("A OK"), "{lines:?}");
}
