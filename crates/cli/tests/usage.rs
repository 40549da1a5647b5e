//! Usage errors from argument parsing follow the same rule as every other error: one line on
//! stderr naming the argument, exit code 2; `--help` and `--version` succeed.

use std::process::Command;

use crate::nearnative;

#[test]
fn usage_errors_are_one_line_with_exit_code_2() {
    let cases: [(&str, &[&str], &str); 4] = [
        ("unknown command", &["bogus"], "'bogus'"),
        ("missing argument", &["probe", "rtt"], "<ADDR:PORT>"),
        (
            "bad duration",
            &["probe", "rtt", "127.0.0.1:9", "--duration", "ten"],
            "'ten'",
        ),
        ("unknown flag", &["inspect", "--frobnicate"], "--frobnicate"),
    ];
    for (what, args, needle) in cases {
        let out = nearnative(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr:?}");
        assert!(
            stderr.contains(needle),
            "{what}: {stderr:?} lacks {needle:?}"
        );
        assert!(out.stdout.is_empty(), "{what}");
    }
}

#[test]
fn help_and_version_succeed_on_stdout() {
    for args in [&["--help"][..], &["--version"], &["probe", "rtt", "--help"]] {
        let out = nearnative(args);
        assert!(out.status.success(), "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}

/// Runs `args` with stdout a pipe whose reader is already gone, as `| head -c10` or `| true`
/// leave it once they stop reading.
fn with_closed_stdout(args: &[&str]) -> std::process::Output {
    let (reader, writer) = nix::unistd::pipe().unwrap();
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_nearnative"))
        .args(args)
        .stdout(std::process::Stdio::from(writer))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_reader_gone_early_is_success() {
    let state = tempfile::tempdir().unwrap();
    let state = state.path().to_str().unwrap();
    let snapshot = nearnative_testkit::shared("16em64t-4s2c2t");
    let root = snapshot.to_str().unwrap();
    let cases: [(&str, &[&str]); 4] = [
        (
            "inspect --json | head -c10",
            &["inspect", "--json", "--root", root],
        ),
        ("inspect | head -2", &["inspect", "--root", root]),
        (
            "revert --all | true",
            &["revert", "--all", "--state-dir", state],
        ),
        ("status | true", &["status", "--state-dir", state]),
    ];
    for (what, args) in cases {
        let out = with_closed_stdout(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{what}: {:?} {stderr}", out.status);
        assert_eq!(stderr, "", "{what}");
    }
}

#[test]
fn malformed_values_are_refused_naming_the_argument() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let file = file.path().to_str().unwrap();
    let snapshot = nearnative_testkit::shared("16em64t-4s2c2t");
    let root = snapshot.to_str().unwrap();
    let cases: [(&str, &[&str], &str); 5] = [
        (
            "a state dir that is a file",
            &["revert", "--all", "--state-dir", file],
            "not a directory",
        ),
        (
            "an empty housekeeping list",
            &["plan", "vm:x", "--root", root, "--housekeeping", ""],
            "--housekeeping",
        ),
        (
            "an empty entry in a list",
            &["plan", "vm:x", "--root", root, "--housekeeping", "1,,2"],
            "--housekeeping",
        ),
        (
            "an empty vCPU list",
            &["plan", "vm:x", "--root", root, "--vcpus", " "],
            "--vcpus",
        ),
        (
            "a warm-up past any clock",
            &[
                "probe",
                "rtt",
                "127.0.0.1:9",
                "--warmup",
                "18446744073709551615ms",
            ],
            "--warmup",
        ),
    ];
    for (what, args, needle) in cases {
        let out = nearnative(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr:?}");
        assert!(stderr.contains(needle), "{what}: {stderr}");
    }
    let state_dir = nearnative(&["revert", "--all", "--state-dir", file]);
    assert!(String::from_utf8_lossy(&state_dir.stderr).contains(file));
}
