//! The verdict, table-driven over hand-made samples: which findings fail, warn or only inform.

use std::collections::BTreeSet;

use nearnative_host::tasks::TaskKind;
use nearnative_host::{CpuSet, Severity};
use nearnative_verify::threads::TrackerCost;
use nearnative_verify::{
    verdict, Attribution, CheckKind, CpuBusy, CpuCount, CpuTime, Expectations, ForeignThread,
    IrqActivity, IrqLine, NamedCount, Outcome, Sample, SamplerCost, TargetActivity, ThreadClass,
};

const MS: u64 = 1_000_000;

/// One second on CPU 1, with one target that was never preempted, and nothing else.
fn quiet() -> Sample {
    Sample {
        cpus: CpuSet::from_ids([1]),
        target_tids: BTreeSet::from([100]),
        scope: None,
        duration_ns: 1_000 * MS,
        stopped_early: false,
        irqs: Some(IrqActivity::default()),
        softirqs: Some(Vec::new()),
        cpu_busy: None,
        threads: Vec::new(),
        targets: vec![TargetActivity {
            tid: 100,
            pid: Some(99),
            comm: "CPU 0/KVM".into(),
            runtime_ns: 990 * MS,
            wait_ns: 0,
            voluntary_switches: 3,
            nonvoluntary_switches: 0,
            last_cpu: 1,
        }],
        sampler: SamplerCost {
            cpu_time_ns: 5 * MS,
            pinned_to: Some(CpuSet::from_ids([0])),
            longest_poll_period_ns: 10 * MS,
            threads: TrackerCost {
                threads_listed: 120,
                ..TrackerCost::default()
            },
        },
        unknowns: Vec::new(),
        unknowns_dropped: 0,
    }
}

fn thread(comm: &str, tid: u32, class: ThreadClass, ns: u64) -> ForeignThread {
    let kind = match class {
        ThreadClass::KernelPerCpu => TaskKind::KernelPerCpu,
        ThreadClass::KernelUnbound => TaskKind::KernelUnbound,
        _ => TaskKind::User,
    };
    ForeignThread {
        pid: tid,
        tid,
        comm: comm.into(),
        kind,
        class,
        cpu_time: vec![CpuTime { cpu: 1, ns }],
        total_ns: ns,
        attribution: Attribution::Exact,
    }
}

fn busy(busy_ns: u64, irq_ns: u64) -> CpuBusy {
    CpuBusy {
        cpu: 1,
        busy_ns,
        irq_ns,
        steal_ns: 0,
    }
}

fn on_cpu1(count: u64) -> Vec<CpuCount> {
    vec![CpuCount { cpu: 1, count }]
}

fn irq(number: u32, name: &str, count: u64) -> IrqLine {
    IrqLine {
        irq: number,
        name: name.into(),
        counts: on_cpu1(count),
        total: count,
        affinity_settable: Some(true),
    }
}

fn named(name: &str, count: u64) -> NamedCount {
    NamedCount {
        name: name.into(),
        description: None,
        counts: on_cpu1(count),
        total: count,
    }
}

struct Case {
    what: &'static str,
    sample: Sample,
    expect: Expectations,
    check: CheckKind,
    outcome: Outcome,
    /// Text the first offender's "object: evidence" must contain.
    offender: Option<&'static str>,
}

fn with(edit: impl FnOnce(&mut Sample)) -> Sample {
    let mut sample = quiet();
    edit(&mut sample);
    sample
}

fn cases() -> Vec<Case> {
    let defaults = Expectations::default;
    vec![
        Case {
            what: "a quiet CPU passes every check",
            sample: quiet(),
            expect: defaults(),
            check: CheckKind::ForeignThreads,
            outcome: Outcome::Pass,
            offender: None,
        },
        Case {
            what: "an in-scope thread with time fails, named with its time and CPU",
            sample: with(|s| {
                s.threads = vec![thread("stress-ng", 1234, ThreadClass::InScope, 120 * MS)]
            }),
            expect: defaults(),
            check: CheckKind::ForeignThreads,
            outcome: Outcome::Fail,
            offender: Some("thread stress-ng (tid 1234, in scope): ran 120 ms on CPU 1"),
        },
        Case {
            what: "an in-scope thread within the allowance passes",
            sample: with(|s| s.threads = vec![thread("cron", 5, ThreadClass::InScope, MS / 2)]),
            expect: Expectations {
                foreign_time_allowance_ns: MS,
                ..defaults()
            },
            check: CheckKind::ForeignThreads,
            outcome: Outcome::Pass,
            offender: None,
        },
        Case {
            what: "a thread outside the scope is information only",
            sample: with(|s| {
                s.threads = vec![thread("sshd", 7, ThreadClass::OutsideScope, 300 * MS)]
            }),
            expect: defaults(),
            check: CheckKind::ForeignThreads,
            outcome: Outcome::Pass,
            offender: None,
        },
        Case {
            what: "an unbound kernel thread with time fails: apply moves those",
            sample: with(|s| {
                s.threads = vec![thread("kworker/u4:1", 8, ThreadClass::KernelUnbound, MS)]
            }),
            expect: defaults(),
            check: CheckKind::ForeignThreads,
            outcome: Outcome::Fail,
            offender: Some("kworker/u4:1 (tid 8, unbound kernel thread): ran 1.00 ms on CPU 1"),
        },
        Case {
            what: "a per-CPU kernel thread below its share is expected",
            sample: with(|s| {
                s.threads = vec![thread("ksoftirqd/1", 20, ThreadClass::KernelPerCpu, MS / 2)]
            }),
            expect: defaults(),
            check: CheckKind::ForeignThreads,
            outcome: Outcome::Pass,
            offender: None,
        },
        Case {
            what: "a per-CPU kernel thread past its share warns, never fails",
            sample: with(|s| {
                s.threads = vec![thread(
                    "kworker/1:2",
                    21,
                    ThreadClass::KernelPerCpu,
                    40 * MS,
                )]
            }),
            expect: defaults(),
            check: CheckKind::ForeignThreads,
            outcome: Outcome::Warn,
            offender: Some("kworker/1:2 (tid 21, per-CPU kernel thread): ran 40 ms on CPU 1"),
        },
        Case {
            what: "an estimated attribution says so",
            sample: with(|s| {
                let mut t = thread("java", 9, ThreadClass::InScope, 2 * MS);
                t.attribution = Attribution::LastCpu;
                s.threads = vec![t];
            }),
            expect: defaults(),
            check: CheckKind::ForeignThreads,
            outcome: Outcome::Fail,
            offender: Some("estimated from the CPU it was last seen on"),
        },
        Case {
            what: "no thread listed at all is unknown",
            sample: with(|s| s.sampler.threads.threads_listed = 0),
            expect: defaults(),
            check: CheckKind::ForeignThreads,
            outcome: Outcome::Unknown,
            offender: None,
        },
        Case {
            what: "candidates beyond max_threads warn",
            sample: with(|s| s.sampler.threads.threads_not_followed = 3),
            expect: defaults(),
            check: CheckKind::ForeignThreads,
            outcome: Outcome::Warn,
            offender: Some("3 candidate threads were not followed"),
        },
        Case {
            what: "busy time the sample accounts for passes",
            sample: with(|s| s.cpu_busy = Some(vec![busy(1000 * MS, 5 * MS)])),
            expect: defaults(),
            check: CheckKind::ForeignThreads,
            outcome: Outcome::Pass,
            offender: None,
        },
        Case {
            what: "busy time nobody accounts for warns",
            sample: with(|s| {
                s.cpu_busy = Some(vec![busy(1000 * MS, 10 * MS)]);
                s.targets[0].runtime_ns = 500 * MS;
            }),
            expect: defaults(),
            check: CheckKind::ForeignThreads,
            outcome: Outcome::Warn,
            offender: Some("CPU 1: busy 1000 ms: targets 500 ms, foreign threads 0 µs, interrupt handlers 10 ms, unaccounted 490 ms"),
        },
        Case {
            what: "a device IRQ on the CPU fails, named with its count",
            sample: with(|s| {
                s.irqs = Some(IrqActivity {
                    lines: vec![irq(38, "virtio2-input.0", 57)],
                    named: vec![],
                })
            }),
            expect: defaults(),
            check: CheckKind::Irqs,
            outcome: Outcome::Fail,
            offender: Some("IRQ 38 virtio2-input.0: fired 57 times on CPU 1"),
        },
        Case {
            what: "a kernel-managed IRQ is unavoidable: it warns",
            sample: with(|s| {
                let mut line = irq(36, "virtio1-req.0", 131);
                line.affinity_settable = Some(false);
                s.irqs = Some(IrqActivity { lines: vec![line], named: vec![] });
            }),
            expect: defaults(),
            check: CheckKind::Irqs,
            outcome: Outcome::Warn,
            offender: Some("IRQ 36 virtio1-req.0: fired 131 times on CPU 1 (kernel-managed"),
        },
        Case {
            what: "an allowed IRQ (the workload's own queue) passes",
            sample: with(|s| {
                s.irqs = Some(IrqActivity {
                    lines: vec![irq(38, "virtio2-input.0", 57)],
                    named: vec![],
                })
            }),
            expect: Expectations {
                allowed_irqs: BTreeSet::from([38]),
                ..defaults()
            },
            check: CheckKind::Irqs,
            outcome: Outcome::Pass,
            offender: None,
        },
        Case {
            what: "timer ticks are expected without nohz_full",
            sample: with(|s| {
                s.irqs = Some(IrqActivity {
                    lines: vec![],
                    named: vec![named("LOC", 250), named("NMI", 1)],
                })
            }),
            expect: defaults(),
            check: CheckKind::Irqs,
            outcome: Outcome::Pass,
            offender: None,
        },
        Case {
            what: "timer ticks fail under nohz_full past the residual rate",
            sample: with(|s| {
                s.irqs = Some(IrqActivity {
                    lines: vec![],
                    named: vec![named("LOC", 250)],
                })
            }),
            expect: Expectations {
                nohz_full: true,
                ..defaults()
            },
            check: CheckKind::Irqs,
            outcome: Outcome::Fail,
            offender: Some("LOC: fired 250 times on CPU 1"),
        },
        Case {
            what: "the residual 1 Hz tick passes under nohz_full",
            sample: with(|s| {
                s.irqs = Some(IrqActivity {
                    lines: vec![],
                    named: vec![named("LOC", 1)],
                })
            }),
            expect: Expectations {
                nohz_full: true,
                ..defaults()
            },
            check: CheckKind::Irqs,
            outcome: Outcome::Pass,
            offender: None,
        },
        Case {
            what: "IPIs from other CPUs warn",
            sample: with(|s| {
                s.irqs = Some(IrqActivity {
                    lines: vec![],
                    named: vec![named("CAL", 1)],
                })
            }),
            expect: defaults(),
            check: CheckKind::Irqs,
            outcome: Outcome::Warn,
            offender: Some("CAL: fired 1 time on CPU 1"),
        },
        Case {
            what: "unreadable /proc/interrupts is unknown",
            sample: with(|s| s.irqs = None),
            expect: defaults(),
            check: CheckKind::Irqs,
            outcome: Outcome::Unknown,
            offender: None,
        },
        Case {
            what: "device softirqs warn",
            sample: with(|s| s.softirqs = Some(vec![named("NET_RX", 40), named("TIMER", 250)])),
            expect: defaults(),
            check: CheckKind::Softirqs,
            outcome: Outcome::Warn,
            offender: Some("softirq NET_RX: ran 40 times on CPU 1"),
        },
        Case {
            what: "timer and RCU softirqs are expected",
            sample: with(|s| s.softirqs = Some(vec![named("RCU", 40), named("TIMER", 250)])),
            expect: defaults(),
            check: CheckKind::Softirqs,
            outcome: Outcome::Pass,
            offender: None,
        },
        Case {
            what: "a target preempted often fails",
            sample: with(|s| s.targets[0].nonvoluntary_switches = 57),
            expect: defaults(),
            check: CheckKind::Preemption,
            outcome: Outcome::Fail,
            offender: Some("target thread CPU 0/KVM (tid 100): preempted 57 times (57.0/s)"),
        },
        Case {
            what: "a target preempted once in a second warns",
            sample: with(|s| s.targets[0].nonvoluntary_switches = 1),
            expect: defaults(),
            check: CheckKind::Preemption,
            outcome: Outcome::Warn,
            offender: Some("preempted 1 time (1.0/s)"),
        },
        Case {
            what: "a target that ran off the exclusive CPUs warns",
            sample: with(|s| s.targets[0].last_cpu = 0),
            expect: defaults(),
            check: CheckKind::Preemption,
            outcome: Outcome::Warn,
            offender: Some("last ran on CPU 0, outside the exclusive CPUs 1"),
        },
        Case {
            what: "a target that could not be read is unknown",
            sample: with(|s| s.targets.clear()),
            expect: defaults(),
            check: CheckKind::Preemption,
            outcome: Outcome::Unknown,
            offender: None,
        },
    ]
}

#[test]
fn checks_judge_each_case() {
    for case in cases() {
        let verdict = verdict(&case.sample, &case.expect);
        let check = verdict
            .checks
            .iter()
            .find(|c| c.kind == case.check)
            .unwrap();
        assert_eq!(check.outcome, case.outcome, "{}: {check:#?}", case.what);
        assert!(verdict.outcome >= check.outcome, "{}", case.what);
        let first = check.offenders().next();
        match (case.offender, first) {
            (None, None) => {}
            (Some(needle), Some(f)) => {
                let text = format!("{}: {}", f.object, f.evidence);
                assert!(text.contains(needle), "{}: {text}", case.what);
            }
            (expected, found) => panic!("{}: expected {expected:?}, found {found:?}", case.what),
        }
    }
}

#[test]
fn the_verdict_is_the_worst_check_and_is_pure() {
    let sample = with(|s| {
        s.threads = vec![thread("stress-ng", 1234, ThreadClass::InScope, 120 * MS)];
        s.softirqs = Some(vec![named("NET_RX", 4)]);
    });
    let first = verdict(&sample, &Expectations::default());
    assert_eq!(first.outcome, Outcome::Fail);
    assert_eq!(first, verdict(&sample, &Expectations::default()));
    let outcomes: Vec<Outcome> = first.checks.iter().map(|c| c.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Fail, Outcome::Pass, Outcome::Warn, Outcome::Pass]
    );
    let info = first.checks[0]
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Info)
        .count();
    assert_eq!(info, 0);
}

#[test]
fn samples_and_verdicts_round_trip_through_json() {
    let sample = with(|s| s.threads = vec![thread("x", 1, ThreadClass::OutsideScope, MS)]);
    let text = serde_json::to_string(&sample).unwrap();
    assert!(text.contains("\"outside_scope\""), "{text}");
    assert_eq!(serde_json::from_str::<Sample>(&text).unwrap(), sample);
    let verdict = verdict(&sample, &Expectations::default());
    let text = serde_json::to_string(&verdict).unwrap();
    assert!(text.contains("\"foreign_threads\""), "{text}");
}
