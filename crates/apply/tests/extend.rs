//! Adding to an applied journal (the daemon placing threads born since the apply): the new
//! changes are journaled as apply journals them, one failing rolls back only what was added,
//! and revert restores everything.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use nearnative_apply::{extend_locked, revert, ApplyError, Journal, JournalStatus, RevertTarget};
use nearnative_knob::Step;
use nearnative_sys::lock::StateLock;

use crate::steps::every_file_knob;
use crate::{id, Bench};

/// Applies the first steps of [`every_file_knob`] as journal `x`; returns the rest.
fn applied_in_part(bench: &Bench) -> Vec<Step> {
    let mut steps = every_file_knob(&bench.cpus);
    let rest = steps.split_off(12);
    nearnative_apply::apply(&steps, &bench.backend, &bench.state, &id("x")).unwrap();
    rest
}

fn extend(bench: &Bench, steps: &[Step]) -> Result<nearnative_apply::ApplyReport, ApplyError> {
    let lock = StateLock::acquire(bench.state.dir()).unwrap();
    extend_locked(steps, &bench.backend, &bench.state, &id("x"), &lock)
}

fn journal(bench: &Bench) -> Journal {
    Journal::load(&bench.state.journal_path(&id("x")))
        .unwrap()
        .unwrap()
}

#[test]
fn added_changes_join_the_journal_and_revert_with_it() {
    let bench = Bench::new("16amd64-8n2c");
    let rest = applied_in_part(&bench);
    let before = journal(&bench).changes.len();
    let report = extend(&bench, &rest).unwrap();
    assert_eq!(report.changed.len(), rest.len());
    let extended = journal(&bench);
    assert_eq!(extended.status, JournalStatus::Applied);
    assert_eq!(extended.changes.len(), before + rest.len());
    revert(&bench.state, &RevertTarget::One(id("x")), &bench.backend).unwrap();
    bench.assert_unchanged("revert of an extended journal");
}

#[test]
fn a_failed_addition_rolls_back_only_what_it_added() {
    let bench = Bench::new("16amd64-8n2c");
    let rest = applied_in_part(&bench);
    let applied = journal(&bench);
    let image = bench.image();
    let file = bench.root().join("proc/sys/net/core/busy_read");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o444)).unwrap();
    let err = extend(&bench, &rest).unwrap_err().to_string();
    assert!(err.contains("net.core.busy_read"), "{err}");
    assert!(err.contains("the host is as it was"), "{err}");
    assert!(bench.image().diff(&image).is_empty());
    assert_eq!(journal(&bench), applied);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    revert(&bench.state, &RevertTarget::All, &bench.backend).unwrap();
    bench.assert_unchanged("revert");
}

#[test]
fn only_an_applied_journal_is_added_to() {
    let bench = Bench::new("16amd64-8n2c");
    bench.state.ensure().unwrap();
    let err = extend(&bench, &every_file_knob(&bench.cpus)).unwrap_err();
    assert!(matches!(err, ApplyError::NoJournal { .. }), "{err}");
    bench.assert_unchanged("no journal");
}
