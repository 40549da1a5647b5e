//! CPU topology: packages, dies, clusters, cores with their SMT siblings, L2/L3 groups, NUMA
//! nodes, hybrid core kinds and online state, read from `/sys/devices/system/{cpu,node}`.
//!
//! Objects are defined the way the kernel's sibling masks define them and the way hwloc reads
//! them: a core is the set of online CPUs in one `core_cpus` (old name `thread_siblings`) mask,
//! a package one `package_cpus` (`core_siblings`) mask. `core_id` is only unique within a
//! package (and die, cluster), so every object gets a dense logical id, numbered depth-first
//! (package, die, L3, cluster, L2, core) like hwloc's logical indexes. What sysfs does not say
//! is left `None` with an [`Unknown`] naming the file, never guessed.

mod build;
mod caches;
mod findings;
mod hybrid;
mod numa;
mod parse;
mod sysfs;

use serde::{Deserialize, Serialize};

use crate::{CpuSet, Root, Unknown};

pub use caches::CacheType;
pub use findings::findings;
pub use hybrid::{CoreKind, HybridSource};

/// The machine's CPU topology. Every `Vec` is sorted by `id`; ids are dense from 0 except
/// `cpus[].id` and `numa_nodes[].id`, which are the kernel's numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Every CPU the kernel has a `cpuN` directory for, online or not.
    pub cpus: Vec<Cpu>,
    pub online: CpuSet,
    pub offline: CpuSet,
    pub packages: Vec<Package>,
    /// Dies that are neither a single CPU nor a whole package (empty on most machines).
    pub dies: Vec<Group>,
    /// Clusters of cores (ARM, some x86 E-core modules), when neither a single core nor a die.
    pub clusters: Vec<Group>,
    pub cores: Vec<Core>,
    /// Caches of level 2 and above.
    pub caches: Vec<Cache>,
    pub numa_nodes: Vec<NumaNode>,
    /// Where the P/E split came from; `None` when all cores are of one kind.
    pub hybrid: Option<HybridSource>,
}

/// One logical CPU (a hardware thread).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    /// The kernel's CPU number.
    pub id: u32,
    pub online: bool,
    /// Logical package id (index into `packages`). `None` when offline or unknown.
    pub package: Option<u32>,
    pub die: Option<u32>,
    pub cluster: Option<u32>,
    /// Logical core id, unique across the machine (index into `cores`).
    pub core: Option<u32>,
    /// The kernel's NUMA node number.
    pub numa_node: Option<u32>,
    /// The online CPUs of this CPU's core, itself included. Empty when offline or unknown.
    pub siblings: CpuSet,
    /// The id of the L2 cache (in `caches` of level 2) this CPU uses.
    pub l2: Option<u32>,
    pub l3: Option<u32>,
    /// P or E core, on hybrid machines only.
    pub kind: Option<CoreKind>,
}

/// A physical package (socket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub id: u32,
    /// `physical_package_id`: the firmware's number, not always unique or dense; -1 when the
    /// architecture does not say.
    pub os_id: Option<i64>,
    pub cpus: CpuSet,
}

/// A die or a cluster: a group of cores inside a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: u32,
    /// `die_id` or `cluster_id`, as the kernel reports it.
    pub os_id: Option<i64>,
    pub cpus: CpuSet,
}

/// A physical core and its hardware threads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Core {
    pub id: u32,
    /// `core_id`: unique only within its package (and die or cluster).
    pub os_id: Option<i64>,
    pub package: Option<u32>,
    pub cpus: CpuSet,
    pub kind: Option<CoreKind>,
}

/// A cache shared by a group of CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cache {
    /// Unique among caches of the same level.
    pub id: u32,
    pub level: u8,
    #[serde(rename = "type")]
    pub cache_type: CacheType,
    pub size_kib: Option<u64>,
    pub cpus: CpuSet,
}

/// A NUMA node: memory and the CPUs local to it. Either may be empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaNode {
    /// The kernel's node number.
    pub id: u32,
    pub cpus: CpuSet,
    pub memory_kib: Option<u64>,
    /// Relative distance to each node of `numa_nodes`, in that order (10 = local).
    pub distances: Option<Vec<u32>>,
    /// True when the kernel has no NUMA support in sysfs and this node stands for the whole
    /// machine, as the kernel treats it.
    pub implicit: bool,
}

impl Topology {
    /// Reads the topology under `root`. Never fails: what cannot be read is left out or `None`
    /// and explained in `unknowns`.
    pub fn read(root: &Root, unknowns: &mut Vec<Unknown>) -> Topology {
        let raw = sysfs::read_cpus(root, unknowns);
        let caches = caches::read(root, &raw.with_topology, unknowns);
        let nodes = numa::read(root, &raw.online, unknowns);
        let kinds = hybrid::read(root, &raw.with_topology, unknowns);
        build::assemble(raw, caches, nodes, kinds)
    }

    pub fn cpu(&self, id: u32) -> Option<&Cpu> {
        self.cpus
            .binary_search_by_key(&id, |c| c.id)
            .ok()
            .map(|i| &self.cpus[i])
    }

    /// True when any core has more than one online thread.
    pub fn smt_active(&self) -> bool {
        self.cores.iter().any(|core| core.cpus.len() > 1)
    }
}
