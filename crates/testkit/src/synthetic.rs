//! Synthetic topologies of any shape (packages × nodes × cores × SMT threads, hybrid E-cores,
//! offline CPUs), built as the host crate would read them: a core holds only its online CPUs,
//! an offline CPU belongs to no core, node or cache, and ids are dense and depth-first.
//!
//! CPUs are numbered the way x86 servers number them: the first thread of every core first
//! (0..cores), then each further thread in core order, so CPU `c` and `c + cores` are
//! siblings on a two-thread machine.

use nearnative_host::topology::{
    Cache, CacheType, Core, CoreKind, Cpu, HybridSource, NumaNode, Package, Topology,
};
use nearnative_host::CpuSet;

/// The shape of a synthetic machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub packages: u32,
    pub nodes_per_package: u32,
    pub cores_per_node: u32,
    /// Threads of each performance core (1 = no SMT).
    pub threads_per_core: u32,
    /// Cores sharing one L3 cache within a node; 0 means one L3 per node.
    pub cores_per_l3: u32,
    /// The last this many cores of each node are single-thread efficiency cores (0 = not
    /// hybrid).
    pub efficiency_cores_per_node: u32,
    /// CPUs to take offline.
    pub offline: Vec<u32>,
}

impl Shape {
    /// A plain server: `packages` × `nodes_per_package` × `cores_per_node` × `threads`.
    pub fn server(
        packages: u32,
        nodes_per_package: u32,
        cores_per_node: u32,
        threads: u32,
    ) -> Shape {
        Shape {
            packages,
            nodes_per_package,
            cores_per_node,
            threads_per_core: threads,
            cores_per_l3: 0,
            efficiency_cores_per_node: 0,
            offline: Vec::new(),
        }
    }

    pub fn build(&self) -> Topology {
        let cores = self.core_layout();
        let online_of = |cpus: &[u32]| -> CpuSet {
            cpus.iter()
                .copied()
                .filter(|c| !self.offline.contains(c))
                .collect()
        };
        let known: CpuSet = cores.iter().flat_map(|c| c.cpus.iter().copied()).collect();
        let offline: CpuSet = self
            .offline
            .iter()
            .copied()
            .filter(|c| known.contains(*c))
            .collect();
        let online = known.difference(&offline);
        let live: Vec<&Layout> = cores
            .iter()
            .filter(|c| !online_of(&c.cpus).is_empty())
            .collect();
        let l3_groups = self.l3_groups(&live, &online_of);
        let mut cpus: Vec<Cpu> = known
            .iter()
            .map(|id| offline_cpu(id, self.kind_of(&cores, id)))
            .collect();
        for (core_id, core) in live.iter().enumerate() {
            let siblings = online_of(&core.cpus);
            let l3 = l3_groups.iter().position(|g| g.holds(&siblings));
            for cpu in siblings.iter() {
                let entry = &mut cpus[cpu as usize];
                entry.online = true;
                entry.package = Some(core.package);
                entry.core = Some(core_id as u32);
                entry.numa_node = Some(core.node);
                entry.siblings = siblings.clone();
                entry.l3 = l3.map(|i| i as u32);
            }
        }
        Topology {
            packages: self.packages(&live, &online_of),
            numa_nodes: self.nodes(&live, &online_of),
            cores: live
                .iter()
                .enumerate()
                .map(|(id, c)| Core {
                    id: id as u32,
                    os_id: Some(id as i64),
                    package: Some(c.package),
                    cpus: online_of(&c.cpus),
                    kind: self.hybrid().then_some(c.kind),
                })
                .collect(),
            caches: l3_groups
                .into_iter()
                .enumerate()
                .map(|(id, g)| Cache {
                    id: id as u32,
                    level: 3,
                    cache_type: CacheType::Unified,
                    size_kib: Some(32 * 1024),
                    cpus: g.cpus,
                })
                .collect(),
            cpus,
            online,
            offline,
            dies: Vec::new(),
            clusters: Vec::new(),
            hybrid: self.hybrid().then_some(HybridSource::IntelPmu),
        }
    }

    fn hybrid(&self) -> bool {
        self.efficiency_cores_per_node > 0
    }

    fn total_cores(&self) -> u32 {
        self.packages * self.nodes_per_package * self.cores_per_node
    }

    /// Every core with all its CPUs (online or not), in depth-first order.
    fn core_layout(&self) -> Vec<Layout> {
        let total = self.total_cores();
        let mut next_extra = total;
        (0..total)
            .map(|c| {
                let node = c / self.cores_per_node;
                let index_in_node = c % self.cores_per_node;
                let efficiency = index_in_node + self.efficiency_cores_per_node
                    >= self.cores_per_node
                    && self.hybrid();
                let threads = if efficiency {
                    1
                } else {
                    self.threads_per_core.max(1)
                };
                let mut cpus = vec![c];
                for _ in 1..threads {
                    cpus.push(next_extra);
                    next_extra += 1;
                }
                Layout {
                    cpus,
                    node,
                    index_in_node,
                    package: node / self.nodes_per_package,
                    kind: if efficiency {
                        CoreKind::Efficiency
                    } else {
                        CoreKind::Performance
                    },
                }
            })
            .collect()
    }

    fn kind_of(&self, cores: &[Layout], cpu: u32) -> Option<CoreKind> {
        let core = cores.iter().find(|c| c.cpus.contains(&cpu))?;
        self.hybrid().then_some(core.kind)
    }

    fn l3_groups(&self, live: &[&Layout], online_of: &dyn Fn(&[u32]) -> CpuSet) -> Vec<L3> {
        let per_l3 = match self.cores_per_l3 {
            0 => self.cores_per_node,
            n => n,
        };
        let mut groups: Vec<(u32, u32, CpuSet)> = Vec::new();
        for core in live {
            let key = (core.node, core.index_in_node / per_l3);
            match groups.last_mut() {
                Some((node, group, cpus)) if (*node, *group) == key => {
                    *cpus = cpus.union(&online_of(&core.cpus));
                }
                _ => groups.push((key.0, key.1, online_of(&core.cpus))),
            }
        }
        groups.into_iter().map(|(_, _, cpus)| L3 { cpus }).collect()
    }

    fn packages(&self, live: &[&Layout], online_of: &dyn Fn(&[u32]) -> CpuSet) -> Vec<Package> {
        (0..self.packages)
            .map(|id| Package {
                id,
                os_id: Some(id as i64),
                cpus: live
                    .iter()
                    .filter(|c| c.package == id)
                    .map(|c| online_of(&c.cpus))
                    .fold(CpuSet::new(), |all, set| all.union(&set)),
            })
            .filter(|p| !p.cpus.is_empty())
            .collect()
    }

    fn nodes(&self, live: &[&Layout], online_of: &dyn Fn(&[u32]) -> CpuSet) -> Vec<NumaNode> {
        let count = self.packages * self.nodes_per_package;
        let package_of = |node: u32| node / self.nodes_per_package;
        (0..count)
            .map(|id| NumaNode {
                id,
                cpus: live
                    .iter()
                    .filter(|c| c.node == id)
                    .map(|c| online_of(&c.cpus))
                    .fold(CpuSet::new(), |all, set| all.union(&set)),
                memory_kib: Some(16 * 1024 * 1024),
                distances: Some(
                    (0..count)
                        .map(|other| match other {
                            o if o == id => 10,
                            o if package_of(o) == package_of(id) => 12,
                            _ => 20,
                        })
                        .collect(),
                ),
                implicit: false,
            })
            .collect()
    }
}

/// One core before offline CPUs are dropped.
struct Layout {
    cpus: Vec<u32>,
    node: u32,
    index_in_node: u32,
    package: u32,
    kind: CoreKind,
}

struct L3 {
    cpus: CpuSet,
}

impl L3 {
    fn holds(&self, core: &CpuSet) -> bool {
        core.is_subset(&self.cpus)
    }
}

fn offline_cpu(id: u32, kind: Option<CoreKind>) -> Cpu {
    Cpu {
        id,
        online: false,
        package: None,
        die: None,
        cluster: None,
        core: None,
        numa_node: None,
        siblings: CpuSet::new(),
        l2: None,
        l3: None,
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_are_numbered_server_style_and_offline_cpus_leave_their_core() {
        let mut shape = Shape::server(2, 1, 2, 2);
        shape.offline = vec![5];
        let topology = shape.build();
        let cores: Vec<String> = topology.cores.iter().map(|c| c.cpus.to_list()).collect();
        assert_eq!(cores, ["0,4", "1", "2,6", "3,7"]);
        assert_eq!(topology.offline.to_list(), "5");
        assert_eq!(topology.numa_nodes[1].cpus.to_list(), "2-3,6-7");
        assert_eq!(topology.cpu(6).unwrap().core, Some(2));
        assert!(!topology.cpu(5).unwrap().online);
    }

    #[test]
    fn hybrid_nodes_end_in_single_thread_efficiency_cores() {
        let mut shape = Shape::server(1, 1, 4, 2);
        shape.efficiency_cores_per_node = 2;
        let topology = shape.build();
        let cores: Vec<(String, Option<CoreKind>)> = topology
            .cores
            .iter()
            .map(|c| (c.cpus.to_list(), c.kind))
            .collect();
        assert_eq!(
            cores,
            [
                ("0,4".to_owned(), Some(CoreKind::Performance)),
                ("1,5".to_owned(), Some(CoreKind::Performance)),
                ("2".to_owned(), Some(CoreKind::Efficiency)),
                ("3".to_owned(), Some(CoreKind::Efficiency)),
            ]
        );
    }
}
