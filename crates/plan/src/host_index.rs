//! The topology arranged for allocation, built once per topology: each usable core with its
//! node, locality group and kind, each node with its cores, and the NUMA distances.
//!
//! A core is usable when it has online CPUs and a known NUMA node: without a node its locality
//! cannot be promised, so it is never allocated (and counts for no node's housekeeping).

use nearnative_host::topology::{CoreKind, Topology};
use nearnative_host::CpuSet;

/// Distance the kernel reports for a node to itself, and assumed between two different nodes
/// when the topology has no distance table.
const LOCAL_DISTANCE: u32 = 10;
const REMOTE_DISTANCE: u32 = 20;

/// Where a core sits inside its node, for packing: cores sharing an L3 cache first, else a
/// die, else a package. Ordered so a sort keeps one kind of group together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Locality {
    L3(u32),
    Die(u32),
    Package(u32),
    Unknown,
}

#[derive(Debug, Clone)]
pub struct CoreInfo {
    /// The topology's logical core id: adjacent ids are adjacent cores.
    pub id: u32,
    pub cpus: CpuSet,
    /// `cpus` in ascending order, kept to avoid walking the bit set on every allocation.
    pub cpu_list: Vec<u32>,
    pub node: u32,
    pub locality: Locality,
    pub efficiency: bool,
    pub has_cpu0: bool,
}

impl CoreInfo {
    /// Threads this core can run for one workload at the given sharing (1 or 2 per core).
    pub fn slots(&self, threads_per_core: usize) -> usize {
        self.cpu_list.len().min(threads_per_core)
    }
}

#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub id: u32,
    /// Positions in [`HostIndex::cores`], in core-id order.
    pub cores: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct HostIndex {
    /// Usable cores in core-id order.
    pub cores: Vec<CoreInfo>,
    /// Nodes with usable cores, in node-id order.
    pub nodes: Vec<NodeInfo>,
    /// Every node id the topology knows, with or without CPUs, in its order.
    pub all_nodes: Vec<u32>,
    distances: Vec<Option<Vec<u32>>>,
    /// Position in `cores` of each CPU id's core.
    core_of_cpu: Vec<Option<usize>>,
    pub smt: bool,
    pub online: CpuSet,
}

impl HostIndex {
    pub fn new(topology: &Topology) -> Self {
        let cores: Vec<CoreInfo> = topology
            .cores
            .iter()
            .filter_map(|core| core_info(topology, core.id, &core.cpus, core.kind))
            .collect();
        let mut nodes: Vec<NodeInfo> = Vec::new();
        for (position, core) in cores.iter().enumerate() {
            match nodes.iter_mut().find(|n| n.id == core.node) {
                Some(node) => node.cores.push(position),
                None => nodes.push(NodeInfo {
                    id: core.node,
                    cores: vec![position],
                }),
            }
        }
        nodes.sort_by_key(|n| n.id);
        let max_cpu = cores
            .iter()
            .filter_map(|c| c.cpu_list.last())
            .max()
            .map_or(0, |&m| m as usize + 1);
        let mut core_of_cpu = vec![None; max_cpu];
        for (position, core) in cores.iter().enumerate() {
            for &cpu in &core.cpu_list {
                core_of_cpu[cpu as usize] = Some(position);
            }
        }
        HostIndex {
            smt: cores.iter().any(|c| c.cpu_list.len() > 1),
            cores,
            nodes,
            all_nodes: topology.numa_nodes.iter().map(|n| n.id).collect(),
            distances: topology
                .numa_nodes
                .iter()
                .map(|n| n.distances.clone())
                .collect(),
            core_of_cpu,
            online: topology.online.clone(),
        }
    }

    /// The position in `cores` of the core holding `cpu`.
    pub fn core_of(&self, cpu: u32) -> Option<usize> {
        self.core_of_cpu.get(cpu as usize).copied().flatten()
    }

    /// The kernel's distance from node `from` to node `to` (10 = local).
    pub fn distance(&self, from: u32, to: u32) -> u32 {
        let position = |id| self.all_nodes.iter().position(|&n| n == id);
        let table = position(from).and_then(|p| self.distances.get(p)?.as_ref());
        match (table, position(to)) {
            (Some(row), Some(column)) if column < row.len() => row[column],
            _ if from == to => LOCAL_DISTANCE,
            _ => REMOTE_DISTANCE,
        }
    }
}

fn core_info(
    topology: &Topology,
    id: u32,
    cpus: &CpuSet,
    kind: Option<CoreKind>,
) -> Option<CoreInfo> {
    let online = cpus.intersection(&topology.online);
    let first = topology.cpu(online.first()?)?;
    let locality = match (first.l3, first.die, first.package) {
        (Some(l3), _, _) => Locality::L3(l3),
        (None, Some(die), _) => Locality::Die(die),
        (None, None, Some(package)) => Locality::Package(package),
        (None, None, None) => Locality::Unknown,
    };
    Some(CoreInfo {
        id,
        cpu_list: online.iter().collect(),
        has_cpu0: online.contains(0),
        node: first.numa_node?,
        locality,
        efficiency: kind.or(first.kind) == Some(CoreKind::Efficiency),
        cpus: online,
    })
}
