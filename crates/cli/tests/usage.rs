//! Usage errors from argument parsing follow the same rule as every other error: one line on
//! stderr naming the argument, exit code 2; `--help` and `--version` succeed.

use std::process::Command;

fn nearnative(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nearnative"))
        .args(args)
        .output()
        .unwrap()
}

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
