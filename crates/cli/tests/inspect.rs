//! `nearnative inspect` and `nearnative capture`, run as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::nearnative;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The 4-socket SMT snapshot from `shared/fixtures/hosts`, extracted into `dir`.
#[track_caller]
fn snapshot(dir: &Path) -> PathBuf {
    let archive = nearnative_testkit::hosts_dir().join("16em64t-4s2c2t.tar.bz2");
    assert!(
        archive.is_file(),
        "needs the hwloc host snapshot {}: absent",
        archive.display()
    );
    let status = Command::new("tar")
        .arg("xjf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
    dir.join("16em64t-4s2c2t")
}

#[test]
fn live_inspect_prints_the_summary_sections() {
    let output = nearnative(&["inspect"]);
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    for section in [
        "Topology: ",
        "  package 0",
        "Isolation:",
        "  cgroups: ",
        "Findings",
    ] {
        assert!(text.contains(section), "no {section:?} in:\n{text}");
    }
}

#[test]
fn json_on_a_snapshot_follows_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let root = snapshot(dir.path());
    let output = nearnative(&["inspect", "--json", "--root", root.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["schema_version"], 1);
    let cpus = json["topology"]["cpus"].as_array().unwrap();
    assert_eq!(cpus.len(), 16);
    assert_eq!(cpus[8]["siblings"], serde_json::json!([0, 8]));
    assert_eq!(cpus[8]["core"], 0);
    assert_eq!(cpus[1]["package"], 1);
}

#[test]
fn a_missing_root_is_a_one_line_error() {
    let output = nearnative(&["inspect", "--root", "/nonexistent/snapshot"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/snapshot"), "{stderr}");
}

#[test]
fn capture_then_inspect_the_archive() {
    // The capture and the live read must see one host: no live test may add cgroups between.
    let _serial = crate::host_knobs_exclusively();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("here.tar.gz");
    let output = nearnative(&["capture", out.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout(&output).contains("nearnative inspect --root DIR/here"),
        "{output:?}"
    );
    let status = Command::new("tar")
        .arg("xzf")
        .arg(&out)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let live = nearnative(&["inspect", "--json"]);
    let captured = nearnative(&[
        "inspect",
        "--json",
        "--root",
        dir.path().join("here").to_str().unwrap(),
    ]);
    assert!(captured.status.success(), "{captured:?}");
    let live: serde_json::Value = serde_json::from_slice(&live.stdout).unwrap();
    let captured: serde_json::Value = serde_json::from_slice(&captured.stdout).unwrap();
    assert_eq!(captured["topology"], live["topology"]);
    assert_eq!(captured["isolation"], live["isolation"]);
}

#[test]
fn capture_json_names_the_archive_and_what_went_in() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("host2.tar.gz");
    let output = nearnative(&["capture", out.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["archive"], out.to_str().unwrap());
    assert_eq!(report["folder"], "host2");
    assert!(report["files"].as_u64().unwrap() > 0, "{report}");
    assert!(report["cpus"].as_u64().unwrap() > 0, "{report}");
    assert!(out.is_file());
}
