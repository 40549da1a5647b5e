//! Interrupts and host-wide housekeeping masks: IRQ affinities, the default affinity of new
//! IRQs, the unbound workqueue mask, the lockup detector's CPUs, and timer migration.
//!
//! The IRQs of the interface that carries the default route are never touched unless `--nic`
//! names it: that NIC is most likely how the operator reaches the host, and a safety rule of
//! the project is never to disturb it unasked. IRQ writes are best effort: the kernel refuses managed
//! IRQs, and apply records those as unchangeable.

use std::collections::BTreeMap;

use nearnative_host::Mechanism;
use nearnative_knob::exclusivity::housekeeping::{
    TimerMigration, WatchdogCpumask, WorkqueueCpumask,
};
use nearnative_knob::exclusivity::irq::{DefaultSmpAffinity, IrqAffinity};
use nearnative_knob::Change;

use super::{Changes, Context};
use crate::decisions::{Note, ProtectedIrq};
use crate::plan::without;

const MECHANISM: Mechanism = Mechanism::Exclusivity;

pub fn plan(context: &Context, out: &mut Changes) {
    let protected = default_route_irqs(context);
    let exclusive = &context.exclusive;
    let housekeeping = &context.housekeeping;
    for irq in &context.host.irqs.lines {
        let Some(affinity) = irq.affinity.as_ref().filter(|a| !a.is_disjoint(exclusive)) else {
            continue;
        };
        if let Some(nic) = protected.get(&irq.number) {
            out.note(Note::DefaultRouteIrq {
                irq: irq.number,
                label: irq.label(),
                affinity: affinity.clone(),
                nic: (*nic).to_owned(),
            });
            continue;
        }
        if irq.affinity_settable == Some(false) {
            out.note(Note::UnmovableIrq {
                irq: irq.number,
                label: irq.label(),
            });
            continue;
        }
        out.push(
            Change {
                knob: IrqAffinity { irq: irq.number },
                from: affinity.clone(),
                to: without(affinity, exclusive, housekeeping),
            },
            MECHANISM,
            format!("{} may fire on the exclusive CPUs {exclusive}", irq.label()),
        );
    }
    if let Some(default) = &context.host.irqs.default_affinity {
        out.push(
            Change {
                knob: DefaultSmpAffinity,
                from: default.clone(),
                to: without(default, exclusive, housekeeping),
            },
            MECHANISM,
            "IRQs requested from now on start outside the exclusive CPUs",
        );
    }
    if let Some(mask) = &context.host.knobs.workqueue_cpumask {
        out.push(
            Change {
                knob: WorkqueueCpumask,
                from: mask.clone(),
                to: without(mask, exclusive, housekeeping),
            },
            MECHANISM,
            "unbound kernel work items run outside the exclusive CPUs",
        );
    }
    if let Some(watched) = &context.host.knobs.watchdog_cpumask {
        // No fallback: an empty list is the kernel's "watch no CPU", and putting the watchdog
        // on a housekeeping CPU it did not watch would change what nobody asked to change.
        out.push(
            Change {
                knob: WatchdogCpumask,
                from: watched.clone(),
                to: watched.difference(exclusive),
            },
            MECHANISM,
            "kernel.watchdog_cpumask says on which CPUs the lockup detectors run (by default all \
             but nohz_full ones, changeable live): on each, an hrtimer wakes the CPU's stopper \
             thread every few seconds, and the hard lockup detector arms a perf NMI",
        );
    }
    if let Some(migration) = context.host.knobs.timer_migration {
        out.push(
            Change {
                knob: TimerMigration,
                from: migration,
                to: false,
            },
            MECHANISM,
            "with timer migration an idle CPU hands its timers to a busy one, and a spinning \
             exclusive CPU always looks busy",
        );
    }
}

/// The IRQs the plan never steers, for verify to excuse: every IRQ of an interface that
/// carries a default route, except the one `--nic` names, wherever it fires now.
pub(crate) fn protected(context: &Context) -> Vec<ProtectedIrq> {
    default_route_irqs(context)
        .into_iter()
        .map(|(irq, nic)| ProtectedIrq {
            irq,
            nic: nic.to_owned(),
        })
        .collect()
}

/// The IRQs of interfaces that carry a default route, except the one `--nic` names.
fn default_route_irqs<'h>(context: &Context<'h>) -> BTreeMap<u32, &'h str> {
    context
        .host
        .default_route_irqs(context.request.nic.as_deref())
}
