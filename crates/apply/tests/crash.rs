//! Acceptance 1, crash part: the executor is stopped dead (as by kill -9) right after each
//! journal write, before and after the knob write that follows; revert restores the tree
//! exactly every time.

use nearnative_apply::{
    apply_with_crash, revert, ApplyError, Crash, CrashPoint, Journal, JournalStatus, RevertTarget,
};

use crate::steps::every_file_knob;
use crate::{id, Bench};

/// Split in two so the test threads run them side by side. The 128-CPU ARM snapshot is left
/// out of the sweep: its ten thousand files make 48 whole-tree comparisons take ~20 s, and its
/// full round trip is checked in `roundtrip`.
#[test]
fn revert_restores_the_tree_after_a_crash_at_every_journal_write_smp_hosts() {
    crash_sweep(&[
        "16em64t-4s2c2t",
        "20em64t-hybrid-1p6c2t+2ca4co1t",
        "offline-cpu0-node0",
    ]);
}

#[test]
fn revert_restores_the_tree_after_a_crash_at_every_journal_write_numa_hosts() {
    crash_sweep(&["16amd64-8n2c", "64amd64-4s2n4ca2co"]);
}

fn crash_sweep(snapshots: &[&str]) {
    for name in snapshots {
        let bench = Bench::new(name);
        let steps = every_file_knob(&bench.cpus);
        // The empty journal, one store per change, the final one.
        let journal_writes = steps.len() + 2;
        for journal_write in 1..=journal_writes {
            for point in [CrashPoint::BeforeKnobWrite, CrashPoint::AfterKnobWrite] {
                let crash = Crash {
                    journal_write,
                    point,
                };
                let what = format!("{name}: {crash:?}");
                let err = apply_with_crash(&steps, &bench.backend, &bench.state, &id("c"), crash)
                    .unwrap_err();
                assert!(matches!(err, ApplyError::Crashed { .. }), "{what}: {err}");
                let path = bench.state.journal_path(&id("c"));
                let journal = Journal::load(&path).unwrap().unwrap();
                let expected_status = match journal_write == journal_writes {
                    true => JournalStatus::Applied,
                    false => JournalStatus::InProgress,
                };
                assert_eq!(journal.status, expected_status, "{what}");
                if journal_write > 1 && journal_write < journal_writes {
                    let last = journal.changes.last().unwrap();
                    let written = last.holds_target(&bench.backend).unwrap();
                    assert_eq!(written, point == CrashPoint::AfterKnobWrite, "{what}");
                }
                revert(&bench.state, &RevertTarget::All, &bench.backend).unwrap();
                assert!(!path.exists(), "{what}: journal left");
                bench.assert_unchanged(&what);
            }
        }
    }
}
