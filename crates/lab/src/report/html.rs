//! The report as ONE self-contained HTML page: inline CSS and inline SVG only, nothing fetched,
//! so it can be mailed, archived or opened offline. Every string from the report is escaped.

use std::fmt::Write as _;

use super::escape::escape;
use super::model::{Condition, Config, LabReport, Row};
use super::plot::{spectrum_plot, Axes, Curve};
use super::table::{
    details_table, interference_table, latency_table, native_baseline, Baseline, Table,
};
use super::text::context_lines;
use super::verdict::verdict;
use crate::path::Layer;

const TITLE: &str = "nearnative lab: latency sensitivity";
const DEFAULT_COLOUR: &str = "#e8590c";
const PINNED_COLOUR: &str = "#7b2cbf";
const LS_COLOUR: &str = "#1864ab";
const NATIVE_COLOUR: &str = "#555555";

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1a1a1a;
  background: #f7f7f5; margin: 24px auto; max-width: 1160px; padding: 0 16px; }
h1 { font-size: 26px; margin: 0 0 10px; }
h2 { font-size: 19px; margin: 28px 0 6px; }
dl.context { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px;
  margin: 0 0 18px; font-size: 14px; }
dl.context dt { color: #5c5c5c; } dl.context dd { margin: 0; }
p.verdict { background: #e7f0fb; border-left: 5px solid #1864ab; padding: 10px 14px;
  font-size: 16px; margin: 0 0 18px; }
table { border-collapse: collapse; font-size: 13.5px; font-variant-numeric: tabular-nums;
  background: #fff; margin: 0 0 8px; }
caption { caption-side: top; text-align: left; color: #5c5c5c; padding: 0 0 6px; }
th, td { padding: 5px 11px; border-bottom: 1px solid #e2e2e2; white-space: nowrap;
  text-align: right; }
th { background: #ecece8; font-weight: 600; }
th.label, td.label { text-align: left; }
td.label:last-child { white-space: normal; min-width: 320px; }
tr.native td { background: #fff4d6; }
ul.notes { font-size: 14px; color: #5c5c5c; }
p.hint { font-size: 14px; color: #5c5c5c; margin: 0 0 10px; }
div.plots { display: grid; grid-template-columns: repeat(2, 562px); gap: 14px; }
div.plots svg { display: block; border: 1px solid #dcdcd6; }
";

/// The whole page.
pub fn html(report: &LabReport) -> String {
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n",
        title = escape(TITLE)
    );
    page.push_str(&context_html(report));
    let _ = writeln!(
        page,
        "<p class=\"verdict\"><strong>Verdict:</strong> {}</p>",
        escape(&verdict(report))
    );
    page.push_str(&table_html(&latency_table(report)));
    // The plots come right after the table they draw, before the longer detail tables.
    page.push_str(&plots_html(report));
    if let Some(details) = details_table(report) {
        page.push_str(&table_html(&details));
    }
    if let Some(interference) = interference_table(report) {
        page.push_str(&table_html(&interference));
    }
    page.push_str(&notes_html(&report.notes));
    page.push_str("</body>\n</html>\n");
    page
}

fn context_html(report: &LabReport) -> String {
    let mut out = String::from("<dl class=\"context\">\n");
    for (label, value) in context_lines(report) {
        let _ = writeln!(out, "<dt>{label}</dt><dd>{}</dd>", escape(&value));
    }
    out.push_str("</dl>\n");
    out
}

fn table_html(table: &Table) -> String {
    let class = |column: usize| {
        if table.is_label(column) {
            " class=\"label\""
        } else {
            ""
        }
    };
    let mut out = format!(
        "<table>\n<caption>{}</caption>\n<tr>",
        escape(&table.caption)
    );
    for (column, name) in table.header.iter().enumerate() {
        let _ = write!(out, "<th{}>{}</th>", class(column), escape(name));
    }
    out.push_str("</tr>\n");
    for (index, row) in table.rows.iter().enumerate() {
        let native = table.highlight == Some(index);
        out.push_str(if native {
            "<tr class=\"native\">"
        } else {
            "<tr>"
        });
        for (column, cell) in row.iter().enumerate() {
            let _ = write!(out, "<td{}>{}</td>", class(column), escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

fn notes_html(notes: &[String]) -> String {
    if notes.is_empty() {
        return String::new();
    }
    let items: String = notes
        .iter()
        .map(|note| format!("<li>{}</li>\n", escape(note)))
        .collect();
    format!("<ul class=\"notes\">\n{items}</ul>\n")
}

/// One plot per path and condition measured, in reading order, on shared axes.
fn plots_html(report: &LabReport) -> String {
    let baseline = native_baseline(report);
    let axes = Axes::fitting(report.rows.iter().map(|row| curve(row, false)));
    let mut out = format!(
        "<h2>RTT by percentile</h2>\n<p class=\"hint\">{}</p>\n",
        plot_hint(baseline)
    );
    out.push_str("<div class=\"plots\">\n");
    for path in Layer::ALL {
        for condition in Condition::ALL {
            out.push_str(&plot(report, path, condition, baseline, &axes));
        }
    }
    out.push_str("</div>\n");
    out
}

fn plot_hint(baseline: Option<Baseline>) -> String {
    let reference = baseline.map_or(String::new(), |b| {
        format!("; dashed grey: {}", b.describe())
    });
    escape(&format!(
        "Closed-loop RTT at each percentile from p50 up, all plots on the same axes; dots \
         in the right-hand column are each run's max{reference}."
    ))
}

/// The plot of one path and condition, or nothing if neither configuration was measured.
fn plot(
    report: &LabReport,
    path: Layer,
    condition: Condition,
    baseline: Option<Baseline>,
    axes: &Axes,
) -> String {
    let mut curves: Vec<Curve> = Config::ALL
        .into_iter()
        .filter_map(|config| report.row(path, condition, config))
        .map(|row| curve(row, false))
        .collect();
    if curves.is_empty() {
        return String::new();
    }
    let own_plot = path == Layer::Loopback && condition == Condition::Quiet;
    if let Some(b) = baseline.filter(|_| !own_plot) {
        curves.push(curve(b.row, true));
    }
    spectrum_plot(
        &format!("{} · {}", path.name(), condition.name()),
        &curves,
        axes,
    )
}

/// `row`'s spectrum in its configuration's colour, or as the dashed native reference.
fn curve(row: &Row, reference: bool) -> Curve<'_> {
    let (label, colour) = match (reference, row.config) {
        (true, _) => ("native", NATIVE_COLOUR),
        (false, Config::Default) => ("default", DEFAULT_COLOUR),
        (false, Config::Pinned) => ("pinned", PINNED_COLOUR),
        (false, Config::LatencySensitive) => ("latency-sensitive", LS_COLOUR),
    };
    Curve {
        label,
        colour,
        dashed: reference,
        points: &row.spectrum,
        max_ns: (!reference).then_some(row.rtt_ns.max),
    }
}
