//! Without root or without iproute2, creating a lab fails at once with one line saying what is
//! needed, and creates nothing.

use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::child::child_command;
use crate::common::root_test;

type Configure = Box<dyn FnOnce(&mut Command)>;

/// Runs the child in `preflight` mode, changed by `configure`, and returns its error line.
fn preflight_error(configure: impl FnOnce(&mut Command)) -> String {
    let run_dir = tempfile::tempdir().unwrap();
    let mut command = child_command("preflight", &run_dir.path().join("run"));
    configure(&mut command);
    let output = command.output().unwrap();
    assert!(!run_dir.path().join("run").exists(), "nothing created");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("ERROR ").map(str::to_owned))
        .expect("the child printed no outcome")
}

#[test]
#[ignore = "needs root: network namespaces"]
fn preflight_names_what_is_missing_in_one_line_needs_root() {
    let _serial = root_test();
    let cases: [(&str, Configure, &str); 2] = [
        (
            "not root",
            Box::new(|c| {
                c.uid(65534).gid(65534);
            }),
            "needs root",
        ),
        (
            "no ip on PATH",
            Box::new(|c| {
                c.env("PATH", "/nonexistent");
            }),
            "needs iproute2's `ip`",
        ),
    ];
    for (what, configure, want) in cases {
        let error = preflight_error(configure);
        assert!(error.contains(want), "{what}: {error}");
    }
}
