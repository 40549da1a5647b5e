//! Workloads on one host share the host-wide knobs (IRQ masks, the workqueue mask) and the
//! bystander threads they move off their CPUs. Any of them can be reverted first: a shared
//! knob is left as it is and its prior handed to the next newer journal that holds it, so the
//! tree is byte-identical once all are reverted, in any order.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use nearnative_apply::{in_created_cgroup, Journal, JournalId};
use nearnative_engine::{load_ledger, DriftMode, Engine, RevertWhich, VerifyOptions};
use nearnative_knob::Step;
use nearnative_plan::PlanRequest;
use nearnative_testkit::tree::{add_process, cpus, TreeImage};
use nearnative_verify::Reading;

use crate::{worker_request, Bench};

/// Fenced by affinity alone, and by a v1 cpuset hierarchy (the plan makes cgroups).
const SNAPSHOTS: [&str; 2] = ["16em64t-4s2c2t", "offline-cpu0-node0"];

/// `pid:4000` (the fake worker), then these, each a process with one worker thread.
const OTHERS: [u32; 2] = [4100, 4200];

fn request(pid: u32) -> PlanRequest {
    let mut request = PlanRequest::new(format!("pid:{pid}").parse().unwrap());
    request.threads = Some(vec![pid + 1]);
    request
}

fn target(pid: u32) -> RevertWhich {
    RevertWhich::Target(format!("pid:{pid}"))
}

/// `count` workloads applied one after another, oldest `pid:4000`.
fn applied(snapshot: &str, count: usize) -> Bench {
    let mut bench = Bench::new(snapshot);
    for pid in OTHERS {
        add_process(bench.root(), pid, &[pid, pid + 1], &cpus(bench.root()));
    }
    bench.before = TreeImage::take(bench.root());
    let engine = bench.engine();
    engine.apply(&worker_request()).unwrap();
    for pid in &OTHERS[..count - 1] {
        engine.apply(&request(*pid)).unwrap();
    }
    bench
}

fn journal(bench: &Bench, pid: u32) -> Journal {
    let id = JournalId::try_from(format!("pid-{pid}")).unwrap();
    Journal::load(&bench.state.journal_path(&id))
        .unwrap()
        .unwrap()
}

/// The first change of `step`'s knob in `journal`.
fn first_change<'j>(journal: &'j Journal, step: &Step) -> Option<&'j Step> {
    journal.changes.iter().find(|c| c.same_knob(step))
}

fn assert_ledger_holds(engine: &Engine, bench: &Bench, pids: &[u32], what: &str) {
    let ledger = load_ledger(&bench.state).unwrap();
    let mut held: Vec<String> = ledger.iter().map(|a| a.workload().0.clone()).collect();
    held.sort();
    let expected: Vec<String> = pids.iter().map(|p| format!("pid:{p}")).collect();
    assert_eq!(held, expected, "{what}");
    assert_eq!(
        engine.status().unwrap().workloads.len(),
        pids.len(),
        "{what}"
    );
}

#[test]
fn the_older_workload_reverts_first_and_hands_its_priors_over() {
    for snapshot in SNAPSHOTS {
        the_older_workload_reverts_first_and_hands_its_priors_over_on(snapshot);
    }
}

fn the_older_workload_reverts_first_and_hands_its_priors_over_on(snapshot: &str) {
    let bench = applied(snapshot, 2);
    let engine = bench.engine();
    let older = journal(&bench, 4000);
    // A newer plan may narrow the older one's own cgroups, which go with its revert.
    let (gone, shared): (Vec<&Step>, Vec<&Step>) = older
        .changes
        .iter()
        .filter(|s| first_change(&journal(&bench, 4100), s).is_some())
        .partition(|s| in_created_cgroup(s, &older.changes));
    assert!(!shared.is_empty(), "{snapshot}: the two share no knob");

    let reverted = engine.revert(&target(4000)).unwrap();
    assert_eq!(reverted.workloads.len(), 1, "{snapshot}");
    let handed = &reverted.report.journals[0].handed_over;
    assert!(!handed.is_empty(), "{snapshot}");
    assert!(handed.iter().all(|h| h.to.as_str() == "pid-4100"));
    let newer = journal(&bench, 4100);
    for step in &shared {
        let now = first_change(&newer, step).unwrap();
        assert!(
            now.same_prior(step),
            "{snapshot}: {now:?} has not {step:?}'s prior"
        );
    }
    for step in &gone {
        assert!(first_change(&newer, step).is_none(), "{snapshot}: {step:?}");
    }
    assert_ledger_holds(&engine, &bench, &[4100], snapshot);

    engine.revert(&target(4100)).unwrap();
    bench.assert_unchanged(&format!("{snapshot}: older first"));
    assert!(load_ledger(&bench.state).unwrap().is_empty());
    assert!(bench.state.journal_ids().unwrap().is_empty());
}

#[test]
fn three_workloads_revert_in_any_order_to_the_tree_before() {
    let orders = [
        [4000, 4100, 4200],
        [4000, 4200, 4100],
        [4100, 4000, 4200],
        [4100, 4200, 4000],
        [4200, 4000, 4100],
        [4200, 4100, 4000],
    ];
    for snapshot in SNAPSHOTS {
        for order in orders {
            let what = format!("{snapshot}: reverted in order {order:?}");
            let bench = applied(snapshot, 3);
            let engine = bench.engine();
            for (i, pid) in order.iter().enumerate() {
                engine.revert(&target(*pid)).expect(&what);
                let mut left = order[i + 1..].to_vec();
                left.sort();
                assert_ledger_holds(&engine, &bench, &left, &what);
            }
            bench.assert_unchanged(&what);
        }
    }
}

#[test]
fn after_the_older_one_goes_the_newer_one_reconciles_to_its_fresh_plan() {
    for snapshot in SNAPSHOTS {
        after_the_older_one_goes_the_newer_one_reconciles_to_its_fresh_plan_on(snapshot);
    }
}

fn after_the_older_one_goes_the_newer_one_reconciles_to_its_fresh_plan_on(snapshot: &str) {
    let bench = applied(snapshot, 2);
    let engine = bench.engine();
    let host_wide = |location: &str| {
        location.starts_with("/proc/irq") || location.starts_with("/sys/devices/virtual")
    };
    let read = |location: &str| std::fs::read(bench.root().join(&location[1..])).unwrap();
    let newer = journal(&bench, 4100);
    let newer_values: Vec<(String, Vec<u8>)> = newer
        .changes
        .iter()
        .map(|s| s.describe().location)
        .filter(|l| host_wide(l))
        .map(|l| (l.clone(), read(&l)))
        .collect();
    assert!(!newer_values.is_empty(), "{snapshot}");

    engine.revert(&target(4000)).unwrap();
    for (location, value) in &newer_values {
        assert_eq!(
            &read(location),
            value,
            "{snapshot}: {location} is the newer one's"
        );
    }
    let reconciled = engine.reconcile("pid:4100", DriftMode::Repair).unwrap();
    assert!(
        reconciled.failed.is_empty() && reconciled.replan.is_none(),
        "{snapshot}: {reconciled:?}"
    );
    // Its own main thread may now use the core the older workload held.
    let main = "affinity of thread 4100 of process 4100 (/proc/4100/task/4100/status)";
    assert!(
        reconciled.repaired.iter().any(|k| k == main),
        "{snapshot}: {reconciled:?}"
    );
    let again = engine.reconcile("pid:4100", DriftMode::Repair).unwrap();
    assert!(again.is_clean(), "{snapshot}: {again:?}");
    let options = VerifyOptions {
        sample: Duration::ZERO,
    };
    let verified = engine
        .verify("pid:4100", &options, &AtomicBool::new(false))
        .unwrap();
    let differing: Vec<_> = verified
        .readback
        .readings
        .iter()
        .filter(|r| !matches!(r.state, Reading::Holds))
        .collect();
    assert!(
        differing.is_empty(),
        "{snapshot}: verify finds {differing:?}"
    );

    engine.revert(&target(4100)).unwrap();
    bench.assert_unchanged(snapshot);
}

#[test]
fn revert_all_undoes_every_one_newest_first() {
    for snapshot in SNAPSHOTS {
        let bench = applied(snapshot, 3);
        let reverted = bench.engine().revert(&RevertWhich::All).unwrap();
        assert_eq!(reverted.workloads.len(), 3, "{snapshot}");
        bench.assert_unchanged(&format!("{snapshot}: revert --all"));
        assert!(bench.engine().status().unwrap().workloads.is_empty());
    }
}

#[test]
fn an_apply_counting_pending_admissions_leaves_their_cores_and_records_only_itself() {
    let mut bench = Bench::new("offline-cpu0-node0");
    add_process(bench.root(), 4100, &[4100, 4101], &cpus(bench.root()));
    bench.before = TreeImage::take(bench.root());
    let engine = bench.engine();
    let promised = engine.admit(&request(4100), 1, &[]).unwrap();
    let alone = engine.plan(&worker_request()).unwrap().allocation;
    assert_eq!(
        alone.exclusive_cpus, promised.exclusive_cpus,
        "planned against the ledger alone, it lands on the promised cores"
    );

    let applied = engine
        .apply_pending(&worker_request(), "cli", std::slice::from_ref(&promised))
        .unwrap();
    let cpus = &applied.plan.allocation.exclusive_cpus;
    assert!(
        cpus.intersection(&promised.exclusive_cpus).is_empty(),
        "{cpus} overlaps the admission {}",
        promised.exclusive_cpus
    );
    assert_ledger_holds(&engine, &bench, &[4000], "the admission is not recorded");
    engine.revert(&target(4000)).unwrap();
    bench.assert_unchanged("reverted");
}
