//! `nearnative revert` through the binary on a snapshot tree (`--root`): a target reverts
//! only the workload whose key it is, and a corrupt state file stops the revert before it
//! changes anything.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nearnative_testkit::tree::{add_process_in, furnish, TreeImage};
use nearnative_testkit::Snapshot;
use tempfile::TempDir;

/// A snapshot with a v1 cpuset hierarchy, so a cgroup target resolves there.
const CPUSET_SNAPSHOT: &str = "offline-cpu0-node0";

/// A furnished tree with process 4100 in cgroup `/nn sp`, and a state directory.
struct Host {
    snapshot: Snapshot,
    _state: TempDir,
    state_dir: PathBuf,
}

impl Host {
    fn new() -> Host {
        let snapshot = nearnative_testkit::extract(CPUSET_SNAPSHOT);
        furnish(&snapshot.root);
        add_process_in(&snapshot.root, 4100, "/nn sp");
        let state = tempfile::tempdir().unwrap();
        Host {
            state_dir: state.path().join("state"),
            _state: state,
            snapshot,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let root = self.snapshot.root.to_str().unwrap();
        let state_dir = self.state_dir.to_str().unwrap();
        Command::new(env!("CARGO_BIN_EXE_nearnative"))
            .args(args)
            .args(["--root", root, "--state-dir", state_dir])
            .output()
            .unwrap()
    }

    fn applied(&self, args: &[&str]) {
        let mut all = vec!["apply"];
        all.extend(args);
        let output = self.run(&all);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    }

    fn image(&self) -> TreeImage {
        TreeImage::take(&self.snapshot.root)
    }

    fn journals(&self) -> usize {
        fs::read_dir(self.state_dir.join("journals")).map_or(0, |d| d.count())
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Exit 2 with one line containing `expected`.
fn refused(output: &Output, expected: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(expected), "{err}");
}

#[test]
fn a_target_that_only_escapes_like_an_applied_one_reverts_nothing() {
    let host = Host::new();
    host.applied(&["pid:4000", "--threads", "4001"]);
    host.applied(&["cgroup:/nn sp"]);
    let applied = host.image();

    let lookalike = host.run(&["revert", "cgroup:/nn-sp"]);
    assert!(lookalike.status.success(), "{}", stderr(&lookalike));
    let said = stdout(&lookalike);
    assert!(
        said.contains("cgroup:/nn-sp: nothing to revert (applied: cgroup:/nn sp, pid:4000)"),
        "{said}"
    );
    refused(&host.run(&["revert", "pid:4000/"]), "\"pid:4000/\"");
    assert!(host.image().diff(&applied).is_empty());
    assert_eq!(host.journals(), 2);

    let reverted = host.run(&["revert", "cgroup:/nn sp"]);
    assert!(reverted.status.success(), "{}", stderr(&reverted));
    assert!(stdout(&reverted).contains("released the cores of cgroup:/nn sp"));
    assert_eq!(host.journals(), 1);
}

/// Cuts `file` to 50 bytes, as `truncate -s 50` does.
fn truncate(file: &Path) {
    let file = OpenOptions::new().write(true).open(file).unwrap();
    file.set_len(50).unwrap();
}

#[test]
fn revert_with_a_corrupt_ledger_changes_nothing() {
    let host = Host::new();
    host.applied(&["pid:4000", "--threads", "4001"]);
    truncate(&host.state_dir.join("ledger.json"));
    let applied = host.image();
    for args in [["revert", "pid:4000"], ["revert", "--all"]] {
        refused(&host.run(&args), "ledger.json");
        let diff = host.image().diff(&applied);
        assert!(diff.is_empty(), "{args:?} changed {diff:?}");
        assert_eq!(host.journals(), 1, "{args:?}");
        assert!(host.state_dir.join("plans").read_dir().unwrap().count() == 1);
    }
}
