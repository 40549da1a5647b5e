//! `nearnative probe jitter` through the binary: bad input is refused in one line with exit
//! code 2 and no panic; good input prints a report.

use std::process::{Command, Output};

fn jitter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nearnative"))
        .args(["probe", "jitter"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bad_input_gets_one_line_naming_the_problem() {
    let cases: [(&str, &[&str], &str); 10] = [
        ("bad CPU list", &["--cpus", "a-b"], "--cpus \"a-b\""),
        ("backwards CPU range", &["--cpus", "3-1"], "runs backwards"),
        ("empty CPU list", &["--cpus", ""], "CPU list is empty"),
        (
            "CPU not online",
            &["--cpus", "4000"],
            "CPU 4000 is not online",
        ),
        (
            "zero duration",
            &["--duration", "0"],
            "duration 0ns is out of range",
        ),
        ("absurd duration", &["--duration", "1e9"], "out of range"),
        (
            "duration not a number",
            &["--duration", "ten"],
            "--duration \"ten\"",
        ),
        (
            "zero threshold",
            &["--threshold-ns", "0"],
            "threshold 0 ns is out of range",
        ),
        (
            "interval without timer mode",
            &["--interval-us", "100"],
            "--interval-us",
        ),
        ("priority 0", &["--rt", "0"], "priority 0 is out of range"),
    ];
    for (what, args, needle) in cases {
        let out = jitter(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{what}: {stderr:?} lacks {needle:?}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{what}: {stderr:?}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert!(out.stdout.is_empty(), "{what}");
    }
}

#[test]
fn json_report_covers_the_requested_cpu() {
    let out = jitter(&["--cpus", "0", "--duration", "0.2", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["mode"], "spin");
    assert_eq!(report["cpus"][0]["cpu"], 0);
    assert!(report["cpus"][0]["runtime_ns"].as_u64().unwrap() >= 190_000_000);
    assert!(report["cpus"][0]["stolen_share"].as_f64().unwrap() <= 1.0);
}

#[test]
fn timer_table_has_a_row_per_cpu() {
    let out = jitter(&["--cpus", "0", "--duration", "0.1", "--mode", "timer"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("timer: interval 1000 µs, threshold 100000 ns"),
        "{stdout}"
    );
    assert!(lines[2].trim_start().starts_with('0'), "{stdout}");
}

#[test]
fn help_names_every_option() {
    let out = jitter(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--cpus",
        "--threshold-ns",
        "--duration",
        "--mode",
        "--interval-us",
        "--rt",
        "--json",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
