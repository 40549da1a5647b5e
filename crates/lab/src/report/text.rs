//! The report as plain text for a terminal: the run's context, the tables and the verdict.

use super::model::LabReport;
use super::table::{details_table, interference_table, latency_table};
use super::verdict::verdict;

/// The run's context as (label, value) lines, shared by the text and the HTML.
pub fn context_lines(report: &LabReport) -> Vec<(&'static str, String)> {
    let host = &report.host;
    let quick = if report.quick { ", quick run" } else { "" };
    vec![
        ("started", report.started.clone()),
        (
            "host",
            format!(
                "{}; kernel {}; CPUs online {} ({})",
                host.cpu_model,
                host.kernel,
                host.cpus_online,
                host.cpus_online.len()
            ),
        ),
        ("placement", report.placement.clone()),
        (
            "cells",
            format!(
                "{} ms of closed-loop RTT each{quick}",
                report.cell_duration_ms
            ),
        ),
    ]
}

/// Context, latency table, details and interference tables (if any), verdict and notes.
pub fn render_text(report: &LabReport) -> String {
    let mut out = String::from("nearnative lab: latency sensitivity\n");
    for (label, value) in context_lines(report) {
        out.push_str(&format!("{label:<10} {value}\n"));
    }
    out.push('\n');
    out.push_str(&latency_table(report).to_text());
    for table in [details_table(report), interference_table(report)]
        .into_iter()
        .flatten()
    {
        out.push('\n');
        out.push_str(&table.to_text());
    }
    out.push_str(&format!("\nverdict: {}\n", verdict(report)));
    for note in &report.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}
