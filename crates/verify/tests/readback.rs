//! The knob read-back on a snapshot tree: every knob of a plan whose targets were written
//! holds; one changed behind nearnative's back fails its mechanism's check, named with its
//! value now and the plan's; an exclusive thread that exited fails exclusivity.

use nearnative_host::{Host, InspectOptions, Mechanism, Root};
use nearnative_knob::TreeBackend;
use nearnative_plan::{plan, Ledger, Plan, PlanRequest};
use nearnative_testkit::tree::{furnish, TIDS};
use nearnative_verify::{read_back, Check, CheckKind, ExitedThread, Outcome};

/// The fake process's second thread alone, planned on the snapshot at `root`.
fn worker_plan(root: &Root) -> Plan {
    let mut request = PlanRequest::new(format!("pid:{}", TIDS[0]).parse().unwrap());
    request.threads = Some(vec![TIDS[1]]);
    let host = Host::read(root, &InspectOptions::default());
    plan(&host, &request, &Ledger::new()).unwrap()
}

fn knobs_outcome(checks: &[Check], mechanism: Mechanism) -> Outcome {
    let check = checks
        .iter()
        .find(|c| c.kind == CheckKind::Knobs && c.mechanism == mechanism);
    check
        .map(|c| c.outcome)
        .expect("a knobs check per mechanism")
}

#[test]
fn every_knob_reads_back_and_a_drifted_one_fails_its_mechanism() {
    let snapshot = nearnative_testkit::extract("16em64t-4s2c2t");
    furnish(&snapshot.root);
    let plan = worker_plan(&Root::new(&snapshot.root));
    let backend = TreeBackend::new(&snapshot.root);
    for change in &plan.changes {
        change.step.write_target(&backend).unwrap();
    }
    let fresh = read_back(&plan, &backend, Vec::new()).checks();
    assert!(!fresh.is_empty());
    assert!(
        fresh.iter().all(|c| c.outcome == Outcome::Pass),
        "{fresh:#?}"
    );

    let file = snapshot.root.join("proc/sys/kernel/timer_migration");
    std::fs::write(&file, "1\n").unwrap();
    let drifted = read_back(&plan, &backend, Vec::new()).checks();
    assert_eq!(
        knobs_outcome(&drifted, Mechanism::Exclusivity),
        Outcome::Fail
    );
    assert_eq!(knobs_outcome(&drifted, Mechanism::Memory), Outcome::Pass);
    let offender = drifted
        .iter()
        .flat_map(|c| c.offenders())
        .find(|f| f.object.contains("kernel.timer_migration"))
        .expect("the drifted knob is named");
    assert_eq!(offender.evidence, "is true, the plan set false");
}

#[test]
fn an_exited_exclusive_thread_fails_exclusivity() {
    let snapshot = nearnative_testkit::extract("16em64t-4s2c2t");
    furnish(&snapshot.root);
    let plan = worker_plan(&Root::new(&snapshot.root));
    let backend = TreeBackend::new(&snapshot.root);
    for change in &plan.changes {
        change.step.write_target(&backend).unwrap();
    }
    let exited = ExitedThread {
        pid: TIDS[0],
        tid: TIDS[1],
        start_time: 1,
    };
    let checks = read_back(&plan, &backend, vec![exited]).checks();
    assert_eq!(
        knobs_outcome(&checks, Mechanism::Exclusivity),
        Outcome::Fail
    );
    let offender = checks
        .iter()
        .flat_map(|c| c.offenders())
        .find(|f| f.object == format!("thread {} of process {}", TIDS[1], TIDS[0]))
        .expect("the exited thread is named");
    assert!(offender.evidence.contains("exited since the apply"));
}
