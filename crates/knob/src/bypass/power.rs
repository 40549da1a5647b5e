//! Per-CPU power knobs: the PM QoS resume latency limit and the cpufreq governor.

use std::path::PathBuf;

use nearnative_host::power::{parse_kernel_name, ResumeLatency};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::{Described, KnobError, Object};
use crate::knob::{file_knob, read_file, write_file, FileValue, Knob};

/// `pm_qos_resume_latency_us`: `0` is no constraint, `n/a` tolerates no resume latency at all
/// (only polling idle), a number is a limit in microseconds.
impl FileValue for ResumeLatency {
    fn parse(text: &str) -> Result<Self, String> {
        ResumeLatency::parse(text)
    }
    fn format(&self) -> String {
        match self {
            ResumeLatency::NoLimit => "0".to_owned(),
            ResumeLatency::ZeroLatency => "n/a".to_owned(),
            ResumeLatency::Microseconds(us) => us.to_string(),
        }
    }
}

/// A CPU's PM QoS resume latency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PmQosResumeLatency {
    pub cpu: u32,
}

file_knob!(
    PmQosResumeLatency,
    ResumeLatency,
    |this| format!("PM QoS resume latency of CPU {}", this.cpu),
    PathBuf::from(format!(
        "/sys/devices/system/cpu/cpu{}/power/pm_qos_resume_latency_us",
        this.cpu
    ))
);

/// A cpufreq governor name (`performance`, `schedutil`). Invariant: a kernel identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Governor(String);

impl Governor {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Governor {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        parse_kernel_name(&name).map(Governor)
    }
}

impl From<Governor> for String {
    fn from(governor: Governor) -> String {
        governor.0
    }
}

impl FileValue for Governor {
    fn parse(text: &str) -> Result<Self, String> {
        Governor::try_from(text.to_owned())
    }
    fn format(&self) -> String {
        self.0.clone()
    }
}

/// A CPU's cpufreq governor. A write is checked against `scaling_available_governors` first,
/// so a governor the kernel lacks is refused with the list of those it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpufreqGovernor {
    pub cpu: u32,
}

impl CpufreqGovernor {
    fn file(&self, name: &str) -> PathBuf {
        PathBuf::from(format!(
            "/sys/devices/system/cpu/cpu{}/cpufreq/{name}",
            self.cpu
        ))
    }
}

impl Knob for CpufreqGovernor {
    type Value = Governor;

    fn describe(&self) -> Described {
        Described::new(
            format!("cpufreq governor of CPU {}", self.cpu),
            self.file("scaling_governor").display().to_string(),
        )
    }

    fn read(&self, backend: &dyn Backend) -> Result<Governor, KnobError> {
        read_file(
            backend,
            self.describe(),
            Object::File,
            &self.file("scaling_governor"),
        )
    }

    fn write(&self, backend: &dyn Backend, governor: &Governor) -> Result<(), KnobError> {
        let knob = self.describe();
        let available = backend
            .root()
            .read_trimmed(self.file("scaling_available_governors"))
            .map_err(|e| KnobError::from_read(knob.clone(), Object::File, e))?;
        if !available.split_whitespace().any(|g| g == governor.as_str()) {
            return Err(KnobError::Invalid {
                knob,
                value: governor.0.clone(),
                reason: format!("not among the available governors ({available})"),
            });
        }
        write_file(backend, knob, &self.file("scaling_governor"), governor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_latency_round_trips_in_kernel_form() {
        let cases = [
            ("no constraint", "0", ResumeLatency::NoLimit),
            ("no latency", "n/a", ResumeLatency::ZeroLatency),
            ("limit", "20", ResumeLatency::Microseconds(20)),
        ];
        for (what, text, value) in cases {
            assert_eq!(
                <ResumeLatency as FileValue>::parse(text),
                Ok(value),
                "{what}"
            );
            assert_eq!(value.format(), text, "{what}");
        }
    }

    #[test]
    fn governor_names_are_checked() {
        assert!(Governor::try_from("performance".to_owned()).is_ok());
        assert!(Governor::try_from("perf ormance".to_owned()).is_err());
        assert!(Governor::try_from(String::new()).is_err());
    }
}
