//! verify's knob read-back on a snapshot tree: every knob of the applied plan holds right
//! after the apply, and one changed behind nearnative's back fails its mechanism's check,
//! named with its value now and the plan's.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use nearnative_engine::VerifyOptions;
use nearnative_host::Mechanism;
use nearnative_verify::{CheckKind, Outcome};

use crate::{worker_request, Bench};

fn knobs_outcome(report: &nearnative_engine::VerifyReport, mechanism: Mechanism) -> Outcome {
    let check = report
        .verdict
        .checks
        .iter()
        .find(|c| c.kind == CheckKind::Knobs && c.mechanism == mechanism);
    check
        .map(|c| c.outcome)
        .expect("a knobs check per mechanism")
}

#[test]
fn every_knob_reads_back_and_a_drifted_one_fails_its_mechanism() {
    let bench = Bench::new("16em64t-4s2c2t");
    let engine = bench.engine();
    engine.apply(&worker_request()).unwrap();
    let options = VerifyOptions {
        sample: Duration::ZERO,
    };
    let stop = AtomicBool::new(false);
    let fresh = engine.verify("pid:4000", &options, &stop).unwrap();
    assert_eq!(fresh.verdict.outcome, Outcome::Pass, "{:#?}", fresh.verdict);
    assert!(fresh.sample.is_none());

    let file = bench.root().join("proc/sys/kernel/timer_migration");
    std::fs::write(&file, "1\n").unwrap();
    let drifted = engine.verify("pid:4000", &options, &stop).unwrap();
    assert_eq!(drifted.verdict.outcome, Outcome::Fail);
    assert_eq!(
        knobs_outcome(&drifted, Mechanism::Exclusivity),
        Outcome::Fail
    );
    assert_eq!(knobs_outcome(&drifted, Mechanism::Memory), Outcome::Pass);
    let offender = drifted
        .verdict
        .checks
        .iter()
        .flat_map(|c| c.offenders())
        .find(|f| f.object.contains("kernel.timer_migration"))
        .expect("the drifted knob is named");
    assert_eq!(offender.evidence, "is true, the plan set false");

    let unknown = engine.verify("vm:other", &options, &stop).unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "vm:other: nothing is applied for it (applied: pid:4000)"
    );
}
