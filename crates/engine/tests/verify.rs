//! verify judges by what the plan recorded: the IRQs it protected (the default-route
//! interface's) stay excused when the default route moves to another interface after the
//! apply, and a plan recorded by the previous version (notes as sentences, topics as
//! phrases, no protected IRQs) still loads and verifies.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use nearnative_engine::{AppliedPlan, VerifyOptions, VerifyReport, APPLIED_SCHEMA_VERSION};
use nearnative_host::{CpuSet, Severity};
use nearnative_plan::{Note, ProtectedIrq, Topic};
use nearnative_sys::durable;
use nearnative_testkit::tree::{add, IRQS};
use nearnative_verify::threads::TrackerCost;
use nearnative_verify::{
    verdict, CheckKind, CpuCount, IrqActivity, IrqLine, Outcome, Sample, SamplerCost,
};

use crate::{worker_request, Bench};

/// The furnished IRQs as two NICs' vectors: eth0 has the first, eth1 the second.
const NICS: [(&str, u32); 2] = [("eth0", IRQS[0]), ("eth1", IRQS[1])];

/// Two physical NICs (a bus device with `numa_node` and `msi_irqs`), the route via `via`.
fn add_nics(root: &Path, via: &str) {
    for (nic, irq) in NICS {
        add(
            root,
            &format!("/sys/class/net/{nic}/device/numa_node"),
            "0\n",
        );
        let vector = format!("/sys/class/net/{nic}/device/msi_irqs/{irq}");
        add(root, &vector, "msi\n");
    }
    route_via(root, via);
}

fn route_via(root: &Path, nic: &str) {
    let table = format!(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
         {nic}\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\n"
    );
    std::fs::create_dir_all(root.join("proc/net")).unwrap();
    std::fs::write(root.join("proc/net/route"), table).unwrap();
}

fn verify_now(bench: &Bench) -> VerifyReport {
    let options = VerifyOptions {
        sample: Duration::ZERO,
    };
    let engine = bench.engine();
    engine
        .verify("pid:4000", &options, &AtomicBool::new(false))
        .unwrap()
}

/// One second on `cpu` in which both NICs' IRQs fired there 5 times each.
fn both_nics_fired(cpu: u32) -> Sample {
    let line = |irq: u32| IrqLine {
        irq,
        name: String::new(),
        counts: vec![CpuCount { cpu, count: 5 }],
        total: 5,
        affinity_settable: Some(true),
    };
    Sample {
        cpus: CpuSet::from_ids([cpu]),
        target_tids: BTreeSet::new(),
        scope: None,
        duration_ns: 1_000_000_000,
        stopped_early: false,
        irqs: Some(IrqActivity {
            lines: NICS.iter().map(|&(_, irq)| line(irq)).collect(),
            named: Vec::new(),
        }),
        softirqs: Some(Vec::new()),
        cpu_busy: None,
        threads: Vec::new(),
        targets: Vec::new(),
        sampler: SamplerCost {
            cpu_time_ns: 0,
            pinned_to: None,
            longest_poll_period_ns: 10_000_000,
            threads: TrackerCost::default(),
        },
        unknowns: Vec::new(),
        unknowns_dropped: 0,
    }
}

#[test]
fn a_route_moved_after_the_apply_leaves_the_verdict_to_the_plan() {
    let bench = Bench::new("16em64t-4s2c2t");
    add_nics(bench.root(), "eth0");
    let applied = bench.engine().apply(&worker_request()).unwrap();
    let protected = ProtectedIrq {
        irq: NICS[0].1,
        nic: "eth0".into(),
    };
    assert_eq!(applied.plan.protected_irqs, Some(vec![protected]));
    assert!(
        applied
            .plan
            .notes
            .iter()
            .any(|n| matches!(n, Note::DefaultRouteIrq { irq, .. } if *irq == NICS[0].1)),
        "{:?}",
        applied.plan.notes
    );

    route_via(bench.root(), "eth1");
    let report = verify_now(&bench);
    assert_eq!(
        report.expectations.allowed_irqs,
        BTreeSet::from([NICS[0].1]),
        "eth0's IRQ, as the plan recorded, not eth1's, the route's now"
    );
    let cpu = applied.plan.allocation.slots[0].cpu;
    let judged = verdict(&both_nics_fired(cpu), &report.expectations);
    let irqs = judged
        .checks
        .iter()
        .find(|c| c.kind == CheckKind::Irqs)
        .expect("an IRQ check");
    assert_eq!(irqs.outcome, Outcome::Fail);
    let failed: Vec<&str> = irqs
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Critical)
        .map(|f| f.object.as_str())
        .collect();
    assert_eq!(
        failed,
        [format!("IRQ {}", NICS[1].1)],
        "eth1's IRQ was moved off: it fails"
    );
}

#[test]
fn a_plan_recorded_before_notes_were_typed_still_loads_and_verifies() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plan-before-typed-notes.json");
    let record: AppliedPlan = durable::load(&fixture, APPLIED_SCHEMA_VERSION)
        .unwrap()
        .expect("the fixture exists");
    let plan = &record.plan;
    assert_eq!(plan.protected_irqs, None);
    let topics: Vec<Topic> = plan.advisories.iter().map(|a| a.topic).collect();
    assert_eq!(topics, [Topic::KernelCommandLine, Topic::Fencing]);
    assert_eq!(
        plan.notes.first().map(Note::to_string).as_deref(),
        Some(
            "IRQ 24 left on CPUs 0-15: eth0 carries the default route (name it with --nic to \
             steer its IRQs)"
        )
    );
    assert!(plan.notes.iter().all(|n| matches!(n, Note::Text { .. })));

    let bench = Bench::new("16em64t-4s2c2t");
    add_nics(bench.root(), "eth0");
    bench.state.ensure().unwrap();
    let stored = bench.state.plans_dir().join("pid-4000.json");
    std::fs::copy(&fixture, stored).unwrap();
    let report = verify_now(&bench);
    assert_eq!(
        report.expectations.allowed_irqs,
        BTreeSet::from([NICS[0].1]),
        "without recorded IRQs, those of the default route now"
    );
    let knobs = report
        .verdict
        .checks
        .iter()
        .filter(|c| c.kind == CheckKind::Knobs);
    assert!(knobs.count() > 0, "its knobs are read back");

    let unknown = bench
        .engine()
        .verify(
            "vm:other",
            &VerifyOptions {
                sample: Duration::ZERO,
            },
            &AtomicBool::new(false),
        )
        .unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "vm:other: nothing is applied for it (applied: pid:4000)"
    );
}
