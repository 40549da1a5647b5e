//! Which cores a request may take on each node, and how many, after the host keeps its
//! housekeeping: the admission-control arithmetic.
//!
//! A free core (no workload holds any of its CPUs) is either *protected* (CPU 0's core unless
//! the request allows it, or a core of the explicit housekeeping set) or *eligible*. Each node
//! with usable cores keeps at least one free core for the host: when none of its free cores is
//! protected, one eligible core is held back. With an explicit housekeeping set every node
//! already has a protected core, so nothing more is held back.

use nearnative_host::CpuSet;

use crate::error::AdmissionError;
use crate::host_index::HostIndex;
use crate::request::AllocationRequest;

/// The cores a request may take on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAvailability {
    pub node: u32,
    /// Free, unprotected cores (positions in the index), in core-id order.
    pub eligible: Vec<usize>,
    /// Free cores left to the host after this request at most: protected plus held back.
    pub kept: usize,
    /// How many of `eligible` the request may take.
    pub budget: usize,
}

/// Per core: may never be taken by this request although free.
pub fn protected_cores(
    index: &HostIndex,
    request: &AllocationRequest,
    held_by_others: &CpuSet,
) -> Result<Vec<bool>, AdmissionError> {
    let mut protected: Vec<bool> = index
        .cores
        .iter()
        .map(|core| core.has_cpu0 && !request.allow_cpu0)
        .collect();
    let Some(set) = &request.housekeeping else {
        return Ok(protected);
    };
    let named = |cpu| AdmissionError::HousekeepingCpu {
        set: set.clone(),
        cpu,
    };
    if let Some(cpu) = set.difference(&index.online).first() {
        return Err(named(cpu));
    }
    if let Some(cpu) = set.intersection(held_by_others).first() {
        return Err(AdmissionError::HousekeepingHeld {
            set: set.clone(),
            cpu,
        });
    }
    for cpu in set.iter() {
        let core = index.core_of(cpu).ok_or_else(|| named(cpu))?;
        protected[core] = true;
    }
    for node in &index.nodes {
        if node
            .cores
            .iter()
            .all(|&c| index.cores[c].cpus.is_disjoint(set))
        {
            return Err(AdmissionError::HousekeepingMissesNode {
                set: set.clone(),
                node: node.id,
            });
        }
    }
    Ok(protected)
}

/// Every node with usable cores, in node-id order.
pub fn availability(
    index: &HostIndex,
    taken: impl Fn(usize) -> bool,
    protected: &[bool],
) -> Vec<NodeAvailability> {
    index
        .nodes
        .iter()
        .map(|node| {
            let free: Vec<usize> = node.cores.iter().copied().filter(|&c| !taken(c)).collect();
            let protected_free = free.iter().filter(|&&c| protected[c]).count();
            let eligible: Vec<usize> = free.into_iter().filter(|&c| !protected[c]).collect();
            let held_back = usize::from(protected_free == 0 && !eligible.is_empty());
            NodeAvailability {
                node: node.id,
                budget: eligible.len() - held_back,
                kept: protected_free + held_back,
                eligible,
            }
        })
        .collect()
}
