//! The text table: ratios to native, the fallback baseline, alignment and order.

use nearnative_lab::report::{
    details_table, interference_table, latency_table, render_text, Condition, Config,
};
use nearnative_lab::Layer;

use super::sample::{cell, full_report, report_of};

use Condition::{Noisy, Quiet};
use Config::{Default, LatencySensitive};
use Layer::{Bridge, Loopback};

/// Native LS 10 µs / 20 µs, native default 12.5 / 40, bridge noisy LS 10.4 / 26, default 25 / 200.
fn rows(with_native_ls: bool) -> Vec<nearnative_lab::report::Row> {
    let mut rows = vec![
        cell(Bridge, Noisy, Default, 25_000, 200_000),
        cell(Bridge, Noisy, LatencySensitive, 10_400, 26_000),
        cell(Loopback, Quiet, Default, 12_500, 40_000),
    ];
    if with_native_ls {
        rows.push(cell(Loopback, Quiet, LatencySensitive, 10_000, 20_000));
    }
    rows
}

/// The cells of the row labelled `path condition config`, from p50 on.
fn figures(table: &nearnative_lab::report::Table, labels: [&str; 3]) -> Vec<String> {
    let row = table
        .rows
        .iter()
        .find(|row| row[..3] == labels)
        .unwrap_or_else(|| panic!("no row {labels:?}"));
    row[3..].to_vec()
}

#[test]
fn ratios_are_to_native_latency_sensitive() {
    let table = latency_table(&report_of(rows(true)));
    assert!(table
        .caption
        .contains("native = loopback quiet latency-sensitive"));
    let cases = [
        (
            "bridge noisy default",
            ["bridge", "noisy", "default"],
            ["25.0", "112", "112", "200", "400", "175", "2.50×", "10.0×"],
        ),
        (
            "bridge noisy latency-sensitive",
            ["bridge", "noisy", "latency-sensitive"],
            [
                "10.4", "18.2", "18.2", "26.0", "52.0", "15.6", "1.04×", "1.30×",
            ],
        ),
        (
            "the baseline itself",
            ["loopback", "quiet", "latency-sensitive"],
            [
                "10.0", "15.0", "15.0", "20.0", "40.0", "10.0", "1.00×", "1.00×",
            ],
        ),
    ];
    for (what, labels, want) in cases {
        assert_eq!(figures(&table, labels), want, "{what}");
    }
}

#[test]
fn missing_native_ls_falls_back_to_native_default_and_says_so() {
    let table = latency_table(&report_of(rows(false)));
    assert!(
        table
            .caption
            .contains("loopback quiet default (no loopback quiet latency-sensitive"),
        "{}",
        table.caption
    );
    let bridge = figures(&table, ["bridge", "noisy", "default"]);
    assert_eq!(bridge[6..], ["2.00×", "5.00×"]);
    assert_eq!(
        table.highlight,
        Some(0),
        "loopback quiet default is the baseline"
    );
}

#[test]
fn no_native_row_means_no_ratios() {
    let table = latency_table(&report_of(vec![cell(
        Bridge, Noisy, Default, 25_000, 200_000,
    )]));
    assert!(table.caption.contains("no native"), "{}", table.caption);
    assert_eq!(
        figures(&table, ["bridge", "noisy", "default"])[6..],
        ["-", "-"]
    );
    assert_eq!(table.highlight, None);
}

#[test]
fn zero_native_latency_gives_a_dash_not_infinity() {
    let mut rows = rows(true);
    rows[3].rtt_ns.p50 = 0;
    let table = latency_table(&report_of(rows));
    assert_eq!(figures(&table, ["bridge", "noisy", "default"])[6], "-");
}

#[test]
fn rows_read_native_first_quiet_before_noisy_default_pinned_then_ls() {
    let table = latency_table(&full_report());
    let labels: Vec<String> = table.rows.iter().map(|r| r[..3].join(" ")).collect();
    assert_eq!(labels.len(), 24);
    assert_eq!(labels[0], "loopback quiet default");
    assert_eq!(labels[1], "loopback quiet pinned");
    assert_eq!(labels[2], "loopback quiet latency-sensitive");
    assert_eq!(labels[5], "loopback noisy latency-sensitive");
    assert_eq!(labels[23], "tap noisy latency-sensitive");
    assert_eq!(table.highlight, Some(2));
}

#[test]
fn text_table_columns_line_up() {
    let text = latency_table(&full_report()).to_text();
    let lines: Vec<Vec<char>> = text.lines().skip(1).map(|l| l.chars().collect()).collect();
    assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{text}");
    // Numbers are right-aligned under their header: p50's last digit under its "0".
    let header: String = lines[0].iter().collect();
    let p50_end =
        header.chars().count() - header[header.find("p50").unwrap()..].chars().count() + 3;
    for line in &lines[2..] {
        assert!(
            line[p50_end - 1].is_ascii_digit() && line[p50_end] == ' ',
            "{text}"
        );
    }
}

#[test]
fn details_show_only_when_some_cell_has_them() {
    assert_eq!(details_table(&report_of(rows(true))), None);
    let details = details_table(&full_report()).unwrap();
    assert_eq!(details.rows.len(), 24);
    assert_eq!(details.rows[0][3..5], ["10000", "9999"]);
    assert_eq!(details.rows[0][7], "1");
}

#[test]
fn interference_names_the_top_sources_with_their_share_of_the_stolen_time() {
    assert_eq!(interference_table(&report_of(rows(true))), None);
    let table = interference_table(&full_report()).unwrap();
    assert_eq!(table.rows.len(), 24);
    let noisy_pinned = figures(&table, ["loopback", "noisy", "pinned"]);
    // 1 s stolen over a 2 s window; the hog 0.9 s; 4 000 interrupts at 2 µs; the rest.
    assert_eq!(
        noisy_pinned[..5],
        ["500000", "450000", "4000", "46000", "5000"]
    );
    assert_eq!(
        noisy_pinned[5],
        "thread nn-hog-1 (tid 4250) 90%, below the guest (unexplained) 9%, TLB ~1%"
    );
    let noisy_ls = figures(&table, ["loopback", "noisy", "latency-sensitive"]);
    assert_eq!(noisy_ls[0], "10000");
    assert!(
        noisy_ls[5].starts_with("below the guest (unexplained) 60%, TLB ~30%"),
        "{noisy_ls:?}"
    );
}

#[test]
fn text_report_has_context_tables_and_verdict() {
    let text = render_text(&full_report());
    for wanted in [
        "host       Intel Xeon",
        "CPUs online 0-1 (2)",
        "×native p99.99",
        "fixed p50",
        "top sources (share of stolen)",
        "verdict: under noise, tap:",
        "note: synthetic data",
    ] {
        assert!(text.contains(wanted), "{wanted:?} missing from\n{text}");
    }
}
