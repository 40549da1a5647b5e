//! Odd reports (no rows, one-point spectra, absurd values, unsorted percentiles) never panic
//! and never put a non-finite coordinate in the page.

use std::collections::BTreeSet;

use nearnative_lab::report::{
    html, latency_table, render_text, verdict, Condition, Config, Percentiles, Row, SpectrumPoint,
};
use nearnative_lab::Layer;
use proptest::prelude::*;

use super::html::assert_coordinates_finite;
use super::sample::{cell, report_of};

#[test]
fn no_rows_gives_a_page_without_plots() {
    let report = report_of(Vec::new());
    let page = html(&report);
    assert!(!page.contains("<svg"));
    assert!(page.contains("no measurements"));
    assert_eq!(latency_table(&report).rows.len(), 0);
}

#[test]
fn one_point_spectrum_is_drawn_as_a_dot() {
    let mut row = cell(
        Layer::Tap,
        Condition::Noisy,
        Config::Default,
        30_000,
        90_000,
    );
    row.spectrum = vec![SpectrumPoint {
        percentile: 99.0,
        ns: 40_000,
    }];
    let page = html(&report_of(vec![row]));
    // One dot for the lone point, one for the max.
    assert_eq!(page.matches("<circle").count(), 2);
    assert_coordinates_finite(&page);
}

#[test]
fn huge_latencies_still_plot() {
    let mut row = cell(
        Layer::Veth,
        Condition::Quiet,
        Config::Default,
        u64::MAX / 4,
        u64::MAX / 2,
    );
    row.rtt_ns.max = u64::MAX;
    row.spectrum.push(SpectrumPoint {
        percentile: 99.9999999,
        ns: u64::MAX,
    });
    let page = html(&report_of(vec![row.clone()]));
    assert_coordinates_finite(&page);
    assert!(
        page.contains("1e11 s") || page.contains("1e10 s"),
        "axis reaches the values"
    );
    assert!(render_text(&report_of(vec![row])).contains("18446744073709552"));
}

fn any_row() -> impl Strategy<Value = Row> {
    let point = (0.0f64..=100.0, any::<u64>())
        .prop_map(|(percentile, ns)| SpectrumPoint { percentile, ns });
    (
        0..4usize,
        any::<bool>(),
        0..3usize,
        proptest::array::uniform5(any::<u64>()),
        proptest::collection::vec(point, 0..6),
    )
        .prop_map(
            |(path, noisy, config, [p50, p99, p99_9, p99_99, max], spectrum)| Row {
                path: Layer::ALL[path],
                condition: if noisy {
                    Condition::Noisy
                } else {
                    Condition::Quiet
                },
                config: Config::ALL[config],
                rtt_ns: Percentiles {
                    p50,
                    p99,
                    p99_9,
                    p99_99,
                    max,
                },
                samples: p50 % 3,
                lost: 0,
                fixed_rate: None,
                jitter: None,
                spectrum,
                interference: None,
            },
        )
}

proptest! {
    #[test]
    fn any_report_renders(rows in proptest::collection::vec(any_row(), 0..10)) {
        let plots: BTreeSet<(&str, &str)> =
            rows.iter().map(|r| (r.path.name(), r.condition.name())).collect();
        let report = report_of(rows.clone());
        let page = html(&report);
        prop_assert_eq!(page.matches("<svg").count(), plots.len());
        assert_coordinates_finite(&page);
        prop_assert!(!verdict(&report).is_empty());
        prop_assert_eq!(latency_table(&report).rows.len(), rows.len());
        render_text(&report);
    }
}
