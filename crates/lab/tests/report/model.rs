//! The JSON model: round trip, exact key names, and the constructors from probe reports.

use std::collections::BTreeSet;

use nearnative_lab::report::{Condition, Config, FixedRate, Jitter, LabReport, Row};
use nearnative_lab::Layer;
use nearnative_probe::jitter::{JitterReport, TimerReport};
use nearnative_probe::rtt::Mode;
use nearnative_probe::stats::{new_histogram, record};

use super::sample::{full_report, jitter_report, rtt_report};

fn keys(value: &serde_json::Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn json_round_trip_keeps_every_field() {
    let report = full_report();
    let json = serde_json::to_string(&report).unwrap();
    let back: LabReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
}

#[test]
fn json_uses_the_documented_key_names() {
    let json = serde_json::to_value(full_report()).unwrap();
    let top = [
        "schema_version",
        "started",
        "host",
        "placement",
        "quick",
        "cell_duration_ms",
        "rows",
        "notes",
    ];
    assert_eq!(keys(&json), BTreeSet::from(top));
    assert_eq!(json["schema_version"], 2);
    assert_eq!(json["host"]["cpus_online"], serde_json::json!([0, 1]));
    let row = &json["rows"][2];
    let row_keys = [
        "path",
        "condition",
        "config",
        "rtt_ns",
        "samples",
        "lost",
        "fixed_rate",
        "jitter",
        "spectrum",
        "interference",
    ];
    assert_eq!(keys(row), BTreeSet::from(row_keys));
    let interference = keys(&row["interference"]);
    for key in ["irqs", "softirqs", "ipis", "threads", "unexplained_ns"] {
        assert!(
            interference.contains(key),
            "{key} missing: {interference:?}"
        );
    }
    assert_eq!(
        keys(&row["interference"]["ipis"][0]),
        BTreeSet::from(["name", "description", "count", "estimated_ns"])
    );
    assert_eq!(
        (&row["path"], &row["condition"], &row["config"]),
        (
            &"loopback".into(),
            &"quiet".into(),
            &"latency-sensitive".into()
        )
    );
    let percentiles = ["p50", "p99", "p99_9", "p99_99", "max"];
    assert_eq!(keys(&row["rtt_ns"]), BTreeSet::from(percentiles));
    assert_eq!(
        keys(&row["fixed_rate"]["rtt_ns"]),
        BTreeSet::from(percentiles)
    );
    assert_eq!(
        keys(&row["spectrum"][0]),
        BTreeSet::from(["percentile", "ns"])
    );
    let jitter = [
        "cpu",
        "threshold_ns",
        "interruptions_per_sec",
        "stolen_share",
        "max_gap_ns",
        "gap_p99_99_ns",
    ];
    assert_eq!(keys(&row["jitter"]), BTreeSet::from(jitter));
}

#[test]
fn every_enum_value_reads_back() {
    let json = serde_json::to_value(full_report()).unwrap();
    let names = |key: &str| -> BTreeSet<String> {
        let rows = json["rows"].as_array().unwrap();
        rows.iter()
            .map(|r| r[key].as_str().unwrap().to_owned())
            .collect()
    };
    let set = |names: &[&str]| names.iter().map(|&n| n.to_owned()).collect();
    assert_eq!(names("path"), set(&["bridge", "loopback", "tap", "veth"]));
    assert_eq!(names("condition"), set(&["noisy", "quiet"]));
    assert_eq!(
        names("config"),
        set(&["default", "latency-sensitive", "pinned"])
    );
}

#[test]
fn unknown_layer_is_refused_by_name() {
    let mut json = serde_json::to_value(full_report()).unwrap();
    json["rows"][0]["path"] = "vhost".into();
    let err = serde_json::from_value::<LabReport>(json)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown layer \"vhost\""), "{err}");
}

#[test]
fn row_takes_the_closed_loop_run_as_is() {
    let mut hist = new_histogram();
    for ns in 1..=1000u64 {
        record(&mut hist, ns * 100);
    }
    let run = rtt_report(Mode::ClosedLoop, &hist);
    let row = Row::new(Layer::Tap, Condition::Noisy, Config::Default, &run);
    assert_eq!((row.samples, row.lost), (1000, 3));
    assert_eq!(
        (row.rtt_ns.p50, row.rtt_ns.max),
        (run.rtt_ns.p50, run.rtt_ns.max)
    );
    let last = row.spectrum.last().unwrap();
    assert_eq!((last.percentile, last.ns), (100.0, run.rtt_ns.max));
    assert!(row.spectrum.len() > 20, "{} points", row.spectrum.len());
}

#[test]
fn row_without_histograms_gets_the_summary_spectrum() {
    let mut hist = new_histogram();
    record(&mut hist, 12_345);
    let mut run = rtt_report(Mode::ClosedLoop, &hist);
    run.histograms = None;
    let row = Row::new(Layer::Veth, Condition::Quiet, Config::Default, &run);
    let percentiles: Vec<f64> = row.spectrum.iter().map(|p| p.percentile).collect();
    assert_eq!(percentiles, [50.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0]);
    assert!(row.spectrum.iter().all(|p| p.ns == run.rtt_ns.max));
}

#[test]
fn fixed_rate_comes_only_from_fixed_rate_runs() {
    let mut hist = new_histogram();
    record(&mut hist, 20_000);
    assert_eq!(
        FixedRate::from_run(&rtt_report(Mode::ClosedLoop, &hist)),
        None
    );
    let fixed = FixedRate::from_run(&rtt_report(Mode::FixedRate, &hist)).unwrap();
    assert_eq!((fixed.target_rate, fixed.samples), (10_000, 1));
    assert_eq!(fixed.rtt_ns.p99_99, hist.max());
}

#[test]
fn jitter_comes_from_the_spin_row_of_the_asked_cpu() {
    let report = full_report();
    let jitter = report.rows[0].jitter.unwrap();
    assert_eq!((jitter.cpu, jitter.threshold_ns), (1, 5_000));
    let timer = JitterReport::Timer(TimerReport {
        threshold_ns: 1,
        duration_ns: 1,
        interval_ns: 1,
        rt_priority: None,
        cpus: Vec::new(),
    });
    assert_eq!(Jitter::from_report(&timer, 1), None);
    let spin = jitter_report(Condition::Quiet, Config::Default);
    assert_eq!(
        Jitter::from_report(&spin, 7),
        None,
        "CPU 7 was not measured"
    );
}
