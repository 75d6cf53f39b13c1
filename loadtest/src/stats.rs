//! Latency summaries per command kind, the result files one run per server writes, and the
//! comparison of those files (one table per server, then ratios against the first).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// Samples per command kind, in the order kinds were first recorded.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    kinds: Vec<(String, Vec<Duration>)>,
}

impl Latencies {
    pub fn record(&mut self, kind: &str, took: Duration) {
        match self.kinds.iter_mut().find(|(k, _)| k == kind) {
            Some((_, samples)) => samples.push(took),
            None => self.kinds.push((kind.to_string(), vec![took])),
        }
    }

    pub fn merge(&mut self, other: Latencies) {
        for (kind, samples) in other.kinds {
            match self.kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, mine)) => mine.extend(samples),
                None => self.kinds.push((kind, samples)),
            }
        }
    }

    pub fn count(&self) -> usize {
        self.kinds.iter().map(|(_, s)| s.len()).sum()
    }

    /// One latency row per kind, under `section`.
    pub fn rows(&self, section: &str) -> Vec<Row> {
        self.kinds
            .iter()
            .map(|(kind, samples)| Row::latency(section, kind, samples))
            .collect()
    }
}

/// One line of a result file.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    Latency {
        section: String,
        name: String,
        count: usize,
        mean_ms: f64,
        p50_ms: f64,
        p99_ms: f64,
    },
    Value {
        section: String,
        name: String,
        value: f64,
        unit: String,
    },
}

impl Row {
    pub fn latency(section: &str, name: &str, samples: &[Duration]) -> Row {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mean = if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().map(|d| ms(*d)).sum::<f64>() / sorted.len() as f64
        };
        Row::Latency {
            section: section.to_string(),
            name: name.to_string(),
            count: sorted.len(),
            mean_ms: mean,
            p50_ms: ms(crate::workload::quantile(&sorted, 0.5)),
            p99_ms: ms(crate::workload::quantile(&sorted, 0.99)),
        }
    }

    pub fn value(section: &str, name: &str, value: f64, unit: &str) -> Row {
        Row::Value {
            section: section.to_string(),
            name: name.to_string(),
            value,
            unit: unit.to_string(),
        }
    }

    fn key(&self) -> (&str, &str) {
        match self {
            Row::Latency { section, name, .. } | Row::Value { section, name, .. } => {
                (section, name)
            }
        }
    }

    fn tsv(&self) -> String {
        match self {
            Row::Latency {
                section,
                name,
                count,
                mean_ms,
                p50_ms,
                p99_ms,
            } => format!("latency\t{section}\t{name}\t{count}\t{mean_ms}\t{p50_ms}\t{p99_ms}"),
            Row::Value {
                section,
                name,
                value,
                unit,
            } => format!("value\t{section}\t{name}\t{value}\t{unit}"),
        }
    }

    fn from_tsv(line: &str) -> Option<Row> {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["latency", section, name, count, mean, p50, p99] => Some(Row::Latency {
                section: section.to_string(),
                name: name.to_string(),
                count: count.parse().ok()?,
                mean_ms: mean.parse().ok()?,
                p50_ms: p50.parse().ok()?,
                p99_ms: p99.parse().ok()?,
            }),
            ["value", section, name, value, unit] => {
                Some(Row::value(section, name, value.parse().ok()?, unit))
            }
            _ => None,
        }
    }
}

/// Appends rows to a result file (several runs against one server add to the same file).
pub fn append_rows(path: &Path, rows: &[Row]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for row in rows {
        writeln!(f, "{}", row.tsv())?;
    }
    Ok(())
}

pub fn read_rows(path: &Path) -> std::io::Result<Vec<Row>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.lines().filter_map(Row::from_tsv).collect())
}

/// One row per measurement from a file that holds several repetitions of it (the script runs
/// the mixed workload in turns, one server after the other, so that load from outside falls
/// on all of them alike): latencies keep the total count, the count-weighted mean and the
/// median of the repetitions' p50 and p99; rates are averaged, counts (unit-less values)
/// summed. Order is that of first appearance.
pub fn merge_repeats(rows: Vec<Row>) -> Vec<Row> {
    let mut groups: Vec<Vec<Row>> = Vec::new();
    for row in rows {
        match groups.iter_mut().find(|g| g[0].key() == row.key()) {
            Some(g) => g.push(row),
            None => groups.push(vec![row]),
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    groups
        .into_iter()
        .map(|g| {
            if g.len() == 1 {
                return g.into_iter().next().expect("one row");
            }
            match &g[0] {
                Row::Latency { section, name, .. } => {
                    let mut count = 0;
                    let mut total_ms = 0.0;
                    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
                    for r in &g {
                        if let Row::Latency {
                            count: c,
                            mean_ms,
                            p50_ms,
                            p99_ms,
                            ..
                        } = r
                        {
                            count += c;
                            total_ms += mean_ms * *c as f64;
                            p50s.push(*p50_ms);
                            p99s.push(*p99_ms);
                        }
                    }
                    Row::Latency {
                        section: section.clone(),
                        name: name.clone(),
                        count,
                        mean_ms: total_ms / count.max(1) as f64,
                        p50_ms: median(p50s),
                        p99_ms: median(p99s),
                    }
                }
                Row::Value {
                    section,
                    name,
                    unit,
                    ..
                } => {
                    let values: Vec<f64> = g
                        .iter()
                        .filter_map(|r| match r {
                            Row::Value { value, .. } => Some(*value),
                            Row::Latency { .. } => None,
                        })
                        .collect();
                    let sum: f64 = values.iter().sum();
                    let value = if unit.is_empty() {
                        sum
                    } else {
                        sum / values.len() as f64
                    };
                    Row::value(section, name, value, unit)
                }
            }
        })
        .collect()
}

/// The rows as Markdown tables, one per section.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    let mut sections: Vec<&str> = Vec::new();
    for r in rows {
        if !sections.contains(&r.key().0) {
            sections.push(r.key().0);
        }
    }
    for section in sections {
        let _ = writeln!(out, "\n{section}\n");
        let _ = writeln!(out, "| command | count | mean ms | p50 ms | p99 ms |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        for r in rows.iter().filter(|r| r.key().0 == section) {
            match r {
                Row::Latency {
                    name,
                    count,
                    mean_ms,
                    p50_ms,
                    p99_ms,
                    ..
                } => {
                    let _ = writeln!(
                        out,
                        "| {name} | {count} | {mean_ms:.2} | {p50_ms:.2} | {p99_ms:.2} |"
                    );
                }
                Row::Value {
                    name, value, unit, ..
                } => {
                    let _ = writeln!(out, "| {name} | {} {unit} | | | |", number(*value));
                }
            }
        }
    }
    out
}

/// Up to three significant decimals, without trailing zeros.
fn number(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e12 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// Every server's table, then one table of the measurements the first server (the baseline)
/// has, side by side with the ratio of each server to it: for latencies p50 / p99 and the p50
/// ratio, for rates the rate and its ratio; counts (failures, errors) without a ratio.
pub fn compare(runs: &[(String, Vec<Row>)]) -> String {
    let mut out = String::new();
    for (label, rows) in runs {
        let _ = writeln!(out, "\n## {label}");
        out.push_str(&render(rows));
    }
    let Some((base_label, _)) = runs.first() else {
        return out;
    };
    let _ = writeln!(
        out,
        "\n## side by side (ratio = server / {base_label}; for latencies lower is better)\n"
    );
    let mut head = "| measurement |".to_string();
    let mut rule = "|---|".to_string();
    for (i, (label, _)) in runs.iter().enumerate() {
        head.push_str(&format!(" {label} |"));
        rule.push_str("---:|");
        if i > 0 {
            head.push_str(&format!(" {label} / {base_label} |"));
            rule.push_str("---:|");
        }
    }
    let _ = writeln!(out, "{head}\n{rule}");
    let indexed: Vec<BTreeMap<(String, String), &Row>> = runs
        .iter()
        .map(|(_, rows)| {
            rows.iter()
                .map(|r| ((r.key().0.to_string(), r.key().1.to_string()), r))
                .collect()
        })
        .collect();
    let keys: Vec<(String, String)> = runs[0]
        .1
        .iter()
        .map(|r| (r.key().0.to_string(), r.key().1.to_string()))
        .collect();
    for key in keys {
        let mut line = format!("| {}: {} |", key.0, key.1);
        let base_row = indexed[0].get(&key).copied();
        for (i, rows) in indexed.iter().enumerate() {
            let row = rows.get(&key).copied();
            line.push_str(&format!(" {} |", cell(row)));
            if i > 0 {
                line.push_str(&format!(" {} |", ratio(row, base_row)));
            }
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

fn cell(row: Option<&Row>) -> String {
    match row {
        None => "—".to_string(),
        Some(Row::Latency { p50_ms, p99_ms, .. }) => format!("{p50_ms:.2} / {p99_ms:.2} ms"),
        Some(Row::Value { value, unit, .. }) => format!("{} {unit}", number(*value)),
    }
}

fn ratio(row: Option<&Row>, base: Option<&Row>) -> String {
    let pick = |r: &Row| match r {
        Row::Latency { p50_ms, .. } => *p50_ms,
        Row::Value { value, .. } => *value,
    };
    let counted = |r: &Row| matches!(r, Row::Value { unit, .. } if unit.is_empty());
    match (row, base) {
        (Some(r), Some(b)) if pick(b) != 0.0 && !counted(b) => {
            format!("{:.2}×", pick(r) / pick(b))
        }
        _ => "—".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_a_file_and_compare_with_ratios() {
        let dir = std::env::temp_dir().join(format!("yubin-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.tsv");
        let _ = std::fs::remove_file(&path);
        let ms = Duration::from_millis;
        let rows = vec![
            Row::latency("mailbox", "SELECT", &[ms(2), ms(4), ms(3)]),
            Row::value("mixed", "sessions", 120.0, "/s"),
        ];
        append_rows(&path, &rows).unwrap();
        let back = read_rows(&path).unwrap();
        assert_eq!(back, rows);
        let faster = vec![
            Row::latency("mailbox", "SELECT", &[ms(1), ms(1), ms(1)]),
            Row::value("mixed", "sessions", 240.0, "/s"),
        ];
        let text = compare(&[("base".into(), rows), ("other".into(), faster)]);
        assert!(
            text.contains("| mailbox: SELECT | 3.00 / 4.00 ms | 1.00 / 1.00 ms | 0.33× |"),
            "{text}"
        );
        assert!(
            text.contains("| mixed: sessions | 120 /s | 240 /s | 2.00× |"),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn repetitions_merge_into_one_row() {
        let ms = Duration::from_millis;
        let rows = vec![
            Row::latency("mixed", "APPEND", &[ms(10), ms(10)]),
            Row::value("mixed", "sessions", 100.0, "/s"),
            Row::value("mixed", "state errors", 1.0, ""),
            Row::latency("mixed", "APPEND", &[ms(30), ms(30)]),
            Row::value("mixed", "sessions", 200.0, "/s"),
            Row::value("mixed", "state errors", 2.0, ""),
            Row::latency("mixed", "APPEND", &[ms(20), ms(20), ms(20), ms(20)]),
            Row::value("mixed", "sessions", 300.0, "/s"),
            Row::value("mixed", "state errors", 0.0, ""),
        ];
        let merged = merge_repeats(rows);
        assert_eq!(
            merged,
            vec![
                Row::Latency {
                    section: "mixed".into(),
                    name: "APPEND".into(),
                    count: 8,
                    mean_ms: 20.0,
                    p50_ms: 20.0,
                    p99_ms: 20.0,
                },
                Row::value("mixed", "sessions", 200.0, "/s"),
                Row::value("mixed", "state errors", 3.0, ""),
            ]
        );
    }
}
