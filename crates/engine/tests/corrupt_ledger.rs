//! A corrupt ledger stops apply and revert before their first write: the host, the journals
//! and the plan records stay as they were, and the error names the file.

use std::fs::{self, OpenOptions};

use nearnative_engine::RevertWhich;
use nearnative_testkit::tree::TreeImage;

use crate::{worker_request, Bench};

/// Cuts `ledger.json` short, as `truncate -s 50` does.
fn corrupt_ledger(bench: &Bench) {
    let file = OpenOptions::new()
        .write(true)
        .open(bench.state.ledger_path())
        .unwrap();
    file.set_len(50).unwrap();
}

fn state_files(bench: &Bench) -> Vec<String> {
    let mut files = Vec::new();
    for dir in [bench.state.journals_dir(), bench.state.plans_dir()] {
        for entry in fs::read_dir(dir).unwrap() {
            files.push(entry.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    files.sort();
    files
}

#[test]
fn revert_with_a_corrupt_ledger_changes_nothing() {
    for which in [RevertWhich::Target("pid:4000".into()), RevertWhich::All] {
        let bench = Bench::new("16em64t-4s2c2t");
        let engine = bench.engine();
        engine.apply(&worker_request()).unwrap();
        corrupt_ledger(&bench);
        let applied = TreeImage::take(bench.root());
        let files = state_files(&bench);

        let err = engine.revert(&which).unwrap_err().to_string();
        assert!(err.contains("ledger.json"), "{which:?}: {err}");
        let diff = TreeImage::take(bench.root()).diff(&applied);
        assert!(diff.is_empty(), "{which:?} changed {diff:?}");
        assert_eq!(state_files(&bench), files, "{which:?}");
        assert_eq!(fs::metadata(bench.state.ledger_path()).unwrap().len(), 50);
    }
}

#[test]
fn apply_with_a_corrupt_ledger_changes_nothing() {
    let bench = Bench::new("16em64t-4s2c2t");
    bench.state.ensure().unwrap();
    fs::write(
        bench.state.ledger_path(),
        "{\"schema_version\": 1, \"sha256\": \"",
    )
    .unwrap();
    let err = bench
        .engine()
        .apply(&worker_request())
        .unwrap_err()
        .to_string();
    assert!(err.contains("ledger.json"), "{err}");
    bench.assert_unchanged("apply refused");
    assert!(state_files(&bench).is_empty());
}
