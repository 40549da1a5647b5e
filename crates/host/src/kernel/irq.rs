//! Interrupt steering files: one IRQ's affinity in list form, and the default affinity new
//! IRQs get, in mask form.

use std::path::PathBuf;

use super::{FixedMask, KernelFile, KernelValue};
use crate::CpuSet;

/// `/proc/irq/default_smp_affinity`: the affinity an IRQ gets when it is set up.
pub const DEFAULT_SMP_AFFINITY: FixedMask =
    FixedMask::new("default IRQ affinity", "/proc/irq/default_smp_affinity");

/// `/proc/irq/N/smp_affinity_list`: the CPUs line N may be routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmpAffinityList {
    pub irq: u32,
}

impl KernelFile for SmpAffinityList {
    type Value = CpuSet;

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/irq/{}/smp_affinity_list", self.irq))
    }

    fn object(&self) -> String {
        format!("IRQ {} affinity", self.irq)
    }

    fn parse(&self, text: &str) -> Result<CpuSet, String> {
        CpuSet::parse(text)
    }

    fn format(&self, cpus: &CpuSet) -> String {
        cpus.format()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::tests::round_trip;

    #[test]
    fn affinities_round_trip_in_kernel_form() {
        let line = SmpAffinityList { irq: 36 };
        assert_eq!(
            round_trip(&line, "0-3,6\n", "0-3,6"),
            CpuSet::from_ids([0, 1, 2, 3, 6])
        );
        assert_eq!(line.path(), PathBuf::from("/proc/irq/36/smp_affinity_list"));
        assert_eq!(
            round_trip(&DEFAULT_SMP_AFFINITY, "f\n", "0000000f"),
            CpuSet::from_ids([0, 1, 2, 3])
        );
    }
}
