//! Isolation state: what the kernel command line asks for (`isolcpus`, `nohz_full`,
//! `rcu_nocbs`, `irqaffinity`), what the kernel applied (`/sys/devices/system/cpu/isolated`
//! and `nohz_full`), and the cgroup cpusets that keep tasks off CPUs at run time.

mod cmdline;
mod cpusets;
mod findings;
pub mod mounts;
mod own;

use serde::{Deserialize, Serialize};

use crate::{CpuSet, Root, Unknown};

pub use cmdline::{BootIsolation, Isolcpus, IsolcpusFlag};
pub use cpusets::{CgroupMode, Cgroups, Cpuset, WalkLimits};
pub use findings::findings;
pub use own::ProcessCpuset;

const CMDLINE: &str = "/proc/cmdline";
const ISOLATED: &str = "/sys/devices/system/cpu/isolated";
const NOHZ_FULL: &str = "/sys/devices/system/cpu/nohz_full";

/// The host's CPU isolation, boot-time and run-time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isolation {
    /// Parsed from `/proc/cmdline`; `None` when it could not be read.
    pub cmdline: Option<BootIsolation>,
    /// CPUs out of the scheduler domains (`isolcpus=` with `domain`), as the kernel reports.
    /// `None` when the file is missing (kernels before 4.x).
    pub isolated: Option<CpuSet>,
    /// CPUs running tickless. `None` when the kernel is built without `NO_HZ_FULL`.
    pub nohz_full: Option<CpuSet>,
    pub cgroups: Cgroups,
    /// The cpuset of the process that read the host (`/proc/self`). hwloc's `lstopo` shows
    /// only these CPUs by default. `None` without a cpuset hierarchy or `/proc/self`.
    pub process_cpuset: Option<ProcessCpuset>,
}

impl Isolation {
    pub fn read(root: &Root, limits: WalkLimits, unknowns: &mut Vec<Unknown>) -> Isolation {
        let cgroups = cpusets::read(root, limits, unknowns);
        let process_cpuset = match (cgroups.cpuset_version, &cgroups.cpuset_mount) {
            (Some(version), Some(mount)) => own::read(root, version, mount, unknowns),
            _ => None,
        };
        Isolation {
            cmdline: read_cmdline(root, unknowns),
            isolated: read_cpu_file(root, ISOLATED, "isolated CPUs", unknowns),
            nohz_full: read_cpu_file(root, NOHZ_FULL, "nohz_full CPUs", unknowns),
            cgroups,
            process_cpuset,
        }
    }
}

fn read_cmdline(root: &Root, unknowns: &mut Vec<Unknown>) -> Option<BootIsolation> {
    let text = root
        .read_to_string(CMDLINE)
        .map_err(|err| unknowns.push(Unknown::from_error("kernel command line", &err)))
        .ok()?;
    let possible = crate::cpus::possible_cpus(root).unwrap_or_default();
    let (boot, bad) = cmdline::parse(&text, &possible);
    for param in bad {
        unknowns.push(Unknown {
            object: format!("{} on the kernel command line", param.param),
            path: root.path(CMDLINE),
            reason: param.to_string(),
        });
    }
    Some(boot)
}

/// A sysfs CPU list that may be missing. Old kernels print `(null)` for an empty mask.
fn read_cpu_file(
    root: &Root,
    path: &str,
    what: &str,
    unknowns: &mut Vec<Unknown>,
) -> Option<CpuSet> {
    let parse = |text: &str| match text {
        "(null)" => Ok(CpuSet::new()),
        list => CpuSet::parse_list(list),
    };
    match root.read_parsed(path, parse) {
        Ok(set) => Some(set),
        Err(err) if err.is_not_found() => None,
        Err(err) => {
            unknowns.push(Unknown::from_error(what, &err));
            None
        }
    }
}
