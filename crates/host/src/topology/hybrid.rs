//! Hybrid core kinds (P-cores and E-cores), from the first source the kernel offers:
//! Intel's `cpu_core`/`cpu_atom` PMU devices, the scheduler's `cpu_capacity` (ARM
//! big.LITTLE), or intel_pstate's per-CPU `base_frequency`. Maximum frequencies are not used:
//! Turbo Boost Max 3.0 makes them differ on identical cores.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::parse;
use crate::{CpuSet, Root, Unknown};

/// The kind of a core on a hybrid machine. With more than two kinds (ARM prime/big/little),
/// the fastest are `Performance` and every other is `Efficiency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CoreKind {
    Performance,
    Efficiency,
}

/// Where the kinds were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HybridSource {
    /// `/sys/devices/cpu_core/cpus` and `/sys/devices/cpu_atom/cpus`.
    IntelPmu,
    /// `/sys/devices/system/cpu/cpuN/cpu_capacity`.
    CpuCapacity,
    /// `/sys/devices/system/cpu/cpuN/cpufreq/base_frequency`.
    BaseFrequency,
}

impl HybridSource {
    /// The file the kinds were read from, for messages.
    pub fn file(self) -> &'static str {
        match self {
            HybridSource::IntelPmu => "/sys/devices/cpu_{core,atom}/cpus",
            HybridSource::CpuCapacity => "cpu_capacity",
            HybridSource::BaseFrequency => "cpufreq/base_frequency",
        }
    }
}

/// The kind of each CPU on a hybrid machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kinds {
    pub source: HybridSource,
    pub of_cpu: BTreeMap<u32, CoreKind>,
}

pub fn read(root: &Root, cpus: &CpuSet, unknowns: &mut Vec<Unknown>) -> Option<Kinds> {
    if let Some(kinds) = intel_pmu(root, unknowns) {
        return Some(kinds);
    }
    let per_cpu = [
        (HybridSource::CpuCapacity, "cpu_capacity"),
        (HybridSource::BaseFrequency, "cpufreq/base_frequency"),
    ];
    for (source, file) in per_cpu {
        let path = |cpu: u32| format!("/sys/devices/system/cpu/cpu{cpu}/{file}");
        let first = cpus.first()?;
        if !root.exists(path(first)) {
            continue;
        }
        let mut values = BTreeMap::new();
        for cpu in cpus.iter() {
            match root.read_parsed(path(cpu), parse::int) {
                Ok(value) => {
                    values.insert(cpu, value);
                }
                Err(err) => {
                    unknowns.push(Unknown::from_error(format!("core kind of cpu{cpu}"), &err))
                }
            }
        }
        return by_value(source, &values);
    }
    None
}

/// The PMU lists exist only on hybrid Intel machines.
fn intel_pmu(root: &Root, unknowns: &mut Vec<Unknown>) -> Option<Kinds> {
    let mut list = |path: &str| match root.read_parsed(path, CpuSet::parse_list) {
        Ok(set) => Some(set),
        Err(err) if err.is_not_found() => None,
        Err(err) => {
            unknowns.push(Unknown::from_error("core kinds", &err));
            None
        }
    };
    let performance = list("/sys/devices/cpu_core/cpus")?;
    let efficiency = list("/sys/devices/cpu_atom/cpus")?;
    if performance.is_empty() || efficiency.is_empty() {
        return None;
    }
    let of_cpu = performance
        .iter()
        .map(|cpu| (cpu, CoreKind::Performance))
        .chain(efficiency.iter().map(|cpu| (cpu, CoreKind::Efficiency)))
        .collect();
    Some(Kinds {
        source: HybridSource::IntelPmu,
        of_cpu,
    })
}

/// The highest value marks performance cores; `None` when every CPU has the same value.
fn by_value(source: HybridSource, values: &BTreeMap<u32, i64>) -> Option<Kinds> {
    let highest = *values.values().max()?;
    let lowest = *values.values().min()?;
    if highest == lowest {
        return None;
    }
    let of_cpu = values
        .iter()
        .map(|(&cpu, &value)| {
            let kind = if value == highest {
                CoreKind::Performance
            } else {
                CoreKind::Efficiency
            };
            (cpu, kind)
        })
        .collect();
    Some(Kinds { source, of_cpu })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_value_is_performance_and_uniform_is_not_hybrid() {
        let values: BTreeMap<u32, i64> = [(0, 1024), (1, 1024), (2, 446)].into();
        let kinds = by_value(HybridSource::CpuCapacity, &values).unwrap();
        assert_eq!(kinds.of_cpu[&0], CoreKind::Performance);
        assert_eq!(kinds.of_cpu[&2], CoreKind::Efficiency);
        let uniform: BTreeMap<u32, i64> = [(0, 1024), (1, 1024)].into();
        assert_eq!(by_value(HybridSource::CpuCapacity, &uniform), None);
    }

    #[test]
    fn intel_pmu_lists_win() {
        let dir = tempfile::tempdir().unwrap();
        for (pmu, list) in [("cpu_core", "0-3\n"), ("cpu_atom", "4-7\n")] {
            let pmu_dir = dir.path().join("sys/devices").join(pmu);
            std::fs::create_dir_all(&pmu_dir).unwrap();
            std::fs::write(pmu_dir.join("cpus"), list).unwrap();
        }
        let cpus = CpuSet::parse_list("0-7").unwrap();
        let kinds = read(&Root::new(dir.path()), &cpus, &mut Vec::new()).unwrap();
        assert_eq!(kinds.source, HybridSource::IntelPmu);
        assert_eq!(kinds.of_cpu[&5], CoreKind::Efficiency);
    }
}
