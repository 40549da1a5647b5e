//! Power: how deep each CPU may sleep when idle and how fast it is clocked — the "direct
//! halt" half of bypassing layers.
//!
//! Sources under `/sys/devices/system/cpu`: `cpuidle/current_{driver,governor}`, per CPU
//! `cpuN/cpuidle/stateK/{name,latency,residency,disable}`, the PM QoS resume latency limit
//! `cpuN/power/pm_qos_resume_latency_us`, and the cpufreq governor
//! `cpuN/cpufreq/scaling_governor`. `/dev/cpu_dma_latency` is not read: its value only
//! exists while a process holds it open.

use serde::{Deserialize, Serialize};

use crate::collect::Collector;
use crate::cpus::online_cpus;
use crate::kernel::power::{PmQosResumeLatencyUs, ScalingGovernor};
use crate::wording::cpus_phrase;
use crate::{CpuSet, Finding, Mechanism, Root, Severity, Unknown};

pub use crate::kernel::power::{parse_kernel_name, Governor, ResumeLatency};

const CPU_DIR: &str = "/sys/devices/system/cpu";

/// Idle states with a longer exit latency than this are "deep": waking from them costs more
/// than a latency-sensitive wake-up can hide (C1E is 10 µs on Intel servers, C6 ~100 µs).
pub const DEEP_EXIT_LATENCY_US: u64 = 5;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Power {
    /// `haltpoll`, `intel_idle`, `acpi_idle`, or `none`.
    pub cpuidle_driver: Option<String>,
    /// `menu`, `teo`, `ladder`, `haltpoll`.
    pub cpuidle_governor: Option<String>,
    /// One entry per online CPU.
    pub cpus: Vec<CpuPower>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuPower {
    pub cpu: u32,
    /// Empty when the CPU has no cpuidle directory (no cpuidle driver).
    pub idle_states: Vec<IdleState>,
    pub resume_latency: Option<ResumeLatency>,
    /// `None` when there is no cpufreq driver (no `cpufreq` directory, as in most VMs) or
    /// the governor could not be read (then it is listed as unknown).
    pub cpufreq_governor: Option<Governor>,
    /// `scaling_available_governors`; empty without cpufreq or when it could not be read.
    #[serde(default)]
    pub cpufreq_available_governors: Vec<Governor>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleState {
    /// K of `stateK`.
    pub index: u32,
    /// `POLL`, `C1`, `C6`, `haltpoll idle`.
    pub name: String,
    /// Exit latency in microseconds.
    pub latency_us: Option<u64>,
    /// Target residency in microseconds.
    pub residency_us: Option<u64>,
    pub disabled: Option<bool>,
}

pub fn read(root: &Root) -> (Power, Vec<Unknown>) {
    let mut collect = Collector::new(root);
    let idle_dir = format!("{CPU_DIR}/cpuidle");
    let mut power = Power {
        cpuidle_driver: collect.parsed(
            "cpuidle driver",
            format!("{idle_dir}/current_driver"),
            parse_kernel_name,
        ),
        cpuidle_governor: read_governor(&mut collect, &idle_dir),
        cpus: Vec::new(),
    };
    let online = online_cpus(root);
    let cpus = collect
        .keep("online CPUs", online)
        .unwrap_or_else(|| cpu_dirs(root));
    power.cpus = cpus.iter().map(|cpu| read_cpu(&mut collect, cpu)).collect();
    (power, collect.finish())
}

/// Without the online list, every `cpuN` directory stands for a CPU.
fn cpu_dirs(root: &Root) -> CpuSet {
    let names = root.list_dir(CPU_DIR).unwrap_or_default();
    let ids = names
        .iter()
        .filter_map(|name| name.strip_prefix("cpu")?.parse::<u32>().ok())
        .filter(|&id| id <= crate::cpuset::MAX_CPU_ID);
    CpuSet::from_ids(ids)
}

/// `current_governor` appeared in 5.x; older kernels only have `current_governor_ro`.
fn read_governor(collect: &mut Collector, idle_dir: &str) -> Option<String> {
    let read_only = format!("{idle_dir}/current_governor_ro");
    let writable = format!("{idle_dir}/current_governor");
    collect
        .parsed_if_present("cpuidle governor", writable, parse_kernel_name)
        .or_else(|| collect.parsed("cpuidle governor", read_only, parse_kernel_name))
}

fn read_cpu(collect: &mut Collector, cpu: u32) -> CpuPower {
    let dir = format!("{CPU_DIR}/cpu{cpu}");
    let state_names = collect
        .root
        .list_dir(format!("{dir}/cpuidle"))
        .unwrap_or_default();
    let idle_states = state_names
        .iter()
        .filter_map(|name| name.strip_prefix("state")?.parse::<u32>().ok())
        .map(|index| read_state(collect, cpu, &format!("{dir}/cpuidle/state{index}"), index))
        .collect();
    let resume_latency = collect.file(&PmQosResumeLatencyUs { cpu });
    // No cpufreq directory means no cpufreq driver; a directory without a governor is odd.
    let governor = ScalingGovernor { cpu };
    let cpufreq_governor = match collect.root.exists(governor.dir()) {
        true => collect.file(&governor),
        false => None,
    };
    let cpufreq_available_governors = match cpufreq_governor {
        Some(_) => collect
            .file_if_present(&governor.available())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    CpuPower {
        cpu,
        idle_states,
        resume_latency,
        cpufreq_governor,
        cpufreq_available_governors,
    }
}

fn read_state(collect: &mut Collector, cpu: u32, dir: &str, index: u32) -> IdleState {
    let object = |what: &str| format!("{what} of cpu{cpu} idle state{index}");
    let micros = |s: &str| s.parse::<u64>();
    IdleState {
        index,
        name: collect
            .trimmed(object("name"), format!("{dir}/name"))
            .unwrap_or_else(|| format!("state{index}")),
        latency_us: collect.parsed(object("exit latency"), format!("{dir}/latency"), micros),
        residency_us: collect.parsed(object("residency"), format!("{dir}/residency"), micros),
        disabled: collect.parsed(
            object("disable flag"),
            format!("{dir}/disable"),
            |s| match s {
                "0" => Ok(false),
                "1" => Ok(true),
                _ => Err("neither 0 nor 1"),
            },
        ),
    }
}

impl Power {
    /// Deep idle states the governor may enter and cpufreq governors other than
    /// `performance`, on any CPU.
    pub fn findings(&self) -> Vec<Finding> {
        let mut findings = self.deep_state_findings(None);
        findings.extend(self.governor_findings(None));
        findings
    }

    /// The same risks limited to `exclusive`, plus CPUs there with no resume latency limit.
    pub fn findings_for(&self, exclusive: &CpuSet) -> Vec<Finding> {
        let mut findings = self.deep_state_findings(Some(exclusive));
        findings.extend(self.governor_findings(Some(exclusive)));
        let unlimited: CpuSet = self
            .cpus_in(Some(exclusive))
            .filter(|c| c.resume_latency == Some(ResumeLatency::NoLimit))
            .map(|c| c.cpu)
            .collect();
        if !unlimited.is_empty() {
            findings.push(Finding {
                severity: Severity::Info,
                object: format!("PM QoS of {}", cpus_phrase(&unlimited)),
                evidence: "pm_qos_resume_latency_us=0: no resume latency limit".to_owned(),
                mechanism: Mechanism::Bypass,
            });
        }
        findings
    }

    fn cpus_in<'a>(&'a self, only: Option<&'a CpuSet>) -> impl Iterator<Item = &'a CpuPower> {
        self.cpus
            .iter()
            .filter(move |c| only.map_or(true, |set| set.contains(c.cpu)))
    }

    fn deep_state_findings(&self, only: Option<&CpuSet>) -> Vec<Finding> {
        let mut groups: Vec<(String, u64, CpuSet)> = Vec::new();
        for cpu in self.cpus_in(only) {
            let limit = cpu.resume_latency.unwrap_or(ResumeLatency::NoLimit);
            for state in &cpu.idle_states {
                let Some(latency) = state.latency_us else {
                    continue;
                };
                let usable = state.disabled == Some(false) && limit.allows(latency);
                if !usable || latency <= DEEP_EXIT_LATENCY_US {
                    continue;
                }
                match groups
                    .iter_mut()
                    .find(|(name, l, _)| *name == state.name && *l == latency)
                {
                    Some((_, _, cpus)) => cpus.insert(cpu.cpu),
                    None => groups.push((state.name.clone(), latency, CpuSet::from_ids([cpu.cpu]))),
                }
            }
        }
        groups
            .into_iter()
            .map(|(name, latency, cpus)| Finding {
                severity: Severity::Warning,
                object: format!("idle state {name}"),
                evidence: format!(
                    "deep C-state {name} enabled on {} (exit latency {latency} µs)",
                    cpus_phrase(&cpus)
                ),
                mechanism: Mechanism::Bypass,
            })
            .collect()
    }

    fn governor_findings(&self, only: Option<&CpuSet>) -> Vec<Finding> {
        let mut groups: Vec<(&str, CpuSet)> = Vec::new();
        for cpu in self.cpus_in(only) {
            let Some(governor) = cpu.cpufreq_governor.as_ref().map(Governor::as_str) else {
                continue;
            };
            if governor == "performance" {
                continue;
            }
            match groups.iter_mut().find(|(g, _)| *g == governor) {
                Some((_, cpus)) => cpus.insert(cpu.cpu),
                None => groups.push((governor, CpuSet::from_ids([cpu.cpu]))),
            }
        }
        groups
            .into_iter()
            .map(|(governor, cpus)| Finding {
                severity: Severity::Warning,
                object: format!("cpufreq governor on {}", cpus_phrase(&cpus)),
                evidence: format!("governor {governor}: the clock drops when idle"),
                mechanism: Mechanism::Bypass,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::KernelValue;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn resume_latency_parse_never_panics(text in "(?s).{0,20}") {
            let _ = ResumeLatency::parse(&text);
        }
    }

    #[test]
    fn resume_latency_special_values() {
        let cases = [
            ("zero means no limit", "0\n", Ok(ResumeLatency::NoLimit)),
            (
                "n/a means none tolerated",
                "n/a",
                Ok(ResumeLatency::ZeroLatency),
            ),
            ("a limit", "20", Ok(ResumeLatency::Microseconds(20))),
        ];
        for (what, text, want) in cases {
            assert_eq!(ResumeLatency::parse(text), want, "{what}");
        }
        assert!(ResumeLatency::parse("").is_err());
        assert_eq!(
            parse_kernel_name("acpi-cpufreq").as_deref(),
            Ok("acpi-cpufreq")
        );
        assert!(parse_kernel_name("").is_err() && parse_kernel_name("#0 x").is_err());
        assert!(ResumeLatency::parse("-1").is_err());
        assert!(ResumeLatency::NoLimit.allows(133));
        assert!(ResumeLatency::ZeroLatency.allows(0) && !ResumeLatency::ZeroLatency.allows(1));
        assert!(ResumeLatency::Microseconds(10).allows(10));
        assert!(!ResumeLatency::Microseconds(10).allows(133));
    }

    fn state(index: u32, name: &str, latency: u64, disabled: bool) -> IdleState {
        IdleState {
            index,
            name: name.to_owned(),
            latency_us: Some(latency),
            residency_us: Some(latency * 3),
            disabled: Some(disabled),
        }
    }

    fn server() -> Power {
        let cpu = |cpu, qos, governor: &str| CpuPower {
            cpu,
            idle_states: vec![
                state(0, "POLL", 0, false),
                state(1, "C1", 2, false),
                state(2, "C1E", 10, true),
                state(3, "C6", 133, false),
            ],
            resume_latency: Some(qos),
            cpufreq_governor: Governor::try_from(governor).ok(),
            cpufreq_available_governors: Vec::new(),
        };
        Power {
            cpuidle_driver: Some("intel_idle".to_owned()),
            cpuidle_governor: Some("menu".to_owned()),
            cpus: vec![
                cpu(0, ResumeLatency::NoLimit, "powersave"),
                cpu(1, ResumeLatency::NoLimit, "powersave"),
                cpu(2, ResumeLatency::Microseconds(20), "performance"),
            ],
        }
    }

    #[test]
    fn deep_states_not_blocked_by_qos_or_disable_are_found() {
        let evidence: Vec<String> = server()
            .findings()
            .into_iter()
            .map(|f| f.evidence)
            .collect();
        assert_eq!(
            evidence,
            [
                "deep C-state C6 enabled on CPUs 0-1 (exit latency 133 µs)",
                "governor powersave: the clock drops when idle",
            ]
        );
    }

    #[test]
    fn findings_for_an_exclusive_set_stay_inside_it() {
        let findings = server().findings_for(&CpuSet::from_ids([1, 2]));
        let evidence: Vec<&str> = findings.iter().map(|f| f.evidence.as_str()).collect();
        assert_eq!(evidence.len(), 3, "{evidence:?}");
        assert!(evidence[0].contains("on CPU 1 "));
        assert_eq!(findings[2].object, "PM QoS of CPU 1");
        assert!(server().findings_for(&CpuSet::from_ids([2])).is_empty());
    }
}
