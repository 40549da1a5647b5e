//! Memory knobs that disturb a latency-sensitive workload from outside: transparent huge
//! pages (enable and defrag), KSM and automatic NUMA balancing. Paths, value types and text
//! forms are defined in [`nearnative_host::kernel::memory`].

use nearnative_host::kernel::memory as kernel;
use nearnative_host::kernel::Fixed;

use crate::knob::fixed_file_knob;

fixed_file_knob!(
    /// Transparent huge pages.
    ThpEnabled,
    Fixed<kernel::ThpEnabled>,
    kernel::THP_ENABLED
);

fixed_file_knob!(
    /// When THP allocation may stall to compact memory.
    ThpDefrag,
    Fixed<kernel::ThpDefrag>,
    kernel::THP_DEFRAG
);

fixed_file_knob!(
    /// Kernel same-page merging.
    KsmRun,
    Fixed<kernel::KsmRun>,
    kernel::KSM_RUN
);

fixed_file_knob!(
    /// `kernel.numa_balancing`.
    NumaBalancing,
    Fixed<kernel::NumaBalancing>,
    kernel::NUMA_BALANCING
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Knob;

    #[test]
    fn knobs_name_their_files() {
        assert_eq!(
            ThpEnabled.describe().location,
            "/sys/kernel/mm/transparent_hugepage/enabled"
        );
        assert_eq!(NumaBalancing.describe().object, "kernel.numa_balancing");
    }
}
