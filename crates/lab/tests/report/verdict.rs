//! The verdict line and the latency-sensitive versus default comparison.

use nearnative_lab::report::{ls_vs, ls_vs_default, verdict, Condition, Config, Row};
use nearnative_lab::Layer;

use super::sample::{cell, full_report, report_of};

use Condition::{Noisy, Quiet};
use Config::{Default, LatencySensitive, Pinned};
use Layer::{Bridge, Loopback, Tap};

fn native() -> Vec<Row> {
    vec![
        cell(Loopback, Quiet, LatencySensitive, 10_000, 20_000),
        cell(Loopback, Quiet, Default, 12_500, 40_000),
    ]
}

fn with(mut rows: Vec<Row>, more: Vec<Row>) -> Vec<Row> {
    rows.extend(more);
    rows
}

#[test]
fn verdict_speaks_of_the_deepest_noisy_path() {
    let bridge_noisy = vec![
        cell(Bridge, Noisy, Default, 25_000, 200_000),
        cell(Bridge, Noisy, LatencySensitive, 10_400, 26_000),
    ];
    let cases = [
        (
            "both configurations under noise",
            with(native(), bridge_noisy.clone()),
            "under noise, bridge: latency-sensitive p50 1.04×, p99.99 1.30× of native; \
             pinned not measured; default p50 2.50×, p99.99 10.0× of native",
        ),
        (
            "all three configurations",
            with(
                native(),
                with(
                    bridge_noisy.clone(),
                    vec![cell(Bridge, Noisy, Pinned, 11_000, 100_000)],
                ),
            ),
            "under noise, bridge: latency-sensitive p50 1.04×, p99.99 1.30× of native; \
             pinned p50 1.10×, p99.99 5.00× of native; default p50 2.50×, p99.99 10.0× of \
             native",
        ),
        (
            "a deeper quiet-only path does not count",
            with(
                native(),
                with(bridge_noisy.clone(), vec![cell(Tap, Quiet, Default, 1, 2)]),
            ),
            "under noise, bridge: latency-sensitive p50 1.04×, p99.99 1.30× of native; \
             pinned not measured; default p50 2.50×, p99.99 10.0× of native",
        ),
        (
            "one configuration missing",
            with(native(), vec![cell(Tap, Noisy, Default, 50_000, 100_000)]),
            "under noise, tap: latency-sensitive not measured; pinned not measured; default \
             p50 5.00×, p99.99 5.00× of native",
        ),
        (
            "no noise at all",
            native(),
            "quiet (no noisy cells), loopback: latency-sensitive p50 1.00×, p99.99 1.00× of \
             native; pinned not measured; default p50 1.25×, p99.99 2.00× of native",
        ),
        (
            "no native row",
            bridge_noisy.clone(),
            "under noise, bridge: latency-sensitive p50 10.4 µs, p99.99 26.0 µs; pinned not \
             measured; default p50 25.0 µs, p99.99 200 µs (no native row to compare with)",
        ),
        (
            "native default stands in",
            with(vec![native().remove(1)], bridge_noisy),
            "under noise, bridge: latency-sensitive p50 0.83×, p99.99 0.65× of native; \
             pinned not measured; default p50 2.00×, p99.99 5.00× of native (native = \
             loopback quiet default)",
        ),
        ("nothing measured", Vec::new(), "no measurements"),
    ];
    for (what, rows, want) in cases {
        assert_eq!(verdict(&report_of(rows)), want, "{what}");
    }
}

#[test]
fn ls_beats_default_where_noise_hurts_default() {
    let compared = ls_vs_default(&full_report(), Noisy);
    let paths: Vec<Layer> = compared.iter().map(|c| c.path).collect();
    assert_eq!(paths, Layer::ALL);
    for c in &compared {
        assert!(
            c.beats_at_p50() && c.beats_at_p99_9() && c.beats_at_p99_99(),
            "{c:?}"
        );
    }
}

#[test]
fn ls_beats_pinned_in_the_tail_under_noise() {
    let compared = ls_vs(&full_report(), Noisy, Pinned);
    assert_eq!(compared.len(), Layer::ALL.len());
    for c in &compared {
        assert_eq!(c.other, Pinned);
        assert!(c.beats_at_p99_9() && c.beats_at_p99_99(), "{c:?}");
    }
}

#[test]
fn comparison_skips_paths_missing_a_configuration_or_samples() {
    let mut rows = vec![
        cell(Bridge, Noisy, Default, 20_000, 40_000),
        cell(Bridge, Noisy, LatencySensitive, 30_000, 30_000),
        cell(Tap, Noisy, Default, 20_000, 40_000),
        cell(Layer::Veth, Noisy, Default, 20_000, 40_000),
        cell(Layer::Veth, Noisy, LatencySensitive, 10_000, 20_000),
    ];
    rows[4].samples = 0;
    let compared = ls_vs_default(&report_of(rows), Noisy);
    assert_eq!(compared.len(), 1, "{compared:?}");
    let bridge = compared[0];
    assert_eq!(bridge.path, Bridge);
    assert_eq!(bridge.p50_ratio, 1.5);
    assert!(!bridge.beats_at_p50() && !bridge.beats_at_p99_9() && bridge.beats_at_p99_99());
    assert!(ls_vs_default(&report_of(Vec::new()), Quiet).is_empty());
}
