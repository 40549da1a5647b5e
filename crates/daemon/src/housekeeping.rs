//! The daemon's own place on the host: it runs only on housekeeping CPUs (its scope's CPUs
//! that no workload holds), so its reconcile rounds never interrupt an exclusive CPU. Every
//! thread of the process is pinned at start and again whenever the CPUs the ledger holds
//! differ from those it last pinned for (the loop's applies and reverts, and the control
//! socket's); threads started in between inherit the mask of the thread that made them.
//!
//! Also the arithmetic `status` and the metrics show: the whole cores still free for
//! exclusive use on each NUMA node, counted as the planner's admission does (CPU 0's core is
//! never given out, and each node keeps one free core for the host).

use std::collections::BTreeMap;

use nearnative_host::topology::Topology;
use nearnative_host::{CpuSet, ReadError, Root};
use nearnative_plan::Ledger;
use nearnative_sys::pin::set_thread_affinity;
use nix::errno::Errno;

/// Why the daemon could not pin itself.
#[derive(Debug, thiserror::Error)]
pub enum PinSelfError {
    #[error("cannot list this process's threads: {0}")]
    Threads(#[source] ReadError),
    #[error("cannot pin thread {tid} of the daemon to housekeeping CPUs {cpus}: {source}")]
    Pin {
        tid: u32,
        cpus: CpuSet,
        #[source]
        source: Errno,
    },
}

/// Every CPU a workload of `ledger` holds, its idle SMT siblings included.
fn held(ledger: &Ledger) -> CpuSet {
    ledger.iter().fold(CpuSet::default(), |all, allocation| {
        all.union(&allocation.held())
            .union(&allocation.reserved_idle)
    })
}

/// The CPUs of `scope_cpus` that no workload of `ledger` holds.
pub fn housekeeping_cpus(scope_cpus: &CpuSet, ledger: &Ledger) -> CpuSet {
    scope_cpus.difference(&held(ledger))
}

/// Pins every thread of this process to `cpus`; a thread that exits meanwhile is skipped.
/// An empty set (no housekeeping CPU left, which admission never allows) changes nothing.
pub fn pin_self(root: &Root, cpus: &CpuSet) -> Result<(), PinSelfError> {
    if cpus.is_empty() {
        return Ok(());
    }
    let tasks = root
        .list_dir(format!("/proc/{}/task", std::process::id()))
        .map_err(PinSelfError::Threads)?;
    for tid in tasks.iter().filter_map(|t| t.parse::<u32>().ok()) {
        match set_thread_affinity(tid, cpus) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(source) => {
                return Err(PinSelfError::Pin {
                    tid,
                    cpus: cpus.clone(),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Whole cores of `scope_cpus` still free for exclusive use, per NUMA node: cores none of
/// whose CPUs is held, CPU 0's core left out, and one free core kept back on each node for
/// the host when CPU 0's core does not already serve.
pub fn free_cores_by_node(
    topology: &Topology,
    scope_cpus: &CpuSet,
    ledger: &Ledger,
) -> BTreeMap<u32, u32> {
    let held = held(ledger);
    let mut free = BTreeMap::new();
    for node in &topology.numa_nodes {
        let cores = topology.cores.iter().filter(|core| {
            !core.cpus.is_empty()
                && core.cpus.is_subset(&node.cpus)
                && core.cpus.is_subset(scope_cpus)
                && core.cpus.is_disjoint(&held)
        });
        let (with_cpu0, eligible): (Vec<_>, Vec<_>) = cores.partition(|c| c.cpus.contains(0));
        let kept_back = usize::from(with_cpu0.is_empty());
        let count = eligible.len().saturating_sub(kept_back);
        free.insert(node.id, u32::try_from(count).unwrap_or(u32::MAX));
    }
    free
}

#[cfg(test)]
mod tests {
    use super::*;
    use nearnative_plan::{Allocation, AllocationRequest, Level};
    use nearnative_testkit::synthetic::Shape;

    fn cpus(list: &str) -> CpuSet {
        CpuSet::parse_list(list).unwrap()
    }

    fn ledger_holding(key: &str, exclusive: &str, idle: &str) -> Ledger {
        let mut ledger = Ledger::new();
        ledger.record(Allocation {
            request: AllocationRequest::new(key, 1, Level::High),
            slots: Vec::new(),
            exclusive_cpus: cpus(exclusive),
            reserved_idle: cpus(idle),
            io_cpus: CpuSet::default(),
            housekeeping: CpuSet::default(),
            nodes: vec![0],
            notes: Vec::new(),
        });
        ledger
    }

    #[test]
    fn housekeeping_is_the_scope_less_every_held_cpu_and_idle_sibling() {
        let ledger = ledger_holding("vm:a", "2", "3");
        assert_eq!(housekeeping_cpus(&cpus("0-5"), &ledger), cpus("0-1,4-5"));
        assert_eq!(housekeeping_cpus(&cpus("0-5"), &Ledger::new()), cpus("0-5"));
    }

    #[test]
    fn pinning_the_whole_process_to_its_own_cpus_changes_nothing_it_could_not() {
        let root = Root::default();
        let own = nearnative_sys::pin::thread_affinity(std::process::id()).unwrap();
        pin_self(&root, &own).unwrap();
        assert_eq!(
            nearnative_sys::pin::thread_affinity(std::process::id()).unwrap(),
            own
        );
        pin_self(&root, &CpuSet::default()).unwrap();
        assert_eq!(
            nearnative_sys::pin::thread_affinity(std::process::id()).unwrap(),
            own,
            "an empty set pins nothing"
        );
    }

    #[test]
    fn free_cores_keep_cpu0s_core_and_one_per_node() {
        let topology = Shape::server(1, 2, 4, 1).build();
        let free = free_cores_by_node(&topology, &topology.online, &Ledger::new());
        assert_eq!(free, BTreeMap::from([(0, 3), (1, 3)]));
        let ledger = ledger_holding("vm:a", "1", "");
        let free = free_cores_by_node(&topology, &topology.online, &ledger);
        assert_eq!(free, BTreeMap::from([(0, 2), (1, 3)]));
    }
}
