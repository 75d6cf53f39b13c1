//! `yubin-loadtest`: benchmarks against a running Yubin (or any IMAP server with the same users).

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::time::Duration;
use yubin_loadtest::workload;

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
