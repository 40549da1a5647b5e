//! Reverting a journal under newer ones that changed the same knobs: its prior is handed to
//! the next newer journal that holds the knob, the knob is left as the newer one set it, and
//! the tree is byte-identical once every journal is reverted, in any order, even after a
//! crash part-way through a hand-over.

use nearnative_apply::{
    apply, revert, revert_with_crash, HandoverCrash, Journal, RevertError, RevertTarget,
};
use nearnative_host::CpuSet;
use nearnative_knob::bypass::sysctl::{BusyPoll, BusyRead, KvmHaltPollNs};
use nearnative_knob::exclusivity::housekeeping::WorkqueueCpumask;
use nearnative_knob::exclusivity::irq::{DefaultSmpAffinity, IrqAffinity};
use nearnative_knob::Step;

use crate::steps::change;
use crate::tree::IRQS;
use crate::{id, Bench};

const NAMES: [&str; 3] = ["a", "b", "c"];

/// Journal `n` (0, 1, 2) keeps the IRQs and the workqueues off CPUs 2 up to 2 + n, and sets
/// one knob of its own.
fn steps(bench: &Bench, n: usize) -> Vec<Step> {
    let mut off = bench.cpus.online.clone();
    for cpu in 2..=2 + n as u32 {
        off.remove(cpu);
    }
    let own = match n {
        0 => change(BusyPoll, 50),
        1 => change(BusyRead, 50),
        _ => change(KvmHaltPollNs, 0),
    };
    vec![
        change(IrqAffinity { irq: IRQS[0] }, off.clone()),
        change(IrqAffinity { irq: IRQS[1] }, off.clone()),
        change(DefaultSmpAffinity, off.clone()),
        change(WorkqueueCpumask, off),
        own,
    ]
}

fn applied(count: usize) -> Bench {
    let bench = Bench::new("16em64t-4s2c2t");
    for (n, name) in NAMES.iter().enumerate().take(count) {
        apply(&steps(&bench, n), &bench.backend, &bench.state, &id(name)).unwrap();
    }
    bench
}

fn default_affinity(bench: &Bench) -> CpuSet {
    use nearnative_knob::Knob;
    DefaultSmpAffinity.read(&bench.backend).unwrap()
}

fn one(name: &str) -> RevertTarget {
    RevertTarget::One(id(name))
}

#[test]
fn any_order_leaves_the_newest_ones_values_and_ends_byte_identical() {
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let bench = applied(3);
        let mut left: Vec<usize> = vec![0, 1, 2];
        for n in order {
            let what = format!("order {order:?}, reverting {}", NAMES[n]);
            let report = revert(&bench.state, &one(NAMES[n]), &bench.backend).expect(&what);
            left.retain(|&l| l != n);
            let handed = &report.journals[0].handed_over;
            match left.iter().find(|&&l| l > n) {
                Some(&next) => {
                    assert_eq!(handed.len(), 4, "{what}: {handed:?}");
                    assert!(handed.iter().all(|h| h.to == id(NAMES[next])), "{what}");
                }
                None => assert!(handed.is_empty(), "{what}: {handed:?}"),
            }
            if let Some(&newest) = left.last() {
                let mut expected = bench.cpus.online.clone();
                for cpu in 2..=2 + newest as u32 {
                    expected.remove(cpu);
                }
                assert_eq!(default_affinity(&bench), expected, "{what}");
            }
        }
        bench.assert_unchanged(&format!("order {order:?}"));
    }
}

/// A crash after each store of a hand-over (the newer journal's, then the reverted one's),
/// then every way of finishing: the older again, the newer first, or everything.
#[test]
fn a_crash_during_a_hand_over_loses_no_prior() {
    let finishes: [&[RevertTarget]; 3] = [
        &[RevertTarget::One(id("a")), RevertTarget::One(id("b"))],
        &[RevertTarget::One(id("b")), RevertTarget::One(id("a"))],
        &[RevertTarget::All],
    ];
    for after_stores in 1..=2 {
        for finish in finishes {
            let what = format!("crash after store {after_stores}, then {finish:?}");
            let bench = applied(2);
            let applied = bench.image();
            let crash = HandoverCrash { after_stores };
            let err = revert_with_crash(&bench.state, &one("a"), &bench.backend, crash);
            assert!(matches!(err, Err(RevertError::Crashed { .. })), "{what}");
            assert!(
                bench.image().diff(&applied).is_empty(),
                "{what}: a knob moved"
            );
            for name in NAMES.iter().take(2) {
                let path = bench.state.journal_path(&id(name));
                assert!(Journal::load(&path).unwrap().is_some(), "{what}: {name}");
            }
            for target in finish {
                revert(&bench.state, target, &bench.backend).expect(&what);
            }
            bench.assert_unchanged(&what);
            assert!(bench.state.journal_ids().unwrap().is_empty(), "{what}");
        }
    }
}
