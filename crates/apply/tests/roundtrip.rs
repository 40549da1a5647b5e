//! Acceptance 1: every file-based knob kind applied and reverted on every captured host; the
//! tree ends byte-identical. A property test does the same for random subsets in random order.

use std::fs;

use nearnative_apply::{apply, revert, Journal, JournalStatus, RevertTarget};
use nearnative_knob::Step;
use proptest::prelude::*;

use crate::fixtures::SNAPSHOTS;
use crate::steps::every_file_knob;
use crate::tree::{PID, TIDS};
use crate::{id, Bench};

#[test]
fn every_file_knob_round_trips_byte_identically_on_every_snapshot() {
    for name in SNAPSHOTS {
        let bench = Bench::new(name);
        let steps = every_file_knob(&bench.cpus);
        let report = apply(&steps, &bench.backend, &bench.state, &id("vm1")).unwrap();
        for step in &steps {
            let holds = step.holds_target(&bench.backend).unwrap();
            assert!(holds, "{name}: {} after apply", step.describe());
        }
        assert_eq!(
            report.changed.len() + report.skipped.len(),
            steps.len(),
            "{name}"
        );
        // Every plan `from` here is a wrong guess (the target), so each changed knob drifted.
        assert_eq!(report.drifted, report.changed, "{name}");
        let journal = Journal::load(&report.journal).unwrap().unwrap();
        assert_eq!(journal.status, JournalStatus::Applied, "{name}");
        assert_eq!(journal.changes.len(), report.changed.len(), "{name}");
        assert!(journal.changes.iter().all(|s| !s.is_noop()), "{name}");
        assert_ne!(bench.image(), bench.before, "{name}: apply changed nothing");

        let reverted = revert(&bench.state, &RevertTarget::One(id("vm1")), &bench.backend).unwrap();
        assert_eq!(
            reverted.journals[0].restored.len(),
            report.changed.len(),
            "{name}"
        );
        assert!(
            !report.journal.exists(),
            "{name}: journal left after revert"
        );
        bench.assert_unchanged(name);
    }
}

#[test]
fn tree_shows_what_the_kernel_would_after_apply() {
    let bench = Bench::new("16em64t-4s2c2t");
    let steps = every_file_knob(&bench.cpus);
    apply(&steps, &bench.backend, &bench.state, &id("vm1")).unwrap();
    let read = |path: &str| fs::read_to_string(bench.root().join(path)).unwrap();
    let worker = format!("proc/{PID}/task/{}", TIDS[1]);
    assert!(read(&format!("{worker}/cgroup")).contains("3:cpuset:/nearnative-vm1\n"));
    assert!(read(&format!("{worker}/status")).contains("Cpus_allowed_list:\t1\n"));
    assert_eq!(
        read("sys/fs/cgroup/cpuset/nearnative-vm1/tasks"),
        format!("{}\n", TIDS[1])
    );
    assert_eq!(read("sys/fs/cgroup/cpuset/tasks"), format!("{}\n", TIDS[0]));
    assert_eq!(
        read("sys/kernel/mm/transparent_hugepage/enabled"),
        "always madvise [never]\n"
    );
    assert_eq!(read("proc/irq/default_smp_affinity"), "00000001\n");
    assert_eq!(
        read("sys/devices/system/cpu/cpu1/power/pm_qos_resume_latency_us"),
        "n/a\n"
    );
}

/// Steps picked from the full list, in any order: a step whose object does not exist yet (a
/// cpuset file before its directory) fails and rolls back; either way revert restores all.
fn shuffled_subset() -> impl Strategy<Value = Vec<usize>> {
    let count = every_file_knob(&crate::tree::cpus_of_any()).len();
    proptest::sample::subsequence((0..count).collect::<Vec<_>>(), 0..=count).prop_shuffle()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_plans_apply_and_revert_byte_identically(picks in shuffled_subset()) {
        let bench = Bench::new("16em64t-4s2c2t");
        let all = every_file_knob(&bench.cpus);
        let steps: Vec<Step> = picks.iter().map(|&i| all[i].clone()).collect();
        let applied = apply(&steps, &bench.backend, &bench.state, &id("p"));
        if applied.is_err() {
            prop_assert_eq!(bench.image().diff(&bench.before), Vec::<std::path::PathBuf>::new());
        }
        revert(&bench.state, &RevertTarget::All, &bench.backend).unwrap();
        prop_assert_eq!(bench.image().diff(&bench.before), Vec::<std::path::PathBuf>::new());
    }
}
