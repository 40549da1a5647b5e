//! Memory: stop the kernel from rearranging the workload's memory behind its back.
//! Transparent huge pages only where asked for (`madvise`) and never by stalling to compact,
//! no KSM scanning and merging, no automatic NUMA balancing (which unmaps pages to sample).

use nearnative_host::knobs::{KsmRun, NumaBalancing, ThpDefrag, ThpEnabled};
use nearnative_host::Mechanism;
use nearnative_knob::memory;
use nearnative_knob::Change;

use super::{Changes, Context};

const MECHANISM: Mechanism = Mechanism::Memory;

pub fn plan(context: &Context, out: &mut Changes) {
    let knobs = &context.host.knobs;
    if let Some(defrag) = knobs.thp_defrag {
        out.push(
            Change {
                knob: memory::ThpDefrag,
                from: defrag,
                to: ThpDefrag::Never,
            },
            MECHANISM,
            "a page fault never stalls to compact memory for a huge page",
        );
    }
    if let Some(ThpEnabled::Always) = knobs.thp_enabled {
        out.push(
            Change {
                knob: memory::ThpEnabled,
                from: ThpEnabled::Always,
                to: ThpEnabled::Madvise,
            },
            MECHANISM,
            "huge pages only where a program asks: khugepaged stops collapsing others' pages",
        );
    }
    if let Some(KsmRun::Running) = knobs.ksm {
        out.push(
            Change {
                knob: memory::KsmRun,
                from: KsmRun::Running,
                to: KsmRun::Stopped,
            },
            MECHANISM,
            "ksmd stops scanning and merging: no copy-on-write faults on merged pages",
        );
    }
    if let Some(balancing) = knobs.numa_balancing {
        out.push(
            Change {
                knob: memory::NumaBalancing,
                from: balancing,
                to: NumaBalancing::Disabled,
            },
            MECHANISM,
            "no NUMA hinting faults: the kernel stops unmapping pages to sample access",
        );
    }
}
