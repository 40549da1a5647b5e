//! Acceptance 1, crash part: the executor is stopped dead (as by kill -9) right after each
//! journal write, before and after the knob write that follows; revert restores the tree
//! exactly every time. Journal writes count per journaled step (see `fault.rs`), so a batch
//! made durable by one append still offers a crash before and after each of its knob writes.

use nearnative_apply::{
    apply_with_crash, revert, ApplyError, Crash, CrashPoint, Journal, JournalStatus, RevertTarget,
};
use nearnative_host::CpuSet;
use nearnative_knob::exclusivity::cgroup::TaskCgroup;
use nearnative_knob::exclusivity::cgroup::{CgroupDir, CpusetCpus, CpusetMems, Presence};
use nearnative_knob::exclusivity::task::ThreadAffinity;
use nearnative_knob::Step;

use crate::steps::{change, cpuset_hierarchy, every_file_knob, v1_cgroup};
use crate::tree::{add_process, TreeImage, PID, START_TIME};
use crate::{id, Bench};

/// Split in two so the test threads run them side by side. The 128-CPU ARM snapshot is left
/// out of the sweep: its ten thousand files make 48 whole-tree comparisons take ~20 s, and its
/// full round trip is checked in `roundtrip`.
#[test]
fn revert_restores_the_tree_after_a_crash_at_every_journal_write_smp_hosts() {
    for name in [
        "16em64t-4s2c2t",
        "20em64t-hybrid-1p6c2t+2ca4co1t",
        "offline-cpu0-node0",
    ] {
        let bench = Bench::new(name);
        let steps = every_file_knob(&bench.cpus);
        crash_sweep(&bench, &steps, name);
    }
}

#[test]
fn revert_restores_the_tree_after_a_crash_at_every_journal_write_numa_hosts() {
    for name in ["16amd64-8n2c", "64amd64-4s2n4ca2co"] {
        let bench = Bench::new(name);
        let steps = every_file_knob(&bench.cpus);
        crash_sweep(&bench, &steps, name);
    }
}

/// Seven threads each get an affinity and then a cgroup: two batches of seven steps, each
/// made durable by one append.
#[test]
fn revert_restores_the_tree_after_a_crash_inside_a_batch_of_thread_steps() {
    let mut bench = Bench::new("16em64t-4s2c2t");
    let tids: Vec<u32> = (PID..PID + 8).collect();
    add_process(bench.root(), PID, &tids, &bench.cpus);
    bench.before = TreeImage::take(bench.root());
    let steps = thread_batch(&bench, &tids[1..]);
    let report = nearnative_apply::apply(&steps, &bench.backend, &bench.state, &id("b")).unwrap();
    assert_eq!(report.changed.len(), steps.len());
    let log = std::fs::read_to_string(&report.journal).unwrap();
    // The header, the three cgroup steps, two batches, the status.
    assert_eq!(log.lines().count(), 7, "{log}");
    revert(&bench.state, &RevertTarget::All, &bench.backend).unwrap();
    bench.assert_unchanged("batch applied and reverted");
    crash_sweep(&bench, &steps, "batch");
}

fn thread_batch(bench: &Bench, tids: &[u32]) -> Vec<Step> {
    let exclusive = CpuSet::from_ids([bench.cpus.second]);
    let nn = v1_cgroup("/nearnative-batch");
    let mut steps = vec![
        change(CgroupDir { cgroup: nn.clone() }, Presence::Present),
        change(CpusetCpus { cgroup: nn.clone() }, exclusive.clone()),
        change(CpusetMems { cgroup: nn.clone() }, CpuSet::from_ids([0])),
    ];
    for &tid in tids {
        let knob = ThreadAffinity {
            pid: PID,
            tid,
            start_time: START_TIME,
        };
        steps.push(change(knob, exclusive.clone()));
        let knob = TaskCgroup {
            pid: PID,
            tid,
            start_time: START_TIME,
            hierarchy: cpuset_hierarchy(),
        };
        steps.push(change(knob, nn.path.clone()));
    }
    steps
}

fn crash_sweep(bench: &Bench, steps: &[Step], name: &str) {
    // The empty journal, one per change, the final one.
    let journal_writes = steps.len() + 2;
    for journal_write in 1..=journal_writes {
        for point in [CrashPoint::BeforeKnobWrite, CrashPoint::AfterKnobWrite] {
            let crash = Crash {
                journal_write,
                point,
            };
            let what = format!("{name}: {crash:?}");
            let err =
                apply_with_crash(steps, &bench.backend, &bench.state, &id("c"), crash).unwrap_err();
            assert!(matches!(err, ApplyError::Crashed { .. }), "{what}: {err}");
            let path = bench.state.journal_path(&id("c"));
            let journal = Journal::load(&path).unwrap().unwrap();
            let expected_status = match journal_write == journal_writes {
                true => JournalStatus::Applied,
                false => JournalStatus::InProgress,
            };
            assert_eq!(journal.status, expected_status, "{what}");
            if journal_write > 1 && journal_write < journal_writes {
                // Every step here changes, so the n-th journaled step is change n - 2.
                let step = &journal.changes[journal_write - 2];
                let written = step.holds_target(&bench.backend).unwrap();
                assert_eq!(written, point == CrashPoint::AfterKnobWrite, "{what}");
            }
            revert(&bench.state, &RevertTarget::All, &bench.backend).unwrap();
            assert!(!path.exists(), "{what}: journal left");
            bench.assert_unchanged(&what);
        }
    }
}
