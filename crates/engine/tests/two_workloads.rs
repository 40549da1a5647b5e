//! Two workloads on one host share the host-wide knobs (IRQ masks, the workqueue mask,
//! timer migration): reverting the older one first would undo the newer one's isolation and
//! later bring its own values back, so it is refused; newest first, or `--all`, restores the
//! tree exactly.

use nearnative_engine::{load_ledger, RevertWhich};
use nearnative_plan::PlanRequest;
use nearnative_testkit::tree::{add_process, cpus, TreeImage};

use crate::{worker_request, Bench};

fn second_request() -> PlanRequest {
    let mut request = PlanRequest::new("pid:4100".parse().unwrap());
    request.threads = Some(vec![4101]);
    request
}

fn two_applied() -> Bench {
    let mut bench = Bench::new("16em64t-4s2c2t");
    add_process(bench.root(), 4100, &[4100, 4101], &cpus(bench.root()));
    bench.before = TreeImage::take(bench.root());
    let engine = bench.engine();
    engine.apply(&worker_request()).unwrap();
    // The journal order is by start time in milliseconds.
    std::thread::sleep(std::time::Duration::from_millis(5));
    engine.apply(&second_request()).unwrap();
    bench
}

#[test]
fn the_older_workload_cannot_be_reverted_under_the_newer_one() {
    let bench = two_applied();
    let engine = bench.engine();
    let applied = TreeImage::take(bench.root());
    let err = engine
        .revert(&RevertWhich::Target("pid:4000".into()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("pid:4100 was applied after it"), "{err}");
    assert!(err.contains("revert pid:4100 first"), "{err}");
    assert!(TreeImage::take(bench.root()).diff(&applied).is_empty());

    engine
        .revert(&RevertWhich::Target("pid:4100".into()))
        .unwrap();
    engine
        .revert(&RevertWhich::Target("pid:4000".into()))
        .unwrap();
    bench.assert_unchanged("newest first");
    assert!(load_ledger(&bench.state).unwrap().is_empty());
}

#[test]
fn revert_all_undoes_both_newest_first() {
    let bench = two_applied();
    let reverted = bench.engine().revert(&RevertWhich::All).unwrap();
    assert_eq!(reverted.workloads.len(), 2);
    bench.assert_unchanged("revert --all");
    assert!(bench.engine().status().unwrap().workloads.is_empty());
}
