//! Hand-built hosts for tests that plan or match against a host read in code, not from
//! `/proc` and `/sys`: a topology, a cgroup v1 cpuset hierarchy, and nothing else until the
//! test adds it.

use std::path::PathBuf;

use nearnative_host::isolation::{CgroupMode, Cgroups, Cpuset, Isolation};
use nearnative_host::topology::Topology;
use nearnative_host::{CpuSet, Host};

/// Where the v1 cpuset hierarchy of a hand-built host is mounted.
pub const CPUSET_MOUNT: &str = "/sys/fs/cgroup/cpuset";

/// A host of `topology` whose v1 cpuset hierarchy (mounted at [`CPUSET_MOUNT`]) holds
/// `cpusets`, with no IRQs, NICs, knobs, tasks or workloads.
pub fn v1_host(topology: Topology, cpusets: Vec<Cpuset>) -> Host {
    Host {
        schema_version: 1,
        root: PathBuf::from("/"),
        isolation: Isolation {
            cmdline: None,
            isolated: None,
            nohz_full: None,
            cgroups: Cgroups {
                mode: CgroupMode::Legacy,
                unified_mount: None,
                cpuset_version: Some(1),
                cpuset_mount: Some(PathBuf::from(CPUSET_MOUNT)),
                cpusets,
                truncated: false,
            },
            process_cpuset: None,
        },
        topology,
        irqs: Default::default(),
        nics: Default::default(),
        power: Default::default(),
        knobs: Default::default(),
        tasks: Default::default(),
        workloads: Vec::new(),
        findings: Vec::new(),
        unknowns: Vec::new(),
    }
}

/// A v1 cpuset at `path` whose CPUs are all effective, on memory nodes `mems`, balancing
/// load; `exclusive` is its `cpuset.cpu_exclusive`.
pub fn v1_cpuset(path: &str, cpus: &CpuSet, mems: CpuSet, exclusive: bool) -> Cpuset {
    Cpuset {
        path: path.into(),
        cpus: Some(cpus.clone()),
        mems: Some(mems),
        effective_cpus: Some(cpus.clone()),
        cpu_exclusive: Some(exclusive),
        sched_load_balance: Some(true),
        partition: None,
    }
}
