//! The allocator's answer: which CPU runs each thread, and every CPU the workload holds.
//!
//! Invariants, for an allocation the allocator made: `exclusive_cpus` is the union of whole
//! cores (their online CPUs); `threads ⊆ exclusive_cpus`, `reserved_idle = exclusive_cpus −
//! threads`; `io_cpus` is empty or one whole core disjoint from `exclusive_cpus`; no CPU of
//! [`Allocation::held`] is held by another workload in the same ledger.
//!
//! A pool (`request.cores = Some(N)`) keeps every one of them: its slots are the pool's CPUs,
//! not the workload's threads. There is one slot per pool CPU (one CPU of each of the N cores
//! at `high`, every online CPU of each at `high-ht`), numbered from 0 in the order the cores
//! were given, so `threads` above reads "the CPUs threads run on", the ledger checks the same
//! whole cores, and every thread of the workload may run on all of [`Allocation::thread_cpus`].

use nearnative_host::CpuSet;
use serde::{Deserialize, Serialize};

use crate::notes::PlacementNote;
use crate::request::{AllocationRequest, WorkloadKey};

/// Thread (vCPU) `thread` runs on CPU `cpu`. In a pool, `thread` numbers the pool's CPUs
/// instead: every thread of the workload shares all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub thread: u32,
    pub cpu: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The request this answers; an identical request later gets the same cores back.
    pub request: AllocationRequest,
    /// One per thread, in thread order; in a pool, one per pool CPU (see the module doc).
    pub slots: Vec<Slot>,
    /// Every online CPU of the workload's thread cores: its threads and their idle siblings.
    pub exclusive_cpus: CpuSet,
    /// Siblings no thread runs on and no one else may use.
    pub reserved_idle: CpuSet,
    /// The dedicated I/O core's CPUs (empty when I/O stays on housekeeping cores).
    pub io_cpus: CpuSet,
    /// The online CPUs no workload holds, this one included, when the allocation was made:
    /// where the host's own work, and this workload's I/O by default, should run.
    pub housekeeping: CpuSet,
    /// The NUMA nodes of the exclusive and I/O cores, the main one first.
    pub nodes: Vec<u32>,
    /// Why the placement is what it is, where that is not obvious; plain sentences in a
    /// record made before notes were typed.
    #[serde(deserialize_with = "crate::decisions::deserialize_notes")]
    pub notes: Vec<PlacementNote>,
}

impl Allocation {
    pub fn workload(&self) -> &WorkloadKey {
        &self.request.workload
    }

    /// The CPUs the threads run on (in a pool, the pool's CPUs).
    pub fn thread_cpus(&self) -> CpuSet {
        self.slots.iter().map(|s| s.cpu).collect()
    }

    /// For a pool (`--cores N`): the CPUs every thread of the workload may run on, the idle
    /// siblings of level `high` left out. `None` when each thread has a CPU of its own.
    pub fn pool_cpus(&self) -> Option<CpuSet> {
        self.request.cores.map(|_| self.thread_cpus())
    }

    /// Every CPU the workload holds: no other workload may be given any of them.
    pub fn held(&self) -> CpuSet {
        self.exclusive_cpus.union(&self.io_cpus)
    }
}
