//! Acceptance 1 through the engine: a real plan for the fake process, applied to each
//! snapshot and reverted, leaves the tree byte-identical, the ledger empty and no record; and
//! so does a revert after a crash at any journal write.

use nearnative_apply::{apply_with_crash, Crash, CrashPoint, JournalId};
use nearnative_engine::{load_ledger, RevertWhich};
use nearnative_knob::TreeBackend;
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
fn a_crash_at_any_journal_write_of_a_real_plan_is_reverted_exactly() {
    for name in ["16em64t-4s2c2t", "offline-cpu0-node0"] {
        let changes = {
            let bench = Bench::new(name);
            bench
                .engine()
                .apply(&worker_request())
                .unwrap()
                .report
                .changed
                .len()
        };
        // The empty journal, one per change, the final one.
        for journal_write in 1..=changes + 2 {
            for point in [CrashPoint::BeforeKnobWrite, CrashPoint::AfterKnobWrite] {
                let bench = Bench::new(name);
                let plan = bench.engine().plan(&worker_request()).unwrap();
                let id = JournalId::try_from(plan.id.as_str()).unwrap();
                let backend = TreeBackend::new(bench.root());
                let crash = Crash {
                    journal_write,
                    point,
                };
                let result = apply_with_crash(&plan.steps(), &backend, &bench.state, &id, crash);
                assert!(result.is_err(), "{name}: no crash at write {journal_write}");
                bench.engine().revert(&RevertWhich::All).unwrap();
                bench
                    .assert_unchanged(&format!("{name}: crash {point:?} at write {journal_write}"));
            }
        }
    }
}
