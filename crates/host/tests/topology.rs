//! The topology read from each real snapshot equals hwloc's reading of it.

use std::collections::BTreeSet;

use nearnative_host::topology::Topology;
use nearnative_host::{Host, InspectOptions, Root};

use crate::fixtures::{lstopo, shared, SNAPSHOTS};

fn read(name: &str) -> (Topology, Vec<nearnative_host::Unknown>) {
    let mut unknowns = Vec::new();
    let topology = Topology::read(&Root::new(shared(name)), &mut unknowns);
    (topology, unknowns)
}

#[test]
fn counts_and_siblings_match_hwloc_on_every_snapshot() {
    for name in SNAPSHOTS {
        let (topology, unknowns) = read(name);
        let hwloc = lstopo(name);
        let online: Vec<u32> = topology
            .cpus
            .iter()
            .filter(|c| c.online)
            .map(|c| c.id)
            .collect();
        let packages: BTreeSet<u32> = topology.cpus.iter().filter_map(|c| c.package).collect();
        let nodes: BTreeSet<u32> = topology.numa_nodes.iter().map(|n| n.id).collect();
        let mut pus = hwloc.pus.clone();
        pus.sort_unstable();
        assert_eq!(online, pus, "{name}: online CPUs");
        assert_eq!(packages.len(), hwloc.packages, "{name}: packages");
        assert_eq!(topology.packages.len(), hwloc.packages, "{name}: packages");
        assert_eq!(nodes.len(), hwloc.numa_nodes, "{name}: NUMA nodes");
        assert_eq!(topology.cores.len(), hwloc.cores.len(), "{name}: cores");
        for cpu in topology.cpus.iter().filter(|c| c.online) {
            let core = cpu.core.expect("online CPU has a core");
            let want: BTreeSet<u32> = hwloc.cores[core as usize].iter().copied().collect();
            let got: BTreeSet<u32> = cpu.siblings.iter().collect();
            assert_eq!(
                got, want,
                "{name}: siblings of cpu{} (core {core} = Core L#{core})",
                cpu.id
            );
        }
        let host = Host::read(&Root::new(shared(name)), &InspectOptions::default());
        let allowed = host.isolation.process_cpuset.map(|own| own.cpus);
        assert!(
            allowed.is_none_or(|cpus| topology.online.is_subset(&cpus)),
            "{name}: lstopo hides CPUs outside the snapshot's own cpuset; none are here"
        );
        let objects: Vec<&str> = unknowns.iter().map(|u| u.object.as_str()).collect();
        assert_eq!(objects, expected_unknowns(name), "{name}: {unknowns:?}");
    }
}

/// What each snapshot really lacks. offline-cpu0-node0 was trimmed to node 1 while node 1's
/// distance row still has the two columns of the original machine.
fn expected_unknowns(name: &str) -> Vec<&'static str> {
    match name {
        "offline-cpu0-node0" => vec!["distances of NUMA node 1"],
        _ => vec![],
    }
}

#[test]
fn offline_cpus_have_no_topology_and_hybrid_kinds_are_found() {
    let (topology, _) = read("offline-cpu0-node0");
    assert!(topology
        .cpu(0)
        .is_some_and(|c| !c.online && c.core.is_none() && c.siblings.is_empty()));
    assert_eq!(topology.offline.to_list(), "0-3,21-23");
    assert_eq!(
        topology.cpu(4).and_then(|c| c.numa_node),
        None,
        "node 0 is not in the snapshot"
    );
    assert_eq!(topology.cpu(5).and_then(|c| c.numa_node), Some(1));

    let (hybrid, _) = read("20em64t-hybrid-1p6c2t+2ca4co1t");
    use nearnative_host::topology::{CoreKind, HybridSource};
    assert_eq!(hybrid.hybrid, Some(HybridSource::BaseFrequency));
    let performance: Vec<u32> = hybrid
        .cpus
        .iter()
        .filter(|c| c.kind == Some(CoreKind::Performance))
        .map(|c| c.id)
        .collect();
    assert_eq!(
        performance,
        (0..12).collect::<Vec<_>>(),
        "hwloc's cpukind 1 is 0x00000fff"
    );

    let (arm, _) = read("128arm-2pa2n8cluster4co");
    assert_eq!((arm.clusters.len(), arm.numa_nodes.len()), (32, 4));
    assert_eq!(arm.numa_nodes[0].distances, Some(vec![10, 16, 32, 33]));
    assert!(arm.hybrid.is_none() && !arm.smt_active());
}
