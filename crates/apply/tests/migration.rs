//! Journals of schema 1, written by the executor before the append-only log, still revert:
//! `fixtures/v1-every-file-knob.json` is the journal that executor left after applying every
//! file knob to the 16em64t-4s2c2t snapshot.

use std::fs;

use nearnative_apply::{revert, Journal, JournalStatus, RevertTarget};

use crate::{id, Bench};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/v1-every-file-knob.json"
);

#[test]
fn a_schema_1_journal_reverts_exactly() {
    let bench = Bench::new("16em64t-4s2c2t");
    // Bring the tree where the old apply left it, then put the old journal in place of the new.
    let applied = bench.apply_every_file_knob("scratch").unwrap();
    fs::remove_file(&applied.journal).unwrap();
    let path = bench.state.journal_path(&id("v1-every-file-knob"));
    fs::copy(FIXTURE, &path).unwrap();
    let old = Journal::load(&path).unwrap().unwrap();
    assert_eq!(old.status, JournalStatus::Applied);
    assert_eq!(old.changes.len(), applied.changed.len());

    let reverted = revert(&bench.state, &RevertTarget::All, &bench.backend).unwrap();
    assert_eq!(reverted.journals[0].restored.len(), applied.changed.len());
    assert!(!path.exists(), "schema-1 journal left after revert");
    bench.assert_unchanged("after reverting the schema-1 journal");
}

#[test]
fn a_schema_1_journal_left_part_reverted_is_kept_in_schema_2() {
    let bench = Bench::new("16em64t-4s2c2t");
    let applied = bench.apply_every_file_knob("scratch").unwrap();
    fs::remove_file(&applied.journal).unwrap();
    let path = bench.state.journal_path(&id("v1-every-file-knob"));
    fs::copy(FIXTURE, &path).unwrap();
    let busy_poll = bench.root().join("proc/sys/net/core/busy_poll");
    fs::remove_file(&busy_poll).unwrap();
    fs::create_dir(&busy_poll).unwrap();
    let err = revert(&bench.state, &RevertTarget::All, &bench.backend).unwrap_err();
    assert!(err.to_string().contains("keeps 1 change(s)"), "{err}");
    let left = fs::read_to_string(&path).unwrap();
    assert!(!left.starts_with('{'), "still schema 1: {left}");
    let journal = Journal::load(&path).unwrap().unwrap();
    assert_eq!(journal.status, JournalStatus::RevertIncomplete);
    assert_eq!(journal.changes.len(), 1);
    assert!(journal.changes[0].describe().location.contains("busy_poll"));
}
