//! reconcile against the live host (a furnished tree here): a knob another tool changed is
//! repaired (or only reported), threads born since the apply are placed through the journal,
//! a workload that outgrew its allocation is handed back for a fresh apply, and revert still
//! restores what was there before the first apply.

use std::fs;
use std::path::Path;

use nearnative_apply::journal::Journal;
use nearnative_apply::JournalId;
use nearnative_engine::{workload_runs, AppliedPlan, DriftMode, Reconciled, RevertWhich};
use nearnative_host::{CpuSet, Root};
use nearnative_knob::exclusivity::task::ThreadAffinity;
use nearnative_knob::{Knob, Step, TreeBackend};
use nearnative_plan::PlanRequest;
use nearnative_testkit::tree::{
    add, add_process, cpus, list_ids, stat_line, TreeImage, START_TIME,
};

use crate::{worker_request, Bench};

/// Fenced by affinity alone, and by a v1 cpuset hierarchy (the plan makes cgroups).
const SNAPSHOTS: [&str; 2] = ["16em64t-4s2c2t", "offline-cpu0-node0"];

/// The worker thread the plan makes exclusive.
fn worker() -> ThreadAffinity {
    ThreadAffinity {
        pid: 4000,
        tid: 4001,
        start_time: START_TIME,
    }
}

fn affinity(bench: &Bench, knob: &ThreadAffinity) -> CpuSet {
    knob.read(&TreeBackend::new(bench.root())).unwrap()
}

/// Another tool sets the thread's affinity.
fn set_affinity(bench: &Bench, knob: &ThreadAffinity, cpus: &CpuSet) {
    knob.write(&TreeBackend::new(bench.root()), cpus).unwrap();
}

/// A thread `tid` named `comm` started in process `pid` (in the root cpuset, on every CPU),
/// as the kernel lists it; nothing else of the process changes.
fn add_thread(root: &Path, pid: u32, tid: u32, comm: &str) {
    let all = cpus(root);
    let list = all.online.to_list();
    let mask = all.online.to_mask(all.mask_words);
    let dir = format!("/proc/{pid}/task/{tid}");
    let stat = stat_line(tid).replace("(fake worker)", &format!("({comm})"));
    add(root, &format!("{dir}/stat"), &stat);
    let status = format!(
        "Name:\t{comm}\nPid:\t{tid}\nCpus_allowed:\t{mask}\nCpus_allowed_list:\t{list}\nvoluntary_ctxt_switches:\t3\n"
    );
    add(root, &format!("{dir}/status"), &status);
    add(
        root,
        &format!("{dir}/cgroup"),
        "4:memory:/user\n3:cpuset:/\n0::/init.scope\n",
    );
    list_ids(root, "/sys/fs/cgroup/cpuset/tasks", &[tid]);
}

/// What reconcile finds on a host where the workload was just applied: nothing.
fn assert_clean(reconciled: &Reconciled, what: &str) {
    assert!(reconciled.is_clean(), "{what}: {reconciled:?}");
}

#[test]
fn an_applied_workload_on_an_unchanged_host_reconciles_to_nothing() {
    for snapshot in SNAPSHOTS {
        an_applied_workload_on_an_unchanged_host_reconciles_to_nothing_on(snapshot);
    }
}

fn an_applied_workload_on_an_unchanged_host_reconciles_to_nothing_on(snapshot: &str) {
    let bench = Bench::new(snapshot);
    let engine = bench.engine();
    engine.apply(&worker_request()).unwrap();
    let applied = TreeImage::take(bench.root());
    assert_clean(
        &engine.reconcile("pid:4000", DriftMode::Repair).unwrap(),
        "just applied",
    );
    assert!(TreeImage::take(bench.root()).diff(&applied).is_empty());
    assert!(worker_runs(&bench));
}

#[test]
fn a_widened_affinity_is_reported_or_repaired_and_revert_restores_the_original() {
    for snapshot in SNAPSHOTS {
        a_widened_affinity_is_reported_or_repaired_and_revert_restores_the_original_on(snapshot);
    }
}

fn a_widened_affinity_is_reported_or_repaired_and_revert_restores_the_original_on(snapshot: &str) {
    let bench = Bench::new(snapshot);
    let engine = bench.engine();
    engine.apply(&worker_request()).unwrap();
    let pinned = affinity(&bench, &worker());
    let wide = cpus(bench.root()).online;
    assert_ne!(pinned, wide);
    set_affinity(&bench, &worker(), &wide);

    let reported = engine.reconcile("pid:4000", DriftMode::Report).unwrap();
    assert_eq!(reported.reported.len(), 1, "{reported:?}");
    assert!(reported.reported[0].contains("4001"), "{reported:?}");
    assert!(reported.repaired.is_empty() && reported.added.is_empty());
    assert_eq!(affinity(&bench, &worker()), wide, "report leaves it");

    let repaired = engine.reconcile("pid:4000", DriftMode::Repair).unwrap();
    assert_eq!(repaired.repaired, reported.reported, "{repaired:?}");
    assert!(repaired.added.is_empty() && repaired.replan.is_none());
    assert_eq!(affinity(&bench, &worker()), pinned);
    assert_clean(
        &engine.reconcile("pid:4000", DriftMode::Repair).unwrap(),
        "after the repair",
    );

    engine.revert(&RevertWhich::All).unwrap();
    bench.assert_unchanged("revert after a repair");
}

#[test]
fn threads_born_since_are_placed_and_revert_restores_them() {
    for snapshot in SNAPSHOTS {
        threads_born_since_are_placed_and_revert_restores_them_on(snapshot);
    }
}

fn threads_born_since_are_placed_and_revert_restores_them_on(snapshot: &str) {
    // The same host with the new thread and bystander and no apply: what revert must leave.
    let expected = Bench::new(snapshot);
    add_thread(expected.root(), 4000, 4002, "IO iothread1");
    add_process(expected.root(), 4200, &[4200], &cpus(expected.root()));

    let bench = Bench::new(snapshot);
    let engine = bench.engine();
    let applied = engine.apply(&worker_request()).unwrap();
    let exclusive = applied.plan.allocation.held();
    add_thread(bench.root(), 4000, 4002, "IO iothread1");
    add_process(bench.root(), 4200, &[4200], &cpus(bench.root()));

    let reconciled = engine.reconcile("pid:4000", DriftMode::Report).unwrap();
    assert!(reconciled.replan.is_none(), "{reconciled:?}");
    for tid in ["thread 4002", "thread 4200"] {
        assert!(
            reconciled.added.iter().any(|k| k.contains(tid)),
            "{tid} not placed: {reconciled:?}"
        );
    }
    for (pid, tid) in [(4000, 4002), (4200, 4200)] {
        let knob = ThreadAffinity {
            pid,
            tid,
            start_time: START_TIME,
        };
        let now = affinity(&bench, &knob);
        assert!(now.is_disjoint(&exclusive), "{tid} on {now}");
    }
    assert_clean(
        &engine.reconcile("pid:4000", DriftMode::Repair).unwrap(),
        "after placing them",
    );
    let status = engine.status().unwrap();
    assert!(status.workloads[0].changes > applied.report.changed.len());

    engine.revert(&RevertWhich::All).unwrap();
    let diff = TreeImage::take(bench.root()).diff(&TreeImage::take(expected.root()));
    assert!(diff.is_empty(), "revert left {diff:?}");
}

#[test]
fn a_workload_that_outgrew_its_allocation_is_handed_back_untouched() {
    for snapshot in SNAPSHOTS {
        a_workload_that_outgrew_its_allocation_is_handed_back_untouched_on(snapshot);
    }
}

fn a_workload_that_outgrew_its_allocation_is_handed_back_untouched_on(snapshot: &str) {
    let mut bench = Bench::new(snapshot);
    add_process(bench.root(), 4100, &[4100], &cpus(bench.root()));
    bench.before = TreeImage::take(bench.root());
    let engine = bench.engine();
    engine
        .apply(&PlanRequest::new("pid:4100".parse().unwrap()))
        .unwrap();
    add_thread(bench.root(), 4100, 4101, "CPU 1/KVM");
    let grown = TreeImage::take(bench.root());

    let reconciled = engine.reconcile("pid:4100", DriftMode::Repair).unwrap();
    let reason = reconciled.replan.as_deref().unwrap_or_default();
    assert!(reason.contains("2 exclusive thread(s)"), "{reconciled:?}");
    assert!(reconciled.repaired.is_empty() && reconciled.added.is_empty());
    assert!(TreeImage::take(bench.root()).diff(&grown).is_empty());

    engine.revert(&RevertWhich::All).unwrap();
    fs::remove_dir_all(bench.root().join("proc/4100/task/4101")).unwrap();
    let tasks = bench.root().join("sys/fs/cgroup/cpuset/tasks");
    let listed = fs::read_to_string(&tasks).unwrap().replace("4101\n", "");
    fs::write(&tasks, listed).unwrap();
    bench.assert_unchanged("revert");
}

#[test]
fn an_exited_thread_means_the_target_is_gone() {
    for snapshot in SNAPSHOTS {
        an_exited_thread_means_the_target_is_gone_on(snapshot);
    }
}

fn an_exited_thread_means_the_target_is_gone_on(snapshot: &str) {
    let bench = Bench::new(snapshot);
    let engine = bench.engine();
    engine.apply(&worker_request()).unwrap();
    assert!(worker_runs(&bench));
    fs::remove_dir_all(bench.root().join("proc/4000/task/4001")).unwrap();
    assert!(!worker_runs(&bench), "its only exclusive thread is gone");
}

/// Whether the worker applied by `worker_request` still runs, by its plan record.
fn worker_runs(bench: &Bench) -> bool {
    let path = bench
        .state
        .plan_path(&JournalId::try_from("pid-4000").unwrap());
    let schema = nearnative_engine::APPLIED_SCHEMA_VERSION;
    let record: AppliedPlan = nearnative_sys::durable::load(&path, schema)
        .unwrap()
        .unwrap();
    workload_runs(&Root::new(bench.root()), &record.threads)
}

#[test]
fn a_knob_found_at_its_target_when_applied_keeps_that_target_as_its_prior() {
    for snapshot in SNAPSHOTS {
        a_knob_found_at_its_target_when_applied_keeps_that_target_as_its_prior_on(snapshot);
    }
}

fn a_knob_found_at_its_target_when_applied_keeps_that_target_as_its_prior_on(snapshot: &str) {
    let bench = Bench::new(snapshot);
    let engine = bench.engine();
    let applied = engine.apply(&worker_request()).unwrap();
    let pinned = affinity(&bench, &worker());
    // The apply found the worker already pinned (set between the plan and the write): its
    // journal holds no step for it, and the value before the apply was the plan's target.
    let path = &applied.report.journal;
    let mut journal = Journal::load(path).unwrap().unwrap();
    let worker_step = |step: &Step| matches!(step, Step::ThreadAffinity(c) if c.knob == worker());
    assert!(journal.changes.iter().any(worker_step));
    journal.changes.retain(|step| !worker_step(step));
    journal.store(path).unwrap();

    let wide = cpus(bench.root()).online;
    set_affinity(&bench, &worker(), &wide);
    let repaired = engine.reconcile("pid:4000", DriftMode::Repair).unwrap();
    assert_eq!(repaired.repaired.len(), 1, "{repaired:?}");
    assert_eq!(affinity(&bench, &worker()), pinned);

    engine.revert(&RevertWhich::All).unwrap();
    assert_eq!(
        affinity(&bench, &worker()),
        pinned,
        "revert wrote the drifted value, which was never there before the apply"
    );
}
