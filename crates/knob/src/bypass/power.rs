//! Per-CPU power knobs: the PM QoS resume latency limit and the cpufreq governor. Paths,
//! value types and text forms are defined in [`nearnative_host::kernel::power`].

use nearnative_host::kernel::power::{PmQosResumeLatencyUs, ScalingGovernor};
use nearnative_host::kernel::KernelFile;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::{Described, KnobError};
use crate::knob::{described, file_knob, read_file, write_file, Knob};

pub use nearnative_host::kernel::power::Governor;

/// A CPU's PM QoS resume latency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PmQosResumeLatency {
    pub cpu: u32,
}

file_knob!(PmQosResumeLatency, PmQosResumeLatencyUs, |this| {
    PmQosResumeLatencyUs { cpu: this.cpu }
});

/// A CPU's cpufreq governor. A write is checked against `scaling_available_governors` first,
/// so a governor the kernel lacks is refused with the list of those it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpufreqGovernor {
    pub cpu: u32,
}

impl CpufreqGovernor {
    pub fn file(&self) -> ScalingGovernor {
        ScalingGovernor { cpu: self.cpu }
    }
}

impl Knob for CpufreqGovernor {
    type Value = Governor;

    fn describe(&self) -> Described {
        described(&self.file())
    }

    fn read(&self, backend: &dyn Backend) -> Result<Governor, KnobError> {
        read_file(backend, &self.file())
    }

    fn write(&self, backend: &dyn Backend, governor: &Governor) -> Result<(), KnobError> {
        let available = self.file().available();
        let offered = read_file(backend, &available)?;
        if !offered.contains(governor) {
            return Err(KnobError::Invalid {
                knob: self.describe(),
                value: governor.to_string(),
                reason: format!(
                    "not among the available governors ({})",
                    available.format(&offered)
                ),
            });
        }
        write_file(backend, &self.file(), governor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knobs_name_their_files() {
        let latency = PmQosResumeLatency { cpu: 2 }.describe();
        assert_eq!(latency.object, "PM QoS resume latency of CPU 2");
        assert_eq!(
            latency.location,
            "/sys/devices/system/cpu/cpu2/power/pm_qos_resume_latency_us"
        );
        assert_eq!(
            CpufreqGovernor { cpu: 1 }.describe().location,
            "/sys/devices/system/cpu/cpu1/cpufreq/scaling_governor"
        );
    }
}
