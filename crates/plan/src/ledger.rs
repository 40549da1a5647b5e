//! The ledger: every exclusive allocation in force, as pure data. The apply stage persists it
//! (crash-safely, through its durable state files); here it is only read and updated in memory.
//!
//! Before allocating against a ledger it is checked against the freshly read topology, as
//! kubelet's `validateState` does: a CPU that went offline or disappeared, a CPU held twice, or
//! a core that gained an online sibling no allocation holds all mean the ledger no longer
//! describes this host, and planning on it would break exclusivity. So does an allocation
//! whose CPUs are not exactly its threads' whole cores plus one whole I/O core. A pool's
//! slots are its CPUs (see [`Allocation`]), so the same check covers it, plus its core count.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use nearnative_host::topology::Topology;
use nearnative_host::CpuSet;
use serde::{Deserialize, Serialize};

use crate::allocation::Allocation;
use crate::request::WorkloadKey;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    allocations: BTreeMap<WorkloadKey, Allocation>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error(
        "ledger entry {key} holds the allocation of {workload}; the ledger was edited by hand"
    )]
    KeyMismatch {
        key: WorkloadKey,
        workload: WorkloadKey,
    },
    #[error("ledger: {workload} holds CPU {cpu}, which this host does not have")]
    UnknownCpu { workload: WorkloadKey, cpu: u32 },
    #[error(
        "ledger: {workload} holds CPU {cpu}, which is offline; revert {workload} and plan it again"
    )]
    OfflineCpu { workload: WorkloadKey, cpu: u32 },
    #[error("ledger: CPU {cpu} is held by both {first} and {second}")]
    HeldTwice {
        cpu: u32,
        first: WorkloadKey,
        second: WorkloadKey,
    },
    #[error(
        "ledger: {workload} holds CPU {cpu} apart from its threads' cores and its I/O core; \
         the ledger was edited by hand"
    )]
    Stray { workload: WorkloadKey, cpu: u32 },
    #[error(
        "ledger: {workload} has a pool of {cores} cores but its CPUs lie on {spanned}; the ledger \
         was edited by hand"
    )]
    PoolSize {
        workload: WorkloadKey,
        cores: u32,
        spanned: u32,
    },
    #[error(
        "ledger: {workload} holds CPU {cpu} but not its online sibling {sibling} (a CPU came \
         online since), so the core is no longer exclusive; plan {workload} again"
    )]
    PartialCore {
        workload: WorkloadKey,
        cpu: u32,
        sibling: u32,
    },
}

impl Ledger {
    pub fn new() -> Self {
        Ledger::default()
    }

    pub fn get(&self, workload: &WorkloadKey) -> Option<&Allocation> {
        self.allocations.get(workload)
    }

    /// The allocations in workload-key order.
    pub fn iter(&self) -> impl Iterator<Item = &Allocation> {
        self.allocations.values()
    }

    pub fn len(&self) -> usize {
        self.allocations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.allocations.is_empty()
    }

    /// Records an allocation, replacing (and returning) the same workload's previous one.
    pub fn record(&mut self, allocation: Allocation) -> Option<Allocation> {
        self.allocations
            .insert(allocation.workload().clone(), allocation)
    }

    /// Records an allocation (replacing the workload's previous one) and returns it in place.
    pub(crate) fn upsert(&mut self, allocation: Allocation) -> &Allocation {
        match self.allocations.entry(allocation.workload().clone()) {
            Entry::Occupied(mut entry) => {
                entry.insert(allocation);
                entry.into_mut()
            }
            Entry::Vacant(entry) => entry.insert(allocation),
        }
    }

    /// Gives a workload's CPUs back.
    pub fn release(&mut self, workload: &WorkloadKey) -> Option<Allocation> {
        self.allocations.remove(workload)
    }

    /// Every CPU held by any workload.
    pub fn held(&self) -> CpuSet {
        self.held_except(None)
    }

    /// Every CPU held by workloads other than `except`.
    pub fn held_except(&self, except: Option<&WorkloadKey>) -> CpuSet {
        let mut held = CpuSet::new();
        for (key, allocation) in &self.allocations {
            if Some(key) != except {
                held = held.union(&allocation.held());
            }
        }
        held
    }

    /// Checks that every allocation still describes this host. The common case costs a few
    /// word-wide set operations per allocation; the offending CPU is searched for only once
    /// something is wrong.
    pub fn validate(&self, topology: &Topology) -> Result<(), LedgerError> {
        let mut seen = CpuSet::new();
        for (key, allocation) in &self.allocations {
            let workload = allocation.workload();
            if key != workload {
                return Err(LedgerError::KeyMismatch {
                    key: key.clone(),
                    workload: workload.clone(),
                });
            }
            let held = allocation.held();
            if let Some(cpu) = held.difference(&topology.online).first() {
                return Err(not_online(topology, workload, cpu));
            }
            check_cores(topology, allocation)?;
            if let Some(cpu) = held.intersection(&seen).first() {
                let first = self
                    .iter()
                    .find(|a| a.held().contains(cpu))
                    .map_or_else(|| workload.clone(), |a| a.workload().clone());
                return Err(LedgerError::HeldTwice {
                    cpu,
                    first,
                    second: workload.clone(),
                });
            }
            seen = seen.union(&held);
        }
        Ok(())
    }
}

fn not_online(topology: &Topology, workload: &WorkloadKey, cpu: u32) -> LedgerError {
    let workload = workload.clone();
    match topology.cpu(cpu) {
        Some(_) => LedgerError::OfflineCpu { workload, cpu },
        None => LedgerError::UnknownCpu { workload, cpu },
    }
}

/// The exclusive CPUs are exactly the whole cores of the threads, and the I/O CPUs one whole
/// core. All CPUs are known to be online.
fn check_cores(topology: &Topology, allocation: &Allocation) -> Result<(), LedgerError> {
    let workload = || allocation.workload().clone();
    let none = CpuSet::new();
    let siblings = |cpu: u32| topology.cpu(cpu).map_or(&none, |c| &c.siblings);
    let mut thread_cores = CpuSet::new();
    let mut spanned = 0;
    for slot in &allocation.slots {
        if !allocation.exclusive_cpus.contains(slot.cpu) {
            return Err(LedgerError::Stray {
                workload: workload(),
                cpu: slot.cpu,
            });
        }
        if !thread_cores.contains(slot.cpu) {
            thread_cores = thread_cores.union(siblings(slot.cpu));
            spanned += 1;
        }
    }
    if let Some(cores) = allocation.request.cores.filter(|&c| c != spanned) {
        return Err(LedgerError::PoolSize {
            workload: workload(),
            cores,
            spanned,
        });
    }
    let io_core = allocation
        .io_cpus
        .first()
        .map_or_else(CpuSet::new, |cpu| siblings(cpu).clone());
    for (whole, held) in [
        (&thread_cores, &allocation.exclusive_cpus),
        (&io_core, &allocation.io_cpus),
    ] {
        if let Some(sibling) = whole.difference(held).first() {
            let cpu = held
                .iter()
                .find(|&cpu| siblings(cpu).contains(sibling))
                .unwrap_or(sibling);
            return Err(LedgerError::PartialCore {
                workload: workload(),
                cpu,
                sibling,
            });
        }
        if let Some(cpu) = held.difference(whole).first() {
            return Err(LedgerError::Stray {
                workload: workload(),
                cpu,
            });
        }
    }
    Ok(())
}
