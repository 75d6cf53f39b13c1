//! Index size and query latency over synthetic but realistic mail: about 1 KB of headers
//! (Received chains, addresses, Message-ID, a subject of natural-looking words) and a few KB of
//! body text per message, words drawn with a Zipf-like skew from a generated vocabulary.
//!
//! `cargo bench -p yubin-text-index --bench text_index -- [messages...]` (default 3000 100000).
//! Prints bytes of index per message and the median and p99 of each query, answered from a
//! warm local copy (what a front-end does between writes).

use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use yubin_meta_api::{InternalDate, MailboxId, SearchIndex, SearchKey, Uid, UserId};
use yubin_text_index::{Generation, TextIndexConfig, TextIndexes, WriteBatch};

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "der", "en", "ing", "tion", "al", "or", "pre",
    "con", "ma", "ter", "ly", "ist", "ge", "ber", "schaft", "ión", "é", "ment", "ра", "но",
];

struct Corpus {
    vocabulary: Vec<String>,
}

impl Corpus {
    fn new(rng: &mut StdRng) -> Corpus {
        let vocabulary = (0..20_000)
            .map(|_| {
                (0..rng.gen_range(1..4))
                    .map(|_| SYLLABLES[rng.gen_range(0..SYLLABLES.len())])
                    .collect()
            })
            .collect();
        Corpus { vocabulary }
    }

    /// A word, frequent ones far more often (rank ~ 1/u²).
    fn word(&self, rng: &mut StdRng) -> &str {
        let u: f64 = rng.r#gen::<f64>().max(1e-9);
        let rank = ((self.vocabulary.len() as f64) * u * u) as usize;
        &self.vocabulary[rank.min(self.vocabulary.len() - 1)]
    }

    fn sentence(&self, rng: &mut StdRng, words: usize) -> String {
        let mut s = String::new();
        for i in 0..words {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(self.word(rng));
        }
        s.push('.');
        s
    }

    fn message(&self, rng: &mut StdRng, n: u32) -> SearchIndex {
        let who = |rng: &mut StdRng| {
            format!(
                "{} {} <{}.{}@{}.example>",
                self.word(rng),
                self.word(rng),
                self.word(rng),
                self.word(rng),
                self.word(rng)
            )
        };
        let mut headers = Vec::new();
        for hop in 0..3 {
            headers.push((
                "Received".to_string(),
                format!(
                    "from mx{hop}.{}.example (mx{hop}.{}.example [192.0.2.{}]) by mail.example.net with ESMTPS id {:x}; Mon, 3 Mar 2025 10:{hop:02}:00 +0000",
                    self.word(rng),
                    self.word(rng),
                    rng.gen_range(1..255),
                    rng.r#gen::<u64>()
                ),
            ));
        }
        headers.push(("From".into(), who(rng)));
        headers.push(("To".into(), who(rng)));
        headers.push(("Cc".into(), format!("{}, {}", who(rng), who(rng))));
        let subject = if n == 7 {
            "quarterly zyxwvut report".to_string()
        } else {
            let words = rng.gen_range(3..9);
            self.sentence(rng, words)
        };
        headers.push(("Subject".into(), subject));
        headers.push((
            "Message-ID".into(),
            format!("<{:x}.{n}@mail.example.net>", rng.r#gen::<u64>()),
        ));
        headers.push(("Date".into(), "Mon, 3 Mar 2025 10:00:00 +0000".into()));
        headers.push(("MIME-Version".into(), "1.0".into()));
        headers.push(("Content-Type".into(), "text/plain; charset=utf-8".into()));
        headers.push((
            "List-Id".into(),
            format!("{} <{}.lists.example>", self.word(rng), self.word(rng)),
        ));
        let mut body = String::new();
        let target = rng.gen_range(1_500..5_000);
        while body.len() < target {
            let words = rng.gen_range(5..20);
            body.push_str(&self.sentence(rng, words));
            body.push(if rng.gen_bool(0.2) { '\n' } else { ' ' });
        }
        if n == 7 {
            body.push_str(" the unmistakable qwertzuiop token.");
        }
        SearchIndex {
            headers,
            sent_date: Some(InternalDate {
                unix_seconds: 1_740_996_000 + i64::from(n) * 600,
                tz_offset_minutes: 0,
            }),
            body_text: body,
        }
    }
}

fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    let m = e.metadata().map(|m| m.len()).unwrap_or(0);
                    if e.path().is_dir() {
                        dir_bytes(&e.path())
                    } else {
                        m
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn run(messages: u32) {
    let mut rng = StdRng::seed_from_u64(7);
    let corpus = Corpus::new(&mut rng);
    let dir = tempfile::tempdir().expect("temp dir");
    let ti = TextIndexes::open(TextIndexConfig {
        dir: dir.path().to_path_buf(),
        remote: None,
        max_open_users: 4,
        writer_memory_bytes: 50_000_000,
    })
    .expect("open");
    let user = UserId(1);
    let mailbox = MailboxId(1);
    let mut generation = Generation(0);
    let mut text_bytes = 0u64;
    let started = Instant::now();
    let mut n = 1;
    while n <= messages {
        let mut batch = WriteBatch::default();
        for _ in 0..2_000.min(messages - n + 1) {
            let m = corpus.message(&mut rng, n);
            text_bytes += m.body_text.len() as u64
                + m.headers
                    .iter()
                    .map(|(h, v)| (h.len() + v.len() + 4) as u64)
                    .sum::<u64>();
            batch.add.push((mailbox, Uid(n), m));
            n += 1;
        }
        generation = ti
            .write(user, generation, Generation(generation.0 + 1), batch)
            .await
            .expect("write")
            .generation;
    }
    let indexing = started.elapsed();
    let bytes = dir_bytes(dir.path());
    println!(
        "{messages} messages: {:.1} KiB of text per message, index {:.1} KiB per message ({:.2}x the text), indexed in {:.1} s ({:.0} messages/s)",
        text_bytes as f64 / f64::from(messages) / 1024.0,
        bytes as f64 / f64::from(messages) / 1024.0,
        bytes as f64 / text_bytes as f64,
        indexing.as_secs_f64(),
        f64::from(messages) / indexing.as_secs_f64()
    );
    let common = corpus.vocabulary[0].clone();
    let queries = [
        (
            "SUBJECT one hit",
            SearchKey::Header("Subject".into(), "zyxwvut".into()),
        ),
        (
            "SUBJECT many hits",
            SearchKey::Header("Subject".into(), common.clone()),
        ),
        ("TEXT one hit", SearchKey::Text("qwertzuiop".into())),
        ("TEXT many hits", SearchKey::Text(common.clone())),
        ("TEXT two chars", SearchKey::Text("ka".into())),
        (
            "BODY phrase",
            SearchKey::Body(format!("{common} {}", corpus.vocabulary[1])),
        ),
    ];
    for (name, key) in queries {
        let mut times = Vec::new();
        let mut hits = 0;
        for _ in 0..30 {
            let t = Instant::now();
            let got = ti
                .search(user, generation, mailbox, &key)
                .await
                .expect("search");
            times.push(t.elapsed());
            hits = got.hits[0].len();
        }
        times.sort();
        println!(
            "  {name:<18} {hits:>7} hits  median {:>9.3} ms  p99 {:>9.3} ms",
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3
        );
    }
}

fn main() {
    let sizes: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![3_000, 100_000]
    } else {
        sizes
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for n in sizes {
        rt.block_on(run(n));
    }
}
