//! What an applied plan knowingly left on the exclusive CPUs, as the [`Expectations`] the
//! verdict judges a sample by. The plan is the record: the IRQs it protected are excused as
//! they were when it was made, so a default route moved since does not change the verdict.

use std::collections::BTreeSet;

use nearnative_host::Host;
use nearnative_knob::Step;
use nearnative_plan::Plan;

use crate::Expectations;

/// The protected IRQs (the default-route interface's) may fire on the exclusive CPUs, the
/// IRQs the plan moved may fire there once more, and the tick stops only under `nohz_full`.
/// `host` is read now, for `nohz_full` (a boot-time setting) and for a plan recorded before
/// protected IRQs were kept, whose default-route IRQs are then taken as they are now, less
/// `nic` (what `--nic` named).
pub fn expectations(plan: &Plan, host: &Host, nic: Option<&str>) -> Expectations {
    let exclusive = &plan.allocation.exclusive_cpus;
    let nohz = host.isolation.nohz_full.as_ref();
    Expectations {
        allowed_irqs: protected_irqs(plan, host, nic),
        moved_irqs: plan
            .changes
            .iter()
            .filter_map(|change| match &change.step {
                Step::IrqAffinity(irq) => Some(irq.knob.irq),
                _ => None,
            })
            .collect(),
        nohz_full: nohz.is_some_and(|n| !exclusive.is_empty() && exclusive.is_subset(n)),
        ..Expectations::default()
    }
}

fn protected_irqs(plan: &Plan, host: &Host, nic: Option<&str>) -> BTreeSet<u32> {
    match &plan.protected_irqs {
        Some(irqs) => irqs.iter().map(|p| p.irq).collect(),
        None => host.default_route_irqs(nic).into_keys().collect(),
    }
}
