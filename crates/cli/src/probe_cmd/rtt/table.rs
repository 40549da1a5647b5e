//! Human tables for `probe rtt`: values in µs with ns precision.

use std::fmt::Write as _;

use nearnative_probe::rtt::{DemoRow, Mode, RttReport, ServerStats};
use nearnative_probe::stats::Summary;

const COLUMNS: [&str; 10] = [
    "min", "mean", "stddev", "p50", "p90", "p99", "p99.9", "p99.99", "p99.999", "max",
];

pub fn client_report(report: &RttReport) -> String {
    let mut out = String::new();
    let mode = match report.mode {
        Mode::ClosedLoop => "closed-loop ping-pong".to_owned(),
        Mode::FixedRate => format!(
            "fixed rate {}/s (latency from intended send time)",
            report.rate.target.unwrap_or(0)
        ),
    };
    let _ = writeln!(
        out,
        "probe rtt {}  {} {}  wait {}  payload {} B  cpus {}",
        report.target,
        report.transport.name(),
        mode,
        report.wait,
        report.payload,
        report.cpus.as_deref().unwrap_or("any"),
    );
    let _ = writeln!(out, "{:<12}{}", "µs", header(&COLUMNS));
    let _ = writeln!(out, "{:<12}{}", "rtt", summary_row(&report.rtt_ns));
    if let Some(service) = &report.service_ns {
        let _ = writeln!(out, "{:<12}{}", "service", summary_row(service));
    }
    let target = report
        .rate
        .target
        .map_or(String::new(), |t| format!(" of {t}/s"));
    let _ = writeln!(
        out,
        "count {}  lost {}  sent {}  late {}  stale {}  rate {:.0}/s{}  over {:.2} s  (clock read {:.0} ns)",
        report.count,
        report.lost,
        report.sent,
        report.late,
        report.stale,
        report.rate.achieved,
        target,
        report.elapsed_ns as f64 / 1e9,
        report.clock_read_ns,
    );
    out
}

pub fn server_stats(stats: &ServerStats) -> String {
    let m = &stats.malformed;
    format!(
        "received {}  answered {}  malformed {} (foreign {}, truncated {}, oversized {}, invalid {})  \
         send errors {}  connections accepted {} refused {} stalled {}\n",
        stats.received,
        stats.answered,
        m.total(),
        m.foreign,
        m.truncated,
        m.oversized,
        m.invalid,
        stats.send_errors,
        stats.accepted,
        stats.refused,
        stats.stalled,
    )
}

pub fn demo_table(rows: &[DemoRow]) -> String {
    let mut out = String::new();
    let first = rows.first();
    let _ =
        writeln!(
        out,
        "probe rtt demo: 127.0.0.1, {} B messages, client on CPU {}, server on CPU {}; RTT in µs",
        first.map_or(0, |r| r.report.payload),
        first.and_then(|r| r.report.cpus.as_deref()).unwrap_or("any"),
        first.and_then(|r| r.server_cpus.as_deref()).unwrap_or("any"),
    );
    let wide = [
        "min", "p50", "p90", "p99", "p99.9", "p99.99", "p99.999", "max",
    ];
    let _ = writeln!(
        out,
        "{:<32}{}{:>10}{:>7}",
        "scenario",
        header(&wide),
        "count",
        "lost"
    );
    for row in rows {
        let s = &row.report.rtt_ns;
        let values = [
            s.min, s.p50, s.p90, s.p99, s.p99_9, s.p99_99, s.p99_999, s.max,
        ];
        let cells: String = values.iter().map(|&ns| cell(ns as f64)).collect();
        let _ = writeln!(
            out,
            "{:<32}{}{:>10}{:>7}",
            row.scenario, cells, row.report.count, row.report.lost
        );
    }
    out
}

fn header(columns: &[&str]) -> String {
    columns.iter().map(|c| format!("{c:>10}")).collect()
}

fn summary_row(s: &Summary) -> String {
    let values = [
        s.min as f64,
        s.mean,
        s.stddev,
        s.p50 as f64,
        s.p90 as f64,
        s.p99 as f64,
        s.p99_9 as f64,
        s.p99_99 as f64,
        s.p99_999 as f64,
        s.max as f64,
    ];
    values.iter().map(|&ns| cell(ns)).collect()
}

/// One value in µs, 3 decimals (ns resolution), right-aligned in 10 columns.
fn cell(ns: f64) -> String {
    format!("{:>10.3}", ns / 1000.0)
}
