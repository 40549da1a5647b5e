//! Shared checks: the allocator's invariants over a whole ledger, and an independent count of
//! whether a request fits, written from the rules rather than from the allocator's code.

use nearnative_host::topology::Topology;
use nearnative_host::CpuSet;
use nearnative_plan::{Allocation, AllocationRequest, IoPlacement, Ledger, Level, NumaSpill};

/// Every rule a ledger built by the allocator must keep on `topology`.
pub fn check_invariants(topology: &Topology, ledger: &Ledger) {
    ledger.validate(topology).expect("ledger stays valid");
    let mut seen = CpuSet::new();
    for allocation in ledger.iter() {
        let held = allocation.held();
        let who = allocation.workload();
        assert!(held.is_disjoint(&seen), "{who}: a CPU is given twice");
        seen = seen.union(&held);
        assert!(held.is_subset(&topology.online), "{who}: offline CPU held");
        let threads = allocation.thread_cpus();
        match allocation.request.cores {
            None => assert_eq!(allocation.slots.len(), allocation.request.threads as usize),
            Some(pool) => check_pool(topology, allocation, pool),
        }
        assert_eq!(
            threads.len(),
            allocation.slots.len(),
            "{who}: a CPU runs two threads"
        );
        assert_eq!(
            allocation.reserved_idle,
            allocation.exclusive_cpus.difference(&threads),
            "{who}: reserved = exclusive - threads"
        );
        assert!(allocation.io_cpus.is_disjoint(&allocation.exclusive_cpus));
        check_whole_cores(topology, &allocation.exclusive_cpus, who);
        check_whole_cores(topology, &allocation.io_cpus, who);
        check_sharing(topology, allocation.request.level, &threads, who);
        if allocation.request.io == IoPlacement::Dedicated {
            assert_eq!(
                cores(topology, &allocation.io_cpus).len(),
                1,
                "{who}: one I/O core"
            );
        }
        if !allocation.request.allow_cpu0 && topology.online.contains(0) {
            assert!(!held.contains(0), "{who}: took CPU 0's core");
        }
    }
    check_housekeeping(topology, &seen);
}

/// A pool holds exactly its whole cores; its CPUs are one per core at high, all at high-ht.
fn check_pool(topology: &Topology, allocation: &Allocation, pool: u32) {
    let who = allocation.workload();
    let pool_cores = cores(topology, &allocation.exclusive_cpus);
    assert_eq!(
        pool_cores.len(),
        pool as usize,
        "{who}: a pool of {pool} cores"
    );
    assert!(
        pool <= allocation.request.threads,
        "{who}: a core per thread at most"
    );
    let cpus = allocation.pool_cpus().expect("a pool");
    for core in pool_cores {
        let expected = match allocation.request.level {
            Level::High => 1,
            Level::HighHt => core.intersection(&topology.online).len().min(2),
        };
        assert_eq!(
            core.intersection(&cpus).len(),
            expected,
            "{who}: pool CPUs of {core}"
        );
    }
}

/// Each CPU's online siblings are held with it.
fn check_whole_cores(topology: &Topology, cpus: &CpuSet, who: &impl std::fmt::Display) {
    for cpu in cpus.iter() {
        let siblings = &topology.cpu(cpu).unwrap().siblings;
        assert!(
            siblings.is_subset(cpus),
            "{who}: CPU {cpu} without its siblings {siblings}"
        );
    }
}

/// At high no two threads share a core; at high-ht at most two do.
fn check_sharing(
    topology: &Topology,
    level: Level,
    threads: &CpuSet,
    who: &impl std::fmt::Display,
) {
    let limit = match level {
        Level::High => 1,
        Level::HighHt => 2,
    };
    for core in &topology.cores {
        let on_core = core.cpus.intersection(threads).len();
        assert!(
            on_core <= limit,
            "{who}: {on_core} threads on core {} at {level}",
            core.cpus
        );
    }
}

/// Every node with cores keeps a whole core no workload holds.
fn check_housekeeping(topology: &Topology, held: &CpuSet) {
    for node in &topology.numa_nodes {
        let node_cores: Vec<&CpuSet> = topology
            .cores
            .iter()
            .map(|c| &c.cpus)
            .filter(|cpus| node_of(topology, cpus) == Some(node.id))
            .collect();
        if !node_cores.is_empty() {
            assert!(
                node_cores.iter().any(|cpus| cpus.is_disjoint(held)),
                "node {} has no housekeeping core left",
                node.id
            );
        }
    }
}

/// The NUMA node of a core, from its first CPU.
pub fn node_of(topology: &Topology, core: &CpuSet) -> Option<u32> {
    topology.cpu(core.first()?)?.numa_node
}

fn cores<'t>(topology: &'t Topology, cpus: &CpuSet) -> Vec<&'t CpuSet> {
    topology
        .cores
        .iter()
        .map(|c| &c.cpus)
        .filter(|c| !c.is_disjoint(cpus))
        .collect()
}

/// Whether the rules say `request` fits: counted per node from free whole cores (a pool of N
/// needs N of them, whatever the level).
pub fn fits(topology: &Topology, ledger: &Ledger, request: &AllocationRequest) -> bool {
    if ledger
        .get(&request.workload)
        .is_some_and(|a| a.request == *request)
    {
        return true;
    }
    let held = ledger.held_except(Some(&request.workload));
    let per_core = match (request.cores, request.level) {
        (Some(_), _) | (None, Level::High) => 1,
        (None, Level::HighHt) => 2,
    };
    let io = usize::from(request.io == IoPlacement::Dedicated);
    let nodes = node_budgets(topology, request, &held, per_core);
    let capacity = |slots: &[usize], cores: usize| slots.iter().take(cores).sum::<usize>();
    let threads = request.cores.unwrap_or(request.threads) as usize;
    let single = nodes
        .iter()
        .any(|(_, budget, slots)| *budget >= io && capacity(slots, budget - io) >= threads);
    if single || request.spill == NumaSpill::Refuse {
        return single;
    }
    let with_room = |id: Option<u32>| nodes.iter().find(|(n, b, _)| Some(*n) == id && *b > 0);
    let main = with_room(request.memory_node)
        .or_else(|| with_room(request.nic_node))
        .or_else(|| {
            nodes
                .iter()
                .filter(|(_, b, _)| *b > 0)
                .max_by_key(|(n, b, _)| (*b, std::cmp::Reverse(*n)))
        });
    let Some((main, _, _)) = main else {
        return false;
    };
    let total: usize = nodes
        .iter()
        .map(|(n, budget, slots)| capacity(slots, budget - io * usize::from(n == main)))
        .sum();
    total >= threads
}

/// Per node with cores: (node, cores the request may take, eligible cores' slots, roomiest
/// first).
fn node_budgets(
    topology: &Topology,
    request: &AllocationRequest,
    held: &CpuSet,
    per_core: usize,
) -> Vec<(u32, usize, Vec<usize>)> {
    let housekeeping = request.housekeeping.clone().unwrap_or_default();
    topology
        .numa_nodes
        .iter()
        .filter_map(|node| {
            let free: Vec<&CpuSet> = topology
                .cores
                .iter()
                .map(|c| &c.cpus)
                .filter(|c| node_of(topology, c) == Some(node.id))
                .filter(|c| c.is_disjoint(held))
                .collect();
            let kept = |c: &CpuSet| {
                (c.contains(0) && !request.allow_cpu0) || !c.is_disjoint(&housekeeping)
            };
            let protected = free.iter().filter(|c| kept(c)).count();
            let mut slots: Vec<usize> = free
                .iter()
                .filter(|c| !kept(c))
                .map(|c| c.len().min(per_core))
                .collect();
            slots.sort_unstable_by(|a, b| b.cmp(a));
            let budget = slots.len() - usize::from(protected == 0 && !slots.is_empty());
            let has_cores = topology
                .cores
                .iter()
                .any(|c| node_of(topology, &c.cpus) == Some(node.id));
            has_cores.then_some((node.id, budget, slots))
        })
        .collect()
}
