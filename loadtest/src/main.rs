//! `yubin-loadtest`: benchmarks against a running Yubin (or any IMAP server with the same users).

use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use yubin_loadtest::probe::Probe;
use yubin_loadtest::stats::{self, Row};
use yubin_loadtest::{bigbox, corpus, mailmix, workload};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CorpusKind {
    /// ~300-byte one-part messages; the cycle never reads bodies.
    Small,
    /// The realistic corpus (`corpus` module, mean ≈ 50 KB); clients read mail.
    Realistic,
}

/// Where backend counters are read, and where result rows go.
#[derive(clap::Args)]
struct Output {
    /// Append the result rows (TSV) to this file, for `compare`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Redis to read `INFO commandstats` from (the distributed stack's).
    #[arg(long)]
    redis: Option<SocketAddr>,
    /// A Yubin HTTP port whose /metrics counts S3 requests (the imap front-end's).
    #[arg(long)]
    metrics: Option<SocketAddr>,
}

impl Output {
    fn probe(&self) -> Probe {
        Probe {
            redis: self.redis,
            metrics: self.metrics,
        }
    }

    fn write(&self, rows: &[Row]) {
        print!("{}", stats::render(rows));
        if let Some(path) = &self.out {
            stats::append_rows(path, rows)
                .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
    }
}

#[derive(Parser)]
#[command(about = "Load generator for Yubin")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// imaptest-like mixed workload; users are <prefix>0..<prefix>N-1 with password = name.
    Mixed {
        #[arg(long, default_value = "127.0.0.1:1143")]
        addr: SocketAddr,
        #[arg(long, default_value = "load")]
        user_prefix: String,
        #[arg(long, default_value_t = 50)]
        users: usize,
        #[arg(long, default_value_t = 50)]
        clients: usize,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// `realistic`: the mail-reading client of `mailmix` on corpus messages, after
        /// populating each INBOX to --mailbox-size (kept if already there).
        #[arg(long, value_enum, default_value = "small")]
        corpus: CorpusKind,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Messages per INBOX (realistic corpus): populated before, kept during the run.
        #[arg(long, default_value_t = 100)]
        mailbox_size: u32,
        /// Connections that populate at once.
        #[arg(long, default_value_t = 4)]
        populate_parallel: usize,
        #[command(flatten)]
        output: Output,
    },
    /// APPEND corpus messages: each INBOX of <prefix>0..N-1 to --per-user, and the large
    /// mailbox `realistic-<bench-messages>` of --bench-user; what is already there is kept.
    Populate {
        #[arg(long, default_value = "127.0.0.1:1143")]
        addr: SocketAddr,
        #[arg(long, default_value = "load")]
        user_prefix: String,
        #[arg(long, default_value_t = 50)]
        users: usize,
        #[arg(long, default_value_t = 100)]
        per_user: u32,
        #[arg(long)]
        bench_user: Option<String>,
        #[arg(long)]
        bench_password: Option<String>,
        #[arg(long, default_value_t = 3000)]
        bench_messages: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 4)]
        parallel: usize,
    },
    /// Large-mailbox latencies on realistic mail (`bigbox` module): cold and warm
    /// `FETCH 1:100 (BODY.PEEK[])`, header fields, BODYSTRUCTURE, FLAGS, SEARCH, STORE.
    RealisticMailbox {
        #[arg(long, default_value = "127.0.0.1:1143")]
        addr: SocketAddr,
        #[arg(long, default_value = "demo")]
        user: String,
        #[arg(long, default_value = "demo")]
        password: String,
        #[arg(long, default_value_t = 3000)]
        messages: u32,
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        output: Output,
    },
    /// Writes corpus messages for inspection (as .eml files, or one mbox) and prints the mix.
    Corpus {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// First corpus index.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// A directory for <index>.eml files (CRLF, as sent over IMAP).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// An mboxrd file (LF line ends, `From ` lines quoted).
        #[arg(long)]
        mbox: Option<PathBuf>,
    },
    /// Result files of several servers side by side: LABEL=FILE..., the first is the baseline
    /// of the ratios. Repetitions of a measurement in one file are merged (medians of p50/p99).
    Compare {
        #[arg(required = true)]
        runs: Vec<String>,
    },
    /// Sequential APPEND rate on one connection.
    Append {
        #[arg(long, default_value = "127.0.0.1:1143")]
        addr: SocketAddr,
        #[arg(long, default_value = "demo")]
        user: String,
        #[arg(long, default_value = "demo")]
        password: String,
        #[arg(long, default_value_t = 2000)]
        count: u64,
    },
    /// Command latencies on a large mailbox (SELECT, FETCH 1:*, STORE 1:*, SEARCH); the mailbox
    /// `bench-<messages>` is made on first use and reused after.
    Mailbox {
        #[arg(long, default_value = "127.0.0.1:1143")]
        addr: SocketAddr,
        #[arg(long, default_value = "demo")]
        user: String,
        #[arg(long, default_value = "demo")]
        password: String,
        #[arg(long, default_value_t = 3000)]
        messages: u32,
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Time only SELECT and SEARCH (skip FETCH 1:* and STORE 1:*).
        #[arg(long)]
        select_and_search_only: bool,
    },
    /// Latency from an APPEND on one front-end to EXISTS on an IDLE client of another.
    IdleLatency {
        #[arg(long)]
        watch: SocketAddr,
        #[arg(long)]
        write: SocketAddr,
        #[arg(long, default_value = "demo")]
        user: String,
        #[arg(long, default_value = "demo")]
        password: String,
        #[arg(long, default_value_t = 200)]
        rounds: usize,
    },
}

#[tokio::main]
async fn main() {
    match Cli::parse().command {
        Cmd::Mixed {
            addr,
            user_prefix,
            users,
            clients,
            seconds,
            corpus: CorpusKind::Realistic,
            seed,
            mailbox_size,
            populate_parallel,
            output,
        } => {
            let appended = mailmix::populate(
                addr,
                &user_prefix,
                users,
                mailbox_size,
                seed,
                populate_parallel,
            )
            .await;
            println!("populated: {appended} messages appended");
            let cfg = mailmix::MixConfig {
                addr,
                user_prefix,
                users,
                clients,
                duration: Duration::from_secs(seconds),
                seed,
                mailbox_size,
            };
            let probe = output.probe();
            let before = probe.snapshot().await;
            let report = mailmix::run(&cfg).await;
            let mut delta = yubin_loadtest::probe::Delta::default();
            delta.add(&before, &probe.snapshot().await);
            let mut rows = report.rows("mixed");
            if !probe.is_empty() {
                rows.extend(delta.rows(
                    "mixed backends",
                    "per session",
                    report.sessions as f64,
                    "per session",
                ));
            }
            println!(
                "{users} users, {clients} clients, {:.1} s",
                report.elapsed.as_secs_f64()
            );
            output.write(&rows);
            for e in &report.examples {
                eprintln!("state error: {e}");
            }
        }
        Cmd::Mixed {
            addr,
            user_prefix,
            users,
            clients,
            seconds,
            ..
        } => {
            let r = workload::mixed(
                addr,
                &user_prefix,
                users,
                clients,
                Duration::from_secs(seconds),
            )
            .await;
            let secs = r.elapsed.as_secs_f64();
            println!(
                "cycles {} ({:.1}/s), commands {} ({:.0}/s), failed {}, state errors {}",
                r.cycles,
                r.cycles as f64 / secs,
                r.commands,
                r.commands as f64 / secs,
                r.failed_commands,
                r.state_errors
            );
        }
        Cmd::Populate {
            addr,
            user_prefix,
            users,
            per_user,
            bench_user,
            bench_password,
            bench_messages,
            seed,
            parallel,
        } => {
            let started = std::time::Instant::now();
            let n = mailmix::populate(addr, &user_prefix, users, per_user, seed, parallel).await;
            println!("INBOX of {users} users: {n} messages appended");
            if let Some(user) = bench_user {
                let password = bench_password.unwrap_or_else(|| user.clone());
                let n =
                    bigbox::populate(addr, &user, &password, bench_messages, seed, parallel).await;
                println!(
                    "{} of {user}: {n} messages appended",
                    bigbox::mailbox_name(bench_messages)
                );
            }
            println!("populate took {:.1} s", started.elapsed().as_secs_f64());
        }
        Cmd::RealisticMailbox {
            addr,
            user,
            password,
            messages,
            rounds,
            seed,
            output,
        } => {
            let cfg = bigbox::BigboxConfig {
                addr,
                user,
                password,
                messages,
                rounds,
                seed,
            };
            let report = bigbox::run(&cfg, &output.probe()).await;
            println!("{messages}-message mailbox of realistic mail, {rounds} rounds");
            output.write(&report.rows);
            for e in &report.errors {
                eprintln!("error: {e}");
            }
            if !report.errors.is_empty() {
                std::process::exit(1);
            }
        }
        Cmd::Corpus {
            seed,
            count,
            start,
            dir,
            mbox,
        } => write_corpus(seed, start, count, dir.as_deref(), mbox.as_deref()),
        Cmd::Compare { runs } => {
            let runs: Vec<(String, Vec<Row>)> = runs
                .iter()
                .map(|spec| {
                    let (label, path) = spec
                        .split_once('=')
                        .unwrap_or_else(|| panic!("{spec}: expected LABEL=FILE"));
                    let rows = stats::read_rows(Path::new(path))
                        .unwrap_or_else(|e| panic!("read {path}: {e}"));
                    (label.to_string(), stats::merge_repeats(rows))
                })
                .collect();
            print!("{}", stats::compare(&runs));
        }
        Cmd::Append {
            addr,
            user,
            password,
            count,
        } => {
            let rate = workload::append_rate(addr, &user, &password, count).await;
            println!("sequential APPEND: {rate:.0} messages/s over {count}");
        }
        Cmd::Mailbox {
            addr,
            user,
            password,
            messages,
            rounds,
            select_and_search_only,
        } => {
            println!("{messages}-message mailbox, {rounds} rounds: p50 / p90");
            for t in workload::mailbox_bench(
                addr,
                &user,
                &password,
                messages,
                rounds,
                !select_and_search_only,
            )
            .await
            {
                println!(
                    "{:>9.3} ms {:>9.3} ms  {}",
                    t.p50.as_secs_f64() * 1e3,
                    t.p90.as_secs_f64() * 1e3,
                    t.command
                );
            }
        }
        Cmd::IdleLatency {
            watch,
            write,
            user,
            password,
            rounds,
        } => {
            let s = workload::idle_latency(watch, write, &user, &password, rounds).await;
            println!(
                "APPEND -> IDLE EXISTS over {} rounds: p50 {:?}, p99 {:?}, max {:?}",
                s.len(),
                workload::quantile(&s, 0.5),
                workload::quantile(&s, 0.99),
                workload::quantile(&s, 1.0)
            );
        }
    }
}

fn write_corpus(seed: u64, start: u64, count: u64, dir: Option<&Path>, mbox: Option<&Path>) {
    use std::io::Write;
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).expect("create --dir");
    }
    let mut mbox =
        mbox.map(|p| std::io::BufWriter::new(std::fs::File::create(p).expect("create --mbox")));
    let mut summary = corpus::Summary::default();
    for index in start..start + count {
        let m = corpus::generate(seed, index);
        if let Some(dir) = dir {
            std::fs::write(dir.join(format!("{index}.eml")), &m.bytes).expect("write .eml");
        }
        if let Some(out) = mbox.as_mut() {
            // mboxrd: LF line ends, and a '>' more before every (already quoted) "From ".
            let text = String::from_utf8_lossy(&m.bytes).replace("\r\n", "\n");
            let mut chunk = String::from("From corpus@example.com Mon Jan  5 08:00:00 2026\n");
            for line in text.lines() {
                if line.trim_start_matches('>').starts_with("From ") {
                    chunk.push('>');
                }
                chunk.push_str(line);
                chunk.push('\n');
            }
            chunk.push('\n');
            out.write_all(chunk.as_bytes()).expect("write mbox");
        }
        summary.add(&m);
    }
    if let Some(mut out) = mbox {
        out.flush().expect("flush mbox");
    }
    println!(
        "{} messages, {:.1} MB, mean {:.1} KB, largest {:.1} KB",
        summary.count,
        summary.bytes as f64 / 1e6,
        summary.bytes as f64 / summary.count.max(1) as f64 / 1e3,
        summary.largest as f64 / 1e3
    );
    for (kind, n, bytes) in &summary.by_kind {
        println!(
            "{:>12}: {:>5} ({:>4.1} %), mean {:>7.1} KB",
            kind.name(),
            n,
            *n as f64 * 100.0 / summary.count.max(1) as f64,
            *bytes as f64 / (*n).max(1) as f64 / 1e3
        );
    }
}
