//! The whitepaper-style tables: RTT percentiles per cell with the ratio to native, and the
//! fixed-rate and jitter runs beside them. Built as cells first ([`Table`]) so the text and
//! the HTML show the very same strings.

use nearnative_verify::Interference;

use super::model::{Condition, Config, LabReport, Row};
use super::units::{micros, ratio, ratio_of};
use crate::path::Layer;

/// The row every ratio is taken against. `fallback` is set when the preferred native row
/// (loopback, quiet, latency-sensitive) is absent and loopback, quiet, default stands in.
#[derive(Debug, Clone, Copy)]
pub struct Baseline<'a> {
    pub row: &'a Row,
    pub fallback: bool,
}

/// A table of display strings. Invariant: every row has `header.len()` cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// One line saying what the numbers are.
    pub caption: String,
    pub header: Vec<String>,
    /// The leading columns that are labels (left-aligned); the rest are numbers.
    pub label_columns: usize,
    /// The last column is words too (left-aligned), as a list of sources is.
    pub label_last: bool,
    pub rows: Vec<Vec<String>>,
    /// The index in `rows` of the baseline row, to set it apart.
    pub highlight: Option<usize>,
}

const LATENCY_HEADER: [&str; 11] = [
    "path",
    "condition",
    "config",
    "p50",
    "p99",
    "p99.9",
    "p99.99",
    "max",
    "jitter",
    "×native p50",
    "×native p99.99",
];

const DETAILS_HEADER: [&str; 11] = [
    "path",
    "condition",
    "config",
    "target/s",
    "sent/s",
    "fixed p50",
    "fixed p99.99",
    "jitter cpu",
    "interrupts/s",
    "stolen µs/s",
    "largest gap",
];

/// The native baseline of `report`, if it has a loopback quiet row.
pub fn native_baseline(report: &LabReport) -> Option<Baseline<'_>> {
    let native = |config| report.row(Layer::Loopback, Condition::Quiet, config);
    match native(Config::LatencySensitive) {
        Some(row) => Some(Baseline {
            row,
            fallback: false,
        }),
        None => native(Config::Default).map(|row| Baseline {
            row,
            fallback: true,
        }),
    }
}

impl Baseline<'_> {
    /// What the ratios are against, in words.
    pub fn describe(&self) -> &'static str {
        if self.fallback {
            "native = loopback quiet default (no loopback quiet latency-sensitive row)"
        } else {
            "native = loopback quiet latency-sensitive"
        }
    }
}

/// The rows in reading order: path (loopback first), then quiet before noisy, then default,
/// pinned, latency-sensitive; the report's order among duplicates.
pub fn sorted_rows(report: &LabReport) -> Vec<&Row> {
    let mut rows: Vec<&Row> = report.rows.iter().collect();
    rows.sort_by_key(|row| cell_order(row));
    rows
}

fn cell_order(row: &Row) -> (usize, usize, usize) {
    let index = |found: Option<usize>| found.unwrap_or(usize::MAX);
    (
        index(Layer::ALL.iter().position(|&l| l == row.path)),
        index(Condition::ALL.iter().position(|&c| c == row.condition)),
        index(Config::ALL.iter().position(|&c| c == row.config)),
    )
}

/// RTT percentiles in µs, jitter (p99.99 − p50) in µs, and p50 and p99.99 as multiples of the
/// native baseline's (`-` without one).
pub fn latency_table(report: &LabReport) -> Table {
    let baseline = native_baseline(report);
    let rows = sorted_rows(report);
    let highlight = baseline.and_then(|b| rows.iter().position(|&row| std::ptr::eq(row, b.row)));
    Table {
        caption: latency_caption(baseline),
        header: LATENCY_HEADER.map(str::to_owned).to_vec(),
        label_columns: 3,
        label_last: false,
        rows: rows
            .iter()
            .map(|row| latency_cells(row, baseline))
            .collect(),
        highlight,
    }
}

fn latency_caption(baseline: Option<Baseline>) -> String {
    let against = baseline.map_or("no native (loopback quiet) row, so no ratios", |b| {
        b.describe()
    });
    format!("closed-loop RTT in µs; jitter = p99.99 − p50; {against}")
}

fn latency_cells(row: &Row, baseline: Option<Baseline>) -> Vec<String> {
    let rtt = &row.rtt_ns;
    let against = |ns: u64, native: fn(&Row) -> u64| match baseline {
        Some(b) => ratio(ratio_of(ns, native(b.row))),
        None => "-".to_owned(),
    };
    let mut cells = labels(row);
    cells.extend(
        [
            rtt.p50,
            rtt.p99,
            rtt.p99_9,
            rtt.p99_99,
            rtt.max,
            rtt.jitter_ns(),
        ]
        .map(micros),
    );
    cells.push(against(rtt.p50, |b| b.rtt_ns.p50));
    cells.push(against(rtt.p99_99, |b| b.rtt_ns.p99_99));
    cells
}

fn labels(row: &Row) -> Vec<String> {
    vec![
        row.path.name().to_owned(),
        row.condition.name().to_owned(),
        row.config.name().to_owned(),
    ]
}

/// The fixed-rate and jitter runs of the cells that have either; `None` if no cell has.
pub fn details_table(report: &LabReport) -> Option<Table> {
    let rows: Vec<Vec<String>> = sorted_rows(report)
        .into_iter()
        .filter(|row| row.fixed_rate.is_some() || row.jitter.is_some())
        .map(details_cells)
        .collect();
    (!rows.is_empty()).then(|| Table {
        caption: "fixed-rate RTT (from intended send time) in µs; spin-loop jitter on the \
                  exclusive CPU: time stolen per second and largest gap in µs"
            .to_owned(),
        header: DETAILS_HEADER.map(str::to_owned).to_vec(),
        label_columns: 3,
        label_last: false,
        rows,
        highlight: None,
    })
}

fn details_cells(row: &Row) -> Vec<String> {
    let dash = || "-".to_owned();
    let mut cells = labels(row);
    match &row.fixed_rate {
        Some(fixed) => cells.extend([
            fixed.target_rate.to_string(),
            format!("{:.0}", fixed.achieved_rate),
            micros(fixed.rtt_ns.p50),
            micros(fixed.rtt_ns.p99_99),
        ]),
        None => cells.extend(std::iter::repeat_with(dash).take(4)),
    }
    match &row.jitter {
        Some(jitter) => cells.extend([
            jitter.cpu.to_string(),
            format!("{:.1}", jitter.interruptions_per_sec),
            format!("{:.1}", jitter.stolen_share * 1e6),
            micros(jitter.max_gap_ns),
        ]),
        None => cells.extend(std::iter::repeat_with(dash).take(4)),
    }
    cells
}

const INTERFERENCE_HEADER: [&str; 9] = [
    "path",
    "condition",
    "config",
    "stolen µs/s",
    "threads µs/s",
    "interrupts µs/s",
    "unexplained µs/s",
    "steal µs/s",
    "top sources (share of stolen)",
];
/// Sources named per cell in the interference table.
const TOP_SOURCES: usize = 3;

/// What took the jitter CPU during each cell's jitter run, for the cells that recorded it;
/// `None` if no cell did.
pub fn interference_table(report: &LabReport) -> Option<Table> {
    let rows: Vec<Vec<String>> = sorted_rows(report)
        .into_iter()
        .filter_map(|row| Some(interference_cells(row, row.interference.as_ref()?)))
        .collect();
    (!rows.is_empty()).then(|| Table {
        caption: "what took the jitter CPU during the jitter run, per second of the run: \
                  foreign threads (measured), interrupts (counted, ~ an estimated cost each), \
                  the unexplained rest (taken below the guest), the hypervisor's own steal \
                  figure beside it"
            .to_owned(),
        header: INTERFERENCE_HEADER.map(str::to_owned).to_vec(),
        label_columns: 3,
        label_last: true,
        rows,
        highlight: None,
    })
}

fn interference_cells(row: &Row, interference: &Interference) -> Vec<String> {
    let per_second = |ns: Option<u64>| match (ns, interference.window_ns) {
        (Some(ns), window) if window > 0 => format!("{:.0}", ns as f64 * 1e6 / window as f64),
        _ => "-".to_owned(),
    };
    let threads: u64 = interference.threads.iter().map(|t| t.ns).sum();
    let interrupts = interference.explained_ns().saturating_sub(threads);
    let mut cells = labels(row);
    cells.extend([
        per_second(interference.stolen_ns),
        per_second(Some(threads)),
        per_second(Some(interrupts)),
        per_second(interference.unexplained_ns),
        per_second(interference.steal_ns),
        interference.top(TOP_SOURCES).join(", "),
    ]);
    cells
}

impl Table {
    /// The caption, then the table with aligned columns: labels left, numbers right.
    pub fn to_text(&self) -> String {
        let widths = self.widths();
        let mut out = format!("{}\n", self.caption);
        out.push_str(&self.text_line(&self.header, &widths));
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        out.push_str(&self.text_line(&rule, &widths));
        for row in &self.rows {
            out.push_str(&self.text_line(row, &widths));
        }
        out
    }

    /// Whether `column` holds words (left-aligned) rather than numbers.
    pub fn is_label(&self, column: usize) -> bool {
        column < self.label_columns || (self.label_last && column + 1 == self.header.len())
    }

    fn widths(&self) -> Vec<usize> {
        (0..self.header.len())
            .map(|column| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .filter_map(|cells| cells.get(column))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    fn text_line(&self, cells: &[String], widths: &[usize]) -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(column, (cell, &width))| {
                if self.is_label(column) {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_aligns_multibyte_headers() {
        let table = Table {
            caption: "c".to_owned(),
            header: vec!["a".to_owned(), "×b".to_owned()],
            label_columns: 1,
            label_last: false,
            rows: vec![vec!["long".to_owned(), "1".to_owned()]],
            highlight: None,
        };
        assert_eq!(table.to_text(), "c\na     ×b\n----  --\nlong   1\n");
    }
}
