//! The index answers every text leaf exactly as `leaf_matches` does over the same documents:
//! random and adversarial corpora, random needles, several write batches with replacements,
//! removals, removed mailboxes and copies, compared after every batch against a model kept in
//! memory.

mod common;

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use roaring::RoaringBitmap;
use yubin_meta_api::{
    IndexProjection, InternalDate, MailboxId, SearchIndex, SearchKey, Uid, UserId,
};
use yubin_text_index::{Generation, TextIndexes, WriteBatch, leaf_matches, text_leaves};

use common::local_indexes;

/// Pieces of text the generator combines: ASCII, accents, Greek with final sigma, Turkish
/// dotted capital I (lower-cases to two characters), German sharp s, CJK, emoji, separators.
const PIECES: &[&str] = &[
    "hello",
    "World",
    "Grüße",
    "Köln",
    "STRASSE",
    "straße",
    "ß",
    "ẞ",
    "ΣΊΣΥΦΟΣ",
    "σίσυφος",
    "ΟΔΟΣ",
    "ος",
    "Σ",
    "İstanbul",
    "İ",
    "i̇",
    "ı",
    "日本語",
    "テキスト",
    "中文",
    "😀",
    "👍🏽",
    "a",
    "ab",
    "abc",
    ": ",
    " ",
    "-",
    "\t",
    "Re:",
    "subject",
    "From",
    "x",
    "é",
    "É",
    "ﬁ",
    "Ǆ",
    "ǅ",
];

const NAMES: &[&str] = &[
    "Subject",
    "From",
    "To",
    "X-Foo",
    "x-foo",
    "X-FOO",
    "Received",
    "Ü-Header",
    "Σ",
    "Subject-Extra",
    "A",
];

fn text(rng: &mut StdRng, max_pieces: usize) -> String {
    let n = rng.gen_range(0..=max_pieces);
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(PIECES.choose(rng).expect("pieces"));
        if rng.gen_bool(0.3) {
            s.push(' ');
        }
    }
    s
}

fn random_doc(rng: &mut StdRng) -> SearchIndex {
    let headers = (0..rng.gen_range(0..6))
        .map(|_| {
            let name = if rng.gen_bool(0.1) {
                // Longer than the name key terms carry in full.
                format!("X-Long-{}", "n".repeat(rng.gen_range(57..70)))
            } else {
                NAMES.choose(rng).expect("names").to_string()
            };
            (name, text(rng, 4))
        })
        .collect();
    let sent_date = rng.gen_bool(0.8).then(|| InternalDate {
        unix_seconds: rng.gen_range(0..20) * 43_200 + rng.gen_range(-3_600..3_600),
        tz_offset_minutes: rng.gen_range(-720..=840),
    });
    let body_text = if rng.gen_bool(0.05) {
        text(rng, 400)
    } else {
        text(rng, 12)
    };
    SearchIndex {
        headers,
        sent_date,
        body_text,
    }
}

/// A needle drawn from a document (substring, case-changed), spanning a header's name and
/// value, spanning two values, or random.
fn random_needle(rng: &mut StdRng, docs: &[&SearchIndex]) -> String {
    let doc = docs.choose(rng).copied().cloned().unwrap_or_default();
    let mut sources: Vec<String> = vec![doc.body_text.clone()];
    for (i, (h, v)) in doc.headers.iter().enumerate() {
        sources.push(format!("{h}: {v}"));
        if let Some((_, next)) = doc.headers.get(i + 1) {
            sources.push(format!("{v}{next}"));
        }
    }
    let source = sources.choose(rng).cloned().unwrap_or_default();
    let chars: Vec<char> = source.chars().collect();
    let needle: String = match rng.gen_range(0..10) {
        0..=5 if !chars.is_empty() => {
            let start = rng.gen_range(0..chars.len());
            let len = rng.gen_range(0..=(chars.len() - start).min(12));
            chars[start..start + len].iter().collect()
        }
        6 => String::new(),
        7 => text(rng, 1).chars().take(2).collect(),
        _ => text(rng, 2),
    };
    match rng.gen_range(0..3) {
        0 => needle.to_uppercase(),
        1 => needle.to_lowercase(),
        _ => needle,
    }
}

fn random_leaf(rng: &mut StdRng, docs: &[&SearchIndex]) -> SearchKey {
    let needle = random_needle(rng, docs);
    match rng.gen_range(0..6) {
        0 => {
            let name = docs
                .choose(rng)
                .and_then(|d| d.headers.choose(rng))
                .map(|(h, _)| h.to_ascii_uppercase())
                .unwrap_or_else(|| "Subject".into());
            SearchKey::Header(name, needle)
        }
        1 => SearchKey::Body(needle),
        2 => SearchKey::Text(needle),
        3 => SearchKey::SentBefore(rng.gen_range(0..12)),
        4 => SearchKey::SentOn(rng.gen_range(0..12)),
        _ => SearchKey::SentSince(rng.gen_range(0..12)),
    }
}

fn random_key(rng: &mut StdRng, docs: &[&SearchIndex], depth: u32) -> SearchKey {
    if depth == 0 || rng.gen_bool(0.5) {
        return random_leaf(rng, docs);
    }
    match rng.gen_range(0..4) {
        0 => SearchKey::Not(Box::new(random_key(rng, docs, depth - 1))),
        1 => SearchKey::Or(
            Box::new(random_key(rng, docs, depth - 1)),
            Box::new(random_key(rng, docs, depth - 1)),
        ),
        2 => SearchKey::And(vec![
            SearchKey::Flag("\\Seen".into()),
            random_key(rng, docs, depth - 1),
            random_key(rng, docs, depth - 1),
        ]),
        _ => SearchKey::And(vec![random_key(rng, docs, depth - 1)]),
    }
}

type Model = BTreeMap<(MailboxId, Uid), SearchIndex>;

fn expected(model: &Model, mailbox: MailboxId, leaf: &SearchKey) -> RoaringBitmap {
    model
        .iter()
        .filter(|((m, _), ix)| *m == mailbox && leaf_matches(leaf, ix))
        .map(|((_, u), _)| u.0)
        .collect()
}

async fn check_keys(
    ti: &TextIndexes,
    user: UserId,
    generation: Generation,
    model: &Model,
    rng: &mut StdRng,
    rounds: usize,
) {
    let docs: Vec<&SearchIndex> = model.values().collect();
    for _ in 0..rounds {
        let key = random_key(rng, &docs, 3);
        let mailbox = MailboxId(rng.gen_range(1..=3));
        let got = ti
            .search(user, generation, mailbox, &key)
            .await
            .expect("search");
        assert_eq!(got.indexed_through, generation);
        let leaves = text_leaves(&key);
        assert_eq!(got.hits.len(), leaves.len());
        for (leaf, hits) in leaves.iter().zip(&got.hits) {
            let want = expected(model, mailbox, leaf);
            assert_eq!(hits, &want, "{leaf:?} in mailbox {mailbox:?}");
        }
    }
}

/// Several batches of random adds, replacements, removals, removed mailboxes and copies; after
/// each, random keys over three mailboxes are compared with the model, and stored documents
/// read back whole and projected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_corpora_and_needles_match_the_scan() {
    let seed = std::env::var("TEXT_INDEX_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut rng = StdRng::seed_from_u64(seed);
    let (_dir, ti) = local_indexes();
    let user = UserId(1);
    let mut model = Model::new();
    let mut generation = Generation(0);
    let mut next_uid = 1u32;
    for round in 0..8 {
        let mut batch = WriteBatch::default();
        for _ in 0..rng.gen_range(10..40) {
            let mailbox = MailboxId(rng.gen_range(1..=3));
            // Sometimes replace an existing key.
            let uid = if rng.gen_bool(0.15) && next_uid > 1 {
                Uid(rng.gen_range(1..next_uid))
            } else {
                next_uid += 1;
                Uid(next_uid - 1)
            };
            batch.add.push((mailbox, uid, random_doc(&mut rng)));
        }
        let existing: Vec<(MailboxId, Uid)> = model.keys().copied().collect();
        for _ in 0..rng.gen_range(0..5) {
            if let Some(k) = existing.choose(&mut rng) {
                batch.remove.push(*k);
            }
        }
        for _ in 0..rng.gen_range(0..5) {
            if let Some(&src) = existing.choose(&mut rng) {
                next_uid += 1;
                batch
                    .add_copies
                    .push((src, (MailboxId(3), Uid(next_uid - 1))));
            }
        }
        // A copy whose source does not exist.
        next_uid += 1;
        let missing_dest = (MailboxId(2), Uid(next_uid - 1));
        batch
            .add_copies
            .push(((MailboxId(9), Uid(1)), missing_dest));
        if round == 5 {
            batch.remove_mailboxes.push(MailboxId(2));
        }

        // The model applies the batch in the documented order, copies resolved first.
        let copies: Vec<((MailboxId, Uid), SearchIndex)> = batch
            .add_copies
            .iter()
            .filter_map(|(src, dst)| {
                let from_add = batch
                    .add
                    .iter()
                    .rev()
                    .find(|(m, u, _)| (*m, *u) == *src)
                    .map(|(_, _, ix)| ix.clone());
                from_add
                    .or_else(|| model.get(src).cloned())
                    .map(|ix| (*dst, ix))
            })
            .collect();
        for m in &batch.remove_mailboxes {
            model.retain(|(mm, _), _| mm != m);
        }
        for k in &batch.remove {
            model.remove(k);
        }
        for (m, u, ix) in &batch.add {
            model.insert((*m, *u), ix.clone());
        }
        for (k, ix) in copies {
            model.insert(k, ix);
        }

        let out = ti
            .write(user, generation, Generation(generation.0 + 1), batch)
            .await
            .expect("write");
        assert_eq!(out.generation, Generation(generation.0 + 1));
        assert!(out.unresolved_copies.contains(&missing_dest));
        generation = out.generation;
        check_keys(&ti, user, generation, &model, &mut rng, 150).await;

        // Stored documents come back as indexed, whole and projected.
        let mailbox = MailboxId(rng.gen_range(1..=3));
        let uids: Vec<Uid> = (1..next_uid + 2).map(Uid).collect();
        let docs = ti
            .documents(user, generation, mailbox, &uids, None)
            .await
            .expect("documents");
        let want: Vec<(Uid, SearchIndex)> = model
            .iter()
            .filter(|((m, _), _)| *m == mailbox)
            .map(|((_, u), ix)| (*u, ix.clone()))
            .collect();
        assert_eq!(docs, want);
        let projection = IndexProjection {
            headers: vec!["SUBJECT".into(), "x-foo".into()],
            body_chars: rng.gen_range(0..4),
        };
        let projected = ti
            .documents(user, generation, mailbox, &uids, Some(&projection))
            .await
            .expect("documents");
        let want: Vec<(Uid, SearchIndex)> = want
            .into_iter()
            .map(|(u, ix)| (u, ix.project(&projection)))
            .collect();
        assert_eq!(projected, want);
    }
}

fn doc(headers: &[(&str, &str)], body: &str) -> SearchIndex {
    SearchIndex {
        headers: headers
            .iter()
            .map(|(h, v)| (h.to_string(), v.to_string()))
            .collect(),
        sent_date: None,
        body_text: body.into(),
    }
}

/// Hand-picked traps: needles across `name: value`, across two values of one field or two
/// fields, final sigma, İ, ß, short and empty needles, long needles and long header names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_table() {
    let (_dir, ti) = local_indexes();
    let user = UserId(2);
    let long_name = format!("X-{}", "L".repeat(80));
    let long_body = "lorem ipsum dolor sit amet ".repeat(40);
    let docs = [
        doc(&[("Subject", "xab"), ("Subject", "abc")], ""),
        doc(&[("From", "alice"), ("To", "bob")], "ΟΔΟΣ ΣΊΣΥΦΟΣ"),
        doc(&[("X-Foo", "")], "İstanbul straße"),
        doc(&[("Subject", "日本語のテキスト😀")], "ab"),
        doc(&[(&long_name, "value one")], &long_body),
        doc(
            &[(&format!("X-{}", "L".repeat(79)), "value two")],
            "a\u{0}b",
        ),
        doc(&[], ""),
    ];
    let mut batch = WriteBatch::default();
    for (i, d) in docs.iter().enumerate() {
        batch.add.push((MailboxId(1), Uid(i as u32 + 1), d.clone()));
    }
    let generation = ti
        .write(user, Generation(0), Generation(1), batch)
        .await
        .expect("write")
        .generation;
    let keys = vec![
        SearchKey::Header("subject".into(), "xabc".into()),
        SearchKey::Header("subject".into(), "abab".into()),
        SearchKey::Header("subject".into(), "bab".into()),
        SearchKey::Header("subject".into(), "ba".into()),
        SearchKey::Header("SUBJECT".into(), "XAB".into()),
        SearchKey::Text("alicebob".into()),
        SearchKey::Text("aliceto".into()),
        SearchKey::Text("from: al".into()),
        SearchKey::Text("m: a".into()),
        SearchKey::Text(": ".into()),
        SearchKey::Text(":".into()),
        SearchKey::Text("x-foo: ".into()),
        SearchKey::Header("x-foo".into(), String::new()),
        SearchKey::Header("x-bar".into(), String::new()),
        SearchKey::Body("οδος".into()),
        SearchKey::Body("οδοσ".into()),
        SearchKey::Body("ος σ".into()),
        SearchKey::Body("σίσυφος".into()),
        SearchKey::Body("Σ".into()),
        SearchKey::Body("ς".into()),
        SearchKey::Body("İ".into()),
        SearchKey::Body("i̇st".into()),
        SearchKey::Body("ist".into()),
        SearchKey::Body("STRASSE".into()),
        SearchKey::Body("STRAẞE".into()),
        SearchKey::Body("ß".into()),
        SearchKey::Text("本語".into()),
        SearchKey::Text("😀".into()),
        SearchKey::Text("ト😀".into()),
        SearchKey::Body("b".into()),
        SearchKey::Body("ab".into()),
        SearchKey::Body(String::new()),
        SearchKey::Text(String::new()),
        SearchKey::Body("\u{0}".into()),
        SearchKey::Body(long_body.trim().to_uppercase()),
        SearchKey::Body(format!("{long_body}x")),
        SearchKey::Header(long_name.clone(), String::new()),
        SearchKey::Header(long_name.to_lowercase(), "ONE".into()),
        SearchKey::Header(format!("X-{}", "L".repeat(79)), "value".into()),
        SearchKey::Header(format!("X-{}", "L".repeat(62)), "value".into()),
        SearchKey::Text("ll: value".into()),
    ];
    let model: Model = docs
        .iter()
        .enumerate()
        .map(|(i, d)| ((MailboxId(1), Uid(i as u32 + 1)), d.clone()))
        .collect();
    for key in keys {
        let got = ti
            .search(user, generation, MailboxId(1), &key)
            .await
            .expect("search");
        assert_eq!(got.hits[0], expected(&model, MailboxId(1), &key), "{key:?}");
    }
    // Some answers are known, so the comparison above cannot pass by both sides being empty.
    let one = |key: SearchKey| {
        let ti = &ti;
        async move {
            let got = ti.search(user, generation, MailboxId(1), &key).await;
            got.expect("search").hits[0].iter().collect::<Vec<u32>>()
        }
    };
    assert_eq!(
        one(SearchKey::Header("subject".into(), "xabc".into())).await,
        Vec::<u32>::new()
    );
    assert_eq!(
        one(SearchKey::Text("alicebob".into())).await,
        Vec::<u32>::new()
    );
    assert_eq!(one(SearchKey::Text("from: al".into())).await, vec![2]);
    assert_eq!(one(SearchKey::Body("ος σ".into())).await, vec![2]);
    assert_eq!(one(SearchKey::Body("İ".into())).await, vec![3]);
    assert_eq!(
        one(SearchKey::Header("x-foo".into(), String::new())).await,
        vec![3]
    );
    assert_eq!(
        one(SearchKey::Header(long_name.clone(), String::new())).await,
        vec![5]
    );
    assert_eq!(
        one(SearchKey::Body(String::new())).await,
        vec![1, 2, 3, 4, 5, 6, 7]
    );
}
