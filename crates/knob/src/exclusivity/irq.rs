//! Interrupt steering: one IRQ's affinity, and the default affinity new IRQs get.
//!
//! irqbalance's banned CPUs are not a knob here but an advisory for the planner. irqbalance
//! does take `settings cpus ...` on its root-only socket (`/run/irqbalance/irqbalance<PID>.sock`),
//! but: the daemon is not ours; `setup` reports only the combined `BANNED` mask, so a ban that
//! came from `IRQBALANCE_BANNED_CPUS`/`_CPULIST` cannot be told from one set over the socket and
//! restored as it was (`settings cpus NULL` drops the socket's ban, not the environment's); the
//! argument's form differs between irqbalance versions (CPU numbers vs a mask); and a restart of
//! the daemon silently forgets it, so revert could not know what to restore. The planner advises
//! `IRQBALANCE_BANNED_CPULIST` in irqbalance's environment file and a restart by the admin.

use nearnative_host::kernel::irq::{SmpAffinityList, DEFAULT_SMP_AFFINITY};
use nearnative_host::CpuSet;
use serde::{Deserialize, Serialize};

use super::mask::mask_knob;
use crate::backend::Backend;
use crate::error::{Described, KnobError};
use crate::knob::{described, read_file, write_file, Knob};

/// `/proc/irq/N/smp_affinity_list`. Best effort: the kernel refuses (EIO) to move a managed
/// IRQ (per-queue MSI-X vectors spread by the driver) or a per-CPU one, and that is recorded
/// as unchangeable rather than failing the apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IrqAffinity {
    pub irq: u32,
}

impl IrqAffinity {
    /// The kernel file this knob is.
    pub fn file(&self) -> SmpAffinityList {
        SmpAffinityList { irq: self.irq }
    }
}

impl Knob for IrqAffinity {
    type Value = CpuSet;

    fn describe(&self) -> Described {
        described(&self.file())
    }

    fn read(&self, backend: &dyn Backend) -> Result<CpuSet, KnobError> {
        read_file(backend, &self.file())
    }

    fn write(&self, backend: &dyn Backend, cpus: &CpuSet) -> Result<(), KnobError> {
        write_file(backend, &self.file(), cpus)
    }

    fn best_effort(&self) -> bool {
        true
    }
}

mask_knob!(
    /// `/proc/irq/default_smp_affinity`: the affinity an IRQ gets when it is set up.
    DefaultSmpAffinity,
    DEFAULT_SMP_AFFINITY
);
