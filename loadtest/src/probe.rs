//! What the backends did for the IMAP commands: Redis `INFO commandstats` and the S3 request
//! counts a Yubin front-end exports on its `/metrics` (`yubin_s3_request_duration_seconds`, a
//! histogram by `operation`). A snapshot before and after a command gives its share, as long
//! as nothing else runs meanwhile.

use crate::stats::Row;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// A Redis server to read `INFO commandstats` from.
    pub redis: Option<SocketAddr>,
    /// A Yubin HTTP port whose `/metrics` counts S3 requests.
    pub metrics: Option<SocketAddr>,
}

/// Counters at one moment: Redis calls per command and CPU seconds, S3 requests per
/// operation.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    redis: BTreeMap<String, u64>,
    redis_cpu: Option<f64>,
    s3: BTreeMap<String, f64>,
}

/// What happened between two snapshots, summed over one or more intervals.
#[derive(Debug, Clone, Default)]
pub struct Delta {
    pub redis: BTreeMap<String, u64>,
    /// Redis's CPU time (user + system), seconds.
    pub redis_cpu: f64,
    pub s3: BTreeMap<String, f64>,
}

impl Probe {
    pub fn is_empty(&self) -> bool {
        self.redis.is_none() && self.metrics.is_none()
    }

    /// Reads the counters; a probe that cannot be read leaves its part empty (the benchmark
    /// goes on without it and says so in the rows it prints).
    pub async fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot::default();
        if let Some(addr) = self.redis {
            if let Ok(info) = redis_info(addr, "commandstats").await {
                snap.redis = parse_commandstats(&info);
            }
            if let Ok(info) = redis_info(addr, "cpu").await {
                snap.redis_cpu = parse_cpu(&info);
            }
        }
        if let Some(addr) = self.metrics
            && let Ok(text) = http_get(addr, "/metrics").await
        {
            snap.s3 = parse_s3_counts(&text);
        }
        snap
    }
}

impl Delta {
    pub fn add(&mut self, before: &Snapshot, after: &Snapshot) {
        for (cmd, calls) in &after.redis {
            // The probe's own INFO is not the workload's.
            if cmd == "info" {
                continue;
            }
            let d = calls.saturating_sub(before.redis.get(cmd).copied().unwrap_or(0));
            if d > 0 {
                *self.redis.entry(cmd.clone()).or_default() += d;
            }
        }
        if let (Some(b), Some(a)) = (before.redis_cpu, after.redis_cpu) {
            self.redis_cpu += (a - b).max(0.0);
        }
        for (op, n) in &after.s3 {
            let d = n - before.s3.get(op).copied().unwrap_or(0.0);
            if d > 0.0 {
                *self.s3.entry(op.clone()).or_default() += d;
            }
        }
    }

    /// Rows per `per` IMAP commands: Redis commands in all (commandstats also counts those a
    /// Lua script runs), the three most frequent, and S3 requests by operation.
    pub fn rows(&self, section: &str, name: &str, per: f64, unit: &str) -> Vec<Row> {
        let per = per.max(1.0);
        let mut rows = Vec::new();
        let total: u64 = self.redis.values().sum();
        rows.push(Row::value(
            section,
            &format!("{name}: Redis CPU ms"),
            self.redis_cpu * 1e3 / per,
            unit,
        ));
        rows.push(Row::value(
            section,
            &format!("{name}: Redis commands"),
            total as f64 / per,
            unit,
        ));
        let mut busiest: Vec<(&String, &u64)> = self.redis.iter().collect();
        busiest.sort_by(|a, b| b.1.cmp(a.1));
        for (cmd, calls) in busiest.into_iter().take(3) {
            rows.push(Row::value(
                section,
                &format!("{name}: Redis {cmd}"),
                *calls as f64 / per,
                unit,
            ));
        }
        for (op, n) in &self.s3 {
            rows.push(Row::value(
                section,
                &format!("{name}: S3 {op}"),
                n / per,
                unit,
            ));
        }
        rows
    }
}

async fn redis_info(addr: SocketAddr, section: &str) -> std::io::Result<String> {
    let stream = TcpStream::connect(addr).await?;
    let mut io = BufReader::new(stream);
    io.get_mut()
        .write_all(format!("INFO {section}\r\n").as_bytes())
        .await?;
    let mut head = String::new();
    io.read_line(&mut head).await?;
    let len: usize = head
        .trim_end()
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("unexpected reply {head:?}")))?;
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// `cmdstat_<name>:calls=N,...` lines to name → calls.
fn parse_commandstats(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_string(), calls.parse().ok()?))
        })
        .collect()
}

/// `used_cpu_sys` + `used_cpu_user` of `INFO cpu`, seconds.
fn parse_cpu(info: &str) -> Option<f64> {
    let field = |name: &str| {
        info.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(':')?
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    Some(field("used_cpu_sys")? + field("used_cpu_user")?)
}

async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// `yubin_s3_request_duration_seconds_count{operation="GetObject"} 12` to operation → count.
fn parse_s3_counts(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("yubin_s3_request_duration_seconds_count{")?;
            let (labels, value) = rest.split_once("} ")?;
            let op = labels.split("operation=\"").nth(1)?.split('"').next()?;
            Some((op.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_and_differenced() {
        let before = Snapshot {
            redis_cpu: parse_cpu("# CPU\r\nused_cpu_sys:1.5\r\nused_cpu_user:2.5\r\n"),
            redis: parse_commandstats(
                "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=50,usec_per_call=5.00\r\n\
                 cmdstat_info:calls=1,usec=9\r\n",
            ),
            s3: parse_s3_counts(
                "# TYPE x histogram\nyubin_s3_request_duration_seconds_count{operation=\"GetObject\"} 4\n",
            ),
        };
        let after = Snapshot {
            redis_cpu: parse_cpu("used_cpu_sys:1.75\r\nused_cpu_user:2.75\r\n"),
            redis: parse_commandstats(
                "cmdstat_evalsha:calls=14,usec=70\r\ncmdstat_hget:calls=2,usec=1\r\n\
                 cmdstat_info:calls=2,usec=9\r\n",
            ),
            s3: parse_s3_counts(
                "yubin_s3_request_duration_seconds_count{operation=\"GetObject\"} 104\n\
                 yubin_s3_request_duration_seconds_count{operation=\"PutObject\"} 1\n",
            ),
        };
        let mut d = Delta::default();
        d.add(&before, &after);
        assert_eq!(d.redis_cpu, 0.5);
        assert_eq!(d.redis.get("evalsha"), Some(&4));
        assert_eq!(d.redis.get("hget"), Some(&2));
        assert!(!d.redis.contains_key("info"));
        assert_eq!(d.s3.get("GetObject"), Some(&100.0));
        let rows = d.rows("mailbox", "FETCH", 2.0, "per command");
        assert!(rows.contains(&Row::value(
            "mailbox",
            "FETCH: Redis commands",
            3.0,
            "per command"
        )));
        assert!(rows.contains(&Row::value(
            "mailbox",
            "FETCH: S3 GetObject",
            50.0,
            "per command"
        )));
    }
}
