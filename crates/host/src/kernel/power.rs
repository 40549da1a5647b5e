//! Per-CPU power files: the PM QoS resume latency limit and the cpufreq governor, with the
//! list of governors the driver offers.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{KernelFile, KernelValue};

const CPU_DIR: &str = "/sys/devices/system/cpu";

/// `cpuN/power/pm_qos_resume_latency_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmQosResumeLatencyUs {
    pub cpu: u32,
}

impl KernelFile for PmQosResumeLatencyUs {
    type Value = ResumeLatency;

    fn path(&self) -> PathBuf {
        PathBuf::from(format!(
            "{CPU_DIR}/cpu{}/power/pm_qos_resume_latency_us",
            self.cpu
        ))
    }

    fn object(&self) -> String {
        format!("PM QoS resume latency of CPU {}", self.cpu)
    }

    fn parse(&self, text: &str) -> Result<ResumeLatency, String> {
        ResumeLatency::parse(text)
    }

    fn format(&self, value: &ResumeLatency) -> String {
        value.format()
    }
}

/// `cpuN/cpufreq/scaling_governor`. Absent without a cpufreq driver (most VMs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalingGovernor {
    pub cpu: u32,
}

impl ScalingGovernor {
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(format!("{CPU_DIR}/cpu{}/cpufreq", self.cpu))
    }

    /// The governors this CPU's driver offers.
    pub fn available(&self) -> AvailableGovernors {
        AvailableGovernors { cpu: self.cpu }
    }
}

impl KernelFile for ScalingGovernor {
    type Value = Governor;

    fn path(&self) -> PathBuf {
        self.dir().join("scaling_governor")
    }

    fn object(&self) -> String {
        format!("cpufreq governor of CPU {}", self.cpu)
    }

    fn parse(&self, text: &str) -> Result<Governor, String> {
        Governor::parse(text)
    }

    fn format(&self, value: &Governor) -> String {
        value.format()
    }
}

/// `cpuN/cpufreq/scaling_available_governors`: space-separated names, at least one. Read only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvailableGovernors {
    pub cpu: u32,
}

impl KernelFile for AvailableGovernors {
    type Value = Vec<Governor>;

    fn path(&self) -> PathBuf {
        ScalingGovernor { cpu: self.cpu }
            .dir()
            .join("scaling_available_governors")
    }

    fn object(&self) -> String {
        format!("cpufreq governors of CPU {}", self.cpu)
    }

    fn parse(&self, text: &str) -> Result<Vec<Governor>, String> {
        let names: Vec<Governor> = text
            .split_whitespace()
            .map(Governor::parse)
            .collect::<Result<_, _>>()?;
        match names.is_empty() {
            true => Err("no governor listed".to_owned()),
            false => Ok(names),
        }
    }

    fn format(&self, value: &Vec<Governor>) -> String {
        let names: Vec<&str> = value.iter().map(Governor::as_str).collect();
        names.join(" ")
    }
}

/// A CPU's PM QoS resume latency limit, with the sysfs file's special values
/// (Documentation/ABI/testing/sysfs-devices-power): `0` means no limit, `n/a` means no
/// resume latency is tolerated at all, so only zero-latency (polling) idle is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeLatency {
    NoLimit,
    ZeroLatency,
    Microseconds(u32),
}

impl ResumeLatency {
    /// Whether the cpuidle governor may pick a state with this exit latency.
    pub fn allows(self, exit_latency_us: u64) -> bool {
        match self {
            ResumeLatency::NoLimit => true,
            ResumeLatency::ZeroLatency => exit_latency_us == 0,
            ResumeLatency::Microseconds(limit) => exit_latency_us <= u64::from(limit),
        }
    }
}

impl KernelValue for ResumeLatency {
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "n/a" => Ok(ResumeLatency::ZeroLatency),
            "0" => Ok(ResumeLatency::NoLimit),
            other => other
                .parse()
                .map(ResumeLatency::Microseconds)
                .map_err(|_| "neither microseconds nor \"n/a\"".to_owned()),
        }
    }

    fn format(&self) -> String {
        match self {
            ResumeLatency::NoLimit => "0".to_owned(),
            ResumeLatency::ZeroLatency => "n/a".to_owned(),
            ResumeLatency::Microseconds(us) => us.to_string(),
        }
    }
}

/// A cpufreq governor name (`performance`, `schedutil`). Invariant: a kernel identifier.
/// Serialized as the bare name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

impl TryFrom<&str> for Governor {
    type Error = String;
    fn try_from(name: &str) -> Result<Self, String> {
        Governor::try_from(name.to_owned())
    }
}

impl std::str::FromStr for Governor {
    type Err = String;
    fn from_str(name: &str) -> Result<Self, String> {
        Governor::try_from(name)
    }
}

impl From<Governor> for String {
    fn from(governor: Governor) -> String {
        governor.0
    }
}

impl PartialEq<str> for Governor {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl fmt::Display for Governor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl KernelValue for Governor {
    fn parse(text: &str) -> Result<Self, String> {
        Governor::try_from(text)
    }
    fn format(&self) -> String {
        self.0.clone()
    }
}

/// A cpufreq or cpuidle driver or governor name: a kernel identifier such as `intel_idle`,
/// `schedutil` or `acpi-cpufreq`; anything else in the file is not a name.
pub fn parse_kernel_name(text: &str) -> Result<String, String> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || "_-.+".contains(c);
    match !text.is_empty() && text.chars().all(is_name_char) {
        true => Ok(text.to_owned()),
        false => Err("not a kernel driver or governor name".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::tests::round_trip;

    #[test]
    fn resume_latency_round_trips_in_kernel_form() {
        let file = PmQosResumeLatencyUs { cpu: 3 };
        let cases = [
            ("no constraint", "0\n", ResumeLatency::NoLimit),
            ("no latency", "n/a\n", ResumeLatency::ZeroLatency),
            ("limit", "20\n", ResumeLatency::Microseconds(20)),
        ];
        for (what, text, value) in cases {
            assert_eq!(round_trip(&file, text, text.trim()), value, "{what}");
        }
        assert!(file.parse("-3").is_err());
        assert_eq!(
            file.path(),
            PathBuf::from("/sys/devices/system/cpu/cpu3/power/pm_qos_resume_latency_us")
        );
    }

    #[test]
    fn governors_are_kernel_names() {
        let file = ScalingGovernor { cpu: 0 };
        let governor = round_trip(&file, "schedutil\n", "schedutil");
        assert_eq!(governor.as_str(), "schedutil");
        assert!(file.parse("perf ormance").is_err());
        assert!(file.parse("").is_err());
        let offered = file.available();
        let list = round_trip(&offered, "performance schedutil\n", "performance schedutil");
        assert!(list.iter().any(|g| g == "performance"));
        assert!(offered.parse("").is_err());
        assert_eq!(
            serde_json::to_string(&governor).unwrap(),
            "\"schedutil\"",
            "inspect and journals keep the bare name"
        );
        assert!(serde_json::from_str::<Governor>("\"a b\"").is_err());
    }
}
