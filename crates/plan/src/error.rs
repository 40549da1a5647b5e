//! Why a request was refused, with the numbers: what was asked, what is free where, and what
//! the host keeps. Each message is one line that says what to do next.

use std::fmt;

use nearnative_host::CpuSet;

use crate::ledger::LedgerError;
use crate::request::{Level, WorkloadKey};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("{workload} asks for no threads; a workload needs at least one exclusive thread")]
    NoThreads { workload: WorkloadKey },
    #[error("--cores 0 for {workload}: a pool needs at least one core")]
    EmptyPool { workload: WorkloadKey },
    #[error(
        "--cores {cores} but {workload} has {threads} {} to place; a pool of more cores than \
         threads leaves a core no thread can use",
        threads_word(*.threads)
    )]
    PoolLargerThanThreads {
        workload: WorkloadKey,
        cores: u32,
        threads: u32,
    },
    #[error("{workload}: {role} node {node} does not exist on this host (nodes: {known})")]
    UnknownNode {
        workload: WorkloadKey,
        role: NodeRole,
        node: u32,
        known: NodeList,
    },
    #[error("--housekeeping {set}: CPU {cpu} is not an online CPU with a known core and node")]
    HousekeepingCpu { set: CpuSet, cpu: u32 },
    #[error("--housekeeping {set}: CPU {cpu} is held exclusively by a workload; release it first")]
    HousekeepingHeld { set: CpuSet, cpu: u32 },
    #[error(
        "--housekeeping {set} has no core on NUMA node {node}; every node with CPUs needs one \
         for the host's own work"
    )]
    HousekeepingMissesNode { set: CpuSet, node: u32 },
    #[error("{}; {}", .0.summary(), .0.hint())]
    NotEnoughCores(Shortage),
    #[error(
        "{}, but no single node has {} and spilling across nodes is off (remote memory and \
         cross-node cache traffic would make latency depend on the thread); free cores on one \
         node, or allow spilling with --numa-spill",
        .0.summary(), .0.cores
    )]
    NoSingleNode(Shortage),
    #[error("{workload} cannot have exactly CPUs {cpus}: {reason}")]
    ExactCpus {
        workload: WorkloadKey,
        cpus: CpuSet,
        reason: String,
    },
    #[error("the ledger of exclusive allocations does not match this host")]
    Ledger(#[source] LedgerError),
}

/// Which preference named a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    Memory,
    Nic,
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeRole::Memory => "memory",
            NodeRole::Nic => "NIC",
        })
    }
}

/// Node ids, printed as `0, 1, 2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeList(pub Vec<u32>);

impl fmt::Display for NodeList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&ids.join(", "))
    }
}

/// A number of cores per node, in node order, printed as `node 0: 1, node 1: 2`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeCounts(pub Vec<(u32, usize)>);

impl NodeCounts {
    pub fn total(&self) -> usize {
        self.0.iter().map(|&(_, count)| count).sum()
    }

    /// The count every node has, if they all have the same.
    fn uniform(&self) -> Option<usize> {
        let first = self.0.first()?.1;
        self.0.iter().all(|&(_, c)| c == first).then_some(first)
    }
}

impl fmt::Display for NodeCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(node, count)| format!("node {node}: {count}"))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// The numbers behind a refusal for lack of cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    pub workload: WorkloadKey,
    pub level: Level,
    pub threads: u32,
    /// Whether the threads share a pool of `cores` (`--cores`), so fewer threads per core
    /// would not need fewer cores.
    pub pool: bool,
    /// Exclusive cores the request needs, its dedicated I/O core included, on cores of the
    /// usual size.
    pub cores: usize,
    pub dedicated_io: bool,
    /// Cores the request could take, per node.
    pub free: NodeCounts,
    /// Free cores the host keeps, per node.
    pub kept: NodeCounts,
    /// Whether the host has SMT, so `high-ht` would need fewer cores.
    pub smt: bool,
}

impl Shortage {
    fn summary(&self) -> String {
        let io = if self.dedicated_io {
            ", one of them for I/O"
        } else {
            ""
        };
        let shared = match self.dedicated_io {
            true => "the others shared",
            false => "shared",
        };
        let pool = match self.pool {
            true => format!(
                ", {shared} by its {} {}",
                self.threads,
                threads_word(self.threads)
            ),
            false => String::new(),
        };
        let kept = match self.kept.uniform() {
            Some(count) => format!("{count} housekeeping {} per node", cores_word(count)),
            None => format!("housekeeping cores ({})", self.kept),
        };
        format!(
            "{} asks for {} exclusive {} (level {}{io}{pool}); {} {} free ({}) after keeping \
             {kept}",
            self.workload,
            self.cores,
            cores_word(self.cores),
            self.level,
            self.free.total(),
            if self.free.total() == 1 { "is" } else { "are" },
            self.free,
        )
    }

    fn hint(&self) -> &'static str {
        let halves = self.level == Level::High && self.smt && self.threads > 1 && !self.pool;
        match (halves, self.dedicated_io, self.pool) {
            (true, _, _) => "free more cores or use --level high-ht",
            (false, true, _) => "free more cores or use --io housekeeping",
            (false, false, true) => "free more cores or ask for fewer with --cores",
            (false, false, false) => "free more cores or ask for fewer threads",
        }
    }
}

fn threads_word(count: u32) -> &'static str {
    if count == 1 {
        "thread"
    } else {
        "threads"
    }
}

fn cores_word(count: usize) -> &'static str {
    if count == 1 {
        "core"
    } else {
        "cores"
    }
}
