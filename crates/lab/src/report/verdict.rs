//! The one-line answer to the experiment's question (does the latency-sensitive configuration
//! keep the deepest layer near native under noise, where pinning alone and the default do
//! not?), and the per-path comparison of latency-sensitive with either of the others that a
//! runner or a test can assert on.

use super::model::{Condition, Config, LabReport, Row};
use super::table::{native_baseline, Baseline};
use super::units::{micros, ratio, ratio_of};
use crate::path::Layer;

/// Latency-sensitive over another configuration on one path and condition, at three
/// percentiles: below 1.0 the latency-sensitive configuration was faster there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LsVs {
    pub path: Layer,
    /// The configuration compared with.
    pub other: Config,
    pub p50_ratio: f64,
    pub p99_9_ratio: f64,
    pub p99_99_ratio: f64,
}

impl LsVs {
    pub fn beats_at_p50(&self) -> bool {
        self.p50_ratio < 1.0
    }

    pub fn beats_at_p99_9(&self) -> bool {
        self.p99_9_ratio < 1.0
    }

    pub fn beats_at_p99_99(&self) -> bool {
        self.p99_99_ratio < 1.0
    }
}

/// For every path (in [`Layer::ALL`] order) measured under `condition` in latency-sensitive
/// and `other` with samples in each, how latency-sensitive compares with `other`.
pub fn ls_vs(report: &LabReport, condition: Condition, other: Config) -> Vec<LsVs> {
    Layer::ALL
        .into_iter()
        .filter_map(|path| {
            let ls = sampled(report.row(path, condition, Config::LatencySensitive))?;
            let them = sampled(report.row(path, condition, other))?;
            Some(LsVs {
                path,
                other,
                p50_ratio: ratio_of(ls.rtt_ns.p50, them.rtt_ns.p50),
                p99_9_ratio: ratio_of(ls.rtt_ns.p99_9, them.rtt_ns.p99_9),
                p99_99_ratio: ratio_of(ls.rtt_ns.p99_99, them.rtt_ns.p99_99),
            })
        })
        .collect()
}

/// [`ls_vs`] against the default configuration.
pub fn ls_vs_default(report: &LabReport, condition: Condition) -> Vec<LsVs> {
    ls_vs(report, condition, Config::Default)
}

fn sampled(row: Option<&Row>) -> Option<&Row> {
    row.filter(|row| row.samples > 0 && row.rtt_ns.p50 > 0)
}

/// One line: the deepest path measured under noise (quiet if nothing was), each
/// configuration's p50 and p99.99 (latency-sensitive, pinned, default) as multiples of
/// native, or in µs when there is no native row.
pub fn verdict(report: &LabReport) -> String {
    let Some((condition, path)) = focus(report) else {
        return "no measurements".to_owned();
    };
    let baseline = native_baseline(report);
    let clause = |config: Config| match report.row(path, condition, config) {
        Some(row) => format!("{} {}", config.name(), figures(row, baseline)),
        None => format!("{} not measured", config.name()),
    };
    let setting = match condition {
        Condition::Noisy => "under noise",
        Condition::Quiet => "quiet (no noisy cells)",
    };
    let clauses: Vec<String> = Config::ALL.into_iter().rev().map(clause).collect();
    let mut line = format!("{setting}, {}: {}", path.name(), clauses.join("; "));
    match baseline {
        None => line.push_str(" (no native row to compare with)"),
        Some(b) if b.fallback => line.push_str(" (native = loopback quiet default)"),
        Some(_) => {}
    }
    line
}

/// The condition and path the verdict speaks of: noisy if any cell was, and the deepest layer
/// measured in it.
fn focus(report: &LabReport) -> Option<(Condition, Layer)> {
    let deepest = |condition: Condition| {
        Layer::ALL
            .into_iter()
            .rev()
            .find(|&path| {
                report
                    .rows
                    .iter()
                    .any(|r| r.path == path && r.condition == condition)
            })
            .map(|path| (condition, path))
    };
    deepest(Condition::Noisy).or_else(|| deepest(Condition::Quiet))
}

fn figures(row: &Row, baseline: Option<Baseline>) -> String {
    let rtt = &row.rtt_ns;
    match baseline {
        Some(b) => format!(
            "p50 {}, p99.99 {} of native",
            ratio(ratio_of(rtt.p50, b.row.rtt_ns.p50)),
            ratio(ratio_of(rtt.p99_99, b.row.rtt_ns.p99_99))
        ),
        None => format!(
            "p50 {} µs, p99.99 {} µs",
            micros(rtt.p50),
            micros(rtt.p99_99)
        ),
    }
}
