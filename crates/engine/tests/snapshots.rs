//! Acceptance 1 through the engine: a real plan for the fake process, applied to each
//! snapshot and reverted, leaves the tree byte-identical, the ledger empty and no record; and
//! so does `revert TARGET` after the apply was killed at any journal write (the plan record
//! and the reservation already made, as they are before the first knob write).

use nearnative_apply::{Crash, CrashPoint};
use nearnative_engine::{load_ledger, RevertWhich};
use nearnative_testkit::SNAPSHOTS;

use crate::{worker_request, Bench};

#[test]
fn plan_apply_revert_is_byte_identical_on_every_snapshot() {
    for name in SNAPSHOTS {
        let bench = Bench::new(name);
        let engine = bench.engine();
        let applied = engine.apply(&worker_request()).unwrap();
        assert!(
            !applied.report.changed.is_empty(),
            "{name}: nothing changed"
        );
        assert!(applied.record.exists(), "{name}");
        let ledger = load_ledger(&bench.state).unwrap();
        assert_eq!(ledger.len(), 1, "{name}");
        let status = engine.status().unwrap();
        assert_eq!(status.workloads.len(), 1, "{name}");
        assert_eq!(status.workloads[0].target.as_deref(), Some("pid:4000"));

        let reverted = engine
            .revert(&RevertWhich::Target("pid:4000".into()))
            .unwrap();
        assert_eq!(reverted.workloads.len(), 1, "{name}");
        bench.assert_unchanged(name);
        assert!(load_ledger(&bench.state).unwrap().is_empty(), "{name}");
        assert!(!applied.record.exists(), "{name}: plan record left");
        let again = engine
            .revert(&RevertWhich::Target("pid:4000".into()))
            .unwrap();
        assert!(
            again.nothing_to_revert(),
            "{name}: second revert did something"
        );
    }
}

#[test]
fn a_crash_at_any_journal_write_is_reverted_exactly_by_target() {
    for name in ["16em64t-4s2c2t", "offline-cpu0-node0"] {
        let changes = {
            let bench = Bench::new(name);
            let applied = bench.engine().apply(&worker_request()).unwrap();
            applied.report.changed.len()
        };
        // The empty journal, one per change, the final one.
        for journal_write in 1..=changes + 2 {
            for point in [CrashPoint::BeforeKnobWrite, CrashPoint::AfterKnobWrite] {
                let what = format!("{name}: crash {point:?} at write {journal_write}");
                let bench = Bench::new(name);
                let engine = bench.engine();
                let crash = Crash {
                    journal_write,
                    point,
                };
                assert!(
                    engine.apply_with_crash(&worker_request(), crash).is_err(),
                    "{what}"
                );
                let status = engine.status().unwrap();
                assert_eq!(status.workloads.len(), 1, "{what}: the reservation stays");
                engine
                    .revert(&RevertWhich::Target("pid:4000".into()))
                    .unwrap();
                bench.assert_unchanged(&what);
                assert!(load_ledger(&bench.state).unwrap().is_empty(), "{what}");
                assert!(bench.state.journal_ids().unwrap().is_empty(), "{what}");
                assert!(bench.state.plan_ids().unwrap().is_empty(), "{what}");
            }
        }
    }
}
