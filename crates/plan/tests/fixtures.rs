//! The allocator on the six real host snapshots.

use nearnative_host::topology::CoreKind;
use nearnative_plan::{AdmissionError, AllocationRequest, Allocator, Ledger, Level, PlacementNote};
use nearnative_testkit::{topology, SNAPSHOTS};

use crate::support::{check_invariants, node_of};

/// Admitting one-thread workloads until refused fills every node down to its housekeeping
/// core, and the refusal names every node.
#[test]
fn filling_each_snapshot_leaves_one_housekeeping_core_per_node() {
    for name in SNAPSHOTS {
        let topology = topology(name);
        let allocator = Allocator::new(&topology);
        let mut admission = allocator.admission(Ledger::new()).unwrap();
        let mut admitted = 0;
        let refusal = loop {
            let request = AllocationRequest::new(format!("vm:{admitted}").as_str(), 1, Level::High);
            match admission.admit(&request) {
                Ok(_) => admitted += 1,
                Err(err) => break err,
            }
        };
        check_invariants(&topology, admission.ledger());
        let AdmissionError::NotEnoughCores(shortage) = &refusal else {
            panic!("{name}: {refusal}");
        };
        assert_eq!(shortage.free.total(), 0, "{name}: {refusal}");
        let nodes_with_cpus = topology
            .numa_nodes
            .iter()
            .filter(|n| !n.cpus.is_empty())
            .count();
        assert_eq!(shortage.kept.0.len(), nodes_with_cpus, "{name}: {refusal}");
        // Every core is given away except one per node (CPU 0's core is node 0's) and the
        // cores of CPUs without a NUMA node (offline-cpu0-node0 lists no node 0), whose
        // locality cannot be promised.
        let with_node = topology
            .cores
            .iter()
            .filter(|c| node_of(&topology, &c.cpus).is_some())
            .count();
        assert_eq!(admitted + nodes_with_cpus, with_node, "{name}");
    }
}

#[test]
fn the_hybrid_laptop_gets_performance_cores_first() {
    let topology = topology("20em64t-hybrid-1p6c2t+2ca4co1t");
    let allocation = Allocator::new(&topology)
        .allocate(
            &Ledger::new(),
            &AllocationRequest::new("vm:a", 5, Level::High),
        )
        .unwrap();
    for slot in &allocation.slots {
        let kind = topology.cpu(slot.cpu).unwrap().kind;
        assert_eq!(kind, Some(CoreKind::Performance), "thread {}", slot.thread);
    }
    assert!(allocation.notes.is_empty(), "{:?}", allocation.notes);
    let six = Allocator::new(&topology)
        .allocate(
            &Ledger::new(),
            &AllocationRequest::new("vm:a", 6, Level::High),
        )
        .unwrap();
    assert!(
        six.notes
            .iter()
            .any(|n| matches!(n, PlacementNote::Efficiency { .. })),
        "{:?}",
        six.notes
    );
}

#[test]
fn high_ht_on_the_smt_server_pairs_siblings() {
    let topology = topology("16em64t-4s2c2t");
    let allocation = Allocator::new(&topology)
        .allocate(
            &Ledger::new(),
            &AllocationRequest::new("vm:a", 2, Level::HighHt),
        )
        .unwrap();
    let cpus: Vec<u32> = allocation.slots.iter().map(|s| s.cpu).collect();
    let sibling_of_first = &topology.cpu(cpus[0]).unwrap().siblings;
    assert!(sibling_of_first.contains(cpus[1]), "{cpus:?} share a core");
    assert!(allocation.reserved_idle.is_empty());
}
